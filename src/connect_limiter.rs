//! One limiter for the connection attempts of every member of a pool.
//!
//! Venues cap connection attempts per source IP, and when a venue restarts
//! every member of a pool loses its socket at once: without a shared limiter
//! they would all reconnect within the same backoff window. Each attempt
//! (first connect and every reconnect) takes the next free slot, slots are
//! `spacing` apart, so N members reconnect over `N x spacing` instead of in
//! one burst. The member's own jittered backoff still applies before it asks.
//!
//! Hand-written (a dozen lines) rather than a rate-limiter crate because it
//! must run on tokio's clock: tests pause time, and the slot is awaited while
//! the supervisor keeps serving commands.
//!
//! The spacing is a user's setting, so it saturates rather than panics: it is
//! clamped to [`LONGEST_DURATION`] (as every [`Config`](crate::Config)
//! duration is), and a slot that would lie past the clock's range stays at
//! the last one it can name (`Instant + Duration` panics on overflow).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::duration::LONGEST_DURATION;

/// Hands out connection-attempt slots at least `spacing` apart.
#[derive(Debug)]
pub(crate) struct ConnectLimiter {
    spacing: Duration,
    next: Mutex<Option<Instant>>,
}

impl ConnectLimiter {
    pub(crate) fn new(spacing: Duration) -> Self {
        ConnectLimiter {
            spacing: spacing.min(LONGEST_DURATION),
            next: Mutex::new(None),
        }
    }

    /// Waits for this attempt's slot. A slot taken by a cancelled wait is
    /// simply skipped (the limiter errs towards fewer attempts).
    pub(crate) async fn acquire(&self) {
        let now = Instant::now();
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let slot = next.map_or(now, |at| at.max(now));
            *next = Some(slot.checked_add(self.spacing).unwrap_or(slot));
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn attempts_are_spaced_and_an_idle_limiter_does_not_delay() {
        let limiter = ConnectLimiter::new(Duration::from_millis(100));
        let start = Instant::now();
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        limiter.acquire().await;
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        tokio::time::sleep(Duration::from_secs(5)).await;
        let idle = Instant::now();
        limiter.acquire().await;
        assert_eq!(idle.elapsed(), Duration::ZERO);
    }

    /// Issue 19: `slot + Duration::MAX` panicked inside the member's task.
    #[tokio::test(start_paused = true)]
    async fn a_huge_spacing_saturates_instead_of_panicking() {
        let limiter = ConnectLimiter::new(Duration::MAX);
        assert_eq!(limiter.spacing, LONGEST_DURATION);
        let start = Instant::now();
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::ZERO, "the first slot is now");
        // The next slot is a year away: still waiting after a day.
        let second = tokio::time::timeout(Duration::from_secs(24 * 3600), limiter.acquire());
        assert!(second.await.is_err());
    }
}
