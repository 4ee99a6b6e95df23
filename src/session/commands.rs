//! What handles ask for, and the life of a subscription on the wire.
//!
//! Commands are served connected or not: while disconnected, subscriptions
//! are recorded (and replayed once connected), unsubscribes end them at once,
//! and one-off sends and requests fail fast, since they must never go out on a
//! later connection than the caller meant.

use std::sync::Arc;

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::core::SessionCore;
use super::link::Outgoing;
use super::output::Action;
use crate::error::{ConnectionError, Error, SubscriptionOp, VenueError};
use crate::events::Event;
use crate::protocol::{Protocol, Request, ServerId, Topic};
use crate::queue::Queue;
use crate::subscription::{ClientId, Phase, ReqId};
use crate::venue_error::VenueErrorKind;

impl<P: Protocol> SessionCore<P> {
    /// New subscriptions; each caller is answered by a
    /// [`Action::SubscribeResult`] at its first ack or failure.
    ///
    /// A topic (channel and symbol) that already has a live subscription on
    /// this client is refused with [`Error::Subscription`]: the venue keeps one
    /// stream per topic on a connection, so a second one would either be
    /// refused by the venue or silently take over the first one's stream (and,
    /// for a Kraken book, its checksum state).
    pub(crate) fn subscribe(&mut self, subs: Vec<(ClientId, Topic, Arc<Queue>)>) {
        for (client_id, topic, queue) in subs {
            if let Some(holder) = self.registry.holder_of(&topic) {
                let error = Error::Subscription {
                    op: SubscriptionOp::Subscribe,
                    client_id,
                    req_id: None,
                    error: VenueError::new(
                        None,
                        format!(
                            "{topic} is already subscribed on this client (subscription {holder})"
                        ),
                    )
                    .with_kind(VenueErrorKind::Permanent),
                };
                tracing::warn!(%client_id, %holder, %topic, "refusing a second subscription of one topic");
                queue.finish(Some(error.clone()));
                self.actions.push_back(Action::SubscribeResult {
                    client_id,
                    result: Err(error),
                });
                continue;
            }
            self.registry.add(client_id, topic, queue);
        }
        // Before the callers' in-flight counts go: a pool never sees a dip.
        let live = self.registry.len() as u64;
        self.stats.counters.subscriptions.set(live);
        if self.link.is_some() {
            self.flush_unsent();
        }
    }

    /// Ends a subscription on request (or because its handle was dropped).
    pub(crate) fn unsubscribe(&mut self, client_id: ClientId) {
        self.end_subscription(client_id, None, true);
    }

    /// Queues a one-off frame; answered by [`Action::SendResult`] once
    /// written (or failed). Fails at once while disconnected. With
    /// `rate_limited: false` it does not spend the outbound rate limit's budget.
    pub(crate) fn send(&mut self, send_id: u64, message: Message, rate_limited: bool) {
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
    }

    /// Queues a request and returns its request id, which its
    /// [`Action::RequestResult`] will carry. Fails at once while disconnected.
    pub(crate) fn request(&mut self, request: &Request) -> Result<ReqId, Error> {
        if self.link.is_none() {
            return Err(self.not_connected());
        }
        let req_id = self.next_req_id();
        let text = self
            .protocol
            .encode_request(request, req_id.get())
            .map_err(Error::protocol)?;
        if let Some(link) = &mut self.link {
            link.push_request(text, req_id);
        }
        Ok(req_id)
    }

    pub(super) fn not_connected(&self) -> Error {
        Error::connection(&self.config.redacted_url, 0, ConnectionError::NotConnected)
    }

    /// Queues subscribe requests for every unsent subscription, in creation
    /// order, batched as the protocol allows. Subscriptions whose consumer is
    /// gone are dropped instead of replayed.
    pub(super) fn flush_unsent(&mut self) {
        let batches = self.registry.unsent_batches(&self.protocol);
        for batch in batches {
            let mut members = Vec::with_capacity(batch.len());
            for id in batch {
                let alive = self
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
            let req_id = self.next_req_id();
            let resubscribes = members
                .iter()
                .filter(|id| self.registry.get(**id).is_some_and(|e| e.acked_once))
                .count();
            let topics: Vec<&Topic> = members
                .iter()
                .filter_map(|id| self.registry.get(*id))
                .map(|e| &e.topic)
                .collect();
            let text = self.protocol.encode_subscribe(&topics, req_id.get());
            self.registry.mark_sent(&members, req_id);
            self.stats.counters.resubscribes.add(resubscribes as u64);
            if let Some(link) = &mut self.link {
                link.push_back(Outgoing::Subscribe { text, req_id });
            }
        }
    }

    /// Ends a subscription: its queue finishes (drained first by the consumer),
    /// and, when `tell_venue`, the venue is told if it has a server id (or
    /// remembered as abandoned if its subscribe is still unanswered).
    pub(super) fn end_subscription(
        &mut self,
        client_id: ClientId,
        error: Option<Error>,
        tell_venue: bool,
    ) {
        let Some(entry) = self.registry.remove(client_id) else {
            return;
        };
        if let Some(link) = &mut self.link {
            // Its snapshot request, if any, is answered for nobody now.
            link.forget_snapshot_request(client_id);
        }
        if let (true, Phase::Pending { req_id }, Some(link)) =
            (tell_venue, entry.phase, &mut self.link)
        {
            // With an operations window, a request nobody waits for any more
            // is withdrawn if it has not gone out yet.
            let withdrawn = !self.registry.is_pending(req_id) && link.withdraw_subscribe(req_id);
            if withdrawn {
                link.forget_resync(client_id);
            } else {
                link.abandon(req_id, entry.topic.clone());
            }
        }
        if !entry.acked_once {
            self.actions.push_back(Action::SubscribeResult {
                client_id,
                result: Err(error.clone().unwrap_or(Error::ClientClosed)),
            });
        }
        entry.queue.finish(error.clone());
        if entry.server_id.is_none() {
            self.protocol.forget_topic(&entry.topic);
        }
        if let Some(server_id) = &entry.server_id {
            self.protocol.forget(server_id);
            if tell_venue {
                let req_id = self.next_req_id();
                if let Some(text) =
                    self.protocol
                        .encode_unsubscribe(&entry.topic, server_id, req_id.get())
                {
                    if let Some(link) = &mut self.link {
                        link.push_back(Outgoing::Unsubscribe { text });
                    }
                }
            }
        }
        if !self.registry.any_pending() {
            self.all_acknowledged();
        }
        self.emit(Event::SubscriptionEnded { client_id, error });
    }

    /// Asks for a fresh snapshot of one subscription, unless its previous
    /// resync has not even been written yet (then that one will do): on the
    /// live subscription where the venue can re-send one
    /// ([`Protocol::encode_resync`]), else by subscribing it again.
    pub(super) fn resync(&mut self, client_id: ClientId) {
        if self.resync_waiting(client_id) {
            return;
        }
        let req_id = self.next_req_id;
        let text = match self.registry.get(client_id) {
            Some(entry) if entry.phase == Phase::Active => {
                entry.server_id.as_ref().and_then(|server_id| {
                    self.protocol
                        .encode_resync(&entry.topic, server_id, req_id.get())
                })
            }
            _ => None,
        };
        let Some(text) = text else {
            self.resubscribe(client_id, true);
            return;
        };
        self.next_req_id = req_id.next();
        if let Some(link) = &mut self.link {
            // One snapshot request per subscription is remembered (a newer one
            // replaces it), so the map is bounded by the subscriptions.
            link.push_snapshot_request(client_id, text, req_id);
        }
    }

    /// Whether a resync of `client_id` is queued and not yet written.
    fn resync_waiting(&self, client_id: ClientId) -> bool {
        let waiting = self
            .link
            .as_ref()
            .is_some_and(|link| link.resync_waiting(client_id));
        if waiting {
            tracing::debug!(%client_id, "a resync is already on its way");
        }
        waiting
    }

    /// The subscription a snapshot request `req_id` was for, forgotten now
    /// that it was answered, refused or timed out.
    pub(super) fn take_snapshot_request(&mut self, req_id: ReqId) -> Option<ClientId> {
        self.link.as_mut()?.take_snapshot_request(req_id)
    }

    /// Subscribes one subscription again for a fresh snapshot under a new
    /// server id (telling the venue to drop the old one when
    /// `unsubscribe_old`; not when the venue ended it itself).
    pub(super) fn resubscribe(&mut self, client_id: ClientId, unsubscribe_old: bool) {
        if self.resync_waiting(client_id) {
            return;
        }
        let Some(old) = self.registry.begin_resync(client_id) else {
            return;
        };
        self.protocol.forget(&old);
        if unsubscribe_old {
            let req_id = self.next_req_id();
            let unsubscribe = self.registry.get(client_id).and_then(|entry| {
                self.protocol
                    .encode_unsubscribe(&entry.topic, &old, req_id.get())
            });
            if let (Some(text), Some(link)) = (unsubscribe, &mut self.link) {
                link.push_back(Outgoing::Unsubscribe { text });
            }
        }
        self.flush_unsent();
        if let (Some(Phase::Pending { req_id }), Some(link)) = (
            self.registry.get(client_id).map(|e| e.phase),
            &mut self.link,
        ) {
            link.note_resync(client_id, req_id);
        }
    }

    /// An ack nobody waits for: unsubscribe it if its subscription was
    /// abandoned while pending.
    pub(super) fn on_unmatched_ack(
        &mut self,
        req_id: Option<ReqId>,
        server_id: &ServerId,
        symbol: Option<&str>,
    ) {
        let Some(link) = &mut self.link else {
            return;
        };
        let Some(topic) = req_id.and_then(|req_id| link.take_abandoned(req_id, symbol)) else {
            tracing::debug!(?req_id, %server_id, "ack matches no pending subscription");
            return;
        };
        tracing::debug!(?req_id, %server_id, "late ack for an abandoned subscription; unsubscribing");
        let unsubscribe_req = self.next_req_id();
        if let Some(text) =
            self.protocol
                .encode_unsubscribe(&topic, server_id, unsubscribe_req.get())
        {
            if let Some(link) = &mut self.link {
                link.push_back(Outgoing::Unsubscribe { text });
            }
        }
        self.protocol.forget(server_id);
    }

    /// The client is finishing: every subscription's stream ends, with
    /// `error` as its last item when there is one, and so does the inbound stream.
    pub(crate) fn finish(&mut self, error: Option<&Error>, now: Instant) {
        self.end_stall(now);
        let ids: Vec<ClientId> = self.registry.iter().map(|(id, _)| id).collect();
        for id in ids {
            if let Some(entry) = self.registry.remove(id) {
                if !entry.acked_once {
                    self.actions.push_back(Action::SubscribeResult {
                        client_id: id,
                        result: Err(error.cloned().unwrap_or(Error::ClientClosed)),
                    });
                }
                entry.queue.finish(error.cloned());
            }
        }
        self.inbound.finish(error.cloned());
    }
}
