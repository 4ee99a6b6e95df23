//! Lifecycle events and the connection state, for observability.
//!
//! Events are broadcast (bounded): a slow reader does not slow the connection,
//! it sees [`Event::Lagged`] instead. The state is a `watch`, so readers always
//! see the latest value.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use crate::error::{Error, ProtocolError};
use crate::protocol::ServerId;
use crate::queue::Overflow;
use crate::subscription::ClientId;

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// An attempt is under way.
    Connecting,
    /// Connected; frames flow.
    Connected,
    /// Waiting out a backoff delay before the next attempt.
    Backoff,
    /// `close()` was called; the close handshake is under way.
    Closing,
    /// Finished, cleanly or with the terminal error.
    Closed,
}

/// Something that happened to the connection or a subscription.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// Attempt number `attempt` (1-based) started.
    Connecting {
        /// Attempt number since the last healthy connection.
        attempt: u32,
    },
    /// The WebSocket handshake succeeded.
    Connected {
        /// The attempt that succeeded.
        attempt: u32,
    },
    /// A connection attempt failed (token source, connect, TLS or handshake);
    /// the next one follows the backoff.
    AttemptFailed {
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        error: Error,
    },
    /// The connection was lost (not by `close()`).
    Disconnected {
        /// Why.
        cause: Error,
    },
    /// The next attempt will start after `delay`.
    ReconnectScheduled {
        /// The attempt that will be made.
        attempt: u32,
        /// The jittered delay.
        delay: Duration,
    },
    /// A subscription was acknowledged for the first time.
    Subscribed {
        /// Its durable id.
        client_id: ClientId,
        /// The server id it got.
        server_id: ServerId,
    },
    /// A subscription was acknowledged again (after a reconnect or resync).
    Resubscribed {
        /// Its durable id.
        client_id: ClientId,
        /// The new server id.
        server_id: ServerId,
    },
    /// A subscription ended (unsubscribed, rejected, timed out, backpressure).
    SubscriptionEnded {
        /// Its durable id.
        client_id: ClientId,
        /// The error it ended with, `None` for an unsubscribe.
        error: Option<Error>,
    },
    /// Sequence numbers were skipped on a subscription.
    Gap {
        /// Its durable id.
        client_id: ClientId,
        /// Last seen.
        last_seq: u64,
        /// Arrived.
        next_seq: u64,
    },
    /// A subscription's sequence went backwards.
    SequenceReset {
        /// Its durable id.
        client_id: ClientId,
        /// Last seen.
        last_seq: u64,
        /// Arrived.
        next_seq: u64,
    },
    /// A subscription's book broke (see [`Update::BookBreak`](crate::Update::BookBreak));
    /// that subscription is resynced.
    BookBreak {
        /// Its durable id.
        client_id: ClientId,
        /// Which break.
        kind: crate::book::BookBreak,
    },
    /// A queue started dropping messages (one event per episode, not per message).
    Overflow {
        /// The subscription, or `None` for the inbound stream.
        client_id: Option<ClientId>,
        /// The queue's policy.
        policy: Overflow,
    },
    /// A frame could not be classified; it was counted as unroutable and skipped.
    InvalidFrame {
        /// What was wrong.
        error: ProtocolError,
    },
    /// The first frame of a kind this connection could not place: a message
    /// type the adapter does not know, data for no subscription, or data the
    /// adapter names but sends to the inbound stream. Reported once per kind
    /// for the life of the client, so a venue that starts sending something
    /// new is seen at once instead of as a silent stream; every frame of the
    /// kind is counted in [`Client::unplaced`](crate::Client::unplaced) (and
    /// the `resilient_ws_unplaced_total{kind}` metric). The kind is the
    /// venue's own name for the message (Kraken's `channel` or `method`),
    /// cut to [`MAX_KIND_BYTES`](crate::MAX_KIND_BYTES); past
    /// [`MAX_KINDS`](crate::MAX_KINDS) kinds, the rest are counted
    /// together under [`OTHER_KINDS`](crate::OTHER_KINDS) (a peer
    /// chooses the names).
    UnknownMessage {
        /// The venue's name for the frame's type.
        kind: String,
        /// Where the frame went.
        fate: Unplaced,
    },
    /// A subscription whose channel has a
    /// [`stale_after`](crate::ConfigBuilder::stale_after) expectation received
    /// nothing for at least that long. Reported once per silent period: again
    /// only after data has resumed and stopped again.
    Stale {
        /// Its durable id.
        client_id: ClientId,
        /// Its channel.
        channel: String,
        /// How long it has been silent (at least the expectation; the watch
        /// looks every quarter of it, so at most a quarter more).
        silent_for: Duration,
    },
    /// The client finished. `error` is the terminal error, `None` after `close()`.
    Closed {
        /// The terminal error.
        error: Option<Error>,
    },
    /// This reader fell behind and missed `missed` events.
    Lagged {
        /// How many events were skipped.
        missed: u64,
    },
}

/// What became of a frame the adapter could not place (see
/// [`Event::UnknownMessage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unplaced {
    /// The adapter does not know the message type
    /// ([`Inbound::Unknown`](crate::protocol::Inbound::Unknown)); counted
    /// unroutable and skipped.
    UnknownType,
    /// Data for a subscription this connection does not hold (a channel
    /// nobody subscribed, or a stray frame of one that just ended); counted
    /// unroutable and skipped.
    Unroutable,
    /// Data the adapter named but routed to no subscription; it went to the
    /// client's inbound stream.
    Unsolicited,
}

/// A stream of [`Event`]s, from [`Client::events`](crate::Client::events).
pub struct Events {
    inner: BroadcastStream<Event>,
}

impl Events {
    pub(crate) fn new(receiver: tokio::sync::broadcast::Receiver<Event>) -> Self {
        Events {
            inner: BroadcastStream::new(receiver),
        }
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        Pin::new(&mut self.inner).poll_next(cx).map(|item| {
            item.map(|result| match result {
                Ok(event) => event,
                Err(BroadcastStreamRecvError::Lagged(missed)) => Event::Lagged { missed },
            })
        })
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}
