//! The subscription registry: durable client ids, their current server ids,
//! pending subscribe requests, the early-frame stash and sequence tracking.
//!
//! It is plain data (no sockets, no tasks, no clocks) so the supervisor can own
//! it without locks and the fuzzer can drive it directly.
//!
//! The rules it keeps:
//! - A client id never changes; the server id is whatever the latest ack said.
//! - On disconnect the server-id map is cleared *first*, so a stale id can never
//!   route a frame to the wrong subscription; every live subscription goes back to
//!   "unsent" and is replayed, in creation order (client ids increase).
//! - Frames for a server id we have not seen acknowledged yet, while a subscribe
//!   is pending, wait in a bounded stash and are delivered right after the ack.
//! - Each subscription maps to at most one server id and each server id to at
//!   most one subscription. An ack is matched to the pending member it names
//!   (channel and symbol) or to nobody, and never takes a server id that
//!   already routes to another live subscription: no frame on the wrong stream.
//! - A sequence number at or below the last one is a stale duplicate: it is
//!   dropped and does not move the last number back (a restarted stream comes
//!   with a new ack, which starts tracking afresh).
//! - A subscription's topic is what the venue holds: when the adapter reports
//!   a change made on the live subscription (Kalshi markets added with
//!   `update_subscription`), the entry's topic becomes the changed one, so a
//!   replay subscribes what the venue held, not what was first asked. Its
//!   identity (the channel and symbol it was created with) never changes.

use std::collections::{HashMap, VecDeque};

use indexmap::IndexMap;
use rustc_hash::{FxBuildHasher, FxHashMap};
use std::sync::Arc;

use crate::error::SubscriptionOp;
use crate::message::Frame;
use crate::protocol::{BookBreak, Protocol, ServerId, Topic};
use crate::queue::Queue;

mod acks;

pub use crate::ids::{ClientId, ReqId};

/// Where a subscription stands on the current connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A subscribe must be sent on this connection (new, or replay after a reconnect).
    Unsent,
    /// The subscribe went out under this request id; waiting for the ack.
    Pending {
        /// The subscribe's request id.
        req_id: ReqId,
    },
    /// Acknowledged: frames for its server id are routed to it.
    Active,
}

/// One durable subscription.
pub struct Entry {
    /// What it subscribes to: the topic it was created with, or the one its
    /// adapter reported after a change on the live subscription
    /// ([`Registry::retopic`]).
    pub topic: Topic,
    /// Its queue (the consumer stream holds the other end).
    pub queue: Arc<Queue>,
    /// The server id from the latest ack on this connection.
    pub server_id: Option<ServerId>,
    /// Where it stands on this connection.
    pub phase: Phase,
    /// The last sequence number seen under the current server id.
    pub last_seq: Option<u64>,
    /// Whether it has been acknowledged at least once (later acks are re-subscriptions).
    pub acked_once: bool,
    /// The channel and symbol it was created with: its identity, which
    /// stays when the venue-held `topic` changes ([`Registry::retopic`]).
    key: TopicKey,
}

/// A data frame waiting for the ack of its server id.
#[derive(Debug)]
pub struct Stashed {
    /// The server id the frame was routed by.
    pub server_id: ServerId,
    /// The frame.
    pub frame: Frame,
    /// The book break that came with it.
    pub book_break: Option<BookBreak>,
}

/// Where a data frame goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// To this subscription.
    To(ClientId),
    /// Into the stash: a subscribe is pending and this may be its server id.
    Stash,
    /// Nowhere: counted as unroutable.
    Unroutable,
}

/// What a sequence number says about the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// The next one (or the first one under this server id).
    InOrder,
    /// Seen already: drop it.
    Duplicate,
    /// Numbers were skipped.
    Gap {
        /// Last seen.
        last_seq: u64,
        /// Arrived.
        next_seq: u64,
    },
}

/// The result of matching an ack.
pub struct Acked {
    /// The subscription it belongs to.
    pub client_id: ClientId,
    /// Whether this was a re-subscription (after a reconnect or resync); when
    /// not, this is the first ack and the caller of `subscribe` is answered.
    pub resubscribed: bool,
    /// Frames that arrived early for this server id, in arrival order.
    pub stashed: Vec<Stashed>,
}

struct PendingRequest {
    op: SubscriptionOp,
    members: Vec<ClientId>,
}

impl Entry {
    fn check_seq(&mut self, seq: u64) -> SeqCheck {
        let verdict = match self.last_seq {
            None => SeqCheck::InOrder,
            Some(last) if seq == last.wrapping_add(1) => SeqCheck::InOrder,
            // At or below the last one: a stale repeat (a peer replaying old
            // frames), not a restart; it must not move `last_seq` back, or the
            // next in-order frame would look like a gap.
            Some(last) if seq <= last => SeqCheck::Duplicate,
            Some(last) => SeqCheck::Gap {
                last_seq: last,
                next_seq: seq,
            },
        };
        if verdict != SeqCheck::Duplicate {
            self.last_seq = Some(seq);
        }
        verdict
    }
}

/// The registry. See the module docs for the rules it keeps.
pub struct Registry {
    /// Live subscriptions in creation order (ids only grow, entries are only
    /// appended, and removal shifts), looked up by hash for every data frame:
    /// a `BTreeMap` walk cost ~150 instructions per frame at 100 subscriptions.
    subs: IndexMap<ClientId, Entry, FxBuildHasher>,
    /// Looked up for every data frame. Fx hashing: the keys come from the
    /// venue the user chose to connect to, not from an untrusted crowd, so
    /// flooding resistance (SipHash) buys nothing here and cost ~270
    /// instructions per frame.
    routes: FxHashMap<ServerId, ClientId>,
    /// Live subscriptions by (channel, symbol): a venue keeps one stream per
    /// topic on a connection, so a second subscription of the same topic is refused.
    topics: HashMap<TopicKey, ClientId>,
    pending: HashMap<ReqId, PendingRequest>,
    stash: VecDeque<Stashed>,
    stash_capacity: usize,
    /// Payload bytes the stash may hold: a peer sending large frames for a
    /// pending subscribe must not make 256 slots of 16 MiB each.
    stash_byte_budget: usize,
    stash_bytes: usize,
}

impl Registry {
    /// An empty registry whose stash holds at most `stash_capacity` frames
    /// and at most `stash_byte_budget` payload bytes.
    pub fn new(stash_capacity: usize, stash_byte_budget: usize) -> Self {
        Registry {
            subs: IndexMap::default(),
            routes: FxHashMap::default(),
            topics: HashMap::new(),
            pending: HashMap::new(),
            stash: VecDeque::new(),
            stash_capacity,
            stash_byte_budget,
            stash_bytes: 0,
        }
    }

    /// Adds a subscription (unsent) under `client_id`, which must be new and
    /// larger than every id added before (ids are handed out in creation order).
    /// Its identity is its channel and symbol (the unit tests' shorthand; the
    /// session gives the protocol's scope: [`add_scoped`](Self::add_scoped)).
    #[cfg(test)]
    pub fn add(&mut self, client_id: ClientId, topic: Topic, queue: Arc<Queue>) {
        let scope = topic.symbol_name().map(str::to_owned);
        self.add_scoped(client_id, topic, scope, queue);
    }

    /// [`add`](Self::add) with the identity's second part given: the
    /// protocol's [`topic_scope`](crate::Protocol::topic_scope).
    pub fn add_scoped(
        &mut self,
        client_id: ClientId,
        topic: Topic,
        scope: Option<String>,
        queue: Arc<Queue>,
    ) {
        let key = (topic.channel().to_owned(), scope);
        self.topics.insert(key.clone(), client_id);
        self.subs.insert(
            client_id,
            Entry {
                topic,
                queue,
                server_id: None,
                phase: Phase::Unsent,
                last_seq: None,
                acked_once: false,
                key,
            },
        );
    }

    /// The venue now holds the live subscription `server_id` routes to as
    /// `topic` (its adapter said so:
    /// [`Protocol::take_changed_topics`](crate::Protocol::take_changed_topics)),
    /// so every later subscribe of it (a replay after a reconnect, a
    /// resubscribe) names `topic`. Its identity stays: the channel and
    /// symbol it was created with, which a second subscribe of the same
    /// topic is checked against. A topic of another channel is ignored
    /// (acks are matched by channel). Returns the subscription changed.
    pub fn retopic(&mut self, server_id: &ServerId, topic: Topic) -> Option<ClientId> {
        let client_id = *self.routes.get(server_id)?;
        let entry = self.subs.get_mut(&client_id)?;
        if entry.topic.channel() != topic.channel() {
            tracing::debug!(%client_id, "a changed topic of another channel is ignored");
            return None;
        }
        entry.topic = topic;
        Some(client_id)
    }

    /// The live subscription of the same channel and symbol as `topic`, if any.
    #[cfg(test)]
    pub fn holder_of(&self, topic: &Topic) -> Option<ClientId> {
        self.holder_of_scoped(topic.channel(), topic.symbol_name())
    }

    /// The live subscription of `channel` with identity `scope`, if any.
    pub fn holder_of_scoped(&self, channel: &str, scope: Option<&str>) -> Option<ClientId> {
        let key = (channel.to_owned(), scope.map(str::to_owned));
        self.topics.get(&key).copied()
    }

    /// The subscription, if live.
    pub fn get(&self, client_id: ClientId) -> Option<&Entry> {
        self.subs.get(&client_id)
    }

    /// Live subscriptions in creation order.
    pub fn iter(&self) -> impl Iterator<Item = (ClientId, &Entry)> {
        self.subs.iter().map(|(id, e)| (*id, e))
    }

    /// Number of live subscriptions.
    pub(crate) fn len(&self) -> usize {
        self.subs.len()
    }

    /// Frames in the stash now.
    pub fn stashed(&self) -> usize {
        self.stash.len()
    }

    /// The subscription `server_id` routes to, if any.
    pub fn route_of(&self, server_id: &ServerId) -> Option<ClientId> {
        self.routes.get(server_id).copied()
    }

    /// A control frame took number `seq` of `server_id`'s sequence: recorded
    /// when it is the next one, so the data frame after it is in order. Any
    /// other number is ignored: a control frame never makes a data frame a
    /// duplicate or hides a gap.
    pub fn note_control_seq(&mut self, server_id: &ServerId, seq: u64) {
        let Some(client_id) = self.routes.get(server_id) else {
            return;
        };
        if let Some(entry) = self.subs.get_mut(client_id) {
            if entry
                .last_seq
                .is_some_and(|last| seq == last.wrapping_add(1))
            {
                entry.last_seq = Some(seq);
            }
        }
    }

    /// Removes a subscription (unsubscribe, failure, consumer gone).
    pub fn remove(&mut self, client_id: ClientId) -> Option<Entry> {
        let entry = self.subs.shift_remove(&client_id)?;
        self.forget_topic(&entry.key, client_id);
        if let Some(server_id) = &entry.server_id {
            if self.routes.get(server_id) == Some(&client_id) {
                self.routes.remove(server_id);
            }
        }
        if let Phase::Pending { req_id } = entry.phase {
            self.leave_request(req_id, client_id);
        }
        Some(entry)
    }

    fn forget_topic(&mut self, key: &TopicKey, client_id: ClientId) {
        if self.topics.get(key) == Some(&client_id) {
            self.topics.remove(key);
        }
    }

    fn leave_request(&mut self, req_id: ReqId, client_id: ClientId) {
        if let Some(request) = self.pending.get_mut(&req_id) {
            request.members.retain(|id| *id != client_id);
            if request.members.is_empty() {
                self.pending.remove(&req_id);
            }
        }
    }

    /// Unsent subscriptions in creation order, grouped into subscribe requests as
    /// the protocol allows batching, at most its cap per request.
    pub fn unsent_batches(&self, protocol: &dyn ProtocolBatching) -> Vec<Vec<ClientId>> {
        let cap = protocol.batch_cap().max(1);
        let mut batches: Vec<Vec<ClientId>> = Vec::new();
        let mut last: Option<&Topic> = None;
        for (id, entry) in &self.subs {
            if entry.phase != Phase::Unsent {
                last = None;
                continue;
            }
            match (batches.last_mut(), last) {
                (Some(batch), Some(first))
                    if batch.len() < cap && protocol.batchable(first, &entry.topic) =>
                {
                    batch.push(*id)
                }
                _ => {
                    batches.push(vec![*id]);
                    last = Some(&entry.topic);
                }
            }
        }
        batches
    }

    /// Marks `members` as sent under `req_id`.
    pub fn mark_sent(&mut self, members: &[ClientId], req_id: ReqId) {
        let mut sent = Vec::with_capacity(members.len());
        let mut op = SubscriptionOp::Subscribe;
        for id in members {
            if let Some(entry) = self.subs.get_mut(id) {
                if entry.acked_once {
                    op = SubscriptionOp::Resubscribe;
                }
                entry.phase = Phase::Pending { req_id };
                sent.push(*id);
            }
        }
        if !sent.is_empty() {
            self.pending
                .insert(req_id, PendingRequest { op, members: sent });
        }
    }

    /// Whether `req_id` is a pending subscribe request.
    pub fn is_pending(&self, req_id: ReqId) -> bool {
        self.pending.contains_key(&req_id)
    }

    /// Whether any subscribe is waiting for its ack.
    pub fn any_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// What the pending request `req_id` does, if it is still waiting.
    pub fn pending_op(&self, req_id: ReqId) -> Option<SubscriptionOp> {
        self.pending.get(&req_id).map(|request| request.op)
    }

    /// Removes every member of a request that is still waiting (its ack timed out).
    pub fn on_timeout(&mut self, req_id: ReqId) -> Vec<(ClientId, SubscriptionOp, Entry)> {
        let Some(request) = self.pending.remove(&req_id) else {
            return Vec::new();
        };
        request
            .members
            .into_iter()
            .filter_map(|id| {
                let entry = self.subs.shift_remove(&id)?;
                self.forget_topic(&entry.key, id);
                if let Some(server_id) = &entry.server_id {
                    if self.routes.get(server_id) == Some(&id) {
                        self.routes.remove(server_id);
                    }
                }
                Some((id, request.op, entry))
            })
            .collect()
    }

    /// Where a data frame for `server_id` goes.
    pub fn route(&self, server_id: &ServerId) -> Route {
        match self.routes.get(server_id) {
            Some(id) => Route::To(*id),
            None if !self.pending.is_empty() => Route::Stash,
            None => Route::Unroutable,
        }
    }

    /// Stashes an early frame, evicting the oldest while the stash is full by
    /// count or by bytes. Returns how many frames were dropped (the caller
    /// counts them as unroutable); a frame larger than the whole byte budget
    /// is dropped itself.
    pub fn stash(&mut self, item: Stashed) -> usize {
        let size = item.frame.as_bytes().len();
        if self.stash_capacity == 0 || size > self.stash_byte_budget {
            return 1;
        }
        let mut evicted = 0;
        while self.stash.len() >= self.stash_capacity
            || self.stash_bytes + size > self.stash_byte_budget
        {
            let Some(old) = self.stash.pop_front() else {
                break;
            };
            self.stash_bytes -= old.frame.as_bytes().len();
            evicted += 1;
        }
        self.stash_bytes += size;
        self.stash.push_back(item);
        evicted
    }

    /// A book break found between frames for `server_id`, whose ack has not
    /// come: it rides on the newest stashed frame of that server id (and is
    /// reported when that frame is delivered). False when none is stashed,
    /// or that frame carries a break already.
    pub fn stash_break(&mut self, server_id: &ServerId, kind: BookBreak) -> bool {
        match self
            .stash
            .iter_mut()
            .rev()
            .find(|s| s.server_id == *server_id)
        {
            Some(stashed) if stashed.book_break.is_none() => {
                stashed.book_break = Some(kind);
                true
            }
            _ => false,
        }
    }

    /// Payload bytes in the stash now.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn stashed_bytes(&self) -> usize {
        self.stash_bytes
    }

    /// Empties the stash (no subscribe is pending any more, so nothing in it can
    /// be claimed). Returns how many frames were dropped.
    pub fn clear_stash(&mut self) -> usize {
        let n = self.stash.len();
        self.stash.clear();
        self.stash_bytes = 0;
        n
    }

    /// Checks and records a sequence number for `client_id`, through the
    /// same path as a data frame.
    #[cfg(test)]
    fn check_seq(&mut self, client_id: ClientId, seq: u64) -> SeqCheck {
        self.target(client_id, Some(seq))
            .map_or(SeqCheck::InOrder, |(_, verdict)| verdict)
    }

    /// The queue a data frame for `client_id` goes to, and the verdict on its
    /// sequence number (recorded), in one lookup: this runs for every frame.
    /// The queue is lent, not cloned: no reference-count traffic per frame.
    pub fn target(
        &mut self,
        client_id: ClientId,
        seq: Option<u64>,
    ) -> Option<(&Arc<Queue>, SeqCheck)> {
        let entry = self.subs.get_mut(&client_id)?;
        let verdict = seq.map_or(SeqCheck::InOrder, |seq| entry.check_seq(seq));
        Some((&entry.queue, verdict))
    }

    /// Takes `client_id` off its server id so it can be re-subscribed (for a
    /// fresh snapshot). Returns the old server id, for the unsubscribe.
    pub fn begin_resync(&mut self, client_id: ClientId) -> Option<ServerId> {
        let entry = self.subs.get_mut(&client_id)?;
        if entry.phase != Phase::Active {
            return None;
        }
        let old = entry.server_id.take();
        entry.phase = Phase::Unsent;
        entry.last_seq = None;
        if let Some(server_id) = &old {
            if self.routes.get(server_id) == Some(&client_id) {
                self.routes.remove(server_id);
            }
        }
        old
    }

    /// The connection is gone: clear every server id first, then mark every
    /// live subscription for replay. Returns the stashed frames that were
    /// dropped (the caller counts them as unroutable).
    pub fn on_disconnect(&mut self) -> usize {
        self.routes.clear();
        self.pending.clear();
        let dropped = self.clear_stash();
        for entry in self.subs.values_mut() {
            entry.server_id = None;
            entry.phase = Phase::Unsent;
            entry.last_seq = None;
        }
        dropped
    }

    #[cfg(any(test, feature = "fuzzing"))] // only the fuzz harness and unit tests use it
    /// Checks the registry's own invariants (for tests and fuzzing): routes and
    /// entries agree both ways, pending requests name pending entries.
    pub fn check_invariants(&self) -> Result<(), String> {
        // Creation order is id order: replays go out in it.
        if let Some(pair) = self
            .subs
            .keys()
            .collect::<Vec<_>>()
            .windows(2)
            .find(|pair| pair[0] >= pair[1])
        {
            return Err(format!("subscriptions out of order: {pair:?}"));
        }
        for (server_id, client_id) in &self.routes {
            let entry = self
                .subs
                .get(client_id)
                .ok_or(format!("route {server_id} -> dead {client_id}"))?;
            if entry.server_id.as_ref() != Some(server_id) {
                return Err(format!(
                    "route {server_id} -> {client_id} but entry has {:?}",
                    entry.server_id
                ));
            }
        }
        for (client_id, entry) in &self.subs {
            if entry.phase == Phase::Active {
                let server_id = entry
                    .server_id
                    .as_ref()
                    .ok_or(format!("active {client_id} has no server id"))?;
                if self.routes.get(server_id) != Some(client_id) {
                    return Err(format!("active {client_id} not routed by {server_id}"));
                }
            }
            if let Phase::Pending { req_id } = entry.phase {
                let ok = self
                    .pending
                    .get(&req_id)
                    .is_some_and(|r| r.members.contains(client_id));
                if !ok {
                    return Err(format!(
                        "{client_id} pending on {req_id} which does not list it"
                    ));
                }
            }
        }
        if self.topics.len() != self.subs.len() {
            return Err(format!(
                "{} topics indexed for {} subscriptions",
                self.topics.len(),
                self.subs.len()
            ));
        }
        if self.stash.len() > self.stash_capacity {
            return Err("stash over capacity".into());
        }
        let bytes: usize = self.stash.iter().map(|s| s.frame.as_bytes().len()).sum();
        if bytes != self.stash_bytes || bytes > self.stash_byte_budget {
            return Err(format!(
                "stash holds {bytes} bytes, counted {}, budget {}",
                self.stash_bytes, self.stash_byte_budget
            ));
        }
        Ok(())
    }
}

/// A subscription's identity: its channel and its scope (the symbol, or
/// what the protocol's [`topic_scope`](crate::Protocol::topic_scope) names).
type TopicKey = (String, Option<String>);

/// What the registry asks the protocol when it groups subscribes into
/// requests: which topics may share one, and how many at most (kept as a
/// trait so the registry can be driven without a full protocol).
pub trait ProtocolBatching {
    /// Whether `next` may share a subscribe request with `first`.
    fn batchable(&self, first: &Topic, next: &Topic) -> bool;

    /// The most topics one request carries. Default: no cap.
    fn batch_cap(&self) -> usize {
        usize::MAX
    }
}

impl<P: Protocol + ?Sized> ProtocolBatching for P {
    fn batchable(&self, first: &Topic, next: &Topic) -> bool {
        self.can_batch(first, next)
    }

    fn batch_cap(&self) -> usize {
        self.max_batch()
    }
}

#[cfg(test)]
mod tests;
