//! WEEX V3 frames for the test server: what it answers to requests
//! (`{"result":null,"id":N}`, or `result: false` with a code for a refused
//! symbol), market-data pushes (`{"e":..,"E":..,"s":..,"d":..}`), depth books
//! (a `SNAPSHOT` after the ack, then `CHANGED` updates with `U`/`u`, and the
//! gap fault: an update that skips an id) and the heartbeat knobs (the
//! server's `{"event":"ping","time":T}` and whether an unanswered one drops
//! the client).
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::okx::Levels;
use super::op_venue::{default_book, OpVenue, Price, ServerBook, State};

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

/// Splits a V3 topic: `BTCUSDT@depth15` is ("depth15", "BTCUSDT"); a bare
/// private channel `orders` is ("orders", "").
pub fn split_topic(topic: &str) -> (String, String) {
    match topic.split_once('@') {
        Some((symbol, stream)) => (stream.to_owned(), symbol.to_owned()),
        None => (topic.to_owned(), String::new()),
    }
}

/// A push whose rows are `[{"s":symbol,"n":n}]`, for `stream` (`ticker`,
/// `trade`, a private channel): `e` is the stream name.
pub fn row_frame(stream: &str, symbol: &str, n: u64) -> Value {
    let mut frame = json!({"e": stream, "E": now_ms(), "d": [{"s": symbol, "n": n}]});
    if !symbol.is_empty() {
        frame["s"] = json!(symbol);
    }
    frame
}

/// Pushes [`row_frame`] to whoever subscribed `stream` of `symbol`.
pub fn push(venue: &OpVenue, stream: &str, symbol: &str, n: u64) {
    venue.push(stream, symbol, &row_frame(stream, symbol, n));
}

fn levels<'a>(levels: impl Iterator<Item = (&'a Price, &'a String)>) -> Value {
    Value::Array(levels.map(|(p, s)| json!([p.0, s])).collect())
}

/// A depth push of `level` levels: the whole book (`SNAPSHOT`, `U` = 1) or
/// `changes` (`CHANGED`, `U` = `prev` + 1), `u` the book's last update id.
pub fn depth_frame(
    symbol: &str,
    level: u32,
    book: &ServerBook,
    first: i64,
    changes: Option<(Levels<'_>, Levels<'_>)>,
) -> Value {
    let (kind, bids, asks) = match changes {
        None => (
            "SNAPSHOT",
            levels(book.bids.iter().rev()),
            levels(book.asks.iter()),
        ),
        Some((bids, asks)) => (
            "CHANGED",
            Value::Array(bids.iter().map(|(p, s)| json!([p, s])).collect()),
            Value::Array(asks.iter().map(|(p, s)| json!([p, s])).collect()),
        ),
    };
    json!({"e": "depth", "E": now_ms(), "s": symbol, "U": first, "u": book.seq,
           "l": level, "d": kind, "b": bids, "a": asks})
}

/// Applies `bids`/`asks` changes (size "0" deletes) to `symbol`'s book and
/// pushes them on `depth<level>`; a gap armed for `symbol` skips one update id.
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
        if gap {
            book.seq += 1;
        }
        let first = book.seq + 1;
        book.seq += 1;
        depth_frame(symbol, level, book, first, Some((bids, asks)))
    };
    venue.push(&format!("depth{level}"), symbol, &frame);
}

/// What the WEEX server answers to one client request: one reply per
/// request, by its id (refused when any topic's symbol is in `rejects`),
/// then a depth snapshot for each depth topic subscribed. `PONG` answers are
/// recorded, not answered.
pub fn on_request(state: &mut State, conn: u64, request: &Value) -> Vec<String> {
    let method = request["method"].as_str().unwrap_or_default();
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    if method == "PONG" {
        state.pongs.push(id);
        return Vec::new();
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
                let error = json!({"result": false, "id": id, "code": code, "msg": msg});
                return vec![error.to_string()];
            }
            let mut replies = vec![json!({"result": null, "id": id}).to_string()];
            for (stream, symbol) in topics {
                state.subs.insert((conn, stream.clone(), symbol.clone()));
                if let Some(level) = stream.strip_prefix("depth") {
                    let level = level.parse().unwrap_or(15);
                    let book = state
                        .books
                        .entry(symbol.clone())
                        .or_insert_with(default_book);
                    book.seq += 1;
                    replies.push(depth_frame(&symbol, level, book, 1, None).to_string());
                }
            }
            replies
        }
        "UNSUBSCRIBE" => {
            for (stream, symbol) in topics {
                state.subs.remove(&(conn, stream, symbol));
            }
            vec![json!({"result": null, "id": id}).to_string()]
        }
        _ => Vec::new(),
    }
}
