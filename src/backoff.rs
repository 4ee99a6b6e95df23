//! The reconnect delay policy: exponential growth, jitter, a hard cap, an
//! optional attempt limit, and a reset that only a stable connection earns.
//!
//! We keep our own small policy instead of a crate: the `backoff` crate is
//! unmaintained, and `backon`'s jitter can exceed its cap and cannot reset.
//!
//! The delay before attempt `n` (counting from 0) is
//! `base = min(cap, initial * factor^n)`, then `delay = base * (1 - jitter * u)`
//! with `u` uniform in `[0, 1)`. The clamp comes *before* the jitter, so the
//! delay never exceeds the cap and the spread survives at the cap (clients that
//! all hit the cap still spread out instead of reconnecting in lock step).
//!
//! Two counters, two jobs (see [`Outcome`]):
//!
//! - **failed attempts** count consecutive attempts that never became a working
//!   session (connect, TLS or handshake failed, or the connection died before
//!   its subscriptions were answered). Only they count towards `max_attempts`,
//!   and any working session clears them however short it was: a venue that
//!   keeps accepting us is never given up on.
//! - **growth** is the exponent `n` above. Every retry raises it, working
//!   session or not, so a flapping venue is not hammered; only a session that
//!   stayed up for `reset_after` clears it.
//!
//! The first retry after such a healthy session goes out almost at once: its
//! delay is uniform in `[0, min(initial, QUICK_WINDOW)]` (times `jitter`),
//! enough to spread a fleet that dropped together without the hundreds of
//! milliseconds a full-jitter first step costs an isolated drop. A second
//! consecutive failure gets the full jittered backoff from `initial` on.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::error::Error;

/// The reconnect backoff policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// Delay base for the first retry. Default 500 ms.
    pub initial: Duration,
    /// Upper bound of every delay. Default 30 s.
    pub cap: Duration,
    /// Growth per attempt. Default 2.0.
    pub factor: f64,
    /// Fraction of the base that is randomised away: 1.0 is "full jitter"
    /// (uniform in `[0, base]`), 0.0 is none. Default 1.0.
    pub jitter: f64,
    /// Give up after this many consecutive attempts that never became a
    /// working session. A session that worked (every subscription answered)
    /// resets the count, however short it was. `None` retries forever.
    /// Default `Some(10)`.
    pub max_attempts: Option<u32>,
    /// A connection must stay up this long before the delay starts over, so a
    /// server that accepts and then drops keeps backing off (up to the cap).
    /// After such a healthy session the first retry goes out within a few
    /// milliseconds. Default 30 s.
    pub reset_after: Duration,
    /// Seed for the jitter RNG, for reproducible delays. Default `None` (OS entropy).
    pub seed: Option<u64>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            factor: 2.0,
            jitter: 1.0,
            max_attempts: Some(10),
            reset_after: Duration::from_secs(30),
            seed: None,
        }
    }
}

impl Backoff {
    /// A policy with the given initial delay and cap, other fields default.
    pub fn new(initial: Duration, cap: Duration) -> Self {
        Backoff {
            initial,
            cap,
            ..Backoff::default()
        }
    }

    /// Sets the attempt limit (`None`: retry forever).
    pub fn max_attempts(mut self, max: Option<u32>) -> Self {
        self.max_attempts = max;
        self
    }

    /// Sets the jitter fraction (0.0 to 1.0).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the growth factor (at least 1.0).
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Sets how long a connection must stay healthy before the counter resets.
    pub fn reset_after(mut self, reset_after: Duration) -> Self {
        self.reset_after = reset_after;
        self
    }

    /// Seeds the jitter RNG.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// No delay at all (for tests and benchmarks on loopback).
    pub fn immediate() -> Self {
        Backoff {
            initial: Duration::ZERO,
            cap: Duration::ZERO,
            jitter: 0.0,
            ..Backoff::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.cap < self.initial {
            return Err(Error::Config(format!(
                "backoff cap ({:?}) must not be below the initial delay ({:?})",
                self.cap, self.initial
            )));
        }
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return Err(Error::Config(
                "backoff factor must be a finite number >= 1.0".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::Config(
                "backoff jitter must be within 0.0..=1.0".into(),
            ));
        }
        if self.max_attempts == Some(0) {
            return Err(Error::Config(
                "backoff max_attempts must be at least 1 (or None)".into(),
            ));
        }
        Ok(())
    }

    /// The un-jittered delay before retry number `attempt` (0-based), clamped to the cap.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        // powi on a large exponent saturates to infinity; the clamp handles it.
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * self.factor.powi(exponent);
        let cap = self.cap.as_secs_f64();
        // The cap is clamped by `Config::build`; a policy used on its own may
        // hold one too large for f64 seconds, which must not panic either.
        let secs = if secs.is_finite() { secs.min(cap) } else { cap };
        Duration::try_from_secs_f64(secs).map_or(self.cap, |d| d.min(self.cap))
    }
}

/// The widest window of the quick first retry after a healthy session.
pub(crate) const QUICK_WINDOW: std::time::Duration = Duration::from_millis(5);

/// What ended before the next delay is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A connection attempt failed (token, connect, TLS, handshake).
    AttemptFailed,
    /// A connected session ended.
    SessionEnded {
        /// How long it was up.
        healthy_for: Duration,
        /// Whether it worked: every subscription it replayed was answered.
        worked: bool,
    },
}

/// The mutable side of a [`Backoff`]: the counters and the RNG.
#[derive(Debug)]
pub(crate) struct BackoffState {
    policy: Backoff,
    /// Consecutive attempts that never became a working session.
    failures: u32,
    /// The exponent of the next full delay.
    growth: u32,
    rng: StdRng,
}

impl BackoffState {
    pub(crate) fn new(policy: Backoff) -> Self {
        let rng = match policy.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            // Without OS entropy we still want jitter, just not reproducible jitter.
            None => StdRng::try_from_rng(&mut rand::rngs::SysRng).unwrap_or_else(|_| {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                StdRng::seed_from_u64(nanos)
            }),
        };
        BackoffState {
            policy,
            failures: 0,
            growth: 0,
            rng,
        }
    }

    /// Consecutive attempts that never became a working session.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// Records how the last attempt or session ended and returns the delay
    /// before the next attempt, or `None` when `max_attempts` consecutive
    /// attempts failed.
    pub(crate) fn next_delay(&mut self, outcome: Outcome) -> Option<Duration> {
        let quick = match outcome {
            Outcome::AttemptFailed => {
                self.failures = self.failures.saturating_add(1);
                false
            }
            Outcome::SessionEnded {
                healthy_for,
                worked,
            } => {
                if worked {
                    self.failures = 0;
                } else {
                    self.failures = self.failures.saturating_add(1);
                }
                let healthy = healthy_for >= self.policy.reset_after;
                if healthy {
                    self.growth = 0;
                }
                healthy && worked
            }
        };
        if self
            .policy
            .max_attempts
            .is_some_and(|max| self.failures >= max)
        {
            return None;
        }
        let u: f64 = self.rng.random_range(0.0..1.0);
        if quick {
            // Growth stays 0: a second failure gets the full first step.
            let window = self.policy.initial.min(QUICK_WINDOW);
            return Some(window.mul_f64(self.policy.jitter * u));
        }
        let base = self.policy.base_delay(self.growth);
        self.growth = self.growth.saturating_add(1);
        Some(base.mul_f64(1.0 - self.policy.jitter * u))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Backoff {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(2))
            .max_attempts(None)
            .seed(7)
    }

    #[test]
    fn delays_stay_within_the_exponential_bound_and_never_exceed_the_cap() {
        let p = policy();
        let mut state = BackoffState::new(p.clone());
        for attempt in 0..200u32 {
            let delay = state
                .next_delay(Outcome::AttemptFailed)
                .expect("unlimited attempts");
            let bound = p.base_delay(attempt);
            assert!(delay <= bound, "attempt {attempt}: {delay:?} > {bound:?}");
            assert!(delay <= p.cap);
        }
    }

    #[test]
    fn the_spread_survives_at_the_cap() {
        let mut state = BackoffState::new(policy());
        for _ in 0..20 {
            state.next_delay(Outcome::AttemptFailed);
        }
        let at_cap: Vec<Duration> = (0..200)
            .filter_map(|_| state.next_delay(Outcome::AttemptFailed))
            .collect();
        let min = at_cap.iter().min().copied().unwrap_or_default();
        let max = at_cap.iter().max().copied().unwrap_or_default();
        assert!(max <= Duration::from_secs(2));
        assert!(max > Duration::from_millis(1800), "max {max:?}");
        assert!(
            min < Duration::from_millis(200),
            "min {min:?}: jitter collapsed at the cap"
        );
    }

    #[test]
    fn without_jitter_the_delays_double_then_clamp() {
        let mut state = BackoffState::new(policy().jitter(0.0));
        let delays: Vec<u128> = (0..7)
            .filter_map(|_| state.next_delay(Outcome::AttemptFailed))
            .map(|d| d.as_millis())
            .collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1600, 2000, 2000]);
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let mut a = BackoffState::new(policy());
        let mut b = BackoffState::new(policy());
        for _ in 0..50 {
            assert_eq!(
                a.next_delay(Outcome::AttemptFailed),
                b.next_delay(Outcome::AttemptFailed)
            );
        }
    }

    #[test]
    fn max_attempts_stops_retrying() {
        let mut state = BackoffState::new(policy().max_attempts(Some(3)));
        assert!(state.next_delay(Outcome::AttemptFailed).is_some());
        assert!(state.next_delay(Outcome::AttemptFailed).is_some());
        assert!(state.next_delay(Outcome::AttemptFailed).is_none());
        assert_eq!(state.failures(), 3);
    }

    fn ended(secs: u64, worked: bool) -> Outcome {
        Outcome::SessionEnded {
            healthy_for: Duration::from_secs(secs),
            worked,
        }
    }

    #[test]
    fn only_a_stable_connection_restarts_the_delays() {
        let p = policy().jitter(0.0).reset_after(Duration::from_secs(5));
        let mut state = BackoffState::new(p);
        for _ in 0..4 {
            state.next_delay(Outcome::AttemptFailed);
        }
        // A flapping connection that worked: up for 1 s, the delay still grows.
        assert_eq!(
            state.next_delay(ended(1, true)),
            Some(Duration::from_millis(1600))
        );
        assert_eq!(state.failures(), 0, "a working session clears the count");
        // A stable one: the first retry is immediate (no jitter here), the
        // next failure starts the delays over.
        assert_eq!(state.next_delay(ended(5, true)), Some(Duration::ZERO));
        assert_eq!(
            state.next_delay(Outcome::AttemptFailed),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            state.next_delay(Outcome::AttemptFailed),
            Some(Duration::from_millis(200))
        );
    }

    #[test]
    fn working_sessions_never_exhaust_the_attempts_and_delays_stay_capped() {
        let p = policy().max_attempts(Some(3));
        let mut state = BackoffState::new(p.clone());
        for _ in 0..10_000 {
            let delay = state.next_delay(ended(0, true)).expect("never gives up");
            assert!(delay <= p.cap);
        }
        // Sessions that never worked are failed attempts.
        assert!(state.next_delay(ended(0, false)).is_some());
        assert!(state.next_delay(Outcome::AttemptFailed).is_some());
        assert!(state.next_delay(ended(0, false)).is_none());
    }

    #[test]
    fn the_quick_first_retry_stays_within_its_window() {
        let p = Backoff::default().seed(3);
        let mut state = BackoffState::new(p.clone());
        let mut spread = std::collections::HashSet::new();
        for _ in 0..200 {
            let quick = state.next_delay(ended(30, true)).expect("retries");
            assert!(quick <= QUICK_WINDOW, "{quick:?}");
            spread.insert(quick);
        }
        assert!(spread.len() > 100, "the quick retry is still jittered");
        let second = state.next_delay(Outcome::AttemptFailed).expect("retries");
        assert!(second <= p.initial, "{second:?}");
    }

    #[test]
    fn huge_attempt_numbers_clamp_instead_of_overflowing() {
        let p = policy();
        assert_eq!(p.base_delay(u32::MAX), p.cap);
    }
}
