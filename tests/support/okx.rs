//! OKX v5 frames for the op/args test server: book snapshots and updates
//! with the checksum computed here, independently of the library (the check
//! string of OKX's docs, then zlib's CRC-32 as a signed integer), and the
//! faults: a wrong checksum, a skipped sequence number.
#![allow(dead_code)]

use serde_json::{json, Value};

use super::op_venue::{with_arg, Dialect, OpVenue, Price, ServerBook};

/// An OKX venue whose `books` channel sends deltas without a snapshot and
/// with checksum 0 (what a REST snapshot source is for).
pub async fn venue_without_snapshot() -> OpVenue {
    let venue = OpVenue::start(Dialect::Okx).await.unwrap();
    {
        let mut state = venue.state();
        state.okx_no_snapshot = true;
        state.okx_zero_checksum = true;
    }
    venue
}

/// OKX's cap on one request ("the total length of multiple channels cannot
/// exceed 64 KB", Overview > Subscribe); the test venue closes with 1009
/// beyond it, as OKX's close-frame table says.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

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
        let zero = state.okx_zero_checksum;
        let Some(book) = state.books.get_mut(inst) else {
            return;
        };
        book.apply(bids, asks);
        let prev = book.seq + i64::from(gap);
        book.seq += 2;
        let mut frame = book_frame(inst, "update", book, prev, Some((bids, asks)));
        if corrupt {
            frame["data"][0]["checksum"] = json!(checksum(book).wrapping_add(1));
        } else if zero {
            frame["data"][0]["checksum"] = json!(0);
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

/// A local plain-HTTP endpoint playing OKX's `GET /api/v5/market/books`:
/// it answers with the test venue's current book of `instId` and its `seqId`.
///
/// Each request is held at two gates the test opens: `taken` (the book is
/// read when it opens) and `answer` (the answer is written when it opens), so
/// deltas can be pushed before, while and after the snapshot is taken.
pub struct BooksEndpoint {
    pub port: u16,
    /// One message per request received, with its path.
    pub requests: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<String>>,
    /// Opens the first gate (take the book) once per permit.
    pub take: std::sync::Arc<tokio::sync::Semaphore>,
    /// Opens the second gate (write the answer) once per permit.
    pub answer: std::sync::Arc<tokio::sync::Semaphore>,
    /// The `seqId` of each snapshot taken.
    pub taken: std::sync::Arc<std::sync::Mutex<Vec<i64>>>,
    /// One message per snapshot taken, with its `seqId` ([`Self::next_taken`]).
    pub taken_now: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<i64>>,
}

impl BooksEndpoint {
    /// Starts the endpoint on 127.0.0.1; `gated`: requests wait for permits.
    pub async fn start(venue: &OpVenue, gated: bool) -> BooksEndpoint {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let permits = if gated {
            0
        } else {
            tokio::sync::Semaphore::MAX_PERMITS
        };
        let take = std::sync::Arc::new(tokio::sync::Semaphore::new(permits));
        let answer = std::sync::Arc::new(tokio::sync::Semaphore::new(permits));
        let taken = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (taken_tx, taken_rx) = tokio::sync::mpsc::unbounded_channel();
        let (venue, gates, log) = (venue.clone(), (take.clone(), answer.clone()), taken.clone());
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let (venue, gates, log, tx, taken_tx) = (
                    venue.clone(),
                    gates.clone(),
                    log.clone(),
                    tx.clone(),
                    taken_tx.clone(),
                );
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let path = text
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_owned();
                    assert!(text.starts_with("GET /api/v5/market/books?"), "{text}");
                    let inst = path
                        .split(['?', '&'])
                        .find_map(|kv| kv.strip_prefix("instId="))
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send(path);
                    gates.0.acquire().await.unwrap().forget();
                    let body = {
                        let state = venue.state();
                        let book = state.books.get(&inst).cloned().unwrap_or_default();
                        log.lock().unwrap().push(book.seq);
                        let _ = taken_tx.send(book.seq);
                        let asks: Vec<Value> = book
                            .asks
                            .iter()
                            .map(|(p, s)| json!([p.0, s, "0", "1"]))
                            .collect();
                        let bids: Vec<Value> = book
                            .bids
                            .iter()
                            .rev()
                            .map(|(p, s)| json!([p.0, s, "0", "1"]))
                            .collect();
                        json!({"code": "0", "msg": "", "data": [{
                            "asks": asks, "bids": bids, "ts": "1597026383085", "seqId": book.seq
                        }]})
                        .to_string()
                    };
                    gates.1.acquire().await.unwrap().forget();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tcp.write_all(response.as_bytes()).await;
                    let _ = tcp.shutdown().await;
                });
            }
        });
        BooksEndpoint {
            port,
            requests: tokio::sync::Mutex::new(rx),
            take,
            answer,
            taken,
            taken_now: tokio::sync::Mutex::new(taken_rx),
        }
    }

    /// Waits for the next snapshot to be taken; returns its `seqId`.
    pub async fn next_taken(&self) -> i64 {
        tokio::time::timeout(super::SOON, self.taken_now.lock().await.recv())
            .await
            .expect("a snapshot taken within SOON")
            .expect("endpoint running")
    }

    /// Waits for the next request; returns its path.
    pub async fn next_request(&self) -> String {
        tokio::time::timeout(super::SOON, self.requests.lock().await.recv())
            .await
            .expect("a snapshot request within SOON")
            .expect("endpoint running")
    }
}

/// A minimal HTTP/1.1 GET of OKX's order book from 127.0.0.1:`port`,
/// parsed by the library's `rest::parse_books`: the example snapshot source.
pub async fn fetch_books(
    port: u16,
    inst: String,
) -> Result<resilient_ws::BookSnapshot, resilient_ws::SnapshotError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let path = resilient_ws::protocol::okx::rest::books_path(&inst, 400);
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await?;
    let at = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no HTTP head")?;
    resilient_ws::protocol::okx::rest::parse_books(&answer[at + 4..])
}

/// One side of a book as (price, size) text, best first.
pub type TextLevels = Vec<(String, String)>;

/// The venue's book of `inst` as (asks, bids) text, best first.
pub fn server_levels(venue: &OpVenue, inst: &str) -> (TextLevels, TextLevels) {
    let state = venue.state();
    let book = state.books.get(inst).cloned().unwrap_or_default();
    (
        book.asks
            .iter()
            .map(|(p, s)| (p.0.clone(), s.clone()))
            .collect(),
        book.bids
            .iter()
            .rev()
            .map(|(p, s)| (p.0.clone(), s.clone()))
            .collect(),
    )
}
