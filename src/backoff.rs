//! The reconnect delay policy: exponential growth, jitter, a hard cap, an
//! optional attempt limit, a reset that only a stable connection earns, and a
//! quick return to a venue whose sessions work but are short.
//!
//! We keep our own small policy instead of a crate: the `backoff` crate is
//! unmaintained, and `backon`'s jitter can exceed its cap and cannot reset.
//!
//! The full delay before retry `n` (counting from 0) is
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
//! - **growth** is the exponent `n` above. Every full delay raises it; only a
//!   session that stayed up for `reset_after` clears it, so a venue that keeps
//!   dropping us before we could use it backs off up to the cap.
//!
//! Which delay comes next depends on how the last attempt ended:
//!
//! 1. After a **healthy** session (up for `reset_after` and working), the first
//!    retry is *quick*: uniform in `[0, min(initial, QUICK_WINDOW)]` (times
//!    `jitter`), enough to spread a fleet that dropped together without the
//!    hundreds of milliseconds a full-jitter first step costs an isolated
//!    drop. Growth starts over, so a second consecutive failure gets the full
//!    first step.
//! 2. After a **short working** session of length `L` (subscriptions
//!    answered, dropped before `reset_after`), the retry is quick as well, as
//!    long as the wait that needs (the quick delay, or the attempt spacing
//!    below if that is longer) is no longer than `L`. A venue that streams for
//!    a second and drops us then sees us back within milliseconds, connected
//!    most of the time instead of waiting out a delay grown to the cap. Growth
//!    is left as it is: if the venue then stops answering, the backoff goes on
//!    from where it was.
//! 3. Otherwise (an attempt failed, a session never worked, or a working
//!    session was shorter than the wait it would need) the full jittered delay
//!    applies and growth rises: a venue that drops us within milliseconds
//!    backs off to the cap.
//!
//! Whatever the path, attempts are **spaced**: no more than two attempts start
//! within any `min(2 * initial, 1 s)` (one second with the defaults, so at most
//! two attempts per second; none with [`Backoff::immediate`]). Each delay is
//! therefore at least what is left of that window since the start of the
//! attempt before the last one. The spacing never pushes a delay above the cap.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;

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
    /// milliseconds. A shorter session that worked also earns a quick retry
    /// when the wait is no longer than the session was (see the module
    /// docs). Default 30 s.
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

    /// The window in which at most two attempts may start:
    /// `min(2 * initial, 1 s)`, so at most two attempts per second with the
    /// defaults and no spacing with [`Backoff::immediate`].
    pub fn attempt_window(&self) -> Duration {
        self.initial.saturating_mul(2).min(MAX_ATTEMPT_WINDOW)
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

/// The widest window of the quick first retry after a healthy or short
/// working session.
pub(crate) const QUICK_WINDOW: Duration = Duration::from_millis(5);

/// The longest [`Backoff::attempt_window`]: never more than two attempts per second.
const MAX_ATTEMPT_WINDOW: Duration = Duration::from_secs(1);

/// How long `error` asks to wait before the next attempt: its own
/// Retry-After (a refused handshake, a venue lockout), or the backoff `cap`
/// for a close 1013 "try again later", which names no duration.
pub(crate) fn retry_hint(error: &Error, cap: Duration) -> Option<Duration> {
    match error {
        Error::Closed { code: 1013, .. } => Some(cap),
        other => other.retry_after(),
    }
}

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

/// Which kind of delay comes next (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// After a healthy session: quick, growth already reset.
    Quick,
    /// After a short working session that lasted this long: quick if the
    /// wait is no longer than the session was, else full.
    Short(Duration),
    /// The full jittered delay; growth rises.
    Full,
}

/// The mutable side of a [`Backoff`]: the counters, the last attempt starts
/// and the RNG. Sans-I/O: the caller says when attempts start and passes the
/// time to every decision, so the rules run the same on a paused clock.
///
/// The rules (module docs): a healthy session earns a quick retry and resets
/// the growth; a short working session of length `L` earns a quick retry if
/// the wait is at most `L`; everything else gets the full jittered delay and
/// raises the growth; no delay lets a third attempt start within
/// [`Backoff::attempt_window`] of the attempt two back; only attempts that
/// never worked count towards `max_attempts`.
#[derive(Debug)]
pub(crate) struct BackoffState {
    policy: Backoff,
    /// Consecutive attempts that never became a working session.
    failures: u32,
    /// The exponent of the next full delay.
    growth: u32,
    /// When the attempt before the last one started (the spacing is measured from it).
    previous_start: Option<Instant>,
    /// When the last attempt started.
    last_start: Option<Instant>,
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
            previous_start: None,
            last_start: None,
            rng,
        }
    }

    /// Records that a connection attempt starts at `now` (the spacing of the
    /// next attempts is measured from it).
    pub(crate) fn attempt_started(&mut self, now: Instant) {
        self.previous_start = self.last_start;
        self.last_start = Some(now);
    }

    /// The shortest delay from `now` that keeps the next attempt at least
    /// [`Backoff::attempt_window`] after the attempt before the last one, so
    /// no window of that length holds three attempt starts.
    fn spacing(&self, now: Instant) -> Duration {
        let Some(previous) = self.previous_start else {
            return Duration::ZERO;
        };
        let window = self.policy.attempt_window();
        previous
            .checked_add(window)
            .map_or(window, |earliest| earliest.saturating_duration_since(now))
            .min(self.policy.cap)
    }

    /// Consecutive attempts that never became a working session.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// Records how the last attempt or session ended (at `now`) and returns
    /// the delay before the next attempt, or `None` when `max_attempts`
    /// consecutive attempts failed.
    pub(crate) fn next_delay(&mut self, outcome: Outcome, now: Instant) -> Option<Duration> {
        let path = match outcome {
            Outcome::AttemptFailed => {
                self.failures = self.failures.saturating_add(1);
                Path::Full
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
                match (worked, healthy) {
                    (true, true) => Path::Quick,
                    (true, false) => Path::Short(healthy_for),
                    (false, _) => Path::Full,
                }
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
        let spacing = self.spacing(now);
        let quick = self
            .policy
            .initial
            .min(QUICK_WINDOW)
            .mul_f64(self.policy.jitter * u)
            .max(spacing);
        match path {
            // Growth stays 0: a second failure gets the full first step.
            Path::Quick => return Some(quick),
            // The wait after a working session is no longer than the session.
            Path::Short(lasted) if quick <= lasted => return Some(quick),
            Path::Short(_) | Path::Full => {}
        }
        let base = self.policy.base_delay(self.growth);
        self.growth = self.growth.saturating_add(1);
        Some(base.mul_f64(1.0 - self.policy.jitter * u).max(spacing))
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
                .next_delay(Outcome::AttemptFailed, Instant::now())
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
            state.next_delay(Outcome::AttemptFailed, Instant::now());
        }
        let at_cap: Vec<Duration> = (0..200)
            .filter_map(|_| state.next_delay(Outcome::AttemptFailed, Instant::now()))
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
            .filter_map(|_| state.next_delay(Outcome::AttemptFailed, Instant::now()))
            .map(|d| d.as_millis())
            .collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1600, 2000, 2000]);
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let mut a = BackoffState::new(policy());
        let mut b = BackoffState::new(policy());
        let now = Instant::now();
        for _ in 0..50 {
            assert_eq!(
                a.next_delay(Outcome::AttemptFailed, now),
                b.next_delay(Outcome::AttemptFailed, now)
            );
        }
    }

    #[test]
    fn max_attempts_stops_retrying() {
        let mut state = BackoffState::new(policy().max_attempts(Some(3)));
        assert!(state
            .next_delay(Outcome::AttemptFailed, Instant::now())
            .is_some());
        assert!(state
            .next_delay(Outcome::AttemptFailed, Instant::now())
            .is_some());
        assert!(state
            .next_delay(Outcome::AttemptFailed, Instant::now())
            .is_none());
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
            state.next_delay(Outcome::AttemptFailed, Instant::now());
        }
        // A short connection that worked: up for 1 s, the retry is quick
        // (no jitter here: at once) and the growth stays where it was.
        assert_eq!(
            state.next_delay(ended(1, true), Instant::now()),
            Some(Duration::ZERO)
        );
        assert_eq!(state.failures(), 0, "a working session clears the count");
        assert_eq!(
            state.next_delay(Outcome::AttemptFailed, Instant::now()),
            Some(Duration::from_millis(1600))
        );
        // A stable one: the first retry is immediate (no jitter here), the
        // next failure starts the delays over.
        assert_eq!(
            state.next_delay(ended(5, true), Instant::now()),
            Some(Duration::ZERO)
        );
        assert_eq!(
            state.next_delay(Outcome::AttemptFailed, Instant::now()),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            state.next_delay(Outcome::AttemptFailed, Instant::now()),
            Some(Duration::from_millis(200))
        );
    }

    #[test]
    fn working_sessions_never_exhaust_the_attempts_and_delays_stay_capped() {
        let p = policy().max_attempts(Some(3));
        let mut state = BackoffState::new(p.clone());
        for _ in 0..10_000 {
            let delay = state
                .next_delay(ended(0, true), Instant::now())
                .expect("never gives up");
            assert!(delay <= p.cap);
        }
        // Sessions that never worked are failed attempts.
        assert!(state.next_delay(ended(0, false), Instant::now()).is_some());
        assert!(state
            .next_delay(Outcome::AttemptFailed, Instant::now())
            .is_some());
        assert!(state.next_delay(ended(0, false), Instant::now()).is_none());
    }

    #[test]
    fn the_quick_first_retry_stays_within_its_window() {
        let p = Backoff::default().seed(3);
        let mut state = BackoffState::new(p.clone());
        let mut spread = std::collections::HashSet::new();
        for _ in 0..200 {
            let quick = state
                .next_delay(ended(30, true), Instant::now())
                .expect("retries");
            assert!(quick <= QUICK_WINDOW, "{quick:?}");
            spread.insert(quick);
        }
        assert!(spread.len() > 100, "the quick retry is still jittered");
        let second = state
            .next_delay(Outcome::AttemptFailed, Instant::now())
            .expect("retries");
        assert!(second <= p.initial, "{second:?}");
    }

    #[test]
    fn huge_attempt_numbers_clamp_instead_of_overflowing() {
        let p = policy();
        assert_eq!(p.base_delay(u32::MAX), p.cap);
    }

    /// What a simulated venue did to a client following `BackoffState`.
    struct Run {
        /// When each attempt started.
        starts: Vec<Instant>,
        /// Total time connected.
        up: Duration,
        /// Each drop to the next connection.
        outages: Vec<Duration>,
        /// Every delay the state returned.
        delays: Vec<Duration>,
        elapsed: Duration,
    }

    impl Run {
        fn connected(&self) -> f64 {
            self.up.as_secs_f64() / self.elapsed.as_secs_f64()
        }

        fn median_outage(&self) -> Duration {
            let mut outages = self.outages.clone();
            outages.sort();
            outages[outages.len() / 2]
        }

        /// The most attempts that started within any `window`.
        fn most_starts_within(&self, window: Duration) -> usize {
            (0..self.starts.len())
                .map(|i| {
                    self.starts[i..]
                        .iter()
                        .take_while(|t| **t < self.starts[i] + window)
                        .count()
                })
                .max()
                .unwrap_or(0)
        }
    }

    /// For `length` of simulated time: each attempt connects after 1 ms, its
    /// session lasts `session` and ends (`worked` or not), then the state's
    /// delay is waited out.
    fn simulate(policy: Backoff, length: Duration, session: Duration, worked: bool) -> Run {
        let connect = Duration::from_millis(1);
        let mut state = BackoffState::new(policy);
        let start = Instant::now();
        let mut now = start;
        let mut run = Run {
            starts: Vec::new(),
            up: Duration::ZERO,
            outages: Vec::new(),
            delays: Vec::new(),
            elapsed: Duration::ZERO,
        };
        while now < start + length {
            state.attempt_started(now);
            run.starts.push(now);
            now += connect;
            if let Some(dropped) = run.outages.last_mut() {
                *dropped = now - start - *dropped;
            }
            now += session;
            run.up += session;
            let outcome = Outcome::SessionEnded {
                healthy_for: session,
                worked,
            };
            let Some(delay) = state.next_delay(outcome, now) else {
                break;
            };
            run.delays.push(delay);
            // The drop time, turned into the outage once connected again.
            run.outages.push(now - start);
            now += delay;
        }
        // The last drop never reconnected within the run.
        run.outages.pop();
        run.elapsed = now - start;
        run
    }

    #[test]
    fn a_venue_that_drops_every_800_ms_sees_us_connected_almost_always() {
        let policy = Backoff::default().seed(19);
        let run = simulate(
            policy,
            Duration::from_secs(150),
            Duration::from_millis(800),
            true,
        );
        assert!(run.connected() >= 0.95, "connected {:.3}", run.connected());
        let median = run.median_outage();
        assert!(
            median < Duration::from_millis(20),
            "median outage {median:?}"
        );
        let worst = run.outages.iter().max().copied().unwrap_or_default();
        assert!(worst <= Duration::from_millis(6), "worst outage {worst:?}");
        assert!(run.most_starts_within(Duration::from_secs(1)) <= 2);
    }

    #[test]
    fn short_working_sessions_never_wait_longer_than_they_lasted_nor_exceed_two_attempts_a_second()
    {
        // From a third of the attempt window on: two sessions and their waits
        // fit in one window (shorter ones back off, see below).
        for millis in [340, 400, 499, 500, 700, 1000, 5000] {
            let session = Duration::from_millis(millis);
            let run = simulate(
                Backoff::default().seed(millis),
                Duration::from_secs(60),
                session,
                true,
            );
            for delay in &run.delays {
                assert!(*delay <= session, "{millis} ms sessions: waited {delay:?}");
            }
            assert!(
                run.most_starts_within(Duration::from_secs(1)) <= 2,
                "{millis} ms sessions"
            );
            // Connected at least half of the time, most of it from 500 ms on.
            let least = if millis >= 500 { 0.95 } else { 0.5 };
            assert!(
                run.connected() >= least,
                "{millis} ms sessions: connected {:.3}",
                run.connected()
            );
        }
    }

    #[test]
    fn working_sessions_that_drop_within_milliseconds_back_off_to_the_cap() {
        // Too short to be followed by a wait no longer than themselves
        // without a third attempt in the window.
        for millis in [0, 2, 100, 300] {
            let policy = Backoff::default().seed(4);
            let cap = policy.cap;
            let run = simulate(
                policy,
                Duration::from_secs(600),
                Duration::from_millis(millis),
                true,
            );
            assert!(run.most_starts_within(Duration::from_secs(1)) <= 2);
            // The full delays reach the cap's range; attempts thin out to a few a minute.
            assert!(
                run.delays.iter().any(|d| *d > cap / 2),
                "{millis} ms: {:?}",
                run.delays
            );
            let last_minute = run
                .starts
                .iter()
                .filter(|t| **t > run.starts[0] + run.elapsed - Duration::from_secs(60))
                .count();
            assert!(
                last_minute <= 12,
                "{millis} ms: {last_minute} attempts in the last minute"
            );
            assert!(
                run.connected() < 0.1,
                "{millis} ms: connected {:.4}",
                run.connected()
            );
        }
    }

    #[test]
    fn sessions_that_never_worked_back_off_to_the_cap_and_count_towards_max_attempts() {
        // However long they were up (short of `reset_after`).
        for millis in [0, 2, 800, 5000] {
            let policy = Backoff::default().seed(8).jitter(0.0);
            let run = simulate(
                policy.clone(),
                Duration::from_secs(3600),
                Duration::from_millis(millis),
                false,
            );
            let expected: Vec<Duration> = (0..9).map(|n| policy.base_delay(n)).collect();
            assert_eq!(run.delays, expected, "{millis} ms sessions");
            assert_eq!(run.starts.len(), 10, "gave up after max_attempts");
        }
    }

    #[test]
    fn no_mix_of_outcomes_starts_three_attempts_within_a_second() {
        let mut rng = StdRng::seed_from_u64(99);
        let mut state = BackoffState::new(Backoff::default().max_attempts(None).seed(1));
        let mut now = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..5_000 {
            state.attempt_started(now);
            starts.push(now);
            let lasted = Duration::from_micros(rng.random_range(0..2_000_000));
            now += lasted;
            let outcome = match rng.random_range(0..4) {
                0 => Outcome::AttemptFailed,
                1 => Outcome::SessionEnded {
                    healthy_for: lasted,
                    worked: false,
                },
                2 => ended(31, true),
                _ => Outcome::SessionEnded {
                    healthy_for: lasted,
                    worked: true,
                },
            };
            now += state.next_delay(outcome, now).expect("retries forever");
        }
        for pair in starts.windows(3) {
            assert!(pair[2] - pair[0] >= Duration::from_secs(1), "{pair:?}");
        }
    }

    #[test]
    fn immediate_has_no_spacing() {
        let mut state = BackoffState::new(Backoff::immediate().max_attempts(None));
        let now = Instant::now();
        for _ in 0..10 {
            state.attempt_started(now);
            assert_eq!(
                state.next_delay(Outcome::AttemptFailed, now),
                Some(Duration::ZERO)
            );
        }
    }

    #[test]
    fn the_spacing_never_exceeds_the_cap() {
        let p = Backoff::new(Duration::from_millis(50), Duration::from_millis(50))
            .max_attempts(None)
            .seed(2);
        assert_eq!(p.attempt_window(), Duration::from_millis(100));
        let mut state = BackoffState::new(p);
        let now = Instant::now();
        for _ in 0..10 {
            state.attempt_started(now);
            let delay = state
                .next_delay(Outcome::AttemptFailed, now)
                .expect("retries");
            assert!(delay <= Duration::from_millis(50), "{delay:?}");
        }
    }
}
