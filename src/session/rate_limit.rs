//! A strict sliding-window limiter: at most `frames` sends in any window of `per`.
//!
//! It remembers the time of the last `frames` sends; the next send may go when
//! the oldest of them has left the window. Memory is bounded by `frames`.

use std::collections::VecDeque;

use tokio::time::{Duration, Instant};

use crate::rate::RateLimit;

#[derive(Debug)]
pub(crate) struct RateLimiter {
    frames: usize,
    per: Duration,
    sent: VecDeque<Instant>,
}

impl RateLimiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        let frames = usize::try_from(limit.frames).unwrap_or(usize::MAX).max(1);
        RateLimiter {
            frames,
            per: limit.per,
            sent: VecDeque::with_capacity(frames.min(1024)),
        }
    }

    /// The earliest instant the next frame may be sent.
    pub(crate) fn next_slot(&self, now: Instant) -> Instant {
        match self.sent.front() {
            Some(oldest) if self.sent.len() >= self.frames => {
                super::deadline::later(*oldest, self.per).max(now)
            }
            _ => now,
        }
    }

    /// Records a send at `now` (which must be at or after `next_slot`).
    pub(crate) fn record(&mut self, now: Instant) {
        if self.sent.len() >= self.frames {
            self.sent.pop_front();
        }
        self.sent.push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_more_than_n_sends_in_any_window() {
        let limit = RateLimit {
            frames: 3,
            per: Duration::from_secs(1),
        };
        let mut limiter = RateLimiter::new(limit);
        let start = Instant::now();
        let mut times = Vec::new();
        let mut now = start;
        for _ in 0..10 {
            now = limiter.next_slot(now);
            limiter.record(now);
            times.push(now);
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..].iter().filter(|u| **u < *t + limit.per).count();
            assert!(
                in_window <= 3,
                "{in_window} sends within one window starting at send {i}"
            );
        }
        assert_eq!(times[3] - start, Duration::from_secs(1));
        assert_eq!(times[9] - start, Duration::from_secs(3));
    }
}
