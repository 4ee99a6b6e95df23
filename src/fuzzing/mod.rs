//! The library's side of fuzzing: the entry points the harnesses in
//! `testkit/` (crate `resilient-ws-testkit`) need to reach internal types.
//!
//! Behind the `fuzzing` feature and hidden from the docs: not a stable API,
//! nothing here is for users. The harnesses, the independent models they
//! compare against and the corpus replay live in `testkit/`, outside the
//! library (as rustls keeps rustls-test); the fuzz targets in `fuzz/` call
//! them. What stays here is only what cannot be reached from outside:
//! re-exports of internal types whose behaviour a harness checks directly
//! (a book without its adapter, a protocol's routing types).
//!
//! `session_script` still lives here, with the models it needs: it drives
//! `supervisor/drive.rs` and reads the core's registry, queues and counters
//! directly (see its module docs), so moving it out means exposing most of
//! the session core. [`SessionEnds`](crate::fuzzing::SessionEnds) is the one small exception: a session
//! core reduced to how a session ends, for `reconnect_script`.

use crate::protocol::{Inbound, Kalshi, Kraken};

mod model;
mod session_ends;
mod session_script;

pub use self::session_ends::SessionEnds;
pub use self::session_script::session_script;

/// Kalshi: the fast path's answer, or `None` when it leaves the frame to
/// serde (harness `envelope_scan`).
pub fn kalshi_classify_fast(text: &str) -> Option<Inbound<'_>> {
    Kalshi::classify_fast(text)
}

/// Kalshi: the serde path's answer, the reference the fast path must equal.
pub fn kalshi_classify_reference(text: &str) -> Inbound<'_> {
    Kalshi::classify_serde(text)
}

/// Kraken: the fast path's answer, or `None` when it leaves the frame to
/// serde (harness `envelope_scan`).
pub fn kraken_classify_fast<'a>(kraken: &mut Kraken, text: &'a str) -> Option<Inbound<'a>> {
    kraken.classify_fast(text)
}

/// Kraken: the serde path's answer, the reference the fast path must equal.
pub fn kraken_classify_reference<'a>(kraken: &mut Kraken, text: &'a str) -> Inbound<'a> {
    kraken.classify_serde(text)
}

/// Where a part of a frame's text sits in it: the scanner under each
/// adapter's `venue_time` (harness `venue_time`).
pub use crate::message::span_of;
/// The Kalshi order book on its own, without the adapter (harness `kalshi_book`).
pub use crate::protocol::kalshi::book::{KalshiBook, KalshiBookError, Outcome};
/// The OKX books of one connection and one book frame as the adapter parsed
/// it (harness `okx_book`: drops, WebSocket and REST snapshots, checksums).
pub use crate::protocol::okx::book::{BookFrame, Books};
/// The WEEX depth book on its own, with a small cap (harness `weex_book`).
pub use crate::protocol::weex::book::DepthBook;
/// How a session ended, as the session core reports it (harness
/// `reconnect_script`, through [`SessionEnds`](crate::fuzzing::SessionEnds)).
pub use crate::session::SessionEnd;
/// The reconnect machine: attempt numbers, delays, give-up (harness
/// `reconnect_script`, against its model).
pub use crate::supervisor::reconnect::machine::{After, ReconnectMachine};
