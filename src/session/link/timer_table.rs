//! Every deadline of one connection, in one table: the one answer to "when
//! must the driver wake me" ([`TimerTable::next_deadline`]).
//!
//! Rules, and why:
//! - **One place.** Each kind of deadline the session keeps is a [`Timer`]
//!   slot (armed or not); requests and subscribes, of which many can be in
//!   flight, share one ordered set. Nothing else in the session stores a
//!   deadline, so nothing can be forgotten when the driver asks when to wake.
//! - **The close handshake overrides the rest.** While the close deadline is
//!   armed it is the only deadline reported: anything else already due would
//!   wake the driver again at once, forever (a busy loop until the close
//!   deadline, endless on a clock that only moves while the task waits).
//! - **No per-frame cost.** The idle and stale watches are ticks that compare
//!   counters (`timers.rs`, `stale.rs`); no frame arms or moves a timer.
//! - **Not here:** when the next queued frame may be written. That slot is
//!   not stored but follows from the outbound queue's two fronts and its
//!   limiters' history (`outbound.rs`; which lane goes next depends on
//!   whether the operations window is open at `now`); a stored copy would
//!   have to be worked out again on every push, write and withdrawal. Nor is
//!   it a timer that fires: at the slot the driver only asks for the frame,
//!   it hands in no input. The core reports it beside this table (its
//!   `next_write_at`; `SessionCore`'s contract says why in full).
//!
//! Memory: five slots, and one request deadline per request written on this
//! connection (bounded by the outbound queue and the request timeout).

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use super::super::deadline::later;
use crate::subscription::ReqId;

/// The kinds of deadline a connection keeps, besides its requests'.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(in crate::session) enum Timer {
    /// The peer must answer our close by then (armed once closing).
    Close,
    /// Our ping must be answered by then (armed when a ping is written).
    Pong,
    /// The next ping is due.
    Ping,
    /// The idle watch's next tick.
    Idle,
    /// The stale watch's next tick.
    Stale,
}

impl Timer {
    const COUNT: usize = 5;

    fn slot(self) -> usize {
        self as usize
    }
}

/// The deadlines of one connection (see the module docs).
#[derive(Debug, Default)]
pub(in crate::session) struct TimerTable {
    slots: [Option<Instant>; Timer::COUNT],
    /// The deadlines of requests and subscribes written, earliest first.
    requests: BTreeSet<(Instant, ReqId)>,
}

impl TimerTable {
    /// Arms `timer` for `at` (replacing what it was armed for).
    pub(in crate::session) fn set(&mut self, timer: Timer, at: Instant) {
        self.slots[timer.slot()] = Some(at);
    }

    /// Disarms `timer`.
    pub(in crate::session) fn stop(&mut self, timer: Timer) {
        self.slots[timer.slot()] = None;
    }

    /// When `timer` is armed for, if it is.
    pub(in crate::session) fn get(&self, timer: Timer) -> Option<Instant> {
        self.slots[timer.slot()]
    }

    /// Whether `timer` is armed and its deadline is at or before `now`.
    pub(in crate::session) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// Moves `timer`, if armed, later by `by`.
    pub(in crate::session) fn delay(&mut self, timer: Timer, by: Duration) {
        if let Some(at) = &mut self.slots[timer.slot()] {
            *at = later(*at, by);
        }
    }

    /// Arms the deadline of request `req_id` for `at`.
    pub(in crate::session) fn set_request(&mut self, req_id: ReqId, at: Instant) {
        self.requests.insert((at, req_id));
    }

    /// The earliest request whose deadline is at or before `now`, disarmed.
    pub(in crate::session) fn pop_expired_request(&mut self, now: Instant) -> Option<ReqId> {
        let &(at, req_id) = self.requests.first()?;
        if at > now {
            return None;
        }
        self.requests.pop_first();
        Some(req_id)
    }

    /// When the earliest armed deadline falls; only the close deadline while
    /// it is armed (see the module docs). `None` when nothing is armed.
    pub(in crate::session) fn next_deadline(&self) -> Option<Instant> {
        if let Some(close) = self.get(Timer::Close) {
            return Some(close);
        }
        let requests = self.requests.first().map(|(at, _)| *at);
        self.slots.iter().copied().chain([requests]).flatten().min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_deadline_is_the_earliest_armed_one_and_close_overrides() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut table = TimerTable::default();
        assert_eq!(table.next_deadline(), None);
        table.set(Timer::Ping, t0 + 5 * s);
        table.set(Timer::Idle, t0 + 3 * s);
        table.set_request(ReqId::from(7), t0 + 2 * s);
        assert_eq!(table.next_deadline(), Some(t0 + 2 * s));
        assert_eq!(table.pop_expired_request(t0 + s), None);
        assert_eq!(table.pop_expired_request(t0 + 2 * s), Some(ReqId::from(7)));
        assert_eq!(table.next_deadline(), Some(t0 + 3 * s));
        table.stop(Timer::Idle);
        table.delay(Timer::Ping, s);
        assert_eq!(table.next_deadline(), Some(t0 + 6 * s));
        assert!(!table.is_expired(Timer::Ping, t0 + 5 * s));
        assert!(table.is_expired(Timer::Ping, t0 + 6 * s));
        table.set(Timer::Close, t0 + 10 * s);
        assert_eq!(table.next_deadline(), Some(t0 + 10 * s));
    }
}
