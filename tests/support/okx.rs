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

/// A `tickers` or `trades` push.
pub fn push(venue: &OpVenue, channel: &str, inst: &str, n: u64) {
    let frame = with_arg(
        channel,
        inst,
        json!({"data": [{"instId": inst, "last": n.to_string()}]}),
    );
    venue.push(channel, inst, &frame);
}
