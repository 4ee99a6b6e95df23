//! `session_script` (old harness, replaced in the next commit).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use futures::task::noop_waker_ref;
use tokio::sync::oneshot;

use super::model::session::{MAcked, MPhase, MSub, Model};
use crate::error::{Error, SubscriptionOp, VenueError};
use crate::message::{Frame, Update};
use crate::protocol::{ChecksumMismatch, Kalshi, Kraken, ServerId, Topic};
use crate::queue::{Overflow, Pushed, Queue};
use crate::subscription::{ClientId, Phase, ProtocolBatching, Registry, Route, SeqCheck, Stashed};
/// Request timeout of the script session, in ticks of [`Step::Wait`].
const REQUEST_TIMEOUT_TICKS: u64 = 4;
/// Longest script run (steps past it are ignored), to bound one execution.
const MAX_STEPS: usize = 400;
const CHANNELS: [&str; 3] = ["ticker", "book", "trade"];
const SYMBOLS: [&str; 3] = ["BTC/USD", "ETH/USD", "SOL/USD"];

/// A session script: settings, then events in order.
#[derive(Arbitrary, Debug)]
struct Script {
    /// Kraken batching rules (and keys) instead of Kalshi's.
    kraken: bool,
    /// Stash capacity, modulo 5.
    stash_capacity: u8,
    /// Resubscribe on a gap or reset.
    resync_on_gap: bool,
    steps: Vec<Step>,
}

/// One event of a session script.
#[derive(Arbitrary, Debug)]
enum Step {
    /// A connection comes up (after a drop, if one is up): replay everything unsent.
    Connect,
    /// The connection drops.
    Drop,
    /// `count % 3 + 1` subscriptions on one channel (subscribe_many).
    Subscribe {
        channel: u8,
        symbol: u8,
        count: u8,
        capacity: u8,
        policy: u8,
    },
    /// A handle unsubscribes (possibly one whose subscription already ended).
    Unsubscribe { pick: u8 },
    /// The venue acknowledges a subscribe: a member of request `req` (255: an
    /// unknown request) is the target; the ack names its channel and symbol,
    /// `% 3`: not at all, as subscribed, or another one (an alias); `echo`:
    /// whether the ack carries the request id.
    Ack {
        req: u8,
        member: u8,
        sid: SidPick,
        channel: u8,
        symbol: u8,
        echo: bool,
        patient: bool,
    },
    /// The venue refuses a subscribe (naming a symbol or not); `expired`: the
    /// refusal says the session token expired (the client has a token source).
    Reject {
        req: u8,
        symbol: Option<u8>,
        expired: bool,
    },
    /// A data frame arrives.
    Data {
        sid: SidPick,
        seq: SeqPick,
        bad_checksum: bool,
        patient: bool,
    },
    /// A consumer reads up to `max % 8 + 1` items.
    Read { pick: u8, max: u8 },
    /// A consumer drops its stream; `lost`: its unsubscribe command was lost.
    DropConsumer { pick: u8, lost: bool },
    /// Time passes (`ticks % 8`): subscribe requests time out.
    Wait { ticks: u8 },
}

/// How an ack names what it acknowledges.
#[derive(Debug, Clone, Copy)]
struct Naming {
    channel: u8,
    symbol: u8,
    echo: bool,
}

/// Another name from `names` than `name` (an alias the venue might use).
fn other(names: &'static [&'static str], name: &str) -> &'static str {
    let at = names.iter().position(|n| *n == name).map_or(0, |i| i + 1);
    names[at % names.len()]
}

/// The server id an ack or data frame names.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum SidPick {
    /// A small number (Kalshi style).
    Num(u8),
    /// The key of a subscription's topic (Kraken style): for an ack, of the
    /// member it targets; for data, of a live subscription.
    Key(u8),
    /// One seen before (acked or sent data for), possibly stale now.
    Seen(u8),
}

/// A data frame's sequence number, relative to where its target stands.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum SeqPick {
    None,
    Next,
    Repeat,
    Jump(u8),
    /// Absolute (255: u64::MAX).
    Abs(u8),
}

/// Runs a session script against the registry and queues, mirroring the
/// supervisor's calls, and checks after every step that the registry agrees
/// with a reference model, that every frame is counted exactly once, and that
/// no server id routes a frame unless the latest ack on this connection mapped it.
///
/// # Panics
///
/// When an invariant breaks.
pub fn session_script(data: &[u8]) {
    let Ok(script) = Script::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut harness = SessionHarness::new(&script);
    for step in script.steps.iter().take(MAX_STEPS) {
        harness.step(step);
        harness.check();
    }
    harness.finish();
}

/// What the harness knows about one subscription's queue and consumer, kept
/// after the subscription ends.
struct Consumer {
    queue: Arc<Queue>,
    alive: bool,
    /// Data items popped (must equal the queue's `delivered`).
    popped: u64,
    /// Push order of each frame number handed to this queue.
    pushed: HashMap<u64, u64>,
    pushes: u64,
    last_popped: Option<u64>,
    ended: bool,
    waiter: Option<oneshot::Receiver<Result<(), Error>>>,
    ever_acked: bool,
}

struct SessionHarness {
    registry: Registry,
    /// The callers of `subscribe`, answered as the supervisor's replies do.
    readies: HashMap<ClientId, oneshot::Sender<Result<(), Error>>>,
    model: Model,
    batching: Box<dyn ProtocolBatching>,
    kraken: bool,
    resync_on_gap: bool,
    connected: bool,
    consumers: BTreeMap<ClientId, Consumer>,
    next_client_id: ClientId,
    next_req_id: u64,
    sent_requests: Vec<u64>,
    now: u64,
    deadlines: BTreeSet<(u64, u64)>,
    seen: BTreeSet<ServerId>,
    /// The server id each data frame (by number) was sent under.
    frames: Vec<ServerId>,
    frames_in: u64,
    control: u64,
    unroutable: u64,
}

impl SessionHarness {
    fn new(script: &Script) -> Self {
        let stash_capacity = usize::from(script.stash_capacity % 5);
        let batching: Box<dyn ProtocolBatching> = if script.kraken {
            Box::new(Kraken::new())
        } else {
            Box::new(Kalshi::new())
        };
        SessionHarness {
            registry: Registry::new(stash_capacity, usize::MAX),
            readies: HashMap::new(),
            model: Model {
                stash_capacity,
                ..Model::default()
            },
            batching,
            kraken: script.kraken,
            resync_on_gap: script.resync_on_gap,
            connected: false,
            consumers: BTreeMap::new(),
            next_client_id: 1,
            next_req_id: 1,
            sent_requests: Vec::new(),
            now: 0,
            deadlines: BTreeSet::new(),
            seen: BTreeSet::new(),
            frames: Vec::new(),
            frames_in: 0,
            control: 0,
            unroutable: 0,
        }
    }

    fn step(&mut self, step: &Step) {
        match *step {
            Step::Connect => {
                if self.connected {
                    self.disconnect();
                }
                self.connected = true;
                self.flush_unsent();
            }
            Step::Drop => self.disconnect(),
            Step::Subscribe {
                channel,
                symbol,
                count,
                capacity,
                policy,
            } => self.subscribe(channel, symbol, count, capacity, policy),
            Step::Unsubscribe { pick } => {
                if let Some(id) = self.pick_consumer(pick) {
                    // `Subscription::unsubscribe` consumes the handle.
                    self.unsubscribe(id);
                    self.drop_consumer(id, true);
                }
            }
            Step::Ack {
                req,
                member,
                sid,
                channel,
                symbol,
                echo,
                patient,
            } if self.connected => {
                let naming = Naming {
                    channel,
                    symbol,
                    echo,
                };
                self.ack(req, member, sid, naming, patient);
            }
            Step::Reject {
                req,
                symbol,
                expired,
            } if self.connected => self.reject(req, symbol, expired),
            Step::Data {
                sid,
                seq,
                bad_checksum,
                patient,
            } if self.connected => self.data(sid, seq, bad_checksum, patient),
            Step::Read { pick, max } => {
                if let Some(id) = self.pick_consumer(pick) {
                    self.read(id, usize::from(max % 8) + 1);
                }
            }
            Step::DropConsumer { pick, lost } => {
                if let Some(id) = self.pick_consumer(pick) {
                    self.drop_consumer(id, lost);
                }
            }
            Step::Wait { ticks } if self.connected => {
                self.now += u64::from(ticks % 8);
                while let Some(&(at, req_id)) = self.deadlines.first() {
                    if at > self.now {
                        break;
                    }
                    self.deadlines.pop_first();
                    self.expire(req_id);
                }
            }
            // Frames and timers need a connection.
            Step::Ack { .. } | Step::Reject { .. } | Step::Data { .. } | Step::Wait { .. } => {}
        }
    }

    fn pick_consumer(&self, pick: u8) -> Option<ClientId> {
        let alive: Vec<ClientId> = self
            .consumers
            .iter()
            .filter(|(_, c)| c.alive)
            .map(|(id, _)| *id)
            .collect();
        (!alive.is_empty()).then(|| alive[usize::from(pick) % alive.len()])
    }

    fn pick_request(&self, req: u8) -> Option<u64> {
        if req == u8::MAX || self.sent_requests.is_empty() {
            return None;
        }
        // Mostly the latest requests, sometimes old (finished) ones.
        let back = usize::from(req) % self.sent_requests.len().min(8);
        Some(self.sent_requests[self.sent_requests.len() - 1 - back])
    }

    fn key_of(&self, topic: &Topic) -> ServerId {
        if self.kraken {
            Kraken::server_id(topic.channel(), topic.symbol_name())
        } else {
            ServerId::Key(topic.to_string().into())
        }
    }

    // ---- mirrored supervisor paths ------------------------------------------

    fn disconnect(&mut self) {
        if !self.connected {
            return;
        }
        self.connected = false;
        let dropped = self.registry.on_disconnect();
        assert_eq!(
            dropped,
            self.model.on_disconnect(),
            "stash frames dropped on disconnect"
        );
        self.unroutable += dropped as u64;
        // The session's request deadlines go with it.
        self.deadlines.clear();
    }

    fn subscribe(&mut self, channel: u8, symbol: u8, count: u8, capacity: u8, policy: u8) {
        let channel = CHANNELS[usize::from(channel) % CHANNELS.len()];
        for i in 0..=(count % 3) {
            let topic = match (usize::from(symbol) + usize::from(i)) % (SYMBOLS.len() + 1) {
                n if n < SYMBOLS.len() => Topic::new(channel).symbol(SYMBOLS[n]),
                _ => Topic::new(channel),
            };
            let policy = match policy % 4 {
                0 => Overflow::DropOldest,
                1 => Overflow::DropNewest,
                2 => Overflow::Error,
                _ => Overflow::Block {
                    timeout: Duration::from_secs(1),
                },
            };
            let queue = Queue::new(usize::from(capacity % 3) + 1, policy);
            let (ready, waiter) = oneshot::channel();
            let id = self.next_client_id;
            self.next_client_id += 1;
            self.registry.add(id, topic.clone(), Arc::clone(&queue));
            self.readies.insert(id, ready);
            self.model.subs.insert(
                id,
                MSub {
                    topic,
                    phase: MPhase::Unsent,
                    server_id: None,
                    acked_once: false,
                    last_seq: None,
                },
            );
            self.consumers.insert(
                id,
                Consumer {
                    queue,
                    alive: true,
                    popped: 0,
                    pushed: HashMap::new(),
                    pushes: 0,
                    last_popped: None,
                    ended: false,
                    waiter: Some(waiter),
                    ever_acked: false,
                },
            );
        }
        if self.connected {
            self.flush_unsent();
        }
    }

    /// session.rs `flush_unsent`.
    fn flush_unsent(&mut self) {
        let batches = self.registry.unsent_batches(&*self.batching);
        assert_eq!(
            batches,
            self.model.unsent_batches(&*self.batching),
            "replay batches"
        );
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
                    self.end_subscription(id, None);
                }
            }
            if members.is_empty() {
                continue;
            }
            let req_id = self.next_req_id;
            self.next_req_id += 1;
            self.registry.mark_sent(&members, req_id);
            self.model.mark_sent(&members, req_id);
            self.sent_requests.push(req_id);
            self.deadlines
                .insert((self.now + REQUEST_TIMEOUT_TICKS, req_id));
        }
    }

    /// session.rs `end_subscription` (and the offline unsubscribe).
    fn end_subscription(&mut self, id: ClientId, error: Option<Error>) {
        let Some(entry) = self.registry.remove(id) else {
            assert!(
                !self.model.remove(id),
                "registry lost live subscription {id}"
            );
            return;
        };
        assert!(
            self.model.remove(id),
            "registry had a subscription {id} the model ended"
        );
        entry.queue.finish(error);
        self.ended(id);
    }

    fn ended(&mut self, id: ClientId) {
        if let Some(consumer) = self.consumers.get_mut(&id) {
            consumer.ended = true;
        }
    }

    fn unsubscribe(&mut self, id: ClientId) {
        self.end_subscription(id, None);
    }

    fn ack(&mut self, req: u8, member: u8, sid: SidPick, naming: Naming, patient: bool) {
        self.frames_in += 1;
        self.control += 1;
        let picked = self.pick_request(req);
        let target = picked
            .and_then(|r| self.model.requests.get(&r))
            .map(|r| r.members[usize::from(member) % r.members.len()])
            .and_then(|id| self.model.subs.get(&id))
            .map(|s| s.topic.clone())
            .unwrap_or_else(|| Topic::new(CHANNELS[usize::from(member) % CHANNELS.len()]));
        let server_id = match sid {
            SidPick::Num(n) => ServerId::Num(u64::from(n % 6)),
            SidPick::Key(_) => self.key_of(&target),
            SidPick::Seen(i) => self.seen_pick(i),
        };
        self.seen.insert(server_id.clone());
        let req_id = if naming.echo { picked } else { None };
        let channel = match naming.channel % 3 {
            0 => None,
            1 => Some(target.channel()),
            _ => Some(other(&CHANNELS, target.channel())),
        };
        let symbol = match naming.symbol % 3 {
            0 => None,
            1 => target.symbol_name(),
            _ => Some(other(&SYMBOLS, target.symbol_name().unwrap_or_default())),
        };
        let (channel, symbol) = (channel.map(str::to_owned), symbol.map(str::to_owned));
        let expected =
            self.model
                .on_subscribed(req_id, &server_id, channel.as_deref(), symbol.as_deref());
        let acked = self.registry.on_subscribed(
            req_id,
            server_id.clone(),
            channel.as_deref(),
            symbol.as_deref(),
        );
        let Some(acked) = acked else {
            assert!(
                expected.is_none(),
                "the ack matched nothing; the model expected {expected:?}"
            );
            return;
        };
        let got = MAcked {
            client_id: acked.client_id,
            resubscribed: acked.resubscribed,
            released: acked
                .stashed
                .iter()
                .map(|s| (s.server_id.clone(), frame_number(&s.frame)))
                .collect(),
        };
        assert_eq!(
            Some(&got),
            expected.as_ref(),
            "ack of {req_id:?} with {server_id}"
        );
        let id = acked.client_id;
        if let Some(consumer) = self.consumers.get_mut(&id) {
            consumer.ever_acked = true;
        }
        if !acked.resubscribed {
            if let Some(waiter) = self.readies.remove(&id) {
                let _ = waiter.send(Ok(()));
            }
        }
        if acked.resubscribed {
            if let Some(entry) = self.registry.get(id) {
                entry.queue.push_signal(Update::Resubscribed {
                    server_id: server_id.clone(),
                });
            }
        }
        for stashed in acked.stashed {
            assert_eq!(
                stashed.server_id, server_id,
                "the ack released a frame of another server id"
            );
            self.deliver(id, stashed.frame, stashed.checksum, patient);
        }
        if !self.registry.any_pending() {
            let unclaimed = self.registry.clear_stash();
            assert_eq!(unclaimed, self.model.stash.len(), "unclaimed stash");
            self.model.stash.clear();
            self.unroutable += unclaimed as u64;
        }
    }

    fn seen_pick(&self, i: u8) -> ServerId {
        let n = self.seen.len();
        if n == 0 {
            return ServerId::Num(0);
        }
        self.seen
            .iter()
            .nth(usize::from(i) % n)
            .cloned()
            .unwrap_or(ServerId::Num(0))
    }

    /// session.rs `on_rejected` (the client has a token source).
    fn reject(&mut self, req: u8, symbol: Option<u8>, expired: bool) {
        self.frames_in += 1;
        self.control += 1;
        let req_id = self.pick_request(req);
        let symbol = symbol.map(|s| SYMBOLS[usize::from(s) % SYMBOLS.len()]);
        if expired {
            let requeued = self.registry.requeue_rejected(req_id, symbol);
            assert_eq!(
                requeued,
                self.model.requeue_rejected(req_id, symbol),
                "requeue of {req_id:?}"
            );
            if requeued.is_some() {
                // The session ends to reconnect with a fresh token.
                self.disconnect();
                return;
            }
        }
        let expected = self.model.on_rejected(req_id, symbol);
        let Some((id, op, entry)) = self.registry.on_rejected(req_id, symbol) else {
            assert!(
                expected.is_none(),
                "the rejection matched nothing; the model expected {expected:?}"
            );
            return;
        };
        assert_eq!(Some((id, op)), expected, "rejection of {req_id:?}");
        let error = Error::Subscription {
            op,
            client_id: id,
            req_id,
            error: VenueError::new(Some(6), "refused"),
        };
        if let Some(waiter) = self.readies.remove(&id) {
            let _ = waiter.send(Err(error.clone()));
        }
        entry.queue.finish(Some(error));
        self.ended(id);
    }

    /// session.rs `expire` for a subscribe request.
    fn expire(&mut self, req_id: u64) {
        let resubscribe = self.model.requests.get(&req_id).map(|r| r.op);
        assert_eq!(
            self.registry.pending_op(req_id),
            resubscribe,
            "pending op of request {req_id}"
        );
        if resubscribe == Some(SubscriptionOp::Resubscribe) {
            // session.rs: a replay that is not acknowledged ends the connection.
            self.disconnect();
            return;
        }
        let expected = self.model.on_timeout(req_id);
        let timed_out = self.registry.on_timeout(req_id);
        let got: Vec<(ClientId, SubscriptionOp)> =
            timed_out.iter().map(|(id, op, _)| (*id, *op)).collect();
        assert_eq!(got, expected, "timeout of request {req_id}");
        for (id, _, entry) in timed_out {
            let error = Error::Timeout {
                operation: crate::Operation::Subscribe,
                timeout: Duration::from_secs(REQUEST_TIMEOUT_TICKS),
            };
            if let Some(waiter) = self.readies.remove(&id) {
                let _ = waiter.send(Err(error.clone()));
            }
            entry.queue.finish(Some(error));
            self.ended(id);
        }
    }

    fn data(&mut self, sid: SidPick, seq: SeqPick, bad_checksum: bool, patient: bool) {
        self.frames_in += 1;
        let server_id = match sid {
            SidPick::Num(n) => ServerId::Num(u64::from(n % 6)),
            SidPick::Key(i) => {
                let topics: Vec<Topic> =
                    self.model.subs.values().map(|s| s.topic.clone()).collect();
                match topics.len() {
                    0 => ServerId::Num(0),
                    n => self.key_of(&topics[usize::from(i) % n]),
                }
            }
            SidPick::Seen(i) => self.seen_pick(i),
        };
        self.seen.insert(server_id.clone());
        let last = self
            .model
            .valid
            .get(&server_id)
            .and_then(|id| self.model.subs.get(id))
            .and_then(|s| s.last_seq);
        let seq = match seq {
            SeqPick::None => None,
            SeqPick::Next => Some(last.map_or(1, |l| l.wrapping_add(1))),
            SeqPick::Repeat => Some(last.unwrap_or(1)),
            SeqPick::Jump(k) => Some(last.unwrap_or(0).wrapping_add(2 + u64::from(k))),
            SeqPick::Abs(u8::MAX) => Some(u64::MAX),
            SeqPick::Abs(v) => Some(u64::from(v)),
        };
        let number = self.frames.len() as u64;
        self.frames.push(server_id.clone());
        let frame = Frame::text(number.to_string(), seq);
        let checksum = bad_checksum.then_some(ChecksumMismatch {
            expected: 1,
            computed: 2,
        });

        let route = self.registry.route(&server_id);
        // The core rule: only a server id that the latest ack on this
        // connection mapped routes, and only to that subscription.
        assert_eq!(route, self.model.route(&server_id), "route of {server_id}");
        match route {
            Route::To(id) => self.deliver(id, frame, checksum, patient),
            Route::Stash => {
                let evicted = self.registry.stash(Stashed {
                    server_id: server_id.clone(),
                    frame,
                    checksum,
                });
                let expected = self.model.stash(server_id, number);
                assert_eq!(evicted, usize::from(expected.is_some()), "stash eviction");
                self.unroutable += evicted as u64;
            }
            Route::Unroutable => self.unroutable += 1,
        }
    }

    /// session.rs `deliver`.
    fn deliver(
        &mut self,
        id: ClientId,
        frame: Frame,
        checksum: Option<ChecksumMismatch>,
        patient: bool,
    ) {
        let Some((queue, verdict)) = self.registry.target(id, frame.seq()) else {
            assert!(!self.model.subs.contains_key(&id));
            self.unroutable += 1;
            return;
        };
        let mut resync = false;
        if let Some(seq) = frame.seq() {
            assert_eq!(
                verdict,
                self.model.check_seq(id, seq),
                "sequence check of {seq}"
            );
            match verdict {
                SeqCheck::InOrder => {}
                SeqCheck::Duplicate => {
                    queue.count_discarded();
                    return;
                }
                SeqCheck::Gap { last_seq, next_seq } => {
                    queue.push_signal(Update::Gap { last_seq, next_seq });
                    resync = self.resync_on_gap;
                }
            }
        }
        if let Some(consumer) = self.consumers.get_mut(&id) {
            consumer
                .pushed
                .insert(frame_number(&frame), consumer.pushes);
            consumer.pushes += 1;
        }
        let alive = self.push(id, &queue, Update::Data(frame), patient);
        if !alive {
            self.end_subscription(id, None);
            return;
        }
        if let Some(ChecksumMismatch { expected, computed }) = checksum {
            queue.push_signal(Update::ChecksumMismatch { expected, computed });
            resync = true;
        }
        if resync {
            self.resync(id);
        }
    }

    /// session.rs `push`: `false` when the subscription is over.
    fn push(&mut self, id: ClientId, queue: &Arc<Queue>, update: Update, patient: bool) -> bool {
        match queue.push(update) {
            Pushed::Queued | Pushed::Dropped { .. } => true,
            Pushed::ConsumerGone => false,
            Pushed::Full(update) => {
                let Overflow::Block { .. } = queue.policy() else {
                    panic!("Full from a queue that does not block");
                };
                if patient && self.consumers.get(&id).is_some_and(|c| c.alive) {
                    // The consumer makes room before the timeout.
                    for _ in 0..=(queue.capacity() + 64) {
                        if queue.stats().queued < queue.capacity() as u64 {
                            break;
                        }
                        self.pop_one(id);
                    }
                    return self.push(id, queue, update, patient);
                }
                if patient {
                    // wait_space returns at once when the consumer is gone.
                    return self.push(id, queue, update, patient);
                }
                let error = Error::Backpressure {
                    channel: "fuzz".to_owned(),
                    server_id: "-".to_owned(),
                    client_id: id,
                    maxsize: queue.capacity(),
                };
                queue.finish(Some(error.clone()));
                let _ = queue.push(update);
                self.end_subscription(id, Some(error));
                false
            }
        }
    }

    /// session.rs `resync`.
    fn resync(&mut self, id: ClientId) {
        let old = self.registry.begin_resync(id);
        assert_eq!(old, self.model.begin_resync(id), "resync of {id}");
        if old.is_none() {
            return;
        }
        // The unsubscribe takes a request id.
        self.next_req_id += 1;
        self.flush_unsent();
    }

    fn drop_consumer(&mut self, id: ClientId, lost: bool) {
        let Some(consumer) = self.consumers.get_mut(&id) else {
            return;
        };
        consumer.alive = false;
        let queue = Arc::clone(&consumer.queue);
        queue.consumer_dropped();
        // `Subscription::drop` sends an unsubscribe unless the queue already ended.
        if !lost && !queue.is_finished() {
            self.unsubscribe(id);
        }
    }

    /// Pops one item of `id`'s queue as its consumer; `false` when nothing is ready.
    fn pop_one(&mut self, id: ClientId) -> bool {
        let Some(consumer) = self.consumers.get_mut(&id) else {
            return false;
        };
        let mut cx = Context::from_waker(noop_waker_ref());
        match consumer.queue.poll_pop(&mut cx) {
            Poll::Ready(Some(Ok(Update::Data(frame)))) => {
                let number = frame_number(&frame);
                let order = *consumer.pushed.get(&number).unwrap_or_else(|| {
                    panic!("subscription {id} received frame {number} that was never routed to it")
                });
                assert!(
                    consumer.last_popped.is_none_or(|last| order > last),
                    "subscription {id} received frame {number} out of order"
                );
                consumer.last_popped = Some(order);
                consumer.popped += 1;
                true
            }
            Poll::Ready(Some(Ok(_signal))) => true,
            Poll::Ready(Some(Err(Error::QueueFull { .. }))) => {
                assert_eq!(
                    consumer.queue.policy(),
                    Overflow::Error,
                    "QueueFull from another policy"
                );
                true
            }
            Poll::Ready(Some(Err(_terminal))) => {
                assert!(
                    consumer.queue.is_finished(),
                    "an error item from a live queue"
                );
                true
            }
            Poll::Ready(None) => {
                assert!(
                    consumer.queue.is_finished(),
                    "a stream ended before its queue"
                );
                false
            }
            Poll::Pending => {
                assert!(!consumer.queue.is_finished(), "a finished queue pends");
                false
            }
        }
    }

    fn read(&mut self, id: ClientId, max: usize) {
        for _ in 0..max {
            if !self.pop_one(id) {
                break;
            }
        }
    }

    // ---- invariants ----------------------------------------------------------

    fn check(&mut self) {
        if let Err(broken) = self.registry.check_invariants() {
            panic!("registry invariant: {broken}");
        }

        // The registry is the model.
        assert_eq!(
            self.registry.len(),
            self.model.subs.len(),
            "live subscriptions"
        );
        for (id, sub) in &self.model.subs {
            let entry = self
                .registry
                .get(*id)
                .unwrap_or_else(|| panic!("subscription {id} missing"));
            let phase = match entry.phase {
                Phase::Unsent => MPhase::Unsent,
                Phase::Pending { req_id } => MPhase::Pending(req_id),
                Phase::Active => MPhase::Active,
            };
            assert_eq!(phase, sub.phase, "phase of {id}");
            assert_eq!(entry.server_id, sub.server_id, "server id of {id}");
            assert_eq!(entry.acked_once, sub.acked_once, "acked_once of {id}");
            assert_eq!(entry.last_seq, sub.last_seq, "last_seq of {id}");
        }
        assert_eq!(self.registry.any_pending(), !self.model.requests.is_empty());
        for req_id in self.model.requests.keys() {
            assert!(
                self.registry.is_pending(*req_id),
                "request {req_id} should be pending"
            );
        }
        assert_eq!(
            self.registry.stashed(),
            self.model.stash.len(),
            "stash size"
        );

        // No stale server id routes: every id ever seen routes exactly as the
        // acks on this connection say.
        for server_id in &self.seen {
            assert_eq!(
                self.registry.route_of(server_id),
                self.model.valid.get(server_id).copied(),
                "route_of({server_id})"
            );
            assert_eq!(
                self.registry.route(server_id),
                self.model.route(server_id),
                "route({server_id})"
            );
        }
        // Each live subscription holds at most one server id, and valid ids are distinct per sub.
        let mut holders = BTreeSet::new();
        for id in self.model.valid.values() {
            assert!(
                holders.insert(*id),
                "subscription {id} mapped by two server ids"
            );
        }

        // Nothing hangs: a live subscription's queue is open, an ended one's is finished.
        let mut routed = 0;
        for (id, consumer) in &mut self.consumers {
            let live = self.model.subs.contains_key(id);
            assert_eq!(
                live, !consumer.ended,
                "subscription {id}: live {live}, ended {}",
                consumer.ended
            );
            assert_eq!(
                consumer.queue.is_finished(),
                consumer.ended,
                "queue of {id} finished?"
            );
            let stats = consumer.queue.stats();
            assert_eq!(
                stats.routed,
                stats.delivered + stats.dropped + stats.queued,
                "queue of {id}: {stats:?}"
            );
            assert_eq!(
                stats.delivered, consumer.popped,
                "queue of {id}: delivered vs popped"
            );
            assert!(
                stats.queued <= consumer.queue.capacity() as u64,
                "queue of {id} over capacity"
            );
            routed += stats.routed;
            if let Some(waiter) = &mut consumer.waiter {
                match waiter.try_recv() {
                    Ok(Ok(())) => {
                        assert!(consumer.ever_acked, "{id} resolved Ok without an ack");
                        consumer.waiter = None;
                    }
                    Ok(Err(_)) => {
                        assert!(
                            !consumer.ever_acked && consumer.ended,
                            "{id} failed after its ack"
                        );
                        consumer.waiter = None;
                    }
                    Err(oneshot::error::TryRecvError::Closed) => {
                        assert!(consumer.ended, "{id} waiter dropped while live");
                        consumer.waiter = None;
                    }
                    Err(oneshot::error::TryRecvError::Empty) => {
                        assert!(
                            !consumer.ever_acked,
                            "{id} acked but its caller still waits"
                        );
                    }
                }
            }
        }
        // Every data frame offered is routed, unroutable or stashed.
        assert_eq!(
            self.frames_in,
            routed + self.control + self.unroutable + self.registry.stashed() as u64,
            "frames_in = routed + control + unroutable + stashed"
        );
    }

    /// supervisor `finish`: every stream ends; consumers drain to the end.
    fn finish(mut self) {
        self.disconnect();
        let ids: Vec<ClientId> = self.registry.iter().map(|(id, _)| id).collect();
        for id in ids {
            if let Some(entry) = self.registry.remove(id) {
                assert!(self.model.remove(id));
                if let Some(waiter) = self.readies.remove(&id) {
                    let _ = waiter.send(Err(Error::ClientClosed));
                }
                entry.queue.finish(Some(Error::ClientClosed));
                self.ended(id);
            }
        }
        self.check();
        let ids: Vec<ClientId> = self
            .consumers
            .iter()
            .filter(|(_, c)| c.alive)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let mut steps = 0;
            while self.pop_one(id) {
                steps += 1;
                assert!(steps < 10_000, "stream {id} never ends");
            }
            let mut cx = Context::from_waker(noop_waker_ref());
            let end = self.consumers[&id].queue.poll_pop(&mut cx);
            assert!(
                matches!(end, Poll::Ready(None)),
                "stream {id} did not end: {end:?}"
            );
            assert_eq!(self.consumers[&id].queue.stats().queued, 0);
        }
        self.check();
    }
}

fn frame_number(frame: &Frame) -> u64 {
    frame
        .as_text()
        .and_then(|t| t.parse().ok())
        .expect("script frames are numbered")
}
