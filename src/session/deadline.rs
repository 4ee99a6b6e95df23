//! Deadline arithmetic shared by the link's timers and the rate limiters.
//!
//! A configured duration can be anything a user writes (`Duration::MAX`
//! included), and `Instant + Duration` panics on overflow, so every deadline
//! in the session is computed here, saturating instead.

use tokio::time::{Duration, Instant};

/// `now + d`, saturating far in the future instead of overflowing `Instant`.
pub(super) fn later(now: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(d.min(FAR))
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}
