//! The subscriptions on the wire: the registry, the protocol adapter that
//! encodes their requests, request ids, and what subscribing, ending,
//! resyncing and replaying a subscription sends.
//!
//! [`Subscriptions`] owns these fields and this behaviour; what it touches
//! besides (the current connection's outbound queue, the driver's actions,
//! the counters) the core lends it for one call as an [`Around`]. The core
//! reads the registry and the adapter on every frame (to classify and route
//! it) and coordinates the rest.
//!
//! Rules: subscriptions are recorded while disconnected and replayed once
//! connected; a topic has one live subscription per client; an ended
//! subscription's queue finishes and the venue is told (or, while its
//! subscribe is unanswered, it is remembered as abandoned so a late ack is
//! unsubscribed); at most one resync per subscription is waiting to be
//! written, so a peer alternating acks and bad checksums cannot grow the
//! outbound queue.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::time::Instant;

use super::link::{Link, Outgoing};
use super::output::{Action, SessionEnd};
use super::retry_hint::RetryHint;
use crate::config::Config;
use crate::error::{Error, Operation, SubscriptionOp, VenueError};
use crate::events::Event;
use crate::protocol::{Protocol, ServerId, Topic};
use crate::queue::Queue;
use crate::stats::StatsHub;
use crate::subscription::{ClientId, Phase, Registry, ReqId};
use crate::venue_error::VenueErrorKind;

/// The parts of the core a subscription's life touches besides its own,
/// lent for one call.
pub(super) struct Around<'a> {
    /// The current connection; `None` while disconnected.
    pub(super) link: &'a mut Option<Link>,
    /// What the driver must do next.
    pub(super) actions: &'a mut VecDeque<Action>,
    /// The counters.
    pub(super) stats: &'a StatsHub,
    /// The client's configuration.
    pub(super) config: &'a Config,
    /// How long a venue asked to wait before the next attempt.
    pub(super) retry_hint: &'a mut RetryHint,
}

impl Around<'_> {
    fn emit(&mut self, event: Event) {
        self.actions.push_back(Action::Emit(event));
    }

    fn push_back(&mut self, outgoing: Outgoing) {
        if let Some(link) = self.link.as_mut() {
            link.push_back(outgoing);
        }
    }

    /// Remembers how long `error` asks us to wait before the next attempt.
    fn note_retry_hint(&mut self, error: &Error, now: Instant) {
        self.retry_hint.note(error, self.config.backoff.cap, now);
    }

    /// Removes `req_id` from the requests in flight; whether it was one.
    fn take_request(&mut self, req_id: ReqId) -> bool {
        self.link
            .as_mut()
            .is_some_and(|link| link.pending.take_request(req_id))
    }

    /// The subscription a snapshot request `req_id` was for, forgotten now
    /// that it was answered, refused or timed out.
    fn take_snapshot_request(&mut self, req_id: ReqId) -> Option<ClientId> {
        self.link.as_mut()?.pending.take_snapshot_request(req_id)
    }

    /// Every subscribe sent on this connection has been answered.
    fn all_acknowledged(&mut self) {
        if let Some(link) = self.link.as_mut() {
            link.all_acknowledged();
        }
    }

    /// Whether a resync of `client_id` is queued and not yet written.
    fn resync_waiting(&self, client_id: ClientId) -> bool {
        let waiting = self
            .link
            .as_ref()
            .is_some_and(|link| link.pending.resync_waiting(client_id));
        if waiting {
            tracing::debug!(%client_id, "a resync is already on its way");
        }
        waiting
    }
}

/// The subscriptions, the adapter that speaks for them, and request ids.
pub(super) struct Subscriptions<P> {
    /// The protocol adapter.
    pub(super) protocol: P,
    /// Every live subscription, its phase and its routes.
    pub(super) registry: Registry,
    next_req_id: ReqId,
}

impl<P: Protocol> Subscriptions<P> {
    pub(super) fn new(protocol: P, registry: Registry) -> Self {
        Subscriptions {
            protocol,
            registry,
            next_req_id: ReqId::from(1),
        }
    }

    /// A fresh request id.
    pub(super) fn next_req_id(&mut self) -> ReqId {
        let id = self.next_req_id;
        self.next_req_id = id.next();
        id
    }

    /// New subscriptions; each caller is answered by a
    /// [`Action::SubscribeResult`] at its first ack or failure.
    ///
    /// A topic (channel and symbol, or the scope the protocol names:
    /// [`Protocol::topic_scope`](crate::Protocol::topic_scope)) that already
    /// has a live subscription on this client is refused with
    /// [`Error::Subscription`]: the venue keeps one
    /// stream per topic on a connection, so a second one would either be
    /// refused by the venue or silently take over the first one's stream (and,
    /// for a Kraken book, its checksum state).
    pub(super) fn subscribe(
        &mut self,
        subs: Vec<(ClientId, Topic, Arc<Queue>)>,
        around: &mut Around<'_>,
    ) {
        for (client_id, topic, queue) in subs {
            let scope = self.protocol.topic_scope(&topic).map(|s| s.into_owned());
            if let Some(holder) = self
                .registry
                .holder_of_scoped(topic.channel(), scope.as_deref())
            {
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
                around.actions.push_back(Action::SubscribeResult {
                    client_id,
                    result: Err(error),
                });
                continue;
            }
            self.registry.add_scoped(client_id, topic, scope, queue);
        }
        // Before the callers' in-flight counts go: a pool never sees a dip.
        let live = self.registry.len() as u64;
        around.stats.counters.subscriptions.set(live);
        if around.link.is_some() {
            self.flush_unsent(around);
        }
    }

    /// Queues subscribe requests for every unsent subscription, in creation
    /// order, batched as the protocol allows. Subscriptions whose consumer is
    /// gone are dropped instead of replayed.
    pub(super) fn flush_unsent(&mut self, around: &mut Around<'_>) {
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
                    self.end_subscription(id, None, false, around);
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
            around.stats.counters.resubscribes.add(resubscribes as u64);
            around.push_back(Outgoing::Subscribe { text, req_id });
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
        around: &mut Around<'_>,
    ) {
        let Some(entry) = self.registry.remove(client_id) else {
            return;
        };
        if let Some(link) = around.link.as_mut() {
            // Its snapshot request, if any, is answered for nobody now.
            link.pending.forget_snapshot_request(client_id);
        }
        if let (true, Phase::Pending { req_id }, Some(link)) =
            (tell_venue, entry.phase, around.link.as_mut())
        {
            // With an operations window, a request nobody waits for any more
            // is withdrawn if it has not gone out yet.
            let withdrawn = !self.registry.is_pending(req_id) && link.withdraw_subscribe(req_id);
            if withdrawn {
                link.pending.forget_resync(client_id);
            } else {
                link.pending.abandon(req_id, entry.topic.clone());
            }
        }
        if !entry.acked_once {
            around.actions.push_back(Action::SubscribeResult {
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
                    around.push_back(Outgoing::Unsubscribe { text });
                }
            }
        }
        if !self.registry.any_pending() {
            around.all_acknowledged();
        }
        around.emit(Event::SubscriptionEnded { client_id, error });
    }

    /// Asks for a fresh snapshot of one subscription, unless its previous
    /// resync has not even been written yet (then that one will do): on the
    /// live subscription where the venue can re-send one
    /// ([`Protocol::encode_resync`]), else by subscribing it again.
    pub(super) fn resync(&mut self, client_id: ClientId, around: &mut Around<'_>) {
        if around.resync_waiting(client_id) {
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
            self.resubscribe(client_id, true, around);
            return;
        };
        self.next_req_id = req_id.next();
        if let Some(link) = around.link.as_mut() {
            // One snapshot request per subscription is remembered (a newer one
            // replaces it), so the map is bounded by the subscriptions.
            link.push_snapshot_request(client_id, text, req_id);
        }
    }

    /// Subscribes one subscription again for a fresh snapshot under a new
    /// server id (telling the venue to drop the old one when
    /// `unsubscribe_old`; not when the venue ended it itself).
    pub(super) fn resubscribe(
        &mut self,
        client_id: ClientId,
        unsubscribe_old: bool,
        around: &mut Around<'_>,
    ) {
        if around.resync_waiting(client_id) {
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
            if let Some(text) = unsubscribe {
                around.push_back(Outgoing::Unsubscribe { text });
            }
        }
        self.flush_unsent(around);
        if let (Some(Phase::Pending { req_id }), Some(link)) = (
            self.registry.get(client_id).map(|e| e.phase),
            around.link.as_mut(),
        ) {
            link.pending.note_resync(client_id, req_id);
        }
    }

    /// An ack nobody waits for: unsubscribe it if its subscription was
    /// abandoned while pending.
    pub(super) fn on_unmatched_ack(
        &mut self,
        req_id: Option<ReqId>,
        server_id: &ServerId,
        symbol: Option<&str>,
        around: &mut Around<'_>,
    ) {
        let Some(link) = around.link.as_mut() else {
            return;
        };
        let Some(topic) = req_id.and_then(|req_id| link.pending.take_abandoned(req_id, symbol))
        else {
            tracing::debug!(?req_id, %server_id, "ack matches no pending subscription");
            return;
        };
        tracing::debug!(?req_id, %server_id, "late ack for an abandoned subscription; unsubscribing");
        let unsubscribe_req = self.next_req_id();
        if let Some(text) =
            self.protocol
                .encode_unsubscribe(&topic, server_id, unsubscribe_req.get())
        {
            around.push_back(Outgoing::Unsubscribe { text });
        }
        self.protocol.forget(server_id);
    }

    // ---- answers and silences ----------------------------------------------

    /// A request or subscribe got no answer in time.
    pub(super) fn expire(
        &mut self,
        req_id: ReqId,
        around: &mut Around<'_>,
    ) -> Result<(), SessionEnd> {
        let timeout = around.config.request_timeout;
        if around.take_request(req_id) {
            around.actions.push_back(Action::RequestResult {
                req_id,
                result: Err(Error::Timeout {
                    operation: Operation::Request,
                    timeout,
                }),
            });
            return Ok(());
        }
        if around.take_snapshot_request(req_id).is_some() {
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
                around.actions.push_back(Action::SubscribeResult {
                    client_id,
                    result: Err(error.clone()),
                });
            }
            entry.queue.finish(Some(error.clone()));
            match &entry.server_id {
                Some(server_id) => self.protocol.forget(server_id),
                None => self.protocol.forget_topic(&entry.topic),
            }
            around.emit(Event::SubscriptionEnded {
                client_id,
                error: Some(error),
            });
        }
        if !self.registry.any_pending() {
            around.all_acknowledged();
        }
        Ok(())
    }

    /// A venue refused a subscribe or a request. A subscription whose session
    /// expired is kept and the connection recycled, so the token source is
    /// asked for a fresh token and the subscription replayed with it; any other
    /// refusal ends that subscription alone.
    pub(super) fn on_rejected(
        &mut self,
        req_id: Option<ReqId>,
        symbol: Option<&str>,
        venue_error: VenueError,
        now: Instant,
        around: &mut Around<'_>,
    ) -> Result<(), SessionEnd> {
        around.stats.counters.control.bump();
        around.stats.counters.venue_error(venue_error.kind);
        let session_expired = venue_error.kind == VenueErrorKind::SessionExpired;
        if session_expired && around.config.token_source.is_some() {
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
                around.note_retry_hint(&error, now);
                self.end_subscription(client_id, Some(error), true, around);
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
            around.note_retry_hint(&error, now);
            if !entry.acked_once {
                around.actions.push_back(Action::SubscribeResult {
                    client_id,
                    result: Err(error.clone()),
                });
            }
            entry.queue.finish(Some(error.clone()));
            around.emit(Event::SubscriptionEnded {
                client_id,
                error: Some(error),
            });
            if !self.registry.any_pending() {
                around.all_acknowledged();
            }
            return Ok(());
        }
        if let Some(client_id) = req_id.and_then(|id| around.take_snapshot_request(id)) {
            tracing::info!(
                %client_id,
                error = %venue_error,
                "the venue refused to re-send a snapshot; subscribing again instead"
            );
            self.resubscribe(client_id, true, around);
            return Ok(());
        }
        if let Some(req_id) = req_id.filter(|id| around.take_request(*id)) {
            let error = Error::Request {
                req_id: req_id.get(),
                error: venue_error,
            };
            around.note_retry_hint(&error, now);
            around.actions.push_back(Action::RequestResult {
                req_id,
                result: Err(error),
            });
            return Ok(());
        }
        tracing::debug!(?req_id, error = %venue_error, "venue error for no pending request");
        Ok(())
    }

    /// The venue ended a subscription on its own (Kalshi's error 25 or 10):
    /// subscribe it again, without an unsubscribe for the server id the
    /// venue already dropped. A refusal of that subscribe ends it with the
    /// venue's error (`on_rejected`); it never stays open and silent.
    pub(super) fn on_venue_ended(
        &mut self,
        server_id: &ServerId,
        error: VenueError,
        around: &mut Around<'_>,
    ) {
        around.stats.counters.control.bump();
        around.stats.counters.venue_error(error.kind);
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
        if let Some(link) = around.link.as_mut() {
            link.pending.drop_snapshot_request(client_id);
        }
        self.resubscribe(client_id, false, around);
    }

    /// The members of request `req_id` still waiting for their ack, when a
    /// refusal names none of them (`symbol` is `None`) and there are several.
    pub(super) fn unnamed_members(
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

    /// The client is finishing: every subscription's stream ends, with
    /// `error` as its last item when there is one; callers still waiting
    /// for their first ack are answered into `actions`.
    pub(super) fn finish(&mut self, error: Option<&Error>, actions: &mut VecDeque<Action>) {
        let ids: Vec<ClientId> = self.registry.iter().map(|(id, _)| id).collect();
        for id in ids {
            if let Some(entry) = self.registry.remove(id) {
                if !entry.acked_once {
                    actions.push_back(Action::SubscribeResult {
                        client_id: id,
                        result: Err(error.cloned().unwrap_or(Error::ClientClosed)),
                    });
                }
                entry.queue.finish(error.cloned());
            }
        }
    }
}
