//! Kraken WebSocket v2 as documented (issue 20, items 2 and 3): every message
//! type Kraken documents has an example in `tests/data/kraken/v2_examples.json`
//! (our fixtures, written from the facts in Kraken's pages; VENUES.md names
//! each page). Each example goes through the adapter, the data ones through a
//! real session too, and the test venue's own frames are checked against the
//! documented shapes, so the venue cannot drift from Kraken without a test
//! failing.

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use resilient_ws::{
    Backoff, Client, Config, Event, Inbound, Kraken, Protocol, Topic, Update, VenueErrorKind,
};
use serde_json::{json, Value};
use support::exchange::{Exchange, Venue};
use support::{next, wait_until, SOON};
use tungstenite::Message;

/// One documented example.
struct Example {
    name: String,
    expect: String,
    frame: String,
}

fn examples() -> Vec<Example> {
    let doc: Value = serde_json::from_str(include_str!("../data/kraken/v2_examples.json")).unwrap();
    assert_eq!(doc["checked"], "2026-12-05");
    doc["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Example {
            name: e["name"].as_str().unwrap().to_owned(),
            expect: e["expect"].as_str().unwrap().to_owned(),
            frame: e["frame"].as_str().unwrap().to_owned(),
        })
        .collect()
}

fn example(name: &str) -> Value {
    let found = examples().into_iter().find(|e| e.name == name);
    serde_json::from_str(&found.unwrap_or_else(|| panic!("no example {name}")).frame).unwrap()
}

/// The topics the examples belong to.
fn topics() -> Vec<Topic> {
    vec![
        Topic::new("ticker").symbol("BTC/USD"),
        Topic::new("ticker").symbol("ETH/USD"),
        Topic::new("book").symbol("BTC/USD").param("depth", 10),
        Topic::new("trade").symbol("MATIC/USD"),
        Topic::new("ohlc").symbol("ALGO/USD").param("interval", 5),
        Topic::new("level3").symbol("MATIC/USD"),
        Topic::new("instrument"),
        Topic::new("executions"),
        Topic::new("balances"),
    ]
}

fn kind_of(name: &str) -> VenueErrorKind {
    match name {
        "permanent" => VenueErrorKind::Permanent,
        "rate_limited" => VenueErrorKind::RateLimited,
        "session_expired" => VenueErrorKind::SessionExpired,
        _ => VenueErrorKind::Unknown,
    }
}

/// Checks one classification against the example's `expect`.
fn check(kraken: &Kraken, example: &Example, inbound: &Inbound<'_>) {
    let words: Vec<&str> = example.expect.split(' ').collect();
    let name = &example.name;
    match (words.as_slice(), inbound) {
        (["control"], Inbound::Control)
        | (["heartbeat"], Inbound::Heartbeat)
        | (["pong"], Inbound::Pong)
        | (["unsubscribed"], Inbound::Unsubscribed { .. }) => {}
        (["subscribed", key], Inbound::Subscribed { server_id, .. }) => {
            assert_eq!(server_id.to_string(), *key, "{name}");
        }
        (
            ["rejected", symbol, kind],
            Inbound::Rejected {
                symbol: got, error, ..
            },
        ) => {
            let want = (*symbol != "none").then_some(*symbol);
            assert_eq!(got.as_deref(), want, "{name}");
            assert_eq!(error.kind, kind_of(kind), "{name}: {error:?}");
        }
        (
            ["data", key, rest @ ..],
            Inbound::Data {
                server_id,
                seq,
                book_break,
                payload,
            },
        ) => {
            assert_eq!(server_id.to_string(), *key, "{name}");
            assert_eq!(*book_break, None, "{name}: the documented book verifies");
            let frame: Value = serde_json::from_str(&example.frame).unwrap();
            let payload: Value = serde_json::from_str(payload.expect("a payload")).unwrap();
            assert_eq!(payload, frame["data"], "{name}: the payload is `data`");
            match rest {
                ["seq", n] => assert_eq!(*seq, Some(n.parse().unwrap()), "{name}"),
                ["verified"] => {
                    let book = kraken.book("BTC/USD").expect("a book");
                    let documented = frame["data"][0]["checksum"].as_u64().unwrap();
                    assert_eq!(u64::from(book.checksum()), documented, "{name}");
                }
                [] => assert_eq!(*seq, None, "{name}"),
                other => panic!("{name}: bad expect {other:?}"),
            }
        }
        (["response", id, rest @ ..], Inbound::Response { req_id, error }) => {
            assert_eq!(req_id.to_string(), *id, "{name}");
            assert_eq!(error.is_some(), rest == ["error"], "{name}: {error:?}");
        }
        _ => panic!("{name}: expected {}, got {inbound:?}", example.expect),
    }
}

#[test]
fn every_documented_message_is_classified_as_the_adapter_promises() {
    let mut kraken = Kraken::new();
    let topics = topics();
    for (req_id, topic) in (1..).zip(&topics) {
        kraken.encode_subscribe(&[topic], req_id);
    }
    let all = examples();
    assert!(all.len() >= 30, "{}", all.len());
    for example in &all {
        let inbound = kraken.classify(&example.frame);
        check(&kraken, example, &inbound);
    }
    // A type Kraken does not document is named, not swallowed.
    assert_eq!(
        kraken.classify(r#"{"method":"maintenance_notice"}"#),
        Inbound::Unknown {
            kind: "maintenance_notice".into()
        }
    );
}

fn config(url: &str) -> Config {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).seed(9))
        .rate_limit(1000, Duration::from_secs(1))
        .build()
        .unwrap()
}

/// The data text of the next data item of `sub`.
async fn next_data(sub: &mut resilient_ws::Subscription) -> Value {
    loop {
        match next(sub).await {
            Some(Ok(Update::Data(frame))) => {
                return serde_json::from_str(frame.payload_text().unwrap()).unwrap()
            }
            Some(Ok(_)) => {}
            other => panic!("expected data, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn every_documented_data_frame_reaches_its_subscription_through_the_session() {
    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    let (client, _messages) = Client::connect(config(&exchange.url()), Kraken::new())
        .await
        .unwrap();
    let mut events = client.events();
    let mut subs = Vec::new();
    for topic in topics() {
        subs.push((topic.to_string(), client.subscribe(topic).await.unwrap()));
    }
    // Let the venue's own book snapshot arrive first: the documented one replaces it.
    let book = subs.iter_mut().find(|(k, _)| k == "book:BTC/USD").unwrap();
    next_data(&mut book.1).await;
    let before = client.stats();

    let all = examples();
    let (data, other): (Vec<&Example>, Vec<&Example>) =
        all.iter().partition(|e| e.expect.starts_with("data "));
    // Frames that answer nothing pending here (status, heartbeat, pong,
    // responses to requests nobody sent) are control; acks and refusals are
    // left to the tests that send the requests they answer.
    let quiet: Vec<&&Example> = other
        .iter()
        .filter(|e| {
            ["control", "heartbeat", "pong"].contains(&e.expect.as_str())
                || e.expect.starts_with("response")
        })
        .collect();
    for example in &quiet {
        exchange.send_text_all(&example.frame);
    }
    for example in &data {
        exchange.send_text_all(&example.frame);
    }
    for example in &data {
        let key = example.expect.split(' ').nth(1).unwrap();
        let (_, sub) = subs
            .iter_mut()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("{}: no subscription {key}", example.name));
        let frame: Value = serde_json::from_str(&example.frame).unwrap();
        assert_eq!(next_data(sub).await, frame["data"], "{}", example.name);
    }
    wait_until("every frame counted", || {
        let stats = client.stats();
        stats.frames_in >= before.frames_in + (quiet.len() + data.len()) as u64
    })
    .await;
    let stats = client.stats();
    assert_eq!(
        stats.control - before.control,
        quiet.len() as u64,
        "{stats:?}"
    );
    assert_eq!(stats.unroutable, before.unroutable, "{stats:?}");
    assert_eq!(stats.book_breaks, 0, "the documented book verifies");
    assert!(client.unplaced().is_empty(), "{:?}", client.unplaced());
    while let Some(Some(event)) = futures::FutureExt::now_or_never(events.next()) {
        assert!(
            !matches!(
                event,
                Event::UnknownMessage { .. } | Event::BookBreak { .. }
            ),
            "{event:?}"
        );
    }
    client.close().await.unwrap();
}

/// The shape of a JSON value: object keys (recursively), the first element of
/// arrays, and the type of scalars. `req_id` is left out (echoed only when sent).
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "req_id")
                .map(|(k, v)| (k.clone(), shape(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.first().map(shape).into_iter().collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Reads frames from a raw socket until `want` matches one (bounded by SOON).
async fn read_until<S>(ws: &mut S, want: impl Fn(&Value) -> bool) -> Value
where
    S: futures::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    tokio::time::timeout(SOON, async {
        loop {
            if let Some(Ok(Message::Text(text))) = ws.next().await {
                let value: Value = serde_json::from_str(text.as_str()).unwrap();
                if want(&value) {
                    return value;
                }
            }
        }
    })
    .await
    .expect("the frame within SOON")
}

#[tokio::test]
async fn the_test_venue_speaks_the_documented_shapes() {
    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    exchange.reject("XBT/USD", "Currency pair not supported XBT/USD", 0);
    exchange.set_heartbeat(true);
    let (mut ws, _) = tokio_tungstenite::connect_async(exchange.url())
        .await
        .unwrap();

    let status = read_until(&mut ws, |v| v["channel"] == "status").await;
    assert_eq!(shape(&status), shape(&example("status")), "status");

    let subscribe = json!({"method":"subscribe","params":{"channel":"ticker","symbol":["BTC/USD","XBT/USD"]},"req_id":1});
    ws.send(Message::text(subscribe.to_string())).await.unwrap();
    let ack = read_until(&mut ws, |v| {
        v["method"] == "subscribe" && v["success"] == true
    })
    .await;
    assert_eq!(shape(&ack), shape(&example("subscribe_ack")), "ack");
    assert_eq!(ack["req_id"], 1);
    let refused = read_until(&mut ws, |v| v["success"] == false).await;
    assert_eq!(
        shape(&refused),
        shape(&example("subscribe_error_pair")),
        "refusal"
    );
    assert_eq!(
        (refused["req_id"].as_u64(), refused["symbol"].as_str()),
        (Some(1), Some("XBT/USD"))
    );

    let book = json!({"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10},"req_id":2});
    ws.send(Message::text(book.to_string())).await.unwrap();
    let ack = read_until(&mut ws, |v| v["method"] == "subscribe").await;
    assert_eq!(
        shape(&ack),
        shape(&example("subscribe_ack_book")),
        "book ack"
    );
    let snapshot = read_until(&mut ws, |v| v["channel"] == "book").await;
    assert_eq!(
        shape(&snapshot),
        shape(&example("book_snapshot")),
        "book snapshot"
    );

    ws.send(Message::text(r#"{"method":"ping","req_id":101}"#))
        .await
        .unwrap();
    let pong = read_until(&mut ws, |v| v["method"] == "pong").await;
    assert_eq!(shape(&pong), shape(&example("pong")), "pong");
    assert_eq!(pong["req_id"], 101);

    let heartbeat = read_until(&mut ws, |v| v["channel"] == "heartbeat").await;
    assert_eq!(heartbeat, example("heartbeat"));

    exchange.publish(
        "BTC/USD",
        support::exchange::ticker_payload(Venue::Kraken, "BTC/USD", 1),
    );
    let ticker = read_until(&mut ws, |v| v["channel"] == "ticker").await;
    let documented = example("ticker_update");
    assert_eq!(keys(&ticker), keys(&documented), "ticker envelope");
    let sent = keys(&ticker["data"][0]);
    assert!(
        sent.is_subset(&keys(&documented["data"][0])),
        "ticker fields Kraken does not document: {:?}",
        sent.difference(&keys(&documented["data"][0]))
    );

    let unsubscribe = json!({"method":"unsubscribe","params":{"channel":"ticker","symbol":["BTC/USD"]},"req_id":5});
    ws.send(Message::text(unsubscribe.to_string()))
        .await
        .unwrap();
    let ack = read_until(&mut ws, |v| v["method"] == "unsubscribe").await;
    assert_eq!(
        shape(&ack),
        shape(&example("unsubscribe_ack")),
        "unsubscribe ack"
    );
}
