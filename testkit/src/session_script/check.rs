//! What the harness checks after every step, and at the end of a run.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::task::noop_waker_ref;
use futures::Stream;
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::oneshot;

use resilient_ws::fuzzing::{self, Phase, ReqId, SessionEnd, Turn};
use resilient_ws::{ClientId, Error, Event, Overflow, QueueStats, Update};

use super::harness::Harness;
use crate::model::queue::MQueue;
use crate::model::registry::MPhase;
use crate::model::session::{Expect, MCounters, INBOUND};

/// What one consumer's next poll gave, as the model sees items.
enum Popped {
    /// A data frame, with the number the harness wrote into it.
    Data(Option<u64>),
    /// A signal (gap, reset, ...), which the model does not queue.
    Signal,
    /// An error item.
    Error(Error),
    /// The stream ended.
    End,
    Pending,
}

impl Harness {
    pub(super) fn drop_consumer(&mut self, id: ClientId, lost: bool) {
        self.alive.remove(&id);
        self.model.consumer_dropped(id);
        if id == INBOUND {
            // `Messages::drop` tells the queue.
            self.inbound = None;
            return;
        }
        let queue = Arc::clone(&self.queues[&id]);
        queue.consumer_dropped();
        // `Subscription::drop` sends an unsubscribe unless the queue already ended.
        if !lost && !queue.is_finished() {
            self.deferred.push(id);
        }
    }

    /// Polls `id`'s stream once, as its consumer does.
    fn poll_consumer(&mut self, id: ClientId) -> Popped {
        let mut cx = Context::from_waker(noop_waker_ref());
        let number = |text: Option<&str>| {
            text.and_then(|t| t.rsplit(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
        };
        if id == INBOUND {
            let messages = self.inbound.as_mut().expect("the inbound stream is held");
            return match std::pin::Pin::new(messages).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => Popped::Data(number(frame.as_text())),
                Poll::Ready(Some(Err(error))) => Popped::Error(error),
                Poll::Ready(None) => Popped::End,
                Poll::Pending => Popped::Pending,
            };
        }
        match self.queues[&id].poll_pop(&mut cx) {
            Poll::Ready(Some(Ok(Update::Data(frame)))) => Popped::Data(number(frame.as_text())),
            Poll::Ready(Some(Ok(_signal))) => Popped::Signal,
            Poll::Ready(Some(Err(error))) => Popped::Error(error),
            Poll::Ready(None) => Popped::End,
            Poll::Pending => Popped::Pending,
        }
    }

    fn policy_of(&self, id: ClientId) -> Overflow {
        if id == INBOUND {
            self.inbound_policy
        } else {
            self.queues[&id].policy()
        }
    }

    /// Pops one item as `id`'s consumer; `false` when nothing is ready.
    pub(super) fn pop_one(&mut self, id: ClientId) -> bool {
        let popped = self.poll_consumer(id);
        let policy = self.policy_of(id);
        let model = self.model.queues.get_mut(&id).expect("a modelled queue");
        match popped {
            Popped::Data(number) => {
                let expected = model.pop();
                assert!(
                    number.is_some() && number == expected,
                    "stream {id} got frame {number:?}, the model queued {expected:?} next"
                );
                true
            }
            Popped::Signal => true,
            Popped::Error(Error::QueueFull { .. }) => {
                assert_eq!(policy, Overflow::Error, "QueueFull from another policy");
                true
            }
            Popped::Error(_terminal) => {
                assert!(
                    model.finished,
                    "stream {id}: an error item from a live queue"
                );
                true
            }
            Popped::End => {
                assert!(model.finished, "stream {id} ended before its queue");
                assert!(
                    model.items.is_empty(),
                    "stream {id} ended with frames queued"
                );
                false
            }
            Popped::Pending => {
                assert!(
                    model.items.is_empty(),
                    "stream {id} pends with frames queued"
                );
                false
            }
        }
    }

    pub(super) fn check(&mut self) {
        let registry = fuzzing::registry(&self.drive);
        if let Err(broken) = registry.check_invariants() {
            panic!("registry invariant: {broken}");
        }
        let model = &self.model;
        assert_eq!(self.connected, model.connected, "connected");
        assert_eq!(
            registry.iter().count(),
            model.reg.subs.len(),
            "live subscriptions"
        );
        let stats = fuzzing::stats(&self.drive);
        assert_eq!(
            stats.subscriptions,
            model.reg.subs.len() as u64,
            "subscriptions gauge"
        );
        for (id, sub) in &model.reg.subs {
            let entry = registry
                .get(*id)
                .unwrap_or_else(|| panic!("subscription {id} missing"));
            let phase = match entry.phase {
                Phase::Unsent => MPhase::Unsent,
                Phase::Pending { req_id } => MPhase::Pending(req_id.get()),
                Phase::Active => MPhase::Active,
            };
            assert_eq!(phase, sub.phase, "phase of {id}");
            assert_eq!(entry.server_id, sub.server_id, "server id of {id}");
            assert_eq!(entry.acked_once, sub.acked_once, "acked_once of {id}");
            assert_eq!(entry.last_seq, sub.last_seq, "last_seq of {id}");
        }
        assert_eq!(registry.any_pending(), !model.reg.requests.is_empty());
        for req_id in model.reg.requests.keys() {
            assert!(
                registry.is_pending(ReqId::from(*req_id)),
                "request {req_id} pending"
            );
        }
        assert_eq!(registry.stashed(), model.reg.stash.len(), "stash size");
        assert_eq!(
            registry.stashed_bytes(),
            model.reg.stashed_bytes(),
            "stash bytes"
        );
        // No stale server id routes: every id ever seen routes as the acks
        // on this connection say.
        for server_id in &self.seen {
            assert_eq!(
                registry.route_of(server_id),
                model.reg.valid.get(server_id).copied(),
                "route of {server_id}"
            );
            assert_eq!(
                registry.route(server_id),
                model.reg.route(server_id),
                "route({server_id})"
            );
        }

        // Parked on the queue the model says, or not at all. The inbound
        // queue is the one the core holds that no subscription does.
        let parked = match self.turn() {
            Some(Turn::Blocked { queue, .. }) => Some(
                self.queues
                    .iter()
                    .find(|(_, q)| Arc::ptr_eq(q, &queue))
                    .map_or(INBOUND, |(id, _)| *id),
            ),
            _ => None,
        };
        assert_eq!(parked, model.parked_on(), "parked on");

        // Every queue's accounting, and every frame counted once.
        let inbound = self.inbound.as_ref().map(|m| (INBOUND, m.stats(), None));
        let streams = self
            .queues
            .iter()
            .map(|(id, q)| (*id, q.stats(), Some(q.is_finished())));
        for (id, stats, finished) in streams.chain(inbound) {
            let m = &model.queues[&id];
            let QueueStats {
                routed: r,
                delivered,
                dropped,
                queued,
                ..
            } = stats;
            assert_eq!(
                (r, delivered, dropped, queued),
                (m.routed, m.delivered, m.dropped, m.items.len() as u64),
                "queue {id}: (routed, delivered, dropped, queued)"
            );
            assert_eq!(
                r,
                delivered + dropped + queued,
                "queue {id}: routed = delivered + dropped + queued"
            );
            if let Some(finished) = finished {
                assert_eq!(finished, m.finished, "queue {id} finished?");
            }
        }
        // The hub's totals (`Client::stats`) cover every queue, the inbound
        // one also after its consumer dropped it.
        let total = stats.queues;
        let sum = |f: fn(&MQueue) -> u64| model.queues.values().map(f).sum::<u64>();
        assert_eq!(
            (total.routed, total.delivered, total.dropped, total.queued),
            (
                sum(|m| m.routed),
                sum(|m| m.delivered),
                sum(|m| m.dropped),
                sum(|m| m.items.len() as u64)
            ),
            "all queues: (routed, delivered, dropped, queued)"
        );
        let counters = MCounters {
            frames_in: stats.frames_in,
            control: stats.control,
            unroutable: stats.unroutable,
            duplicates: stats.duplicates,
            gaps: stats.gaps,
            book_breaks: stats.book_breaks,
            resubscribes: stats.resubscribes,
        };
        assert_eq!(counters, model.counters, "counters");
        assert_eq!(stats.stashed, model.reg.stash.len() as u64, "stashed gauge");
        assert_eq!(
            counters.frames_in,
            total.routed
                + counters.control
                + counters.unroutable
                + stats.stashed
                + model.in_limbo(),
            "frames_in = routed + control + unroutable + stashed (+ parked)"
        );

        // Callers and events, as the model expected them: what the callers'
        // reply channels and the events channel carry.
        let mut got: Vec<Expect> = Vec::new();
        for (id, ok) in answers(&mut self.subscribes) {
            assert!(
                self.answered.insert(id),
                "subscribe caller {id} answered twice"
            );
            got.push(Expect::SubscribeResult(id, ok));
        }
        for (req_id, ok) in answers(&mut self.requests) {
            got.push(Expect::RequestResult(req_id, ok));
        }
        for (send_id, ok) in answers(&mut self.sends) {
            got.push(Expect::SendResult(send_id, ok));
        }
        loop {
            let event = match self.events.try_recv() {
                Ok(event) => event,
                Err(TryRecvError::Empty) => break,
                Err(error) => panic!("events: {error}"),
            };
            got.extend(match event {
                Event::SubscriptionEnded { client_id, .. } => Some(Expect::Ended(client_id)),
                Event::Subscribed { client_id, .. } => Some(Expect::Subscribed(client_id)),
                Event::Resubscribed { client_id, .. } => Some(Expect::Resubscribed(client_id)),
                _ => None,
            });
        }
        let mut expected = std::mem::take(&mut self.model.expected);
        got.sort_unstable();
        expected.sort_unstable();
        assert_eq!(got, expected, "callers answered and events emitted");
    }

    /// The client finishes: every stream ends, consumers drain to the end,
    /// every caller has its answer.
    pub(super) fn finish(mut self) {
        if !self.over {
            while self.parked() {
                self.drive.blocked_ended(false, self.at());
                self.model.on_block_timeout(self.now);
            }
            if self.connected {
                self.drive.disconnected(&SessionEnd::Closed, self.at());
                self.connected = false;
            }
            self.model.on_disconnected(self.now);
            self.drive.finish(None, self.at());
            self.model.finish(self.now);
        }
        self.check();
        for id in self.alive.clone() {
            let mut steps = 0;
            while self.pop_one(id) {
                steps += 1;
                assert!(steps < 10_000, "stream {id} never ends");
            }
            assert!(
                matches!(self.poll_consumer(id), Popped::End),
                "stream {id} did not end"
            );
        }
        self.check();
        for id in (1..self.next_client_id).map(fuzzing::client_id) {
            assert!(
                self.answered.contains(&id),
                "subscribe caller {id} never answered"
            );
        }
        assert!(
            self.requests.is_empty() && self.sends.is_empty(),
            "callers never answered: requests {:?}, sends {:?}",
            self.requests.keys(),
            self.sends.keys()
        );
    }
}

/// The callers in `waiting` answered since the last look (`true`: ok); a
/// reply channel dropped unanswered is a broken promise.
fn answers<K: Ord + Copy + std::fmt::Display, T>(
    waiting: &mut std::collections::BTreeMap<K, oneshot::Receiver<Result<T, Error>>>,
) -> Vec<(K, bool)> {
    let mut answered = Vec::new();
    waiting.retain(|key, answer| match answer.try_recv() {
        Ok(result) => {
            answered.push((*key, result.is_ok()));
            false
        }
        Err(oneshot::error::TryRecvError::Empty) => true,
        Err(oneshot::error::TryRecvError::Closed) => panic!("caller {key} dropped unanswered"),
    });
    answered
}
