//! The subscription registry as `subscription.rs` documents its rules: one
//! server id per subscription and one subscription per server id, an ack
//! belongs to the member it names or to nobody, a server id routed to a live
//! subscription is never re-pointed, a disconnect clears every server id
//! first, a bounded stash (frames and bytes), `seq <= last` is a duplicate.

use std::collections::{BTreeMap, HashMap, VecDeque};

use resilient_ws::fuzzing::{ProtocolBatching, Route, SeqCheck};
use resilient_ws::{ClientId, ServerId, SubscriptionOp, Topic};

/// Where a subscription stands on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MPhase {
    Unsent,
    Pending(u64),
    Active,
}

/// One live subscription.
pub(crate) struct MSub {
    pub(crate) topic: Topic,
    pub(crate) phase: MPhase,
    pub(crate) server_id: Option<ServerId>,
    pub(crate) acked_once: bool,
    pub(crate) last_seq: Option<u64>,
}

/// A subscribe request waiting for acks.
pub(crate) struct MRequest {
    pub(crate) op: SubscriptionOp,
    pub(crate) members: Vec<ClientId>,
}

/// The registry as its documentation describes it.
#[derive(Default)]
pub(crate) struct Model {
    pub(crate) subs: BTreeMap<ClientId, MSub>,
    pub(crate) requests: BTreeMap<u64, MRequest>,
    /// Server ids the latest acks on this connection mapped, and to whom.
    pub(crate) valid: HashMap<ServerId, ClientId>,
    /// Early frames waiting for the ack of their server id.
    pub(crate) stash: VecDeque<MStashed>,
    pub(crate) stash_capacity: usize,
    pub(crate) stash_budget: usize,
}

/// A data frame as the model tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MFrame {
    /// Its number (unique per run, carried in the frame text).
    pub(crate) number: u64,
    pub(crate) seq: Option<u64>,
    /// Whether it carried a bad book checksum.
    pub(crate) bad_checksum: bool,
    /// Payload bytes (counted against the stash budget).
    pub(crate) bytes: usize,
}

/// A stashed frame and the server id it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MStashed {
    pub(crate) server_id: ServerId,
    pub(crate) frame: MFrame,
}

/// What the model expects an ack to do.
#[derive(Debug, PartialEq)]
pub(crate) struct MAcked {
    pub(crate) client_id: ClientId,
    pub(crate) resubscribed: bool,
    pub(crate) released: Vec<MFrame>,
}

impl Model {
    pub(crate) fn matches(
        &self,
        id: ClientId,
        channel: Option<&str>,
        symbol: Option<&str>,
    ) -> bool {
        self.subs.get(&id).is_some_and(|s| {
            channel.is_none_or(|c| s.topic.channel() == c)
                && symbol.is_none_or(|y| s.topic.symbol_name() == Some(y))
        })
    }

    pub(crate) fn leave(&mut self, req_id: u64, id: ClientId) {
        if let Some(request) = self.requests.get_mut(&req_id) {
            request.members.retain(|m| *m != id);
            if request.members.is_empty() {
                self.requests.remove(&req_id);
            }
        }
    }

    /// Removes a live subscription (it leaves its request and its route).
    pub(crate) fn remove(&mut self, id: ClientId) -> Option<MSub> {
        let sub = self.subs.remove(&id)?;
        if let Some(server_id) = &sub.server_id {
            if self.valid.get(server_id) == Some(&id) {
                self.valid.remove(server_id);
            }
        }
        if let MPhase::Pending(req_id) = sub.phase {
            self.leave(req_id, id);
        }
        Some(sub)
    }

    pub(crate) fn unsent_batches(&self, batching: &dyn ProtocolBatching) -> Vec<Vec<ClientId>> {
        let mut batches: Vec<Vec<ClientId>> = Vec::new();
        let mut first: Option<&Topic> = None;
        for (id, sub) in &self.subs {
            if sub.phase != MPhase::Unsent {
                first = None;
                continue;
            }
            match (batches.last_mut(), first) {
                (Some(batch), Some(f)) if batching.batchable(f, &sub.topic) => batch.push(*id),
                _ => {
                    batches.push(vec![*id]);
                    first = Some(&sub.topic);
                }
            }
        }
        batches
    }

    pub(crate) fn mark_sent(&mut self, members: &[ClientId], req_id: u64) {
        let mut op = SubscriptionOp::Subscribe;
        for id in members {
            let sub = self.subs.get_mut(id).expect("members are live");
            if sub.acked_once {
                op = SubscriptionOp::Resubscribe;
            }
            sub.phase = MPhase::Pending(req_id);
        }
        self.requests.insert(
            req_id,
            MRequest {
                op,
                members: members.to_vec(),
            },
        );
    }

    pub(crate) fn on_subscribed(
        &mut self,
        req_id: Option<u64>,
        server_id: &ServerId,
        channel: Option<&str>,
        symbol: Option<&str>,
    ) -> Option<MAcked> {
        // No request id: the oldest pending request naming this channel and symbol.
        let req_id = match req_id {
            Some(req_id) => req_id,
            None if channel.is_none() && symbol.is_none() => return None,
            None => {
                *self
                    .requests
                    .iter()
                    .find(|(_, r)| r.members.iter().any(|m| self.matches(*m, channel, symbol)))?
                    .0
            }
        };
        let request = self.requests.get(&req_id)?;
        let exact = request
            .members
            .iter()
            .copied()
            .find(|m| self.matches(*m, channel, symbol));
        // An ack belongs to the member it names or to nobody.
        let id = exact?;
        // A server id routed to another live subscription is never re-pointed.
        if self
            .valid
            .get(server_id)
            .is_some_and(|holder| *holder != id)
        {
            return None;
        }
        self.leave(req_id, id);
        self.valid.insert(server_id.clone(), id);
        let sub = self.subs.get_mut(&id).expect("members are live");
        if let Some(old) = sub.server_id.replace(server_id.clone()) {
            if old != *server_id && self.valid.get(&old) == Some(&id) {
                self.valid.remove(&old);
            }
        }
        sub.phase = MPhase::Active;
        sub.last_seq = None;
        let resubscribed = sub.acked_once;
        sub.acked_once = true;
        let (released, kept): (VecDeque<_>, VecDeque<_>) = self
            .stash
            .drain(..)
            .partition(|s| s.server_id == *server_id);
        self.stash = kept;
        Some(MAcked {
            client_id: id,
            resubscribed,
            released: released.into_iter().map(|s| s.frame).collect(),
        })
    }

    pub(crate) fn on_rejected(
        &mut self,
        req_id: Option<u64>,
        symbol: Option<&str>,
    ) -> Option<(ClientId, SubscriptionOp, MSub)> {
        let request = self.requests.get(&req_id?)?;
        let op = request.op;
        let id = request
            .members
            .iter()
            .copied()
            .find(|m| self.matches(*m, None, symbol))?;
        let sub = self.remove(id)?;
        Some((id, op, sub))
    }

    pub(crate) fn requeue_rejected(
        &mut self,
        req_id: Option<u64>,
        symbol: Option<&str>,
    ) -> Option<(ClientId, SubscriptionOp)> {
        let request = self.requests.get(&req_id?)?;
        let op = request.op;
        let id = request
            .members
            .iter()
            .copied()
            .find(|m| self.matches(*m, None, symbol))?;
        self.leave(req_id?, id);
        self.subs.get_mut(&id)?.phase = MPhase::Unsent;
        Some((id, op))
    }

    pub(crate) fn on_timeout(&mut self, req_id: u64) -> Vec<(ClientId, SubscriptionOp, MSub)> {
        let Some(request) = self.requests.remove(&req_id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for id in request.members {
            if let Some(sub) = self.subs.remove(&id) {
                if let Some(server_id) = &sub.server_id {
                    if self.valid.get(server_id) == Some(&id) {
                        self.valid.remove(server_id);
                    }
                }
                out.push((id, request.op, sub));
            }
        }
        out
    }

    pub(crate) fn route(&self, server_id: &ServerId) -> Route {
        match self.valid.get(server_id) {
            Some(id) => Route::To(*id),
            None if !self.requests.is_empty() => Route::Stash,
            None => Route::Unroutable,
        }
    }

    /// Stashes an early frame; returns how many frames were dropped (the
    /// oldest, while full by count or bytes; or the frame itself when it is
    /// larger than the whole budget).
    pub(crate) fn stash(&mut self, server_id: ServerId, frame: MFrame) -> usize {
        if frame.bytes > self.stash_budget {
            return 1;
        }
        let mut evicted = 0;
        while self.stash.len() >= self.stash_capacity
            || self.stashed_bytes() + frame.bytes > self.stash_budget
        {
            if self.stash.pop_front().is_none() {
                break;
            }
            evicted += 1;
        }
        self.stash.push_back(MStashed { server_id, frame });
        evicted
    }

    pub(crate) fn stashed_bytes(&self) -> usize {
        self.stash.iter().map(|s| s.frame.bytes).sum()
    }

    /// The live subscription of this channel and symbol, if any.
    pub(crate) fn holder_of(&self, topic: &Topic) -> Option<ClientId> {
        self.subs
            .iter()
            .find(|(_, s)| {
                s.topic.channel() == topic.channel() && s.topic.symbol_name() == topic.symbol_name()
            })
            .map(|(id, _)| *id)
    }

    pub(crate) fn check_seq(&mut self, id: ClientId, seq: u64) -> SeqCheck {
        let Some(sub) = self.subs.get_mut(&id) else {
            return SeqCheck::InOrder;
        };
        let verdict = match sub.last_seq {
            None => SeqCheck::InOrder,
            Some(last) if seq == last.wrapping_add(1) => SeqCheck::InOrder,
            Some(last) if seq <= last => SeqCheck::Duplicate,
            Some(last) => SeqCheck::Gap {
                last_seq: last,
                next_seq: seq,
            },
        };
        if verdict != SeqCheck::Duplicate {
            sub.last_seq = Some(seq);
        }
        verdict
    }

    pub(crate) fn begin_resync(&mut self, id: ClientId) -> Option<ServerId> {
        let sub = self.subs.get_mut(&id)?;
        if sub.phase != MPhase::Active {
            return None;
        }
        let old = sub.server_id.take();
        sub.phase = MPhase::Unsent;
        sub.last_seq = None;
        if let Some(server_id) = &old {
            if self.valid.get(server_id) == Some(&id) {
                self.valid.remove(server_id);
            }
        }
        old
    }

    pub(crate) fn on_disconnect(&mut self) -> usize {
        self.valid.clear();
        self.requests.clear();
        let dropped = self.stash.len();
        self.stash.clear();
        for sub in self.subs.values_mut() {
            sub.server_id = None;
            sub.phase = MPhase::Unsent;
            sub.last_seq = None;
        }
        dropped
    }
}
