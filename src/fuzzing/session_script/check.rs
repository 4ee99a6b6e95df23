//! What the harness checks after every step, and at the end of a run.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::task::noop_waker_ref;

use super::harness::Harness;
use crate::error::Error;
use crate::events::Event;
use crate::fuzzing::model::registry::MPhase;
use crate::fuzzing::model::session::{Expect, MCounters, INBOUND};
use crate::message::Update;
use crate::queue::Overflow;
use crate::session::{Action, SessionEnd};
use crate::subscription::{ClientId, Phase, ReqId};

impl Harness {
    pub(super) fn drop_consumer(&mut self, id: ClientId, lost: bool) {
        self.alive.remove(&id);
        let queue = Arc::clone(&self.queues[&id]);
        queue.consumer_dropped();
        self.model.consumer_dropped(id);
        // `Subscription::drop` sends an unsubscribe unless the queue already ended.
        if !lost && id != INBOUND && !queue.is_finished() {
            self.deferred.push(id);
        }
    }

    /// Pops one item as `id`'s consumer; `false` when nothing is ready.
    pub(super) fn pop_one(&mut self, id: ClientId) -> bool {
        let queue = Arc::clone(&self.queues[&id]);
        let model = self.model.queues.get_mut(&id).expect("a modelled queue");
        let mut cx = Context::from_waker(noop_waker_ref());
        match queue.poll_pop(&mut cx) {
            Poll::Ready(Some(Ok(Update::Data(frame)))) => {
                let number = frame
                    .as_text()
                    .and_then(|t| t.rsplit(' ').next())
                    .and_then(|n| n.parse::<u64>().ok());
                let expected = model.pop();
                assert!(
                    number.is_some() && number == expected,
                    "stream {id} got frame {number:?}, the model queued {expected:?} next"
                );
                true
            }
            Poll::Ready(Some(Ok(_signal))) => true,
            Poll::Ready(Some(Err(Error::QueueFull { .. }))) => {
                assert_eq!(
                    queue.policy(),
                    Overflow::Error,
                    "QueueFull from another policy"
                );
                true
            }
            Poll::Ready(Some(Err(_terminal))) => {
                assert!(
                    model.finished,
                    "stream {id}: an error item from a live queue"
                );
                true
            }
            Poll::Ready(None) => {
                assert!(model.finished, "stream {id} ended before its queue");
                assert!(
                    model.items.is_empty(),
                    "stream {id} ended with frames queued"
                );
                false
            }
            Poll::Pending => {
                assert!(
                    model.items.is_empty(),
                    "stream {id} pends with frames queued"
                );
                false
            }
        }
    }

    pub(super) fn check(&mut self) {
        let registry = self.core.registry();
        if let Err(broken) = registry.check_invariants() {
            panic!("registry invariant: {broken}");
        }
        let model = &self.model;
        assert_eq!(self.core.is_connected(), model.connected, "connected");
        assert_eq!(registry.len(), model.reg.subs.len(), "live subscriptions");
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

        // Parked on the queue the model says, or not at all.
        let parked = self.core.blocked_on().map(|(queue, _)| queue);
        let expected = model.parked_on().map(|id| &self.queues[&id]);
        assert!(
            match (&parked, expected) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            },
            "parked on {:?}, the model expected {:?}",
            parked.map(|q| q.capacity()),
            model.parked_on()
        );

        // Every queue's accounting, and every frame counted once.
        let mut routed = 0;
        for (id, queue) in &self.queues {
            let m = &model.queues[id];
            let stats = queue.stats();
            assert_eq!(
                (stats.routed, stats.delivered, stats.dropped, stats.queued),
                (m.routed, m.delivered, m.dropped, m.items.len() as u64),
                "queue {id}: (routed, delivered, dropped, queued)"
            );
            assert_eq!(
                stats.routed,
                stats.delivered + stats.dropped + stats.queued,
                "queue {id}: routed = delivered + dropped + queued"
            );
            assert_eq!(queue.is_finished(), m.finished, "queue {id} finished?");
            routed += stats.routed;
        }
        let c = &self.stats.counters;
        let counters = MCounters {
            frames_in: c.frames_in.get(),
            control: c.control.get(),
            unroutable: c.unroutable.get(),
            duplicates: c.duplicates.get(),
            gaps: c.gaps.get(),
            book_breaks: c.book_breaks.get(),
            resubscribes: c.resubscribes.get(),
        };
        assert_eq!(counters, model.counters, "counters");
        assert_eq!(
            c.stashed.get(),
            model.reg.stash.len() as u64,
            "stashed gauge"
        );
        assert_eq!(
            counters.frames_in,
            routed + counters.control + counters.unroutable + c.stashed.get() + model.in_limbo(),
            "frames_in = routed + control + unroutable + stashed (+ parked)"
        );

        // Callers and events, as the model expected them.
        let mut got: Vec<Expect> = Vec::new();
        for action in self.core.drain_actions() {
            got.extend(match action {
                Action::SubscribeResult { client_id, result } => {
                    assert!(
                        self.answered.insert(client_id),
                        "subscribe caller {client_id} answered twice"
                    );
                    Some(Expect::SubscribeResult(client_id, result.is_ok()))
                }
                Action::RequestResult { req_id, result } => {
                    Some(Expect::RequestResult(req_id.get(), result.is_ok()))
                }
                Action::SendResult { send_id, result } => {
                    Some(Expect::SendResult(send_id, result.is_ok()))
                }
                Action::Emit(Event::SubscriptionEnded { client_id, .. }) => {
                    Some(Expect::Ended(client_id))
                }
                Action::Emit(Event::Subscribed { client_id, .. }) => {
                    Some(Expect::Subscribed(client_id))
                }
                Action::Emit(Event::Resubscribed { client_id, .. }) => {
                    Some(Expect::Resubscribed(client_id))
                }
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
                self.core.on_block_timeout(self.at());
                self.model.on_block_timeout(self.now);
            }
            let end = SessionEnd::Closed;
            self.core.on_disconnected(&end, self.at());
            self.model.on_disconnected(self.now);
            self.core.finish(None, self.at());
            self.model.finish(self.now);
        }
        self.check();
        for id in self.alive.clone() {
            let mut steps = 0;
            while self.pop_one(id) {
                steps += 1;
                assert!(steps < 10_000, "stream {id} never ends");
            }
            let mut cx = Context::from_waker(noop_waker_ref());
            let end = self.queues[&id].poll_pop(&mut cx);
            assert!(
                matches!(end, Poll::Ready(None)),
                "stream {id} did not end: {end:?}"
            );
        }
        self.check();
        for id in (1..self.next_client_id).map(ClientId::new) {
            assert!(
                self.answered.contains(&id),
                "subscribe caller {id} never answered"
            );
        }
    }
}
