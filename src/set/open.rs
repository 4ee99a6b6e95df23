//! Opening a set: [`Client::subscribe_set`] and [`Pool::subscribe_set`].
//!
//! They are methods of the handles, but they live with the set: the set
//! imports the client and the pool (its `insert` subscribes through them), so
//! the handles do not import the set back.
//!
//! A refusal stays with its topic: the others are members and stream, and
//! the refused topic becomes a member whose only item is its error (what a
//! subscription that ends yields anyway). Why not fail the whole set: one
//! delisted or misspelt symbol among 500 would otherwise unsubscribe the
//! other 499. Why an item rather than a second list beside the set: whoever
//! reads the set cannot miss it, and it names the topic exactly as data
//! items do.

use super::{Source, SubscriptionSet};
use crate::client::{Client, QueueOptions};
use crate::error::Error;
use crate::pool::Pool;
use crate::protocol::Topic;

impl Client {
    /// Subscribes to `topics` (batched where the protocol allows, as
    /// [`subscribe_many`](Client::subscribe_many)) and returns them as one
    /// [`SubscriptionSet`]: a single stream of items that each name their
    /// subscription, with members added and removed while streaming.
    ///
    /// **Refusals.** A topic the venue refuses (or that times out) does not
    /// fail the set: it is a member whose only item is its error
    /// ([`Error::Subscription`] with the venue's reason, [`Error::Timeout`],
    /// ...), with its topic and client id, after which it leaves the set.
    /// Every other topic streams as usual. Count the error items whose
    /// member never yielded data to know exactly which topics were refused.
    ///
    /// # Errors
    ///
    /// Only when nothing could be sent at all, as for
    /// [`subscribe_many`](Client::subscribe_many): bad options or a client
    /// that has finished.
    pub async fn subscribe_set(&self, topics: Vec<Topic>) -> Result<SubscriptionSet, Error> {
        self.subscribe_set_with(topics, QueueOptions::default())
            .await
    }

    /// Like [`subscribe_set`](Client::subscribe_set) with queue settings that
    /// apply to each member (each member has its own queue).
    ///
    /// # Errors
    ///
    /// As [`subscribe_set`](Client::subscribe_set), plus [`Error::Config`]
    /// for a zero capacity.
    pub async fn subscribe_set_with(
        &self,
        topics: Vec<Topic>,
        options: QueueOptions,
    ) -> Result<SubscriptionSet, Error> {
        let mut set = SubscriptionSet::new(Source::Client(self.clone()), options);
        if topics.is_empty() {
            // An empty set to fill with `insert` or `adopt`; nothing to send.
            return Ok(set);
        }
        // The answers come back in the order of `topics`; a refused one has
        // no subscription left to read its topic from.
        let names = topics.clone();
        let answers = self.subscribe_answers(topics, options).await?;
        for (topic, (client_id, result)) in names.into_iter().zip(answers) {
            match result {
                Ok(subscription) => {
                    set.adopt(subscription)?;
                }
                Err(error) => {
                    set.adopt_refused(client_id, topic, error);
                }
            }
        }
        Ok(set)
    }
}

impl Pool {
    /// Subscribes to `topics`, each placed as by [`subscribe`](Pool::subscribe)
    /// (so they may spread over several connections), and returns them as one
    /// [`SubscriptionSet`]: a single stream whose items name their
    /// subscription, whichever connection carries it. The set's
    /// [`insert`](SubscriptionSet::insert) places new topics through the pool.
    ///
    /// **Refusals** stay with their topic, as for
    /// [`Client::subscribe_set`]: a topic the venue refuses, that times out,
    /// whose connection finished before answering, or that finds every
    /// allowed connection full ([`Error::Config`]) is a member whose only
    /// item is that error; the others stream.
    ///
    /// # Errors
    ///
    /// Only when nothing could be sent at all: bad options, or
    /// [`Error::ClientClosed`] after [`close`](Pool::close).
    pub async fn subscribe_set(&self, topics: Vec<Topic>) -> Result<SubscriptionSet, Error> {
        self.subscribe_set_with(topics, QueueOptions::default())
            .await
    }

    /// Like [`subscribe_set`](Pool::subscribe_set) with queue settings that
    /// apply to each member.
    ///
    /// # Errors
    ///
    /// As [`subscribe_set`](Pool::subscribe_set).
    pub async fn subscribe_set_with(
        &self,
        topics: Vec<Topic>,
        options: QueueOptions,
    ) -> Result<SubscriptionSet, Error> {
        let mut set = SubscriptionSet::new(Source::Pool(self.clone()), options);
        // Every topic is placed, and its handle made, before the first
        // `.await`: if this future is dropped midway, each handle's `Drop`
        // unsubscribes its topic.
        let mut started = Vec::with_capacity(topics.len());
        let mut placed = Vec::with_capacity(topics.len());
        for topic in topics {
            match self.place(|client| client.start_subscribe_answer(topic.clone(), options)) {
                Ok(start) => {
                    started.push(start?);
                    placed.push((topic, None));
                }
                Err(Error::ClientClosed) => return Err(Error::ClientClosed),
                // No connection took it (every allowed one is full), so it
                // has no client id yet: it gets one from the pool's counter.
                Err(not_placed) => placed.push((topic, Some((self.next_client_id(), not_placed)))),
            }
        }
        // Members join in the order of `topics`.
        let mut answers = futures::future::join_all(started).await.into_iter();
        for (topic, not_placed) in placed {
            let (client_id, result) = match not_placed {
                Some((client_id, error)) => (client_id, Err(error)),
                None => answers
                    .next()
                    .unwrap_or((self.next_client_id(), Err(Error::ClientClosed))),
            };
            match result {
                Ok(subscription) => {
                    set.adopt(subscription)?;
                }
                Err(error) => {
                    set.adopt_refused(client_id, topic, error);
                }
            }
        }
        Ok(set)
    }
}
