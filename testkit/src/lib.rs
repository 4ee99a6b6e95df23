//! Fuzz harnesses for resilient-ws and the independent models they compare
//! the library against: one public function per target in `fuzz/fuzz_targets/`.
//!
//! Test support, not part of the published library (as rustls keeps
//! rustls-test). The fuzz targets call these functions; `tests/corpus.rs`
//! replays every seed and every regression through them, so `cargo test` at
//! the repository root keeps each one green.
//!
//! Each harness takes the fuzzer's bytes, drives one part of the library the
//! way the supervisor does, and panics when an invariant breaks. Rules every
//! harness keeps:
//! - It drives the real code (the client, the adapters, the book, the session
//!   core), never a copy of it: a copy proves the copy correct. Where it must
//!   reach an internal type, it goes through `resilient_ws::fuzzing`, the
//!   library's thin, unstable entry points (feature `fuzzing`).
//! - What it compares against is an independent model (`model/`), written
//!   from the documented rules, not from the code under test.
//! - One run is bounded (steps, bytes, a guard timer) so the fuzzer never
//!   reports a slow input as a hang.
//!
//! `fuzz/README.md` lists every target: its input and what must hold.

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
mod scan_skip;
mod session_script;
mod venue_time;
mod weex_book;
mod weex_classify;
mod ws_bridge;

pub use self::decimal::decimal;
pub use self::envelope_scan::envelope_scan;
pub use self::frame_read::frame_read;
pub use self::kalshi_book::kalshi_book;
pub use self::kalshi_classify::kalshi_classify;
pub use self::kraken_book::kraken_book;
pub use self::kraken_classify::kraken_classify;
pub use self::okx_book::okx_book;
pub use self::okx_classify::okx_classify;
pub use self::reconnect_script::reconnect_script;
pub use self::scan_skip::scan_skip;
pub use self::session_script::session_script;
pub use self::venue_time::venue_time;
pub use self::weex_book::weex_book;
pub use self::weex_classify::weex_classify;
pub use self::ws_bridge::ws_bridge;

use serde_json::Value;

use resilient_ws::{Inbound, VenueError};

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
                    resilient_ws::Severity::Error => "E",
                    resilient_ws::Severity::Warning => "W",
                    other => panic!("a severity the check does not know: {other:?}"),
                };
                assert_eq!(format!("{letter}{category}:{}", error.message), text);
            }
            (None, None) => assert_eq!(error.message, text),
            other => panic!("half a Kraken shape {other:?} in {error:?}"),
        }
    }
}
