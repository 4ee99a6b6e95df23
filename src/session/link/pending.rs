//! What a connection remembers about its requests ([`Pending`]): those in
//! flight (whose callers wait), snapshot requests and resyncs not yet
//! written, and subscribes abandoned while unanswered.
//!
//! Rules kept here: at most one resync per subscription is waiting to be
//! written, and one snapshot request per subscription is remembered (a
//! newer one replaces it), so a peer alternating acks and bad checksums
//! cannot grow the outbound queue; the abandoned subscribes are bounded by
//! [`ABANDONED_LIMIT`] (the oldest are forgotten).

use std::collections::{HashMap, HashSet, VecDeque};

use crate::protocol::Topic;
use crate::subscription::{ClientId, ReqId};

/// How many subscriptions ended while their subscribe was unanswered a
/// connection remembers (to unsubscribe a late ack); the oldest are forgotten.
const ABANDONED_LIMIT: usize = 64;

/// What one connection remembers about its requests.
#[derive(Default)]
pub(in crate::session) struct Pending {
    /// Requests written or queued whose answer the driver's caller waits for.
    requests: HashSet<ReqId>,
    /// Subscriptions ended while their subscribe was still unanswered (say, a
    /// `subscribe` call dropped by a timeout). If the ack comes after all, the
    /// venue is told to unsubscribe, or it would stream to nobody for the rest
    /// of the connection.
    abandoned: VecDeque<(ReqId, Topic)>,
    /// Subscriptions whose resync subscribe (under this request id) is not
    /// written yet: at most one resync per subscription is in flight, so a
    /// peer alternating acks and bad checksums cannot grow the outbound queue.
    resyncing: HashMap<ClientId, ReqId>,
    /// Snapshot requests (resyncs on the live subscription) waiting for an
    /// answer, at most one per subscription: a refusal falls back to
    /// subscribing again.
    snapshots: HashMap<ClientId, ReqId>,
}

impl Pending {
    /// Request `req_id` is queued; its caller waits for the answer.
    pub(super) fn request(&mut self, req_id: ReqId) {
        self.requests.insert(req_id);
    }

    /// A snapshot request `req_id` for `client_id` (a resync on the live
    /// subscription) is queued, remembered until answered, refused or timed out.
    pub(super) fn snapshot_request(&mut self, client_id: ClientId, req_id: ReqId) {
        self.snapshots.insert(client_id, req_id);
        self.resyncing.insert(client_id, req_id);
    }

    /// Request `req_id` was written: a resync it carried is no longer waiting.
    pub(super) fn written(&mut self, req_id: ReqId) {
        if !self.resyncing.is_empty() {
            self.resyncing.retain(|_, pending| *pending != req_id);
        }
    }

    /// The connection ended: the requests whose callers still wait.
    pub(super) fn drain_requests(&mut self) -> impl Iterator<Item = ReqId> + '_ {
        self.requests.drain()
    }

    /// Removes `req_id` from the requests in flight; whether it was one.
    pub(in crate::session) fn take_request(&mut self, req_id: ReqId) -> bool {
        self.requests.remove(&req_id)
    }

    /// The subscription the snapshot request `req_id` was for, forgotten now.
    pub(in crate::session) fn take_snapshot_request(&mut self, req_id: ReqId) -> Option<ClientId> {
        let client_id = self
            .snapshots
            .iter()
            .find_map(|(client_id, pending)| (*pending == req_id).then_some(*client_id))?;
        self.snapshots.remove(&client_id);
        Some(client_id)
    }

    /// Forgets the snapshot request of `client_id`, if any (answered for
    /// nobody now).
    pub(in crate::session) fn forget_snapshot_request(&mut self, client_id: ClientId) {
        self.snapshots.remove(&client_id);
    }

    /// The venue ended the server id `client_id`'s snapshot request was
    /// made on: it will never be answered and must not hold back a resync.
    pub(in crate::session) fn drop_snapshot_request(&mut self, client_id: ClientId) {
        if let Some(req_id) = self.snapshots.remove(&client_id) {
            if self.resyncing.get(&client_id) == Some(&req_id) {
                self.resyncing.remove(&client_id);
            }
        }
    }

    /// `client_id`'s resync subscribe `req_id` waits to be written.
    pub(in crate::session) fn note_resync(&mut self, client_id: ClientId, req_id: ReqId) {
        self.resyncing.insert(client_id, req_id);
    }

    /// Whether a resync of `client_id` is queued and not yet written.
    pub(in crate::session) fn resync_waiting(&self, client_id: ClientId) -> bool {
        self.resyncing.contains_key(&client_id)
    }

    /// `client_id`'s resync will not be written (its subscribe was withdrawn).
    pub(in crate::session) fn forget_resync(&mut self, client_id: ClientId) {
        self.resyncing.remove(&client_id);
    }

    /// Remembers a subscribe abandoned while unanswered, so a late ack is
    /// unsubscribed.
    pub(in crate::session) fn abandon(&mut self, req_id: ReqId, topic: Topic) {
        if self.abandoned.len() == ABANDONED_LIMIT {
            self.abandoned.pop_front();
        }
        self.abandoned.push_back((req_id, topic));
    }

    /// The topic of the abandoned subscribe an ack for `req_id` (naming
    /// `symbol`, if any) answers, forgotten now.
    pub(in crate::session) fn take_abandoned(
        &mut self,
        req_id: ReqId,
        symbol: Option<&str>,
    ) -> Option<Topic> {
        let at = self.abandoned.iter().position(|(abandoned_req, topic)| {
            *abandoned_req == req_id
                && symbol.is_none_or(|s| topic.symbol_name().is_none_or(|t| t == s))
        })?;
        self.abandoned.remove(at).map(|(_, topic)| topic)
    }
}
