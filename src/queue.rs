//! A bounded single-producer, single-consumer queue with an overflow policy and
//! exact counters.
//!
//! The supervisor pushes, one consumer stream pops. The queue never grows past
//! its capacity (plus a small fixed reserve for signals such as gap notices), so
//! a peer that floods the socket cannot grow memory. Every push is counted, and
//! all counters live under the same lock as the items, so a snapshot always
//! satisfies `routed = delivered + dropped + queued`.
//!
//! `std::sync::Mutex` is enough: the critical sections are a few field updates
//! and never await.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::AtomicWaker;
use tokio::sync::Notify;

use crate::error::Error;
use crate::message::Update;
use crate::queue_group::{Batched, Group, Popped};

/// How many signals (gap, reset, book breaks) may wait beyond the capacity.
/// Signals are rare, but a hostile peer could make one per frame: past this
/// reserve further signals are dropped and counted.
const SIGNAL_RESERVE: usize = 64;

/// What a full queue does with the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Evict the oldest queued message to make room. Counted as dropped.
    DropOldest,
    /// Discard the arriving message. Counted as dropped.
    DropNewest,
    /// Discard the arriving message; the consumer's next item is
    /// [`Error::QueueFull`] with the number dropped. The stream goes on.
    Error,
    /// Stop reading the socket (TCP backpressure) until there is room. If the
    /// consumer does not make room within `timeout`, the subscription ends with
    /// [`Error::Backpressure`]; the connection and other subscriptions go on.
    Block {
        /// How long the socket may stay unread for this queue.
        timeout: Duration,
    },
}

impl Overflow {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        match self {
            Overflow::Block { timeout } if timeout.is_zero() => Err(Error::Config(
                "Overflow::Block timeout must be greater than zero".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// A snapshot of one queue's counters. `routed == delivered + dropped + queued`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Data messages handed to the queue.
    pub routed: u64,
    /// Data messages taken by the consumer.
    pub delivered: u64,
    /// Data messages discarded (overflow, duplicates, consumer gone).
    pub dropped: u64,
    /// Data messages waiting now.
    pub queued: u64,
    /// Signals (gap, reset, book break, resubscribed) discarded past the reserve.
    pub signals_dropped: u64,
}

impl QueueStats {
    pub(crate) fn add(&mut self, other: &QueueStats) {
        self.routed += other.routed;
        self.delivered += other.delivered;
        self.dropped += other.dropped;
        self.queued += other.queued;
        self.signals_dropped += other.signals_dropped;
    }
}

/// What happened to a pushed data message.
#[derive(Debug)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// Queued after evicting the oldest message, or discarded.
    Dropped {
        /// True for the first drop since the consumer last took something
        /// (worth one event, not one per message).
        first: bool,
    },
    /// `Block` policy and full: the message is handed back; wait for space and retry.
    Full(Update),
    /// The consumer is gone; the message was counted as dropped.
    ConsumerGone,
}

enum End {
    Clean,
    Failed(Error),
}

struct State {
    items: VecDeque<Update>,
    data_len: usize,
    signal_len: usize,
    counters: QueueStats,
    /// Drops not yet reported by a `QueueFull` item (policy `Error`).
    unreported_drops: u64,
    dropping: bool,
    end: Option<End>,
    consumer_alive: bool,
    /// When each queued data message arrived, oldest first (only while a
    /// delivery-wait histogram is attached).
    #[cfg(feature = "metrics")]
    stamps: VecDeque<std::time::Instant>,
    /// For a member of a [`Group`]: whether its key is in the group's ready
    /// list. Set by whoever makes the queue readable while it is clear, cleared
    /// by the group's consumer when it finds the queue empty, so the key is
    /// listed at most once.
    listed: bool,
}

impl State {
    /// Whether the consumer has something to take: an item, a drop report or the end.
    fn readable(&self) -> bool {
        !self.items.is_empty() || self.unreported_drops > 0 || self.end.is_some()
    }

    /// Marks a readable group member as listed; true when the caller must
    /// put its key on the group's ready list (after releasing the lock).
    fn should_list(&mut self, grouped: bool) -> bool {
        if grouped && !self.listed && self.readable() {
            self.listed = true;
            return true;
        }
        false
    }
}

/// The shared half of a queue; the supervisor keeps one `Arc`, the stream the other.
pub struct Queue {
    state: Mutex<State>,
    consumer: AtomicWaker,
    space: Notify,
    capacity: usize,
    policy: Overflow,
    /// Receive-to-delivery wait of each data message (feature `metrics`).
    #[cfg(feature = "metrics")]
    wait: OnceLock<::metrics::Histogram>,
    /// The group this queue belongs to and its key there (set once).
    group: OnceLock<(Arc<Group>, crate::ids::MemberKey)>,
    /// Data messages a batch pop ([`Queue::pop_listed_batch`]) moved to the
    /// consumer's own buffer and the consumer has not yielded yet. Counted
    /// as delivered under the lock when moved; reported as queued (not
    /// delivered) until [`Queue::yielded_lent`], so a snapshot stays exact
    /// while the consumer takes them one by one without the lock.
    ///
    /// Written only by the consumer (the batch pop, each yield, its drop),
    /// so it changes with a plain load and store, as the single-writer
    /// counters of `stats.rs` do: a `lock`-prefixed subtraction per yielded
    /// message was ~1 % of the feed's time. Readers (`stats`) load it whole.
    lent: AtomicU64,
}

impl Queue {
    /// A queue holding at most `capacity` data messages.
    pub fn new(capacity: usize, policy: Overflow) -> Arc<Self> {
        Arc::new(Queue {
            state: Mutex::new(State {
                // Allocated on first use: an idle subscription costs no buffer
                // (64 preallocated slots were ~3.5 KiB per queue).
                items: VecDeque::new(),
                data_len: 0,
                signal_len: 0,
                counters: QueueStats::default(),
                unreported_drops: 0,
                dropping: false,
                end: None,
                consumer_alive: true,
                #[cfg(feature = "metrics")]
                stamps: VecDeque::new(),
                listed: false,
            }),
            consumer: AtomicWaker::new(),
            space: Notify::new(),
            capacity,
            policy,
            #[cfg(feature = "metrics")]
            wait: OnceLock::new(),
            group: OnceLock::new(),
            lent: AtomicU64::new(0),
        })
    }

    /// Records each data message's wait from push to delivery in `histogram`
    /// (set once, before the first push).
    #[cfg(feature = "metrics")]
    pub(crate) fn measure_wait(&self, histogram: ::metrics::Histogram) {
        let _ = self.wait.set(histogram);
    }

    /// Notes the arrival of a data message that was just queued.
    #[cfg(feature = "metrics")]
    fn stamp(&self, state: &mut State) {
        if self.wait.get().is_some() {
            state.stamps.push_back(std::time::Instant::now());
        }
    }

    /// Records the wait of a data message the consumer just took.
    #[cfg(feature = "metrics")]
    fn record_wait(&self, state: &mut State, item: &Result<Update, Error>) {
        if matches!(item, Ok(Update::Data(_))) {
            if let (Some(at), Some(wait)) = (state.stamps.pop_front(), self.wait.get()) {
                wait.record(at.elapsed().as_secs_f64());
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the counters half-updated
        // in a way that matters more than losing the stream, so poisoning is ignored.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The data capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The overflow policy.
    pub fn policy(&self) -> Overflow {
        self.policy
    }

    /// Pushes a data message according to the overflow policy and wakes the consumer.
    pub fn push(&self, update: Update) -> Pushed {
        let mut state = self.lock();
        let pushed = self.push_locked(&mut state, update);
        let list = state.should_list(self.group.get().is_some());
        drop(state);
        self.wake(list);
        pushed
    }

    /// Wakes the consumer, outside the lock: a group member lists itself in
    /// its group (when `list`), a plain queue wakes its stream. Cheap while the
    /// consumer is awake: its waker was taken by the first wake and not
    /// registered again yet.
    fn wake(&self, list: bool) {
        match self.group.get() {
            Some((group, key)) => {
                if list {
                    group.list(*key);
                }
            }
            None => self.consumer.wake(),
        }
    }

    /// Makes this queue a member of `group` under `key`: from now on its
    /// consumer is the group's. Returns false if it already belongs to one.
    pub(crate) fn join(&self, group: Arc<Group>, key: crate::ids::MemberKey) -> bool {
        if self.group.set((group, key)).is_err() {
            return false;
        }
        let mut state = self.lock();
        let list = state.should_list(true);
        drop(state);
        self.wake(list);
        true
    }

    /// The group consumer's pop: the next item, or the end, or nothing (then
    /// the queue is unlisted, and the next push lists it again).
    pub(crate) fn pop_listed(&self) -> Popped {
        let mut state = self.lock();
        let was_full = state.data_len >= self.capacity;
        if let Some(item) = Self::take(&mut state, self.capacity) {
            #[cfg(feature = "metrics")]
            self.record_wait(&mut state, &item);
            let more = state.readable();
            state.listed = more;
            drop(state);
            self.made_room(was_full);
            return Popped::Item(item, more);
        }
        match state.end.take() {
            Some(End::Failed(error)) => {
                state.end = Some(End::Clean);
                Popped::End(Some(error))
            }
            Some(End::Clean) => {
                state.end = Some(End::Clean);
                Popped::End(None)
            }
            None => {
                state.listed = false;
                Popped::Empty
            }
        }
    }

    /// The feed's pop: moves every item into `out` (which must be empty)
    /// under one lock, by swapping buffers (no per-item copy); the feed
    /// yields them one by one without the lock. Or the end, or nothing (then
    /// the queue is unlisted, as in [`Queue::pop_listed`]). The data messages
    /// moved are lent until the consumer calls [`Queue::yielded_lent`] for
    /// each.
    /// A drop report (policy `Error`) due first is put in `report`.
    pub(crate) fn pop_listed_batch(
        &self,
        out: &mut VecDeque<Update>,
        report: &mut Option<Error>,
    ) -> Batched {
        let mut state = self.lock();
        let was_full = state.data_len >= self.capacity;
        if state.unreported_drops > 0 {
            // Rare: policy `Error` overflowed; `take` gives the report first.
            if let Some(Err(error)) = Self::take(&mut state, self.capacity) {
                *report = Some(error);
            }
        }
        if !state.items.is_empty() {
            let data = state.data_len as u64;
            if out.is_empty() {
                std::mem::swap(&mut state.items, out);
            } else {
                out.append(&mut state.items);
            }
            // What `take` does per item, for the whole batch.
            state.counters.delivered += data;
            state.data_len = 0;
            state.signal_len = 0;
            if data > 0 {
                state.dropping = false;
            }
            #[cfg(feature = "metrics")]
            if let Some(wait) = self.wait.get() {
                for at in state.stamps.drain(..) {
                    wait.record(at.elapsed().as_secs_f64());
                }
            }
            // Under the lock, with the counters: a snapshot sees both or neither.
            if data > 0 {
                self.add_lent(data);
            }
        }
        if !out.is_empty() || report.is_some() {
            let more = state.readable();
            state.listed = more;
            drop(state);
            self.made_room(was_full);
            return Batched::Items { more };
        }
        match state.end.take() {
            Some(End::Failed(error)) => {
                state.end = Some(End::Clean);
                Batched::End(Some(error))
            }
            Some(End::Clean) => {
                state.end = Some(End::Clean);
                Batched::End(None)
            }
            None => {
                state.listed = false;
                Batched::Empty
            }
        }
    }

    /// The consumer yielded one data message a batch pop lent it.
    #[inline]
    pub(crate) fn yielded_lent(&self) {
        // The consumer is the only writer (see `lent`).
        let lent = self.lent.load(Ordering::Relaxed);
        self.lent.store(lent.saturating_sub(1), Ordering::Relaxed);
    }

    /// Lends `data` more messages (the consumer, under the lock).
    fn add_lent(&self, data: u64) {
        let lent = self.lent.load(Ordering::Relaxed);
        self.lent
            .store(lent.saturating_add(data), Ordering::Relaxed);
    }

    fn push_locked(&self, state: &mut State, update: Update) -> Pushed {
        if !state.consumer_alive || state.end.is_some() {
            state.counters.routed += 1;
            state.counters.dropped += 1;
            return Pushed::ConsumerGone;
        }
        if state.data_len < self.capacity {
            state.counters.routed += 1;
            state.data_len += 1;
            state.items.push_back(update);
            #[cfg(feature = "metrics")]
            self.stamp(state);
            return Pushed::Queued;
        }
        let first = !state.dropping;
        match self.policy {
            Overflow::Block { .. } => return Pushed::Full(update),
            Overflow::DropOldest => {
                state.counters.routed += 1;
                state.counters.dropped += 1;
                if let Some(pos) = state.items.iter().position(Update::is_data) {
                    state.items.remove(pos);
                    #[cfg(feature = "metrics")]
                    state.stamps.pop_front();
                }
                state.items.push_back(update);
                #[cfg(feature = "metrics")]
                self.stamp(state);
            }
            Overflow::DropNewest => {
                state.counters.routed += 1;
                state.counters.dropped += 1;
            }
            Overflow::Error => {
                state.counters.routed += 1;
                state.counters.dropped += 1;
                state.unreported_drops += 1;
            }
        }
        state.dropping = true;
        Pushed::Dropped { first }
    }

    /// Counts a data message that was routed here but discarded before queueing
    /// (a duplicate sequence number).
    pub fn count_discarded(&self) {
        let mut state = self.lock();
        state.counters.routed += 1;
        state.counters.dropped += 1;
    }

    /// Queues a signal. Signals do not take data capacity; past a small reserve
    /// they are dropped and counted.
    pub fn push_signal(&self, update: Update) {
        let mut state = self.lock();
        if !state.consumer_alive || state.end.is_some() || state.signal_len >= SIGNAL_RESERVE {
            state.counters.signals_dropped += 1;
            return;
        }
        state.signal_len += 1;
        state.items.push_back(update);
        let list = state.should_list(self.group.get().is_some());
        drop(state);
        self.wake(list);
    }

    /// Waits until the queue has room (or the consumer left, or the queue ended).
    pub async fn wait_space(&self) {
        loop {
            let notified = self.space.notified();
            {
                let state = self.lock();
                if state.data_len < self.capacity || !state.consumer_alive || state.end.is_some() {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Ends the queue: the consumer drains what is queued, then receives the
    /// error (if any) as its last item, then the end of the stream.
    pub fn finish(&self, error: Option<Error>) {
        let mut state = self.lock();
        if state.end.is_none() {
            state.end = Some(match error {
                Some(e) => End::Failed(e),
                None => End::Clean,
            });
        }
        let list = state.should_list(self.group.get().is_some());
        drop(state);
        self.wake(list);
        self.space.notify_one();
    }

    /// Whether [`finish`](Queue::finish) was called.
    pub fn is_finished(&self) -> bool {
        self.lock().end.is_some()
    }

    /// Whether the consumer dropped its stream.
    pub fn consumer_alive(&self) -> bool {
        self.lock().consumer_alive
    }

    /// Called by the consumer's `Drop`: what was queued is counted as dropped.
    pub fn consumer_dropped(&self) {
        let mut state = self.lock();
        state.consumer_alive = false;
        // Lent messages the consumer never yielded go with it: dropped.
        // The consumer's own drop: it is the only writer (see `lent`).
        let lent = self.lent.load(Ordering::Relaxed);
        self.lent.store(0, Ordering::Relaxed);
        state.counters.delivered = state.counters.delivered.saturating_sub(lent);
        let queued = state.data_len as u64 + lent;
        state.counters.dropped += queued;
        state.items.clear();
        #[cfg(feature = "metrics")]
        state.stamps.clear();
        state.data_len = 0;
        state.signal_len = 0;
        drop(state);
        self.space.notify_one();
    }

    /// A consistent snapshot of the counters.
    pub fn stats(&self) -> QueueStats {
        let state = self.lock();
        let lent = self.lent.load(Ordering::Relaxed);
        QueueStats {
            queued: state.data_len as u64 + lent,
            delivered: state.counters.delivered.saturating_sub(lent),
            ..state.counters
        }
    }

    /// The consumer side: next item, the terminal error, or the end.
    pub fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Update, Error>>> {
        let mut state = self.lock();
        let was_full = state.data_len >= self.capacity;
        if let Some(item) = Self::take(&mut state, self.capacity) {
            #[cfg(feature = "metrics")]
            self.record_wait(&mut state, &item);
            drop(state);
            self.made_room(was_full);
            return Poll::Ready(Some(item));
        }
        match state.end.take() {
            Some(End::Failed(error)) => {
                state.end = Some(End::Clean);
                return Poll::Ready(Some(Err(error)));
            }
            Some(End::Clean) => {
                state.end = Some(End::Clean);
                return Poll::Ready(None);
            }
            None => {}
        }
        // Registered under the lock: a push lands either before it (and was
        // taken above) or after it (and its wake finds this waker), so one
        // lock suffices.
        self.consumer.register(cx.waker());
        drop(state);
        Poll::Pending
    }

    /// Tells a supervisor waiting for room (policy `Block`) that there is
    /// some. It only waits on a full queue, so only the pop that took a full
    /// queue below capacity notifies: the pops after it would be wasted
    /// atomics on the consumer's hot path.
    fn made_room(&self, was_full: bool) {
        if was_full && matches!(self.policy, Overflow::Block { .. }) {
            self.space.notify_one();
        }
    }

    fn take(state: &mut State, capacity: usize) -> Option<Result<Update, Error>> {
        if state.unreported_drops > 0 {
            let dropped_count = std::mem::take(&mut state.unreported_drops);
            return Some(Err(Error::QueueFull {
                queue_size: capacity,
                dropped_count,
            }));
        }
        let item = state.items.pop_front()?;
        if item.is_data() {
            state.data_len -= 1;
            state.counters.delivered += 1;
            state.dropping = false;
        } else {
            state.signal_len -= 1;
        }
        Some(Ok(item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Frame;
    use crate::queue_group::Batched;
    use futures::task::noop_waker_ref;

    fn data(n: u64) -> Update {
        Update::Data(Frame::text(n.to_string(), Some(n)))
    }

    fn drain(queue: &Queue) -> Vec<Result<Update, Error>> {
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut out = Vec::new();
        while let Poll::Ready(Some(item)) = queue.poll_pop(&mut cx) {
            out.push(item);
        }
        out
    }

    fn seqs(items: &[Result<Update, Error>]) -> Vec<u64> {
        items
            .iter()
            .filter_map(|i| match i {
                Ok(Update::Data(f)) => f.seq(),
                _ => None,
            })
            .collect()
    }

    fn assert_accounting(queue: &Queue) {
        let s = queue.stats();
        assert_eq!(s.routed, s.delivered + s.dropped + s.queued, "{s:?}");
    }

    #[test]
    fn drop_oldest_keeps_the_newest() {
        let q = Queue::new(3, Overflow::DropOldest);
        for n in 1..=5 {
            q.push(data(n));
        }
        assert_accounting(&q);
        assert_eq!(seqs(&drain(&q)), vec![3, 4, 5]);
        let s = q.stats();
        assert_eq!((s.routed, s.delivered, s.dropped, s.queued), (5, 3, 2, 0));
    }

    #[test]
    fn drop_newest_keeps_the_oldest() {
        let q = Queue::new(3, Overflow::DropNewest);
        for n in 1..=5 {
            q.push(data(n));
        }
        assert_eq!(seqs(&drain(&q)), vec![1, 2, 3]);
        assert_eq!(q.stats().dropped, 2);
        assert_accounting(&q);
    }

    #[test]
    fn error_policy_reports_the_drops_then_goes_on() {
        let q = Queue::new(2, Overflow::Error);
        for n in 1..=5 {
            q.push(data(n));
        }
        let items = drain(&q);
        match &items[0] {
            Err(Error::QueueFull {
                queue_size: 2,
                dropped_count: 3,
            }) => {}
            other => panic!("expected QueueFull first, got {other:?}"),
        }
        assert_eq!(seqs(&items), vec![1, 2]);
        q.push(data(6));
        assert_eq!(seqs(&drain(&q)), vec![6]);
        assert_accounting(&q);
    }

    #[test]
    fn block_policy_hands_the_message_back() {
        let q = Queue::new(
            1,
            Overflow::Block {
                timeout: Duration::from_secs(1),
            },
        );
        assert!(matches!(q.push(data(1)), Pushed::Queued));
        assert!(matches!(q.push(data(2)), Pushed::Full(_)));
        assert_eq!(q.stats().routed, 1);
    }

    #[test]
    fn finish_lets_the_consumer_drain_then_yields_the_error_then_ends() {
        let q = Queue::new(4, Overflow::DropOldest);
        q.push(data(1));
        q.finish(Some(Error::ClientClosed));
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(matches!(
            q.poll_pop(&mut cx),
            Poll::Ready(Some(Ok(Update::Data(_))))
        ));
        assert!(matches!(
            q.poll_pop(&mut cx),
            Poll::Ready(Some(Err(Error::ClientClosed)))
        ));
        assert!(matches!(q.poll_pop(&mut cx), Poll::Ready(None)));
        assert!(matches!(q.poll_pop(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn signals_do_not_take_data_capacity_and_are_bounded() {
        let q = Queue::new(1, Overflow::DropNewest);
        q.push(data(1));
        for _ in 0..(SIGNAL_RESERVE + 10) {
            q.push_signal(Update::Gap {
                last_seq: 1,
                next_seq: 3,
            });
        }
        assert_eq!(q.stats().signals_dropped, 10);
        assert_eq!(drain(&q).len(), 1 + SIGNAL_RESERVE);
    }

    /// The feed's batch pop: every item leaves under one lock, and until
    /// the consumer yields a lent message it still counts as queued, so
    /// every snapshot is exact; a consumer dropped with lent messages
    /// counts them as dropped.
    #[test]
    fn a_batch_pop_lends_messages_and_every_snapshot_stays_exact() {
        let q = Queue::new(8, Overflow::Error);
        for n in 1..=10 {
            q.push(data(n));
        }
        q.push_signal(Update::Gap {
            last_seq: 10,
            next_seq: 12,
        });
        let (mut out, mut report) = (VecDeque::new(), None);
        assert!(matches!(
            q.pop_listed_batch(&mut out, &mut report),
            Batched::Items { more: false }
        ));
        assert!(matches!(
            report,
            Some(Error::QueueFull {
                dropped_count: 2,
                ..
            })
        ));
        assert_eq!(out.len(), 9, "8 data messages and the signal");
        let s = q.stats();
        assert_eq!((s.routed, s.delivered, s.dropped, s.queued), (10, 0, 2, 8));
        for _ in 0..3 {
            q.yielded_lent();
        }
        let s = q.stats();
        assert_eq!((s.delivered, s.queued), (3, 5));
        assert_accounting(&q);
        assert!(matches!(
            q.pop_listed_batch(&mut VecDeque::new(), &mut None),
            Batched::Empty
        ));
        q.consumer_dropped();
        let s = q.stats();
        assert_eq!((s.routed, s.delivered, s.dropped, s.queued), (10, 3, 7, 0));
        q.finish(None);
        assert!(matches!(
            q.pop_listed_batch(&mut VecDeque::new(), &mut None),
            Batched::End(None)
        ));
    }

    /// The feed's path under every overflow policy: pushes (data and
    /// signals) interleaved with batch takes through an unwoken group and
    /// yields one by one, against a model queue. The consumer gets exactly
    /// the model's items in order, the key is listed exactly while the queue
    /// is readable, and every snapshot is exact (`routed = delivered +
    /// dropped + queued`, with `queued` counting what is taken but not yet
    /// yielded), down to the consumer's drop with items still lent.
    #[test]
    fn batch_takes_keep_every_snapshot_exact_under_each_policy() {
        use crate::ids::MemberKey;
        use crate::queue_group::Group;
        const CAPACITY: usize = 3;
        let policies = [
            Overflow::DropOldest,
            Overflow::DropNewest,
            Overflow::Error,
            Overflow::Block {
                timeout: Duration::from_secs(1),
            },
        ];
        for policy in policies {
            for seed in 1..200u64 {
                let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut roll = || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                let key = MemberKey::new(1);
                let group = Arc::new(Group::unwoken());
                let q = Queue::new(CAPACITY, policy);
                assert!(q.join(Arc::clone(&group), key));
                // The model: data seqs queued (0 stands for a signal).
                let mut model: VecDeque<u64> = VecDeque::new();
                let mut unreported = 0u64;
                let (mut routed, mut dropped, mut yielded) = (0u64, 0u64, 0u64);
                let mut staged: VecDeque<Update> = VecDeque::new();
                let mut ready: VecDeque<MemberKey> = VecDeque::new();
                let mut next = 0u64;
                for step in 0..150 {
                    match roll() % 8 {
                        0..=2 => {
                            next += 1;
                            let data_len = model.iter().filter(|n| **n > 0).count();
                            let pushed = q.push(data(next));
                            if data_len < CAPACITY {
                                assert!(matches!(pushed, Pushed::Queued));
                                model.push_back(next);
                                routed += 1;
                            } else if let Overflow::Block { .. } = policy {
                                assert!(matches!(pushed, Pushed::Full(_)));
                            } else {
                                assert!(matches!(pushed, Pushed::Dropped { .. }));
                                routed += 1;
                                dropped += 1;
                                match policy {
                                    Overflow::DropOldest => {
                                        if let Some(at) = model.iter().position(|n| *n > 0) {
                                            model.remove(at);
                                        }
                                        model.push_back(next);
                                    }
                                    Overflow::Error => unreported += 1,
                                    _ => {}
                                }
                            }
                        }
                        3 => {
                            q.push_signal(Update::Gap {
                                last_seq: next,
                                next_seq: next + 2,
                            });
                            model.push_back(0);
                        }
                        4..=5 if staged.is_empty() => {
                            if ready.is_empty() {
                                group.take_listed_unwoken(&mut ready);
                            }
                            let readable = !model.is_empty() || unreported > 0;
                            assert_eq!(ready.front() == Some(&key), readable, "seed {seed}");
                            if ready.pop_front().is_none() {
                                continue;
                            }
                            let mut report = None;
                            match q.pop_listed_batch(&mut staged, &mut report) {
                                Batched::Items { more } => {
                                    assert!(!more);
                                    match report {
                                        Some(Error::QueueFull { dropped_count, .. }) => {
                                            assert_eq!(dropped_count, unreported);
                                            unreported = 0;
                                        }
                                        None => assert_eq!(unreported, 0),
                                        Some(other) => panic!("unexpected report {other:?}"),
                                    }
                                    let took: Vec<u64> = staged
                                        .iter()
                                        .map(|u| u.as_frame().and_then(Frame::seq).unwrap_or(0))
                                        .collect();
                                    assert_eq!(took, Vec::from(std::mem::take(&mut model)));
                                }
                                other => panic!(
                                    "seed {seed}: a listed queue gave {}",
                                    match other {
                                        Batched::Empty => "nothing",
                                        _ => "its end",
                                    }
                                ),
                            }
                        }
                        _ => {
                            if let Some(update) = staged.pop_front() {
                                if update.is_data() {
                                    q.yielded_lent();
                                    yielded += 1;
                                }
                            }
                        }
                    }
                    let s = q.stats();
                    let staged_data = staged.iter().filter(|u| u.is_data()).count() as u64;
                    let queued = model.iter().filter(|n| **n > 0).count() as u64 + staged_data;
                    assert_eq!(
                        (s.routed, s.delivered, s.dropped, s.queued),
                        (routed, yielded, dropped, queued),
                        "{policy:?} seed {seed} step {step}"
                    );
                    assert_eq!(s.routed, s.delivered + s.dropped + s.queued);
                }
                q.consumer_dropped();
                let s = q.stats();
                assert_eq!(
                    (s.delivered, s.queued),
                    (yielded, 0),
                    "{policy:?} seed {seed}"
                );
                assert_eq!(s.routed, s.delivered + s.dropped, "{policy:?} seed {seed}");
            }
        }
    }

    #[test]
    fn a_dropped_consumer_turns_queued_items_into_drops() {
        let q = Queue::new(4, Overflow::DropOldest);
        q.push(data(1));
        q.push(data(2));
        q.consumer_dropped();
        assert!(matches!(q.push(data(3)), Pushed::ConsumerGone));
        let s = q.stats();
        assert_eq!((s.routed, s.dropped, s.queued), (3, 3, 0));
    }
}
