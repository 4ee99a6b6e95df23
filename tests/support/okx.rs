//! OKX v5 frames for the op/args test server: book snapshots and updates
//! with the checksum computed here, independently of the library (the check
//! string of OKX's docs, then zlib's CRC-32 as a signed integer), and the
//! faults: a wrong checksum, a skipped sequence number.
#![allow(dead_code)]

use serde_json::{json, Value};

use super::op_venue::{with_arg, OpVenue, Price, ServerBook};

/// The OKX checksum of a book: the first 25 bids (best first) and asks,
/// interleaved `bid:size:ask:size:..`, CRC-32, as a signed 32-bit integer.
pub fn checksum(book: &ServerBook) -> i32 {
    let bids: Vec<String> = book
        .bids
        .iter()
        .rev()
        .take(25)
        .map(|(p, s)| format!("{}:{s}", p.0))
        .collect();
    let asks: Vec<String> = book
        .asks
        .iter()
        .take(25)
        .map(|(p, s)| format!("{}:{s}", p.0))
        .collect();
    let mut parts = Vec::new();
    for i in 0..25 {
        parts.extend(bids.get(i).cloned());
        parts.extend(asks.get(i).cloned());
    }
    crc32fast::hash(parts.join(":").as_bytes()) as i32
}

fn levels<'a>(levels: impl Iterator<Item = (&'a Price, &'a String)>) -> Value {
    Value::Array(levels.map(|(p, s)| json!([p.0, s, "0", "1"])).collect())
}

/// Level changes as (price, size) text.
pub type Levels<'a> = &'a [(&'a str, &'a str)];

/// A `books` push of the whole book (`snapshot`) or of `changes` (`update`).
pub fn book_frame(
    inst: &str,
    action: &str,
    book: &ServerBook,
    prev: i64,
    changes: Option<(Levels<'_>, Levels<'_>)>,
) -> Value {
    let (bids, asks) = match changes {
        None => (levels(book.bids.iter().rev()), levels(book.asks.iter())),
        Some((bids, asks)) => (
            Value::Array(bids.iter().map(|(p, s)| json!([p, s, "0", "1"])).collect()),
            Value::Array(asks.iter().map(|(p, s)| json!([p, s, "0", "1"])).collect()),
        ),
    };
    with_arg(
        "books",
        inst,
        json!({"action": action, "data": [{
            "asks": asks, "bids": bids, "ts": "1597026383085",
            "checksum": checksum(book), "prevSeqId": prev, "seqId": book.seq
        }]}),
    )
}

/// Applies `bids`/`asks` changes (size "0" deletes) to `inst`'s book and
/// pushes the update, with whatever fault is armed for `inst`.
pub fn update(venue: &OpVenue, inst: &str, bids: &[(&str, &str)], asks: &[(&str, &str)]) {
    let frame = {
        let mut state = venue.state();
        let corrupt = state.corrupt_checksum.remove(inst);
        let gap = state.gap.remove(inst);
        let Some(book) = state.books.get_mut(inst) else {
            return;
        };
        book.apply(bids, asks);
        let prev = book.seq + i64::from(gap);
        book.seq += 2;
        let mut frame = book_frame(inst, "update", book, prev, Some((bids, asks)));
        if corrupt {
            frame["data"][0]["checksum"] = json!(checksum(book).wrapping_add(1));
        }
        frame
    };
    venue.push("books", inst, &frame);
}

/// A `tickers` or `trades` push with the fields of OKX's documented push
/// examples (`tests/data/okx/documented.json`); `n` is the ticker's `last`
/// and the trade's `px`.
pub fn push(venue: &OpVenue, channel: &str, inst: &str, n: u64) {
    let n = n.to_string();
    let row = match channel {
        "trades" => json!({
            "instId": inst, "tradeId": "130639474", "px": n, "sz": "0.12060306",
            "side": "buy", "ts": "1630048897897", "count": "3", "source": "0", "seqId": 1234
        }),
        _ => json!({
            "instType": "SPOT", "instId": inst, "last": n, "lastSz": "0.1",
            "askPx": "9999.99", "askSz": "11", "bidPx": "8888.88", "bidSz": "5",
            "open24h": "9000", "high24h": "10000", "low24h": "8888.88",
            "volCcy24h": "2222", "vol24h": "2222", "sodUtc0": "2222", "sodUtc8": "2222",
            "ts": "1597026383085"
        }),
    };
    venue.push(
        channel,
        inst,
        &with_arg(channel, inst, json!({ "data": [row] })),
    );
}

/// OKX's service-upgrade notice (sent 60 s before the connection closes).
pub fn notice_frame(conn: u64) -> Value {
    json!({
        "event": "notice", "code": "64008",
        "msg": "The connection will soon be closed for a service upgrade. Please reconnect.",
        "connId": super::op_venue::conn_id(conn)
    })
}

/// The documented examples (`tests/data/okx/documented.json`) by name: the
/// JSON frame, or the text of a text-only frame (`ping`, `pong`).
pub fn documented(name: &str) -> Value {
    let all: Value = serde_json::from_str(include_str!("../data/okx/documented.json")).unwrap();
    let entry = &all[name];
    assert!(!entry.is_null(), "no documented example {name}");
    entry
        .get("frame")
        .or_else(|| entry.get("text"))
        .cloned()
        .unwrap()
}

/// Whether `ours` has the shape of the documented `theirs`: the same JSON
/// types, the same object keys at every level, and array elements shaped
/// like the documented array's first element. Returns where they differ.
pub fn same_shape(ours: &Value, theirs: &Value, at: &str) -> Result<(), String> {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            let (mut ka, mut kb): (Vec<_>, Vec<_>) = (a.keys().collect(), b.keys().collect());
            ka.sort();
            kb.sort();
            if ka != kb {
                return Err(format!("{at}: keys {ka:?}, documented {kb:?}"));
            }
            for (k, v) in a {
                same_shape(v, &b[k], &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(b)) => match b.first() {
            Some(first) => a
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| same_shape(v, first, &format!("{at}[{i}]"))),
            None => Ok(()),
        },
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, Value::Null) => Ok(()),
        _ => Err(format!("{at}: {ours}, documented {theirs}")),
    }
}
