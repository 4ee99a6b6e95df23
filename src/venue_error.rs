//! Venue errors in the venue's own words, classified so a caller knows at once
//! whether to retry, wait, or stop and fix its keys.
//!
//! This module is venue-neutral: it holds the shape ([`VenueError`]) and the
//! meanings ([`VenueErrorKind`]). Each venue's grammar lives in its adapter,
//! behind [`Protocol`](crate::Protocol): Kraken's `<severity><category>:<message>`
//! strings in `protocol/kraken/error.rs` ([`VenueError::kraken`]), Kalshi's code
//! table in `protocol/kalshi.rs` ([`VenueError::kalshi`]). A custom protocol
//! builds its own with [`VenueError::new`], [`with_kind`](VenueError::with_kind)
//! and [`with_retry_after`](VenueError::with_retry_after).
//!
//! Rule: a wait is only ever the one the adapter set. [`VenueError::retry_after`]
//! returns it, and never guesses one from the kind (a `Lockout` from a venue that
//! documents no duration has none).

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

/// What a venue error means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VenueErrorKind {
    /// A passing fault on the venue's side (unavailable, busy, internal error): retry soon.
    Transient,
    /// The venue locked this client out for a while: retry after
    /// [`VenueError::retry_after`].
    Lockout,
    /// Too many requests: back off before retrying.
    RateLimited,
    /// The session token expired or is invalid: get a fresh token, then retry.
    SessionExpired,
    /// The request cannot succeed as sent (bad key or signature, no permission,
    /// invalid arguments, unknown pair): do not retry; fix the request or the keys.
    Permanent,
    /// Not one of the documented errors.
    Unknown,
}

/// How serious the venue said the error is (Kraken's leading `E` or `W`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// `E`: the operation failed.
    Error,
    /// `W`: a warning; the operation may have gone through.
    Warning,
}

/// An error reported by the venue, as sent and as understood.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VenueError {
    /// The venue's numeric code, when it sends one (Kalshi does, Kraken does not).
    pub code: Option<i64>,
    /// The message: for Kraken the part after `<severity><category>:`, else the whole text.
    pub message: String,
    /// The severity, when the text has Kraken's shape.
    pub severity: Option<Severity>,
    /// The category (`General`, `API`, `Query`, ...), when the text has Kraken's shape.
    pub category: Option<&'static str>,
    /// The text exactly as the venue sent it.
    pub raw: String,
    /// What it means for the caller.
    pub kind: VenueErrorKind,
    /// The wait the adapter set (see [`VenueError::retry_after`]), in whole
    /// milliseconds up to about 49 days: four bytes fit in this struct's padding,
    /// so [`Error`](crate::Error) (which carries a `VenueError`) does not grow.
    retry_after_ms: Option<NonZeroU32>,
}

impl VenueError {
    /// An unclassified venue error from a code and a message (kind
    /// [`VenueErrorKind::Unknown`]), for custom protocols.
    pub fn new(code: Option<i64>, message: impl Into<String>) -> Self {
        let message = message.into();
        VenueError {
            code,
            raw: message.clone(),
            message,
            severity: None,
            category: None,
            kind: VenueErrorKind::Unknown,
            retry_after_ms: None,
        }
    }

    /// Sets the kind (for custom protocols that classify their own errors).
    pub fn with_kind(mut self, kind: VenueErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// Sets how long to wait before retrying, as the venue documents it (a
    /// lockout's length, a rate limit's window). The supervisor honours it by
    /// lengthening its next backoff delay. Kept in whole milliseconds, rounded
    /// up and capped at `u32::MAX` ms (about 49 days); a zero wait is no wait.
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        let ms = u32::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(u32::MAX);
        self.retry_after_ms = NonZeroU32::new(ms);
        self
    }

    /// Whether retrying the same operation later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            VenueErrorKind::Transient
                | VenueErrorKind::Lockout
                | VenueErrorKind::RateLimited
                | VenueErrorKind::SessionExpired
        )
    }

    /// How long to wait before retrying: the wait the adapter set with
    /// [`with_retry_after`](Self::with_retry_after) (Kraken's
    /// `EGeneral:Temporary lockout`: [`KRAKEN_LOCKOUT`](crate::KRAKEN_LOCKOUT)),
    /// `None` when the venue documents none.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_ms
            .map(|ms| Duration::from_millis(u64::from(ms.get())))
    }
}

impl fmt::Display for VenueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "venue error {code}: {}", self.raw),
            None => write!(f, "venue error: {}", self.raw),
        }
    }
}

impl std::error::Error for VenueError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lockout_without_a_documented_wait_has_no_retry_after() {
        // Before the wait moved into the adapters, every venue's Lockout answered
        // Kraken's 15 minutes.
        let lockout = VenueError::new(Some(42), "locked").with_kind(VenueErrorKind::Lockout);
        assert!(lockout.is_retryable());
        assert_eq!(lockout.retry_after(), None);
        let kalshi = VenueError::kalshi(None, "locked out").with_kind(VenueErrorKind::Lockout);
        assert_eq!(kalshi.retry_after(), None);
        let set = lockout.with_retry_after(Duration::from_secs(7));
        assert_eq!(set.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(set.kind, VenueErrorKind::Lockout);
        let rounded = VenueError::new(None, "x").with_retry_after(Duration::from_micros(1));
        assert_eq!(rounded.retry_after(), Some(Duration::from_millis(1)));
        let zero = VenueError::new(None, "x").with_retry_after(Duration::ZERO);
        assert_eq!(zero.retry_after(), None);
        let long = VenueError::new(None, "x").with_retry_after(Duration::MAX);
        assert_eq!(
            long.retry_after(),
            Some(Duration::from_millis(u64::from(u32::MAX)))
        );
        // The wait must not make `Error` larger than it was.
        assert!(std::mem::size_of::<VenueError>() <= 88);
    }
}
