//! How long a venue asked us to wait before the next connection attempt.
//!
//! Rules: a venue lockout names its own wait; a close 1013 "try again later"
//! names none, so it asks for the backoff cap. The latest "not before" of a
//! session wins over earlier ones only when it is later, and is taken once
//! by the reconnect machine when the session ends.

use std::time::Duration;

use tokio::time::Instant;

use super::deadline::later;
use crate::error::Error;

/// The latest "not before" a failure of this session asked for.
#[derive(Default)]
pub(super) struct RetryHint {
    not_before: Option<Instant>,
}

impl RetryHint {
    /// Remembers how long `error` asks us to wait (`cap` for a close 1013).
    pub(super) fn note(&mut self, error: &Error, cap: Duration, now: Instant) {
        if let Some(hint) = crate::backoff::retry_hint(error, cap) {
            tracing::info!(
                ?hint,
                "the venue asked to wait; lengthening the next backoff delay"
            );
            self.not_before = self.not_before.max(Some(later(now, hint)));
        }
    }

    /// The wait the hint still asks for at `now`, once.
    pub(super) fn take_wait(&mut self, now: Instant) -> Duration {
        self.not_before
            .take()
            .map(|at| at.saturating_duration_since(now))
            .unwrap_or_default()
    }
}
