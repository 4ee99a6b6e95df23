//! The Kalshi venue as its AsyncAPI spec for WebSocket v2 describes it
//! (checked 2026-12-05; `tests/data/kalshi/` holds the shapes, and
//! `tests/kalshi_spec.rs` checks every frame this venue sends against them):
//! server-assigned `sid`s, one `seq` per sid shared by data and the `ok` /
//! `error` frames that name the sid, errors as
//! `{"type":"error","msg":{"code":N,"msg":"..."}}`, fixed-point prices and
//! sizes (`_dollars` / `_fp` strings).
//!
//! `update_subscription` answers `ok` with the sid's next `seq` and its
//! market list; `get_snapshot` answers with an `orderbook_snapshot` per market
//! carrying the command's `id`. Fault knobs: a seq gap (`skip_seq`), a
//! repeated seq (`repeat_seq`), and a subscription the venue ends itself
//! (`end_subscriptions`, error 25 or 10). `set_book_snapshots` makes
//! `orderbook_delta` subscribes start with a snapshot, as the venue's do
//! (off by default: most tests count data frames from their own publishes),
//! and an `add_markets` on such a subscription answers its `ok` and then a
//! snapshot per added market; `set_kalshi_snapshots_first` sends those
//! snapshots before the `subscribed` ack or the `ok` instead;
//! `set_kalshi_snapshots_on_request` sends them only to a subscribe that
//! asks with `send_initial_snapshot: true`;
//! `set_kalshi_book` sets the book a market's snapshots show.

use serde_json::{json, Value};

use super::state::{string_list, u64_list, with_field, with_id, Cmd, Shared, State, Sub};
use super::{ticker_payload, AckMode, Exchange, Venue, KALSHI_PRIVATE_CHANNELS};
use crate::support::tasks::lock;

/// The `market_id` the venue gives every market (a UUID, as the spec's).
pub const KALSHI_MARKET_ID: &str = "9b0f6b43-5b68-4f9f-9f02-9a2d1b8ac1a1";

fn kalshi_error(id: Option<&Value>, code: u32, msg: &str) -> String {
    with_id(
        json!({"type": "error", "msg": {"code": code, "msg": msg}}),
        "id",
        id,
    )
}

fn kalshi_data(channel: &str, sid: u64, seq: u64, msg: &Value) -> String {
    json!({"type": channel, "sid": sid, "seq": seq, "msg": msg}).to_string()
}

/// The book every `orderbook_snapshot` shows (both sides present).
pub fn kalshi_book_snapshot(symbol: &str) -> Value {
    json!({
        "market_ticker": symbol,
        "market_id": KALSHI_MARKET_ID,
        "yes_dollars_fp": [["0.0800", "300.00"], ["0.2200", "333.00"]],
        "no_dollars_fp": [["0.5400", "20.00"], ["0.5600", "146.00"]]
    })
}

/// The snapshot `msg` of `symbol`: the book set for it, else the default.
fn snapshot_of(books: &std::collections::HashMap<String, Value>, symbol: &str) -> Value {
    books
        .get(symbol)
        .cloned()
        .unwrap_or_else(|| kalshi_book_snapshot(symbol))
}

/// An `orderbook_delta` payload (publish adds `market_ticker`): `delta_fp`
/// contracts at `price_dollars` on `side`, stamped `ts_ms`.
pub fn kalshi_delta(price_dollars: &str, delta_fp: &str, side: &str, ts_ms: u64) -> Value {
    json!({
        "market_id": KALSHI_MARKET_ID,
        "price_dollars": price_dollars,
        "delta_fp": delta_fp,
        "side": side,
        "ts_ms": ts_ms
    })
}

/// An `orderbook_snapshot` of each of `symbols` on `sub`, each taking a seq.
fn snapshots(
    books: &std::collections::HashMap<String, Value>,
    sub: &mut Sub,
    symbols: &[String],
) -> Vec<String> {
    symbols
        .iter()
        .map(|symbol| {
            let seq = take_seq(sub);
            kalshi_data(
                "orderbook_snapshot",
                sub.sid,
                seq,
                &snapshot_of(books, symbol),
            )
        })
        .collect()
}

/// The next seq of `sub`, used by a frame that names its sid.
fn take_seq(sub: &mut Sub) -> u64 {
    sub.seq += 1;
    sub.seq
}

impl Shared {
    /// Kalshi handling of one client text frame.
    pub(super) fn kalshi(&self, conn: u64, text: &str) -> Vec<String> {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return vec![kalshi_error(None, 1, "Unable to process message")];
        };
        let id = v.get("id");
        let Some(cmd) = v.get("cmd").and_then(Value::as_str) else {
            return vec![kalshi_error(id, 1, "Unable to process message")];
        };
        let params = v.get("params").and_then(Value::as_object);
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        match cmd {
            "subscribe" => {
                if st.ack_mode == AckMode::Never {
                    return Vec::new();
                }
                let Some(params) = params else {
                    return vec![kalshi_error(id, 2, "Params required")];
                };
                let channels = string_list(params.get("channels")).unwrap_or_default();
                let Some(channel) = channels.first().cloned() else {
                    return vec![kalshi_error(id, 3, "Channels required")];
                };
                let tickers = string_list(params.get("market_tickers"))
                    .or_else(|| string_list(params.get("market_ticker")));
                for t in tickers.iter().flatten() {
                    if let Some((msg, code)) = st.rejects.get(t) {
                        return vec![kalshi_error(id, *code, msg)];
                    }
                }
                let Some(c) = st.conns.get_mut(&conn) else {
                    return Vec::new();
                };
                if !c.authenticated && KALSHI_PRIVATE_CHANNELS.contains(&channel.as_str()) {
                    return vec![kalshi_error(id, 9, "Authentication required")];
                }
                let sid = st.next_sid;
                st.next_sid += 1;
                let mut out = Vec::new();
                let mut sub = Sub {
                    sid,
                    channel: channel.clone(),
                    symbols: tickers,
                    seq: 0,
                    depth: 0,
                };
                if st.ack_mode == AckMode::DataFirst {
                    let symbol = sub
                        .symbols
                        .as_ref()
                        .and_then(|s| s.first().cloned())
                        .unwrap_or_default();
                    let msg = with_field(
                        ticker_payload(Venue::Kalshi, &symbol, 0),
                        "market_ticker",
                        Value::from(symbol.as_str()),
                    );
                    sub.seq = 1;
                    out.push(kalshi_data(&channel, sid, 1, &msg));
                }
                let ack = with_id(
                    json!({"type": "subscribed", "msg": {"channel": channel, "sid": sid}}),
                    "id",
                    id,
                );
                let asked = params.get("send_initial_snapshot") == Some(&Value::Bool(true));
                let snapshots = if st.book_snapshots
                    && channel == "orderbook_delta"
                    && (asked || !st.snapshots_on_request)
                {
                    let symbols = sub.symbols.clone().unwrap_or_default();
                    snapshots(&st.kalshi_books, &mut sub, &symbols)
                } else {
                    Vec::new()
                };
                if st.kalshi_snapshots_first {
                    out.extend(snapshots);
                    out.push(ack);
                } else {
                    out.push(ack);
                    out.extend(snapshots);
                }
                c.subs.push(sub);
                out
            }
            "unsubscribe" => {
                let Some(sids) =
                    params.and_then(|p| u64_list(p.get("sids")).or_else(|| u64_list(p.get("sid"))))
                else {
                    return vec![kalshi_error(id, 4, "Subscription IDs required")];
                };
                let Some(c) = st.conns.get_mut(&conn) else {
                    return Vec::new();
                };
                let mut out = Vec::new();
                for sid in sids {
                    match c.subs.iter().position(|s| s.sid == sid) {
                        Some(i) => {
                            let sub = c.subs.remove(i);
                            out.push(with_id(
                                json!({"sid": sid, "seq": sub.seq, "type": "unsubscribed"}),
                                "id",
                                id,
                            ));
                        }
                        None => out.push(kalshi_error(id, 7, "Unknown subscription ID")),
                    }
                }
                out
            }
            "update_subscription" => {
                let Some(p) = params else {
                    return vec![kalshi_error(id, 2, "Params required")];
                };
                let sids = u64_list(p.get("sids"))
                    .or_else(|| u64_list(p.get("sid")))
                    .unwrap_or_default();
                let [sid] = sids[..] else {
                    return vec![kalshi_error(
                        id,
                        12,
                        "Exactly one subscription ID is required",
                    )];
                };
                let Some(action) = p.get("action").and_then(Value::as_str) else {
                    return vec![kalshi_error(id, 15, "Action required")];
                };
                let tickers = string_list(p.get("market_tickers"))
                    .or_else(|| string_list(p.get("market_ticker")))
                    .unwrap_or_default();
                let Some(c) = st.conns.get_mut(&conn) else {
                    return Vec::new();
                };
                let Some(sub) = c.subs.iter_mut().find(|s| s.sid == sid) else {
                    return vec![kalshi_error(id, 7, "Unknown subscription ID")];
                };
                match action {
                    "get_snapshot" if sub.channel == "orderbook_delta" => tickers
                        .iter()
                        .map(|symbol| {
                            let seq = take_seq(sub);
                            with_id(
                                json!({"type": "orderbook_snapshot", "sid": sid, "seq": seq,
                                       "msg": snapshot_of(&st.kalshi_books, symbol)}),
                                "id",
                                id,
                            )
                        })
                        .collect(),
                    "add_markets" | "delete_markets" => {
                        let list = sub.symbols.get_or_insert_with(Vec::new);
                        let mut added = Vec::new();
                        if action == "add_markets" {
                            for t in &tickers {
                                if !list.contains(t) {
                                    list.push(t.clone());
                                    added.push(t.clone());
                                }
                            }
                        } else {
                            list.retain(|s| !tickers.contains(s));
                        }
                        let markets = list.clone();
                        let book = st.book_snapshots && sub.channel == "orderbook_delta";
                        let first = st.kalshi_snapshots_first;
                        let mut out = Vec::new();
                        if book && first {
                            out.extend(snapshots(&st.kalshi_books, sub, &added));
                        }
                        let seq = take_seq(sub);
                        out.push(with_id(
                            json!({"type": "ok", "sid": sid, "seq": seq,
                                   "msg": {"market_tickers": markets}}),
                            "id",
                            id,
                        ));
                        if book && !first {
                            out.extend(snapshots(&st.kalshi_books, sub, &added));
                        }
                        out
                    }
                    _ => vec![kalshi_error(id, 13, "Unsupported action")],
                }
            }
            "list_subscriptions" => {
                let list: Vec<Value> = st
                    .conns
                    .get(&conn)
                    .map(|c| {
                        c.subs
                            .iter()
                            .map(|s| json!({"channel": s.channel, "sid": s.sid}))
                            .collect()
                    })
                    .unwrap_or_default();
                vec![with_id(json!({"type": "ok", "msg": list}), "id", id)]
            }
            // Commands Kalshi's WebSocket does not have (tests send them to
            // see a request answered): `ok`, so a request round trip works.
            _ => match id {
                Some(_) => vec![with_id(json!({"type": "ok"}), "id", id)],
                None => Vec::new(),
            },
        }
    }
}

impl State {
    /// Sends `payload` (with `market_ticker` added) on every sid that covers `symbol`,
    /// applying a pending seq gap or repeat.
    pub(super) fn publish_kalshi(&mut self, symbol: &str, payload: Value) {
        let st = self;
        let skip = st.skip.remove(symbol).unwrap_or(0);
        let repeat = st.repeat.remove(symbol);
        let msg = with_field(payload, "market_ticker", Value::from(symbol));
        for c in st.conns.values_mut() {
            for sub in c.subs.iter_mut().filter(|s| s.matches(symbol)) {
                let seq = if repeat && sub.seq > 0 {
                    sub.seq
                } else {
                    sub.seq + 1 + skip
                };
                sub.seq = seq;
                let _ =
                    c.tx.try_send(Cmd::Data(kalshi_data(&sub.channel, sub.sid, seq, &msg)));
            }
        }
    }
}

impl Exchange {
    /// Kalshi: every live subscription that covers `symbol` is ended by the
    /// venue with a sid-scoped error `code` (25 buffer overflow, 10 channel
    /// error) and gets nothing more. Returns how many were ended.
    pub fn end_subscriptions(&self, symbol: &str, code: u32) -> usize {
        let msg = match code {
            25 => "Subscription buffer overflow",
            _ => "Channel error",
        };
        let mut guard = lock(&self.inner.state);
        let mut ended = 0;
        for c in guard.conns.values_mut() {
            let (gone, kept): (Vec<Sub>, Vec<Sub>) = std::mem::take(&mut c.subs)
                .into_iter()
                .partition(|s| s.matches(symbol));
            c.subs = kept;
            for mut sub in gone {
                let seq = take_seq(&mut sub);
                let frame = json!({"type": "error", "sid": sub.sid, "seq": seq,
                                   "msg": {"code": code, "msg": msg}});
                let _ = c.tx.try_send(Cmd::Data(frame.to_string()));
                ended += 1;
            }
        }
        ended
    }

    /// Kalshi: every live subscription that covers `symbol` is dropped
    /// without a word (as after a venue-side loss): nothing more comes for
    /// it, and commands naming its sid get code 7. Returns how many.
    pub fn forget_subscriptions(&self, symbol: &str) -> usize {
        let mut guard = lock(&self.inner.state);
        let mut forgotten = 0;
        for c in guard.conns.values_mut() {
            let before = c.subs.len();
            c.subs.retain(|s| !s.matches(symbol));
            forgotten += before - c.subs.len();
        }
        forgotten
    }

    /// Kalshi: whether `orderbook_delta` subscribes start with an
    /// `orderbook_snapshot` per market (as the venue's do).
    pub fn set_book_snapshots(&self, on: bool) {
        lock(&self.inner.state).book_snapshots = on;
    }

    /// Kalshi: `orderbook_delta` subscribes start with a snapshot only when
    /// they ask for one with `send_initial_snapshot: true` (PROTOCOLS.md's
    /// reading of the flag; Kalshi's spec sends one regardless).
    pub fn set_kalshi_snapshots_on_request(&self) {
        let mut state = lock(&self.inner.state);
        state.book_snapshots = true;
        state.snapshots_on_request = true;
    }

    /// Kalshi: book snapshots go out before the `subscribed` ack (or the
    /// `ok` of an `add_markets`) that they follow by default. The spec does
    /// not order them; a client must cope with either.
    pub fn set_kalshi_snapshots_first(&self, on: bool) {
        lock(&self.inner.state).kalshi_snapshots_first = on;
    }

    /// Kalshi: from now on, `symbol`'s `orderbook_snapshot` shows these YES
    /// and NO bids (`[price_dollars, count_fp]`; an empty side is left out,
    /// as the venue does).
    pub fn set_kalshi_book(&self, symbol: &str, yes: &[(&str, &str)], no: &[(&str, &str)]) {
        let mut msg = json!({"market_ticker": symbol, "market_id": KALSHI_MARKET_ID});
        for (key, side) in [("yes_dollars_fp", yes), ("no_dollars_fp", no)] {
            if !side.is_empty() {
                msg[key] = json!(side);
            }
        }
        lock(&self.inner.state)
            .kalshi_books
            .insert(symbol.to_owned(), msg);
    }

    /// Kalshi: the next publish for `symbol` jumps seq by `n` extra (a gap).
    pub fn skip_seq(&self, symbol: &str, n: u64) {
        *lock(&self.inner.state)
            .skip
            .entry(symbol.to_owned())
            .or_default() += n;
    }

    /// Kalshi: the next publish for `symbol` reuses the previous seq (a duplicate).
    pub fn repeat_seq(&self, symbol: &str) {
        lock(&self.inner.state).repeat.insert(symbol.to_owned());
    }
}
