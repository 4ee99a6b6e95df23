//! `envelope_scan`: the single-pass envelope scanners (`protocol::scan`)
//! against the serde path they replace on data frames.
//!
//! The serde path is the reference: whenever a fast path answers, its answer
//! must equal the serde path's exactly, and `classify` must return the serde
//! path's answer whatever the fast path did. The reference is the library's
//! own serde reading, not a model: what is being proved is that the fast path
//! changes nothing.

use super::kraken_classify::kraken_command;
use resilient_ws::fuzzing::{
    kalshi_classify_fast, kalshi_classify_reference, kraken_classify_fast,
    kraken_classify_reference,
};
use resilient_ws::protocol::{Kalshi, Kraken, Protocol};

/// Where a line is also placed inside a frame, so that arbitrary values meet
/// every field the fast paths read or skip (`@` stands for the line).
const KALSHI_WRAPS: [&str; 5] = [
    r#"{"type":"ticker","sid":7,"seq":1,"msg":@}"#,
    r#"{"type":"ticker","sid":@,"msg":{}}"#,
    r#"{"sid":7,"seq":@}"#,
    r#"{"type":@,"sid":7}"#,
    r#"{"id":@,"sid":7,"other":@}"#,
];

/// As [`KALSHI_WRAPS`], for Kraken.
const KRAKEN_WRAPS: [&str; 5] = [
    r#"{"channel":"ticker","type":"update","data":[@]}"#,
    r#"{"channel":"ticker","data":[{"symbol":@,"last":1}]}"#,
    r#"{"channel":"executions","sequence":@,"data":[{"symbol":"BTC/USD"}]}"#,
    r#"{"channel":@,"data":[{"symbol":"ETH/USD"},@]}"#,
    r#"{"channel":"ticker","data":[{"symbol":"BTC/USD","checksum":@}],"error":@}"#,
];

/// Every line, and every line placed in each wrap, as a Kalshi and as a
/// Kraken frame: where a fast path answers it equals the serde path, and
/// `classify` equals the serde path always. `#` lines are Kraken adapter
/// calls as in `kraken_classify` (`#sub CHANNEL DEPTH|- SYMBOL...`, `#unsub`,
/// `#forget`, `#reset`); both adapters start subscribed to `ticker` for
/// `BTC/USD` and `ETH/USD`, and to `executions` without a symbol.
///
/// # Panics
///
/// When a fast path disagrees with the serde path.
pub fn envelope_scan(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // `fast` classifies through `classify` (fast path first), `reference`
    // through serde only; both see the same calls, so their state agrees.
    let mut fast = Kraken::new();
    let mut reference = Kraken::new();
    let mut req_id = 1;
    for command in ["sub ticker - BTC/USD ETH/USD", "sub executions"] {
        kraken_command(&mut fast, command, req_id);
        kraken_command(&mut reference, command, req_id);
        req_id += 1;
    }
    let mut wrapped = String::new();
    for line in text.split('\n') {
        if let Some(command) = line.strip_prefix('#') {
            kraken_command(&mut fast, command, req_id);
            kraken_command(&mut reference, command, req_id);
            req_id += 1;
            continue;
        }
        check_kalshi(line);
        check_kraken(&mut fast, &mut reference, line);
        for wrap in KALSHI_WRAPS {
            wrap_into(&mut wrapped, wrap, line);
            check_kalshi(&wrapped);
        }
        for wrap in KRAKEN_WRAPS {
            wrap_into(&mut wrapped, wrap, line);
            check_kraken(&mut fast, &mut reference, &wrapped);
        }
    }
}

fn wrap_into(out: &mut String, wrap: &str, line: &str) {
    out.clear();
    let mut parts = wrap.split('@');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for part in parts {
        out.push_str(line);
        out.push_str(part);
    }
}

fn check_kalshi(text: &str) {
    let reference = kalshi_classify_reference(text);
    if let Some(fast) = kalshi_classify_fast(text) {
        assert_eq!(fast, reference, "kalshi fast path differs on {text:.300}");
    }
    assert_eq!(Kalshi::new().classify(text), reference, "{text:.300}");
}

fn check_kraken(fast: &mut Kraken, reference: &mut Kraken, text: &str) {
    let quick = kraken_classify_fast(fast, text);
    let answer = fast.classify(text);
    let expected = kraken_classify_reference(reference, text);
    if let Some(quick) = quick {
        assert_eq!(quick, expected, "kraken fast path differs on {text:.300}");
    }
    assert_eq!(answer, expected, "{text:.300}");
}
