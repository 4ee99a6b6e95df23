//! Consumption (issue 12): one merged stream over many subscriptions with
//! exact accounting, frames that carry their subscription, receive time and
//! payload span, typed decoding, and the verified Kraken book.

use crate::support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use resilient_ws::{
    Backoff, Client, ClientId, Config, ConfigBuilder, Kalshi, Kraken, MemberKey, Overflow,
    QueueOptions, SetItem, SubscriptionSet, Topic, Update,
};
use serde::Deserialize;
use serde_json::json;
use support::exchange::{ticker_payload, Exchange, Venue};
use support::{next, wait_until};

fn fast(url: &str) -> ConfigBuilder {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).seed(12))
        .idle_timeout(None)
        .rate_limit(1000, Duration::from_secs(1))
}

async fn kalshi(exchange: &Exchange) -> Client {
    let config = fast(&exchange.url()).build().expect("valid config");
    Client::connect(config, Kalshi::new())
        .await
        .expect("connects")
        .0
}

fn ticker(symbol: &str) -> Topic {
    Topic::new("ticker").symbol(symbol)
}

/// The next data item of the set: (member key, symbol of the topic, frame).
async fn next_data(set: &mut SubscriptionSet) -> (MemberKey, String, resilient_ws::Frame) {
    loop {
        let item: SetItem = next(set).await.expect("the set goes on");
        match item.item {
            Ok(Update::Data(frame)) => {
                let symbol = item.topic.symbol_name().unwrap_or_default().to_owned();
                // The item and the frame name the same subscription.
                assert_eq!(frame.client_id(), Some(item.client_id));
                return (item.member, symbol, frame);
            }
            Ok(_) => continue,
            Err(error) => panic!("unexpected error from {}: {error}", item.client_id),
        }
    }
}

#[derive(Deserialize, Debug, PartialEq)]
struct KalshiTicker<'a> {
    market_ticker: &'a str,
    price_dollars: &'a str,
    volume_fp: &'a str,
}

impl KalshiTicker<'_> {
    /// Whole contracts traded (the test venue's volumes are whole).
    fn volume(&self) -> u64 {
        self.volume_fp.trim_end_matches(".00").parse().unwrap()
    }
}

#[tokio::test]
async fn a_set_merges_its_members_and_names_each_item() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let client = kalshi(&exchange).await;
    let mut set = client
        .subscribe_set(vec![ticker("A"), ticker("B"), ticker("C")])
        .await
        .unwrap();
    assert_eq!(set.len(), 3);
    let ids: HashMap<String, (MemberKey, ClientId)> = set
        .members()
        .map(|(key, id, topic)| (topic.symbol_name().unwrap().to_owned(), (key, id)))
        .collect();
    for (n, symbol) in ["B", "A", "C", "A"].into_iter().enumerate() {
        exchange.publish(symbol, ticker_payload(Venue::Kalshi, symbol, n as u64));
    }
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (key, symbol, frame) = next_data(&mut set).await;
        // The item, the frame and the payload all name the same subscription.
        assert_eq!(ids[&symbol].0, key);
        assert_eq!(frame.client_id(), Some(ids[&symbol].1));
        let tick: KalshiTicker<'_> = frame.decode().unwrap();
        assert_eq!(tick.market_ticker, symbol);
        assert!(
            tick.price_dollars.starts_with("0."),
            "{}",
            tick.price_dollars
        );
        seen.push((symbol, frame.seq().unwrap(), tick.volume()));
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("A".to_owned(), 1, 1),
            ("A".to_owned(), 2, 3),
            ("B".to_owned(), 1, 0),
            ("C".to_owned(), 1, 2)
        ]
    );
    let stats = set.stats();
    assert_eq!((stats.routed, stats.delivered, stats.queued), (4, 4, 0));
    client.close().await.unwrap();
    // Every member ends with the client, then so does the set: nothing hangs.
    while let Some(item) = next(&mut set).await {
        assert!(!matches!(item.item, Ok(Update::Data(_))), "{item:?}");
    }
    assert!(set.is_empty());
}

#[tokio::test]
async fn each_member_keeps_its_overflow_policy_and_exact_counters() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let client = kalshi(&exchange).await;
    let options = QueueOptions {
        capacity: Some(2),
        overflow: Some(Overflow::DropOldest),
    };
    let mut set = client
        .subscribe_set_with(vec![ticker("A"), ticker("B")], options)
        .await
        .unwrap();
    let id = |set: &SubscriptionSet, s: &str| {
        set.members()
            .find(|(_, _, t)| t.symbol_name() == Some(s))
            .map(|(key, _, _)| key)
            .unwrap()
    };
    let (a, b) = (id(&set, "A"), id(&set, "B"));
    for n in 0..5 {
        exchange.publish("A", ticker_payload(Venue::Kalshi, "A", n));
    }
    exchange.publish("B", ticker_payload(Venue::Kalshi, "B", 9));
    wait_until("all six routed", || set.stats().routed == 6).await;
    let sa = set.member_stats(a).unwrap();
    assert_eq!((sa.routed, sa.dropped, sa.queued), (5, 3, 2));
    let sb = set.member_stats(b).unwrap();
    assert_eq!((sb.routed, sb.dropped, sb.queued), (1, 0, 1));
    let mut got = Vec::new();
    for _ in 0..3 {
        let (key, _, frame) = next_data(&mut set).await;
        got.push((key, frame.seq().unwrap()));
    }
    got.sort();
    // A kept its newest two (DropOldest), B its one.
    let mut want = vec![(a, 4), (a, 5), (b, 1)];
    want.sort();
    assert_eq!(got, want);
    for stats in [
        set.member_stats(a).unwrap(),
        set.member_stats(b).unwrap(),
        set.stats(),
    ] {
        assert_eq!(stats.routed, stats.delivered + stats.dropped + stats.queued);
    }
    let total = set.stats();
    assert_eq!((total.routed, total.delivered, total.dropped), (6, 3, 3));
    client.close().await.unwrap();
}

#[tokio::test]
async fn members_join_and_leave_while_streaming() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let client = kalshi(&exchange).await;
    let mut set = client.subscribe_set(vec![ticker("A")]).await.unwrap();
    exchange.publish("A", json!({"n": 1}));
    assert_eq!(next_data(&mut set).await.1, "A");
    let b = set.insert(ticker("B")).await.unwrap();
    exchange.publish("B", json!({"n": 2}));
    let (key, symbol, _) = next_data(&mut set).await;
    assert_eq!((key, symbol.as_str()), (b, "B"));
    let a = set.members().find(|(key, _, _)| *key != b).unwrap().0;
    // A has one frame queued when it leaves: counted as dropped, in the set's totals.
    exchange.publish("A", json!({"n": 3}));
    wait_until("A's frame routed", || set.stats().routed == 3).await;
    assert!(set.remove(a).await.unwrap());
    assert!(!set.remove(a).await.unwrap());
    assert_eq!(set.len(), 1);
    exchange.publish("A", json!({"n": 4}));
    exchange.publish("B", json!({"n": 5}));
    let (key, _, frame) = next_data(&mut set).await;
    assert_eq!(key, b);
    assert_eq!(frame.payload_text(), Some(r#"{"market_ticker":"B","n":5}"#));
    let total = set.stats();
    assert_eq!(total.routed, total.delivered + total.dropped + total.queued);
    assert_eq!((total.routed, total.delivered, total.dropped), (4, 3, 1));
    client.close().await.unwrap();
}

#[tokio::test]
async fn the_receive_time_is_the_read_not_the_consumption() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let client = kalshi(&exchange).await;
    let mut set = client.subscribe_set(vec![ticker("A")]).await.unwrap();
    let before = Instant::now();
    let wall_before = std::time::SystemTime::now();
    exchange.publish("A", json!({"n": 1}));
    wait_until("routed", || set.stats().routed == 1).await;
    let routed_by = Instant::now();
    let (_, _, frame) = next_data(&mut set).await;
    let received = frame.received();
    assert!(
        received.at >= before && received.at <= routed_by,
        "{received:?}"
    );
    assert!(received.wall >= wall_before - Duration::from_millis(50));
    assert!(received.wall <= std::time::SystemTime::now() + Duration::from_millis(50));
    assert!(frame.age() >= routed_by - received.at);
    client.close().await.unwrap();
}

#[tokio::test]
async fn payloads_decode_without_a_second_parse_and_errors_are_typed() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let client = kalshi(&exchange).await;
    let mut sub = client.subscribe(ticker("A")).await.unwrap();
    exchange.publish("A", json!({"price_dollars": 0.5, "volume_fp": "1.00"}));
    let frame = loop {
        if let Some(Ok(Update::Data(frame))) = next(&mut sub).await {
            break frame;
        }
    };
    // The payload is Kalshi's `msg`, a slice of the frame as received.
    let text = frame.as_text().unwrap();
    let payload = frame.payload_text().unwrap();
    assert!(text.contains(payload) && payload.starts_with('{') && payload != text);
    let error = frame.decode::<KalshiTicker<'_>>().unwrap_err();
    assert_eq!(error.client_id, sub.client_id());
    assert_eq!(error.category, "data");
    assert!(error.target.contains("KalshiTicker"), "{error}");
    client.close().await.unwrap();
}

#[derive(Deserialize, Debug)]
struct KrakenTicker<'a> {
    symbol: &'a str,
    last: f64,
    volume: f64,
}

#[tokio::test]
async fn kraken_frames_carry_their_data_list() {
    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    let config = fast(&exchange.url()).build().unwrap();
    let (client, _unsolicited) = Client::connect(config, Kraken::new()).await.unwrap();
    let mut set = client
        .subscribe_set(vec![ticker("BTC/USD"), ticker("ETH/USD")])
        .await
        .unwrap();
    exchange.publish("ETH/USD", ticker_payload(Venue::Kraken, "ETH/USD", 7));
    let (_, symbol, frame) = next_data(&mut set).await;
    assert_eq!(symbol, "ETH/USD");
    let ticks: Vec<KrakenTicker<'_>> = frame.decode().unwrap();
    assert_eq!(ticks.len(), 1);
    assert_eq!(
        (ticks[0].symbol, ticks[0].last, ticks[0].volume),
        ("ETH/USD", 45284.0, 7.0)
    );
    client.close().await.unwrap();
}

#[derive(Deserialize)]
struct WireLevel<'a> {
    #[serde(borrow)]
    price: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    qty: &'a serde_json::value::RawValue,
}

#[derive(Deserialize)]
struct BookItem<'a> {
    #[serde(borrow)]
    asks: Vec<WireLevel<'a>>,
    #[serde(borrow)]
    bids: Vec<WireLevel<'a>>,
    checksum: u32,
}

/// The next data frame of the set, or a signal as `None`.
async fn next_update(set: &mut SubscriptionSet) -> Option<resilient_ws::Frame> {
    match next(set).await.expect("the set goes on").item {
        Ok(Update::Data(frame)) => Some(frame),
        Ok(_) => None,
        Err(error) => panic!("unexpected error: {error}"),
    }
}

#[tokio::test]
async fn the_verified_kraken_book_is_readable_after_each_frame() {
    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    let config = fast(&exchange.url()).build().unwrap();
    let kraken = Kraken::new();
    let views = kraken.book_views();
    let view = views.watch("BTC/USD", 3);
    let (client, _unsolicited) = Client::connect(config, kraken).await.unwrap();
    let mut set = client
        .subscribe_set(vec![Topic::new("book")
            .symbol("BTC/USD")
            .param("depth", 10)])
        .await
        .unwrap();
    let snapshot = next_update(&mut set).await.expect("the snapshot");
    let items: Vec<BookItem<'_>> = snapshot.decode().unwrap();
    let top = view.latest().expect("the snapshot verified");
    assert_eq!(top.checksum(), Some(i64::from(items[0].checksum)));
    assert_eq!(top.updates(), 1);
    // The top levels, with the exact wire text of the snapshot.
    let wire = |levels: &[WireLevel<'_>]| -> Vec<(String, String)> {
        levels
            .iter()
            .take(3)
            .map(|l| (l.price.get().to_owned(), l.qty.get().to_owned()))
            .collect()
    };
    let owned = |levels: Vec<(&str, &str)>| -> Vec<(String, String)> {
        levels
            .into_iter()
            .map(|(p, q)| (p.to_owned(), q.to_owned()))
            .collect()
    };
    assert_eq!(owned(top.asks().collect()), wire(&items[0].asks));
    assert_eq!(owned(top.bids().collect()), wire(&items[0].bids));
    assert_eq!(top.asks().len(), 3);
    // The same levels as exact decimals: the best ask is the first wire level.
    let (best_price, best_qty) = top.best_ask().expect("a best ask");
    assert_eq!(best_price.to_string(), items[0].asks[0].price.get());
    assert_eq!(best_qty.to_string(), items[0].asks[0].qty.get());
    assert!(top.best_bid().expect("a best bid").0 < best_price);
    for n in 0..5 {
        exchange.publish("BTC/USD", json!({}));
        let frame = next_update(&mut set).await.expect("an update");
        let items: Vec<BookItem<'_>> = frame.decode().unwrap();
        let top = view.latest().expect("verified");
        assert_eq!(top.checksum(), Some(i64::from(items[0].checksum)));
        assert_eq!(
            top.checksum(),
            Some(i64::from(exchange.book_checksum("BTC/USD")))
        );
        assert_eq!(top.updates(), n + 2);
    }
    // A diverged book is not shown as verified...
    exchange.corrupt_next_checksum("BTC/USD");
    exchange.publish("BTC/USD", json!({}));
    next_update(&mut set).await.expect("the corrupt update");
    assert!(view.latest().is_none());
    // ...until the fresh snapshot the resubscribe brings verifies.
    loop {
        if let Some(frame) = next_update(&mut set).await {
            if frame.as_text().unwrap().contains(r#""type":"snapshot""#) {
                break;
            }
        }
    }
    let top = view.latest().expect("the fresh snapshot verified");
    assert_eq!(
        (top.updates(), top.checksum()),
        (1, Some(i64::from(exchange.book_checksum("BTC/USD"))))
    );
    client.close().await.unwrap();
}
