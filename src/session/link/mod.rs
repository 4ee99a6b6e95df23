//! What lives as long as one connection: the outbound queue in front of the
//! rate limiter, the frames written and what each arms, the liveness timers,
//! request deadlines, and what happens when the connection comes and goes.
//!
//! [`Link`] owns these fields and their behaviour, one `impl` per type: the
//! outbound queue (`outbound.rs`) and two sub-states the core reaches
//! through it, `liveness` ([`Liveness`]: every deadline in
//! one [`TimerTable`](timer_table::TimerTable), the ping, idle and stale
//! watches) and `pending` ([`Pending`]: requests in
//! flight, snapshot requests, resyncs, abandoned subscribes). It never sees
//! the [`SessionCore`](super::SessionCore) (this module imports nothing of
//! it): it answers the core's questions and hands back what falls due
//! (frames to write, [`timers::Due`], [`Lapsed`], failed callers as
//! actions), and the core coordinates the rest (counters, events, the
//! registry, the protocol).
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

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Bytes, Message, Utf8Bytes};

use super::deadline::later;
use super::output::Action;
use super::socket_failure::SocketFailure;
use crate::config::Config;
use crate::error::Error;
use crate::rate::RateLimit;
use crate::subscription::{ClientId, ReqId};

mod outbound;
mod pending;
mod stale;
mod timer_table;
mod timers;

pub(super) use outbound::Outgoing;
use outbound::{Outbound, OUTBOUND_LIMIT};
use pending::Pending;
pub(super) use timers::Lapsed;
use timers::Liveness;

/// How many heartbeat replies may wait to be written; a venue heartbeat that
/// arrives while they are all waiting is not answered again.
pub(super) const REPLY_LIMIT: usize = 4;

/// What a written frame was, so the core can arm what its writing starts.
#[derive(Debug)]
pub struct Written {
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

    /// The one-off send this was, if it was one (its caller learns the outcome).
    pub(super) fn send_id(&self) -> Option<u64> {
        match self.kind {
            WrittenKind::Send(send_id) => Some(send_id),
            _ => None,
        }
    }

    /// The bytes of text it carried (0 for binary and control frames).
    pub(super) fn len(&self) -> u64 {
        self.len
    }
}

/// Why writing a frame failed.
pub(crate) enum WriteFailure {
    /// The socket refused it.
    Socket(SocketFailure),
    /// The peer did not take it within the timeout.
    TimedOut(Duration),
}

/// One connection's state: the outbound queue and its sub-states.
pub(crate) struct Link {
    outbound: Outbound,
    /// Every deadline of this connection and the watches that read them
    /// (`timers.rs`, `timer_table.rs`).
    pub(in crate::session) liveness: Liveness,
    /// Requests in flight, snapshot requests, resyncs and abandoned
    /// subscribes (`pending.rs`).
    pub(in crate::session) pending: Pending,
    /// Whether every subscribe sent on this connection has been answered at
    /// least once: the connection did the job it was made for.
    worked: bool,
}

impl Link {
    /// A connection opened at `now`, with the on-connect frames of `config`
    /// queued and a fresh operations window (`subscribe_ops`: the venue
    /// counts per connection).
    pub(super) fn new(config: &Config, subscribe_ops: Option<RateLimit>, now: Instant) -> Self {
        let mut link = Link {
            outbound: Outbound::new(config.rate_limit, subscribe_ops),
            liveness: Liveness::new(config, now),
            pending: Pending::default(),
            worked: false,
        };
        for frame in &config.on_connect {
            link.push_back(Outgoing::Handshake(frame.clone()));
        }
        link
    }

    /// Queues a frame; nothing new goes out once closing.
    pub(super) fn push_back(&mut self, outgoing: Outgoing) {
        if !self.is_closing() {
            self.outbound.push_back(outgoing);
        }
    }

    /// Removes the unwritten subscribe request `req_id` when the venue has an
    /// operations window (see `outbound.rs`); whether it did.
    pub(super) fn withdraw_subscribe(&mut self, req_id: ReqId) -> bool {
        self.outbound.has_ops_window() && self.outbound.withdraw_subscribe(req_id)
    }

    /// Queues request `req_id` (its caller waits for the answer).
    pub(in crate::session) fn push_request(&mut self, text: String, req_id: ReqId) {
        self.pending.request(req_id);
        self.push_back(Outgoing::Request { text, req_id });
    }

    /// Queues a snapshot request for `client_id` (a resync on the live
    /// subscription), remembered until answered, refused or timed out.
    pub(in crate::session) fn push_snapshot_request(
        &mut self,
        client_id: ClientId,
        text: String,
        req_id: ReqId,
    ) {
        self.pending.snapshot_request(client_id, req_id);
        self.push_back(Outgoing::Request { text, req_id });
    }

    /// Queues a ping ahead of everything else (not once closing).
    pub(in crate::session) fn push_ping(&mut self, ping: Outgoing) {
        if !self.is_closing() {
            self.outbound.push_front(ping);
        }
    }

    /// Queues the answer to a venue heartbeat ahead of everything but earlier
    /// answers, at most [`REPLY_LIMIT`] at a time.
    pub(in crate::session) fn push_reply(&mut self, text: String) {
        if self.is_closing() {
            return;
        }
        if !self.outbound.push_reply(text, REPLY_LIMIT) {
            tracing::debug!("heartbeat replies already waiting; not answering this one");
        }
    }

    /// Moves the liveness deadlines by a stall of `stalled`.
    pub(super) fn pause_liveness(&mut self, stalled: Duration) {
        self.liveness.pause(stalled);
    }

    /// Every subscribe sent on this connection has been answered: the
    /// connection did the job it was made for.
    pub(super) fn all_acknowledged(&mut self) {
        self.worked = true;
    }

    /// Whether every subscribe sent on this connection was answered.
    pub(super) fn worked(&self) -> bool {
        self.worked
    }

    /// Whether the close handshake has begun.
    pub(super) fn is_closing(&self) -> bool {
        self.liveness.is_closing()
    }

    /// Whether commands may come in at `now`: not while closing, and not
    /// while many frames wait for the rate limiter. Requests the venue's
    /// operations window holds back at `now` do not count: they may wait an
    /// hour, and `close` or `send` must not wait with them.
    pub(super) fn accepts_commands(&self, now: Instant) -> bool {
        let held = self.outbound.ops_held(now);
        !self.is_closing() && self.outbound.len().saturating_sub(held) < OUTBOUND_LIMIT
    }

    /// How many subscribe operations the venue's window holds back at `now`.
    pub(super) fn ops_held(&self, now: Instant) -> usize {
        self.outbound.ops_held(now)
    }

    /// When the next frame may be written: `None` when nothing waits.
    pub(super) fn next_write_at(&self, now: Instant) -> Option<Instant> {
        self.outbound.next_write_at(now)
    }

    /// The next frame to write, if one is due at `now`, with what its
    /// writing will start.
    pub(super) fn take_write(&mut self, now: Instant) -> Option<(Message, Written)> {
        let outgoing = self.outbound.take(now)?;
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

    /// `written` went out at `now`: arm what its writing starts (a request's
    /// deadline, the pong deadline). Returns the one-off send it completed.
    pub(super) fn on_written(
        &mut self,
        written: &Written,
        config: &Config,
        now: Instant,
    ) -> Option<u64> {
        match written.kind {
            WrittenKind::Plain | WrittenKind::Close => None,
            WrittenKind::Deadline(req_id) => {
                self.pending.written(req_id);
                self.liveness
                    .request_written(req_id, later(now, config.request_timeout));
                None
            }
            WrittenKind::Ping => {
                self.liveness.ping_written(later(now, config.pong_timeout));
                None
            }
            WrittenKind::Send(send_id) => Some(send_id),
        }
    }

    /// Starts the close handshake, to give up at `deadline`: Close 1000 is
    /// the only frame left to write, and one-off sends still waiting fail
    /// into `actions`. False when it had already begun.
    pub(super) fn begin_close(
        &mut self,
        deadline: Instant,
        actions: &mut VecDeque<Action>,
    ) -> bool {
        if self.is_closing() {
            return false;
        }
        self.liveness.begin_close(deadline);
        let drained = self.outbound.drain();
        self.outbound.push_back(Outgoing::Close);
        fail_sends(drained, &Error::ClientClosed, actions);
        true
    }

    /// The connection is gone: requests in flight and queued sends fail with
    /// `error` into `actions`, and are never replayed.
    pub(super) fn end(mut self, error: &Error, actions: &mut VecDeque<Action>) {
        for req_id in self.pending.drain_requests() {
            actions.push_back(Action::RequestResult {
                req_id,
                result: Err(error.clone()),
            });
        }
        fail_sends(self.outbound.drain(), error, actions);
    }
}

/// Fails the one-off sends among `drained` with `error`.
fn fail_sends(drained: Vec<Outgoing>, error: &Error, actions: &mut VecDeque<Action>) {
    for outgoing in drained {
        if let Outgoing::Send { send_id, .. } = outgoing {
            actions.push_back(Action::SendResult {
                send_id,
                result: Err(error.clone()),
            });
        }
    }
}
