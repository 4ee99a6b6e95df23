//! Kraken's error grammar: `<severity><category>:<message>`, for example
//! `EQuery:Unknown asset pair` (severity `E` error or `W` warning; categories
//! General, API, Query, Order, Trade, Funding, Service, Session), mapped onto
//! [`VenueErrorKind`], with the documented lockout wait attached.
//!
//! Rules: a string of an unknown shape is kept raw and classified
//! [`VenueErrorKind::Unknown`]; it never fails to parse. WebSocket v2 also
//! answers subscribes with plain sentences outside that grammar; the ones
//! documented (see VENUES.md) are classified by their prefix:
//! `Currency pair not supported …` is permanent, `Rate limit for snapshot
//! requests exceeded` (and v1's `Exceeded msg rate`) is rate limiting. Messages are matched on
//! their prefix, because Kraken sometimes appends detail
//! (`EGeneral:Invalid arguments:depth`).

use std::time::Duration;

use crate::venue_error::{Severity, VenueError, VenueErrorKind};

/// How long Kraken's `EGeneral:Temporary lockout` lasts, per its documentation.
pub const KRAKEN_LOCKOUT: Duration = Duration::from_secs(15 * 60);

const KRAKEN_CATEGORIES: [&str; 8] = [
    "General", "API", "Query", "Order", "Trade", "Funding", "Service", "Session",
];

impl VenueError {
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
        } else {
            error.kind = sentence_kind(text);
        }
        if error.kind == VenueErrorKind::Lockout {
            error = error.with_retry_after(KRAKEN_LOCKOUT);
        }
        error
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

/// Kraken's WebSocket v2 errors that are plain sentences, not `E<Category>:`.
fn sentence_kind(text: &str) -> VenueErrorKind {
    if text.starts_with("Currency pair not supported") {
        VenueErrorKind::Permanent
    } else if text.starts_with("Rate limit") || text.starts_with("Exceeded msg rate") {
        VenueErrorKind::RateLimited
    } else {
        VenueErrorKind::Unknown
    }
}

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
        for text in ["", "E", "EFoo:bar", "W:", "é:ü", "ESession"] {
            let e = VenueError::kraken(text);
            assert_eq!(
                (e.kind, e.raw.as_str(), e.category),
                (VenueErrorKind::Unknown, text, None),
                "{text}"
            );
        }
        // The documented v2 sentences are kept raw, and classified.
        for (text, kind) in [
            (
                "Currency pair not supported XBT/USD",
                VenueErrorKind::Permanent,
            ),
            (
                "Rate limit for snapshot requests exceeded",
                VenueErrorKind::RateLimited,
            ),
            ("Exceeded msg rate", VenueErrorKind::RateLimited),
        ] {
            let e = VenueError::kraken(text);
            assert_eq!((e.kind, e.raw.as_str(), e.category), (kind, text, None));
        }
        let warning = VenueError::kraken("WGeneral:Something odd");
        assert_eq!(warning.severity, Some(Severity::Warning));
    }
}
