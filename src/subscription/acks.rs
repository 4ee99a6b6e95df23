//! How acknowledgements and rejections find their subscription.
//!
//! Rules (the reasons are in the parent module's docs): an ack is matched to the
//! pending member of its request that it names (channel and symbol), or to
//! nobody; an ack without a request id is matched to the oldest pending request
//! that has a member on exactly that channel and symbol; a server id that already
//! routes to another live subscription is never re-pointed; a rejection removes
//! only the member it names.

use super::*;

impl Registry {
    /// Matches an ack to the first pending member of its request whose channel
    /// and symbol agree, and routes `server_id` to it.
    pub fn on_subscribed(
        &mut self,
        req_id: Option<ReqId>,
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
    fn request_naming(&self, channel: Option<&str>, symbol: Option<&str>) -> Option<ReqId> {
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
        req_id: Option<ReqId>,
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
        req_id: Option<ReqId>,
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
}
