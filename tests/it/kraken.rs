//! The Kraken v2 adapter against the test exchange (issue 3, item 9):
//! per-symbol acks of one request, app-level ping/pong, heartbeat and status as
//! control, book checksums and the resubscribe after a mismatch.

use crate::support;

use std::time::Duration;

use resilient_ws::{
    Backoff, BookBreak, Client, Config, ConfigBuilder, Error, Event, Kraken, Messages,
    Subscription, Topic, Update,
};
use serde_json::{json, Value};
use support::exchange::{Exchange, Venue};
use support::{next, wait_event, wait_until, SOON};

fn fast(url: &str) -> ConfigBuilder {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).seed(4))
        .idle_timeout(None)
        .rate_limit(1000, Duration::from_secs(1))
}

async fn kraken(
    exchange: &Exchange,
    builder: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> (Client, Messages) {
    Client::connect(
        builder(fast(&exchange.url())).build().unwrap(),
        Kraken::new(),
    )
    .await
    .unwrap()
}

async fn next_data(sub: &mut Subscription) -> Value {
    loop {
        match next(sub).await {
            Some(Ok(Update::Data(frame))) => {
                return serde_json::from_str(frame.as_text().unwrap()).unwrap()
            }
            Some(Ok(Update::Resubscribed { .. })) => continue,
            other => panic!("expected data, got {other:?}"),
        }
    }
}

fn sent(exchange: &Exchange, method: &str) -> Vec<Value> {
    exchange
        .received()
        .into_iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.text).ok())
        .filter(|v| v["method"] == method)
        .collect()
}

#[tokio::test]
async fn one_request_for_several_symbols_and_every_ack_is_matched() {
    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    exchange.reject("XBT/USD", "Currency pair not supported XBT/USD", 0);
    let (client, messages) = kraken(&exchange, |b| b).await;
    let topics = ["BTC/USD", "XBT/USD", "ETH/USD"]
        .map(|s| Topic::new("ticker").symbol(s))
        .to_vec();
    let results = client.subscribe_many(topics).await.unwrap();

    let requests = sent(&exchange, "subscribe");
    assert_eq!(requests.len(), 1, "one request: {requests:?}");
    assert_eq!(
        requests[0]["params"]["symbol"],
        json!(["BTC/USD", "XBT/USD", "ETH/USD"])
    );
    assert_eq!(requests[0]["params"]["channel"], "ticker");

    let mut subs = Vec::new();
    for (symbol, result) in ["BTC/USD", "XBT/USD", "ETH/USD"].iter().zip(results) {
        match (symbol, result) {
            (&"XBT/USD", Err(Error::Subscription { error, .. })) => {
                assert_eq!(error.message, "Currency pair not supported XBT/USD");
            }
            (&"XBT/USD", other) => panic!("{other:?}"),
            (_, result) => subs.push(result.unwrap()),
        }
    }
    exchange.publish("ETH/USD", json!({"last": 2}));
    exchange.publish("BTC/USD", json!({"last": 1}));
    let btc = next_data(&mut subs[0]).await;
    let eth = next_data(&mut subs[1]).await;
    assert_eq!(
        (
            btc["data"][0]["symbol"].as_str(),
            btc["data"][0]["last"].as_i64()
        ),
        (Some("BTC/USD"), Some(1))
    );
    assert_eq!(
        (
            eth["data"][0]["symbol"].as_str(),
            eth["data"][0]["last"].as_i64()
        ),
        (Some("ETH/USD"), Some(2))
    );
    // No ack, status or heartbeat leaked into any data stream or the unsolicited stream.
    let stats = client.stats();
    assert_eq!(messages.stats().routed, 0, "{stats:?}");
    assert_eq!(stats.unroutable, 0);
    assert!(stats.control >= 4, "status + 3 acks/rejections: {stats:?}");
    client.close().await.unwrap();
}

#[tokio::test]
async fn every_symbol_is_replayed_after_a_reconnect() {
    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    let (client, _messages) = kraken(&exchange, |b| b).await;
    let mut events = client.events();
    let topics = ["A/USD", "B/USD"]
        .map(|s| Topic::new("ticker").symbol(s))
        .to_vec();
    let mut subs: Vec<Subscription> = client
        .subscribe_many(topics)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    exchange.abort_all();
    for _ in 0..2 {
        wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    }
    exchange.publish("B/USD", json!({"last": 7}));
    assert_eq!(next_data(&mut subs[1]).await["data"][0]["last"], 7);
    let requests = sent(&exchange, "subscribe");
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1]["params"]["symbol"], json!(["A/USD", "B/USD"]));
    client.close().await.unwrap();
}

#[tokio::test]
async fn app_level_pings_are_answered_and_heartbeats_are_control() {
    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    exchange.set_heartbeat(true);
    let (client, messages) = kraken(&exchange, |b| {
        b.ping_interval(Duration::from_millis(50))
            .pong_timeout(Duration::from_secs(2))
            .idle_timeout(Some(Duration::from_millis(3000)))
    })
    .await;
    assert!(
        exchange
            .wait_received(
                |r| r.iter().filter(|m| m.text.contains("\"ping\"")).count() >= 3,
                SOON
            )
            .await
    );
    // Heartbeats (1 s apart) keep the idle timer quiet though no data flows.
    wait_until("two heartbeats", || client.stats().control >= 5).await;
    let stats = client.stats();
    assert_eq!(
        (stats.ping_timeouts, stats.idle_timeouts, stats.reconnects),
        (0, 0, 0)
    );
    assert_eq!(messages.stats().routed, 0);
    client.close().await.unwrap();
}

#[tokio::test]
async fn book_checksums_verify_and_a_mismatch_resubscribes_that_symbol() {
    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    let (client, _messages) = kraken(&exchange, |b| b).await;
    let mut events = client.events();
    let mut book = client
        .subscribe(Topic::new("book").symbol("BTC/USD").param("depth", 10))
        .await
        .unwrap();
    let snapshot = next_data(&mut book).await;
    assert_eq!(snapshot["type"], "snapshot");
    for _ in 0..5 {
        exchange.publish("BTC/USD", json!({}));
        assert_eq!(next_data(&mut book).await["type"], "update");
    }
    assert_eq!(client.stats().book_breaks, 0, "every update verified");

    exchange.corrupt_next_checksum("BTC/USD");
    exchange.publish("BTC/USD", json!({}));
    assert_eq!(next_data(&mut book).await["type"], "update");
    match next(&mut book).await {
        Some(Ok(Update::BookBreak(BookBreak::ChecksumMismatch { expected, computed }))) => {
            assert_ne!(expected, computed)
        }
        other => panic!("expected a checksum signal, got {other:?}"),
    }
    wait_event(&mut events, |e| {
        matches!(
            e,
            Event::BookBreak {
                kind: BookBreak::ChecksumMismatch { .. },
                ..
            }
        )
    })
    .await;
    wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    assert_eq!(sent(&exchange, "unsubscribe").len(), 1);
    assert_eq!(sent(&exchange, "subscribe").len(), 2);
    // A fresh snapshot follows, and verifies.
    loop {
        let value = next_data(&mut book).await;
        if value["type"] == "snapshot" {
            break;
        }
    }
    exchange.publish("BTC/USD", json!({}));
    next_data(&mut book).await;
    assert_eq!(client.stats().book_breaks, 1);
    client.close().await.unwrap();
}
