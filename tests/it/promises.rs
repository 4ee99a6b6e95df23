//! Promises kept against hostile or odd peers and odd use (issue 11): no frame
//! on the wrong stream, one stream per topic, stale sequence numbers are not
//! restarts, and the early-frame stash is bounded by bytes. Each test failed on
//! the code before the session core enforced it.

use crate::support;

use std::time::Duration;

use resilient_ws::{
    Backoff, BookBreak, Client, Config, ConfigBuilder, Error, Event, Kalshi, Kraken, Subscription,
    Topic, Update,
};
use serde_json::{json, Value};
use support::exchange::{AckMode, Exchange, Venue};
use support::{next, wait_event, SOON};

fn fast(url: &str) -> ConfigBuilder {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).seed(4))
        .idle_timeout(None)
        .rate_limit(1000, Duration::from_secs(1))
}

/// Data items until `n` arrived, as JSON; signals are collected apart.
async fn data_items(sub: &mut Subscription, n: usize) -> (Vec<Value>, Vec<Update>) {
    let (mut data, mut signals) = (Vec::new(), Vec::new());
    while data.len() < n {
        match next(sub).await {
            Some(Ok(Update::Data(frame))) => {
                data.push(serde_json::from_str(frame.as_text().unwrap()).unwrap())
            }
            Some(Ok(signal)) => signals.push(signal),
            other => panic!("expected data, got {other:?}"),
        }
    }
    (data, signals)
}

fn kraken_ticker(symbol: &str, n: u64) -> String {
    json!({"channel": "ticker", "type": "update", "data": [{"symbol": symbol, "last": n}]})
        .to_string()
}

fn kraken_ack(req_id: u64, symbol: &str) -> String {
    json!({
        "method": "subscribe",
        "result": {"channel": "ticker", "symbol": symbol, "snapshot": true},
        "success": true,
        "time_in": "2026-12-02T00:00:00.000000Z",
        "time_out": "2026-12-02T00:00:00.000001Z",
        "req_id": req_id
    })
    .to_string()
}

#[tokio::test]
async fn a_repeated_per_symbol_ack_never_puts_a_frame_on_the_wrong_stream() {
    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    // The test plays the venue's acks by hand.
    exchange.set_ack_mode(AckMode::Never);
    let (client, _messages) =
        Client::connect(fast(&exchange.url()).build().unwrap(), Kraken::new())
            .await
            .unwrap();
    let topics = vec![
        Topic::new("ticker").symbol("AAA/USD"),
        Topic::new("ticker").symbol("BBB/USD"),
    ];
    let subscribing = {
        let client = client.clone();
        tokio::spawn(async move { client.subscribe_many(topics).await })
    };
    assert!(
        exchange
            .wait_received(|r| r.iter().any(|r| r.text.contains("subscribe")), SOON)
            .await
    );
    let request: Value = exchange
        .received()
        .iter()
        .find_map(|r| {
            serde_json::from_str::<Value>(&r.text)
                .ok()
                .filter(|v| v["method"] == "subscribe")
        })
        .unwrap();
    let req_id = request["req_id"].as_u64().unwrap();

    // The first per-symbol ack, then the same ack again while BBB still waits.
    exchange.send_text_all(&kraken_ack(req_id, "AAA/USD"));
    exchange.send_text_all(&kraken_ack(req_id, "AAA/USD"));
    exchange.send_text_all(&kraken_ticker("AAA/USD", 1));
    exchange.send_text_all(&kraken_ticker("BBB/USD", 1));
    exchange.send_text_all(&kraken_ack(req_id, "BBB/USD"));
    for n in 2..=4 {
        exchange.send_text_all(&kraken_ticker("AAA/USD", n));
        exchange.send_text_all(&kraken_ticker("BBB/USD", n));
    }

    let mut subs = tokio::time::timeout(SOON, subscribing)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let mut bbb = subs.pop().unwrap().unwrap();
    let mut aaa = subs.pop().unwrap().unwrap();
    for (sub, symbol) in [(&mut aaa, "AAA/USD"), (&mut bbb, "BBB/USD")] {
        let (data, _) = data_items(sub, 4).await;
        for value in &data {
            assert_eq!(
                value["data"][0]["symbol"], symbol,
                "a frame on the wrong stream"
            );
        }
        let numbers: Vec<u64> = data
            .iter()
            .map(|v| v["data"][0]["last"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, [1, 2, 3, 4], "{symbol}: every frame, in order");
    }
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_second_subscription_of_a_live_topic_is_refused_and_the_book_stays_verified() {
    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    let (client, _messages) =
        Client::connect(fast(&exchange.url()).build().unwrap(), Kraken::new())
            .await
            .unwrap();
    let topic = Topic::new("book").symbol("BTC/USD").param("depth", 10);
    let mut book = client.subscribe(topic.clone()).await.unwrap();
    let (snapshot, _) = data_items(&mut book, 1).await;
    assert_eq!(snapshot[0]["type"], "snapshot");

    match client.subscribe(topic).await {
        Err(Error::Subscription { error, .. }) => {
            assert!(!error.is_retryable(), "{error:?}");
            assert!(error.raw.contains("already subscribed"), "{error:?}");
        }
        other => panic!("expected the duplicate to be refused, got {other:?}"),
    }
    // The first subscription and its book go on: updates verify...
    for _ in 0..3 {
        exchange.publish("BTC/USD", json!({}));
    }
    let (updates, signals) = data_items(&mut book, 3).await;
    assert!(updates.iter().all(|u| u["type"] == "update"));
    assert!(signals.is_empty(), "{signals:?}");
    assert_eq!(client.stats().book_breaks, 0);
    // ...and a bad checksum is still caught.
    exchange.corrupt_next_checksum("BTC/USD");
    exchange.publish("BTC/USD", json!({}));
    data_items(&mut book, 1).await;
    match next(&mut book).await {
        Some(Ok(Update::BookBreak(BookBreak::ChecksumMismatch { .. }))) => {}
        other => panic!("expected a checksum signal, got {other:?}"),
    }
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_stale_sequence_number_is_dropped_as_a_duplicate_not_a_restart() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let (client, _messages) =
        Client::connect(fast(&exchange.url()).build().unwrap(), Kalshi::new())
            .await
            .unwrap();
    let mut events = client.events();
    let mut sub = client
        .subscribe(Topic::new("orderbook_delta").symbol("KX-1"))
        .await
        .unwrap();
    let sid = match wait_event(&mut events, |e| matches!(e, Event::Subscribed { .. })).await {
        Event::Subscribed { server_id, .. } => server_id.to_string(),
        _ => unreachable!(),
    };
    for n in 1..=3 {
        exchange.publish("KX-1", json!({ "n": n }));
    }
    data_items(&mut sub, 3).await;
    // A peer replays an old frame (seq 1 after seq 3).
    exchange.send_text_all(
        &json!({"type": "orderbook_delta", "sid": sid.parse::<u64>().unwrap(), "seq": 1, "msg": {"n": 1}})
            .to_string(),
    );
    exchange.publish("KX-1", json!({ "n": 4 }));
    let (data, signals) = data_items(&mut sub, 1).await;
    assert_eq!(data[0]["msg"]["n"], 4, "the stale frame is not delivered");
    assert!(signals.is_empty(), "no reset or gap signal: {signals:?}");
    let stats = client.stats();
    assert_eq!((stats.duplicates, stats.gaps, stats.resets), (1, 0, 0));
    client.close().await.unwrap();
}

#[tokio::test]
async fn the_early_frame_stash_is_bounded_by_bytes() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    exchange.set_ack_mode(AckMode::Never);
    let (client, _messages) = Client::connect(
        fast(&exchange.url())
            .stash_bytes(1024 * 1024)
            .request_timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        Kalshi::new(),
    )
    .await
    .unwrap();
    let pending = {
        let client = client.clone();
        tokio::spawn(async move { client.subscribe(Topic::new("ticker").symbol("KX-1")).await })
    };
    assert!(
        exchange
            .wait_received(|r| r.iter().any(|r| r.text.contains("subscribe")), SOON)
            .await
    );
    // Twenty 200 KiB frames for a server id no ack has named yet.
    let filler = "x".repeat(200 * 1024);
    for seq in 1..=20 {
        exchange.send_text_all(
            &json!({"type": "ticker", "sid": 99, "seq": seq, "msg": {"pad": filler}}).to_string(),
        );
    }
    let probe = client.clone();
    let read_all = tokio::time::timeout(SOON, async {
        while probe.stats().stashed + probe.stats().unroutable < 20 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(read_all.is_ok(), "not all read: {:?}", client.stats());
    let stats = client.stats();
    assert!(
        stats.stashed <= 5,
        "at most 1 MiB of 200 KiB frames may wait: {stats:?}"
    );
    assert_eq!(stats.stashed + stats.unroutable, 20, "{stats:?}");
    pending.abort();
    client.close().await.unwrap();
}
