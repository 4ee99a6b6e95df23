//! The Kalshi-style venue: server-assigned `sid`s, one `seq` per sid, errors as
//! `{"type":"error","msg":{"code":N,"msg":"..."}}`, `ok` replies to
//! `update_subscription`. Fault knobs: a seq gap (`skip_seq`) and a repeated seq
//! (`repeat_seq`) on the next publish of a symbol.

use serde_json::{json, Value};

use super::state::{string_list, u64_list, with_field, with_id, Cmd, Shared, State, Sub};
use super::{ticker_payload, AckMode, Exchange, Venue, KALSHI_PRIVATE_CHANNELS};
use crate::support::tasks::lock;

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
                c.subs.push(sub);
                out.push(with_id(
                    json!({"type": "subscribed", "msg": {"channel": channel, "sid": sid}}),
                    "id",
                    id,
                ));
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
            other => {
                if other == "update_subscription" {
                    if let (Some(p), Some(c)) = (params, st.conns.get_mut(&conn)) {
                        let sids = u64_list(p.get("sids"))
                            .or_else(|| u64_list(p.get("sid")))
                            .unwrap_or_default();
                        let tickers = string_list(p.get("market_tickers")).unwrap_or_default();
                        let action = p.get("action").and_then(Value::as_str).unwrap_or("");
                        for sub in c.subs.iter_mut().filter(|s| sids.contains(&s.sid)) {
                            if let Some(list) = sub.symbols.as_mut() {
                                match action {
                                    "add_markets" => {
                                        for t in &tickers {
                                            if !list.contains(t) {
                                                list.push(t.clone());
                                            }
                                        }
                                    }
                                    "delete_markets" => list.retain(|s| !tickers.contains(s)),
                                    _ => {}
                                }
                            }
                        }
                    }
                }
                match id {
                    Some(_) => vec![with_id(json!({"type": "ok"}), "id", id)],
                    None => Vec::new(),
                }
            }
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
