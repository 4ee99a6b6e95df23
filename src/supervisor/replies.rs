//! The callers waiting for an answer, and the one place the core's
//! [`Action`]s turn into channel sends.
//!
//! The session core has no channels: it says "answer the caller of subscribe
//! 7 with Ok" and this module finds that caller's oneshot. Keeping the
//! senders here is what lets the fuzzer drive the core without a runtime.

use std::collections::HashMap;

use tokio::sync::oneshot;

use super::shared::Shared;
use crate::command::Command;
use crate::error::Error;
use crate::message::Frame;
use crate::session::{Action, SessionCore};
use crate::subscription::{ClientId, ReqId};

/// Oneshot senders by what the core calls them.
#[derive(Default)]
pub(super) struct Replies {
    subscribes: HashMap<ClientId, oneshot::Sender<Result<(), Error>>>,
    requests: HashMap<ReqId, oneshot::Sender<Result<Frame, Error>>>,
    sends: HashMap<u64, oneshot::Sender<Result<(), Error>>>,
    next_send_id: u64,
}

/// What serving one command asks of the caller.
pub(super) enum Served {
    /// Handled; go on.
    Done,
    /// Close was requested, or every handle is gone.
    Close,
}

impl Replies {
    /// Hands `command` to the core, keeping its reply channel until the core
    /// answers it.
    pub(super) fn serve<P: crate::protocol::Protocol>(
        &mut self,
        command: Option<Command>,
        core: &mut SessionCore<P>,
        now: tokio::time::Instant,
    ) -> Served {
        let Some(command) = command else {
            return Served::Close;
        };
        match command {
            Command::Subscribe(subs) => {
                let hub = subs
                    .first()
                    .map(|sub| std::sync::Arc::clone(sub.in_flight.hub()));
                let mut new = Vec::with_capacity(subs.len());
                let mut in_flight = Vec::with_capacity(subs.len());
                for sub in subs {
                    self.subscribes.insert(sub.client_id, sub.ready);
                    new.push((sub.client_id, sub.topic, sub.queue));
                    in_flight.push(sub.in_flight);
                }
                // A pool reads registered + in flight: under the handover lock
                // it never sees them counted in both, or in neither.
                let handover = hub.as_ref().map(|hub| hub.handover());
                core.subscribe(new, now);
                // Only now: the core has counted them as registered.
                drop(in_flight);
                drop(handover);
            }
            Command::Unsubscribe { client_id, reply } => {
                core.unsubscribe(client_id, now);
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
            }
            Command::Send {
                message,
                rate_limited,
                reply,
            } => {
                let send_id = self.next_send_id;
                self.next_send_id = self.next_send_id.wrapping_add(1);
                self.sends.insert(send_id, reply);
                core.send(send_id, message, rate_limited, now);
            }
            Command::Request { request, reply } => match core.request(&request, now) {
                Ok(req_id) => {
                    self.requests.insert(req_id, reply);
                }
                Err(error) => {
                    let _ = reply.send(Err(error));
                }
            },
            Command::Close => return Served::Close,
        }
        Served::Done
    }

    /// Carries out what the core asked for, in order.
    pub(super) fn apply<P: crate::protocol::Protocol>(
        &mut self,
        core: &mut SessionCore<P>,
        shared: &Shared,
    ) {
        // The core's gauges are already current (it keeps them inside each
        // input), so a caller that sees its subscribe answered also sees it
        // counted (the pool places by them).
        while let Some(action) = core.poll_action() {
            match action {
                Action::Emit(event) => shared.emit(event),
                Action::SetState(state) => {
                    shared.set_state(state);
                }
                Action::SubscribeResult { client_id, result } => {
                    if let Some(reply) = self.subscribes.remove(&client_id) {
                        let _ = reply.send(result);
                    }
                }
                Action::RequestResult { req_id, result } => {
                    if let Some(reply) = self.requests.remove(&req_id) {
                        let _ = reply.send(result);
                    }
                }
                Action::SendResult { send_id, result } => {
                    if let Some(reply) = self.sends.remove(&send_id) {
                        let _ = reply.send(result);
                    }
                }
            }
        }
    }

    /// The client is finishing: every caller still waiting gets `error`.
    pub(super) fn fail_all(&mut self, error: &Error) {
        for (_, reply) in self.subscribes.drain() {
            let _ = reply.send(Err(error.clone()));
        }
        for (_, reply) in self.requests.drain() {
            let _ = reply.send(Err(error.clone()));
        }
        for (_, reply) in self.sends.drain() {
            let _ = reply.send(Err(error.clone()));
        }
    }
}
