//! A strict sliding-window limiter: at most `frames` sends in any window of `per`.
//!
//! It remembers the time of the recent sends; the next send may go when fewer
//! than `frames` of them are inside the window, or when the oldest of the last
//! `frames` has left it.
//!
//! Memory: a send is forgotten as soon as it has left the window (it can no
//! longer hold a later send back), and the history never holds more than
//! `frames` sends. So it is bounded by what is inside one window, not by the
//! limit: with a limit of a million frames per second and a heartbeat answer
//! every few seconds, it holds one or two instants, not every answer of the
//! connection's life.

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

    /// Records a send at `now` (which must be at or after `next_slot`), and
    /// forgets the sends that have left the window.
    pub(crate) fn record(&mut self, now: Instant) {
        self.prune(now);
        if self.sent.len() >= self.frames {
            self.sent.pop_front();
        }
        self.sent.push_back(now);
    }

    /// Drops the sends at least `per` old: they can no longer hold a send back.
    fn prune(&mut self, now: Instant) {
        while let Some(oldest) = self.sent.front() {
            if super::deadline::later(*oldest, self.per) > now {
                break;
            }
            self.sent.pop_front();
        }
    }

    /// How many sends are remembered (for bound tests).
    #[cfg(test)]
    pub(crate) fn remembered(&self) -> usize {
        self.sent.len()
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

    /// Issue 19: the history was trimmed only when it held `frames` sends, so
    /// with a large limit every send (every heartbeat answer) stayed for the
    /// connection's life. It holds only what is inside the window.
    #[test]
    fn history_is_bounded_by_the_sends_inside_the_window() {
        let per = Duration::from_secs(1);
        let mut limiter = RateLimiter::new(RateLimit {
            frames: 1_000_000,
            per,
        });
        let start = Instant::now();
        let every = Duration::from_millis(100);
        let mut now = start;
        for _ in 0..10_000 {
            assert_eq!(limiter.next_slot(now), now, "far under the limit");
            limiter.record(now);
            // Sends in (now - per, now]: 10 at one send per 100 ms.
            assert!(limiter.remembered() <= 10, "{}", limiter.remembered());
            now += every;
        }
        // A long quiet spell: the next send finds (and keeps) only itself.
        now += Duration::from_secs(3600);
        limiter.record(now);
        assert_eq!(limiter.remembered(), 1);
        // A burst still counts every send inside the window against the limit.
        let mut tight = RateLimiter::new(RateLimit { frames: 3, per });
        for _ in 0..3 {
            tight.record(start);
        }
        assert_eq!(tight.next_slot(start), start + per);
        assert_eq!(tight.next_slot(start + per), start + per);
        tight.record(start + per);
        assert_eq!(
            tight.remembered(),
            1,
            "the three at `start` left the window"
        );
    }
}
