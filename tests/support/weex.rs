//! WEEX V3 frames for the test server, built from the wire examples in
//! `tests/data/weex` (see its README for their sources), so the test venue
//! speaks the shapes the venue documents; `tests/weex.rs` checks that it does.
//!
//! - Replies: `{"result":true,"id":N}`; a refused symbol gets
//!   `{"result":false,"id":N,"msg":"INVALID_ARGUMENT: .."}` (no code, as V3),
//!   or with the code its reject entry names when that is not 0. After
//!   [`REFUSALS_BEFORE_CLOSE`] refusals on one connection the server closes
//!   it with 1007, as WEEX does.
//! - Pushes `{"e","E","s","d"}` of each type, with the push's marker `n` in
//!   `E` (the event time field) so a test can tell pushes apart.
//! - Depth: after the ack a `depthSnapshot` (`d:"SNAPSHOT"`, `U = u`), then
//!   `CHANGED` pushes whose `U` is the previous push's `u`; the gap fault makes
//!   one push's `U` skip ahead; a delisted symbol gets an empty snapshot with
//!   `U = u = 0`; a symbol in `hold_snapshots` gets its ack but no snapshot
//!   until [`release_snapshot`].
//! - Heartbeats: public connections get `{"event":"ping","time":T}`, private
//!   ones (URL path ending in `/private`) `{"type":"ping","time":T}`. A
//!   client's `{"method":"PONG","id":N}` is recorded and, on a public
//!   connection, answered `{"result":true,"id":N}`.
//! - Every connection is greeted with `{"cid":..,"event":"connected",..}`.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::okx::Levels;
use super::op_venue::{default_book, OpVenue, Price, ServerBook, State};

/// Refused subscribes after which WEEX closes the socket with 1007.
pub const REFUSALS_BEFORE_CLOSE: u32 = 6;

/// A WEEX wire example from `tests/data/weex/<name>.json`.
pub fn example(name: &str) -> Value {
    let path = format!("{}/tests/data/weex/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Pings every `every`; with `strict`, a connection that did not answer the
/// previous pings is closed (as WEEX drops clients that do not pong).
/// Applies to connections made after the call.
pub fn heartbeats(venue: &OpVenue, every: Duration, strict: bool) {
    let mut state = venue.state();
    state.ping_every = Some(every);
    state.require_pong = strict;
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The heartbeat of a public or private connection.
pub fn ping(private: bool, time: u64) -> Value {
    let mut ping = example(if private {
        "ping_private"
    } else {
        "ping_public"
    });
    ping["time"] = json!(time.to_string());
    ping
}

/// The greeting every connection gets first.
pub fn greeting(conn: u64) -> Value {
    let mut greeting = example("connected");
    greeting["cid"] = json!(format!("conn-{conn}"));
    greeting["time"] = json!(now_ms().to_string());
    greeting
}

/// Splits a V3 topic: `BTCUSDT@depth15` is ("depth15", "BTCUSDT"); a bare
/// private channel `orders` is ("orders", "").
pub fn split_topic(topic: &str) -> (String, String) {
    match topic.split_once('@') {
        Some((symbol, stream)) => (stream.to_owned(), symbol.to_owned()),
        None => (topic.to_owned(), String::new()),
    }
}

/// The example a push on `stream` is built from: the stream's own type
/// (`ticker`, `trade`, `bookTicker`, private channels), `kline` for every
/// kline stream; `ticker`'s for a type without an example.
fn push_example(stream: &str) -> Value {
    let name = if stream.starts_with("kline") {
        "kline"
    } else {
        stream
    };
    match name {
        "ticker" | "trade" | "tradeSnapshot" | "kline" | "klineSnapshot" | "bookTicker"
        | "account" | "orders" | "fill" | "positions" => example(name),
        _ => {
            let mut frame = example("ticker");
            frame["e"] = json!(stream);
            frame
        }
    }
}

/// A push on `stream` (`ticker`, `trade`, `kline_1m_LAST_PRICE`, a private
/// channel) shaped as its example, for `symbol` (empty: private, no `s`),
/// with `n` in `E`. Kline pushes name the stream's interval and price type.
pub fn row_frame(stream: &str, symbol: &str, n: u64) -> Value {
    let mut frame = push_example(stream);
    frame["E"] = json!(n);
    if frame.get("s").is_some() {
        frame["s"] = json!(symbol);
    }
    if let Some(rows) = frame.get_mut("d").and_then(Value::as_array_mut) {
        for row in rows {
            if row.get("s").is_some() {
                row["s"] = json!(symbol);
            }
            if row.get("symbol").is_some() {
                row["symbol"] = json!(symbol);
            }
        }
    }
    if let Some(rest) = stream.strip_prefix("kline_") {
        if let Some((interval, price)) = rest.split_once('_') {
            frame["p"] = json!(price);
            frame["d"][0]["i"] = json!(interval);
        }
    }
    frame
}

/// Pushes [`row_frame`] to whoever subscribed `stream` of `symbol`.
pub fn push(venue: &OpVenue, stream: &str, symbol: &str, n: u64) {
    venue.push(stream, symbol, &row_frame(stream, symbol, n));
}

/// Pushes a snapshot-typed push (`tradeSnapshot`, `klineSnapshot`) on
/// `stream` of `symbol`, with `n` in `E`.
pub fn push_snapshot(venue: &OpVenue, stream: &str, symbol: &str, n: u64) {
    let mut frame = row_frame(stream, symbol, n);
    let kind = if stream.starts_with("kline") {
        "klineSnapshot"
    } else {
        "tradeSnapshot"
    };
    frame["e"] = json!(kind);
    venue.push(stream, symbol, &frame);
}

fn levels<'a>(levels: impl Iterator<Item = (&'a Price, &'a String)>) -> Value {
    Value::Array(levels.map(|(p, s)| json!([p.0, s])).collect())
}

/// A depth push of `level` levels: the whole book (`depthSnapshot`,
/// `SNAPSHOT`, `U = u`) or `changes` (`depth`, `CHANGED`), from update id
/// `first` to the book's last one (`u`, `book.seq`).
pub fn depth_frame(
    symbol: &str,
    level: u32,
    book: &ServerBook,
    first: i64,
    changes: Option<(Levels<'_>, Levels<'_>)>,
) -> Value {
    let (mut frame, bids, asks) = match changes {
        None => (
            example("depthSnapshot"),
            levels(book.bids.iter().rev()),
            levels(book.asks.iter()),
        ),
        Some((bids, asks)) => (
            example("depth"),
            Value::Array(bids.iter().map(|(p, s)| json!([p, s])).collect()),
            Value::Array(asks.iter().map(|(p, s)| json!([p, s])).collect()),
        ),
    };
    frame["E"] = json!(now_ms());
    frame["s"] = json!(symbol);
    frame["U"] = json!(first);
    frame["u"] = json!(book.seq);
    frame["l"] = json!(level);
    frame["b"] = bids;
    frame["a"] = asks;
    frame
}

/// Applies `bids`/`asks` changes (size "0" deletes) to `symbol`'s book and
/// pushes them on `depth<level>`: `U` is the previous push's `u`, `u` moves
/// on by 3 (several matching-engine updates per push, as on the venue). A
/// gap armed for `symbol` makes this push's `U` skip ahead.
pub fn depth_update(
    venue: &OpVenue,
    symbol: &str,
    level: u32,
    bids: &[(&str, &str)],
    asks: &[(&str, &str)],
) {
    let frame = {
        let mut state = venue.state();
        let gap = state.gap.remove(symbol);
        let Some(book) = state.books.get_mut(symbol) else {
            return;
        };
        book.apply(bids, asks);
        let first = if gap { book.seq + 5 } else { book.seq };
        book.seq = first + 3;
        depth_frame(symbol, level, book, first, Some((bids, asks)))
    };
    venue.push(&format!("depth{level}"), symbol, &frame);
}

/// The refusal of request `id` for a symbol in `rejects`: V3's code-less
/// `INVALID_ARGUMENT` refusal when the entry's code is 0, else one carrying
/// that code.
fn refusal(id: &Value, code: i64, msg: &str) -> Value {
    if code == 0 {
        json!({"result": false, "id": id, "msg": msg})
    } else {
        json!({"result": false, "id": id, "code": code, "msg": msg})
    }
}

/// What the WEEX server answers to one client request: one reply per
/// request, by its id (refused when any topic's symbol is in `rejects`),
/// then a depth snapshot for each depth topic subscribed. `PONG` answers are
/// recorded and, on a public connection, answered.
pub fn on_request(state: &mut State, conn: u64, request: &Value) -> Vec<String> {
    let method = request["method"].as_str().unwrap_or_default();
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    if method == "PONG" {
        state.pongs.push(id.clone());
        if state.private_conns.contains(&conn) {
            return Vec::new();
        }
        return vec![json!({"result": true, "id": id}).to_string()];
    }
    let topics: Vec<(String, String)> = request["params"]
        .as_array()
        .map(|params| {
            params
                .iter()
                .filter_map(Value::as_str)
                .map(split_topic)
                .collect()
        })
        .unwrap_or_default();
    match method {
        "SUBSCRIBE" if state.drop_subscribes => Vec::new(),
        "SUBSCRIBE" => {
            let refused = topics
                .iter()
                .find_map(|(_, symbol)| state.rejects.get(symbol).cloned());
            if let Some((code, msg)) = refused {
                *state.refusals.entry(conn).or_default() += 1;
                return vec![refusal(&id, code, &msg).to_string()];
            }
            let mut replies = vec![json!({"result": true, "id": id}).to_string()];
            for (stream, symbol) in topics {
                state.subs.insert((conn, stream.clone(), symbol.clone()));
                if let Some(level) = stream.strip_prefix("depth") {
                    let level = level.parse().unwrap_or(15);
                    if state.delisted.contains(&symbol) {
                        let empty = ServerBook::default();
                        replies.push(depth_frame(&symbol, level, &empty, 0, None).to_string());
                        continue;
                    }
                    if state.hold_snapshots.contains(&symbol) {
                        continue;
                    }
                    let book = state
                        .books
                        .entry(symbol.clone())
                        .or_insert_with(default_book);
                    book.seq += 1;
                    let first = book.seq;
                    replies.push(depth_frame(&symbol, level, book, first, None).to_string());
                }
            }
            replies
        }
        "UNSUBSCRIBE" => {
            for (stream, symbol) in topics {
                state.subs.remove(&(conn, stream, symbol));
            }
            vec![json!({"result": true, "id": id}).to_string()]
        }
        _ => Vec::new(),
    }
}

/// Whether the server closes `conn` now (1007 after too many refusals).
pub fn close_after_refusals(state: &State, conn: u64) -> bool {
    state.close_after_refusals
        && state.refusals.get(&conn).copied().unwrap_or(0) >= REFUSALS_BEFORE_CLOSE
}

/// Like [`depth_update`], but the push carries no `U`/`u` (a push the
/// client cannot place in its update-id chain); the server's book and its
/// last update id move on as usual.
pub fn depth_update_without_ids(
    venue: &OpVenue,
    symbol: &str,
    level: u32,
    bids: &[(&str, &str)],
    asks: &[(&str, &str)],
) {
    let frame = {
        let mut state = venue.state();
        let Some(book) = state.books.get_mut(symbol) else {
            return;
        };
        book.apply(bids, asks);
        let first = book.seq;
        book.seq = first + 3;
        let mut frame = depth_frame(symbol, level, book, first, Some((bids, asks)));
        if let Some(fields) = frame.as_object_mut() {
            fields.remove("U");
            fields.remove("u");
        }
        frame
    };
    venue.push(&format!("depth{level}"), symbol, &frame);
}

/// Stops holding `symbol`'s depth snapshots and pushes one now, of its
/// current book, on `depth<level>`.
pub fn release_snapshot(venue: &OpVenue, symbol: &str, level: u32) {
    let frame = {
        let mut state = venue.state();
        state.hold_snapshots.remove(symbol);
        let book = state
            .books
            .entry(symbol.to_owned())
            .or_insert_with(default_book);
        book.seq += 1;
        let first = book.seq;
        depth_frame(symbol, level, book, first, None)
    };
    venue.push(&format!("depth{level}"), symbol, &frame);
}
