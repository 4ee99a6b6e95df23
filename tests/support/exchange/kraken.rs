//! The Kraken WebSocket v2 venue: identity is channel + symbol, one ack per
//! symbol, `req_id` echoed, `time_in`/`time_out` stamps, a `status` frame with the
//! `connection_id` on connect, heartbeats on request, `book` snapshots and updates
//! with checksums (see [`kraken_book`](super::kraken_book)), and private channels
//! that need a token. Fault knobs: a wrong checksum on the next book frame.

use std::time::Duration;

use serde_json::{json, Value};

use super::kraken_book::Book;
use super::state::{with_field, with_id, Cmd, Shared, State, Sub};
use super::{ticker_payload, AckMode, Exchange, Venue};
use crate::support::tasks::lock;

/// Kraken heartbeat period.
pub(super) const HEARTBEAT_PERIOD: Duration = Duration::from_secs(1);
/// Kraken channels that need `params.token` when a token is required.
pub const KRAKEN_PRIVATE_CHANNELS: [&str; 3] = ["executions", "balances", "level3"];

/// Kraken `connection_id` of connection `n` is this plus `n` (always above `i64::MAX`).
pub const KRAKEN_CONNECTION_ID_BASE: u64 = 13_834_774_380_200_032_777;
const TIME_IN: &str = "2023-09-25T09:04:31.742599Z";
const TIME_OUT: &str = "2023-09-25T09:04:31.742648Z";
const KRAKEN_DEPTHS: [u64; 5] = [10, 25, 100, 500, 1000];

fn kraken_stamped(v: Value, req_id: Option<&Value>) -> String {
    let v = with_field(v, "time_in", Value::from(TIME_IN));
    let v = with_field(v, "time_out", Value::from(TIME_OUT));
    with_id(v, "req_id", req_id)
}

fn kraken_failure(
    method: &str,
    symbol: Option<&str>,
    error: &str,
    req_id: Option<&Value>,
) -> String {
    let mut v = json!({"error": error, "method": method, "success": false});
    if let Some(s) = symbol {
        v = with_field(v, "symbol", Value::from(s));
    }
    kraken_stamped(v, req_id)
}

fn kraken_data(channel: &str, payload: &Value) -> String {
    json!({"channel": channel, "type": "update", "data": [payload]}).to_string()
}

/// The `status` frame Kraken sends first on connection `id`.
pub(super) fn status_frame(id: u64) -> String {
    json!({
        "channel": "status",
        "type": "update",
        "data": [{
            "api_version": "v2",
            "connection_id": KRAKEN_CONNECTION_ID_BASE + id,
            "system": "online",
            "version": "2.0.0"
        }]
    })
    .to_string()
}

impl Shared {
    /// Kraken handling of one client text frame.
    pub(super) fn kraken(&self, conn: u64, text: &str) -> Vec<String> {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return vec![kraken_stamped(
                json!({"error": "EGeneral:Invalid arguments", "success": false}),
                None,
            )];
        };
        let req_id = v.get("req_id");
        let Some(method) = v.get("method").and_then(Value::as_str) else {
            return vec![kraken_stamped(
                json!({"error": "EGeneral:Invalid arguments", "success": false}),
                req_id,
            )];
        };
        match method {
            "ping" => vec![kraken_stamped(json!({"method": "pong"}), req_id)],
            "subscribe" | "unsubscribe" => self.kraken_sub(conn, method, &v, req_id),
            other => vec![kraken_failure(
                other,
                None,
                "EGeneral:Invalid arguments",
                req_id,
            )],
        }
    }

    fn kraken_sub(
        &self,
        conn: u64,
        method: &str,
        v: &Value,
        req_id: Option<&Value>,
    ) -> Vec<String> {
        let subscribe = method == "subscribe";
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        if subscribe && st.ack_mode == AckMode::Never {
            return Vec::new();
        }
        let params = v.get("params").and_then(Value::as_object);
        let channel = params
            .and_then(|p| p.get("channel"))
            .and_then(Value::as_str);
        let (Some(params), Some(channel)) = (params, channel) else {
            return vec![kraken_failure(
                method,
                None,
                "EGeneral:Invalid arguments",
                req_id,
            )];
        };
        let symbols = match params.get("symbol") {
            None => Vec::new(),
            Some(Value::Array(a)) => {
                match a
                    .iter()
                    .map(|x| x.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                {
                    Some(list) => list,
                    None => {
                        return vec![kraken_failure(
                            method,
                            None,
                            "EGeneral:Invalid arguments",
                            req_id,
                        )]
                    }
                }
            }
            Some(_) => {
                return vec![kraken_failure(
                    method,
                    None,
                    "EGeneral:Invalid arguments",
                    req_id,
                )]
            }
        };
        let private = KRAKEN_PRIVATE_CHANNELS.contains(&channel);
        if let (true, Some(required)) = (private, &st.required_token) {
            let token = params.get("token").and_then(Value::as_str);
            if token != Some(required.as_str()) {
                return vec![kraken_failure(
                    method,
                    None,
                    "ESession:Invalid session",
                    req_id,
                )];
            }
        }
        let is_book = channel == "book";
        let depth = if is_book {
            match params.get("depth") {
                None => Some(10),
                Some(d) => d.as_u64().filter(|d| KRAKEN_DEPTHS.contains(d)),
            }
        } else {
            Some(0)
        };
        let snapshot = params
            .get("snapshot")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let data_first = st.ack_mode == AckMode::DataFirst;
        let mut out = Vec::new();

        let ack = |symbol: Option<&str>, depth: u64| -> String {
            let mut result = json!({"channel": channel});
            if subscribe {
                result = with_field(result, "snapshot", Value::from(snapshot));
            }
            if is_book {
                result = with_field(result, "depth", Value::from(depth));
            }
            if let Some(s) = symbol {
                result = with_field(result, "symbol", Value::from(s));
            }
            kraken_stamped(
                json!({"method": method, "result": result, "success": true}),
                req_id,
            )
        };

        if symbols.is_empty() {
            let Some(c) = st.conns.get_mut(&conn) else {
                return Vec::new();
            };
            let pos = c.subs.iter().position(|s| {
                s.channel == channel && s.symbols.as_ref().is_some_and(|l| l.is_empty())
            });
            if subscribe {
                if pos.is_some() {
                    return vec![kraken_failure(method, None, "Already subscribed", req_id)];
                }
                c.subs.push(Sub {
                    sid: 0,
                    channel: channel.to_owned(),
                    symbols: Some(Vec::new()),
                    seq: 0,
                    depth: depth.unwrap_or(10),
                });
            } else {
                match pos {
                    Some(i) => {
                        c.subs.remove(i);
                    }
                    None => {
                        return vec![kraken_failure(
                            method,
                            None,
                            "Subscription Not Found",
                            req_id,
                        )]
                    }
                }
            }
            return vec![ack(None, depth.unwrap_or(10))];
        }

        for symbol in &symbols {
            let existing = st.conns.get(&conn).and_then(|c| {
                c.subs.iter().position(|s| {
                    s.channel == channel
                        && s.symbols
                            .as_ref()
                            .is_some_and(|l| l.len() == 1 && l[0] == *symbol)
                })
            });
            if !subscribe {
                match (existing, st.conns.get_mut(&conn)) {
                    (Some(i), Some(c)) => {
                        let sub = c.subs.remove(i);
                        out.push(ack(Some(symbol), sub.depth));
                    }
                    _ => out.push(kraken_failure(
                        method,
                        Some(symbol),
                        "Subscription Not Found",
                        req_id,
                    )),
                }
                continue;
            }
            if let Some((error, _)) = st.rejects.get(symbol) {
                out.push(kraken_failure(method, Some(symbol), error, req_id));
                continue;
            }
            let Some(depth) = depth else {
                out.push(kraken_failure(
                    method,
                    Some(symbol),
                    "EGeneral:Invalid arguments:depth",
                    req_id,
                ));
                continue;
            };
            if existing.is_some() {
                out.push(kraken_failure(
                    method,
                    Some(symbol),
                    "Already subscribed",
                    req_id,
                ));
                continue;
            }
            let Some(c) = st.conns.get_mut(&conn) else {
                return Vec::new();
            };
            c.subs.push(Sub {
                sid: 0,
                channel: channel.to_owned(),
                symbols: Some(vec![symbol.clone()]),
                seq: 0,
                depth,
            });
            if data_first {
                if is_book {
                    out.push(st.book_snapshot(symbol));
                } else {
                    let payload = with_field(
                        ticker_payload(Venue::Kraken, symbol, 0),
                        "symbol",
                        Value::from(symbol.as_str()),
                    );
                    out.push(kraken_data(channel, &payload));
                }
                out.push(ack(Some(symbol), depth));
            } else {
                out.push(ack(Some(symbol), depth));
                if is_book && snapshot {
                    out.push(st.book_snapshot(symbol));
                }
            }
        }
        out
    }
}

impl State {
    /// Sends `payload` (with `symbol` added) on every subscription that covers
    /// `symbol`; `book` subscriptions get one book update instead.
    pub(super) fn publish_kraken(&mut self, symbol: &str, payload: Value) {
        let st = self;
        let data = with_field(payload, "symbol", Value::from(symbol));
        let has_book = st.conns.values().any(|c| {
            c.subs
                .iter()
                .any(|s| s.channel == "book" && s.matches(symbol))
        });
        let book = if has_book {
            Some(st.book_update(symbol))
        } else {
            None
        };
        for c in st.conns.values() {
            for sub in c.subs.iter().filter(|s| s.matches(symbol)) {
                let text = match (&book, sub.channel == "book") {
                    (Some(b), true) => b.clone(),
                    _ => kraken_data(&sub.channel, &data),
                };
                let _ = c.tx.try_send(Cmd::Data(text));
            }
        }
    }
}

impl Exchange {
    /// Kraken: private channels must carry this `params.token`, else the
    /// subscription is refused (`None`: not checked).
    pub fn require_token(&self, token: Option<&str>) {
        lock(&self.inner.state).required_token = token.map(str::to_owned);
    }

    /// Kraken only: `{"channel":"heartbeat"}` every second on each connection while on.
    pub fn set_heartbeat(&self, on: bool) {
        self.inner.heartbeat.send_replace(on);
    }

    /// Kraken: the next book frame (snapshot or update) for `symbol` carries a wrong checksum.
    pub fn corrupt_next_checksum(&self, symbol: &str) {
        lock(&self.inner.state).corrupt.insert(symbol.to_owned());
    }

    /// The server's current checksum of `symbol`'s book (the default book if never used).
    pub fn book_checksum(&self, symbol: &str) -> u32 {
        let st = lock(&self.inner.state);
        match st.books.get(symbol) {
            Some(b) => b.checksum(),
            None => Book::new().checksum(),
        }
    }
}
