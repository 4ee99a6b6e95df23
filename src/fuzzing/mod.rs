//! Fuzz harnesses, one public function per target in `fuzz/fuzz_targets/`.
//!
//! Each harness takes the fuzzer's bytes, drives one part of the library the
//! way the supervisor does, and panics when an invariant breaks. The unit tests
//! at the bottom replay every file under `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` through the same functions, so `cargo test`
//! keeps every seed and every crash found so far green.
//!
//! Rules every harness keeps:
//! - It drives the real code (the client, the adapters, the book, the session
//!   core), never a copy of it: a copy proves the copy correct.
//! - What it compares against is an independent model (`model/`), written
//!   from the documented rules, not from the code under test.
//! - One run is bounded (steps, bytes, a guard timer) so the fuzzer never
//!   reports a slow input as a hang.
//!
//! | target | file | input | what must hold |
//! |---|---|---|---|
//! | [`frame_read`](fn@crate::fuzzing::frame_read) | `frame_read.rs` | selector byte + raw server bytes | no panic, no hang, a typed terminal error, balanced stats |
//! | [`kalshi_classify`](fn@crate::fuzzing::kalshi_classify) | `kalshi_classify.rs` | JSON lines | no panic, pure, short errors, encode/classify round trips |
//! | [`kraken_classify`](fn@crate::fuzzing::kraken_classify) | `kraken_classify.rs` | JSON lines and `#` commands | no panic, deterministic, verified books really verify |
//! | [`kraken_book`](fn@crate::fuzzing::kraken_book) | `kraken_book.rs` | a depth line, then `S`/`U` lines of `price:qty` | book equals `model/book.rs`; sorted, no zeros, depth; checksum |
//! | [`kalshi_book`](fn@crate::fuzzing::kalshi_book) | `kalshi_book.rs` | a cap line, then `S` (yes `\|` no levels of `price:count`) and `D y\|n price delta` lines | the Kalshi book equals `model/kalshi_book.rs` (integer units): refusals leave it unchanged, bids and derived asks in order, counts positive, prices in `[0, 1]`, the cap |
//! | [`envelope_scan`](fn@crate::fuzzing::envelope_scan) | `envelope_scan.rs` | JSON lines (also placed inside frames) and Kraken `#` commands | each single-pass scan answers exactly what the serde path answers, or leaves the frame to it |
//! | [`decimal`](fn@crate::fuzzing::decimal) | `decimal.rs` | lines of text | [`Decimal`](crate::Decimal) parses, prints, scales, compares and hashes as the digit-string reference `model/decimal.rs` says |
//! | [`okx_book`](fn@crate::fuzzing::okx_book) | `okx_book.rs` | bytes scripting a venue's book changes and what reaches the client (drops, WS/REST snapshots, checksums) | a verified view is exactly a state of the true book (`BTreeMap` of exact decimals); drops and wrong checksums are reported; a fault-free snapshot verifies |
//! | [`okx_classify`](fn@crate::fuzzing::okx_classify) | `okx_classify.rs` | frames split by `0xff` | no panic; books only for the subscribed instrument; the fast checksum of a kept book equals the plain one over its levels |
//! | [`weex_classify`](fn@crate::fuzzing::weex_classify) | `weex_classify.rs` | frames split by `0xff` | no panic; heartbeat answers only with ids no request reaches; acks only for subscribed topics, with their channel and symbol |
//! | [`weex_book`](fn@crate::fuzzing::weex_book) | `weex_book.rs` | a cap line, then `S`/`C`/`G` lines of `price:qty` asks `\|` bids | the real `DepthBook` (small cap) and the adapter's view equal `model/ordered_book.rs` (a `BTreeMap` of exact decimals); gaps and unusable pushes clear the view until a snapshot |
//! | [`reconnect_script`](fn@crate::fuzzing::reconnect_script) | `reconnect_script.rs` | six policy bytes, then four bytes per attempt or session | the real `ReconnectMachine` (and the core's close rule) agrees with `model/reconnect.rs`: attempt numbers, exact delays (growth, quick retry, spacing, Retry-After, 1013), give-up after `max_attempts`, permanent closes |
//! | [`venue_time`](fn@crate::fuzzing::venue_time) | `venue_time.rs`, model `model/venue_time.rs` | text lines (raw, and as each venue's payload), or (first byte `0x80`+) generator bytes for frames with the stamp names nested, duplicated, escaped, inside strings, with white space around `:` and values of every type and range | each adapter's `venue_time` on the span it found equals the scanner's contract read from a serde tree, and on a documented-shape payload the venue's documented field read from a `serde_json::Value` (only difference allowed: an escaped string stamp is declined) |
//! | [`session_script`](fn@crate::fuzzing::session_script) | `session_script/` | [`arbitrary`] script of session events | the real `SessionCore`, driven through `supervisor/drive.rs`'s `Drive` as every shell drives it, agrees with `model/session.rs`: registry, exact accounting, no frame on the wrong stream, no stale server id routes, every caller answered once |

mod decimal;
mod envelope_scan;
mod frame_read;
mod kalshi_book;
mod kalshi_classify;
mod kraken_book;
mod kraken_classify;
mod model;
mod okx_book;
mod okx_classify;
mod reconnect_script;
mod session_script;
mod venue_time;
mod weex_book;
mod weex_classify;

pub use self::decimal::decimal;
pub use self::envelope_scan::{
    envelope_scan, kalshi_classify_fast, kalshi_classify_reference, kraken_classify_fast,
    kraken_classify_reference,
};
pub use self::frame_read::frame_read;
pub use self::kalshi_book::kalshi_book;
pub use self::kalshi_classify::kalshi_classify;
pub use self::kraken_book::kraken_book;
pub use self::kraken_classify::kraken_classify;
pub use self::okx_book::okx_book;
pub use self::okx_classify::okx_classify;
pub use self::reconnect_script::reconnect_script;
pub use self::session_script::session_script;
pub use self::venue_time::venue_time;
pub use self::weex_book::weex_book;
pub use self::weex_classify::weex_classify;

pub use crate::queue::{Pushed, Queue};
pub use crate::subscription::{
    Acked, ClientId, Entry, Phase, ProtocolBatching, Registry, Route, SeqCheck, Stashed,
};

use serde_json::Value;

use crate::error::VenueError;
use crate::protocol::Inbound;

// ===========================================================================
// Classification: shared checks
// ===========================================================================

/// Checks that hold for any classification of any frame.
fn check_inbound(inbound: &Inbound<'_>) {
    if let Inbound::Sequenced { then, .. } = inbound {
        assert!(
            !matches!(**then, Inbound::Sequenced { .. }),
            "a sequenced frame inside a sequenced frame"
        );
        check_inbound(then);
    }
    if let Inbound::Invalid(error) = inbound {
        // Errors name the failure, never quote the (possibly huge) frame.
        let text = error.to_string();
        assert!(
            text.len() < 160,
            "an error that quotes its frame? {text:.200}"
        );
    }
}

fn parse_json(frame: &str) -> Value {
    serde_json::from_str(frame)
        .unwrap_or_else(|e| panic!("an encoded frame is not JSON ({e}): {frame}"))
}

/// Lines of a classify input that are also round-tripped through the encoders
/// (each round trip builds and parses several JSON frames: costly per line).
const ROUND_TRIPS: usize = 4;

/// At most the first 40 bytes of `line` (on a char boundary): round trips
/// exercise escaping on any text; long text would only make them slow.
fn sample(line: &str) -> &str {
    let mut end = line.len().min(40);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// Round-trip numbers derived from a line, including the u64 edges.
fn numbers_for(line: &str) -> (u64, u64, u64) {
    let n = line.len() as u64;
    let mix = line
        .bytes()
        .fold(n, |acc, b| acc.wrapping_mul(31).wrapping_add(u64::from(b)));
    let req_id = if mix % 5 == 0 {
        u64::MAX
    } else {
        mix % 1_000_000
    };
    let sid = if mix % 7 == 0 { u64::MAX } else { mix % 97 };
    let seq = mix % 3;
    (req_id, sid, seq)
}

/// The venue error parsers keep the text and never contradict themselves.
fn check_venue_errors(text: &str) {
    let (_, sid, _) = numbers_for(text);
    let code = i64::try_from(sid).ok();
    for error in [VenueError::kraken(text), VenueError::kalshi(code, text)] {
        assert_eq!(error.raw, text);
        assert!(error.to_string().ends_with(text));
        assert!(
            error.retry_after().is_none() || error.is_retryable(),
            "{error:?}"
        );
        match (error.severity, error.category) {
            (Some(severity), Some(category)) => {
                let letter = match severity {
                    crate::Severity::Error => "E",
                    crate::Severity::Warning => "W",
                };
                assert_eq!(format!("{letter}{category}:{}", error.message), text);
            }
            (None, None) => assert_eq!(error.message, text),
            other => panic!("half a Kraken shape {other:?} in {error:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    type Harness = fn(&[u8]);

    const TARGETS: &[(&str, Harness)] = &[
        ("okx_book", okx_book),
        ("decimal", decimal),
        ("okx_classify", okx_classify),
        ("weex_classify", weex_classify),
        ("envelope_scan", envelope_scan),
        ("frame_read", frame_read),
        ("kalshi_classify", kalshi_classify),
        ("kraken_classify", kraken_classify),
        ("kraken_book", kraken_book),
        ("kalshi_book", kalshi_book),
        ("session_script", session_script),
        ("weex_book", weex_book),
        ("reconnect_script", reconnect_script),
        ("venue_time", venue_time),
    ];

    fn files(dir: &Path) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        files
    }

    fn replay(kind: &str) -> usize {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz")
            .join(kind);
        let mut replayed = 0;
        for &(target, harness) in TARGETS {
            for file in files(&root.join(target)) {
                let data =
                    std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                let result = std::panic::catch_unwind(|| harness(&data));
                assert!(result.is_ok(), "{target} failed on {}", file.display());
                replayed += 1;
            }
        }
        replayed
    }

    #[test]
    fn the_seed_corpus_replays_cleanly() {
        let replayed = replay("corpus");
        assert!(
            replayed >= TARGETS.len(),
            "expected seeds for every target, found {replayed}"
        );
    }

    #[test]
    fn every_regression_replays_cleanly() {
        replay("regressions");
    }

    #[test]
    fn empty_and_tiny_inputs_are_fine() {
        for &(_, harness) in TARGETS {
            harness(&[]);
            harness(&[0]);
            harness(&[0xff; 7]);
        }
    }
}
