//! The reconnect rules as the README and `backoff.rs`'s module docs state
//! them, for a policy without jitter (every delay is then exact):
//!
//! - attempt `n` is the count of consecutive failed attempts plus one; an
//!   attempt that failed and a session that never answered its replayed
//!   subscriptions are failures, a working session clears them;
//! - `max_attempts` consecutive failures give up, with those failures and the
//!   last error;
//! - a close on request stops; a permanent close code stops with its error
//!   (the default set: 1002, 1003, 1007-1010 and 4000-4999, or the
//!   configured rule);
//! - after a healthy session (up for `reset_after`, worked) the retry is
//!   quick (no jitter: zero) and the growth starts over; after a shorter
//!   working session it is quick if that wait is no longer than the session
//!   lasted; otherwise it is the full `min(cap, initial * factor^growth)` and
//!   the growth rises;
//! - no delay lets a third attempt start within `min(2 * initial, 1 s)` of
//!   the attempt two back (the spacing, never above the cap);
//! - a Retry-After, a close 1013 (the cap) or a hint the session saw
//!   lengthens the next delay to the latest "not before", once.

/// How a session ended, as the model sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MEnd {
    /// Closed on request.
    Closed,
    /// The peer closed with this code.
    Code(u16),
    /// The connection dropped (no close frame).
    Dropped,
}

/// What the model expects next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MAfter {
    /// Attempt again after this delay (in nanoseconds).
    Retry(u128),
    /// Stop without an error.
    Closed,
    /// Stop: a permanent close with this code.
    Permanent(u16),
    /// Give up after this many failures.
    GiveUp(u32),
}

/// The policy, in nanoseconds.
pub(crate) struct MPolicy {
    pub(crate) initial: u128,
    pub(crate) cap: u128,
    pub(crate) factor: u32,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) reset_after: u128,
    /// The configured permanent codes, or `None` for the default set.
    pub(crate) permanent: Option<Vec<u16>>,
}

/// The model's state; time is nanoseconds since the script began.
pub(crate) struct ReconnectModel {
    policy: MPolicy,
    failures: u32,
    growth: u32,
    starts: Vec<u128>,
    not_before: Option<u128>,
}

const MS: u128 = 1_000_000;

impl ReconnectModel {
    pub(crate) fn new(policy: MPolicy) -> Self {
        ReconnectModel {
            policy,
            failures: 0,
            growth: 0,
            starts: Vec::new(),
            not_before: None,
        }
    }

    pub(crate) fn attempt(&self) -> u32 {
        self.failures + 1
    }

    pub(crate) fn started(&mut self, at: u128) {
        self.starts.push(at);
    }

    /// A hint asks the next attempt to wait until `at`.
    pub(crate) fn wait_until(&mut self, at: u128) {
        self.not_before = Some(self.not_before.map_or(at, |t| t.max(at)));
    }

    fn permanent(&self, code: u16) -> bool {
        match &self.policy.permanent {
            Some(codes) => codes.contains(&code),
            None => matches!(code, 1002 | 1003 | 1007 | 1008 | 1009 | 1010 | 4000..=4999),
        }
    }

    fn base(&self) -> u128 {
        let mut delay = self.policy.initial;
        for _ in 0..self.growth {
            delay = delay.saturating_mul(u128::from(self.policy.factor));
            if delay >= self.policy.cap {
                break;
            }
        }
        delay.min(self.policy.cap)
    }

    fn spacing(&self, now: u128) -> u128 {
        let window = (2 * self.policy.initial).min(1000 * MS);
        let two_back = self.starts.len().checked_sub(2).map(|i| self.starts[i]);
        match two_back {
            Some(start) => (start + window).saturating_sub(now).min(self.policy.cap),
            None => 0,
        }
    }

    /// An attempt failed at `now`; `hint` is its Retry-After.
    pub(crate) fn attempt_failed(&mut self, hint: Option<u128>, now: u128) -> MAfter {
        self.failures += 1;
        self.delay(None, hint, now)
    }

    /// A session ended at `now` after `lasted`.
    pub(crate) fn session_ended(
        &mut self,
        end: MEnd,
        lasted: u128,
        worked: bool,
        now: u128,
    ) -> MAfter {
        let hint = match end {
            MEnd::Closed => return MAfter::Closed,
            MEnd::Code(code) if self.permanent(code) => return MAfter::Permanent(code),
            MEnd::Code(1013) => Some(self.policy.cap),
            MEnd::Code(_) | MEnd::Dropped => None,
        };
        if worked {
            self.failures = 0;
        } else {
            self.failures += 1;
        }
        let healthy = lasted >= self.policy.reset_after;
        if healthy {
            self.growth = 0;
        }
        let quick_if = match (worked, healthy) {
            (true, true) => Some(u128::MAX),
            (true, false) => Some(lasted),
            (false, _) => None,
        };
        self.delay(quick_if, hint, now)
    }

    /// The next delay: quick (zero, then spaced) when `quick_if` allows that
    /// wait, else full; lengthened by the hints.
    fn delay(&mut self, quick_if: Option<u128>, hint: Option<u128>, now: u128) -> MAfter {
        if let Some(hint) = hint {
            self.wait_until(now + hint);
        }
        if let Some(max) = self.policy.max_attempts {
            if self.failures >= max {
                return MAfter::GiveUp(self.failures);
            }
        }
        let spacing = self.spacing(now);
        let delay = match quick_if {
            Some(lasted) if spacing <= lasted => spacing,
            _ => {
                let full = self.base().max(spacing);
                self.growth += 1;
                full
            }
        };
        let asked = self.not_before.take().map_or(0, |t| t.saturating_sub(now));
        MAfter::Retry(delay.max(asked))
    }
}
