//! [`FeedHandle`]: commands to a [`Feed`](super::Feed) from any task.
//!
//! It is a [`Client`] whose supervisor is the feed, plus the list the feed
//! adopts new subscriptions from. A subscription is put on that list before
//! its command is sent, so the feed holds its queue by the time the venue's
//! first frame for it can arrive; a queue adopted after items landed in it is
//! listed at once (see `queue_group.rs`), so nothing is skipped either way.
//!
//! Every answer (a subscribe's ack, a send written, close done) comes from the
//! feed's `poll_next`: a handle awaited in the task that should be polling the
//! feed waits for ever. Await it in another task, or `select!` it with the
//! feed's `next()`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::client::{Client, Prepared, QueueOptions};
use crate::error::Error;
use crate::ids::ClientId;
use crate::protocol::Topic;
use crate::stream::Subscription;
use crate::supervisor::Command;

/// Subscriptions made by handles, waiting for the feed to adopt them.
#[derive(Default)]
pub(super) struct Arrivals {
    list: Mutex<Vec<Subscription>>,
    /// Set while `list` is not empty: the feed checks it on every poll
    /// without taking the lock.
    waiting: AtomicBool,
}

impl Arrivals {
    fn push(&self, subscription: Subscription) {
        self.list
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(subscription);
        self.waiting.store(true, Ordering::Release);
    }

    /// Whether a subscription waits to be taken (one atomic load): the
    /// feed asks on every poll, so the common "none" costs no `Vec`.
    #[inline]
    pub(super) fn waiting(&self) -> bool {
        self.waiting.load(Ordering::Acquire)
    }

    /// Takes every waiting subscription.
    pub(super) fn take(&self) -> Vec<Subscription> {
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        self.waiting.store(false, Ordering::Release);
        std::mem::take(&mut *list)
    }
}

/// Commands to a [`Feed`](super::Feed) from any task: subscribe, unsubscribe,
/// send, request, close, events, stats. Cheap to clone.
///
/// Its answers come from the feed's `poll_next`: await them in another task
/// than the one polling the feed, or `select!` them with the feed.
#[derive(Clone)]
pub struct FeedHandle {
    client: Client,
    arrivals: Arc<Arrivals>,
}

impl std::fmt::Debug for FeedHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedHandle")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl FeedHandle {
    pub(super) fn new(client: Client, arrivals: Arc<Arrivals>) -> Self {
        FeedHandle { client, arrivals }
    }

    /// The connection's [`Client`]: `send`, `request`, `events`, `state`,
    /// `stats`, `close` and `closed` work as in the spawned mode (answered
    /// when the feed is polled). Subscriptions made through it directly are
    /// separate [`Subscription`] streams, not items of the feed.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Subscribes to `topic`; its items come out of the feed. Resolves at the
    /// venue's acknowledgement with the subscription's durable client id.
    ///
    /// # Errors
    ///
    /// As [`Client::subscribe`]. A refused subscription also yields its error
    /// as the last item of its client id in the feed.
    pub async fn subscribe(&self, topic: Topic) -> Result<ClientId, Error> {
        let mut results = self.subscribe_many(vec![topic]).await?;
        results.pop().unwrap_or(Err(Error::ClientClosed))
    }

    /// Subscribes to several topics at once (batched where the protocol
    /// allows, as [`Client::subscribe_many`]).
    ///
    /// # Errors
    ///
    /// As [`Client::subscribe_many`].
    pub async fn subscribe_many(
        &self,
        topics: Vec<Topic>,
    ) -> Result<Vec<Result<ClientId, Error>>, Error> {
        self.subscribe_many_with(topics, QueueOptions::default())
            .await
    }

    /// [`subscribe_many`](Self::subscribe_many) with queue settings: each
    /// subscription keeps its own bounded queue and overflow policy inside the
    /// feed (the feed yields from them round-robin).
    ///
    /// # Errors
    ///
    /// As [`Client::subscribe_many`], plus [`Error::Config`] for a zero capacity.
    pub async fn subscribe_many_with(
        &self,
        topics: Vec<Topic>,
        options: QueueOptions,
    ) -> Result<Vec<Result<ClientId, Error>>, Error> {
        let Prepared { pending, new } = self.client.prepare(topics, options)?;
        let mut waiting = Vec::with_capacity(pending.len());
        for (subscription, ready) in pending {
            waiting.push((subscription.client_id(), ready));
            self.arrivals.push(subscription);
        }
        self.client.command(Command::Subscribe(new)).await?;
        let mut results = Vec::with_capacity(waiting.len());
        for (client_id, ready) in waiting {
            results.push(match ready.await {
                Ok(Ok(())) => Ok(client_id),
                Ok(Err(error)) => Err(error),
                Err(_) => Err(self.client.terminal_error()),
            });
        }
        Ok(results)
    }

    /// Ends the subscription `client_id`: the feed yields what it had
    /// already queued, then nothing more for it.
    ///
    /// # Errors
    ///
    /// The terminal error if the feed has finished.
    pub async fn unsubscribe(&self, client_id: ClientId) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.client
            .command(Command::Unsubscribe {
                client_id,
                reply: Some(reply),
            })
            .await?;
        rx.await
            .unwrap_or_else(|_| Err(self.client.terminal_error()))
    }

    /// Asks the feed to close (Close 1000, then the items already received,
    /// then the end of the stream); returns once the request is queued, not
    /// when the feed has finished ([`Client::close`] on
    /// [`client`](Self::client) waits for that, and so needs the feed polled
    /// meanwhile).
    pub async fn close(&self) {
        // A closed channel means the feed has finished already.
        let _ = self.client.command(Command::Close).await;
    }
}
