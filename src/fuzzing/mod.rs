//! The library's side of fuzzing: the entry points the harnesses in
//! `testkit/` (crate `resilient-ws-testkit`) need to reach internal types.
//!
//! Behind the `fuzzing` feature and hidden from the docs: not a stable API,
//! nothing here is for users. The harnesses, the independent models they
//! compare against and the corpus replay live in `testkit/`, outside the
//! library (as rustls keeps rustls-test); the fuzz targets in `fuzz/` call
//! them. What stays here is only what cannot be reached from outside:
//! re-exports of internal types whose behaviour a harness checks directly
//! (a book without its adapter, a protocol's routing types), and small
//! functions that build or read what a harness cannot reach otherwise.
//!
//! The session core is reached only through its
//! [`Drive`](crate::fuzzing::Drive), the one set of driving rules every shell
//! follows: `session_script` builds a client's core with
//! [`unspawned`](crate::fuzzing::unspawned) and hands every input to the
//! drive's methods, then reads the [`registry`](crate::fuzzing::registry)
//! and the [`stats`](crate::fuzzing::stats) to compare them with its model
//! (`session_drive.rs` has these builders and readers).
//! [`SessionEnds`](crate::fuzzing::SessionEnds) is a session core reduced to
//! how a session ends, for `reconnect_script`.

use crate::protocol::scan::{Cursor, Kind};
use crate::protocol::{Inbound, Kalshi, Kraken};

mod session_drive;
mod session_ends;
mod ws_stream;

pub use self::session_drive::{
    client_id, end_error, new_subscription, registry, stats, unspawned, Unspawned,
};
pub use self::session_ends::SessionEnds;
pub use self::ws_stream::{bridged_ws, BridgedWs};

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

/// The envelope scanner's reading of the value at the start of `text`
/// (whitespace first), through the cursor the venue fast paths use (harness
/// `scan_skip`): the offset past it and its kind (`"str"`, `"escaped_str"`,
/// `"uint"`, `"num"`, `"null"`, `"bool"`, `"container"`), or `None`.
pub fn scan_value(text: &str) -> Option<(usize, &'static str)> {
    let mut cursor = Cursor::new(text);
    let value = cursor.value()?;
    let kind = match value.kind {
        Kind::Str { plain: true } => "str",
        Kind::Str { plain: false } => "escaped_str",
        Kind::Num { uint: true } => "uint",
        Kind::Num { uint: false } => "num",
        Kind::Null => "null",
        Kind::Bool => "bool",
        Kind::Container => "container",
    };
    Some((cursor.offset(), kind))
}

/// As [`scan_value`], the value only skipped: the offset past it.
pub fn scan_skip_value(text: &str) -> Option<usize> {
    let mut cursor = Cursor::new(text);
    cursor.skip_value()?;
    Some(cursor.offset())
}

/// As [`scan_value`], the value read as a `u64` (`None` for anything else):
/// the offset past it and the number.
pub fn scan_uint(text: &str) -> Option<(usize, u64)> {
    let mut cursor = Cursor::new(text);
    let number = cursor.uint()?;
    Some((cursor.offset(), number))
}

/// As [`scan_value`], the value read as a string without escapes (`None`
/// for anything else): the offset past it and its content, read both as
/// text and as bytes.
pub fn scan_plain_str(text: &str) -> Option<(usize, &str)> {
    let mut as_text = Cursor::new(text);
    let content = as_text.plain_str()?;
    let mut as_bytes = Cursor::new(text);
    assert_eq!(as_bytes.plain_bytes(), Some(content.as_bytes()));
    assert_eq!(as_bytes.offset(), as_text.offset());
    Some((as_text.offset(), content))
}

/// The keys of the object at the start of `text`, walked member by member
/// as the venue fast paths walk an envelope (each value skipped): `None`
/// when it is not a valid object or a key has escapes.
pub fn scan_keys(text: &str) -> Option<(usize, Vec<&[u8]>)> {
    let mut cursor = Cursor::new(text);
    let mut members = cursor.begin_object()?;
    let mut keys = Vec::new();
    while let Some(key) = cursor.next_key(&mut members)? {
        keys.push(key);
        cursor.skip_value()?;
    }
    Some((cursor.offset(), keys))
}

/// What a handle sends the drive, and one new subscription in it (harness
/// `session_script`; build one with
/// [`new_subscription`](crate::fuzzing::new_subscription)).
pub use crate::command::{Command, NewSubscription};
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
/// A subscription's queue: the harness reads it as the stream's consumer does.
pub use crate::queue::Queue;
/// How a session ended, as the session core reports it (harness
/// `reconnect_script`, through [`SessionEnds`](crate::fuzzing::SessionEnds)).
pub use crate::session::SessionEnd;
/// The registry the core keeps and what the harness reads of it (harness
/// `session_script`, against its model); its models speak the registry's
/// verdicts (`Route`, `SeqCheck`) and batch as an adapter does
/// (`ProtocolBatching`).
pub use crate::subscription::{Phase, ProtocolBatching, Registry, ReqId, Route, SeqCheck};
/// The one driver of the session core, with what its methods take and
/// return (harness `session_script`): what a shell waits for next, how a
/// write ended, how many buffered frames it may hand in per wake-up.
pub use crate::supervisor::drive::{Drive, Turn, WriteOutcome, READ_BATCH};
/// The reconnect machine: attempt numbers, delays, give-up (harness
/// `reconnect_script`, against its model).
pub use crate::supervisor::reconnect::machine::{After, ReconnectMachine};
