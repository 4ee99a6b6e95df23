//! Kalshi as its AsyncAPI spec for WebSocket v2 describes it (issue 20):
//! the shapes in `tests/data/kalshi/shapes.json` and the examples in
//! `tests/data/kalshi/examples.json` are derived from the spec
//! (<https://docs.kalshi.com/asyncapi.yaml>, checked 2026-12-05; see
//! `src/protocol/VENUES.md`, "Kalshi").
//!
//! - every example fits its shape (the two fixtures agree);
//! - every frame the test venue sends in a session that uses every command
//!   and fault knob fits the shape of its type, so the test venue cannot
//!   drift from the spec without this failing;
//! - every example goes through the adapter to the documented outcome, and
//!   every data example through a live session to its subscription.

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use resilient_ws::{Backoff, Client, Config, Inbound, Kalshi, Protocol, ServerId, Topic, Update};
use serde_json::{json, Map, Value};
use support::exchange::{kalshi_delta, ticker_payload, Exchange, Venue};
use support::{next, SOON};
use tungstenite::Message;

const SHAPES: &str = include_str!("../data/kalshi/shapes.json");
const EXAMPLES: &str = include_str!("../data/kalshi/examples.json");

fn shapes() -> Map<String, Value> {
    let Value::Object(map) = serde_json::from_str(SHAPES).unwrap() else {
        panic!("shapes.json is an object");
    };
    map
}

fn examples() -> Vec<(String, Value)> {
    let all: Value = serde_json::from_str(EXAMPLES).unwrap();
    all["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["expect"].as_str().unwrap().to_owned(), e["frame"].clone()))
        .collect()
}

/// A fixed-point decimal string with `min..=max` decimals.
fn decimal(text: &str, min: usize, max: usize) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    match digits.split_once('.') {
        Some((whole, frac)) => {
            !whole.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && (min..=max).contains(&frac.len())
                && frac.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// Whether `value` is of the shape's type word (see shapes.json `_about`).
fn fits(word: &str, value: &Value) -> bool {
    word.split('|').any(|word| match word {
        "string" => value.is_string(),
        "int" => value.is_i64() || value.is_u64(),
        "uint" => value.is_u64(),
        "number" => value.is_number(),
        "bool" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "null" => value.is_null(),
        "dollars" => value.as_str().is_some_and(|t| decimal(t, 2, 8)),
        "fp" => value.as_str().is_some_and(|t| decimal(t, 2, 2)),
        "side" => matches!(value.as_str(), Some("yes" | "no")),
        "book_side" => matches!(value.as_str(), Some("bid" | "ask")),
        // The spec's enum: retired codes 6, 16 and 17 are never sent.
        "code" => value
            .as_u64()
            .is_some_and(|c| (1..=28).contains(&c) && ![6, 16, 17].contains(&c)),
        "uuid" => value.as_str().is_some_and(|t| {
            let parts: Vec<&str> = t.split('-').collect();
            parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
                && parts
                    .iter()
                    .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
        }),
        "datetime" => value
            .as_str()
            .is_some_and(|t| t.len() >= 20 && t.as_bytes()[10] == b'T' && t.ends_with('Z')),
        "levels" => value.as_array().is_some_and(|levels| {
            levels.iter().all(|level| {
                level.as_array().is_some_and(|pair| {
                    pair.len() == 2 && fits("dollars", &pair[0]) && fits("fp", &pair[1])
                })
            })
        }),
        other => panic!("shapes.json: unknown type word {other}"),
    })
}

/// Checks `frame` against the shape of its `type`; the error says what is off.
fn check(shapes: &Map<String, Value>, frame: &Value) -> Result<(), String> {
    let kind = frame["type"].as_str().ok_or("no type")?;
    let shape = shapes
        .get(kind)
        .ok_or(format!("undocumented type {kind}"))?;
    let optional = shape["optional"].as_object().cloned().unwrap_or_default();
    for (field, word) in shape["top"].as_object().unwrap() {
        let value = frame.get(field).ok_or(format!("{kind}: no {field}"))?;
        if !fits(word.as_str().unwrap(), value) {
            return Err(format!("{kind}: {field} = {value} is not {word}"));
        }
    }
    let msg = frame.get("msg");
    for (field, word) in shape["msg"].as_object().unwrap() {
        let value = msg
            .and_then(|m| m.get(field))
            .ok_or(format!("{kind}: no msg.{field}"))?;
        if !fits(word.as_str().unwrap(), value) {
            return Err(format!("{kind}: msg.{field} = {value} is not {word}"));
        }
    }
    let top = frame.as_object().unwrap().iter();
    let inner = msg.and_then(Value::as_object).into_iter().flatten();
    for (field, value) in top.chain(inner) {
        if let Some(word) = optional.get(field) {
            if !fits(word.as_str().unwrap(), value) {
                return Err(format!("{kind}: {field} = {value} is not {word}"));
            }
        }
    }
    Ok(())
}

#[test]
fn every_spec_example_fits_its_shape_and_every_shape_has_an_example() {
    let shapes = shapes();
    let mut covered = BTreeSet::new();
    for (_, frame) in examples() {
        check(&shapes, &frame).unwrap_or_else(|e| panic!("{e}: {frame}"));
        covered.insert(frame["type"].as_str().unwrap().to_owned());
    }
    let documented: BTreeSet<String> = shapes
        .keys()
        .filter(|k| !k.starts_with('_'))
        .cloned()
        .collect();
    assert_eq!(covered, documented);
    // The shapes catch what the migration removed: integer prices and sizes.
    let legacy = json!({"type": "orderbook_delta", "sid": 1, "seq": 2,
        "msg": {"market_ticker": "A", "market_id": "9b0f6b43-5b68-4f9f-9f02-9a2d1b8ac1a1",
                "price": 96, "delta": -54, "side": "yes"}});
    assert!(check(&shapes, &legacy).is_err());
    let retired =
        json!({"id": 1, "type": "error", "msg": {"code": 6, "msg": "Already subscribed"}});
    assert!(check(&shapes, &retired).is_err());
}

#[test]
fn every_spec_example_classifies_as_documented() {
    for (expect, frame) in examples() {
        let text = frame.to_string();
        let inbound = Kalshi::new().classify(&text);
        let sid = frame["sid"].as_u64().map(ServerId::Num);
        let seq = frame["seq"].as_u64();
        let ok = match (expect.as_str(), &inbound) {
            ("subscribed", Inbound::Subscribed { server_id, .. }) => {
                Some(server_id) == frame["msg"]["sid"].as_u64().map(ServerId::Num).as_ref()
            }
            ("unsubscribed", Inbound::Unsubscribed { req_id }) => *req_id == frame["id"].as_u64(),
            (
                "response",
                Inbound::Response {
                    req_id,
                    error: None,
                },
            ) => Some(*req_id) == frame["id"].as_u64(),
            (
                "sequenced response",
                Inbound::Sequenced {
                    server_id,
                    seq: s,
                    then,
                },
            ) => {
                Some(server_id) == sid.as_ref()
                    && Some(*s) == seq
                    && matches!(**then, Inbound::Response { req_id, error: None } if Some(req_id) == frame["id"].as_u64())
            }
            ("rejected", Inbound::Rejected { req_id, error, .. }) => {
                *req_id == frame["id"].as_u64() && error.code == frame["msg"]["code"].as_i64()
            }
            ("ended", Inbound::Ended { server_id, error }) => {
                Some(server_id) == sid.as_ref() && error.code == frame["msg"]["code"].as_i64()
            }
            (
                "data",
                Inbound::Data {
                    server_id,
                    seq: s,
                    payload,
                    ..
                },
            ) => {
                let msg = frame["msg"].to_string();
                Some(server_id) == sid.as_ref() && *s == seq && *payload == Some(msg.as_str())
            }
            _ => false,
        };
        assert!(ok, "{expect}: {text} -> {inbound:?}");
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Ws, command: Value) {
    ws.send(Message::text(command.to_string())).await.unwrap();
}

/// The next `expected` frames the test venue sends over `ws`.
async fn drain(ws: &mut Ws, into: &mut Vec<Value>, expected: usize) {
    let start = into.len();
    while into.len() < start + expected {
        match tokio::time::timeout(SOON, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => into.push(serde_json::from_str(&text).unwrap()),
            Ok(Some(Ok(_))) => {}
            other => panic!("venue stopped after {} frames: {other:?}", into.len()),
        }
    }
}

#[tokio::test]
async fn every_frame_the_test_venue_sends_fits_the_spec() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    exchange.set_book_snapshots(true);
    let (mut ws, _) = tokio_tungstenite::connect_async(exchange.url())
        .await
        .unwrap();
    let mut seen = Vec::new();
    // subscribe: ticker, and a book (ack + one snapshot).
    send(&mut ws, json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["ticker"], "market_tickers": ["A"]}})).await;
    drain(&mut ws, &mut seen, 1).await;
    send(&mut ws, json!({"id": 2, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_ticker": "A"}})).await;
    drain(&mut ws, &mut seen, 2).await;
    let book_sid = seen[1]["msg"]["sid"].as_u64().unwrap();
    // Data: a ticker and a delta (publish goes to both sids).
    exchange.publish("A", ticker_payload(Venue::Kalshi, "A", 7));
    drain(&mut ws, &mut seen, 2).await;
    seen.truncate(seen.len() - 1); // the ticker payload on the book sid is not a delta
    exchange.publish(
        "A",
        kalshi_delta("0.9600", "-54.00", "yes", 1_669_149_841_000),
    );
    drain(&mut ws, &mut seen, 2).await;
    seen.remove(seen.len() - 2); // the delta payload on the ticker sid is not a ticker
                                 // update_subscription: add, get_snapshot, and refusals.
    send(&mut ws, json!({"id": 3, "cmd": "update_subscription", "params": {"sids": [book_sid], "market_tickers": ["B"], "action": "add_markets"}})).await;
    send(&mut ws, json!({"id": 4, "cmd": "update_subscription", "params": {"sid": book_sid, "market_tickers": ["A", "B"], "action": "get_snapshot"}})).await;
    send(&mut ws, json!({"id": 5, "cmd": "update_subscription", "params": {"sids": [999], "action": "add_markets"}})).await;
    send(&mut ws, json!({"id": 6, "cmd": "update_subscription", "params": {"sids": [1, 2], "action": "add_markets"}})).await;
    send(
        &mut ws,
        json!({"id": 7, "cmd": "update_subscription", "params": {"sids": [book_sid]}}),
    )
    .await;
    send(&mut ws, json!({"id": 8, "cmd": "update_subscription", "params": {"sids": [book_sid], "action": "dance"}})).await;
    send(&mut ws, json!({"id": 9, "cmd": "list_subscriptions"})).await;
    // The add's `ok` and B's snapshot, two snapshots, four errors, the list.
    drain(&mut ws, &mut seen, 9).await;
    // Refused subscribes and unsubscribes, and malformed text.
    send(&mut ws, json!({"id": 10, "cmd": "subscribe"})).await;
    send(
        &mut ws,
        json!({"id": 11, "cmd": "subscribe", "params": {"channels": []}}),
    )
    .await;
    send(
        &mut ws,
        json!({"id": 12, "cmd": "unsubscribe", "params": {}}),
    )
    .await;
    ws.send(Message::text("{nope")).await.unwrap();
    drain(&mut ws, &mut seen, 4).await;
    // The venue ends the book's subscription (25), then one unsubscribes.
    assert_eq!(exchange.end_subscriptions("B", 25), 1);
    drain(&mut ws, &mut seen, 1).await;
    send(
        &mut ws,
        json!({"id": 13, "cmd": "unsubscribe", "params": {"sids": [seen[0]["msg"]["sid"]]}}),
    )
    .await;
    drain(&mut ws, &mut seen, 1).await;

    let shapes = shapes();
    let mut types = BTreeSet::new();
    for frame in &seen {
        check(&shapes, frame).unwrap_or_else(|e| panic!("{e}: {frame}"));
        types.insert(frame["type"].as_str().unwrap().to_owned());
    }
    let expected: BTreeSet<String> = [
        "subscribed",
        "orderbook_snapshot",
        "ticker",
        "orderbook_delta",
        "ok",
        "error",
        "unsubscribed",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(types, expected, "{seen:#?}");
    // The get_snapshot answers carry the command's id and the sid's next seqs.
    let snapshots: Vec<&Value> = seen
        .iter()
        .filter(|f| f["type"] == "orderbook_snapshot" && f["id"] == 4)
        .collect();
    assert_eq!(snapshots.len(), 2, "{seen:#?}");
    exchange.shutdown().await;
}

#[tokio::test]
async fn every_data_example_reaches_its_subscription_through_a_session() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let config = Config::builder(exchange.url())
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).seed(4))
        .idle_timeout(None)
        .build()
        .unwrap();
    let (client, _unsolicited) = Client::connect(config, Kalshi::new()).await.unwrap();
    let mut sub = client
        .subscribe(Topic::new("ticker").symbol("A"))
        .await
        .unwrap();
    exchange.publish("A", ticker_payload(Venue::Kalshi, "A", 1));
    let first = loop {
        if let Some(Ok(Update::Data(frame))) = next(&mut sub).await {
            break frame;
        }
    };
    let sid = serde_json::from_str::<Value>(first.as_text().unwrap()).unwrap()["sid"].clone();
    let mut seq = 1;
    for (expect, mut frame) in examples() {
        if expect != "data" {
            continue;
        }
        // The example on the live sid, next in its sequence where it has one.
        frame["sid"] = sid.clone();
        if frame.get("seq").is_some() {
            seq += 1;
            frame["seq"] = json!(seq);
        }
        exchange.send_text_all(&frame.to_string());
        let got = match next(&mut sub).await {
            Some(Ok(Update::Data(frame))) => frame,
            other => panic!("{other:?} for {frame}"),
        };
        let payload: Value = serde_json::from_str(got.payload_text().unwrap()).unwrap();
        assert_eq!(payload, frame["msg"], "{}", frame["type"]);
    }
    let stats = client.stats();
    assert_eq!((stats.gaps, stats.unroutable), (0, 0), "{stats:?}");
    client.close().await.unwrap();
    exchange.shutdown().await;
}
