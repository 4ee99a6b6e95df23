//! [`SubscriptionSet`]: many subscriptions read through one stream.
//!
//! Rules, and why:
//! - Each member keeps its own bounded queue, overflow policy and counters, so
//!   per-subscription accounting (`routed = delivered + dropped + queued`) and
//!   policies are exactly those of a lone [`Subscription`]; the set only
//!   changes who reads the queues.
//! - A member queue that becomes readable puts its key once on the set's ready
//!   list and wakes the set ([`Group`]). The set moves the whole shared list
//!   into its own under one lock, takes one item from the first listed member
//!   and lists it again at the back (of its own list) if it has more, so
//!   members are served round-robin, an idle member costs nothing per item,
//!   the cost of an item does not grow with the number of members, and the
//!   shared list's lock is taken once per batch, not once per item.
//! - Every item says which member it came from ([`SetItem`]): the member's
//!   key, its client id and its topic (shared, not copied).
//! - Members are keyed by a [`MemberKey`] the set gives them, not by client
//!   id: client ids are unique per [`Client`] or per [`Pool`] only (a pool's
//!   members draw them from one counter), and a set may merge subscriptions of
//!   several clients and pools, e.g. two venues. Keyed by client id, the
//!   second member with an id would silently replace (and unsubscribe) the
//!   first. `insert` subscribes where the set came from (the client or the
//!   pool, which places the topic on a connection with room).
//! - A member that ends yields its terminal error (if any) as its last item and
//!   leaves the set; the stream ends when the set has no members left. A topic
//!   that [`Client::subscribe_set`] or [`Pool::subscribe_set`] could not
//!   subscribe (refused, timed out, not placed) is such a member from the
//!   start: its error is its only item, and the others stream regardless.
//! - The set's own counters are the sum of its members' plus those of members
//!   that left, taken once the supervisor stopped routing to them.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use rustc_hash::FxHashMap;

use crate::client::{Client, QueueOptions};
use crate::error::Error;
use crate::ids::{ClientId, MemberKey};
use crate::message::Update;
use crate::pool::Pool;
use crate::protocol::Topic;
use crate::queue::{Overflow, Queue, QueueStats};
use crate::stream::Subscription;

mod open;

pub(crate) use crate::queue_group::{Batched, Group, Popped};

/// One item of a [`SubscriptionSet`]: what a lone [`Subscription`] would have
/// yielded, and which member it belongs to.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SetItem {
    /// The member's key in this set (unique within the set).
    pub member: MemberKey,
    /// The member's durable client id (unique within its client or pool).
    pub client_id: ClientId,
    /// The member's topic.
    pub topic: Arc<Topic>,
    /// The data, signal or error, as [`Subscription`] yields them. An `Err`
    /// that is not [`retryable`](Error::is_retryable) is the member's last
    /// item; so is the error of a topic that was never subscribed (see
    /// [`Client::subscribe_set`]), even a retryable one such as a timeout.
    pub item: Result<Update, Error>,
}

/// Where a set's [`insert`](SubscriptionSet::insert) subscribes.
pub(crate) enum Source {
    /// One connection.
    Client(Client),
    /// A pool: members may live on different connections (client ids are
    /// unique across a pool).
    Pool(Pool),
}

struct Member {
    client_id: ClientId,
    topic: Arc<Topic>,
    queue: Arc<Queue>,
    /// Kept for its `Drop` (unsubscribes) and for `remove`; `None` for a
    /// topic that was never subscribed (its queue holds only the error).
    subscription: Option<Subscription>,
}

/// Many subscriptions read through one stream of [`SetItem`]s, with members
/// added and removed while streaming. Made by
/// [`Client::subscribe_set`](crate::Client::subscribe_set) or
/// [`Pool::subscribe_set`](crate::Pool::subscribe_set) (then members may live
/// on different connections of the pool).
///
/// Dropping the set unsubscribes every member.
pub struct SubscriptionSet {
    source: Source,
    options: QueueOptions,
    group: Arc<Group>,
    members: FxHashMap<MemberKey, Member>,
    /// The key the next member gets (keys are never reused, so a stale key
    /// left on the ready list names no member).
    next_key: u64,
    /// Keys taken from the group's shared list, served round-robin.
    ready: VecDeque<MemberKey>,
    /// Counters of members that left.
    retired: QueueStats,
}

impl SubscriptionSet {
    pub(crate) fn new(source: Source, options: QueueOptions) -> Self {
        Self::with_group(source, options, Group::default())
    }

    /// The feed's set: read only through [`poll_stage`](Self::poll_stage)
    /// in the task that fills its queues, so its queues wake nobody.
    pub(crate) fn unwoken(source: Source, options: QueueOptions) -> Self {
        Self::with_group(source, options, Group::unwoken())
    }

    fn with_group(source: Source, options: QueueOptions, group: Group) -> Self {
        SubscriptionSet {
            source,
            options,
            group: Arc::new(group),
            members: FxHashMap::default(),
            next_key: 1,
            ready: VecDeque::new(),
            retired: QueueStats::default(),
        }
    }

    /// Adds an existing subscription, from any client or pool, as a member;
    /// returns its key in this set. Two members may share a client id (from
    /// different clients or pools): their keys keep them apart.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if its queue already belongs to a set (cannot happen
    /// through the public API, which moves the subscription in).
    pub fn adopt(&mut self, subscription: Subscription) -> Result<MemberKey, Error> {
        let client_id = subscription.client_id();
        let queue = subscription.queue();
        let key = self.next_key();
        if !queue.join(Arc::clone(&self.group), key) {
            return Err(Error::Config(format!(
                "subscription {client_id} already belongs to a set"
            )));
        }
        let topic = Arc::new(subscription.topic().clone());
        self.join(key, client_id, topic, queue, Some(subscription));
        Ok(key)
    }

    /// Adds `topic`, which could not be subscribed, as a member whose only
    /// item is `error` (see the module docs).
    pub(crate) fn adopt_refused(
        &mut self,
        client_id: ClientId,
        topic: Topic,
        error: Error,
    ) -> MemberKey {
        let key = self.next_key();
        // Holds no data: one slot, and the end carries the error.
        let queue = Queue::new(1, Overflow::DropOldest);
        queue.join(Arc::clone(&self.group), key);
        queue.finish(Some(error));
        self.join(key, client_id, Arc::new(topic), queue, None);
        key
    }

    fn next_key(&mut self) -> MemberKey {
        let key = MemberKey::new(self.next_key);
        self.next_key = self.next_key.saturating_add(1);
        key
    }

    fn join(
        &mut self,
        key: MemberKey,
        client_id: ClientId,
        topic: Arc<Topic>,
        queue: Arc<Queue>,
        subscription: Option<Subscription>,
    ) {
        let member = Member {
            client_id,
            topic,
            queue,
            subscription,
        };
        // Keys are never reused: nothing is replaced.
        let replaced = self.members.insert(key, member);
        debug_assert!(replaced.is_none(), "member key {key} reused");
    }

    /// Subscribes to `topic` (with the set's queue options) and adds it;
    /// returns its key in this set.
    ///
    /// # Errors
    ///
    /// As [`Client::subscribe`](crate::Client::subscribe) (a refused topic
    /// is not added).
    pub async fn insert(&mut self, topic: Topic) -> Result<MemberKey, Error> {
        let subscription = match &self.source {
            Source::Client(client) => client.subscribe_with(topic, self.options).await?,
            Source::Pool(pool) => pool.subscribe_with(topic, self.options).await?,
        };
        self.adopt(subscription)
    }

    /// Unsubscribes the member `key` and removes it; items it had queued are
    /// counted as dropped. Returns false if it is not a member.
    ///
    /// # Errors
    ///
    /// As [`Subscription::unsubscribe`].
    pub async fn remove(&mut self, key: MemberKey) -> Result<bool, Error> {
        let Some(member) = self.members.remove(&key) else {
            return Ok(false);
        };
        let result = match member.subscription {
            Some(subscription) => subscription.unsubscribe().await,
            // Never subscribed: nothing to undo.
            None => Ok(()),
        };
        // The supervisor has acted on the unsubscribe: nothing more is routed
        // to this queue, so its counters are final.
        self.retired.add(&member.queue.stats());
        result.map(|()| true)
    }

    /// The members: each one's key, client id and topic.
    pub fn members(&self) -> impl Iterator<Item = (MemberKey, ClientId, &Topic)> + '_ {
        self.members
            .iter()
            .map(|(key, m)| (*key, m.client_id, &*m.topic))
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the set has no members (its stream then ends).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// One member's counters (`routed = delivered + dropped + queued`).
    pub fn member_stats(&self, key: MemberKey) -> Option<QueueStats> {
        self.members.get(&key).map(|m| m.queue.stats())
    }

    /// The set's counters: the sum over its members, present and past.
    pub fn stats(&self) -> QueueStats {
        let mut total = self.retired;
        for member in self.members.values() {
            total.add(&member.queue.stats());
        }
        total
    }

    fn retire(&mut self, key: MemberKey) -> Option<(ClientId, Arc<Topic>)> {
        let member = self.members.remove(&key)?;
        self.retired.add(&member.queue.stats());
        Some((member.client_id, member.topic))
    }
}

/// Items of one member moved out of its queue in one batch, yielded one by
/// one without the queue's lock (the feed's delivery path: the feed polls
/// the set in the task that fills it, so a batch per socket read costs one
/// lock instead of one per item).
#[derive(Default)]
pub(crate) struct Staged {
    /// A drop report (policy `Error`) to yield before `items`.
    report: Option<Error>,
    items: VecDeque<Update>,
    /// The member the items came from (looked up per item rather than
    /// holding its `Arc`s: with many members a batch is often one item).
    member: Option<MemberKey>,
}

impl SubscriptionSet {
    /// The next item staged by [`poll_stage`](Self::poll_stage).
    ///
    /// Inlined into the feed's `poll_next` on purpose: there the item is
    /// built in the caller's return slot, where a call returns it through a
    /// temporary and a 144-byte `memcpy` per item (+1 % frames per second).
    #[inline(always)]
    pub(crate) fn pop_staged(&self, staged: &mut Staged) -> Option<SetItem> {
        // Nothing staged (every wake-up of the feed): no member lookup.
        if staged.items.is_empty() && staged.report.is_none() {
            return None;
        }
        let key = staged.member?;
        // A staged member is never retired before its items are yielded:
        // members retire in `poll_stage`, which runs only when `staged` is empty.
        let member = self.members.get(&key)?;
        let item = match staged.report.take() {
            Some(report) => Err(report),
            None => {
                let update = staged.items.pop_front()?;
                if update.is_data() {
                    member.queue.yielded_lent();
                }
                Ok(update)
            }
        };
        Some(SetItem {
            member: key,
            client_id: member.client_id,
            topic: Arc::clone(&member.topic),
            item,
        })
    }

    /// Moves the items of the next readable member into `staged`
    /// (which must be empty); returns a member's terminal error item
    /// directly. `Pending`: nothing readable; `Ready(None)`: no members. The
    /// same round-robin as `poll_next`, by batch.
    ///
    /// Registers no waker: the feed fills its queues inside its own
    /// `poll_next`, in the task that calls this, so nothing is ever listed
    /// behind its back that a wake-up would have to report.
    pub(crate) fn poll_stage(&mut self, staged: &mut Staged) -> Poll<Option<Option<SetItem>>> {
        debug_assert!(
            staged.items.is_empty() && staged.report.is_none(),
            "staged items left"
        );
        loop {
            if self.ready.is_empty() && !self.group.take_listed_unwoken(&mut self.ready) {
                if self.members.is_empty() {
                    return Poll::Ready(None);
                }
                return Poll::Pending;
            }
            let Some(key) = self.ready.pop_front() else {
                continue;
            };
            let Some(member) = self.members.get(&key) else {
                continue;
            };
            match member
                .queue
                .pop_listed_batch(&mut staged.items, &mut staged.report)
            {
                Batched::Items { more } => {
                    if more {
                        self.ready.push_back(key);
                    }
                    staged.member = Some(key);
                    return Poll::Ready(Some(None));
                }
                Batched::Empty => {}
                Batched::End(error) => {
                    let retired = self.retire(key);
                    if let (Some(error), Some((client_id, topic))) = (error, retired) {
                        return Poll::Ready(Some(Some(SetItem {
                            member: key,
                            client_id,
                            topic,
                            item: Err(error),
                        })));
                    }
                }
            }
        }
    }
}

impl Stream for SubscriptionSet {
    type Item = SetItem;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SetItem>> {
        let this = &mut *self;
        loop {
            if this.ready.is_empty() && !this.group.take_listed(&mut this.ready, cx) {
                if this.members.is_empty() {
                    return Poll::Ready(None);
                }
                return Poll::Pending;
            }
            let Some(key) = this.ready.pop_front() else {
                continue;
            };
            // A key of a member removed since it was listed is stale.
            let Some(member) = this.members.get(&key) else {
                continue;
            };
            match member.queue.pop_listed() {
                Popped::Item(item, more) => {
                    let (client_id, topic) = (member.client_id, Arc::clone(&member.topic));
                    if more {
                        this.ready.push_back(key);
                    }
                    return Poll::Ready(Some(SetItem {
                        member: key,
                        client_id,
                        topic,
                        item,
                    }));
                }
                Popped::Empty => {}
                Popped::End(None) => {
                    this.retire(key);
                }
                Popped::End(Some(error)) => {
                    if let Some((client_id, topic)) = this.retire(key) {
                        return Poll::Ready(Some(SetItem {
                            member: key,
                            client_id,
                            topic,
                            item: Err(error),
                        }));
                    }
                }
            }
        }
    }
}

impl std::fmt::Debug for SubscriptionSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionSet")
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Frame;
    use crate::queue::Overflow;
    use futures::task::noop_waker_ref;

    /// Drives one member queue and its group with a seeded random mix of
    /// pushes and consumer steps, against a plain model of a `DropOldest`
    /// queue: the key is never listed twice, a readable member is always
    /// listed after each step, and the consumer gets exactly the model's items.
    #[test]
    fn a_member_is_listed_once_while_readable_and_nothing_is_lost() {
        const CAPACITY: usize = 3;
        for seed in 1..300u64 {
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut roll = || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let group = Arc::new(Group::default());
            let queue = Queue::new(CAPACITY, Overflow::DropOldest);
            let mut model: VecDeque<u64> = VecDeque::new();
            let mut got = Vec::new();
            let mut want = Vec::new();
            let mut next = 0u64;
            let mut joined = false;
            let mut cx = Context::from_waker(noop_waker_ref());
            for _ in 0..120 {
                match roll() % 4 {
                    0 | 1 => {
                        next += 1;
                        queue.push(Update::Data(Frame::text("x", Some(next))));
                        if model.len() == CAPACITY {
                            model.pop_front();
                        }
                        model.push_back(next);
                    }
                    2 if !joined => {
                        // Joining late lists a queue that already holds items.
                        assert!(queue.join(Arc::clone(&group), MemberKey::new(7)));
                        assert!(!queue.join(Arc::clone(&group), MemberKey::new(8)));
                        joined = true;
                    }
                    _ if joined => {
                        if let Some(key) = group.next(&mut cx) {
                            assert_eq!(key, MemberKey::new(7));
                            match queue.pop_listed() {
                                Popped::Item(Ok(Update::Data(frame)), more) => {
                                    got.push(frame.seq().unwrap_or(0));
                                    want.push(model.pop_front().unwrap_or(0));
                                    if more {
                                        group.relist(key);
                                    }
                                }
                                Popped::Empty => assert!(model.is_empty()),
                                _ => panic!("unexpected pop"),
                            }
                        }
                    }
                    _ => {}
                }
                let listed = group
                    .lock()
                    .iter()
                    .filter(|k| **k == MemberKey::new(7))
                    .count();
                assert!(listed <= 1, "seed {seed}: listed {listed} times");
                if joined {
                    assert_eq!(listed == 1, !model.is_empty(), "seed {seed}");
                }
                let s = queue.stats();
                assert_eq!(s.routed, s.delivered + s.dropped + s.queued);
                assert_eq!(s.queued as usize, model.len());
            }
            assert_eq!(got, want, "seed {seed}");
        }
    }
}
