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
//! has no `async`, no socket, no channel, no transport error type and no clock
//! of its own: every input carries `now` (the connect the wall clock too).
//! Which inputs exist, what to call after each and what each output obliges
//! the driver to do is written on the type: [`SessionCore`]'s calling
//! contract. Deliveries go straight into the subscriptions'
//! [`Queue`](crate::queue::Queue)s, which are plain data too (a mutex,
//! counters and a waker).
//!
//! Nothing calls these inputs but `supervisor/drive.rs`: the shells, replay,
//! the fuzzer (`session_script`) and the unit tests here (`tests.rs`) all go
//! through its `Drive`, so what is tested is what runs, driven by the rules
//! that run; the turmoil simulation runs the real client around it.
//!
//! Files: `core.rs` is the type, its calling contract, the inputs that
//! coordinate its sub-states and what happens to one inbound frame, top to
//! bottom. Each sub-state owns its fields and its behaviour (one `impl` per
//! type) and never imports the core: `subscriptions.rs` the registry, the
//! protocol adapter and request ids, with what commands, refusals and
//! timeouts do to a subscription; `backpressure.rs` the message parked on a
//! full `Block` queue and the deliveries held behind it; `link/` the
//! per-connection state: writes and the connection's end (`mod.rs`), the
//! outbound queue and its two limiters (`outbound.rs`), every deadline in
//! one table (`timer_table.rs`), pings, idle watch and what a timeout fires
//! (`timers.rs`), silent subscriptions (`stale.rs`), requests in flight,
//! snapshot requests, resyncs and abandoned subscribes (`pending.rs`);
//! `receive_clock.rs` frames' receive times from the clocks the driver hands
//! in; `retry_hint.rs` how long a venue asked to wait;
//! `socket_failure.rs` why the socket failed, in the core's words (the shell
//! maps its transport's errors to it).

mod backpressure;
#[allow(clippy::module_inception)]
mod core;
mod deadline;
mod link;
mod output;
mod rate_limit;
mod receive_clock;
mod retry_hint;
mod socket_failure;
mod subscriptions;

pub(crate) use self::core::SessionCore;
pub(crate) use self::link::{WriteFailure, Written};
pub(crate) use self::output::Action;
pub use self::output::SessionEnd;
pub(crate) use self::socket_failure::SocketFailure;

#[cfg(test)]
mod tests;
