//! One connected session: the `select!` loop over the socket, the command
//! channel, the outbound rate limiter and the liveness timers.
//!
//! Per inbound frame: count it, let the protocol classify it, then route it:
//! data to its subscription's queue (sequence-checked), acks to the registry,
//! responses to waiting requests, everything else counted as control or
//! unroutable. Outbound frames (subscribes, pings, sends, requests) go through
//! one queue in front of the strict rate limiter.
//!
//! When the session ends for any reason, requests still in flight fail with
//! that reason: they are never replayed (an order may have been committed).
//! Subscriptions are replayed by the next session.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use futures::{FutureExt, SinkExt, StreamExt};
use tokio::sync::oneshot;
use tokio::time::{sleep_until, Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Bytes, Message, Utf8Bytes};

use super::rate_limit::RateLimiter;
use super::{Command, SessionEnd, Supervisor, Ws};
use crate::error::{
    scrub, ConnectionError, Error, Operation, ProtocolError, SubscriptionOp, VenueError,
};
use crate::events::{ConnectionState, Event};
use crate::message::{Frame, Update};
use crate::protocol::{ChecksumMismatch, Inbound, Protocol, ServerId, Topic};
use crate::queue::{Overflow, Pushed, Queue};
use crate::stats::StatsHub;
use crate::subscription::{ClientId, Phase, Route, SeqCheck, Stashed};
use crate::venue_error::VenueErrorKind;

/// Frames handled per wake-up before yielding back to `select!`, so a busy
/// socket amortises the select cost without starving commands and timers.
const READ_BATCH: usize = 64;

/// Commands are not taken while this many frames wait for the rate limiter;
/// the bounded command channel then pushes back on the callers.
const OUTBOUND_LIMIT: usize = 1024;

enum Outgoing {
    /// The on-connect handshake frames.
    Handshake(String),
    Subscribe {
        text: String,
        req_id: u64,
    },
    Unsubscribe {
        text: String,
    },
    Ping {
        text: String,
    },
    Send {
        text: String,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Request {
        text: String,
        req_id: u64,
    },
}

/// The reply a one-off send waits for once its frame is written.
type SendReply = oneshot::Sender<Result<(), Error>>;

impl Outgoing {
    /// The text, the request id whose deadline starts when written, and the
    /// reply of a one-off send.
    fn into_parts(self) -> (String, Option<u64>, Option<SendReply>) {
        match self {
            Outgoing::Handshake(text)
            | Outgoing::Unsubscribe { text }
            | Outgoing::Ping { text } => (text, None, None),
            Outgoing::Subscribe { text, req_id } | Outgoing::Request { text, req_id } => {
                (text, Some(req_id), None)
            }
            Outgoing::Send { text, reply } => (text, None, Some(reply)),
        }
    }
}

/// The outcome of [`Session::push_now`].
enum PushNow {
    /// Queued, or dropped under the policy: the subscription goes on.
    Alive,
    /// The consumer is gone.
    Ended,
    /// A `Block` queue is full: the message is handed back.
    Full(Update),
}

/// A data message waiting for room in a `Block` queue.
struct Parked {
    queue: Arc<Queue>,
    update: Update,
    resync: bool,
}

struct Session<'a, P> {
    sup: &'a mut Supervisor<P>,
    ws: Ws,
    outbound: VecDeque<Outgoing>,
    limiter: RateLimiter,
    requests: HashMap<u64, oneshot::Sender<Result<Frame, Error>>>,
    deadlines: BTreeSet<(Instant, u64)>,
    awaiting_pong: Option<Instant>,
    next_ping: Instant,
    data_seen: u64,
    idle: Option<IdleWatch>,
    closing: Option<Instant>,
    /// Subscriptions ended while their subscribe was still unanswered (say, a
    /// `subscribe` call dropped by a timeout). If the ack comes after all, the
    /// venue is told to unsubscribe, or it would stream to nobody for the rest
    /// of the connection. Bounded: the oldest are forgotten.
    abandoned: VecDeque<(u64, Topic)>,
}

/// How many abandoned subscribes a session remembers.
const ABANDONED_LIMIT: usize = 64;

/// Idle detection without touching a timer per frame: a tick every quarter of
/// the timeout compares a frame counter with the previous tick's.
struct IdleWatch {
    timeout: Duration,
    next_tick: Instant,
    seen_at_tick: u64,
    last_activity: Instant,
}

pub(super) async fn run<P: Protocol>(sup: &mut Supervisor<P>, ws: Ws) -> SessionEnd {
    let now = Instant::now();
    let idle = sup.config.idle_timeout.map(|timeout| IdleWatch {
        timeout,
        next_tick: now + timeout / 4,
        seen_at_tick: 0,
        last_activity: now,
    });
    let mut session = Session {
        limiter: RateLimiter::new(sup.config.rate_limit),
        next_ping: now + sup.config.ping_interval,
        sup,
        ws,
        outbound: VecDeque::new(),
        requests: HashMap::new(),
        deadlines: BTreeSet::new(),
        awaiting_pong: None,
        data_seen: 0,
        idle,
        closing: None,
        abandoned: VecDeque::new(),
    };
    for frame in session.sup.config.on_connect.clone() {
        session.outbound.push_back(Outgoing::Handshake(frame));
    }
    session.flush_unsent();
    let end = session.run().await;
    session.fail_in_flight(&end);
    if let SessionEnd::Lost(Error::Closed { .. }) | SessionEnd::Fatal(Error::Closed { .. }) = &end {
        // Complete the close handshake politely: tungstenite queued our reply.
        let bound = session.sup.config.close_timeout.min(Duration::from_secs(1));
        let _ = tokio::time::timeout(bound, session.ws.flush()).await;
    }
    end
}

impl<P: Protocol> Session<'_, P> {
    async fn run(&mut self) -> SessionEnd {
        loop {
            let write_at = if self.outbound.is_empty() || self.closing.is_some() {
                None
            } else {
                Some(self.limiter.next_slot(Instant::now()))
            };
            let timer_at = self.next_timer();
            let take_commands = self.closing.is_none() && self.outbound.len() < OUTBOUND_LIMIT;

            let step = if write_at.is_some_and(|at| at <= Instant::now()) {
                // Due now: write without arming a timer, which tokio rounds up
                // to the next millisecond (a 10-subscription replay took ~10 ms).
                self.write_next().await
            } else {
                tokio::select! {
                    message = self.ws.next() => self.on_socket(message).await,
                    command = self.sup.commands.recv(), if take_commands => self.on_command(command).await,
                    () = sleep_opt(write_at) => self.write_next().await,
                    () = sleep_until(timer_at) => self.on_timers().await,
                }
            };
            if let Err(end) = step {
                return end;
            }
            if self.closing.is_none() {
                // Drain frames that are already buffered before selecting again.
                for _ in 0..READ_BATCH {
                    let Some(message) = self.ws.next().now_or_never() else {
                        break;
                    };
                    if let Err(end) = self.on_socket(message).await {
                        return end;
                    }
                    // Frames already inside tungstenite's buffer cost no tokio budget,
                    // so without this a busy socket never yields and a consumer woken
                    // onto this worker cannot run until its queue has overflowed.
                    tokio::task::coop::consume_budget().await;
                }
            }
        }
    }

    // ---- inbound ---------------------------------------------------------

    async fn on_socket(
        &mut self,
        message: Option<Result<Message, tungstenite::Error>>,
    ) -> Result<(), SessionEnd> {
        let message = match message {
            Some(Ok(message)) => message,
            Some(Err(error)) => return Err(self.read_error(error)),
            None if self.closing.is_some() => return Err(SessionEnd::Closed),
            None => {
                return Err(SessionEnd::Lost(
                    self.lost("the server ended the stream without a close frame"),
                ));
            }
        };
        let counters = &self.sup.shared.stats.counters;
        StatsHub::bump(&counters.frames_in);
        match message {
            Message::Text(text) => {
                StatsHub::add(&counters.bytes_in, text.len() as u64);
                self.on_text(text).await
            }
            Message::Binary(data) => {
                StatsHub::add(&counters.bytes_in, data.len() as u64);
                self.on_binary(data).await
            }
            Message::Ping(_) | Message::Frame(_) => {
                StatsHub::bump(&counters.control);
                Ok(())
            }
            Message::Pong(_) => {
                StatsHub::bump(&counters.control);
                self.awaiting_pong = None;
                Ok(())
            }
            Message::Close(frame) => {
                StatsHub::bump(&counters.control);
                Err(self.on_close_frame(frame))
            }
        }
    }

    async fn on_text(&mut self, text: Utf8Bytes) -> Result<(), SessionEnd> {
        let inbound = self.sup.protocol.classify(text.as_str());
        match inbound {
            Inbound::Data {
                server_id,
                seq,
                checksum,
            } => {
                self.data_seen += 1;
                let frame = Frame::from_text(text, seq);
                self.on_data(server_id, frame, checksum).await
            }
            Inbound::Unsolicited => {
                self.data_seen += 1;
                let frame = Frame::from_text(text, None);
                self.deliver_unsolicited(frame).await
            }
            Inbound::Subscribed {
                req_id,
                server_id,
                channel,
                symbol,
            } => {
                let (channel, symbol) = (
                    channel.map(|c| c.into_owned()),
                    symbol.map(|s| s.into_owned()),
                );
                self.on_subscribed(req_id, server_id, channel.as_deref(), symbol.as_deref())
                    .await
            }
            Inbound::Rejected {
                req_id,
                symbol,
                error,
            } => {
                let symbol = symbol.map(|s| s.into_owned());
                self.on_rejected(req_id, symbol.as_deref(), error)
            }
            Inbound::Response { req_id, error } => {
                self.control();
                if let Some(reply) = self.requests.remove(&req_id) {
                    let _ = reply.send(match error {
                        None => Ok(Frame::from_text(text.clone(), None)),
                        Some(error) => {
                            let error = Error::Request { req_id, error };
                            self.sup.note_retry_hint(&error);
                            Err(error)
                        }
                    });
                }
                Ok(())
            }
            Inbound::Unsubscribed { .. } | Inbound::Control => {
                self.control();
                Ok(())
            }
            Inbound::Pong => {
                self.control();
                self.awaiting_pong = None;
                Ok(())
            }
            Inbound::Heartbeat => {
                self.control();
                // A venue heartbeat proves the feed itself is alive (unlike a
                // WebSocket pong, which the peer's library sends on its own).
                self.data_seen += 1;
                Ok(())
            }
            Inbound::Invalid(error) => {
                self.invalid(error);
                Ok(())
            }
        }
    }

    async fn on_binary(&mut self, data: Bytes) -> Result<(), SessionEnd> {
        match self.sup.protocol.classify_binary(&data) {
            Inbound::Unsolicited => {
                self.data_seen += 1;
                self.deliver_unsolicited(Frame::from_binary(data)).await
            }
            Inbound::Invalid(error) => {
                self.invalid(error);
                Ok(())
            }
            _ => {
                self.control();
                Ok(())
            }
        }
    }

    fn control(&self) {
        StatsHub::bump(&self.sup.shared.stats.counters.control);
    }

    fn invalid(&self, error: ProtocolError) {
        StatsHub::bump(&self.sup.shared.stats.counters.unroutable);
        tracing::debug!(%error, "skipping a frame the protocol could not classify");
        self.sup.shared.emit(Event::InvalidFrame { error });
    }

    /// Routes a data frame. Synchronous: the per-frame path builds no future
    /// unless a `Block` queue is full.
    async fn on_data(
        &mut self,
        server_id: ServerId,
        frame: Frame,
        checksum: Option<ChecksumMismatch>,
    ) -> Result<(), SessionEnd> {
        match self.route_data(server_id, frame, checksum) {
            None => Ok(()),
            Some((client_id, parked)) => {
                self.finish_parked(client_id, parked, checksum).await;
                Ok(())
            }
        }
    }

    fn route_data(
        &mut self,
        server_id: ServerId,
        frame: Frame,
        checksum: Option<ChecksumMismatch>,
    ) -> Option<(ClientId, Parked)> {
        match self.sup.registry.route(&server_id) {
            Route::To(client_id) => self
                .deliver_now(client_id, frame, checksum)
                .map(|parked| (client_id, parked)),
            Route::Stash => {
                let counters = &self.sup.shared.stats.counters;
                if self
                    .sup
                    .registry
                    .stash(Stashed {
                        server_id,
                        frame,
                        checksum,
                    })
                    .is_some()
                {
                    StatsHub::bump(&counters.unroutable);
                }
                StatsHub::set(&counters.stashed, self.sup.registry.stashed() as u64);
                None
            }
            Route::Unroutable => {
                StatsHub::bump(&self.sup.shared.stats.counters.unroutable);
                None
            }
        }
    }

    /// Sequence check, then the subscription's queue with its overflow policy.
    async fn deliver(
        &mut self,
        client_id: ClientId,
        frame: Frame,
        checksum: Option<ChecksumMismatch>,
    ) -> Result<(), SessionEnd> {
        if let Some(parked) = self.deliver_now(client_id, frame, checksum) {
            self.finish_parked(client_id, parked, checksum).await;
        }
        Ok(())
    }

    /// Waits for room for a parked message, then does what follows the push.
    async fn finish_parked(
        &mut self,
        client_id: ClientId,
        parked: Parked,
        checksum: Option<ChecksumMismatch>,
    ) {
        let alive = self
            .push_blocking(Some(client_id), &parked.queue, parked.update)
            .await;
        self.after_push(client_id, &parked.queue, alive, checksum, parked.resync);
    }

    /// Everything [`deliver`](Self::deliver) does without waiting; returns the
    /// message when a `Block` queue has no room.
    fn deliver_now(
        &mut self,
        client_id: ClientId,
        frame: Frame,
        checksum: Option<ChecksumMismatch>,
    ) -> Option<Parked> {
        let Some((queue, verdict)) = self.sup.registry.target(client_id, frame.seq()) else {
            StatsHub::bump(&self.sup.shared.stats.counters.unroutable);
            return None;
        };
        let mut resync = false;
        {
            let counters = &self.sup.shared.stats.counters;
            match verdict {
                SeqCheck::InOrder => {}
                SeqCheck::Duplicate => {
                    StatsHub::bump(&counters.duplicates);
                    queue.count_discarded();
                    return None;
                }
                SeqCheck::Gap { last_seq, next_seq } => {
                    StatsHub::bump(&counters.gaps);
                    queue.push_signal(Update::Gap { last_seq, next_seq });
                    self.sup.shared.emit(Event::Gap {
                        client_id,
                        last_seq,
                        next_seq,
                    });
                    resync = self.sup.config.resync_on_gap;
                }
                SeqCheck::Reset { last_seq, next_seq } => {
                    StatsHub::bump(&counters.resets);
                    queue.push_signal(Update::Reset { last_seq, next_seq });
                    self.sup.shared.emit(Event::SequenceReset {
                        client_id,
                        last_seq,
                        next_seq,
                    });
                    resync = self.sup.config.resync_on_gap;
                }
            }
        }
        let alive = match self.push_now(Some(client_id), &queue, Update::Data(frame)) {
            PushNow::Alive => true,
            PushNow::Ended => false,
            PushNow::Full(update) => {
                return Some(Parked {
                    queue,
                    update,
                    resync,
                })
            }
        };
        self.after_push(client_id, &queue, alive, checksum, resync);
        None
    }

    /// What follows a data push: the end of a subscription whose consumer is
    /// gone, a checksum signal, a resync.
    fn after_push(
        &mut self,
        client_id: ClientId,
        queue: &Queue,
        alive: bool,
        checksum: Option<ChecksumMismatch>,
        mut resync: bool,
    ) {
        if !alive {
            self.end_subscription(client_id, None, true);
            return;
        }
        if let Some(ChecksumMismatch { expected, computed }) = checksum {
            StatsHub::bump(&self.sup.shared.stats.counters.checksum_mismatches);
            queue.push_signal(Update::ChecksumMismatch { expected, computed });
            self.sup.shared.emit(Event::ChecksumMismatch {
                client_id,
                expected,
                computed,
            });
            resync = true;
        }
        if resync {
            self.resync(client_id);
        }
    }

    async fn deliver_unsolicited(&mut self, frame: Frame) -> Result<(), SessionEnd> {
        let queue = Arc::clone(&self.sup.inbound);
        if let PushNow::Full(update) = self.push_now(None, &queue, Update::Data(frame)) {
            self.push_blocking(None, &queue, update).await;
        }
        Ok(())
    }

    /// Pushes under the queue's policy without waiting.
    fn push_now(
        &mut self,
        client_id: Option<ClientId>,
        queue: &Arc<Queue>,
        update: Update,
    ) -> PushNow {
        match queue.push(update) {
            Pushed::Queued => PushNow::Alive,
            Pushed::Dropped { first } => {
                if first {
                    let policy = queue.policy();
                    tracing::debug!(?client_id, ?policy, "queue full, dropping");
                    self.sup.shared.emit(Event::Overflow { client_id, policy });
                }
                PushNow::Alive
            }
            Pushed::ConsumerGone => PushNow::Ended,
            Pushed::Full(update) => PushNow::Full(update),
        }
    }

    /// The `Block` policy on a full queue: stop reading the socket (TCP
    /// backpressure) until the consumer makes room. Returns whether the
    /// subscription is still alive; past the timeout it is ended here.
    async fn push_blocking(
        &mut self,
        client_id: Option<ClientId>,
        queue: &Arc<Queue>,
        mut update: Update,
    ) -> bool {
        let timeout = match queue.policy() {
            Overflow::Block { timeout } => timeout,
            _ => return true,
        };
        loop {
            if tokio::time::timeout(timeout, queue.wait_space())
                .await
                .is_err()
            {
                break;
            }
            match self.push_now(client_id, queue, update) {
                PushNow::Alive => return true,
                PushNow::Ended => return false,
                PushNow::Full(back) => update = back,
            }
        }
        let error = self.backpressure_error(client_id, queue);
        queue.finish(Some(error.clone()));
        // Counted (routed and dropped) now that the queue is finished.
        let _ = queue.push(update);
        if let Some(id) = client_id {
            self.end_subscription(id, Some(error), true);
        }
        false
    }

    fn backpressure_error(&self, client_id: Option<ClientId>, queue: &Queue) -> Error {
        let entry = client_id.and_then(|id| self.sup.registry.get(id));
        Error::Backpressure {
            channel: entry.map_or_else(|| "inbound".to_owned(), |e| e.topic.to_string()),
            server_id: entry
                .and_then(|e| e.server_id.as_ref())
                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            client_id: client_id.unwrap_or(0),
            maxsize: queue.capacity(),
        }
    }

    async fn on_subscribed(
        &mut self,
        req_id: Option<u64>,
        server_id: ServerId,
        channel: Option<&str>,
        symbol: Option<&str>,
    ) -> Result<(), SessionEnd> {
        self.control();
        let Some(acked) =
            self.sup
                .registry
                .on_subscribed(req_id, server_id.clone(), channel, symbol)
        else {
            self.on_unmatched_ack(req_id, &server_id, symbol);
            return Ok(());
        };
        let client_id = acked.client_id;
        if let Some(displaced) = acked.displaced {
            tracing::warn!(client_id, displaced, %server_id, "two subscriptions acknowledged with one server id");
        }
        if let Some(waiter) = acked.waiter {
            let _ = waiter.send(Ok(()));
        }
        if acked.resubscribed {
            if let Some(entry) = self.sup.registry.get(client_id) {
                entry.queue.push_signal(Update::Resubscribed {
                    server_id: server_id.clone(),
                });
            }
            self.sup.shared.emit(Event::Resubscribed {
                client_id,
                server_id,
            });
        } else {
            self.sup.shared.emit(Event::Subscribed {
                client_id,
                server_id,
            });
        }
        for stashed in acked.stashed {
            self.deliver(client_id, stashed.frame, stashed.checksum)
                .await?;
        }
        let counters = &self.sup.shared.stats.counters;
        if !self.sup.registry.any_pending() {
            let unclaimed = self.sup.registry.clear_stash();
            StatsHub::add(&counters.unroutable, unclaimed as u64);
        }
        StatsHub::set(&counters.stashed, self.sup.registry.stashed() as u64);
        Ok(())
    }

    /// A venue refused a subscribe or a request. A subscription whose session
    /// expired is kept and the connection recycled, so the token source is asked
    /// for a fresh token and the subscription replayed with it; any other
    /// refusal ends that subscription alone.
    fn on_rejected(
        &mut self,
        req_id: Option<u64>,
        symbol: Option<&str>,
        venue_error: VenueError,
    ) -> Result<(), SessionEnd> {
        self.control();
        let session_expired = venue_error.kind == VenueErrorKind::SessionExpired;
        if session_expired && self.sup.config.token_source.is_some() {
            if let Some((client_id, op)) = self.sup.registry.requeue_rejected(req_id, symbol) {
                tracing::info!(
                    client_id,
                    "session expired; reconnecting with a fresh token"
                );
                let error = Error::Subscription {
                    op,
                    client_id,
                    req_id,
                    error: venue_error,
                };
                return Err(SessionEnd::Lost(error));
            }
        }
        if let Some((client_id, op, mut entry)) = self.sup.registry.on_rejected(req_id, symbol) {
            let error = Error::Subscription {
                op,
                client_id,
                req_id,
                error: venue_error,
            };
            tracing::warn!(client_id, %error, "subscription rejected");
            self.sup.note_retry_hint(&error);
            if let Some(waiter) = entry.waiter.take() {
                let _ = waiter.send(Err(error.clone()));
            }
            entry.queue.finish(Some(error.clone()));
            self.sup.shared.emit(Event::SubscriptionEnded {
                client_id,
                error: Some(error),
            });
            return Ok(());
        }
        if let Some(reply) = req_id.and_then(|id| self.requests.remove(&id)) {
            let error = Error::Request {
                req_id: req_id.unwrap_or_default(),
                error: venue_error,
            };
            self.sup.note_retry_hint(&error);
            let _ = reply.send(Err(error));
            return Ok(());
        }
        tracing::debug!(?req_id, error = %venue_error, "venue error for no pending request");
        Ok(())
    }

    fn on_close_frame(&mut self, frame: Option<CloseFrame>) -> SessionEnd {
        if self.closing.is_some() {
            return SessionEnd::Closed;
        }
        let (code, reason) = match frame {
            Some(frame) => (u16::from(frame.code), frame.reason.as_str().to_owned()),
            None => (1005, String::new()),
        };
        let error = Error::Closed { code, reason };
        if (self.sup.config.permanent_close)(code) {
            SessionEnd::Fatal(error)
        } else {
            SessionEnd::Lost(error)
        }
    }

    fn read_error(&self, error: tungstenite::Error) -> SessionEnd {
        use tungstenite::error::CapacityError;
        use tungstenite::Error as E;
        if self.closing.is_some() {
            // We asked to close: however the socket ends now (the peer's reply,
            // a reset, a FIN without a close frame), the session is over and
            // must not be reconnected.
            return SessionEnd::Closed;
        }
        let lost = match error {
            // The peer closed TCP without a close frame: tungstenite calls that
            // a protocol error, but it is a dropped connection.
            E::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => {
                self.lost("the server ended the stream without a close frame")
            }
            E::Capacity(CapacityError::MessageTooLong { size, max_size }) => Error::protocol(
                ProtocolError::TooLarge(format!("{size} bytes > limit {max_size}")),
            ),
            E::Capacity(other) => Error::protocol(ProtocolError::TooLarge(other.to_string())),
            E::Utf8(_) => Error::protocol(ProtocolError::InvalidUtf8),
            E::Protocol(violation) => {
                Error::protocol(ProtocolError::Violation(violation.to_string()))
            }
            E::AttackAttempt => {
                Error::protocol(ProtocolError::Violation("attack attempt detected".into()))
            }
            E::Io(io) => Error::connection(
                &self.sup.config.redacted_url,
                0,
                ConnectionError::Io {
                    kind: io.kind(),
                    message: scrub(&io.to_string(), &self.sup.config.url),
                },
            ),
            other => self.lost(&scrub(&other.to_string(), &self.sup.config.url)),
        };
        SessionEnd::Lost(lost)
    }

    fn lost(&self, why: &str) -> Error {
        Error::connection(
            &self.sup.config.redacted_url,
            0,
            ConnectionError::Lost(why.to_owned()),
        )
    }

    // ---- commands --------------------------------------------------------

    async fn on_command(&mut self, command: Option<Command>) -> Result<(), SessionEnd> {
        let Some(command) = command else {
            // Every handle is gone: nobody can read what we receive any more.
            return self.begin_close().await;
        };
        match command {
            Command::Subscribe(subs) => {
                for sub in subs {
                    self.sup.shared.stats.track(&sub.queue);
                    self.sup
                        .registry
                        .add(sub.client_id, sub.topic, sub.queue, Some(sub.ready));
                }
                self.flush_unsent();
            }
            Command::Unsubscribe { client_id, reply } => {
                self.end_subscription(client_id, None, true);
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
            }
            Command::Send { text, reply } => {
                self.outbound.push_back(Outgoing::Send { text, reply })
            }
            Command::Request { request, reply } => {
                let req_id = self.sup.next_req_id();
                match self.sup.protocol.encode_request(&request, req_id) {
                    Ok(text) => {
                        self.requests.insert(req_id, reply);
                        self.outbound.push_back(Outgoing::Request { text, req_id });
                    }
                    Err(error) => {
                        let _ = reply.send(Err(Error::protocol(error)));
                    }
                }
            }
            Command::Close => return self.begin_close().await,
        }
        Ok(())
    }

    /// An ack nobody waits for: unsubscribe it if its subscription was
    /// abandoned while pending.
    fn on_unmatched_ack(
        &mut self,
        req_id: Option<u64>,
        server_id: &ServerId,
        symbol: Option<&str>,
    ) {
        let position = req_id.and_then(|req_id| {
            self.abandoned.iter().position(|(abandoned_req, topic)| {
                *abandoned_req == req_id
                    && symbol.is_none_or(|s| topic.symbol_name().is_none_or(|t| t == s))
            })
        });
        let Some((_, topic)) = position.and_then(|at| self.abandoned.remove(at)) else {
            tracing::debug!(?req_id, %server_id, "ack matches no pending subscription");
            return;
        };
        tracing::debug!(?req_id, %server_id, "late ack for an abandoned subscription; unsubscribing");
        let unsubscribe_req = self.sup.next_req_id();
        if let Some(text) = self
            .sup
            .protocol
            .encode_unsubscribe(&topic, server_id, unsubscribe_req)
        {
            self.outbound.push_back(Outgoing::Unsubscribe { text });
        }
        self.sup.protocol.forget(server_id);
    }

    /// Ends a subscription: its queue finishes (drained first by the consumer),
    /// and the venue is told when it has a server id.
    fn end_subscription(&mut self, client_id: ClientId, error: Option<Error>, tell_venue: bool) {
        let Some(entry) = self.sup.registry.remove(client_id) else {
            return;
        };
        if let (true, Phase::Pending { req_id }) = (tell_venue, entry.phase) {
            if self.abandoned.len() == ABANDONED_LIMIT {
                self.abandoned.pop_front();
            }
            self.abandoned.push_back((req_id, entry.topic.clone()));
        }
        entry.queue.finish(error.clone());
        if let Some(server_id) = &entry.server_id {
            self.sup.protocol.forget(server_id);
            if tell_venue {
                let req_id = self.sup.next_req_id();
                if let Some(text) =
                    self.sup
                        .protocol
                        .encode_unsubscribe(&entry.topic, server_id, req_id)
                {
                    self.outbound.push_back(Outgoing::Unsubscribe { text });
                }
            }
        }
        self.sup
            .shared
            .emit(Event::SubscriptionEnded { client_id, error });
    }

    /// Re-subscribes one subscription for a fresh snapshot.
    fn resync(&mut self, client_id: ClientId) {
        let Some(old) = self.sup.registry.begin_resync(client_id) else {
            return;
        };
        self.sup.protocol.forget(&old);
        if let Some(entry) = self.sup.registry.get(client_id) {
            let req_id = self.sup.next_req_id;
            self.sup.next_req_id += 1;
            if let Some(text) = self
                .sup
                .protocol
                .encode_unsubscribe(&entry.topic, &old, req_id)
            {
                self.outbound.push_back(Outgoing::Unsubscribe { text });
            }
        }
        self.flush_unsent();
    }

    /// Queues subscribe requests for every unsent subscription, in creation
    /// order, batched as the protocol allows. Subscriptions whose consumer is
    /// gone are dropped instead of replayed.
    fn flush_unsent(&mut self) {
        let batches = self.sup.registry.unsent_batches(&self.sup.protocol);
        for batch in batches {
            let mut members = Vec::with_capacity(batch.len());
            for id in batch {
                let alive = self
                    .sup
                    .registry
                    .get(id)
                    .is_some_and(|e| e.queue.consumer_alive());
                if alive {
                    members.push(id);
                } else {
                    self.end_subscription(id, None, false);
                }
            }
            if members.is_empty() {
                continue;
            }
            let req_id = self.sup.next_req_id();
            let resubscribes = members
                .iter()
                .filter(|id| self.sup.registry.get(**id).is_some_and(|e| e.acked_once))
                .count();
            let topics: Vec<_> = members
                .iter()
                .filter_map(|id| self.sup.registry.get(*id))
                .map(|e| &e.topic)
                .collect();
            let text = self.sup.protocol.encode_subscribe(&topics, req_id);
            self.sup.registry.mark_sent(&members, req_id);
            StatsHub::add(
                &self.sup.shared.stats.counters.resubscribes,
                resubscribes as u64,
            );
            self.outbound
                .push_back(Outgoing::Subscribe { text, req_id });
        }
    }

    /// Sends Close 1000 and keeps reading (so the consumer gets what is already
    /// on the wire) until the peer answers or the close timeout passes.
    async fn begin_close(&mut self) -> Result<(), SessionEnd> {
        if self.closing.is_some() {
            return Ok(());
        }
        self.sup.set_state(ConnectionState::Closing);
        self.closing = Some(Instant::now() + self.sup.config.close_timeout);
        // Frames still waiting for the rate limiter are not sent.
        for outgoing in self.outbound.drain(..) {
            if let Outgoing::Send { reply, .. } = outgoing {
                let _ = reply.send(Err(Error::ClientClosed));
            }
        }
        let close = CloseFrame {
            code: CloseCode::Normal,
            reason: Utf8Bytes::from_static(""),
        };
        match tokio::time::timeout(self.sup.config.close_timeout, self.ws.close(Some(close))).await
        {
            Ok(Ok(())) => {
                StatsHub::bump(&self.sup.shared.stats.counters.frames_out);
                Ok(())
            }
            // The socket is already gone or wedged: nothing left to wait for.
            Ok(Err(_)) | Err(_) => Err(SessionEnd::Closed),
        }
    }

    // ---- outbound --------------------------------------------------------

    async fn write_next(&mut self) -> Result<(), SessionEnd> {
        let Some(outgoing) = self.outbound.pop_front() else {
            return Ok(());
        };
        let is_ping = matches!(outgoing, Outgoing::Ping { .. });
        let (text, req_id, reply) = outgoing.into_parts();
        let now = Instant::now();
        self.limiter.record(now);
        let len = text.len() as u64;
        match self.write(Message::text(text)).await {
            Ok(()) => {
                let counters = &self.sup.shared.stats.counters;
                StatsHub::bump(&counters.frames_out);
                StatsHub::add(&counters.bytes_out, len);
                if let Some(req_id) = req_id {
                    self.deadlines
                        .insert((now + self.sup.config.request_timeout, req_id));
                }
                if is_ping {
                    self.awaiting_pong = Some(now + self.sup.config.pong_timeout);
                }
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
                Ok(())
            }
            Err(end) => {
                if let Some(reply) = reply {
                    let error = match &end {
                        SessionEnd::Lost(e) | SessionEnd::Fatal(e) => e.clone(),
                        SessionEnd::Closed => Error::ClientClosed,
                    };
                    let _ = reply.send(Err(error));
                }
                Err(end)
            }
        }
    }

    /// Writes one message, bounded so a peer that stopped reading cannot wedge us.
    async fn write(&mut self, message: Message) -> Result<(), SessionEnd> {
        let timeout = self.sup.config.request_timeout;
        match tokio::time::timeout(timeout, self.ws.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(self.read_error(error)),
            Err(_) => Err(SessionEnd::Lost(Error::Timeout {
                operation: Operation::Send,
                timeout,
            })),
        }
    }

    // ---- timers ----------------------------------------------------------

    fn next_timer(&self) -> Instant {
        let mut at = self.next_ping;
        let candidates = [
            self.awaiting_pong,
            self.idle.as_ref().map(|i| i.next_tick),
            self.deadlines.first().map(|(t, _)| *t),
            self.closing,
        ];
        for t in candidates.into_iter().flatten() {
            at = at.min(t);
        }
        at
    }

    async fn on_timers(&mut self) -> Result<(), SessionEnd> {
        let now = Instant::now();
        if let Some(deadline) = self.closing {
            if now >= deadline {
                tracing::debug!("close handshake timed out");
                return Err(SessionEnd::Closed);
            }
            // While closing only the close deadline counts: a pong or idle
            // deadline passing now must not turn the close into a reconnect.
            return Ok(());
        }
        if self.awaiting_pong.is_some_and(|deadline| now >= deadline) {
            StatsHub::bump(&self.sup.shared.stats.counters.ping_timeouts);
            let timeout = self.sup.config.pong_timeout;
            return Err(SessionEnd::Lost(Error::Timeout {
                operation: Operation::Ping,
                timeout,
            }));
        }
        if let Some(idle) = &mut self.idle {
            if now >= idle.next_tick {
                if self.data_seen != idle.seen_at_tick {
                    idle.seen_at_tick = self.data_seen;
                    idle.last_activity = now;
                }
                if now.duration_since(idle.last_activity) >= idle.timeout {
                    StatsHub::bump(&self.sup.shared.stats.counters.idle_timeouts);
                    let timeout = idle.timeout;
                    return Err(SessionEnd::Lost(Error::Timeout {
                        operation: Operation::Receive,
                        timeout,
                    }));
                }
                idle.next_tick = now + idle.timeout / 4;
            }
        }
        while let Some(&(deadline, req_id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            self.expire(req_id)?;
        }
        if now >= self.next_ping {
            self.next_ping = now + self.sup.config.ping_interval;
            if self.awaiting_pong.is_none() && self.closing.is_none() {
                self.ping(now).await?;
            }
        }
        Ok(())
    }

    async fn ping(&mut self, now: Instant) -> Result<(), SessionEnd> {
        let req_id = self.sup.next_req_id();
        match self.sup.protocol.encode_ping(req_id) {
            // App-level pings count against the venue's rate limit; they jump the queue.
            Some(text) => self.outbound.push_front(Outgoing::Ping { text }),
            None => {
                self.write(Message::Ping(Bytes::new())).await?;
                StatsHub::bump(&self.sup.shared.stats.counters.frames_out);
                self.awaiting_pong = Some(now + self.sup.config.pong_timeout);
            }
        }
        Ok(())
    }

    /// A request or subscribe got no answer in time.
    fn expire(&mut self, req_id: u64) -> Result<(), SessionEnd> {
        let timeout = self.sup.config.request_timeout;
        if let Some(reply) = self.requests.remove(&req_id) {
            let _ = reply.send(Err(Error::Timeout {
                operation: Operation::Request,
                timeout,
            }));
            return Ok(());
        }
        if self.sup.registry.pending_op(req_id) == Some(SubscriptionOp::Resubscribe) {
            // A durable subscription the venue acknowledged before: a missing
            // ack now says more about this connection (half-open, stuck right
            // after the handshake) than about the subscription, so reconnect
            // and replay instead of ending it. Backoff bounds the retries.
            tracing::warn!(
                req_id,
                "a replayed subscribe was not acknowledged in time; reconnecting"
            );
            return Err(SessionEnd::Lost(Error::Timeout {
                operation: Operation::Subscribe,
                timeout,
            }));
        }
        for (client_id, op, mut entry) in self.sup.registry.on_timeout(req_id) {
            let operation = match op {
                SubscriptionOp::Unsubscribe => Operation::Unsubscribe,
                _ => Operation::Subscribe,
            };
            let error = Error::Timeout { operation, timeout };
            tracing::warn!(client_id, req_id, "subscribe was not acknowledged in time");
            if let Some(waiter) = entry.waiter.take() {
                let _ = waiter.send(Err(error.clone()));
            }
            entry.queue.finish(Some(error.clone()));
            if let Some(server_id) = &entry.server_id {
                self.sup.protocol.forget(server_id);
            }
            self.sup.shared.emit(Event::SubscriptionEnded {
                client_id,
                error: Some(error),
            });
        }
        Ok(())
    }

    // ---- the end ---------------------------------------------------------

    /// Requests in flight fail with the reason the session ended; one-off
    /// sends still queued fail too. Neither is replayed.
    fn fail_in_flight(&mut self, end: &SessionEnd) {
        let error = match end {
            SessionEnd::Lost(e) | SessionEnd::Fatal(e) => e.clone(),
            SessionEnd::Closed => Error::ClientClosed,
        };
        for (_, reply) in self.requests.drain() {
            let _ = reply.send(Err(error.clone()));
        }
        for outgoing in self.outbound.drain(..) {
            if let Outgoing::Send { reply, .. } = outgoing {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
