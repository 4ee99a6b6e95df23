//! A subscription queue as `queue.rs` documents it: a bounded list of data
//! messages under an overflow policy, and the counters that prove nothing
//! disappears uncounted (`routed = delivered + dropped + queued`).
//!
//! Signals (gap, book break, resubscribed) take no data capacity and are not
//! modelled: the consumer skips them.

use std::collections::VecDeque;

use resilient_ws::Overflow;

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MPushed {
    /// Queued, or dropped under the policy: the subscription goes on.
    Alive,
    /// A `Block` queue is full: nothing was counted, the message waits.
    Full,
    /// The consumer is gone or the queue ended: counted routed and dropped.
    Gone,
}

/// One queue: the frame numbers it holds, in order, and its counters.
#[derive(Debug)]
pub(crate) struct MQueue {
    pub(crate) capacity: usize,
    pub(crate) policy: Overflow,
    pub(crate) items: VecDeque<u64>,
    pub(crate) consumer_alive: bool,
    pub(crate) finished: bool,
    pub(crate) routed: u64,
    pub(crate) delivered: u64,
    pub(crate) dropped: u64,
}

impl MQueue {
    pub(crate) fn new(capacity: usize, policy: Overflow) -> Self {
        MQueue {
            capacity,
            policy,
            items: VecDeque::new(),
            consumer_alive: true,
            finished: false,
            routed: 0,
            delivered: 0,
            dropped: 0,
        }
    }

    /// A data message (by frame number) under the overflow policy.
    pub(crate) fn push(&mut self, number: u64) -> MPushed {
        if !self.consumer_alive || self.finished {
            self.routed += 1;
            self.dropped += 1;
            return MPushed::Gone;
        }
        if self.items.len() < self.capacity {
            self.routed += 1;
            self.items.push_back(number);
            return MPushed::Alive;
        }
        match self.policy {
            Overflow::Block { .. } => return MPushed::Full,
            Overflow::DropOldest => {
                self.items.pop_front();
                self.items.push_back(number);
            }
            Overflow::DropNewest | Overflow::Error => {}
            other => panic!("a policy the model does not know: {other:?}"),
        }
        self.routed += 1;
        self.dropped += 1;
        MPushed::Alive
    }

    /// A duplicate: routed here and discarded at once.
    pub(crate) fn discard(&mut self) {
        self.routed += 1;
        self.dropped += 1;
    }

    /// Whether a waiter on a full `Block` queue would wake: room, or no
    /// consumer, or the queue ended.
    pub(crate) fn has_room(&self) -> bool {
        self.items.len() < self.capacity || !self.consumer_alive || self.finished
    }

    /// The consumer took the next data message; returns its frame number.
    pub(crate) fn pop(&mut self) -> Option<u64> {
        let number = self.items.pop_front()?;
        self.delivered += 1;
        Some(number)
    }

    /// The consumer dropped its stream: what was queued is dropped.
    pub(crate) fn consumer_dropped(&mut self) {
        self.consumer_alive = false;
        self.dropped += self.items.len() as u64;
        self.items.clear();
    }
}
