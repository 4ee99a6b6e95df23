//! Which WebSocket close codes end a session for good.
//!
//! A leaf module (it imports nothing from the crate) so that both the
//! configuration (which holds the rule a user may replace through
//! [`ConfigBuilder::permanent_close_codes`](crate::ConfigBuilder::permanent_close_codes))
//! and the error type can name the default without importing each other. The
//! decision for one close is made once, under the configured rule, where the
//! close frame is handled (the session core), and recorded in
//! [`Error::Closed`](crate::Error::Closed)'s `permanent` field, so
//! [`Error::is_retryable`](crate::Error::is_retryable) agrees with what the
//! supervisor did.

/// The close codes after which reconnecting is pointless by default: protocol
/// error (1002), unsupported data (1003), invalid payload (1007), policy
/// violation (1008), message too big (1009), missing extension (1010) and the
/// application range 4000-4999 (venues use it for auth and bans).
pub fn default_permanent_close(code: u16) -> bool {
    matches!(code, 1002 | 1003 | 1007..=1010 | 4000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_close_codes_match_the_documented_set() {
        for code in [1002, 1003, 1007, 1008, 1009, 1010, 4000, 4999] {
            assert!(default_permanent_close(code), "{code}");
        }
        for code in [1000, 1001, 1006, 1011, 1012, 1013, 3000, 5000] {
            assert!(!default_permanent_close(code), "{code}");
        }
    }
}
