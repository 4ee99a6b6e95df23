//! A full `Block` queue: the backpressure state of the session core.
//!
//! Rules: a data message that finds its `Overflow::Block` queue full is parked
//! (one at most), and while it is parked the shell reads nothing from the
//! socket, so the peer meets TCP backpressure instead of a growing buffer.
//! Deliveries released behind it (stashed frames freed by one ack) are held
//! here in order, bounded by the stash. When the consumer makes room the
//! message is pushed and the held deliveries go out; when it does not within
//! the queue's timeout, that subscription alone ends with
//! [`Error::Backpressure`](crate::Error::Backpressure). Either way the
//! liveness deadlines are moved by the stall: a stalled consumer is not a
//! dead peer.
//!
//! [`Backpressure`] owns the parked message and the held deliveries; the
//! core coordinates what a push, a timeout or a resume does to the
//! subscriptions (`core.rs`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::message::{Frame, Update};
use crate::protocol::BookBreak;
use crate::queue::{Overflow, Queue};
use crate::subscription::ClientId;

/// A data message that found its `Block` queue full.
pub(super) struct Parked {
    pub(super) client_id: Option<ClientId>,
    pub(super) queue: Arc<Queue>,
    pub(super) update: Update,
    pub(super) book_break: Option<BookBreak>,
    pub(super) resync: bool,
    /// When the stall began (the liveness deadlines move by its length).
    pub(super) since: Instant,
}

/// A routed data frame not yet pushed.
pub(super) struct Delivery {
    pub(super) client_id: Option<ClientId>,
    pub(super) frame: Frame,
    pub(super) book_break: Option<BookBreak>,
}

/// The parked message, if any, and the deliveries held behind it.
#[derive(Default)]
pub(super) struct Backpressure {
    parked: Option<Parked>,
    held: VecDeque<Delivery>,
}

impl Backpressure {
    /// Whether a message waits for room (then the socket is not read and
    /// nothing overtakes it). On every data frame's path.
    #[inline]
    pub(super) fn is_parked(&self) -> bool {
        self.parked.is_some()
    }

    /// Parks `parked` (nothing was parked: the core parks only while none is).
    pub(super) fn park(&mut self, parked: Parked) {
        debug_assert!(self.parked.is_none());
        self.parked = Some(parked);
    }

    /// Takes the parked message, to push it again or end its subscription.
    pub(super) fn unpark(&mut self) -> Option<Parked> {
        self.parked.take()
    }

    /// The queue the driver must wait on (and for how long at most) before
    /// it reads the socket again.
    pub(super) fn blocked_on(&self) -> Option<(Arc<Queue>, Duration)> {
        let parked = self.parked.as_ref()?;
        match parked.queue.policy() {
            Overflow::Block { timeout } => Some((Arc::clone(&parked.queue), timeout)),
            // Only `Block` queues hand a message back.
            _ => Some((Arc::clone(&parked.queue), Duration::ZERO)),
        }
    }

    /// Holds `delivery` behind the parked message, in order.
    pub(super) fn hold(&mut self, delivery: Delivery) {
        self.held.push_back(delivery);
    }

    /// The next held delivery, while nothing is parked.
    pub(super) fn next_held(&mut self) -> Option<Delivery> {
        if self.parked.is_some() {
            return None;
        }
        self.held.pop_front()
    }
}
