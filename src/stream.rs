//! The consumer side: [`Subscription`] and [`Messages`] streams.
//!
//! Both read from a bounded [`Queue`] the supervisor fills. They never see the
//! socket, so they keep yielding across reconnects; they end only when their
//! subscription ends or the client finishes, and then with the reason as their
//! last item.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::{mpsc, oneshot};

use crate::command::Command;
use crate::error::Error;
use crate::message::{Frame, Update};
use crate::protocol::Topic;
use crate::queue::{Queue, QueueStats};
use crate::subscription::ClientId;

/// A durable subscription: a stream of [`Update`]s that survives reconnects.
///
/// Its [`client_id`](Subscription::client_id) never changes, whatever server
/// id the venue assigns on each connection. Dropping it unsubscribes.
pub struct Subscription {
    client_id: ClientId,
    topic: Topic,
    queue: Arc<Queue>,
    commands: mpsc::Sender<Command>,
    unsubscribed: bool,
}

impl Subscription {
    pub(crate) fn new(
        client_id: ClientId,
        topic: Topic,
        queue: Arc<Queue>,
        commands: mpsc::Sender<Command>,
    ) -> Self {
        Subscription {
            client_id,
            topic,
            queue,
            commands,
            unsubscribed: false,
        }
    }

    /// The durable client-side id.
    pub fn client_id(&self) -> ClientId {
        self.client_id
    }

    /// The topic.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// The queue (for a [`SubscriptionSet`](crate::SubscriptionSet) adopting it).
    pub(crate) fn queue(&self) -> Arc<Queue> {
        Arc::clone(&self.queue)
    }

    /// This subscription's queue counters (`routed = delivered + dropped + queued`).
    pub fn stats(&self) -> QueueStats {
        self.queue.stats()
    }

    /// Unsubscribes and waits until the supervisor has acted on it. Items
    /// already queued can still be read from the stream before it ends... but
    /// this consumes the handle, so they are dropped with it and counted.
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for venues that confirm unsubscribes.
    pub async fn unsubscribe(mut self) -> Result<(), Error> {
        self.unsubscribed = true;
        let (reply, rx) = oneshot::channel();
        let command = Command::Unsubscribe {
            client_id: self.client_id,
            reply: Some(reply),
        };
        if self.commands.send(command).await.is_err() {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }
}

impl Stream for Subscription {
    type Item = Result<Update, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.queue.poll_pop(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.queue.consumer_dropped();
        if !self.unsubscribed && !self.queue.is_finished() {
            // Best effort: if the channel is full, the supervisor notices the
            // consumer is gone at the next frame or replay and unsubscribes then.
            let _ = self.commands.try_send(Command::Unsubscribe {
                client_id: self.client_id,
                reply: None,
            });
        }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("client_id", &self.client_id)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// Frames that belong to no subscription (with [`RawProtocol`](crate::RawProtocol):
/// every frame), as a stream of [`Frame`]s.
pub struct Messages {
    queue: Arc<Queue>,
}

impl Messages {
    pub(crate) fn new(queue: Arc<Queue>) -> Self {
        Messages { queue }
    }

    /// This stream's queue counters.
    pub fn stats(&self) -> QueueStats {
        self.queue.stats()
    }
}

impl Stream for Messages {
    type Item = Result<Frame, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            return match self.queue.poll_pop(cx) {
                Poll::Ready(Some(Ok(Update::Data(frame)))) => Poll::Ready(Some(Ok(frame))),
                // The inbound queue carries no signals; skip any defensively.
                Poll::Ready(Some(Ok(_))) => continue,
                Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

impl Drop for Messages {
    fn drop(&mut self) {
        self.queue.consumer_dropped();
    }
}

impl std::fmt::Debug for Messages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messages").finish_non_exhaustive()
    }
}
