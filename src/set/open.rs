//! Opening a set: [`Client::subscribe_set`] and [`Pool::subscribe_set`].
//!
//! They are methods of the handles, but they live with the set: the set
//! imports the client and the pool (its `insert` subscribes through them), so
//! the handles do not import the set back.

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
    /// # Errors
    ///
    /// The first refusal or failure among the topics (the others are then
    /// unsubscribed), or as [`subscribe_many`](Client::subscribe_many).
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
        let results = self.subscribe_many_with(topics, options).await?;
        for result in results {
            set.adopt(result?)?;
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
    /// # Errors
    ///
    /// The first refusal or failure among the topics (the others are then
    /// unsubscribed), or as [`subscribe`](Pool::subscribe).
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
        for topic in topics {
            started.push(self.place(|client| client.start_subscribe(topic, options))?);
        }
        for result in futures::future::join_all(started).await {
            set.adopt(result?)?;
        }
        Ok(set)
    }
}
