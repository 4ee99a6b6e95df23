//! What the session core hands its driver besides frames to write: the
//! [`Action`]s only the shell can do, and how a session ended
//! ([`SessionEnd`]).
//!
//! A file of its own so the core's parts (`core.rs`, `subscriptions.rs`, `link/`)
//! import these from below, never from the module that re-exports them.

use crate::error::Error;
use crate::events::{ConnectionState, Event};
use crate::message::Frame;
use crate::subscription::{ClientId, ReqId};

/// How one connected session ended.
#[derive(Debug, Clone)]
pub enum SessionEnd {
    /// Closed on request (or every handle is gone).
    Closed,
    /// Lost; reconnect with backoff.
    Lost(Error),
    /// Lost for good (a permanent close code).
    Fatal(Error),
}

impl SessionEnd {
    /// The error callers waiting on this session get.
    pub(crate) fn error(&self) -> Error {
        match self {
            SessionEnd::Lost(e) | SessionEnd::Fatal(e) => e.clone(),
            SessionEnd::Closed => Error::ClientClosed,
        }
    }
}

/// Something only the shell can do: the core has no channels and no tasks.
#[derive(Debug)]
pub(crate) enum Action {
    /// Publish a lifecycle event.
    Emit(Event),
    /// Publish a new connection state.
    SetState(ConnectionState),
    /// Answer the caller of `subscribe` for this subscription (first ack or failure).
    SubscribeResult {
        /// The subscription.
        client_id: ClientId,
        /// `Ok` at the first ack, else why it failed.
        result: Result<(), Error>,
    },
    /// Answer the caller of `request` that waits on `req_id`.
    RequestResult {
        /// The request id the protocol put on the wire.
        req_id: ReqId,
        /// The response frame, or why there is none.
        result: Result<Frame, Error>,
    },
    /// Answer the caller of `send` whose frame was `send_id`.
    SendResult {
        /// The id the shell gave the send.
        send_id: u64,
        /// `Ok` once written.
        result: Result<(), Error>,
    },
}
