//! A full `Block` queue: the backpressure path of the session core.
//!
//! Rules: a data message that finds its `Overflow::Block` queue full is parked
//! (one at most), and while it is parked the shell reads nothing from the
//! socket, so the peer meets TCP backpressure instead of a growing buffer.
//! Deliveries released behind it (stashed frames freed by one ack) wait in the
//! core's bounded backlog, in order. When the consumer makes room the message is
//! pushed and the backlog drains; when it does not within the queue's timeout,
//! that subscription alone ends with [`Error::Backpressure`]. Either way the
//! liveness deadlines are moved by the stall: a stalled consumer is not a dead
//! peer.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::core::SessionCore;
use super::core::{Parked, PushNow};
use crate::error::Error;
use crate::message::Update;
use crate::protocol::{BookBreak, Protocol};
use crate::queue::{Overflow, Queue};
use crate::subscription::ClientId;

impl<P: Protocol> SessionCore<P> {
    pub(super) fn park(
        &mut self,
        client_id: Option<ClientId>,
        queue: Arc<Queue>,
        update: Update,
        book_break: Option<BookBreak>,
        resync: bool,
        now: Instant,
    ) {
        self.parked = Some(Parked {
            client_id,
            queue,
            update,
            book_break,
            resync,
            since: now,
        });
    }

    /// The queue the shell must wait on (and for how long at most) before it
    /// reads the socket again, while a `Block` queue is full.
    pub(crate) fn blocked_on(&self) -> Option<(Arc<Queue>, Duration)> {
        let parked = self.parked.as_ref()?;
        match parked.queue.policy() {
            Overflow::Block { timeout } => Some((Arc::clone(&parked.queue), timeout)),
            // Only `Block` queues hand a message back.
            _ => Some((Arc::clone(&parked.queue), Duration::ZERO)),
        }
    }

    /// The parked queue has room (or its consumer is gone): push again.
    pub(crate) fn on_space(&mut self, now: Instant) {
        let Some(parked) = self.parked.take() else {
            return;
        };
        let Parked {
            client_id,
            queue,
            update,
            book_break,
            resync,
            since,
        } = parked;
        match self.push(client_id, &queue, update) {
            PushNow::Full(update) => {
                self.parked = Some(Parked {
                    client_id,
                    queue,
                    update,
                    book_break,
                    resync,
                    since,
                });
                return;
            }
            PushNow::Alive => {
                if let Some(id) = client_id {
                    self.after_push(id, &queue, true, book_break, resync);
                }
            }
            PushNow::Ended => {
                if let Some(id) = client_id {
                    self.after_push(id, &queue, false, book_break, resync);
                }
            }
        }
        self.resume(since, now);
    }

    /// The consumer did not make room in time: that subscription ends with
    /// [`Error::Backpressure`]; the connection and the others go on.
    pub(crate) fn on_block_timeout(&mut self, now: Instant) {
        let Some(parked) = self.parked.take() else {
            return;
        };
        let error = self.backpressure_error(parked.client_id, &parked.queue);
        parked.queue.finish(Some(error.clone()));
        // Counted (routed and dropped) now that the queue is finished.
        let _ = parked.queue.push(parked.update);
        if let Some(id) = parked.client_id {
            self.end_subscription(id, Some(error), true);
        }
        self.resume(parked.since, now);
    }

    /// After a stall: the liveness deadlines did not run while we were not
    /// reading (a stalled consumer is not a dead peer), then the deliveries
    /// that queued up behind the parked one go out in order.
    fn resume(&mut self, since: Instant, now: Instant) {
        if let Some(link) = &mut self.link {
            link.pause_liveness(now.saturating_duration_since(since));
        }
        while self.parked.is_none() {
            let Some(next) = self.backlog.pop_front() else {
                break;
            };
            self.deliver(next.client_id, next.frame, next.book_break, now);
        }
    }

    fn backpressure_error(&self, client_id: Option<ClientId>, queue: &Queue) -> Error {
        let entry = client_id.and_then(|id| self.registry.get(id));
        Error::Backpressure {
            channel: entry.map_or_else(|| "inbound".to_owned(), |e| e.topic.to_string()),
            server_id: entry
                .and_then(|e| e.server_id.as_ref())
                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            client_id: client_id.unwrap_or(ClientId::new(0)),
            maxsize: queue.capacity(),
        }
    }
}
