//! What lives as long as one connection: the outbound queue in front of the
//! rate limiter, the frames written and what each arms, the liveness timers,
//! request deadlines, and what happens when the connection comes and goes.
//!
//! Rules kept here:
//! - Everything but WebSocket pings and the close frame goes through one
//!   strict sliding-window limiter; app-level pings jump the queue.
//! - Subscribe and unsubscribe requests also spend the venue's operations
//!   window, per connection, and wait for it without holding anything else
//!   back (`outbound.rs`).
//! - A request's deadline starts when its frame is written, not when queued.
//! - A ping must be answered within `pong_timeout`; the idle timeout counts
//!   only data and venue heartbeats. While the session is stalled on a full
//!   `Block` queue neither runs (the peer is not the one who is slow).
//! - When the connection goes, requests in flight and queued one-off sends fail
//!   at once with the cause and are never replayed (an order may have been
//!   committed); subscriptions are replayed by the next connection.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Bytes, Message, Utf8Bytes};

use super::deadline::later;
use super::output::{Action, SessionEnd};
use super::SessionCore;
use crate::config::Config;
use crate::error::{Error, Operation, SubscriptionOp};
use crate::events::{ConnectionState, Event};
use crate::protocol::{Protocol, Topic};
use crate::rate::RateLimit;
use crate::subscription::{ClientId, ReqId};

mod outbound;
mod stale;
mod timers;

use outbound::{Outbound, OUTBOUND_LIMIT};

/// How many subscriptions ended while their subscribe was unanswered a
/// connection remembers (to unsubscribe a late ack); the oldest are forgotten.
pub(super) const ABANDONED_LIMIT: usize = 64;

/// How many heartbeat replies may wait to be written; a venue heartbeat that
/// arrives while they are all waiting is not answered again.
pub(super) const REPLY_LIMIT: usize = 4;

/// A frame waiting to be written.
pub(super) enum Outgoing {
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
    fn rate_limited(&self) -> bool {
        match self {
            Outgoing::WsPing | Outgoing::Close => false,
            Outgoing::Send { rate_limited, .. } => *rate_limited,
            _ => true,
        }
    }
}

/// What a written frame was, so the core can arm what its writing starts.
#[derive(Debug)]
pub(crate) struct Written {
    kind: WrittenKind,
    len: u64,
}

#[derive(Debug, Clone, Copy)]
enum WrittenKind {
    Plain,
    Deadline(ReqId),
    Ping,
    Send(u64),
    Close,
}

impl Written {
    /// Whether this was the close frame (written with the close timeout).
    pub(crate) fn is_close(&self) -> bool {
        matches!(self.kind, WrittenKind::Close)
    }
}

/// Why writing a frame failed.
pub(crate) enum WriteFailure {
    /// The socket refused it.
    Socket(tungstenite::Error),
    /// The peer did not take it within the timeout.
    TimedOut(Duration),
}

/// Idle detection without touching a timer per frame: a tick every quarter of
/// the timeout compares a frame counter with the previous tick's.
struct IdleWatch {
    timeout: Duration,
    next_tick: Instant,
    seen_at_tick: u64,
    last_activity: Instant,
}

/// One connection's state.
pub(crate) struct Link {
    outbound: Outbound,
    /// Requests written or queued whose answer the shell's caller waits for.
    pub(super) requests: HashSet<ReqId>,
    deadlines: BTreeSet<(Instant, ReqId)>,
    awaiting_pong: Option<Instant>,
    next_ping: Instant,
    data_seen: u64,
    idle: Option<IdleWatch>,
    /// Subscriptions silent past their channel's expectation (`stale.rs`).
    stale: Option<stale::StaleWatch>,
    closing: Option<Instant>,
    /// Subscriptions ended while their subscribe was still unanswered (say, a
    /// `subscribe` call dropped by a timeout). If the ack comes after all, the
    /// venue is told to unsubscribe, or it would stream to nobody for the rest
    /// of the connection.
    pub(super) abandoned: VecDeque<(ReqId, Topic)>,
    /// Subscriptions whose resync subscribe (under this request id) is not
    /// written yet: at most one resync per subscription is in flight, so a
    /// peer alternating acks and bad checksums cannot grow the outbound queue.
    pub(super) resyncing: HashMap<ClientId, ReqId>,
    /// Snapshot requests (resyncs on the live subscription) waiting for an
    /// answer, at most one per subscription: a refusal falls back to
    /// subscribing again.
    pub(super) snapshots: HashMap<ClientId, ReqId>,
    /// Whether every subscribe sent on this connection has been answered at
    /// least once: the connection did the job it was made for.
    worked: bool,
}

impl Link {
    fn new(config: &Config, subscribe_ops: Option<RateLimit>, now: Instant) -> Self {
        Link {
            outbound: Outbound::new(config.rate_limit, subscribe_ops),
            requests: HashSet::new(),
            deadlines: BTreeSet::new(),
            awaiting_pong: None,
            next_ping: later(now, config.ping_interval),
            data_seen: 0,
            idle: config.idle_timeout.map(|timeout| IdleWatch {
                timeout,
                next_tick: later(now, timeout / 4),
                seen_at_tick: 0,
                last_activity: now,
            }),
            stale: stale::StaleWatch::new(config, now),
            closing: None,
            abandoned: VecDeque::new(),
            resyncing: HashMap::new(),
            snapshots: HashMap::new(),
            worked: false,
        }
    }

    /// Queues a frame; nothing new goes out once closing.
    pub(super) fn push_back(&mut self, outgoing: Outgoing) {
        if self.closing.is_none() {
            self.outbound.push_back(outgoing);
        }
    }

    /// Removes the unwritten subscribe request `req_id` when the venue has an
    /// operations window (see `outbound.rs`); whether it did.
    pub(super) fn withdraw_subscribe(&mut self, req_id: ReqId) -> bool {
        self.outbound.has_ops_window() && self.outbound.withdraw_subscribe(req_id)
    }

    /// Moves the liveness deadlines by a stall of `stalled`.
    pub(super) fn pause_liveness(&mut self, stalled: Duration) {
        if let Some(deadline) = &mut self.awaiting_pong {
            *deadline = later(*deadline, stalled);
        }
        if let Some(idle) = &mut self.idle {
            idle.last_activity = later(idle.last_activity, stalled);
        }
        if let Some(stale) = &mut self.stale {
            stale.pause(stalled);
        }
    }
}

impl<P: Protocol> SessionCore<P> {
    // ---- the connection comes and goes ------------------------------------------

    /// The handshake succeeded: queue the on-connect frames and replay every
    /// unsent subscription.
    pub(crate) fn on_connected(&mut self, now: Instant) {
        self.wall_anchor = (now.into_std(), std::time::SystemTime::now());
        // A fresh operations window: the venue counts per connection.
        let subscribe_ops = self.protocol.limits().subscribe_ops;
        let mut link = Link::new(&self.config, subscribe_ops, now);
        for frame in &self.config.on_connect {
            link.push_back(Outgoing::Handshake(frame.clone()));
        }
        self.link = Some(link);
        self.flush_unsent();
        if !self.registry.any_pending() {
            self.all_acknowledged();
        }
    }

    /// Every subscribe sent on this connection has been answered.
    pub(super) fn all_acknowledged(&mut self) {
        if let Some(link) = &mut self.link {
            link.worked = true;
        }
    }

    /// Whether the current (or just ended) connection got every subscription
    /// it replayed answered: it was a working session, not a failed attempt.
    pub(crate) fn session_worked(&self) -> bool {
        self.link.as_ref().is_some_and(|link| link.worked)
    }

    /// The connection is gone (`end` says why): requests in flight and queued
    /// sends fail with that cause, old server ids must never route again, and
    /// per-connection protocol state (books) is void.
    pub(crate) fn on_disconnected(&mut self, end: &SessionEnd, now: Instant) {
        // A running shell never ends a session while a message is parked,
        // but a feed dropped mid-session does: the consumer is gone.
        while self.parked.is_some() {
            self.on_block_timeout(now);
        }
        let Some(mut link) = self.link.take() else {
            return;
        };
        let error = end.error();
        for req_id in link.requests.drain() {
            self.actions.push(Action::RequestResult {
                req_id,
                result: Err(error.clone()),
            });
        }
        for outgoing in link.outbound.drain() {
            if let Outgoing::Send { send_id, .. } = outgoing {
                self.actions.push(Action::SendResult {
                    send_id,
                    result: Err(error.clone()),
                });
            }
        }
        let dropped = self.registry.on_disconnect();
        let counters = &self.stats.counters;
        counters.unroutable.add(dropped as u64);
        counters.stashed.set(0);
        counters.subscribe_ops_waiting.set(0);
        self.protocol.reset();
    }

    pub(super) fn is_closing(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.closing.is_some())
    }

    /// Whether the shell should drain buffered frames now: not while closing
    /// (only the peer's close matters then) and not while a message is parked.
    pub(crate) fn accepts_reads(&self) -> bool {
        self.parked.is_none() && !self.is_closing()
    }

    /// Whether the shell should take commands now: not while closing, and not
    /// while many frames wait for the rate limiter (the bounded command
    /// channel then pushes back on the callers).
    ///
    /// Requests the venue's operations window holds back at `now` do not
    /// count: they may wait an hour, and `close` or `send` must not wait with
    /// them. Counted here from the outbound queue itself, never read back
    /// from a gauge some other call may or may not have set.
    pub(crate) fn accepts_commands(&self, now: Instant) -> bool {
        self.link.as_ref().is_some_and(|l| {
            let held = l.outbound.ops_held(now);
            l.closing.is_none() && l.outbound.len().saturating_sub(held) < OUTBOUND_LIMIT
        })
    }

    /// Remembers how long `error` asks us to wait before the next attempt:
    /// its own retry-after (a venue lockout), or the backoff cap for a close
    /// 1013 "try again later", which names no duration.
    pub(crate) fn note_retry_hint(&mut self, error: &Error, now: Instant) {
        if let Some(hint) = crate::backoff::retry_hint(error, self.config.backoff.cap) {
            tracing::info!(
                ?hint,
                "the venue asked to wait; lengthening the next backoff delay"
            );
            self.retry_not_before = self.retry_not_before.max(Some(later(now, hint)));
        }
    }

    /// The wait a retry hint still asks for, once.
    pub(crate) fn take_retry_wait(&mut self, now: Instant) -> Duration {
        self.retry_not_before
            .take()
            .map(|at| at.saturating_duration_since(now))
            .unwrap_or_default()
    }

    // ---- writes ---------------------------------------------------------------

    /// When the next frame may be written: `None` when nothing waits. Pure:
    /// asking changes nothing.
    pub(crate) fn next_write_at(&self, now: Instant) -> Option<Instant> {
        self.link.as_ref()?.outbound.next_write_at(now)
    }

    /// Publishes how many subscribe operations the venue's window holds back
    /// at `now` (the `subscribe_ops_waiting` gauge a pool reads to place a
    /// subscription). The last step of every input (`Drive` calls it after
    /// the core's actions): the count changes with commands, with writes and
    /// when the window opens, and the driver wakes for each of those.
    pub(crate) fn publish_ops_waiting(&self, now: Instant) {
        let held = self.link.as_ref().map_or(0, |l| l.outbound.ops_held(now)) as u64;
        let gauge = &self.stats.counters.subscribe_ops_waiting;
        if gauge.get() != held {
            gauge.set(held);
        }
    }

    /// The next frame to write, if one is due at `now`. The shell writes it and
    /// reports back with [`on_written`](Self::on_written).
    pub(crate) fn take_write(&mut self, now: Instant) -> Option<(Message, Written)> {
        let outgoing = self.link.as_mut()?.outbound.take(now)?;
        let (message, kind) = match outgoing {
            Outgoing::Handshake(text) | Outgoing::Unsubscribe { text } => {
                (Message::text(text), WrittenKind::Plain)
            }
            Outgoing::Ping { text } => (Message::text(text), WrittenKind::Ping),
            Outgoing::Reply { text } => (Message::text(text), WrittenKind::Plain),
            Outgoing::Subscribe { text, req_id } | Outgoing::Request { text, req_id } => {
                (Message::text(text), WrittenKind::Deadline(req_id))
            }
            Outgoing::Send {
                message, send_id, ..
            } => (message, WrittenKind::Send(send_id)),
            Outgoing::WsPing => (Message::Ping(Bytes::new()), WrittenKind::Ping),
            Outgoing::Close => (
                Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: Utf8Bytes::from_static(""),
                })),
                WrittenKind::Close,
            ),
        };
        let len = match &message {
            Message::Text(text) => text.len() as u64,
            _ => 0,
        };
        Some((message, Written { kind, len }))
    }

    /// How long the shell may wait for the peer to take `written`.
    pub(crate) fn write_timeout(&self, written: &Written) -> Duration {
        if written.is_close() {
            self.config.close_timeout
        } else {
            self.config.request_timeout
        }
    }

    /// `written` went out at `now`: start what its writing starts.
    pub(crate) fn on_written(&mut self, written: Written, now: Instant) {
        let counters = &self.stats.counters;
        counters.frames_out.bump();
        counters.bytes_out.add(written.len);
        let Some(link) = &mut self.link else {
            return;
        };
        match written.kind {
            WrittenKind::Plain | WrittenKind::Close => {}
            WrittenKind::Deadline(req_id) => {
                if !link.resyncing.is_empty() {
                    link.resyncing.retain(|_, pending| *pending != req_id);
                }
                link.deadlines
                    .insert((later(now, self.config.request_timeout), req_id));
            }
            WrittenKind::Ping => {
                link.awaiting_pong = Some(later(now, self.config.pong_timeout));
            }
            WrittenKind::Send(send_id) => self.actions.push(Action::SendResult {
                send_id,
                result: Ok(()),
            }),
        }
    }

    /// Writing `written` failed: the session ends (a one-off send learns why).
    pub(crate) fn on_write_failed(
        &mut self,
        written: Written,
        failure: WriteFailure,
    ) -> SessionEnd {
        let end = if written.is_close() || self.is_closing() {
            // The socket is already gone or wedged: nothing left to wait for.
            SessionEnd::Closed
        } else {
            match failure {
                WriteFailure::Socket(error) => self.on_read_error(error),
                WriteFailure::TimedOut(timeout) => SessionEnd::Lost(Error::Timeout {
                    operation: Operation::Send,
                    timeout,
                }),
            }
        };
        if let WrittenKind::Send(send_id) = written.kind {
            self.actions.push(Action::SendResult {
                send_id,
                result: Err(end.error()),
            });
        }
        end
    }

    /// Sends Close 1000 and keeps reading (so the consumer gets what is already
    /// on the wire) until the peer answers or the close timeout passes. Frames
    /// still waiting for the rate limiter are not sent.
    pub(crate) fn begin_close(&mut self, now: Instant) {
        let Some(link) = &mut self.link else {
            return;
        };
        if link.closing.is_some() {
            return;
        }
        link.closing = Some(later(now, self.config.close_timeout));
        let drained = link.outbound.drain();
        link.outbound.push_back(Outgoing::Close);
        for outgoing in drained {
            if let Outgoing::Send { send_id, .. } = outgoing {
                self.actions.push(Action::SendResult {
                    send_id,
                    result: Err(Error::ClientClosed),
                });
            }
        }
        self.actions
            .push(Action::SetState(ConnectionState::Closing));
    }
}
