//! The outbound queue of one connection, in front of two limiters: the
//! outbound rate limit every venue frame spends, and the venue's budget of
//! subscribe operations per window ([`VenueLimits::subscribe_ops`](crate::protocol::VenueLimits)).
//!
//! Rules, and why:
//! - **One operation is one request frame.** A subscribe or unsubscribe
//!   request (a resync's pair too) spends one operation, however many topics
//!   it carries: OKX counts "'subscribe'/'unsubscribe'/'login' requests per
//!   connection", and WEEX's "operations" are its subscribe and unsubscribe
//!   requests (its adapter sends one topic per request, so the two readings
//!   agree there). Sources in `src/protocol/VENUES.md`.
//! - **Over budget, requests wait; nothing is dropped or refused.** A
//!   subscribe whose operation would break the window waits in order until the
//!   oldest operation of the window has left it (a strict sliding window, like
//!   the outbound rate limit). Its caller keeps waiting for the ack, whose
//!   deadline starts only when the frame is written, so a wait for the window
//!   is not a timeout. Refusing instead would make every caller re-implement
//!   the wait, and a reconnect's replay could not be refused at all.
//! - **Only operations wait for the window.** Pings, heartbeat answers,
//!   one-off sends and requests are not operations; while the window holds the
//!   operations back they go ahead of them (still paced by the outbound rate
//!   limit). While the window is open everything leaves in the order it was
//!   queued (pings and heartbeat answers jump the queue as before).
//! - **Per connection.** Both venues count per connection, so each connection
//!   starts with a fresh window: a reconnect's replay spends operations of the
//!   new connection's window, not of the old one's.
//! - **Nothing is sent for nobody.** With a window, a subscribe request whose
//!   subscriptions all ended before it was written is withdrawn (it would
//!   spend an operation, and its ack another one to unsubscribe).
//!
//! Memory: the operations limiter remembers at most `frames` instants. The
//! shell takes no command while [`OUTBOUND_LIMIT`] frames wait, not counting
//! requests the window holds back (an hour-long wait must not block `close`
//! or `send`); those are bounded by the subscriptions themselves, since a
//! withdrawn request leaves nothing behind.

use std::collections::VecDeque;

use tokio::time::Instant;
use tungstenite::Message;

use super::super::rate_limit::RateLimiter;
use crate::rate::RateLimit;
use crate::subscription::ReqId;

/// A frame waiting to be written.
pub(in crate::session) enum Outgoing {
    /// The answer to a venue heartbeat (rate limited; jumps the queue).
    Reply {
        text: String,
    },
    /// The on-connect handshake frames.
    Handshake(String),
    Subscribe {
        text: String,
        req_id: ReqId,
    },
    Unsubscribe {
        text: String,
    },
    /// An application-level ping (rate limited like any venue frame).
    Ping {
        text: String,
    },
    /// A WebSocket ping (not a venue message: not rate limited).
    WsPing,
    /// A one-off frame (text or binary); `rate_limited: false` skips the
    /// limiter's budget (it still keeps its place in the queue).
    Send {
        message: Message,
        send_id: u64,
        rate_limited: bool,
    },
    Request {
        text: String,
        req_id: ReqId,
    },
    /// Close 1000 (not rate limited; written alone once closing).
    Close,
}

impl Outgoing {
    /// Whether this frame spends one of the venue's subscribe operations
    /// .
    fn is_op(&self) -> bool {
        matches!(
            self,
            Outgoing::Subscribe { .. } | Outgoing::Unsubscribe { .. }
        )
    }

    /// Whether this frame spends the outbound rate limit's budget.
    fn rate_limited(&self) -> bool {
        match self {
            Outgoing::WsPing | Outgoing::Close => false,
            Outgoing::Send { rate_limited, .. } => *rate_limited,
            _ => true,
        }
    }
}

/// How many frames may wait before the shell stops taking commands.
pub(super) const OUTBOUND_LIMIT: usize = 1024;

/// A queued frame and its place in the order of queueing (0 for frames that
/// jump the queue).
type Queued = (u64, Outgoing);

/// The frames waiting to be written and the limiters they wait for.
pub(super) struct Outbound {
    /// Everything but subscribe and unsubscribe requests.
    frames: VecDeque<Queued>,
    /// Subscribe and unsubscribe requests, in order.
    ops: VecDeque<Queued>,
    next_seq: u64,
    limiter: RateLimiter,
    ops_limiter: Option<RateLimiter>,
}

/// Which queue the next frame comes from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lane {
    Frames,
    Ops,
}

impl Outbound {
    pub(super) fn new(rate_limit: RateLimit, subscribe_ops: Option<RateLimit>) -> Self {
        Outbound {
            frames: VecDeque::new(),
            ops: VecDeque::new(),
            next_seq: 1,
            limiter: RateLimiter::new(rate_limit),
            ops_limiter: subscribe_ops.map(RateLimiter::new),
        }
    }

    /// Queues `outgoing` behind everything queued so far.
    pub(super) fn push_back(&mut self, outgoing: Outgoing) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if outgoing.is_op() {
            self.ops.push_back((seq, outgoing));
        } else {
            self.frames.push_back((seq, outgoing));
        }
    }

    /// Queues `outgoing` (not an operation) ahead of everything.
    pub(super) fn push_front(&mut self, outgoing: Outgoing) {
        debug_assert!(!outgoing.is_op());
        self.frames.push_front((0, outgoing));
    }

    /// Queues a heartbeat answer behind earlier answers and ahead of
    /// everything else, unless `limit` answers already wait.
    pub(super) fn push_reply(&mut self, text: String, limit: usize) -> bool {
        let waiting = self
            .frames
            .iter()
            .take_while(|(_, o)| matches!(o, Outgoing::Reply { .. }))
            .count();
        if waiting >= limit {
            return false;
        }
        self.frames.insert(waiting, (0, Outgoing::Reply { text }));
        true
    }

    /// Whether the venue declared an operations window.
    pub(super) fn has_ops_window(&self) -> bool {
        self.ops_limiter.is_some()
    }

    /// Removes the unwritten subscribe request `req_id`; whether it was there.
    pub(super) fn withdraw_subscribe(&mut self, req_id: ReqId) -> bool {
        let at = self
            .ops
            .iter()
            .position(|(_, o)| matches!(o, Outgoing::Subscribe { req_id: r, .. } if *r == req_id));
        at.and_then(|at| self.ops.remove(at)).is_some()
    }

    /// How many frames wait.
    pub(super) fn len(&self) -> usize {
        self.frames.len() + self.ops.len()
    }

    /// Removes every waiting frame, in no particular order.
    pub(super) fn drain(&mut self) -> Vec<Outgoing> {
        let frames = self.frames.drain(..).chain(self.ops.drain(..));
        frames.map(|(_, o)| o).collect()
    }

    /// When `outgoing` may go as far as the outbound rate limit goes.
    fn slot(&self, outgoing: &Outgoing, now: Instant) -> Instant {
        if outgoing.rate_limited() {
            self.limiter.next_slot(now)
        } else {
            now
        }
    }

    /// When the operations window allows the next operation.
    fn ops_slot(&self, now: Instant) -> Instant {
        self.ops_limiter
            .as_ref()
            .map_or(now, |limiter| limiter.next_slot(now))
    }

    /// The queue the next frame comes from, and when it may go.
    fn next(&self, now: Instant) -> Option<(Lane, Instant)> {
        let frame = self.frames.front();
        let op = self.ops.front();
        let ops_at = self.ops_slot(now);
        match (frame, op) {
            (None, None) => None,
            (Some((_, f)), None) => Some((Lane::Frames, self.slot(f, now))),
            (None, Some((_, o))) => Some((Lane::Ops, self.slot(o, now).max(ops_at))),
            (Some((fs, f)), Some((os, o))) => {
                if ops_at <= now && os < fs {
                    // The window is open: the older frame goes first.
                    Some((Lane::Ops, self.slot(o, now)))
                } else if ops_at <= now {
                    Some((Lane::Frames, self.slot(f, now)))
                } else {
                    // The window holds the operations back; the rest goes on.
                    let frame_at = self.slot(f, now);
                    let op_at = self.slot(o, now).max(ops_at);
                    if op_at < frame_at {
                        Some((Lane::Ops, op_at))
                    } else {
                        Some((Lane::Frames, frame_at))
                    }
                }
            }
        }
    }

    /// How many operations the window holds back at `now` (0 while it is open).
    pub(super) fn ops_held(&self, now: Instant) -> usize {
        if self.ops.is_empty() || self.ops_slot(now) <= now {
            0
        } else {
            self.ops.len()
        }
    }

    /// When the next frame may be written: `None` when nothing waits.
    pub(super) fn next_write_at(&self, now: Instant) -> Option<Instant> {
        self.next(now).map(|(_, at)| at)
    }

    /// The next frame, if one is due at `now`; its budget is spent.
    pub(super) fn take(&mut self, now: Instant) -> Option<Outgoing> {
        let (from, at) = self.next(now)?;
        if at > now {
            return None;
        }
        let (_, outgoing) = match from {
            Lane::Frames => self.frames.pop_front()?,
            Lane::Ops => self.ops.pop_front()?,
        };
        if outgoing.rate_limited() {
            self.limiter.record(now);
        }
        if outgoing.is_op() {
            if let Some(ops) = &mut self.ops_limiter {
                ops.record(now);
            }
        }
        Some(outgoing)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sub(n: u64) -> Outgoing {
        Outgoing::Subscribe {
            text: format!("sub {n}"),
            req_id: ReqId::from(n),
        }
    }

    fn send(n: u64) -> Outgoing {
        Outgoing::Request {
            text: format!("req {n}"),
            req_id: ReqId::from(n),
        }
    }

    fn text(o: &Outgoing) -> String {
        match o {
            Outgoing::Subscribe { text, .. }
            | Outgoing::Request { text, .. }
            | Outgoing::Unsubscribe { text }
            | Outgoing::Ping { text } => text.clone(),
            _ => String::new(),
        }
    }

    fn take_all(out: &mut Outbound, now: Instant) -> Vec<String> {
        std::iter::from_fn(|| out.take(now))
            .map(|o| text(&o))
            .collect()
    }

    fn outbound(ops: u32, per: Duration) -> Outbound {
        let rate = RateLimit {
            frames: 1000,
            per: Duration::from_secs(1),
        };
        Outbound::new(rate, Some(RateLimit { frames: ops, per }))
    }

    #[test]
    fn operations_over_the_window_wait_and_others_go_ahead() {
        let hour = Duration::from_secs(3600);
        let mut out = outbound(2, hour);
        let t0 = Instant::now();
        out.push_back(sub(1));
        out.push_back(send(2));
        out.push_back(sub(3));
        out.push_back(Outgoing::Unsubscribe {
            text: "unsub 4".into(),
        });
        out.push_back(send(5));
        // In order while the window is open; then the rest goes on.
        assert_eq!(take_all(&mut out, t0), ["sub 1", "req 2", "sub 3", "req 5"]);
        assert_eq!(out.len(), 1);
        assert_eq!(out.next_write_at(t0), Some(t0 + hour));
        let t1 = t0 + hour - Duration::from_millis(1);
        assert!(take_all(&mut out, t1).is_empty());
        assert_eq!(take_all(&mut out, t0 + hour), ["unsub 4"]);
    }

    /// Why the write slot is asked with `now` and not stored in the timer
    /// table when the queue changes: with nothing queued or written in
    /// between, a frame due at one instant is not due at a later one.
    #[test]
    fn the_write_slot_follows_now_not_the_last_change_of_the_queue() {
        let hour = Duration::from_secs(3600);
        let rate = RateLimit {
            frames: 1,
            per: 2 * hour,
        };
        let mut out = Outbound::new(
            rate,
            Some(RateLimit {
                frames: 1,
                per: hour,
            }),
        );
        let t0 = Instant::now();
        out.push_back(sub(1));
        assert_eq!(take_all(&mut out, t0), ["sub 1"]);
        out.push_back(sub(2));
        out.push_back(Outgoing::Send {
            message: Message::text("unlimited"),
            send_id: 3,
            rate_limited: false,
        });
        // The window is shut: the send that skips the rate limit goes ahead.
        let minute = Duration::from_secs(60);
        assert_eq!(out.next_write_at(t0 + minute), Some(t0 + minute));
        // The window is open: the older subscribe goes first, when the rate
        // limit allows, and the send waits behind it.
        assert_eq!(out.next_write_at(t0 + hour + minute), Some(t0 + 2 * hour));
    }

    #[test]
    fn no_more_operations_than_the_budget_in_any_window() {
        let per = Duration::from_secs(60);
        let mut out = outbound(3, per);
        let t0 = Instant::now();
        let mut written = Vec::new();
        for n in 0..10 {
            out.push_back(sub(n));
        }
        let mut now = t0;
        while let Some(at) = out.next_write_at(now) {
            now = at;
            while out.take(now).is_some() {
                written.push(now);
            }
        }
        assert_eq!(written.len(), 10);
        for (i, t) in written.iter().enumerate() {
            let in_window = written[i..].iter().filter(|u| **u < *t + per).count();
            assert!(in_window <= 3, "{in_window} operations in one window");
        }
        assert_eq!(*written.last().unwrap() - t0, per * 3);
    }

    #[test]
    fn without_a_window_operations_keep_their_place() {
        let rate = RateLimit {
            frames: 1,
            per: Duration::from_secs(1),
        };
        let mut out = Outbound::new(rate, None);
        let t0 = Instant::now();
        out.push_back(sub(1));
        out.push_back(send(2));
        out.push_back(sub(3));
        out.push_front(Outgoing::Ping {
            text: "ping".into(),
        });
        let mut order = Vec::new();
        let mut now = t0;
        while let Some(at) = out.next_write_at(now) {
            now = at;
            order.extend(take_all(&mut out, now));
        }
        assert_eq!(order, ["ping", "sub 1", "req 2", "sub 3"]);
        assert_eq!(now - t0, Duration::from_secs(3));
    }
}
