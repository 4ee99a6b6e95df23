//! The session core: [`SessionCore`] with its calling contract, the inputs
//! that coordinate its sub-states (a connection coming and going, commands,
//! writes, timeouts, a full queue), and what the library does with one
//! inbound frame, top to bottom.
//!
//! The sub-states own their fields and their behaviour and know nothing of
//! the core (none imports this file): the connection ([`Link`], `link/`,
//! with its `TimerTable`), the subscriptions' life on the wire
//! ([`Subscriptions`], `subscriptions.rs`), the parked message
//! ([`Backpressure`]), receive times ([`ReceiveClock`]) and the venue's
//! retry hint ([`RetryHint`]). The core asks them and acts on their answers.
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
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Bytes, Message, Utf8Bytes};

use super::backpressure::{Backpressure, Delivery, Parked};
use super::deadline::later;
use super::link::{Lapsed, Link, Outgoing, WriteFailure, Written};
use super::output::{Action, SessionEnd};
use super::receive_clock::ReceiveClock;
use super::retry_hint::RetryHint;
use super::socket_failure::{self, SocketFailure};
use super::subscriptions::{Around, Subscriptions};
use crate::book::SnapshotFetched;
use crate::config::Config;
use crate::error::{ConnectionError, Error, Operation, ProtocolError, VenueError};
use crate::events::{ConnectionState, Event, Unplaced};
use crate::message::{span_of, Frame, Received, Update};
use crate::protocol::{BookBreak, Inbound, Protocol, Request, ServerId, Topic};
use crate::queue::{Overflow, Pushed, Queue};
use crate::stats::StatsHub;
use crate::subscription::{ClientId, Registry, ReqId, Route, SeqCheck, Stashed};

/// The decisions of one supervised connection, kept across reconnects: the
/// registry and protocol live as long as the client; [`Link`] holds what
/// lives as long as one connection.
///
/// # Calling contract
///
/// Modelled on quinn-proto's `Connection`: inputs go in with `now`, outputs
/// come out of `poll_*` methods, and the core does no I/O, reads no clock
/// and never calls back (the connect hands in the wall clock too). A driver
/// follows these rules; [`Drive`](crate::supervisor::drive::Drive) is the
/// one that does, and every driver (the spawned supervisor, the
/// consumer-driven feed, a replay, the fuzz harness, the unit tests) goes
/// through it.
///
/// **Inputs.** After each one the driver must *apply* (below).
/// - The handshake succeeded: [`on_connected(now, wall)`](Self::on_connected).
///   The driver reads both clocks; frames get their wall-clock receive time
///   from `wall` (a replay hands in the recorded one). A fresh session token
///   fetched for the attempt goes in before it: [`on_token`](Self::on_token).
/// - A frame was read: [`on_message(message, read_at, now)`](Self::on_message)
///   (`read_at`: when the read completed, the frame's receive time).
/// - The socket failed or ended: [`on_read_error(failure)`](Self::on_read_error)
///   (the driver describes its transport's error as a [`SocketFailure`]) or
///   [`on_stream_end`](Self::on_stream_end). Both return the session's end.
/// - A deadline passed: [`handle_timeout(now)`](Self::handle_timeout) fires
///   exactly the timers expired at `now` (an early call fires nothing).
/// - A command, with the time it is served: [`subscribe`](Self::subscribe),
///   [`unsubscribe`](Self::unsubscribe), [`send`](Self::send),
///   [`request`](Self::request) (they work offline too: subscriptions wait
///   for the next connection, what needs a socket fails at once); close
///   while connected:
///   [`begin_close(now)`](Self::begin_close) (the session goes on until the
///   peer answers or the close timeout passes).
/// - A frame from [`poll_transmit`](Self::poll_transmit) was written, or
///   writing it failed: [`on_written(written, now)`](Self::on_written) or
///   [`on_write_failed(written, failure)`](Self::on_write_failed), exactly
///   once per [`Written`] (it is not `Clone`). A failure returns the end.
/// - The full `Block` queue made room, or did not in time:
///   [`on_space(now)`](Self::on_space) or
///   [`on_block_timeout(now)`](Self::on_block_timeout).
/// - A book snapshot fetch the adapter asked for ended:
///   [`on_snapshot_fetched(fetched, now)`](Self::on_snapshot_fetched).
/// - The connection is gone: [`on_disconnected(end, now)`](Self::on_disconnected).
/// - The driver stops for good: [`finish(error, now)`](Self::finish) (every
///   stream ends; callers still waiting are answered).
///
/// **Apply**, after every input, before anything else:
/// 1. [`poll_action`](Self::poll_action) until `None`, carrying out each
///    [`Action`] in order: publish the event or the connection state; answer
///    the caller of `subscribe`, `request` or `send` it names (the driver
///    keeps the reply channels). Actions are the only way callers hear back:
///    a driver that skips this leaves them waiting.
/// 2. [`poll_snapshot_requests`](Self::poll_snapshot_requests): start each
///    book snapshot fetch the adapter asked for (only where it has a
///    [`snapshot_source`](Self::snapshot_source)).
///
/// What needs no step: deliveries (data goes straight into the
/// subscriptions' queues, which wake their consumers) and the core's stats
/// (counters and the gauges it owns). Inputs may have effects; questions
/// may not. So every input that takes `now` leaves the gauges a pool
/// places subscriptions by current before it returns: `subscriptions` (the
/// live ones) and `subscribe_ops_waiting` (subscribe operations the venue's
/// window holds back at `now`). The inputs without `now` (`on_read_error`,
/// `on_stream_end`, `on_write_failed`, `on_token`) change neither the
/// subscriptions nor a queued operation: the first three end the session,
/// and `on_disconnected` then publishes both.
///
/// **Outputs**, asked before the driver waits, in this order. Only
/// `poll_action`, `poll_transmit` and `poll_snapshot_requests` take
/// something; every other question changes nothing.
/// 1. [`blocked_on`](Self::blocked_on): `Some((queue, timeout))` while a
///    message is parked on a full `Block` queue. The driver must read nothing
///    from the socket (that is the backpressure) until `queue` has room or
///    `timeout` passes, then hand in `on_space` or `on_block_timeout`.
/// 2. [`poll_transmit(now)`](Self::poll_transmit): the frame due at `now`,
///    with how long its write may take; the driver writes it and reports the
///    outcome. When none is due, [`next_write_at(now)`](Self::next_write_at)
///    says when one will be (the rate limits pace writes; `None`: nothing
///    waits): wake then and ask again; no input is due at that wake-up.
/// 3. [`poll_timeout`](Self::poll_timeout): the earliest deadline of the
///    timer table; wake then and hand in `handle_timeout` (`None` while
///    disconnected).
///
///    The two wake-ups stay apart on purpose. The write slot is not a
///    stored deadline but a function of `now`, the outbound queue's two
///    fronts and the two limiters' histories: which lane goes next depends
///    on whether the operations window is open at `now`, so with nothing
///    queued or written in between a frame can be due at one instant and
///    not at a later one (a one-off send that skips the rate limit goes
///    ahead of a held subscribe while the window is shut, and waits behind
///    it for the rate limit once the window opens). No instant stored when
///    the queue last changed answers that. A `Pacing` slot in the timer
///    table would also have to be worked out again on every push (pings,
///    heartbeat answers, each command, each resync or refusal that queues
///    a frame), every write and every withdrawn request, to save one
///    evaluation per wake-up, which `next_write_at` already is. And a
///    write slot that opens is not a timer that fires: it needs no input,
///    only `poll_transmit`, so folding it into `poll_timeout` would hand
///    `handle_timeout` (and a recording's tape) a tick for every paced
///    frame. The one answer a driver waits on is
///    [`Drive::next_turn`](crate::supervisor::drive::Drive::next_turn)'s
///    `Turn`, which takes both.
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
///
/// **Sub-states** own their fields and behaviour (one `impl` each); the
/// core coordinates them: [`Link`] (one connection: the outbound queue, the
/// timer table, requests in flight), [`Subscriptions`] (the registry, the
/// protocol adapter, request ids, and what subscribing, ending, resyncing,
/// a refusal and a timeout send), [`Backpressure`] (the parked message),
/// [`ReceiveClock`] and [`RetryHint`].
pub(crate) struct SessionCore<P> {
    pub(super) config: Arc<Config>,
    /// The subscriptions, the protocol adapter and request ids
    /// (`subscriptions.rs`).
    subs: Subscriptions<P>,
    pub(super) stats: Arc<StatsHub>,
    /// Frames that belong to no subscription (the client's `Messages` stream).
    pub(super) inbound: Arc<Queue>,
    /// How long a venue asked to wait before the next attempt (`retry_hint.rs`).
    retry_hint: RetryHint,
    /// The current connection; `None` while disconnected.
    pub(super) link: Option<Link>,
    /// A data message waiting for room in a full `Block` queue, and the
    /// deliveries held behind it (`backpressure.rs`). While it waits the
    /// shell reads nothing from the socket: that is the backpressure.
    backpressure: Backpressure,
    /// What the driver must do next, in order ([`poll_action`](Self::poll_action)).
    pub(super) actions: VecDeque<Action>,
    /// Frames' receive times from the clocks the driver hands in
    /// (`receive_clock.rs`).
    clock: ReceiveClock,
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
            subs: Subscriptions::new(
                protocol,
                Registry::new(config.stash_capacity, config.stash_bytes),
            ),
            config,
            stats,
            inbound,
            retry_hint: RetryHint::default(),
            link: None,
            backpressure: Backpressure::default(),
            actions: VecDeque::new(),
            clock: ReceiveClock::default(),
        }
    }

    /// The receive time of the current frame, handled at `now`.
    #[inline]
    fn received(&self, now: Instant) -> Received {
        self.clock.received(now)
    }

    /// The registry, read by the unit tests and the fuzz harness (the core
    /// itself publishes what the rest of the crate needs of it).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn registry(&self) -> &Registry {
        &self.subs.registry
    }

    /// The next thing the driver must do, in order; `None` once all are
    /// taken. Cheap when there is none (asked after every input).
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub(super) fn emit(&mut self, event: Event) {
        self.actions.push_back(Action::Emit(event));
    }

    // ---- the protocol adapter's own I/O ------------------------------------

    /// Where the adapter's book snapshots are fetched from, if it fetches
    /// any (the driver runs the fetches).
    pub(crate) fn snapshot_source(&self) -> Option<Arc<dyn crate::book::SnapshotSource>> {
        self.subs.protocol.book_snapshot_source()
    }

    /// The book snapshot fetches the adapter asked for since the last call;
    /// the driver starts each and hands its result to
    /// [`on_snapshot_fetched`](Self::on_snapshot_fetched).
    pub(crate) fn poll_snapshot_requests(&mut self) -> Vec<crate::book::SnapshotRequest> {
        self.subs.protocol.take_snapshot_requests()
    }

    /// Replay: whether the live adapter had a snapshot source (its books
    /// then wait for snapshots as they did live; see
    /// [`Protocol::replay_snapshot_source`]). Called once, before any input.
    pub(crate) fn replaying_with_snapshot_source(&mut self, live: bool) {
        self.subs.protocol.replay_snapshot_source(live);
    }

    /// The params of `request` its adapter names as recordable (a recorder
    /// keeps only these; see [`Protocol::recordable_params`]).
    pub(crate) fn recordable_params(&self, request: &Request) -> Option<serde_json::Value> {
        self.subs.protocol.recordable_params(request)
    }

    /// A fresh session token (fetched by the driver before an attempt).
    pub(crate) fn on_token(&mut self, token: &str) {
        self.subs.protocol.set_token(token);
    }

    // ---- commands and the subscriptions (`subscriptions.rs`) -----------------

    /// The subscriptions' sub-state, with the parts of the core it acts on.
    fn subscriptions(&mut self) -> (&mut Subscriptions<P>, Around<'_>) {
        let around = Around {
            link: &mut self.link,
            actions: &mut self.actions,
            stats: &self.stats,
            config: &self.config,
            retry_hint: &mut self.retry_hint,
        };
        (&mut self.subs, around)
    }

    /// New subscriptions (see [`Subscriptions::subscribe`]); each caller is
    /// answered by a [`Action::SubscribeResult`] at its first ack or failure.
    pub(crate) fn subscribe(&mut self, subs: Vec<(ClientId, Topic, Arc<Queue>)>, now: Instant) {
        let (state, mut around) = self.subscriptions();
        state.subscribe(subs, &mut around);
        self.publish_gauges(now);
    }

    /// Ends a subscription on request (or because its handle was dropped).
    pub(crate) fn unsubscribe(&mut self, client_id: ClientId, now: Instant) {
        self.end_subscription(client_id, None, true);
        self.publish_gauges(now);
    }

    /// Queues a one-off frame; answered by [`Action::SendResult`] once
    /// written (or failed). Fails at once while disconnected: it must never
    /// go out on a later connection than the caller meant. With
    /// `rate_limited: false` it does not spend the outbound rate limit's budget.
    pub(crate) fn send(
        &mut self,
        send_id: u64,
        message: Message,
        rate_limited: bool,
        now: Instant,
    ) {
        match &mut self.link {
            Some(link) => link.push_back(Outgoing::Send {
                message,
                send_id,
                rate_limited,
            }),
            None => {
                let error = self.not_connected();
                self.actions.push_back(Action::SendResult {
                    send_id,
                    result: Err(error),
                });
            }
        }
        self.publish_gauges(now);
    }

    /// Queues a request and returns its request id, which its
    /// [`Action::RequestResult`] will carry. Fails at once while disconnected.
    pub(crate) fn request(&mut self, request: &Request, now: Instant) -> Result<ReqId, Error> {
        let queued = self.queue_request(request);
        self.publish_gauges(now);
        queued
    }

    fn queue_request(&mut self, request: &Request) -> Result<ReqId, Error> {
        let Some(link) = &mut self.link else {
            return Err(self.not_connected());
        };
        let req_id = self.subs.next_req_id();
        let text = self
            .subs
            .protocol
            .encode_request(request, req_id.get())
            .map_err(Error::protocol)?;
        link.push_request(text, req_id);
        Ok(req_id)
    }

    fn not_connected(&self) -> Error {
        Error::connection(&self.config.redacted_url, 0, ConnectionError::NotConnected)
    }

    /// The client is finishing: every subscription's stream ends, with
    /// `error` as its last item when there is one, and so does the inbound stream.
    pub(crate) fn finish(&mut self, error: Option<&Error>, now: Instant) {
        self.end_stall(now);
        self.subs.finish(error, &mut self.actions);
        self.inbound.finish(error.cloned());
        self.publish_gauges(now);
    }

    fn flush_unsent(&mut self) {
        let (subs, mut around) = self.subscriptions();
        subs.flush_unsent(&mut around);
    }

    fn end_subscription(&mut self, client_id: ClientId, error: Option<Error>, tell_venue: bool) {
        let (subs, mut around) = self.subscriptions();
        subs.end_subscription(client_id, error, tell_venue, &mut around);
    }

    fn resync(&mut self, client_id: ClientId) {
        let (subs, mut around) = self.subscriptions();
        subs.resync(client_id, &mut around);
    }

    /// The subscription a snapshot request `req_id` was for, forgotten now
    /// that it was answered, refused or timed out.
    fn take_snapshot_request(&mut self, req_id: ReqId) -> Option<ClientId> {
        self.link.as_mut()?.pending.take_snapshot_request(req_id)
    }

    // ---- the connection comes and goes ----------------------------------------

    /// The handshake succeeded at `now`, when the wall clock read `wall`:
    /// queue the on-connect frames and replay every unsent subscription.
    /// Frames of this connection get wall-clock receive times counted from
    /// `wall` (the driver reads the clock; a replay hands in the recorded one).
    pub(crate) fn on_connected(&mut self, now: Instant, wall: SystemTime) {
        self.clock.anchor(now, wall);
        let subscribe_ops = self.subs.protocol.limits().subscribe_ops;
        self.link = Some(Link::new(&self.config, subscribe_ops, now));
        self.flush_unsent();
        if !self.subs.registry.any_pending() {
            self.all_acknowledged();
        }
        self.publish_gauges(now);
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
        // feed dropped mid-session does: the consumer will not make room.
        self.end_stall(now);
        let Some(link) = self.link.take() else {
            self.publish_gauges(now);
            return;
        };
        link.end(&end.error(), &mut self.actions);
        let dropped = self.subs.registry.on_disconnect();
        let counters = &self.stats.counters;
        counters.unroutable.add(dropped as u64);
        counters.stashed.set(0);
        self.subs.protocol.reset();
        self.publish_gauges(now);
    }

    pub(super) fn is_closing(&self) -> bool {
        self.link.as_ref().is_some_and(Link::is_closing)
    }

    /// Whether the shell should drain buffered frames now: not while closing
    /// (only the peer's close matters then) and not while a message is parked.
    pub(crate) fn accepts_reads(&self) -> bool {
        !self.backpressure.is_parked() && !self.is_closing()
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
    fn note_retry_hint(&mut self, error: &Error, now: Instant) {
        self.retry_hint.note(error, self.config.backoff.cap, now);
    }

    /// The wait a retry hint still asks for, once.
    pub(crate) fn take_retry_wait(&mut self, now: Instant) -> Duration {
        self.retry_hint.take_wait(now)
    }

    // ---- writes ---------------------------------------------------------------

    /// When the next frame may be written: `None` when nothing waits. Pure:
    /// asking changes nothing.
    pub(crate) fn next_write_at(&self, now: Instant) -> Option<Instant> {
        self.link.as_ref()?.next_write_at(now)
    }

    /// Publishes the gauges a pool reads to place a subscription: the live
    /// subscriptions (`subscriptions`) and how many subscribe operations the
    /// venue's window holds back at `now` (`subscribe_ops_waiting`). The
    /// last step of every input that takes `now`, inside the core, so no
    /// driver has a step to forget and no getter writes them: the counts
    /// change with commands, frames, timeouts, writes and when the window
    /// opens, and the driver hands in an input for each of those (a write
    /// slot that opens is followed by a write and its `on_written`). Cheap:
    /// two relaxed stores at most, as `Drive`'s apply step did before.
    fn publish_gauges(&self, now: Instant) {
        let counters = &self.stats.counters;
        counters.subscriptions.set(self.subs.registry.len() as u64);
        let held = self.link.as_ref().map_or(0, |l| l.ops_held(now)) as u64;
        let gauge = &self.stats.counters.subscribe_ops_waiting;
        if gauge.get() != held {
            gauge.set(held);
        }
    }

    /// The next frame to write, if one is due at `now`, and how long the
    /// driver may wait for the peer to take it. The driver writes it and
    /// reports back with [`on_written`](Self::on_written) or
    /// [`on_write_failed`](Self::on_write_failed).
    pub(crate) fn poll_transmit(&mut self, now: Instant) -> Option<(Message, Written, Duration)> {
        let (message, written) = self.link.as_mut()?.take_write(now)?;
        let timeout = if written.is_close() {
            self.config.close_timeout
        } else {
            self.config.request_timeout
        };
        Some((message, written, timeout))
    }

    /// `written` went out at `now`: start what its writing starts.
    pub(crate) fn on_written(&mut self, written: Written, now: Instant) {
        self.count_written(written, now);
        self.publish_gauges(now);
    }

    fn count_written(&mut self, written: Written, now: Instant) {
        let counters = &self.stats.counters;
        counters.frames_out.bump();
        counters.bytes_out.add(written.len());
        let Some(link) = &mut self.link else {
            return;
        };
        if let Some(send_id) = link.on_written(&written, &self.config, now) {
            self.actions.push_back(Action::SendResult {
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
            self.actions.push_back(Action::SendResult {
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
        self.start_closing(now);
        self.publish_gauges(now);
    }

    fn start_closing(&mut self, now: Instant) {
        let Some(link) = &mut self.link else {
            return;
        };
        let deadline = later(now, self.config.close_timeout);
        if link.begin_close(deadline, &mut self.actions) {
            self.actions
                .push_back(Action::SetState(ConnectionState::Closing));
        }
    }

    // ---- timers (the link's `TimerTable` keeps them) --------------------------

    /// The earliest deadline of the connection's timer table: when
    /// [`handle_timeout`](Self::handle_timeout) is next due; `None` while
    /// disconnected. Asking changes nothing.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.link.as_ref()?.liveness.next_timer()
    }

    /// Time passed: fires exactly the timers expired at `now` (the close,
    /// pong and idle deadlines end the session; stale reports, request
    /// deadlines and the next ping are acted on here). Early or extra calls
    /// fire nothing that is not due.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionEnd> {
        let step = self.fire_timers(now);
        self.publish_gauges(now);
        step
    }

    fn fire_timers(&mut self, now: Instant) -> Result<(), SessionEnd> {
        let Some(link) = &mut self.link else {
            return Ok(());
        };
        let due = match link
            .liveness
            .on_tick(&self.config, &self.subs.registry, now)
        {
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
            let (subs, mut around) = self.subscriptions();
            subs.expire(req_id, &mut around)?;
        }
        if due.ping {
            self.ping();
        }
        Ok(())
    }

    fn ping(&mut self) {
        let req_id = self.subs.next_req_id();
        let outgoing = match self.subs.protocol.encode_ping(req_id.get()) {
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
            link.liveness.pong_received();
        }
    }

    /// A data frame or venue heartbeat: the feed is alive.
    #[inline] // on every data frame's path
    fn data_seen(&mut self) {
        if let Some(link) = &mut self.link {
            link.liveness.data_seen();
        }
    }

    /// Removes `req_id` from the requests in flight; whether it was one.
    pub(super) fn take_request(&mut self, req_id: ReqId) -> bool {
        self.link
            .as_mut()
            .is_some_and(|link| link.pending.take_request(req_id))
    }

    // ---- one frame from the socket ------------------------------------------

    /// A message read from the socket; the read completed at `read_at` (the
    /// frame's receive time; the session's timers keep `now`).
    pub(crate) fn on_message(
        &mut self,
        message: Message,
        read_at: Instant,
        now: Instant,
    ) -> Result<(), SessionEnd> {
        let step = self.read_message(message, read_at, now);
        self.publish_gauges(now);
        step
    }

    #[inline] // every frame's path
    fn read_message(
        &mut self,
        message: Message,
        read_at: Instant,
        now: Instant,
    ) -> Result<(), SessionEnd> {
        self.clock.read_at(read_at);
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
        let mut inbound = self.subs.protocol.classify(text.as_str());
        if let Inbound::Sequenced {
            server_id,
            seq,
            then,
        } = inbound
        {
            // A control frame took a number of a subscription's sequence: the
            // next data frame must not be taken for a gap.
            self.subs.registry.note_control_seq(&server_id, seq);
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
                // The built-in adapters' search runs when the venue time is
                // asked, not here (see `Protocol::venue_time_finder`).
                frame.stamp_venue_time(&self.subs.protocol);
                #[cfg(feature = "metrics")]
                self.record_venue_lag(&frame);
                self.route(server_id, frame, book_break, now);
            }
            Inbound::Unsolicited => {
                self.data_seen();
                if let Some(kind) = self.subs.protocol.frame_kind(text.as_str()) {
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
            } => {
                let (subs, mut around) = self.subscriptions();
                let req_id = req_id.map(ReqId::from);
                return subs.on_rejected(req_id, symbol.as_deref(), error, now, &mut around);
            }
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
            Inbound::Ended { server_id, error } => {
                let (subs, mut around) = self.subscriptions();
                subs.on_venue_ended(&server_id, error, &mut around);
            }
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
        match self.subs.protocol.decode_binary(&data) {
            Some(Ok(text)) => return self.on_text(Utf8Bytes::from(text), now),
            Some(Err(error)) => {
                self.invalid(error);
                return Ok(());
            }
            None => {}
        }
        match self.subs.protocol.classify_binary(&data) {
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
    /// stamps its payloads (feature `metrics`). Every client sets the
    /// histogram, so with the feature on this asks every data frame's venue
    /// time as it is routed (the search runs here, once per frame); without
    /// the feature nothing is searched while routing.
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
    pub(crate) fn on_snapshot_fetched(&mut self, fetched: SnapshotFetched, now: Instant) {
        self.apply_snapshot(fetched);
        self.publish_gauges(now);
    }

    fn apply_snapshot(&mut self, fetched: SnapshotFetched) {
        let server_id = fetched.server_id.clone();
        let Some(kind) = self.subs.protocol.snapshot_fetched(fetched) else {
            return;
        };
        match self.subs.registry.route(&server_id) {
            Route::To(client_id) => {
                if let Some(queue) = self
                    .subs
                    .registry
                    .get(client_id)
                    .map(|e| Arc::clone(&e.queue))
                {
                    self.after_push(client_id, &queue, true, Some(kind), false);
                }
            }
            Route::Stash if self.subs.registry.stash_break(&server_id, kind) => {}
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
        match self.subs.registry.route(&server_id) {
            Route::To(client_id) => self.deliver(Some(client_id), frame, book_break, now),
            Route::Stash => {
                let counters = &self.stats.counters;
                let stashed = Stashed {
                    server_id,
                    frame,
                    book_break,
                };
                let evicted = self.subs.registry.stash(stashed);
                counters.unroutable.add(evicted as u64);
                counters.stashed.set(self.subs.registry.stashed() as u64);
            }
            Route::Unroutable => {
                self.stats.counters.unroutable.bump();
                let text = frame.as_text().unwrap_or_default();
                let kind = self.subs.protocol.frame_kind(text).unwrap_or("unnamed");
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
        if self.backpressure.is_parked() {
            // Order is kept: nothing overtakes the message waiting for room.
            self.backpressure.hold(Delivery {
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
        let (queue, verdict) = match self.subs.registry.target(id, seq) {
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
                        if let Some(queue) =
                            self.subs.registry.get(id).map(|e| Arc::clone(&e.queue))
                        {
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

    // ---- a full `Block` queue (`backpressure.rs` keeps the state) -------------

    fn park(
        &mut self,
        client_id: Option<ClientId>,
        queue: Arc<Queue>,
        update: Update,
        book_break: Option<BookBreak>,
        resync: bool,
        now: Instant,
    ) {
        self.backpressure.park(Parked {
            client_id,
            queue,
            update,
            book_break,
            resync,
            since: now,
        });
    }

    /// The queue the driver must wait on (and for how long at most) before it
    /// reads the socket again, while a `Block` queue is full.
    pub(crate) fn blocked_on(&self) -> Option<(Arc<Queue>, Duration)> {
        self.backpressure.blocked_on()
    }

    /// The parked queue has room (or its consumer is gone): push again.
    pub(crate) fn on_space(&mut self, now: Instant) {
        self.push_parked(now);
        self.publish_gauges(now);
    }

    fn push_parked(&mut self, now: Instant) {
        let Some(parked) = self.backpressure.unpark() else {
            return;
        };
        let Parked {
            client_id,
            queue,
            update,
            book_break,
            resync,
            since,
        } = parked;
        let alive = match self.push(client_id, &queue, update) {
            PushNow::Full(update) => {
                self.backpressure.park(Parked {
                    client_id,
                    queue,
                    update,
                    book_break,
                    resync,
                    since,
                });
                return;
            }
            PushNow::Alive => true,
            PushNow::Ended => false,
        };
        if let Some(id) = client_id {
            self.after_push(id, &queue, alive, book_break, resync);
        }
        self.resume(since, now);
    }

    /// The consumer did not make room in time: that subscription ends with
    /// [`Error::Backpressure`]; the connection and the others go on.
    pub(crate) fn on_block_timeout(&mut self, now: Instant) {
        self.drop_parked(now);
        self.publish_gauges(now);
    }

    fn drop_parked(&mut self, now: Instant) {
        let Some(parked) = self.backpressure.unpark() else {
            return;
        };
        let error = self.backpressure_error(parked.client_id, &parked.queue);
        parked.queue.finish(Some(error.clone()));
        // Counted (routed and dropped) now that the queue is finished.
        let _ = parked.queue.push(parked.update);
        if let Some(id) = parked.client_id {
            self.end_subscription(id, Some(error), true);
        }
        self.resume(parked.since, now);
    }

    /// Ends the stall on a full `Block` queue, if any, as a timeout would:
    /// each timeout ends a subscription, so this ends, and afterwards
    /// nothing is parked and the held deliveries have gone out.
    pub(super) fn end_stall(&mut self, now: Instant) {
        while self.backpressure.is_parked() {
            self.drop_parked(now);
        }
    }

    /// After a stall: the liveness deadlines did not run while we were not
    /// reading (a stalled consumer is not a dead peer), then the deliveries
    /// held behind the parked one go out in order.
    fn resume(&mut self, since: Instant, now: Instant) {
        if let Some(link) = &mut self.link {
            link.pause_liveness(now.saturating_duration_since(since));
        }
        while let Some(next) = self.backpressure.next_held() {
            self.deliver(next.client_id, next.frame, next.book_break, now);
        }
    }

    fn backpressure_error(&self, client_id: Option<ClientId>, queue: &Queue) -> Error {
        let entry = client_id.and_then(|id| self.subs.registry.get(id));
        Error::Backpressure {
            channel: entry.map_or_else(|| "inbound".to_owned(), |e| e.topic.to_string()),
            server_id: entry
                .and_then(|e| e.server_id.as_ref())
                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            client_id: client_id.unwrap_or(ClientId::new(0)),
            maxsize: queue.capacity(),
        }
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
        let Some(acked) =
            self.subs
                .registry
                .on_subscribed(req_id, server_id.clone(), channel, symbol)
        else {
            let (subs, mut around) = self.subscriptions();
            subs.on_unmatched_ack(req_id, &server_id, symbol, &mut around);
            return;
        };
        let client_id = acked.client_id;
        if acked.resubscribed {
            if let Some(entry) = self.subs.registry.get(client_id) {
                entry.queue.push_signal(Update::Resubscribed {
                    server_id: server_id.clone(),
                });
            }
            self.emit(Event::Resubscribed {
                client_id,
                server_id,
            });
        } else {
            self.actions.push_back(Action::SubscribeResult {
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
        if !self.subs.registry.any_pending() {
            let unclaimed = self.subs.registry.clear_stash();
            self.stats.counters.unroutable.add(unclaimed as u64);
            self.all_acknowledged();
        }
        self.stats
            .counters
            .stashed
            .set(self.subs.registry.stashed() as u64);
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
        for (server_id, topic) in self.subs.protocol.take_changed_topics() {
            self.subs.registry.retopic(&server_id, topic);
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
        self.actions
            .push_back(Action::RequestResult { req_id, result });
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
            None => self.subs.protocol.is_permanent_close(code),
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
        SessionEnd::Lost(failure.into_error(&self.config))
    }

    fn lost(&self, why: &str) -> Error {
        socket_failure::lost(&self.config, why)
    }
}
