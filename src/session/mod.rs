//! The session core: every decision about a connection, as plain data.
//!
//! The supervisor task is split the way hyper splits HTTP/1 (connection state
//! apart from the poll loop) and quinn-proto and h2 split their protocols
//! ("sans-I/O"): [`SessionCore`] decides, the async shell in
//! `supervisor/shell.rs` does the I/O.
//!
//! The core owns the registry, the protocol adapter, request ids and their
//! deadlines, the liveness timers, the outbound queue with its rate limiter and
//! the venue's subscribe-operations window, the
//! memory of abandoned subscribes, resync decisions, routing and accounting. It
//! has no `async`, no socket, no channel and no clock of its own: every input
//! carries `now`. Its inputs are
//!
//! - a frame read from the socket ([`SessionCore::on_message`]) or the way the
//!   socket ended ([`SessionCore::on_read_error`], [`SessionCore::on_stream_end`]);
//! - a command from a handle (`subscribe`, `unsubscribe`, `send`, `request`, `close`);
//! - a tick at `now` ([`SessionCore::on_tick`]), due at [`SessionCore::next_timer`];
//! - "this frame was written" or "writing it failed" ([`SessionCore::on_written`]);
//! - "the consumer made room" or "it did not in time" for a full `Block` queue;
//! - "connected" and "the connection is gone" ([`SessionCore::on_connected`],
//!   [`SessionCore::on_disconnected`]).
//!
//! Its outputs are the frames to write ([`SessionCore::take_write`], paced by
//! the rate limit), the [`Action`]s queued for the shell (emit an event, answer
//! a caller, change the state), a queue to wait on while a `Block` queue is
//! full ([`SessionCore::blocked_on`]), and a [`SessionEnd`] when the session must
//! stop. Deliveries go straight into the subscriptions' [`Queue`](crate::queue::Queue)s,
//! which are plain data too (a mutex, counters and a waker).
//!
//! Nothing calls these inputs but `supervisor/drive.rs`: the shells, replay,
//! the fuzzer (`session_script`) and the unit tests here (`tests.rs`) all go
//! through its `Drive`, which applies the actions after every input, so what
//! is tested is what runs, driven by the rules that run. The turmoil
//! simulation runs the real client around it. Files: `core.rs` is what happens to
//! one inbound frame, top to bottom; `backpressure.rs` what happens when that
//! frame meets a full `Block` queue; `commands.rs` what handles ask for;
//! `link/` the per-connection state: writes (`mod.rs`), the outbound queue
//! and its two limiters (`outbound.rs`), pings, idle watch and deadlines
//! (`timers.rs`).

mod backpressure;
mod commands;
#[allow(clippy::module_inception)]
mod core;
mod deadline;
mod link;
mod output;
mod rate_limit;

pub(crate) use self::core::SessionCore;
pub(crate) use self::link::{WriteFailure, Written};
pub(crate) use self::output::{Action, SessionEnd};

#[cfg(test)]
mod tests;
