//! The session core: [`SessionCore`] with its calling contract, the inputs
//! that coordinate its parts (a connection coming and going, writes, ticks),
//! and what the library does with one inbound frame, top to bottom.
//!
//! The per-connection state ([`Link`], `link/`) owns its fields and its
//! behaviour and knows nothing of the core: the core asks it and acts on
//! its answers (counters, events, the registry, the protocol adapter).
//!
//! Per frame: count it, let the protocol classify it, then
//! - data goes to its subscription's queue (sequence-checked, under the
//!   queue's overflow policy), or into the stash while a subscribe that may
//!   own it is pending, or is counted unroutable;
//! - an ack patches the new server id into the registry, answers the caller
//!   and releases stashed frames; a rejection ends that one subscription;
//! - a response answers the request that waits for its id;
//! - pongs, heartbeats and status frames are counted as control.
//!
//! Every frame read ends up counted exactly once: routed (then delivered,
//! dropped or queued), control, unroutable, or stashed.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use super::deadline::later;
use super::link::{Lapsed, Link, Outgoing, WriteFailure, Written};
use super::output::{Action, SessionEnd};
use super::socket_failure::SocketFailure;
use crate::book::SnapshotFetched;
use crate::config::Config;
use crate::error::{
    scrub, ConnectionError, Error, Operation, ProtocolError, SubscriptionOp, VenueError,
};
use crate::events::{ConnectionState, Event, Unplaced};
use crate::message::{span_of, Frame, Received, Update};
use crate::protocol::{BookBreak, Inbound, Protocol, ServerId};
use crate::queue::{Overflow, Pushed, Queue};
use crate::stats::StatsHub;
use crate::subscription::{ClientId, Phase, Registry, ReqId, Route, SeqCheck, Stashed};
use crate::venue_error::VenueErrorKind;

/// The decisions of one supervised connection, kept across reconnects: the
/// registry and protocol live as long as the client; [`Link`] holds what
/// lives as long as one connection.
///
/// # Calling contract
///
/// The core does no I/O, reads no clock and never calls back: every input
/// carries `now` (and the connect the wall clock too), and everything it
/// wants done comes out of the outputs below. A driver follows these rules;
/// [`Drive`](crate::supervisor::drive::Drive) is the one that does, and
/// every shell (the spawned supervisor, the consumer-driven feed, a replay)
/// goes through it.
///
/// **Inputs.** After each one the driver must *apply* (below).
/// - The handshake succeeded: [`on_connected(now, wall)`](Self::on_connected).
///   The driver reads both clocks; frames get their wall-clock receive time
///   from `wall` (a replay hands in the recorded one).
/// - A frame was read: [`set_read_at(read_at)`](Self::set_read_at) (when the
///   read completed: the frame's receive time), then
///   [`on_message(message, now)`](Self::on_message).
/// - The socket failed or ended: [`on_read_error(failure)`](Self::on_read_error)
///   (the driver describes its transport's error as a [`SocketFailure`]) or
///   [`on_stream_end`](Self::on_stream_end). Both return the session's end.
/// - The timer fired: [`on_tick(now)`](Self::on_tick).
/// - A command: `subscribe`, `unsubscribe`, `send`, `request` (`commands.rs`;
///   they work offline too: subscriptions wait for the next connection, what
///   needs a socket fails at once); close while connected:
///   [`begin_close(now)`](Self::begin_close) (the session goes on until the
///   peer answers or the close timeout passes).
/// - A frame from [`take_write`](Self::take_write) was written, or writing
///   it failed: [`on_written(written, now)`](Self::on_written) or
///   [`on_write_failed(written, failure)`](Self::on_write_failed), exactly
///   once per [`Written`] (it is not `Clone`). A failure returns the end.
/// - The full `Block` queue made room, or did not in time:
///   [`on_space(now)`](Self::on_space) or
///   [`on_block_timeout(now)`](Self::on_block_timeout).
/// - A book snapshot fetch the adapter asked for ended:
///   [`on_snapshot_fetched(fetched)`](Self::on_snapshot_fetched).
/// - The connection is gone: [`on_disconnected(end, now)`](Self::on_disconnected).
/// - The driver stops for good: [`finish(error, now)`](Self::finish) (every
///   stream ends; callers still waiting are answered).
///
/// **Apply**, after every input, before anything else: take the actions
/// with [`drain_actions`](Self::drain_actions) and carry each out in order
/// ([`Action`]: publish the event or the connection state; answer the
/// caller of `subscribe`, `request` or `send` the action names, whose reply
/// channel the driver keeps), then [`publish_ops_waiting(now)`](Self::publish_ops_waiting)
/// (the gauge a pool reads). Actions are the only way callers hear back: a
/// driver that skips this leaves them waiting. Deliveries need no step: data
/// goes straight into the subscriptions' queues, which wake their consumers.
///
/// **Outputs**, asked before the driver waits, in this order (asking
/// changes nothing):
/// 1. [`blocked_on`](Self::blocked_on): `Some((queue, timeout))` while a
///    message is parked on a full `Block` queue. The driver must read nothing
///    from the socket (that is the backpressure) until `queue` has room or
///    `timeout` passes, then hand in `on_space` or `on_block_timeout`.
/// 2. [`next_write_at(now)`](Self::next_write_at): at or before `now`, a
///    frame is due: take it with [`take_write(now)`](Self::take_write), write
///    it within [`write_timeout`](Self::write_timeout), report its outcome.
///    Later: wake then (the rate limit paces writes). `None`: nothing waits.
/// 3. [`next_timer`](Self::next_timer): wake then and hand in `on_tick`
///    (`None` while disconnected).
/// 4. [`accepts_commands(now)`](Self::accepts_commands): take commands only
///    while true (the bounded command channel then pushes back on callers).
///
/// After an input, frames the socket already buffered may be handed in
/// without waiting while [`accepts_reads`](Self::accepts_reads) is true.
///
/// **The end.** An input that returns a [`SessionEnd`] ends the connection:
/// the driver stops reading and writing, reads
/// [`session_worked`](Self::session_worked) (whether every subscription it
/// replayed was answered: a working session, not a failed attempt), hands
/// in `on_disconnected` and applies. What follows is the reconnect
/// machine's: `Closed` stops, `Lost` reconnects with backoff, `Fatal` gives
/// up; [`take_retry_wait(now)`](Self::take_retry_wait) says, once, how long
/// a venue asked to wait before the next attempt.
pub(crate) struct SessionCore<P> {
    pub(super) config: Arc<Config>,
    pub(super) protocol: P,
    pub(super) registry: Registry,
    pub(super) stats: Arc<StatsHub>,
    /// Frames that belong to no subscription (the client's `Messages` stream).
    pub(super) inbound: Arc<Queue>,
    pub(super) next_req_id: ReqId,
    /// The latest "not before" a failure asked for (venue lockout, close 1013).
    pub(super) retry_not_before: Option<Instant>,
    /// The current connection; `None` while disconnected.
    pub(super) link: Option<Link>,
    /// A data message waiting for room in a full `Block` queue. While it waits
    /// the shell reads nothing from the socket: that is the backpressure.
    pub(super) parked: Option<Parked>,
    /// Deliveries that came behind the parked one (stashed frames released by
    /// one ack); bounded by the stash.
    pub(super) backlog: VecDeque<Delivery>,
    /// What the shell must do next, in order.
    pub(super) actions: Vec<Action>,
    /// A monotonic instant and the wall clock at that instant, handed in by
    /// the driver at each connect ([`on_connected`](Self::on_connected)):
    /// frames get their wall-clock receive time from it and the monotonic
    /// time since (no wall-clock read per frame, and none in the core: a
    /// replay hands in the recorded wall clock and gets the same times).
    /// `None` before the first connect.
    pub(super) wall_anchor: Option<(std::time::Instant, SystemTime)>,
    /// When the shell's read of the current frame completed. Only the frame's
    /// receive time uses it: the core's timers keep the loop's `now` (a clock
    /// read after a paused-clock jump must not move the session's deadlines).
    /// `None` (sans-I/O tests): the receive time is `now`.
    read_at: Option<Instant>,
    /// The last receive time worked out, with the read time and anchor it
    /// came from: the frames cut from one socket read share it, so the
    /// wall-clock arithmetic runs once per read instead of once per frame
    /// (~60 instructions a frame, measured).
    received_memo: Cell<Option<ReceivedMemo>>,
}

/// A receive time and what it was worked out from (see `received_memo`).
type ReceivedMemo = (
    std::time::Instant,
    (std::time::Instant, SystemTime),
    Received,
);

/// A data message that found its `Block` queue full.
pub(crate) struct Parked {
    pub(super) client_id: Option<ClientId>,
    pub(super) queue: Arc<Queue>,
    pub(super) update: Update,
    pub(super) book_break: Option<BookBreak>,
    pub(super) resync: bool,
    pub(super) since: Instant,
}

/// A routed data frame not yet pushed.
pub(crate) struct Delivery {
    pub(super) client_id: Option<ClientId>,
    pub(super) frame: Frame,
    pub(super) book_break: Option<BookBreak>,
}

/// The outcome of one push under the queue's policy.
pub(super) enum PushNow {
    /// Queued, or dropped under the policy: the subscription goes on.
    Alive,
    /// The consumer is gone.
    Ended,
    /// A `Block` queue is full: the message is handed back.
    Full(Update),
}

impl<P: Protocol> SessionCore<P> {
    /// A core for `config`, speaking `protocol`, counting into `stats`;
    /// unsolicited frames go to `inbound`.
    pub(crate) fn new(
        config: Arc<Config>,
        protocol: P,
        stats: Arc<StatsHub>,
        inbound: Arc<Queue>,
    ) -> Self {
        SessionCore {
            registry: Registry::new(config.stash_capacity, config.stash_bytes),
            config,
            protocol,
            stats,
            inbound,
            next_req_id: ReqId::from(1),
            retry_not_before: None,
            link: None,
            parked: None,
            backlog: VecDeque::new(),
            actions: Vec::new(),
            wall_anchor: None,
            read_at: None,
            received_memo: Cell::new(None),
        }
    }

    /// Notes when the read of the next frame completed (its receive time).
    pub(crate) fn set_read_at(&mut self, at: Instant) {
        self.read_at = Some(at);
    }

    /// The receive time of a frame handled at `now`. Before any connect
    /// (no wall clock handed in yet) its wall time is the epoch.
    fn received(&self, now: Instant) -> Received {
        let at = self.read_at.unwrap_or(now).into_std();
        let Some(anchored @ (anchor, wall)) = self.wall_anchor else {
            return Received {
                at,
                wall: UNIX_EPOCH,
            };
        };
        if let Some((memo_at, memo_anchor, received)) = self.received_memo.get() {
            if memo_at == at && memo_anchor == anchored {
                return received;
            }
        }
        let wall = match at.checked_duration_since(anchor) {
            Some(since) => wall.checked_add(since),
            None => wall.checked_sub(anchor.saturating_duration_since(at)),
        }
        .unwrap_or(wall);
        let received = Received { at, wall };
        self.received_memo.set(Some((at, anchored, received)));
        received
    }

    /// The registry (for the supervisor's final sweep, tests and the fuzzer).
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The protocol adapter (the supervisor hands it session tokens).
    pub(crate) fn protocol_mut(&mut self) -> &mut P {
        &mut self.protocol
    }

    /// Takes the actions queued since the last call, in order.
    pub(crate) fn drain_actions(&mut self) -> std::vec::Drain<'_, Action> {
        self.actions.drain(..)
    }

    /// Whether actions wait for the shell (checked after every input; cheap).
    pub(crate) fn has_actions(&self) -> bool {
        !self.actions.is_empty()
    }

    pub(super) fn emit(&mut self, event: Event) {
        self.actions.push(Action::Emit(event));
    }

    pub(super) fn next_req_id(&mut self) -> ReqId {
        let id = self.next_req_id;
        self.next_req_id = id.next();
        id
    }

    // ---- the connection comes and goes ----------------------------------------

    /// The handshake succeeded at `now`, when the wall clock read `wall`:
    /// queue the on-connect frames and replay every unsent subscription.
    /// Frames of this connection get wall-clock receive times counted from
    /// `wall` (the driver reads the clock; a replay hands in the recorded one).
    pub(crate) fn on_connected(&mut self, now: Instant, wall: SystemTime) {
        self.wall_anchor = Some((now.into_std(), wall));
        let subscribe_ops = self.protocol.limits().subscribe_ops;
        self.link = Some(Link::new(&self.config, subscribe_ops, now));
        self.flush_unsent();
        if !self.registry.any_pending() {
            self.all_acknowledged();
        }
    }

    /// Every subscribe sent on this connection has been answered.
    pub(super) fn all_acknowledged(&mut self) {
        if let Some(link) = &mut self.link {
            link.all_acknowledged();
        }
    }

    /// Whether the current (or just ended) connection got every subscription
    /// it replayed answered: it was a working session, not a failed attempt.
    pub(crate) fn session_worked(&self) -> bool {
        self.link.as_ref().is_some_and(Link::worked)
    }

    /// The connection is gone (`end` says why): requests in flight and queued
    /// sends fail with that cause, old server ids must never route again, and
    /// per-connection protocol state (books) is void.
    pub(crate) fn on_disconnected(&mut self, end: &SessionEnd, now: Instant) {
        // The shell never lets a session end while a message is parked, but a
        // script might: the consumer did not make room in time.
        while self.parked.is_some() {
            self.on_block_timeout(now);
        }
        let Some(link) = self.link.take() else {
            return;
        };
        link.end(&end.error(), &mut self.actions);
        let dropped = self.registry.on_disconnect();
        let counters = &self.stats.counters;
        counters.unroutable.add(dropped as u64);
        counters.stashed.set(0);
        counters.subscribe_ops_waiting.set(0);
        self.protocol.reset();
    }

    pub(super) fn is_closing(&self) -> bool {
        self.link.as_ref().is_some_and(Link::is_closing)
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
        self.link
            .as_ref()
            .is_some_and(|link| link.accepts_commands(now))
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
        self.link.as_ref()?.next_write_at(now)
    }

    /// Publishes how many subscribe operations the venue's window holds back
    /// at `now` (the `subscribe_ops_waiting` gauge a pool reads to place a
    /// subscription). The last step of every input (`Drive` calls it after
    /// the core's actions): the count changes with commands, with writes and
    /// when the window opens, and the driver wakes for each of those.
    pub(crate) fn publish_ops_waiting(&self, now: Instant) {
        let held = self.link.as_ref().map_or(0, |l| l.ops_held(now)) as u64;
        let gauge = &self.stats.counters.subscribe_ops_waiting;
        if gauge.get() != held {
            gauge.set(held);
        }
    }

    /// The next frame to write, if one is due at `now`. The shell writes it and
    /// reports back with [`on_written`](Self::on_written).
    pub(crate) fn take_write(&mut self, now: Instant) -> Option<(Message, Written)> {
        self.link.as_mut()?.take_write(now)
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
        counters.bytes_out.add(written.len());
        let Some(link) = &mut self.link else {
            return;
        };
        if let Some(send_id) = link.on_written(&written, &self.config, now) {
            self.actions.push(Action::SendResult {
                send_id,
                result: Ok(()),
            });
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
                WriteFailure::Socket(failure) => self.on_read_error(failure),
                WriteFailure::TimedOut(timeout) => SessionEnd::Lost(Error::Timeout {
                    operation: Operation::Send,
                    timeout,
                }),
            }
        };
        if let Some(send_id) = written.send_id() {
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
        let deadline = later(now, self.config.close_timeout);
        if link.begin_close(deadline, &mut self.actions) {
            self.actions
                .push(Action::SetState(ConnectionState::Closing));
        }
    }

    // ---- timers (`link/timers.rs` keeps them) --------------------------------

    /// When [`on_tick`](Self::on_tick) is next due; `None` while disconnected.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        Some(self.link.as_ref()?.next_timer())
    }

    /// Time passed: what the connection finds due at `now` (the close,
    /// pong and idle deadlines end the session; stale reports, request
    /// deadlines and the next ping are acted on here).
    pub(crate) fn on_tick(&mut self, now: Instant) -> Result<(), SessionEnd> {
        let Some(link) = &mut self.link else {
            return Ok(());
        };
        let due = match link.on_tick(&self.config, &self.registry, now) {
            Ok(due) => due,
            Err(Lapsed::Close) => return Err(SessionEnd::Closed),
            Err(Lapsed::Pong) => {
                self.stats.counters.ping_timeouts.bump();
                return Err(SessionEnd::Lost(Error::Timeout {
                    operation: Operation::Ping,
                    timeout: self.config.pong_timeout,
                }));
            }
            Err(Lapsed::Idle(timeout)) => {
                self.stats.counters.idle_timeouts.bump();
                return Err(SessionEnd::Lost(Error::Timeout {
                    operation: Operation::Receive,
                    timeout,
                }));
            }
        };
        for event in due.stale {
            self.emit(event);
        }
        for req_id in due.expired {
            self.expire(req_id)?;
        }
        if due.ping {
            self.ping();
        }
        Ok(())
    }

    fn ping(&mut self) {
        let req_id = self.next_req_id();
        let outgoing = match self.protocol.encode_ping(req_id.get()) {
            // App-level pings count against the venue's rate limit; they jump the queue.
            Some(text) => Outgoing::Ping { text },
            None => Outgoing::WsPing,
        };
        if let Some(link) = &mut self.link {
            link.push_ping(outgoing);
        }
    }

    /// Queues the answer to a venue heartbeat (see [`Link::push_reply`]).
    fn push_reply(&mut self, text: String) {
        if let Some(link) = &mut self.link {
            link.push_reply(text);
        }
    }

    /// A pong (WebSocket or application-level) answered our ping.
    fn pong_received(&mut self) {
        if let Some(link) = &mut self.link {
            link.pong_received();
        }
    }

    /// A data frame or venue heartbeat: the feed is alive.
    #[inline] // on every data frame's path
    fn data_seen(&mut self) {
        if let Some(link) = &mut self.link {
            link.data_seen();
        }
    }

    /// Removes `req_id` from the requests in flight; whether it was one.
    pub(super) fn take_request(&mut self, req_id: ReqId) -> bool {
        self.link
            .as_mut()
            .is_some_and(|link| link.take_request(req_id))
    }

    /// A request or subscribe got no answer in time.
    fn expire(&mut self, req_id: ReqId) -> Result<(), SessionEnd> {
        let timeout = self.config.request_timeout;
        if self.take_request(req_id) {
            self.actions.push(Action::RequestResult {
                req_id,
                result: Err(Error::Timeout {
                    operation: Operation::Request,
                    timeout,
                }),
            });
            return Ok(());
        }
        if self.take_snapshot_request(req_id).is_some() {
            // The venue answers a snapshot request with the snapshot itself;
            // nothing else may come, and the deltas go on meanwhile.
            return Ok(());
        }
        if self.registry.pending_op(req_id) == Some(SubscriptionOp::Resubscribe) {
            // A durable subscription the venue acknowledged before: a missing
            // ack now says more about this connection (half-open, stuck right
            // after the handshake) than about the subscription, so reconnect
            // and replay instead of ending it. Backoff bounds the retries.
            tracing::warn!(
                %req_id,
                "a replayed subscribe was not acknowledged in time; reconnecting"
            );
            return Err(SessionEnd::Lost(Error::Timeout {
                operation: Operation::Subscribe,
                timeout,
            }));
        }
        for (client_id, op, entry) in self.registry.on_timeout(req_id) {
            let operation = match op {
                SubscriptionOp::Unsubscribe => Operation::Unsubscribe,
                _ => Operation::Subscribe,
            };
            let error = Error::Timeout { operation, timeout };
            tracing::warn!(%client_id, %req_id, "subscribe was not acknowledged in time");
            if !entry.acked_once {
                self.actions.push(Action::SubscribeResult {
                    client_id,
                    result: Err(error.clone()),
                });
            }
            entry.queue.finish(Some(error.clone()));
            match &entry.server_id {
                Some(server_id) => self.protocol.forget(server_id),
                None => self.protocol.forget_topic(&entry.topic),
            }
            self.emit(Event::SubscriptionEnded {
                client_id,
                error: Some(error),
            });
        }
        if !self.registry.any_pending() {
            self.all_acknowledged();
        }
        Ok(())
    }

    // ---- one frame from the socket ------------------------------------------

    /// A message read from the socket.
    pub(crate) fn on_message(&mut self, message: Message, now: Instant) -> Result<(), SessionEnd> {
        let counters = &self.stats.counters;
        counters.frames_in.bump();
        match message {
            Message::Text(text) => {
                counters.bytes_in.add(text.len() as u64);
                self.on_text(text, now)
            }
            Message::Binary(data) => {
                counters.bytes_in.add(data.len() as u64);
                self.on_binary(data, now)
            }
            Message::Ping(_) | Message::Frame(_) => {
                counters.control.bump();
                Ok(())
            }
            Message::Pong(_) => {
                counters.control.bump();
                self.pong_received();
                Ok(())
            }
            Message::Close(frame) => {
                counters.control.bump();
                Err(self.on_close_frame(frame))
            }
        }
    }

    fn on_text(&mut self, text: Utf8Bytes, now: Instant) -> Result<(), SessionEnd> {
        let mut inbound = self.protocol.classify(text.as_str());
        if let Inbound::Sequenced {
            server_id,
            seq,
            then,
        } = inbound
        {
            // A control frame took a number of a subscription's sequence: the
            // next data frame must not be taken for a gap.
            self.registry.note_control_seq(&server_id, seq);
            inbound = *then;
        }
        match inbound {
            Inbound::Data {
                server_id,
                seq,
                book_break,
                payload,
            } => {
                self.data_seen();
                let span = payload.and_then(|part| span_of(text.as_str(), part));
                let mut frame = Frame::from_text(text, seq, self.received(now)).with_span(span);
                // Once per frame, a key search in the span (see `Protocol::venue_time`).
                let venue_time = match (frame.as_text(), frame.payload_text()) {
                    (Some(text), Some(payload)) => self.protocol.venue_time(text, payload),
                    _ => None,
                };
                frame.set_venue_time(venue_time);
                #[cfg(feature = "metrics")]
                self.record_venue_lag(&frame);
                self.route(server_id, frame, book_break, now);
            }
            Inbound::Unsolicited => {
                self.data_seen();
                if let Some(kind) = self.protocol.frame_kind(text.as_str()) {
                    self.unplaced(kind, Unplaced::Unsolicited);
                }
                let frame = Frame::from_text(text, None, self.received(now));
                self.deliver(None, frame, None, now);
            }
            Inbound::Subscribed {
                req_id,
                server_id,
                channel,
                symbol,
            } => self.on_subscribed(req_id.map(ReqId::from), server_id, channel, symbol, now),
            Inbound::Rejected {
                req_id,
                symbol,
                error,
            } => return self.on_rejected(req_id.map(ReqId::from), symbol.as_deref(), error, now),
            Inbound::Response { req_id, error } => {
                self.control();
                self.on_response(ReqId::from(req_id), error, &text, now);
            }
            Inbound::Unsubscribed { .. } | Inbound::Control => self.control(),
            Inbound::Pong => {
                self.control();
                self.pong_received();
            }
            Inbound::Heartbeat => {
                self.control();
                // A venue heartbeat proves the feed itself is alive (unlike a
                // WebSocket pong, which the peer's library sends on its own).
                self.data_seen();
            }
            Inbound::Reply { text } => {
                // A heartbeat the venue wants answered: alive, and the answer
                // jumps the queue (bounded; see `Link::push_reply`).
                self.control();
                self.data_seen();
                let text = text.into_owned();
                self.push_reply(text);
            }
            Inbound::Unknown { kind } => {
                self.stats.counters.unroutable.bump();
                self.unplaced(&kind, Unplaced::UnknownType);
            }
            Inbound::Ended { server_id, error } => self.on_venue_ended(&server_id, error),
            Inbound::Sequenced { .. } => self.invalid(ProtocolError::Unexpected(
                "a sequenced frame inside a sequenced frame".to_owned(),
            )),
            Inbound::Reconnect { notice } => {
                self.control();
                tracing::info!(%notice, "the venue will close the connection; reconnecting now");
                return Err(SessionEnd::Lost(
                    self.lost(&format!("the venue announced a close: {notice}")),
                ));
            }
            Inbound::Invalid(error) => self.invalid(error),
        }
        Ok(())
    }

    fn on_binary(&mut self, data: Bytes, now: Instant) -> Result<(), SessionEnd> {
        // A compressed venue: inflate (bounded by the adapter), then classify
        // as text, with the same outcome a text frame has (a reply that ends
        // the session ends it).
        match self.protocol.decode_binary(&data) {
            Some(Ok(text)) => return self.on_text(Utf8Bytes::from(text), now),
            Some(Err(error)) => {
                self.invalid(error);
                return Ok(());
            }
            None => {}
        }
        match self.protocol.classify_binary(&data) {
            Inbound::Unsolicited => {
                self.data_seen();
                let frame = Frame::from_binary(data, self.received(now));
                self.deliver(None, frame, None, now);
            }
            Inbound::Unknown { kind } => {
                self.stats.counters.unroutable.bump();
                self.unplaced(&kind, Unplaced::UnknownType);
            }
            Inbound::Invalid(error) => self.invalid(error),
            _ => self.control(),
        }
        Ok(())
    }

    fn control(&self) {
        self.stats.counters.control.bump();
    }

    /// Counts a frame of `kind` that could not be placed, and reports the
    /// first of each kind (cold: a venue speaking as documented sends none).
    #[cold]
    fn unplaced(&mut self, kind: &str, fate: Unplaced) {
        if let Some(kind) = self.stats.count_unplaced(kind, fate) {
            self.report_unplaced(kind, fate);
        }
    }

    #[cold]
    fn report_unplaced(&mut self, kind: String, fate: Unplaced) {
        tracing::warn!(%kind, ?fate, "frames of a kind the adapter cannot place");
        self.emit(Event::UnknownMessage { kind, fate });
    }

    fn invalid(&mut self, error: ProtocolError) {
        self.stats.counters.unroutable.bump();
        tracing::debug!(%error, "skipping a frame the protocol could not classify");
        self.emit(Event::InvalidFrame { error });
    }

    // ---- data -----------------------------------------------------------------

    /// The venue-timestamp-to-receive lag of a data frame, where the venue
    /// stamps its payloads (feature `metrics`).
    #[cfg(feature = "metrics")]
    fn record_venue_lag(&self, frame: &Frame) {
        let Some(histogram) = self.stats.venue_lag.get() else {
            return;
        };
        let Some(stamp) = frame.venue_time() else {
            return;
        };
        // A venue clock ahead of ours is a zero lag, not a negative one.
        let lag = frame
            .received()
            .wall
            .duration_since(stamp)
            .unwrap_or_default();
        histogram.record(lag.as_secs_f64());
    }

    /// A book snapshot fetch ended: the adapter applies it, and a break it
    /// finds (in the deltas it buffered meanwhile) is reported now, as a
    /// frame's would be (counted, signalled in-band, an event, a resync), not
    /// with the subscription's next frame, which may be long in coming.
    /// Before the subscription's ack, the break rides on its last stashed
    /// frame, as it would have on a frame; a break of no subscription is
    /// dropped (nothing is left to resync).
    pub(crate) fn on_snapshot_fetched(&mut self, fetched: SnapshotFetched) {
        let server_id = fetched.server_id.clone();
        let Some(kind) = self.protocol.snapshot_fetched(fetched) else {
            return;
        };
        match self.registry.route(&server_id) {
            Route::To(client_id) => {
                if let Some(queue) = self.registry.get(client_id).map(|e| Arc::clone(&e.queue)) {
                    self.after_push(client_id, &queue, true, Some(kind), false);
                }
            }
            Route::Stash if self.registry.stash_break(&server_id, kind) => {}
            Route::Stash | Route::Unroutable => {
                tracing::debug!(?server_id, ?kind, "a book break of no subscription");
            }
        }
    }

    /// Routes a data frame by its server id.
    fn route(
        &mut self,
        server_id: ServerId,
        frame: Frame,
        book_break: Option<BookBreak>,
        now: Instant,
    ) {
        match self.registry.route(&server_id) {
            Route::To(client_id) => self.deliver(Some(client_id), frame, book_break, now),
            Route::Stash => {
                let counters = &self.stats.counters;
                let stashed = Stashed {
                    server_id,
                    frame,
                    book_break,
                };
                let evicted = self.registry.stash(stashed);
                counters.unroutable.add(evicted as u64);
                counters.stashed.set(self.registry.stashed() as u64);
            }
            Route::Unroutable => {
                self.stats.counters.unroutable.bump();
                let text = frame.as_text().unwrap_or_default();
                let kind = self.protocol.frame_kind(text).unwrap_or("unnamed");
                if let Some(kind) = self.stats.count_unplaced(kind, Unplaced::Unroutable) {
                    self.report_unplaced(kind, Unplaced::Unroutable);
                }
            }
        }
    }

    /// Sequence check, then the queue with its overflow policy, then what
    /// follows (a book-break signal, a resync, the end of a subscription whose
    /// consumer is gone). `None` is the client's inbound stream.
    pub(super) fn deliver(
        &mut self,
        client_id: Option<ClientId>,
        mut frame: Frame,
        book_break: Option<BookBreak>,
        now: Instant,
    ) {
        if self.parked.is_some() {
            // Order is kept: nothing overtakes the message waiting for room.
            self.backlog.push_back(Delivery {
                client_id,
                frame,
                book_break,
            });
            return;
        }
        let Some(id) = client_id else {
            let queue = Arc::clone(&self.inbound);
            if let PushNow::Full(update) = self.push(None, &queue, Update::Data(frame)) {
                self.park(None, queue, update, None, false, now);
            }
            return;
        };
        frame.set_client_id(id);
        let seq = frame.seq();
        let (queue, verdict) = match self.registry.target(id, seq) {
            None => {
                self.stats.counters.unroutable.bump();
                return;
            }
            // Nearly every frame: in order, no book break. Pushed through
            // the registry's own handle on the queue, so no reference count
            // moves; only the rare outcomes below need the core itself.
            Some((queue, SeqCheck::InOrder)) if book_break.is_none() => {
                let policy = queue.policy();
                let pushed = queue.push(Update::Data(frame));
                match self.pushed(Some(id), policy, pushed) {
                    PushNow::Alive => {}
                    PushNow::Ended => self.end_subscription(id, None, true),
                    PushNow::Full(update) => {
                        if let Some(queue) = self.registry.get(id).map(|e| Arc::clone(&e.queue)) {
                            self.park(Some(id), queue, update, None, false, now);
                        }
                    }
                }
                return;
            }
            Some((queue, verdict)) => (Arc::clone(queue), verdict),
        };
        let mut resync = false;
        match verdict {
            SeqCheck::InOrder => {}
            SeqCheck::Duplicate => {
                self.stats.counters.duplicates.bump();
                queue.count_discarded();
                return;
            }
            SeqCheck::Gap { last_seq, next_seq } => {
                self.stats.counters.gaps.bump();
                queue.push_signal(Update::Gap { last_seq, next_seq });
                self.emit(Event::Gap {
                    client_id: id,
                    last_seq,
                    next_seq,
                });
                resync = self.config.resync_on_gap;
            }
        }
        match self.push(Some(id), &queue, Update::Data(frame)) {
            PushNow::Alive => self.after_push(id, &queue, true, book_break, resync),
            PushNow::Ended => self.after_push(id, &queue, false, book_break, resync),
            PushNow::Full(update) => self.park(Some(id), queue, update, book_break, resync, now),
        }
    }

    /// What follows a data push: the end of a subscription whose consumer is
    /// gone, a book-break signal, a resync.
    pub(super) fn after_push(
        &mut self,
        client_id: ClientId,
        queue: &Queue,
        alive: bool,
        book_break: Option<BookBreak>,
        mut resync: bool,
    ) {
        if !alive {
            self.end_subscription(client_id, None, true);
            return;
        }
        if let Some(kind) = book_break {
            self.stats.counters.book_breaks.bump();
            queue.push_signal(Update::BookBreak(kind));
            self.emit(Event::BookBreak { client_id, kind });
            resync = true;
        }
        if resync {
            self.resync(client_id);
        }
    }

    /// Pushes under the queue's policy without waiting.
    pub(super) fn push(
        &mut self,
        client_id: Option<ClientId>,
        queue: &Queue,
        update: Update,
    ) -> PushNow {
        let policy = queue.policy();
        let pushed = queue.push(update);
        self.pushed(client_id, policy, pushed)
    }

    /// What a push under `policy` came to. A drop emits one event for the
    /// first drop of a run, not one per message. Inlined: it is on every
    /// data frame's path, and only the drop event is not.
    #[inline]
    fn pushed(&mut self, client_id: Option<ClientId>, policy: Overflow, pushed: Pushed) -> PushNow {
        match pushed {
            Pushed::Queued => PushNow::Alive,
            Pushed::Dropped { first } => {
                if first {
                    self.overflowed(client_id, policy);
                }
                PushNow::Alive
            }
            Pushed::ConsumerGone => PushNow::Ended,
            Pushed::Full(update) => PushNow::Full(update),
        }
    }

    #[cold]
    fn overflowed(&mut self, client_id: Option<ClientId>, policy: Overflow) {
        tracing::debug!(?client_id, ?policy, "queue full, dropping");
        self.emit(Event::Overflow { client_id, policy });
    }

    // ---- acks, rejections, responses -------------------------------------------

    fn on_subscribed(
        &mut self,
        req_id: Option<ReqId>,
        server_id: ServerId,
        channel: Option<Cow<'_, str>>,
        symbol: Option<Cow<'_, str>>,
        now: Instant,
    ) {
        self.control();
        let (channel, symbol) = (channel.as_deref(), symbol.as_deref());
        let Some(acked) = self
            .registry
            .on_subscribed(req_id, server_id.clone(), channel, symbol)
        else {
            self.on_unmatched_ack(req_id, &server_id, symbol);
            return;
        };
        let client_id = acked.client_id;
        if acked.resubscribed {
            if let Some(entry) = self.registry.get(client_id) {
                entry.queue.push_signal(Update::Resubscribed {
                    server_id: server_id.clone(),
                });
            }
            self.emit(Event::Resubscribed {
                client_id,
                server_id,
            });
        } else {
            self.actions.push(Action::SubscribeResult {
                client_id,
                result: Ok(()),
            });
            self.emit(Event::Subscribed {
                client_id,
                server_id,
            });
        }
        for stashed in acked.stashed {
            self.deliver(Some(client_id), stashed.frame, stashed.book_break, now);
        }
        if !self.registry.any_pending() {
            let unclaimed = self.registry.clear_stash();
            self.stats.counters.unroutable.add(unclaimed as u64);
            self.all_acknowledged();
        }
        self.stats
            .counters
            .stashed
            .set(self.registry.stashed() as u64);
    }

    /// A venue refused a subscribe or a request. A subscription whose session
    /// expired is kept and the connection recycled, so the token source is
    /// asked for a fresh token and the subscription replayed with it; any other
    /// refusal ends that subscription alone.
    fn on_rejected(
        &mut self,
        req_id: Option<ReqId>,
        symbol: Option<&str>,
        venue_error: VenueError,
        now: Instant,
    ) -> Result<(), SessionEnd> {
        self.control();
        self.stats.counters.venue_error(venue_error.kind);
        let session_expired = venue_error.kind == VenueErrorKind::SessionExpired;
        if session_expired && self.config.token_source.is_some() {
            // A refusal naming no member asks the whole request for a fresh
            // session: every member still waiting is replayed.
            let mut requeued = None;
            while let Some(found) = self.registry.requeue_rejected(req_id, symbol) {
                requeued.get_or_insert(found);
                if symbol.is_some() {
                    break;
                }
            }
            if let Some((client_id, op)) = requeued {
                tracing::info!(
                    %client_id,
                    "session expired; reconnecting with a fresh token"
                );
                let error = Error::Subscription {
                    op,
                    client_id,
                    req_id: req_id.map(ReqId::get),
                    error: venue_error,
                };
                return Err(SessionEnd::Lost(error));
            }
        }
        if let Some(members) = self.unnamed_members(req_id, symbol) {
            // A refusal that names none of several waiting members of one
            // request cannot be pinned on one of them (OKX does not document
            // the order of its replies to a batch): each of them ends with it,
            // never a guessed one, and a late ack of any is unsubscribed.
            let op = req_id
                .and_then(|id| self.registry.pending_op(id))
                .unwrap_or(SubscriptionOp::Subscribe);
            tracing::warn!(?req_id, error = %venue_error, members = members.len(),
                "a refusal names no member of a batched subscribe; ending each");
            for client_id in members {
                let error = Error::Subscription {
                    op,
                    client_id,
                    req_id: req_id.map(ReqId::get),
                    error: venue_error.clone(),
                };
                self.note_retry_hint(&error, now);
                self.end_subscription(client_id, Some(error), true);
            }
            return Ok(());
        }
        if let Some((client_id, op, entry)) = self.registry.on_rejected(req_id, symbol) {
            // Drop what the adapter kept for it (a book depth, a route key).
            match &entry.server_id {
                Some(server_id) => self.protocol.forget(server_id),
                None => self.protocol.forget_topic(&entry.topic),
            }
            let error = Error::Subscription {
                op,
                client_id,
                req_id: req_id.map(ReqId::get),
                error: venue_error,
            };
            tracing::warn!(%client_id, %error, "subscription rejected");
            self.note_retry_hint(&error, now);
            if !entry.acked_once {
                self.actions.push(Action::SubscribeResult {
                    client_id,
                    result: Err(error.clone()),
                });
            }
            entry.queue.finish(Some(error.clone()));
            self.emit(Event::SubscriptionEnded {
                client_id,
                error: Some(error),
            });
            if !self.registry.any_pending() {
                self.all_acknowledged();
            }
            return Ok(());
        }
        if let Some(client_id) = req_id.and_then(|id| self.take_snapshot_request(id)) {
            tracing::info!(
                %client_id,
                error = %venue_error,
                "the venue refused to re-send a snapshot; subscribing again instead"
            );
            self.resubscribe(client_id, true);
            return Ok(());
        }
        if let Some(req_id) = req_id.filter(|id| self.take_request(*id)) {
            let error = Error::Request {
                req_id: req_id.get(),
                error: venue_error,
            };
            self.note_retry_hint(&error, now);
            self.actions.push(Action::RequestResult {
                req_id,
                result: Err(error),
            });
            return Ok(());
        }
        tracing::debug!(?req_id, error = %venue_error, "venue error for no pending request");
        Ok(())
    }

    /// The members of request `req_id` still waiting for their ack, when a
    /// refusal names none of them (`symbol` is `None`) and there are several.
    fn unnamed_members(
        &self,
        req_id: Option<ReqId>,
        symbol: Option<&str>,
    ) -> Option<Vec<ClientId>> {
        let req_id = req_id.filter(|_| symbol.is_none())?;
        let members: Vec<ClientId> = self
            .registry
            .iter()
            .filter(|(_, entry)| entry.phase == Phase::Pending { req_id })
            .map(|(id, _)| id)
            .collect();
        (members.len() > 1).then_some(members)
    }

    fn on_response(
        &mut self,
        req_id: ReqId,
        error: Option<VenueError>,
        text: &Utf8Bytes,
        now: Instant,
    ) {
        // An answer may have changed what the venue holds for a live
        // subscription (Kalshi `add_markets`): later subscribes name that.
        for (server_id, topic) in self.protocol.take_changed_topics() {
            self.registry.retopic(&server_id, topic);
        }
        if !self.take_request(req_id) {
            // The answer to a snapshot request (resync) waits for nobody.
            self.take_snapshot_request(req_id);
            return;
        }
        let result = match error {
            None => Ok(Frame::from_text(text.clone(), None, self.received(now))),
            Some(error) => {
                self.stats.counters.venue_error(error.kind);
                let error = Error::Request {
                    req_id: req_id.get(),
                    error,
                };
                self.note_retry_hint(&error, now);
                Err(error)
            }
        };
        self.actions.push(Action::RequestResult { req_id, result });
    }

    /// The venue ended a subscription on its own (Kalshi's error 25 or 10):
    /// subscribe it again, without an unsubscribe for the server id the
    /// venue already dropped. A refusal of that subscribe ends it with the
    /// venue's error (`on_rejected`); it never stays open and silent.
    fn on_venue_ended(&mut self, server_id: &ServerId, error: VenueError) {
        self.control();
        self.stats.counters.venue_error(error.kind);
        let Some(client_id) = self.registry.route_of(server_id) else {
            tracing::debug!(%server_id, %error, "the venue ended a subscription nobody holds");
            return;
        };
        tracing::warn!(
            %client_id,
            %server_id,
            %error,
            "the venue ended the subscription; subscribing again"
        );
        // A snapshot request on the ended server id will never be answered;
        // it must not hold back the resubscribe.
        if let Some(link) = &mut self.link {
            link.drop_snapshot_request(client_id);
        }
        self.resubscribe(client_id, false);
    }

    // ---- how the socket ends -------------------------------------------------

    fn on_close_frame(&mut self, frame: Option<CloseFrame>) -> SessionEnd {
        if self.is_closing() {
            return SessionEnd::Closed;
        }
        let (code, reason) = match frame {
            Some(frame) => (u16::from(frame.code), frame.reason.as_str().to_owned()),
            None => (1005, String::new()),
        };
        // Decided once, under the configured rule, and recorded in the error so
        // `is_retryable()` agrees with what the supervisor does with it.
        let permanent = match &self.config.permanent_close {
            Some(is_permanent) => is_permanent(code),
            None => self.protocol.is_permanent_close(code),
        };
        let error = Error::Closed {
            code,
            reason,
            permanent,
        };
        if permanent {
            SessionEnd::Fatal(error)
        } else {
            SessionEnd::Lost(error)
        }
    }

    /// The socket ended without a close frame.
    pub(crate) fn on_stream_end(&self) -> SessionEnd {
        if self.is_closing() {
            return SessionEnd::Closed;
        }
        SessionEnd::Lost(self.lost("the server ended the stream without a close frame"))
    }

    /// Reading (or writing) the socket failed, for the reason the shell
    /// describes (it maps its transport's errors; see [`SocketFailure`]).
    pub(crate) fn on_read_error(&self, failure: SocketFailure) -> SessionEnd {
        if self.is_closing() {
            // We asked to close: however the socket ends now (the peer's reply,
            // a reset, a FIN without a close frame), the session is over and
            // must not be reconnected.
            return SessionEnd::Closed;
        }
        let lost = match failure {
            SocketFailure::ResetWithoutClose => {
                self.lost("the server ended the stream without a close frame")
            }
            SocketFailure::Protocol(error) => Error::protocol(error),
            SocketFailure::Io { kind, message } => Error::connection(
                &self.config.redacted_url,
                0,
                ConnectionError::Io {
                    kind,
                    message: scrub(&message, &self.config.url),
                },
            ),
            SocketFailure::Other(text) => self.lost(&scrub(&text, &self.config.url)),
        };
        SessionEnd::Lost(lost)
    }

    fn lost(&self, why: &str) -> Error {
        Error::connection(
            &self.config.redacted_url,
            0,
            ConnectionError::Lost(why.to_owned()),
        )
    }
}
