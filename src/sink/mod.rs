//! Sinks: where the items of a [`SubscriptionSet`](crate::SubscriptionSet) go
//! when a process publishes market data for others instead of consuming it.
//!
//! - [`subject`]: the subject of each item, `{prefix}.{venue}.{channel}.{instrument}`,
//!   with names made into safe tokens.
//! - [`identity`]: the message id of each update, built from the venue's own
//!   identity of it, so replicas of one shard publish the same ids and the bus
//!   stores each update once.
//! - `nats` (cargo feature `nats`): a NATS JetStream sink.
//!
//! Accounting rule, for every sink: every item taken from the set is counted
//! exactly once, as published, de-duplicated by the bus, dropped (with the
//! reason) or still buffered ([`SinkStats`]); items the set itself dropped are
//! in the set's own [`stats`](crate::SubscriptionSet::stats).

pub mod identity;
#[cfg(feature = "nats")]
pub mod nats;
pub mod subject;

/// What a sink did with the items it took from a set. At every moment
/// `received == published + deduplicated + dropped() + buffered`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkStats {
    /// Items (data and signals) taken from the set.
    pub received: u64,
    /// Of those, in-band signals (gap, reset, resubscribed, book break).
    pub signals: u64,
    /// Stored by the bus as new messages.
    pub published: u64,
    /// Acknowledged by the bus as duplicates of a message it already had
    /// (another replica's, or this sink's own retry of a message whose first
    /// acknowledgement was lost).
    pub deduplicated: u64,
    /// Dropped because the sink's buffer was full (its overflow policy).
    pub dropped_overflow: u64,
    /// Dropped because the message is larger than the buffer's byte bound or
    /// the server's maximum payload: it can never be published.
    pub dropped_too_large: u64,
    /// Still buffered when the sink stopped and its drain deadline passed.
    pub dropped_at_close: u64,
    /// Waiting: not yet sent, sent and awaiting the bus's acknowledgement, or
    /// waiting to be sent again.
    pub buffered: u64,
    /// Bytes of the buffered messages (payload, subject and headers).
    pub buffered_bytes: u64,
    /// Of the buffered, sent and awaiting acknowledgement.
    pub in_flight: u64,
    /// Publish attempts that failed (no acknowledgement in time, connection
    /// lost) and were retried with the same message id.
    pub retries: u64,
    /// Errors the set yielded (a member's notice or terminal error): not
    /// messages, not published.
    pub errors: u64,
    /// Connections made by the bus client (the first and every reconnect).
    pub connects: u64,
    /// Connections the bus client lost.
    pub disconnects: u64,
}

impl SinkStats {
    /// Every drop, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_overflow + self.dropped_too_large + self.dropped_at_close
    }

    /// Whether `received == published + deduplicated + dropped() + buffered`.
    pub fn balances(&self) -> bool {
        self.received == self.published + self.deduplicated + self.dropped() + self.buffered
    }
}

/// What a sink does when its buffer (bounded in count and bytes) is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SinkOverflow {
    /// Stop taking items from the set: its members' queues fill and each
    /// member's own [`Overflow`](crate::Overflow) policy applies (counted in
    /// the set's stats). The default.
    #[default]
    Backpressure,
    /// Drop the oldest message that is not awaiting an acknowledgement.
    DropOldest,
    /// Drop the arriving message.
    DropNewest,
}
