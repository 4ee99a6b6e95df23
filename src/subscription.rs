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

use std::collections::{BTreeMap, HashMap, VecDeque};

use rustc_hash::FxHashMap;
use std::sync::Arc;

use crate::error::SubscriptionOp;
use crate::message::Frame;
use crate::protocol::{ChecksumMismatch, Protocol, ServerId, Topic};
use crate::queue::Queue;

/// A subscription's durable id, assigned by the client in creation order.
pub type ClientId = u64;

/// Where a subscription stands on the current connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A subscribe must be sent on this connection (new, or replay after a reconnect).
    Unsent,
    /// The subscribe went out under this request id; waiting for the ack.
    Pending {
        /// The subscribe's request id.
        req_id: u64,
    },
    /// Acknowledged: frames for its server id are routed to it.
    Active,
}

/// One durable subscription.
pub struct Entry {
    /// What it subscribes to.
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
}

/// A data frame waiting for the ack of its server id.
#[derive(Debug)]
pub struct Stashed {
    /// The server id the frame was routed by.
    pub server_id: ServerId,
    /// The frame.
    pub frame: Frame,
    /// The book checksum verdict that came with it.
    pub checksum: Option<ChecksumMismatch>,
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
    subs: BTreeMap<ClientId, Entry>,
    /// Looked up for every data frame. Fx hashing: the keys come from the
    /// venue the user chose to connect to, not from an untrusted crowd, so
    /// flooding resistance (SipHash) buys nothing here and cost ~270
    /// instructions per frame.
    routes: FxHashMap<ServerId, ClientId>,
    /// Live subscriptions by (channel, symbol): a venue keeps one stream per
    /// topic on a connection, so a second subscription of the same topic is refused.
    topics: HashMap<(String, Option<String>), ClientId>,
    pending: HashMap<u64, PendingRequest>,
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
            subs: BTreeMap::new(),
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
    pub fn add(&mut self, client_id: ClientId, topic: Topic, queue: Arc<Queue>) {
        self.topics.insert(topic_key(&topic), client_id);
        self.subs.insert(
            client_id,
            Entry {
                topic,
                queue,
                server_id: None,
                phase: Phase::Unsent,
                last_seq: None,
                acked_once: false,
            },
        );
    }

    /// The live subscription of the same channel and symbol as `topic`, if any.
    pub fn holder_of(&self, topic: &Topic) -> Option<ClientId> {
        self.topics.get(&topic_key(topic)).copied()
    }

    /// The subscription, if live.
    pub fn get(&self, client_id: ClientId) -> Option<&Entry> {
        self.subs.get(&client_id)
    }

    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))] // the fuzz harness uses it
    /// The subscription, if live.
    pub fn get_mut(&mut self, client_id: ClientId) -> Option<&mut Entry> {
        self.subs.get_mut(&client_id)
    }

    /// Live subscriptions in creation order.
    pub fn iter(&self) -> impl Iterator<Item = (ClientId, &Entry)> {
        self.subs.iter().map(|(id, e)| (*id, e))
    }

    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))] // the fuzz harness uses it
    /// Number of live subscriptions.
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))] // the fuzz harness uses it
    /// Whether there are no live subscriptions.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// Frames in the stash now.
    pub fn stashed(&self) -> usize {
        self.stash.len()
    }

    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))] // the fuzz harness uses it
    /// The subscription `server_id` routes to, if any.
    pub fn route_of(&self, server_id: &ServerId) -> Option<ClientId> {
        self.routes.get(server_id).copied()
    }

    /// Removes a subscription (unsubscribe, failure, consumer gone).
    pub fn remove(&mut self, client_id: ClientId) -> Option<Entry> {
        let entry = self.subs.remove(&client_id)?;
        self.forget_topic(&entry.topic, client_id);
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

    fn forget_topic(&mut self, topic: &Topic, client_id: ClientId) {
        let key = topic_key(topic);
        if self.topics.get(&key) == Some(&client_id) {
            self.topics.remove(&key);
        }
    }

    fn leave_request(&mut self, req_id: u64, client_id: ClientId) {
        if let Some(request) = self.pending.get_mut(&req_id) {
            request.members.retain(|id| *id != client_id);
            if request.members.is_empty() {
                self.pending.remove(&req_id);
            }
        }
    }

    /// Unsent subscriptions in creation order, grouped into subscribe requests as
    /// the protocol allows batching.
    pub fn unsent_batches(&self, protocol: &dyn ProtocolBatching) -> Vec<Vec<ClientId>> {
        let mut batches: Vec<Vec<ClientId>> = Vec::new();
        let mut last: Option<&Topic> = None;
        for (id, entry) in &self.subs {
            if entry.phase != Phase::Unsent {
                last = None;
                continue;
            }
            match (batches.last_mut(), last) {
                (Some(batch), Some(first)) if protocol.batchable(first, &entry.topic) => {
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
    pub fn mark_sent(&mut self, members: &[ClientId], req_id: u64) {
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

    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))] // the fuzz harness uses it
    /// Whether `req_id` is a pending subscribe request.
    pub fn is_pending(&self, req_id: u64) -> bool {
        self.pending.contains_key(&req_id)
    }

    /// Whether any subscribe is waiting for its ack.
    pub fn any_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Matches an ack to the first pending member of its request whose channel
    /// and symbol agree, and routes `server_id` to it.
    pub fn on_subscribed(
        &mut self,
        req_id: Option<u64>,
        server_id: ServerId,
        channel: Option<&str>,
        symbol: Option<&str>,
    ) -> Option<Acked> {
        let req_id = match req_id {
            Some(req_id) => req_id,
            None => self.request_naming(channel, symbol)?,
        };
        let request = self.pending.get(&req_id)?;
        // An ack that names a channel or symbol belongs to the member with that
        // name or to nobody: guessing (say, "the only member left") would put
        // one instrument's data on another's stream.
        let client_id = request
            .members
            .iter()
            .copied()
            .find(|id| self.is_named(*id, channel, symbol))?;
        // A server id that already routes to another live subscription is
        // never re-pointed: a repeated or stray ack must not steal its stream.
        if let Some(holder) = self.routes.get(&server_id) {
            if *holder != client_id {
                return None;
            }
        }
        self.leave_request(req_id, client_id);
        self.routes.insert(server_id.clone(), client_id);
        let entry = self.subs.get_mut(&client_id)?;
        if let Some(old) = entry.server_id.replace(server_id.clone()) {
            if old != server_id && self.routes.get(&old) == Some(&client_id) {
                self.routes.remove(&old);
            }
        }
        entry.phase = Phase::Active;
        entry.last_seq = None;
        let resubscribed = entry.acked_once;
        entry.acked_once = true;

        let mut stashed = Vec::new();
        let mut kept = VecDeque::with_capacity(self.stash.len());
        for item in self.stash.drain(..) {
            if item.server_id == server_id {
                self.stash_bytes -= item.frame.as_bytes().len();
                stashed.push(item);
            } else {
                kept.push_back(item);
            }
        }
        self.stash = kept;
        Some(Acked {
            client_id,
            resubscribed,
            stashed,
        })
    }

    /// Whether `client_id`'s topic agrees with the channel and symbol an ack names.
    fn is_named(&self, client_id: ClientId, channel: Option<&str>, symbol: Option<&str>) -> bool {
        self.subs.get(&client_id).is_some_and(|e| {
            channel.is_none_or(|c| e.topic.channel() == c)
                && symbol.is_none_or(|s| e.topic.symbol_name() == Some(s))
        })
    }

    /// The oldest pending request with a member on exactly this channel and
    /// symbol, for acks that do not echo a request id.
    fn request_naming(&self, channel: Option<&str>, symbol: Option<&str>) -> Option<u64> {
        if channel.is_none() && symbol.is_none() {
            return None;
        }
        self.pending
            .iter()
            .filter(|(_, request)| {
                request
                    .members
                    .iter()
                    .any(|id| self.is_named(*id, channel, symbol))
            })
            .map(|(req_id, _)| *req_id)
            .min()
    }

    /// Matches a rejection to a pending member (by symbol when given) and removes
    /// that subscription. Returns it with the operation that failed.
    pub fn on_rejected(
        &mut self,
        req_id: Option<u64>,
        symbol: Option<&str>,
    ) -> Option<(ClientId, SubscriptionOp, Entry)> {
        let req_id = req_id?;
        let request = self.pending.get(&req_id)?;
        let op = request.op;
        let client_id = request.members.iter().copied().find(|id| {
            symbol.is_none_or(|s| {
                self.subs
                    .get(id)
                    .is_some_and(|e| e.topic.symbol_name() == Some(s))
            })
        })?;
        let entry = self.remove(client_id)?;
        Some((client_id, op, entry))
    }

    /// Puts a rejected member back to unsent so the next connection replays it
    /// (the venue asked for a fresh session, not for the subscription to end).
    pub fn requeue_rejected(
        &mut self,
        req_id: Option<u64>,
        symbol: Option<&str>,
    ) -> Option<(ClientId, SubscriptionOp)> {
        let req_id = req_id?;
        let request = self.pending.get(&req_id)?;
        let op = request.op;
        let client_id = request.members.iter().copied().find(|id| {
            symbol.is_none_or(|s| {
                self.subs
                    .get(id)
                    .is_some_and(|e| e.topic.symbol_name() == Some(s))
            })
        })?;
        self.leave_request(req_id, client_id);
        let entry = self.subs.get_mut(&client_id)?;
        entry.phase = Phase::Unsent;
        Some((client_id, op))
    }

    /// What the pending request `req_id` does, if it is still waiting.
    pub fn pending_op(&self, req_id: u64) -> Option<SubscriptionOp> {
        self.pending.get(&req_id).map(|request| request.op)
    }

    /// Removes every member of a request that is still waiting (its ack timed out).
    pub fn on_timeout(&mut self, req_id: u64) -> Vec<(ClientId, SubscriptionOp, Entry)> {
        let Some(request) = self.pending.remove(&req_id) else {
            return Vec::new();
        };
        request
            .members
            .into_iter()
            .filter_map(|id| {
                let entry = self.subs.remove(&id)?;
                self.forget_topic(&entry.topic, id);
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

    /// Payload bytes in the stash now.
    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
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
    pub fn target(
        &mut self,
        client_id: ClientId,
        seq: Option<u64>,
    ) -> Option<(Arc<Queue>, SeqCheck)> {
        let entry = self.subs.get_mut(&client_id)?;
        let verdict = seq.map_or(SeqCheck::InOrder, |seq| entry.check_seq(seq));
        Some((Arc::clone(&entry.queue), verdict))
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

    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))] // the fuzz harness uses it
    /// Checks the registry's own invariants (for tests and fuzzing): routes and
    /// entries agree both ways, pending requests name pending entries.
    pub fn check_invariants(&self) -> Result<(), String> {
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

fn topic_key(topic: &Topic) -> (String, Option<String>) {
    (
        topic.channel().to_owned(),
        topic.symbol_name().map(str::to_owned),
    )
}

/// The one question the registry asks the protocol (kept as a trait so the
/// registry can be driven without a full protocol).
pub trait ProtocolBatching {
    /// Whether `next` may share a subscribe request with `first`.
    fn batchable(&self, first: &Topic, next: &Topic) -> bool;
}

impl<P: Protocol + ?Sized> ProtocolBatching for P {
    fn batchable(&self, first: &Topic, next: &Topic) -> bool {
        self.can_batch(first, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Overflow;

    struct NoBatch;
    impl ProtocolBatching for NoBatch {
        fn batchable(&self, _: &Topic, _: &Topic) -> bool {
            false
        }
    }
    struct SameChannel;
    impl ProtocolBatching for SameChannel {
        fn batchable(&self, a: &Topic, b: &Topic) -> bool {
            a.channel() == b.channel()
        }
    }

    fn registry_with(n: usize) -> Registry {
        let mut r = Registry::new(4, 1 << 20);
        for i in 0..n {
            r.add(
                i as u64 + 1,
                Topic::new("ticker").symbol(format!("S{i}")),
                Queue::new(8, Overflow::DropOldest),
            );
        }
        r
    }

    #[test]
    fn replay_is_in_creation_order_and_batches_only_when_allowed() {
        let mut r = registry_with(3);
        r.add(
            4,
            Topic::new("book").symbol("X"),
            Queue::new(8, Overflow::DropOldest),
        );
        assert_eq!(
            r.unsent_batches(&NoBatch),
            vec![vec![1], vec![2], vec![3], vec![4]]
        );
        assert_eq!(r.unsent_batches(&SameChannel), vec![vec![1, 2, 3], vec![4]]);
    }

    #[test]
    fn acks_route_and_a_disconnect_clears_every_server_id() {
        let mut r = registry_with(2);
        r.mark_sent(&[1], 10);
        r.mark_sent(&[2], 11);
        let a = r
            .on_subscribed(Some(10), ServerId::Num(7), Some("ticker"), None)
            .map(|a| a.client_id);
        assert_eq!(a, Some(1));
        assert_eq!(r.route(&ServerId::Num(7)), Route::To(1));
        r.check_invariants().unwrap();
        r.on_disconnect();
        assert_eq!(r.route(&ServerId::Num(7)), Route::Unroutable);
        assert_eq!(r.unsent_batches(&NoBatch), vec![vec![1], vec![2]]);
        r.check_invariants().unwrap();
    }

    #[test]
    fn per_symbol_acks_of_one_request_all_match() {
        let mut r = registry_with(3);
        r.mark_sent(&[1, 2, 3], 5);
        for (sym, want) in [("S2", 3), ("S0", 1), ("S1", 2)] {
            let key = ServerId::Key(format!("ticker:{sym}").into());
            let got = r
                .on_subscribed(Some(5), key, Some("ticker"), Some(sym))
                .map(|a| a.client_id);
            assert_eq!(got, Some(want));
        }
        assert!(!r.any_pending());
        // A duplicate ack matches nothing.
        assert!(r
            .on_subscribed(Some(5), ServerId::Num(1), None, None)
            .is_none());
    }

    #[test]
    fn an_ack_that_names_another_symbol_matches_nobody_even_with_one_member_left() {
        let mut r = registry_with(2);
        r.mark_sent(&[1, 2], 9);
        let key = |s: &str| ServerId::Key(s.into());
        let first = r.on_subscribed(Some(9), key("ticker:S0"), Some("ticker"), Some("S0"));
        assert_eq!(first.map(|a| a.client_id), Some(1));
        // One member left, but the ack names another symbol: it is not S1's.
        let stray = r.on_subscribed(
            Some(9),
            key("ticker:XBT/USD"),
            Some("ticker"),
            Some("XBT/USD"),
        );
        assert!(stray.is_none());
        // A repeated ack for S0 cannot take S1's place either.
        let repeated = r.on_subscribed(Some(9), key("ticker:S0"), Some("ticker"), Some("S0"));
        assert!(repeated.is_none());
        assert_eq!(r.route(&key("ticker:S0")), Route::To(1));
        assert!(r.is_pending(9));
        r.check_invariants().unwrap();
    }

    #[test]
    fn a_server_id_routed_to_a_live_subscription_is_never_re_pointed() {
        let mut r = registry_with(2);
        r.mark_sent(&[1], 1);
        r.mark_sent(&[2], 2);
        let a = r.on_subscribed(Some(1), ServerId::Num(7), None, None);
        assert_eq!(a.map(|a| a.client_id), Some(1));
        // The venue (or a hostile peer) acks request 2 with sid 7 again.
        assert!(r
            .on_subscribed(Some(2), ServerId::Num(7), None, None)
            .is_none());
        assert_eq!(r.route(&ServerId::Num(7)), Route::To(1));
        assert!(r.is_pending(2));
        r.check_invariants().unwrap();
    }

    #[test]
    fn an_ack_without_a_request_id_matches_by_channel_and_symbol() {
        let mut r = registry_with(2);
        r.mark_sent(&[1], 3);
        r.mark_sent(&[2], 4);
        let acked = r.on_subscribed(
            None,
            ServerId::Key("ticker:S1".into()),
            Some("ticker"),
            Some("S1"),
        );
        assert_eq!(acked.map(|a| a.client_id), Some(2));
        assert!(r
            .on_subscribed(None, ServerId::Num(5), None, None)
            .is_none());
        r.check_invariants().unwrap();
    }

    #[test]
    fn early_frames_wait_in_the_stash_and_come_out_with_the_ack() {
        let mut r = registry_with(1);
        r.mark_sent(&[1], 1);
        assert_eq!(r.route(&ServerId::Num(9)), Route::Stash);
        let frame = Frame::text("early", Some(1));
        let evicted = r.stash(Stashed {
            server_id: ServerId::Num(9),
            frame,
            checksum: None,
        });
        assert_eq!(evicted, 0);
        let acked = r
            .on_subscribed(Some(1), ServerId::Num(9), None, None)
            .expect("acked");
        assert_eq!(acked.stashed.len(), 1);
        assert_eq!(r.stashed(), 0);
    }

    #[test]
    fn the_stash_is_bounded() {
        let mut r = registry_with(1);
        r.mark_sent(&[1], 1);
        let mut evicted = 0;
        for i in 0..10 {
            let item = Stashed {
                server_id: ServerId::Num(i),
                frame: Frame::text("x", None),
                checksum: None,
            };
            evicted += r.stash(item);
        }
        assert_eq!((r.stashed(), evicted), (4, 6));
    }

    #[test]
    fn the_stash_is_bounded_by_bytes_too() {
        let mut r = Registry::new(256, 100);
        r.add(1, Topic::new("ticker"), Queue::new(8, Overflow::DropOldest));
        r.mark_sent(&[1], 1);
        let item = |n: usize| Stashed {
            server_id: ServerId::Num(9),
            frame: Frame::text("x".repeat(n), None),
            checksum: None,
        };
        let mut evicted = 0;
        for _ in 0..10 {
            evicted += r.stash(item(30));
        }
        // Three 30-byte frames fit in 100 bytes; the rest pushed the oldest out.
        assert_eq!((r.stashed(), r.stashed_bytes(), evicted), (3, 90, 7));
        // A frame larger than the whole budget is dropped itself.
        assert_eq!(r.stash(item(101)), 1);
        assert_eq!(r.stashed_bytes(), 90);
        r.check_invariants().unwrap();
    }

    #[test]
    fn sequence_checks() {
        let mut r = registry_with(1);
        assert_eq!(r.check_seq(1, 5), SeqCheck::InOrder);
        assert_eq!(r.check_seq(1, 6), SeqCheck::InOrder);
        assert_eq!(r.check_seq(1, 6), SeqCheck::Duplicate);
        assert_eq!(
            r.check_seq(1, 9),
            SeqCheck::Gap {
                last_seq: 6,
                next_seq: 9
            }
        );
        // Below the last one: a stale repeat, which does not move the last
        // number back, so the next in-order frame is not a false gap.
        assert_eq!(r.check_seq(1, 2), SeqCheck::Duplicate);
        assert_eq!(r.check_seq(1, 10), SeqCheck::InOrder);
    }

    #[test]
    fn a_rejection_removes_only_the_named_symbol() {
        let mut r = registry_with(2);
        r.mark_sent(&[1, 2], 3);
        let (id, op, _) = r.on_rejected(Some(3), Some("S1")).expect("matched");
        assert_eq!((id, op), (2, SubscriptionOp::Subscribe));
        assert!(r.is_pending(3));
        assert_eq!(r.len(), 1);
        r.check_invariants().unwrap();
    }
}
