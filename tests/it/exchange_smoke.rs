//! Smoke tests for the test exchange itself, driven by a plain tokio-tungstenite client.

use crate::support;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use resilient_ws::protocol::kraken::checksum_levels;
use serde_json::{json, Value};
use support::exchange::{raw_frame, AckMode, Exchange, Venue};
use tokio::net::TcpStream;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Error as WsError, Message};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(2);

async fn connect(ex: &Exchange) -> Client {
    let (ws, _) = connect_async(ex.url()).await.expect("connect");
    ws
}

async fn send(ws: &mut Client, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

async fn next_text(ws: &mut Client) -> String {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("timed out waiting for a frame")
            .expect("stream ended")
            .expect("websocket error");
        if let Message::Text(t) = msg {
            return t.as_str().to_owned();
        }
    }
}

async fn next_json(ws: &mut Client) -> Value {
    let text = next_text(ws).await;
    serde_json::from_str(&text).expect("server sent invalid JSON")
}

/// (price text, qty text) pairs of one side of a Kraken book frame, wire text preserved.
fn side(text: &str, key: &str) -> Vec<(String, String)> {
    use serde_json::value::RawValue;
    #[derive(serde::Deserialize)]
    struct Level<'a> {
        #[serde(borrow)]
        price: &'a RawValue,
        #[serde(borrow)]
        qty: &'a RawValue,
    }
    #[derive(serde::Deserialize)]
    struct Frame<'a> {
        #[serde(borrow)]
        data: Vec<std::collections::HashMap<String, &'a RawValue>>,
    }
    let frame: Frame = serde_json::from_str(text).expect("book frame");
    let raw = frame.data[0].get(key).expect("side present");
    let levels: Vec<Level> = serde_json::from_str(raw.get()).expect("levels");
    levels
        .iter()
        .map(|l| (l.price.get().to_owned(), l.qty.get().to_owned()))
        .collect()
}

fn price_key(p: &str) -> u64 {
    p.replace('.', "").parse().expect("price")
}

/// Applies a book frame's level changes (qty 0 deletes) to a local text book.
fn apply(book: &mut [Vec<(String, String)>; 2], text: &str) {
    for (i, key) in ["asks", "bids"].iter().enumerate() {
        for (p, q) in side(text, key) {
            let levels = &mut book[i];
            levels.retain(|(bp, _)| price_key(bp) != price_key(&p));
            if q.trim_start_matches(['0', '.']).is_empty() {
                continue;
            }
            levels.push((p, q));
        }
        if i == 0 {
            book[i].sort_by_key(|(p, _)| price_key(p));
        } else {
            book[i].sort_by_key(|(p, _)| std::cmp::Reverse(price_key(p)));
        }
    }
}

fn checksum_of(book: &[Vec<(String, String)>; 2]) -> u32 {
    let a: Vec<(&str, &str)> = book[0]
        .iter()
        .map(|(p, q)| (p.as_str(), q.as_str()))
        .collect();
    let b: Vec<(&str, &str)> = book[1]
        .iter()
        .map(|(p, q)| (p.as_str(), q.as_str()))
        .collect();
    checksum_levels(&a, &b)
}

#[tokio::test]
async fn kalshi_subscribe_ack_data_seq_and_fresh_sids() {
    let ex = Exchange::start(Venue::Kalshi).await.unwrap();
    let mut ws = connect(&ex).await;
    send(
        &mut ws,
        json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["ticker"], "market_tickers": ["KXBTC-25"]}}),
    )
    .await;
    let ack = next_json(&mut ws).await;
    assert_eq!(ack["id"], 1);
    assert_eq!(ack["type"], "subscribed");
    assert_eq!(ack["msg"]["channel"], "ticker");
    let sid1 = ack["msg"]["sid"].as_u64().unwrap();
    assert_eq!(ex.subscriptions(), 1);
    assert!(
        ex.wait_received(|r| r.len() == 1 && r[0].conn == 1, WAIT)
            .await
    );

    ex.publish("KXBTC-25", json!({"price": 51}));
    ex.publish("OTHER", json!({"price": 1}));
    ex.publish("KXBTC-25", json!({"price": 52}));
    let d1 = next_json(&mut ws).await;
    assert_eq!(
        d1,
        json!({"type": "ticker", "sid": sid1, "seq": 1, "msg": {"price": 51, "market_ticker": "KXBTC-25"}})
    );
    let d2 = next_json(&mut ws).await;
    assert_eq!(d2["seq"], 2);
    assert_eq!(d2["msg"]["price"], 52);

    ex.skip_seq("KXBTC-25", 3);
    ex.publish("KXBTC-25", json!({}));
    assert_eq!(next_json(&mut ws).await["seq"], 6);
    ex.repeat_seq("KXBTC-25");
    ex.publish("KXBTC-25", json!({}));
    assert_eq!(next_json(&mut ws).await["seq"], 6);
    ex.publish("KXBTC-25", json!({}));
    assert_eq!(next_json(&mut ws).await["seq"], 7);

    send(
        &mut ws,
        json!({"id": 2, "cmd": "unsubscribe", "params": {"sids": [sid1]}}),
    )
    .await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"id": 2, "sid": sid1, "seq": 7, "type": "unsubscribed"})
    );
    assert_eq!(ex.subscriptions(), 0);
    // The sid is gone: Kalshi's code 7.
    send(
        &mut ws,
        json!({"id": 3, "cmd": "update_subscription", "params": {"sids": [sid1], "action": "add_markets", "market_tickers": ["X"]}}),
    )
    .await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"id": 3, "type": "error", "msg": {"code": 7, "msg": "Unknown subscription ID"}})
    );

    // Malformed text gets an error, not a crash.
    ws.send(Message::text("{not json")).await.unwrap();
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "error", "msg": {"code": 1, "msg": "Unable to process message"}})
    );

    // Rejected ticker.
    ex.reject("BAD-1", "Market not found", 11);
    send(
        &mut ws,
        json!({"id": 4, "cmd": "subscribe", "params": {"channels": ["ticker"], "market_tickers": ["BAD-1"]}}),
    )
    .await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"id": 4, "type": "error", "msg": {"code": 11, "msg": "Market not found"}})
    );

    // A second connection gets a fresh sid, and seq restarts at 1.
    let mut ws2 = connect(&ex).await;
    assert!(ex.wait_live(2, WAIT).await);
    send(
        &mut ws2,
        json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta", "ticker"], "market_tickers": ["KXBTC-25"]}}),
    )
    .await;
    let ack2 = next_json(&mut ws2).await;
    assert_eq!(ack2["msg"]["channel"], "orderbook_delta");
    let sid2 = ack2["msg"]["sid"].as_u64().unwrap();
    assert!(sid2 > sid1);
    ex.publish("KXBTC-25", json!({"x": 1}));
    let d = next_json(&mut ws2).await;
    assert_eq!(
        (d["type"].as_str(), d["sid"].as_u64(), d["seq"].as_u64()),
        (Some("orderbook_delta"), Some(sid2), Some(1))
    );
    assert_eq!(ex.handshakes(), 2);
    ex.shutdown().await;
}

#[tokio::test]
async fn kalshi_data_first_and_never() {
    let ex = Exchange::start(Venue::Kalshi).await.unwrap();
    let mut ws = connect(&ex).await;
    ex.set_ack_mode(AckMode::DataFirst);
    send(&mut ws, json!({"id": 7, "cmd": "subscribe", "params": {"channels": ["ticker"], "market_tickers": ["A"]}})).await;
    let data = next_json(&mut ws).await;
    assert_eq!(data["type"], "ticker");
    assert_eq!(data["seq"], 1);
    assert_eq!(data["msg"]["market_ticker"], "A");
    let ack = next_json(&mut ws).await;
    assert_eq!(ack["type"], "subscribed");
    assert_eq!(ack["msg"]["sid"], data["sid"]);

    ex.set_ack_mode(AckMode::Never);
    send(&mut ws, json!({"id": 8, "cmd": "subscribe", "params": {"channels": ["ticker"], "market_tickers": ["B"]}})).await;
    send(&mut ws, json!({"id": 9, "cmd": "list_subscriptions"})).await;
    // Only the reply to id 9 arrives: the subscribe was swallowed.
    assert_eq!(
        next_json(&mut ws).await,
        json!({"id": 9, "type": "ok", "msg": [{"channel": "ticker", "sid": data["sid"]}]})
    );
    assert_eq!(ex.subscriptions(), 1);
    ex.shutdown().await;
}

#[tokio::test]
async fn kraken_status_acks_failures_and_ping() {
    let ex = Exchange::start(Venue::Kraken).await.unwrap();
    ex.reject("XBT/USD", "Currency pair not supported XBT/USD", 0);
    let mut ws = connect(&ex).await;
    let status = next_json(&mut ws).await;
    assert_eq!(status["channel"], "status");
    assert_eq!(status["type"], "update");
    assert_eq!(status["data"][0]["system"], "online");
    assert_eq!(status["data"][0]["api_version"], "v2");
    let id = status["data"][0]["connection_id"].as_u64().unwrap();
    assert!(id > i64::MAX as u64);

    send(
        &mut ws,
        json!({"method": "subscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD", "XBT/USD", "ETH/USD"]}, "req_id": 42}),
    )
    .await;
    let a1 = next_json(&mut ws).await;
    assert_eq!(a1["method"], "subscribe");
    assert_eq!(a1["success"], true);
    assert_eq!(a1["req_id"], 42);
    assert_eq!(
        a1["result"],
        json!({"channel": "ticker", "snapshot": true, "symbol": "BTC/USD"})
    );
    assert!(a1["time_in"].is_string() && a1["time_out"].is_string());
    let f = next_json(&mut ws).await;
    assert_eq!(f["success"], false);
    assert_eq!(f["symbol"], "XBT/USD");
    assert_eq!(f["error"], "Currency pair not supported XBT/USD");
    assert_eq!(f["method"], "subscribe");
    assert_eq!(f["req_id"], 42);
    assert!(f.get("result").is_none());
    let a3 = next_json(&mut ws).await;
    assert_eq!(a3["result"]["symbol"], "ETH/USD");
    assert_eq!(ex.subscriptions(), 2);

    ex.publish("ETH/USD", json!({"last": 1.5}));
    assert_eq!(
        next_json(&mut ws).await,
        json!({"channel": "ticker", "type": "update", "data": [{"last": 1.5, "symbol": "ETH/USD"}]})
    );

    send(&mut ws, json!({"method": "ping", "req_id": 101})).await;
    let pong = next_json(&mut ws).await;
    assert_eq!(pong["method"], "pong");
    assert_eq!(pong["req_id"], 101);
    assert!(pong["time_in"].is_string());

    send(&mut ws, json!({"method": "unsubscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD"]}, "req_id": 43})).await;
    let u = next_json(&mut ws).await;
    assert_eq!(
        (u["method"].as_str(), u["success"].as_bool()),
        (Some("unsubscribe"), Some(true))
    );
    assert_eq!(u["result"]["symbol"], "BTC/USD");
    assert_eq!(ex.subscriptions(), 1);

    ws.send(Message::text("\u{0}garbage")).await.unwrap();
    let e = next_json(&mut ws).await;
    assert_eq!(e["success"], false);
    ex.shutdown().await;
}

#[tokio::test]
async fn kraken_book_snapshot_and_updates_checksum() {
    let ex = Exchange::start(Venue::Kraken).await.unwrap();
    let mut ws = connect(&ex).await;
    let _status = next_json(&mut ws).await;
    send(
        &mut ws,
        json!({"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 10}, "req_id": 1}),
    )
    .await;
    let ack = next_json(&mut ws).await;
    assert_eq!(
        ack["result"],
        json!({"channel": "book", "depth": 10, "snapshot": true, "symbol": "BTC/USD"})
    );
    let snap = next_text(&mut ws).await;
    let v: Value = serde_json::from_str(&snap).unwrap();
    assert_eq!(v["type"], "snapshot");
    assert_eq!(v["data"][0]["symbol"], "BTC/USD");
    let mut book = [side(&snap, "asks"), side(&snap, "bids")];
    assert_eq!(book[0].len(), 10);
    assert_eq!(book[1][0], ("45283.5".to_owned(), "0.10000000".to_owned()));
    assert_eq!(book[0][0], ("45285.2".to_owned(), "0.00100000".to_owned()));
    assert_eq!(checksum_of(&book), 3_310_070_434);
    assert_eq!(v["data"][0]["checksum"].as_u64(), Some(3_310_070_434));

    for _ in 0..4 {
        ex.publish("BTC/USD", json!({}));
        let upd = next_text(&mut ws).await;
        let v: Value = serde_json::from_str(&upd).unwrap();
        assert_eq!(v["type"], "update");
        apply(&mut book, &upd);
        assert_eq!(
            v["data"][0]["checksum"].as_u64(),
            Some(checksum_of(&book) as u64)
        );
    }
    assert_eq!(ex.book_checksum("BTC/USD"), checksum_of(&book));

    ex.corrupt_next_checksum("BTC/USD");
    ex.publish("BTC/USD", json!({}));
    let upd = next_text(&mut ws).await;
    apply(&mut book, &upd);
    let v: Value = serde_json::from_str(&upd).unwrap();
    assert_ne!(
        v["data"][0]["checksum"].as_u64(),
        Some(checksum_of(&book) as u64)
    );
    ex.publish("BTC/USD", json!({}));
    let upd = next_text(&mut ws).await;
    apply(&mut book, &upd);
    let v: Value = serde_json::from_str(&upd).unwrap();
    assert_eq!(
        v["data"][0]["checksum"].as_u64(),
        Some(checksum_of(&book) as u64)
    );

    // Invalid depth is refused per symbol.
    send(&mut ws, json!({"method": "subscribe", "params": {"channel": "book", "symbol": ["ETH/USD"], "depth": 7}, "req_id": 2})).await;
    let f = next_json(&mut ws).await;
    assert_eq!(
        (f["success"].as_bool(), f["symbol"].as_str()),
        (Some(false), Some("ETH/USD"))
    );
    ex.shutdown().await;
}

#[tokio::test]
async fn close_all_delivers_code_and_reason() {
    let ex = Exchange::start(Venue::Raw).await.unwrap();
    let mut ws = connect(&ex).await;
    assert!(ex.wait_live(1, WAIT).await);
    ex.send_text_all("before");
    ex.close_all(4001, "bye");
    assert_eq!(next_text(&mut ws).await, "before");
    let msg = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match msg {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::from(4001));
            assert_eq!(frame.reason.as_str(), "bye");
        }
        other => panic!("expected close, got {other:?}"),
    }
    // Polling again flushes the client's close reply; the server then drops the TCP.
    assert!(tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .is_none());
    assert!(ex.wait_live(0, WAIT).await);
    ex.shutdown().await;
}

#[tokio::test]
async fn abort_all_resets_without_close_frame() {
    let ex = Exchange::start(Venue::Raw).await.unwrap();
    let mut ws = connect(&ex).await;
    assert!(ex.wait_live(1, WAIT).await);
    ex.abort_all();
    match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
        Some(Err(WsError::Io(e))) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        other => panic!("expected a reset, got {other:?}"),
    }
    assert!(ex.wait_live(0, WAIT).await);
    ex.shutdown().await;
}

#[tokio::test]
async fn raw_frames_and_publish_on_raw() {
    let ex = Exchange::start(Venue::Raw).await.unwrap();
    let mut ws = connect(&ex).await;
    assert!(ex.wait_live(1, WAIT).await);
    ex.send_raw_all(raw_frame(0x1, true, 0, b"hi", false));
    assert_eq!(next_text(&mut ws).await, "hi");
    let long = "x".repeat(300);
    ex.send_raw_all(raw_frame(0x1, true, 0, long.as_bytes(), false));
    assert_eq!(next_text(&mut ws).await, long);
    ex.publish("S", json!({"a": 1}));
    assert_eq!(next_json(&mut ws).await, json!({"a": 1, "symbol": "S"}));
    // A masked server frame is a protocol violation for the client.
    ex.send_raw_all(raw_frame(0x1, true, 0, b"bad", true));
    assert!(matches!(
        tokio::time::timeout(WAIT, ws.next()).await.unwrap(),
        Some(Err(_))
    ));
    assert_eq!(raw_frame(0x2, true, 0, &vec![0u8; 70_000], false)[1], 127);
    ex.shutdown().await;
}

#[tokio::test]
async fn refuse_then_accept_again_on_same_port() {
    let ex = Exchange::start(Venue::Raw).await.unwrap();
    let addr = ex.addr();
    ex.set_refuse(true);
    match connect_async(ex.url()).await {
        Err(WsError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("expected refusal, got {:?}", other.map(|_| ())),
    }
    ex.set_refuse(false);
    assert_eq!(ex.addr(), addr);
    let _ws = connect(&ex).await;
    assert!(ex.wait_handshakes(1, WAIT).await);
    ex.shutdown().await;
    assert!(connect_async(ex.url()).await.is_err());
}

#[tokio::test]
async fn waits_time_out_and_silence_keeps_socket_open() {
    let ex = Exchange::start(Venue::Kalshi).await.unwrap();
    let short = Duration::from_millis(50);
    assert!(!ex.wait_handshakes(1, short).await);
    assert!(!ex.wait_live(1, short).await);
    assert!(!ex.wait_received(|r| !r.is_empty(), short).await);
    assert!(ex.wait_live(0, short).await);

    let mut ws = connect(&ex).await;
    assert!(ex.wait_live(1, WAIT).await);
    ex.set_silent(true);
    send(&mut ws, json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["ticker"], "market_tickers": ["A"]}})).await;
    assert!(
        !ex.wait_received(|r| !r.is_empty(), Duration::from_millis(100))
            .await
    );
    assert_eq!(ex.live_connections(), 1);
    ex.set_silent(false);
    assert!(ex.wait_received(|r| r.len() == 1, WAIT).await);
    assert_eq!(next_json(&mut ws).await["type"], "subscribed");
    ex.clear_received();
    assert!(ex.received().is_empty());
    ex.shutdown().await;
}

#[tokio::test]
async fn handshake_delay_forever_then_normal() {
    let ex = Exchange::start(Venue::Raw).await.unwrap();
    ex.set_handshake_delay(Some(Duration::MAX));
    let stuck = tokio::time::timeout(Duration::from_millis(100), connect_async(ex.url())).await;
    assert!(stuck.is_err(), "handshake must not complete");
    assert_eq!(ex.handshakes(), 0);
    ex.set_handshake_delay(None);
    let _ws = connect(&ex).await;
    assert!(ex.wait_handshakes(1, WAIT).await);
    ex.shutdown().await;
}

#[tokio::test]
async fn kraken_heartbeat_and_stream() {
    let ex = Exchange::start(Venue::Kraken).await.unwrap();
    let mut ws = connect(&ex).await;
    let _status = next_json(&mut ws).await;
    ex.set_heartbeat(true);
    assert_eq!(next_json(&mut ws).await, json!({"channel": "heartbeat"}));
    ex.set_heartbeat(false);

    send(&mut ws, json!({"method": "subscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD"]}, "req_id": 1})).await;
    assert_eq!(next_json(&mut ws).await["success"], true);
    let stream = ex.start_stream(vec!["BTC/USD".to_owned()], Duration::from_millis(10));
    for _ in 0..3 {
        let v = next_json(&mut ws).await;
        assert_eq!(
            (v["channel"].as_str(), v["data"][0]["symbol"].as_str()),
            (Some("ticker"), Some("BTC/USD"))
        );
    }
    ex.shutdown().await;
    assert!(stream.await.unwrap_err().is_cancelled());
    assert_eq!(ex.live_connections(), 0);
}
