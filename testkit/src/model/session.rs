//! The session as its documentation states it (`session/*.rs` module docs,
//! RELIABILITY.md), on plain maps and a clock in milliseconds, written
//! without calling the core. The harness feeds it the same inputs it hands
//! the real `SessionCore` (through `supervisor/drive.rs`'s `Drive`) and
//! compares the two after every step.
//!
//! Rules modelled:
//! - every frame read is counted once: control, unroutable, stashed, or
//!   routed to a queue (then delivered, dropped or queued);
//! - data routes by the server id the latest ack on this connection mapped;
//!   unknown ids are stashed while a subscribe is pending, else unroutable;
//! - a duplicate (`seq <= last`) is routed and dropped; a gap resyncs when
//!   configured, a bad checksum always; one resync in flight per subscription;
//! - a full `Block` queue parks the frame (later frames wait behind it) until
//!   the consumer makes room or the block times out, which ends that
//!   subscription; a consumer that is gone ends its subscription;
//! - request ids come from one counter: subscribe batches, unsubscribes of
//!   subscriptions with a server id, resyncs, late-ack unsubscribes, pings and
//!   one-off requests each take the next one;
//! - deadlines start when a frame is written; a replayed subscribe that times
//!   out ends the connection, a first subscribe that times out ends its members;
//! - every caller is answered exactly once: subscribe (first ack or failure),
//!   send (written or failed), request (response, refusal, timeout or loss).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::queue::MQueue;
use super::registry::{MFrame, MPhase, MSub, Model};
use resilient_ws::fuzzing::{client_id, ProtocolBatching};
use resilient_ws::{ClientId, Overflow, SubscriptionOp, Topic};

/// The key of the client's inbound (unsolicited) queue; subscriptions start at 1.
pub(crate) const INBOUND: ClientId = client_id(0);
/// How many abandoned subscribes a connection remembers.
const ABANDONED_LIMIT: usize = 64;

/// What a caller or an event listener must see, compared as a sorted list per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Expect {
    /// A `subscribe` caller is answered (`true`: ok).
    SubscribeResult(ClientId, bool),
    /// `SubscriptionEnded` is emitted.
    Ended(ClientId),
    /// `Subscribed` is emitted (first ack).
    Subscribed(ClientId),
    /// `Resubscribed` is emitted (a later ack).
    Resubscribed(ClientId),
    /// A `request` caller is answered.
    RequestResult(u64, bool),
    /// A `send` caller is answered.
    SendResult(u64, bool),
}

/// How a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MEnd {
    /// On request: the client finishes cleanly.
    Closed,
    /// Lost: reconnect.
    Lost,
    /// Lost for good: the client finishes with the error.
    Fatal,
}

/// Fixed settings of one run (times in milliseconds).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) batch: bool,
    pub(crate) resync_on_gap: bool,
    pub(crate) token_source: bool,
    pub(crate) request_timeout: u64,
    pub(crate) pong_timeout: u64,
    pub(crate) ping_interval: u64,
    pub(crate) close_timeout: u64,
}

/// The protocol's batching rule: one channel per subscribe request.
pub(crate) struct SameChannel(pub(crate) bool);

impl ProtocolBatching for SameChannel {
    fn batchable(&self, first: &Topic, next: &Topic) -> bool {
        self.0 && first.channel() == next.channel()
    }
}

/// A frame waiting for room in a full `Block` queue.
pub(super) struct MParked {
    pub(super) id: Option<ClientId>,
    pub(super) frame: MFrame,
    pub(super) resync: bool,
    pub(super) since: u64,
}

/// Counters the core keeps in its `StatsHub`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MCounters {
    pub(crate) frames_in: u64,
    pub(crate) control: u64,
    pub(crate) unroutable: u64,
    pub(crate) duplicates: u64,
    pub(crate) gaps: u64,
    pub(crate) book_breaks: u64,
    pub(crate) resubscribes: u64,
}

/// The whole session model.
pub(crate) struct SessionModel {
    pub(crate) reg: Model,
    /// Every queue ever made, by client id (kept after its subscription ends).
    pub(crate) queues: BTreeMap<ClientId, MQueue>,
    pub(crate) counters: MCounters,
    pub(crate) expected: Vec<Expect>,
    /// Topics of each subscribe request made (to check what is written).
    pub(crate) subscribes: BTreeMap<u64, Vec<String>>,
    /// One-off requests in flight.
    pub(crate) requests: BTreeSet<u64>,
    pub(crate) connected: bool,
    pub(super) settings: Settings,
    pub(super) closing: Option<u64>,
    pub(super) next_req_id: u64,
    pub(super) resyncing: BTreeMap<ClientId, u64>,
    pub(super) abandoned: VecDeque<(u64, Topic)>,
    pub(super) deadlines: BTreeSet<(u64, u64)>,
    pub(super) sends: Vec<u64>,
    pub(super) next_ping: u64,
    pub(super) awaiting_pong: Option<u64>,
    pub(super) parked: Option<MParked>,
    pub(super) backlog: VecDeque<(Option<ClientId>, MFrame)>,
}

impl SessionModel {
    pub(crate) fn new(settings: Settings, stash_capacity: usize, stash_budget: usize) -> Self {
        SessionModel {
            reg: Model {
                stash_capacity,
                stash_budget,
                ..Model::default()
            },
            queues: BTreeMap::new(),
            counters: MCounters::default(),
            expected: Vec::new(),
            subscribes: BTreeMap::new(),
            requests: BTreeSet::new(),
            connected: false,
            settings,
            closing: None,
            next_req_id: 1,
            resyncing: BTreeMap::new(),
            abandoned: VecDeque::new(),
            deadlines: BTreeSet::new(),
            sends: Vec::new(),
            next_ping: 0,
            awaiting_pong: None,
            parked: None,
            backlog: VecDeque::new(),
        }
    }

    pub(super) fn req_id(&mut self) -> u64 {
        let id = self.next_req_id;
        self.next_req_id += 1;
        id
    }

    pub(super) fn queue(&mut self, id: Option<ClientId>) -> &mut MQueue {
        self.queues
            .entry(id.unwrap_or(INBOUND))
            .or_insert_with(|| MQueue::new(1, Overflow::DropNewest))
    }

    /// The queue a frame is parked on (`INBOUND` for the inbound stream).
    pub(crate) fn parked_on(&self) -> Option<ClientId> {
        self.parked.as_ref().map(|p| p.id.unwrap_or(INBOUND))
    }

    /// Frames read but neither counted nor routed yet (parked or behind it).
    pub(crate) fn in_limbo(&self) -> u64 {
        u64::from(self.parked.is_some()) + self.backlog.len() as u64
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.is_some()
    }

    // ---- the connection ---------------------------------------------------

    pub(crate) fn on_connected(&mut self, now: u64) {
        self.connected = true;
        self.closing = None;
        self.next_ping = now + self.settings.ping_interval;
        self.awaiting_pong = None;
        self.flush_unsent();
    }

    pub(crate) fn on_disconnected(&mut self, now: u64) {
        while self.parked.is_some() {
            self.on_block_timeout(now);
        }
        if !self.connected {
            return;
        }
        for req_id in std::mem::take(&mut self.requests) {
            self.expected.push(Expect::RequestResult(req_id, false));
        }
        for send_id in std::mem::take(&mut self.sends) {
            self.expected.push(Expect::SendResult(send_id, false));
        }
        self.counters.unroutable += self.reg.on_disconnect() as u64;
        self.connected = false;
        self.closing = None;
        self.resyncing.clear();
        self.abandoned.clear();
        self.deadlines.clear();
        self.awaiting_pong = None;
    }

    /// The client finishes: every stream ends; callers still waiting fail.
    pub(crate) fn finish(&mut self, now: u64) {
        while self.parked.is_some() {
            self.on_block_timeout(now);
        }
        let ids: Vec<ClientId> = self.reg.subs.keys().copied().collect();
        for id in ids {
            if let Some(sub) = self.reg.remove(id) {
                if !sub.acked_once {
                    self.expected.push(Expect::SubscribeResult(id, false));
                }
                self.queue(Some(id)).finished = true;
            }
        }
        self.queue(None).finished = true;
    }

    // ---- commands -----------------------------------------------------------

    pub(crate) fn subscribe(&mut self, subs: Vec<(ClientId, Topic, MQueue)>) {
        for (id, topic, mut queue) in subs {
            if self.reg.holder_of(&topic).is_some() {
                queue.finished = true;
                self.expected.push(Expect::SubscribeResult(id, false));
            } else {
                self.reg.subs.insert(
                    id,
                    MSub {
                        topic,
                        phase: MPhase::Unsent,
                        server_id: None,
                        acked_once: false,
                        last_seq: None,
                    },
                );
            }
            self.queues.insert(id, queue);
        }
        if self.connected {
            self.flush_unsent();
        }
    }

    pub(crate) fn unsubscribe(&mut self, id: ClientId) {
        self.end_subscription(id, true);
    }

    pub(crate) fn send(&mut self, send_id: u64) {
        if self.connected {
            self.sends.push(send_id);
        } else {
            self.expected.push(Expect::SendResult(send_id, false));
        }
    }

    /// The request id a `request` gets, or `None` while disconnected.
    pub(crate) fn request(&mut self) -> Option<u64> {
        if !self.connected {
            return None;
        }
        let req_id = self.req_id();
        self.requests.insert(req_id);
        Some(req_id)
    }

    pub(crate) fn begin_close(&mut self, now: u64) {
        if !self.connected || self.closing.is_some() {
            return;
        }
        self.closing = Some(now + self.settings.close_timeout);
        for send_id in std::mem::take(&mut self.sends) {
            self.expected.push(Expect::SendResult(send_id, false));
        }
    }

    pub(super) fn flush_unsent(&mut self) {
        let batches = self.reg.unsent_batches(&SameChannel(self.settings.batch));
        for batch in batches {
            let mut members = Vec::new();
            for id in batch {
                if self.queue(Some(id)).consumer_alive {
                    members.push(id);
                } else {
                    self.end_subscription(id, false);
                }
            }
            if members.is_empty() {
                continue;
            }
            let req_id = self.req_id();
            let topics = members
                .iter()
                .filter_map(|id| self.reg.subs.get(id))
                .map(|s| s.topic.to_string())
                .collect();
            self.counters.resubscribes += members
                .iter()
                .filter(|id| self.reg.subs.get(id).is_some_and(|s| s.acked_once))
                .count() as u64;
            self.reg.mark_sent(&members, req_id);
            self.subscribes.insert(req_id, topics);
        }
    }

    pub(super) fn end_subscription(&mut self, id: ClientId, tell_venue: bool) {
        let Some(sub) = self.reg.remove(id) else {
            return;
        };
        if let (true, MPhase::Pending(req_id), true) = (tell_venue, sub.phase, self.connected) {
            if self.abandoned.len() == ABANDONED_LIMIT {
                self.abandoned.pop_front();
            }
            self.abandoned.push_back((req_id, sub.topic.clone()));
        }
        if !sub.acked_once {
            self.expected.push(Expect::SubscribeResult(id, false));
        }
        self.queue(Some(id)).finished = true;
        if sub.server_id.is_some() && tell_venue {
            self.req_id();
        }
        self.expected.push(Expect::Ended(id));
    }

    pub(super) fn resync(&mut self, id: ClientId) {
        if self.connected && self.resyncing.contains_key(&id) {
            return;
        }
        if self.reg.begin_resync(id).is_none() {
            return;
        }
        self.req_id();
        self.flush_unsent();
        if let (Some(MPhase::Pending(req_id)), true) =
            (self.reg.subs.get(&id).map(|s| s.phase), self.connected)
        {
            self.resyncing.insert(id, req_id);
        }
    }

    // ---- the consumer side ----------------------------------------------------

    pub(crate) fn consumer_dropped(&mut self, id: ClientId) {
        self.queue(Some(id)).consumer_dropped();
    }

    // ---- writes ---------------------------------------------------------------

    /// A subscribe or request frame was written: its deadline starts.
    pub(crate) fn written_deadline(&mut self, req_id: u64, now: u64) {
        self.resyncing.retain(|_, pending| *pending != req_id);
        self.deadlines
            .insert((now + self.settings.request_timeout, req_id));
    }

    pub(crate) fn written_ping(&mut self, now: u64) {
        self.awaiting_pong = Some(now + self.settings.pong_timeout);
    }

    /// A send was written (`ok`) or failed to be.
    pub(crate) fn written_send(&mut self, send_id: u64, ok: bool) {
        self.sends.retain(|s| *s != send_id);
        self.expected.push(Expect::SendResult(send_id, ok));
    }

    /// Writing failed: how the session ends.
    pub(crate) fn write_failed(&self, close_frame: bool) -> MEnd {
        if close_frame || self.closing.is_some() {
            MEnd::Closed
        } else {
            MEnd::Lost
        }
    }

    // ---- time -----------------------------------------------------------------

    pub(crate) fn on_tick(&mut self, now: u64) -> Option<MEnd> {
        if !self.connected {
            return None;
        }
        if let Some(deadline) = self.closing {
            return (now >= deadline).then_some(MEnd::Closed);
        }
        if self.awaiting_pong.is_some_and(|d| now >= d) {
            return Some(MEnd::Lost);
        }
        let mut due = Vec::new();
        while let Some(&(at, req_id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            due.push(req_id);
        }
        let ping_due = now >= self.next_ping;
        if ping_due {
            self.next_ping = now + self.settings.ping_interval;
        }
        let ping = ping_due && self.awaiting_pong.is_none();
        for req_id in due {
            if self.expire(req_id) {
                return Some(MEnd::Lost);
            }
        }
        if ping {
            self.req_id();
        }
        None
    }

    /// A deadline passed; `true` when it ends the connection.
    fn expire(&mut self, req_id: u64) -> bool {
        if self.requests.remove(&req_id) {
            self.expected.push(Expect::RequestResult(req_id, false));
            return false;
        }
        if self.reg.requests.get(&req_id).map(|r| r.op) == Some(SubscriptionOp::Resubscribe) {
            return true;
        }
        for (id, _, sub) in self.reg.on_timeout(req_id) {
            if !sub.acked_once {
                self.expected.push(Expect::SubscribeResult(id, false));
            }
            self.queue(Some(id)).finished = true;
            self.expected.push(Expect::Ended(id));
        }
        false
    }
}
