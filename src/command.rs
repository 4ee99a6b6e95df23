//! What a handle sends to whichever shell drives its connection (the
//! spawned supervisor or the consumer's [`Feed`](crate::Feed)).
//!
//! A file of its own, below both: the handles (`client.rs`, `stream.rs`)
//! send these and the shells serve them (`supervisor/replies.rs`), so neither
//! side imports the other for the message type. Every command that waits for
//! an answer carries its own oneshot reply channel (the actor pattern).

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::error::Error;
use crate::message::Frame;
use crate::protocol::{Request, Topic};
use crate::queue::Queue;
use crate::stats::InFlight;
use crate::subscription::ClientId;

/// A message from a handle to the shell that drives its connection.
pub enum Command {
    /// Register subscriptions; each `ready` resolves at its first ack or failure.
    Subscribe(Vec<NewSubscription>),
    /// End a subscription. `reply` is `None` when sent from `Drop`.
    Unsubscribe {
        /// The subscription to end.
        client_id: ClientId,
        /// Answered once it is ended (`None`: nobody waits).
        reply: Option<oneshot::Sender<Result<(), Error>>>,
    },
    /// Send a one-off frame (never replayed on another connection).
    Send {
        /// The frame to write.
        message: tungstenite::Message,
        /// Whether it spends the outbound rate limit's budget.
        rate_limited: bool,
        /// Answered once it is written or has failed.
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// Send a request and wait for the response with its request id.
    Request {
        /// What to ask.
        request: Request,
        /// Answered with the response, or the failure.
        reply: oneshot::Sender<Result<Frame, Error>>,
    },
    /// Close the connection cleanly and end the task.
    Close,
}

/// A subscription a handle asks for, with the queue its stream reads.
pub struct NewSubscription {
    /// The id the handle's stream keeps across reconnects.
    pub(crate) client_id: ClientId,
    /// What to subscribe to.
    pub(crate) topic: Topic,
    /// The stream's queue, filled by the session core.
    pub(crate) queue: Arc<Queue>,
    /// Answered at the first ack or failure.
    pub(crate) ready: oneshot::Sender<Result<(), Error>>,
    /// Counts it as in flight until the core has registered it.
    pub(crate) in_flight: InFlight,
}
