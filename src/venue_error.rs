//! Venue errors in the venue's own words, parsed and classified so a caller
//! knows at once whether to retry, wait, or stop and fix its keys.
//!
//! Kraken reports `<severity><category>:<message>`, for example
//! `EQuery:Unknown asset pair` (severity `E` error or `W` warning; categories
//! General, API, Query, Order, Trade, Funding, Service, Session). Kalshi sends a
//! numeric code and a message. Both map onto one [`VenueErrorKind`]. A string of
//! an unknown shape is kept raw and classified [`VenueErrorKind::Unknown`]; it
//! never fails to parse.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

/// How long Kraken's `EGeneral:Temporary lockout` lasts, per its documentation.
pub const KRAKEN_LOCKOUT: Duration = Duration::from_secs(15 * 60);

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
    /// How long to wait before retrying, in milliseconds, when the adapter
    /// knows better than the kind's default (see
    /// [`retry_after`](VenueError::retry_after)). Kept in 4 bytes so the
    /// error does not grow.
    retry_hint_ms: Option<NonZeroU32>,
}

const KRAKEN_CATEGORIES: [&str; 8] = [
    "General", "API", "Query", "Order", "Trade", "Funding", "Service", "Session",
];

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
            retry_hint_ms: None,
        }
    }

    /// Sets how long to wait before retrying (a venue's documented back-off),
    /// at millisecond precision, at most about 49 days.
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        let ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        self.retry_hint_ms = NonZeroU32::new(ms);
        self
    }

    /// Sets the kind (for custom protocols that classify their own errors).
    pub fn with_kind(mut self, kind: VenueErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// Parses and classifies a Kraken error string such as `EGeneral:Temporary lockout`.
    pub fn kraken(text: &str) -> Self {
        let mut error = VenueError::new(None, text);
        let mut chars = text.chars();
        let severity = match chars.next() {
            Some('E') => Some(Severity::Error),
            Some('W') => Some(Severity::Warning),
            _ => None,
        };
        let shaped = severity.and_then(|severity| {
            let rest = text.get(1..)?;
            let (category, message) = rest.split_once(':')?;
            let known = KRAKEN_CATEGORIES.iter().find(|known| **known == category)?;
            Some((severity, *known, message))
        });
        if let Some((severity, category, message)) = shaped {
            error.severity = Some(severity);
            error.category = Some(category);
            error.message = message.to_owned();
            error.kind = kraken_kind(category, message);
        }
        error
    }

    /// Classifies a Kalshi error code and message.
    pub fn kalshi(code: Option<i64>, message: impl Into<String>) -> Self {
        let error = VenueError::new(code, message);
        let kind = kalshi_kind(code, &error.message);
        error.with_kind(kind)
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

    /// How long to wait before retrying, when the venue's documentation says.
    pub fn retry_after(&self) -> Option<Duration> {
        if let Some(ms) = self.retry_hint_ms {
            return Some(Duration::from_millis(u64::from(ms.get())));
        }
        match self.kind {
            VenueErrorKind::Lockout => Some(KRAKEN_LOCKOUT),
            _ => None,
        }
    }
}

/// Kraken's documented errors, matched on category and message prefix (the
/// venue sometimes appends detail, e.g. `EGeneral:Invalid arguments:depth`).
fn kraken_kind(category: &str, message: &str) -> VenueErrorKind {
    let starts = |prefix: &str| message.starts_with(prefix);
    match category {
        "Service" if starts("Unavailable") || starts("Busy") => VenueErrorKind::Transient,
        "General" if starts("Internal error") => VenueErrorKind::Transient,
        "General" if starts("Temporary lockout") => VenueErrorKind::Lockout,
        "Order" | "Trade" | "General" | "API" if starts("Rate limit exceeded") => {
            VenueErrorKind::RateLimited
        }
        "API"
            if starts("Invalid key") || starts("Invalid signature") || starts("Invalid nonce") =>
        {
            VenueErrorKind::Permanent
        }
        "General" if starts("Permission denied") || starts("Invalid arguments") => {
            VenueErrorKind::Permanent
        }
        "Query" if starts("Unknown asset pair") => VenueErrorKind::Permanent,
        "Session" if starts("Invalid session") => VenueErrorKind::SessionExpired,
        _ => VenueErrorKind::Unknown,
    }
}

/// Kalshi: codes with an unambiguous meaning first, then the message's words.
fn kalshi_kind(code: Option<i64>, message: &str) -> VenueErrorKind {
    let lower = message.to_ascii_lowercase();
    let has = |word: &str| lower.contains(word);
    if has("rate limit") || has("too many") {
        VenueErrorKind::RateLimited
    } else if has("internal")
        || has("timeout")
        || has("timed out")
        || has("unavailable")
        || has("busy")
    {
        VenueErrorKind::Transient
    } else if has("session") && (has("expired") || has("invalid")) {
        VenueErrorKind::SessionExpired
    } else if code == Some(6)
        || has("auth")
        || has("permission")
        || has("required")
        || has("unknown")
        || has("invalid")
        || has("already")
        || has("not found")
        || has("unsupported")
    {
        VenueErrorKind::Permanent
    } else {
        VenueErrorKind::Unknown
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
    fn the_documented_kraken_errors_are_classified() {
        let cases = [
            (
                "EService:Unavailable",
                VenueErrorKind::Transient,
                true,
                None,
            ),
            ("EService:Busy", VenueErrorKind::Transient, true, None),
            (
                "EGeneral:Internal error",
                VenueErrorKind::Transient,
                true,
                None,
            ),
            (
                "EGeneral:Temporary lockout",
                VenueErrorKind::Lockout,
                true,
                Some(KRAKEN_LOCKOUT),
            ),
            (
                "EOrder:Rate limit exceeded",
                VenueErrorKind::RateLimited,
                true,
                None,
            ),
            ("EAPI:Invalid key", VenueErrorKind::Permanent, false, None),
            (
                "EAPI:Invalid signature",
                VenueErrorKind::Permanent,
                false,
                None,
            ),
            (
                "EGeneral:Permission denied",
                VenueErrorKind::Permanent,
                false,
                None,
            ),
            (
                "EGeneral:Invalid arguments",
                VenueErrorKind::Permanent,
                false,
                None,
            ),
            (
                "EGeneral:Invalid arguments:depth",
                VenueErrorKind::Permanent,
                false,
                None,
            ),
            (
                "EQuery:Unknown asset pair",
                VenueErrorKind::Permanent,
                false,
                None,
            ),
            (
                "ESession:Invalid session",
                VenueErrorKind::SessionExpired,
                true,
                None,
            ),
        ];
        for (text, kind, retryable, retry_after) in cases {
            let e = VenueError::kraken(text);
            assert_eq!(
                (e.kind, e.is_retryable(), e.retry_after()),
                (kind, retryable, retry_after),
                "{text}"
            );
            assert_eq!(e.severity, Some(Severity::Error), "{text}");
            assert_eq!(e.raw, text);
        }
        let e = VenueError::kraken("EQuery:Unknown asset pair");
        assert_eq!(
            (e.category, e.message.as_str()),
            (Some("Query"), "Unknown asset pair")
        );
    }

    #[test]
    fn unknown_shapes_are_kept_raw() {
        for text in [
            "Currency pair not supported XBT/USD",
            "",
            "E",
            "EFoo:bar",
            "W:",
            "é:ü",
            "ESession",
        ] {
            let e = VenueError::kraken(text);
            assert_eq!(
                (e.kind, e.raw.as_str(), e.category),
                (VenueErrorKind::Unknown, text, None),
                "{text}"
            );
        }
        let warning = VenueError::kraken("WGeneral:Something odd");
        assert_eq!(warning.severity, Some(Severity::Warning));
    }

    #[test]
    fn kalshi_codes_and_messages_map_the_same_way() {
        assert_eq!(
            VenueError::kalshi(Some(17), "Internal error").kind,
            VenueErrorKind::Transient
        );
        assert_eq!(
            VenueError::kalshi(Some(6), "Already subscribed").kind,
            VenueErrorKind::Permanent
        );
        assert_eq!(
            VenueError::kalshi(Some(9), "Authentication required").kind,
            VenueErrorKind::Permanent
        );
        assert_eq!(
            VenueError::kalshi(Some(8), "Unknown channel name").kind,
            VenueErrorKind::Permanent
        );
        assert_eq!(
            VenueError::kalshi(None, "Rate limit exceeded").kind,
            VenueErrorKind::RateLimited
        );
        assert_eq!(
            VenueError::kalshi(Some(99), "Something new").kind,
            VenueErrorKind::Unknown
        );
    }
}
