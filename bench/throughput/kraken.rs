//! The Kraken WebSocket v2 side of the bench: ticker frames as the server
//! blasts them, the server's answers to subscribe/unsubscribe/ping requests,
//! and the raw routing baseline's connection and parse.
//!
//! Wire facts (Kraken docs, <https://docs.kraken.com/api/docs/websocket-v2/ticker>,
//! sections "Subscribe Request" and "Snapshot/Update Response"): a subscribe
//! request names `params.channel` and a list `params.symbol`; the venue acks
//! each symbol separately (`{"method":"subscribe","result":{"channel",
//! "symbol","snapshot"},"success":true,"time_in","time_out","req_id"}`, the
//! shape `tests/support/exchange/kraken.rs` sends and the adapter accepts);
//! ticker data is `{"channel":"ticker","type":"update","data":[{"symbol",
//! "bid","bid_qty","ask","ask_qty","last","volume","vwap","low","high",
//! "change","change_pct","timestamp"}]}`. The server sends no snapshot after
//! the ack: every run is a pure stream of updates, so each side counts
//! exactly the frames blasted.

use std::fmt;

use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::Deserializer;

use super::*;

/// The Kraken-style symbol of subscription `i` (`SYM007/USD`).
pub(crate) fn kraken_symbol(i: usize) -> String {
    format!("SYM{i:03}/USD")
}

/// One Kraken v2 ticker update frame (about 295 bytes) for symbol `idx`, its
/// numbers varied by `n` so that no two consecutive frames are identical.
pub(crate) fn kraken_ticker_payload(out: &mut Vec<u8>, idx: u64, n: u64) {
    let tick = n % 1000;
    let bid = 450_000 + tick; // in tenths
    let ask = bid + 17;
    let last = bid + 8;
    let _ = write!(
        out,
        concat!(
            r#"{{"channel":"ticker","type":"update","data":[{{"symbol":"SYM{:03}/USD","#,
            r#""bid":{}.{},"bid_qty":0.{:08},"ask":{}.{},"ask_qty":1.{:08},"last":{}.{},"#,
            r#""volume":{}.{:08},"vwap":45012.3,"low":44210.0,"high":46118.9,"#,
            r#""change":{}.{},"change_pct":0.{:02},"timestamp":"2026-12-03T12:{:02}:{:02}.{:06}Z"}}]}}"#
        ),
        idx,
        bid / 10,
        bid % 10,
        n % 100_000_000,
        ask / 10,
        ask % 10,
        (n * 7) % 100_000_000,
        last / 10,
        last % 10,
        1_000 + n / 1_000,
        n % 100_000_000,
        tick / 10,
        tick % 10,
        tick % 100,
        (n / 60_000_000) % 60,
        (n / 1_000_000) % 60,
        n % 1_000_000,
    );
}

/// `frames` Kraken ticker frames round-robin over symbols `0..subs`, as one
/// pre-encoded buffer. Returns it and the mean payload size.
pub(crate) fn build_kraken_stream(frames: u64, subs: u64) -> (Arc<Vec<u8>>, f64) {
    let mut out = Vec::with_capacity(frames as usize * 300);
    let mut payload = Vec::with_capacity(320);
    let mut payload_bytes = 0u64;
    for n in 0..frames {
        payload.clear();
        kraken_ticker_payload(&mut payload, n % subs, n);
        payload_bytes += payload.len() as u64;
        push_ws_text(&mut out, &payload);
    }
    (Arc::new(out), payload_bytes as f64 / frames as f64)
}

/// The server's answer to one Kraken request (`method` set): one ack per
/// symbol of a subscribe or unsubscribe, a pong to a ping. Returns the frames
/// to send and how many subscriptions were added.
pub(crate) fn kraken_reply(request: &serde_json::Value) -> (Vec<String>, usize) {
    let method = request["method"].as_str().unwrap_or("");
    let req_id = request["req_id"].as_u64().unwrap_or(0);
    let stamps =
        r#""time_in":"2026-12-03T12:00:00.000000Z","time_out":"2026-12-03T12:00:00.000010Z""#;
    match method {
        "subscribe" | "unsubscribe" => {
            let channel = request["params"]["channel"].as_str().unwrap_or("");
            let snapshot = if method == "subscribe" {
                let snapshot = request["params"]["snapshot"].as_bool().unwrap_or(true);
                format!(r#","snapshot":{snapshot}"#)
            } else {
                String::new()
            };
            let symbols = request["params"]["symbol"]
                .as_array()
                .map(|list| list.iter().filter_map(|s| s.as_str()).collect::<Vec<_>>())
                .unwrap_or_default();
            let acks: Vec<String> = symbols
                .iter()
                .map(|symbol| {
                    format!(
                        r#"{{"method":"{method}","result":{{"channel":"{channel}","symbol":"{symbol}"{snapshot}}},"success":true,{stamps},"req_id":{req_id}}}"#
                    )
                })
                .collect();
            let added = if method == "subscribe" { acks.len() } else { 0 };
            (acks, added)
        }
        "ping" => (
            vec![format!(r#"{{"method":"pong",{stamps},"req_id":{req_id}}}"#)],
            0,
        ),
        _ => (Vec::new(), 0),
    }
}

/// The baseline's connection: one subscribe request for all `n` symbols, as a
/// hand-written client would send it, and the symbol -> index map once every
/// symbol is acknowledged.
pub(crate) async fn raw_connect_kraken(url: &str, n: usize) -> (RawWs, HashMap<String, usize>) {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true)
        .await
        .expect("raw connect");
    let symbols: Vec<String> = (0..n).map(kraken_symbol).collect();
    let request = serde_json::json!({
        "method": "subscribe",
        "params": {"channel": "ticker", "symbol": symbols},
        "req_id": 1,
    });
    ws.send(Message::text(request.to_string()))
        .await
        .expect("raw subscribe");
    let wanted: HashMap<String, usize> = symbols
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, i))
        .collect();
    let mut acked = HashMap::with_capacity(n);
    while acked.len() < n {
        let Some(Ok(Message::Text(text))) = ws.next().await else {
            panic!("raw: connection ended before the acks");
        };
        let ack: serde_json::Value = serde_json::from_str(text.as_str()).expect("ack json");
        if ack["method"] == "subscribe" && ack["success"] == true {
            let symbol = ack["result"]["symbol"].as_str().expect("ack symbol");
            let idx = *wanted.get(symbol).expect("acked symbol was requested");
            acked.insert(symbol.to_owned(), idx);
        }
    }
    (ws, acked)
}

/// The routing fields of a Kraken frame, borrowed, as the adapter reads them:
/// `channel`, `type` and the first data item's `symbol`.
#[derive(Deserialize)]
pub(crate) struct KrakenRouting<'a> {
    #[serde(default, borrow)]
    pub(crate) channel: Option<&'a str>,
    #[serde(rename = "type", default, borrow)]
    pub(crate) kind: Option<&'a str>,
    #[serde(default, borrow)]
    pub(crate) data: Option<FirstItem<'a>>,
}

/// The first item of `data` (its `symbol`); the other items are skipped
/// without allocating, as a careful hand-written client would.
#[derive(Default)]
pub(crate) struct FirstItem<'a> {
    pub(crate) symbol: Option<&'a str>,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(default, borrow)]
    symbol: Option<&'a str>,
}

impl<'de: 'a, 'a> Deserialize<'de> for FirstItem<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct First;
        impl<'de> Visitor<'de> for First {
            type Value = FirstItem<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of data items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FirstItem<'de>, A::Error> {
                let symbol = seq.next_element::<Head<'de>>()?.and_then(|h| h.symbol);
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstItem { symbol })
            }
        }
        deserializer.deserialize_seq(First)
    }
}
