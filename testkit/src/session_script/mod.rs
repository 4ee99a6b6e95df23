//! `session_script`: the real `SessionCore` driven by a fuzzer-chosen
//! script, step for step against the independent model in `model/session.rs`.
//!
//! The harness is one more shell of `supervisor/drive.rs`: the core, its
//! callers and the shared state are built as `Client::unspawned` builds them,
//! and every input goes through the same [`Drive`](resilient_ws::fuzzing::Drive)
//! methods the spawned shell and the feed call. The script picks what the
//! world does: frames in the line protocol of `wire.rs`, commands sent as
//! real [`Command`](resilient_ws::fuzzing::Command)s with reply channels, time
//! passing, writes and write failures, consumers that read or drop their
//! streams. What the harness may do next is what [`Drive::next_turn`](resilient_ws::fuzzing::Drive::next_turn)
//! allows: nothing is read, written or commanded while a `Block` queue is
//! full (only the consumer side moves); due frames are written before a
//! command or a tick; frames are read on a turn that waits or from the
//! socket's buffer after the last input; the timer fires only once it is
//! due; a session that ends is reported back with `disconnected` (then
//! `finish` when it ended for good). Callers and events are read where a
//! user reads them: the reply channels and the events channel.
//!
//! After every step it checks: the registry against the model (phases,
//! server ids, acked-once, last sequence numbers, pending requests, stash),
//! the route of every server id ever seen (no stale id routes), every queue's
//! counters against the model (`routed = delivered + dropped + queued`), the
//! core's counters (frames in, control, unroutable, stashed, duplicates, gaps,
//! checksums, resubscribes), that every data frame a consumer reads is the one
//! the model queued for it, in order, and that every caller and event the
//! core produced is the one the model expected, each caller answered once.

mod check;
mod harness;
mod wire;

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};

use self::harness::Harness;
use resilient_ws::Overflow;

/// Longest script run (steps past it are ignored), to bound one execution.
const MAX_STEPS: usize = 400;
const CHANNELS: [&str; 3] = ["ticker", "book", "trade"];
const SYMBOLS: [&str; 3] = ["BTC/USD", "ETH/USD", "SOL/USD"];
const CLOSE_CODES: [u16; 6] = [1000, 1001, 1008, 1011, 1013, 4001];

/// A session script: settings, then events in order.
#[derive(Arbitrary, Debug)]
struct Script {
    /// Topics of one channel share a subscribe request.
    batch: bool,
    /// Stash capacity, `% 4 + 1`.
    stash_capacity: u8,
    /// Stash byte budget: 0 unbounded, else `n % 8 * 16 + 8` bytes.
    stash_bytes: u8,
    resync_on_gap: bool,
    /// The client has a token source (an expired session reconnects).
    token_source: bool,
    /// Application-level pings instead of WebSocket pings.
    app_ping: bool,
    /// Ping every 2 s instead of (practically) never.
    pings: bool,
    /// Request timeout, `% 4 + 1` seconds.
    request_timeout: u8,
    /// Rate limit: 0 generous, else `n % 4 + 1` frames per second.
    rate: u8,
    /// Inbound stream capacity and policy (as for a subscription).
    inbound_capacity: u8,
    inbound_policy: u8,
    steps: Vec<Step>,
}

/// One event of a session script.
#[derive(Arbitrary, Debug)]
enum Step {
    /// A connection comes up (after a drop, if one is up).
    Connect,
    /// The peer ends the stream without a close frame.
    Drop,
    /// `count % 3 + 1` subscriptions on one channel (one command).
    Subscribe {
        channel: u8,
        symbol: u8,
        count: u8,
        capacity: u8,
        policy: u8,
    },
    /// A handle unsubscribes.
    Unsubscribe { pick: u8 },
    /// A one-off send.
    Send,
    /// A one-off request.
    Request,
    /// The user closes the client.
    Close,
    /// The venue acknowledges a member of a subscribe request (255: none);
    /// `channel`/`symbol` `% 3`: not named, as subscribed, another one.
    Ack {
        req: u8,
        member: u8,
        sid: SidPick,
        channel: u8,
        symbol: u8,
        echo: bool,
    },
    /// The venue refuses a subscribe (naming a symbol or not).
    Reject {
        req: u8,
        symbol: Option<u8>,
        expired: bool,
    },
    /// The venue answers a one-off request.
    Response { req: u8, error: bool },
    /// A data frame.
    Data {
        sid: SidPick,
        seq: SeqPick,
        bad_checksum: bool,
    },
    /// Unsolicited data (the inbound stream).
    Unsolicited,
    /// Heartbeat, pong, status, unsubscribe ack, invalid text, WebSocket
    /// ping, WebSocket pong or a binary frame (`kind % 8`).
    Other { kind: u8 },
    /// The peer sends a close frame.
    ServerClose { code: u8 },
    /// The shell writes up to `count % 4 + 1` frames that are due.
    Write { count: u8 },
    /// Writing the next due frame fails (times out).
    WriteFail,
    /// Time passes (`ms` milliseconds) and the timers run.
    Tick { ms: u16 },
    /// A consumer (`pick` 0: the inbound stream) reads up to `max % 8 + 1` items.
    Read { pick: u8, max: u8 },
    /// A consumer drops its stream; `lost`: its unsubscribe never arrives.
    DropConsumer { pick: u8, lost: bool },
    /// While a `Block` queue is full: `ms` pass, then the block times out or
    /// (if the consumer made room) the core pushes again.
    Unblock { timeout: bool, ms: u8 },
}

/// The server id an ack or data frame names.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum SidPick {
    /// A small number (Kalshi style).
    Num(u8),
    /// The key of a topic (Kraken style): for an ack, of the member it
    /// targets; for data, of a live subscription.
    Key(u8),
    /// One seen before, possibly stale now.
    Seen(u8),
}

/// A data frame's sequence number, relative to where its target stands.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum SeqPick {
    None,
    Next,
    Repeat,
    Jump(u8),
    /// Absolute (255: u64::MAX).
    Abs(u8),
}

/// Runs a session script against the real `SessionCore` and the model.
///
/// # Panics
///
/// When the core and the model disagree, or an invariant breaks.
pub fn session_script(data: &[u8]) {
    let Ok(script) = Script::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut harness = Harness::new(&script);
    for step in script.steps.iter().take(MAX_STEPS) {
        let go_on = harness.step(step);
        harness.check();
        if !go_on {
            break;
        }
    }
    harness.finish();
}

fn policy_of(n: u8) -> Overflow {
    match n % 4 {
        0 => Overflow::DropOldest,
        1 => Overflow::DropNewest,
        2 => Overflow::Error,
        _ => Overflow::Block {
            timeout: Duration::from_secs(1),
        },
    }
}

fn other(names: &'static [&'static str], name: &str) -> &'static str {
    let at = names.iter().position(|n| *n == name).map_or(0, |i| i + 1);
    names[at % names.len()]
}
