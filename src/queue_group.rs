//! The ready list between a [`SubscriptionSet`](crate::SubscriptionSet)'s
//! member queues and its consumer.
//!
//! A file of its own, beside the queue and below the set, because both sides
//! use it: the queues (`queue.rs`) list themselves here when they become
//! readable, and the set (`set/`) takes the list. It depends on nothing but
//! the item types, so the queue, far below the set, never imports the set
//! (which imports the client and the pool).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::Context;

use futures::task::AtomicWaker;

use crate::error::Error;
use crate::ids::MemberKey;
use crate::message::Update;

/// The ready list shared by the member queues of one
/// [`SubscriptionSet`](crate::SubscriptionSet): a queue that becomes readable
/// puts its key here once and wakes the set's consumer, so the consumer never
/// scans idle members and the cost per item does not grow with the set.
pub(crate) struct Group {
    ready: Mutex<VecDeque<MemberKey>>,
    waker: AtomicWaker,
    /// False for the feed's group: its consumer lists and takes in one task
    /// and is never woken through `waker`, so a listing skips the wake (an
    /// atomic read-modify-write per listing, i.e. per item with many members).
    wakes: bool,
    /// Whether `ready` may hold keys: set with each listing and cleared when
    /// the list is taken, both under the lock, so it equals
    /// `!ready.is_empty()` whenever the lock is free. The feed, which is
    /// never woken through `waker`, reads it to skip the lock (and the
    /// registration) when nothing was listed: on every wake-up before the
    /// socket is read.
    maybe_listed: AtomicBool,
}

impl Default for Group {
    fn default() -> Self {
        Group {
            ready: Mutex::default(),
            waker: AtomicWaker::new(),
            wakes: true,
            maybe_listed: AtomicBool::new(false),
        }
    }
}

impl Group {
    /// A group whose consumer is never woken through it (the feed's; it
    /// takes with [`take_listed_unwoken`](Self::take_listed_unwoken)).
    pub(crate) fn unwoken() -> Self {
        Group {
            wakes: false,
            ..Group::default()
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, VecDeque<MemberKey>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lists `key` as readable and wakes the consumer.
    pub(crate) fn list(&self, key: MemberKey) {
        self.push_listed(key);
        if self.wakes {
            self.waker.wake();
        }
    }

    /// Lists `key` again (the consumer itself, after taking one item of many).
    #[cfg(test)]
    pub(crate) fn relist(&self, key: MemberKey) {
        self.push_listed(key);
    }

    /// Puts `key` on the list, and says so to the unwoken consumer's check.
    fn push_listed(&self, key: MemberKey) {
        let mut ready = self.lock();
        ready.push_back(key);
        self.maybe_listed.store(true, Ordering::Release);
    }

    /// Moves every listed key to the back of `into` (the consumer's own
    /// list); when there is none, registers the consumer's waker and returns
    /// false.
    pub(crate) fn take_listed(&self, into: &mut VecDeque<MemberKey>, cx: &mut Context<'_>) -> bool {
        let mut ready = self.lock();
        if ready.is_empty() {
            // Under the lock: a `list` lands before (and was taken) or after
            // (and its wake finds this waker).
            self.waker.register(cx.waker());
            return false;
        }
        into.append(&mut ready);
        self.maybe_listed.store(false, Ordering::Relaxed);
        true
    }

    /// The feed's [`take_listed`](Self::take_listed): moves every listed key
    /// to the back of `into`; false when there is none. Registers no waker:
    /// the feed lists its queues inside its own `poll_next` and is never
    /// woken through the group. When nothing was listed since the last take,
    /// one load and no lock.
    pub(crate) fn take_listed_unwoken(&self, into: &mut VecDeque<MemberKey>) -> bool {
        if !self.maybe_listed.load(Ordering::Acquire) {
            return false;
        }
        let mut ready = self.lock();
        self.maybe_listed.store(false, Ordering::Relaxed);
        if ready.is_empty() {
            return false;
        }
        into.append(&mut ready);
        true
    }

    /// The next readable key, or `None` after registering the consumer's waker.
    #[cfg(test)]
    pub(crate) fn next(&self, cx: &mut Context<'_>) -> Option<MemberKey> {
        let mut ready = self.lock();
        if let Some(key) = ready.pop_front() {
            self.maybe_listed
                .store(!ready.is_empty(), Ordering::Relaxed);
            return Some(key);
        }
        // Under the lock: a `list` lands before (and was popped) or after
        // (and its wake finds this waker).
        self.waker.register(cx.waker());
        None
    }
}

/// What a group's consumer took from one member.
pub(crate) enum Popped {
    /// An item; `more` is true when the member stays readable (and listed).
    Item(Result<Update, Error>, bool),
    /// Nothing left; the member is no longer listed.
    Empty,
    /// The member ended, with its terminal error if any.
    End(Option<Error>),
}

/// What a member queue's batch pop found (the feed's [`Queue::pop_listed_batch`](crate::queue::Queue::pop_listed_batch)).
pub(crate) enum Batched {
    /// Items were moved; `more`: the queue is still readable (listed again).
    Items {
        /// Whether the queue still holds something.
        more: bool,
    },
    /// Nothing; the queue is no longer listed.
    Empty,
    /// The queue has ended, with its terminal error if any.
    End(Option<Error>),
}
