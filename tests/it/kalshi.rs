//! Kalshi as it speaks in 2026 (issue 19), through a real session against
//! the test venue:
//! - a subscription the venue ends itself (sid-scoped error 25 or 10) is
//!   subscribed again and streams, or ends with the refusal: never silent;
//! - a gap on a book resyncs with `get_snapshot` on the live sid (no
//!   unsubscribe, no new sid); a refused `get_snapshot` falls back to a
//!   resubscribe;
//! - an `ok` that took a number of the sid's sequence is not a gap.

use crate::support;

use std::time::Duration;

use resilient_ws::{
    Backoff, Client, Config, ConfigBuilder, Error, Event, Kalshi, Subscription, SubscriptionOp,
    Topic, Update,
};
use serde_json::{json, Value};
use support::exchange::{kalshi_delta, ticker_payload, Exchange, Received, Venue};
use support::{next, wait_event, SOON};

fn fast(url: &str) -> ConfigBuilder {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).seed(3))
        .idle_timeout(None)
        .rate_limit(1000, Duration::from_secs(1))
}

async fn kalshi(exchange: &Exchange) -> Client {
    let config = fast(&exchange.url()).build().unwrap();
    Client::connect(config, Kalshi::new()).await.unwrap().0
}

/// The next data frame as JSON; signals go to `signals`.
async fn next_data(sub: &mut Subscription, signals: &mut Vec<Update>) -> Value {
    loop {
        match tokio::time::timeout(SOON, next(sub)).await {
            Ok(Some(Ok(Update::Data(frame)))) => {
                return serde_json::from_str(frame.as_text().unwrap()).unwrap()
            }
            Ok(Some(Ok(signal))) => signals.push(signal),
            other => panic!("expected data, got {other:?} (signals {signals:?})"),
        }
    }
}

/// The commands the venue received, as JSON.
fn commands(received: &[Received]) -> Vec<Value> {
    received
        .iter()
        .filter_map(|r| serde_json::from_str(&r.text).ok())
        .collect()
}

#[tokio::test]
async fn a_subscription_the_venue_ends_is_subscribed_again_and_streams_on() {
    for code in [25, 10] {
        let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
        let client = kalshi(&exchange).await;
        let mut a = client
            .subscribe(Topic::new("ticker").symbol("A"))
            .await
            .unwrap();
        let mut b = client
            .subscribe(Topic::new("ticker").symbol("B"))
            .await
            .unwrap();
        let (mut a_signals, mut b_signals) = (Vec::new(), Vec::new());
        exchange.publish("A", ticker_payload(Venue::Kalshi, "A", 1));
        let old_sid = next_data(&mut a, &mut a_signals).await["sid"].clone();

        // The venue overflows A's buffer and stops that sid; B goes on.
        let mut events = client.events();
        assert_eq!(exchange.end_subscriptions("A", code), 1);
        // Acknowledged: the venue holds the new subscription.
        wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
        exchange.publish("A", ticker_payload(Venue::Kalshi, "A", 2));
        exchange.publish("B", ticker_payload(Venue::Kalshi, "B", 3));
        let again = next_data(&mut a, &mut a_signals).await;
        assert_ne!(again["sid"], old_sid);
        assert_eq!(again["msg"]["volume_fp"], "2.00");
        assert_eq!(
            next_data(&mut b, &mut b_signals).await["msg"]["volume_fp"],
            "3.00"
        );
        assert!(
            matches!(a_signals[..], [Update::Resubscribed { .. }]),
            "{a_signals:?}"
        );
        assert!(b_signals.is_empty(), "{b_signals:?}");
        // The venue dropped the old sid itself: no unsubscribe is sent for it.
        let unsubscribes = commands(&exchange.received())
            .into_iter()
            .filter(|c| c["cmd"] == "unsubscribe")
            .count();
        assert_eq!(unsubscribes, 0);
        let stats = client.stats();
        assert_eq!((stats.resubscribes, stats.reconnects), (1, 0), "{stats:?}");
        client.close().await.unwrap();
        exchange.shutdown().await;
    }
}

#[tokio::test]
async fn a_subscription_the_venue_ends_and_then_refuses_ends_with_the_refusal() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let client = kalshi(&exchange).await;
    let mut a = client
        .subscribe(Topic::new("ticker").symbol("A"))
        .await
        .unwrap();
    exchange.reject("A", "Channel error", 10);
    assert_eq!(exchange.end_subscriptions("A", 25), 1);
    let end = loop {
        match tokio::time::timeout(SOON, next(&mut a)).await {
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(error))) => break error,
            other => panic!("the stream must end with the refusal, got {other:?}"),
        }
    };
    assert!(
        matches!(&end, Error::Subscription { op: SubscriptionOp::Resubscribe, error, .. } if error.code == Some(10)),
        "{end:?}"
    );
    assert!(tokio::time::timeout(SOON, next(&mut a))
        .await
        .unwrap()
        .is_none());
    client.close().await.unwrap();
    exchange.shutdown().await;
}

#[tokio::test]
async fn a_book_gap_resyncs_with_get_snapshot_on_the_live_sid() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    exchange.set_book_snapshots(true);
    let client = kalshi(&exchange).await;
    let mut book = client
        .subscribe(Topic::new("orderbook_delta").symbol("A"))
        .await
        .unwrap();
    let mut signals = Vec::new();
    let snapshot = next_data(&mut book, &mut signals).await;
    assert_eq!(snapshot["type"], "orderbook_snapshot");
    assert_eq!(
        snapshot["msg"]["yes_dollars_fp"][0],
        json!(["0.0800", "300.00"])
    );
    let sid = snapshot["sid"].clone();
    exchange.publish(
        "A",
        kalshi_delta("0.0800", "-100.00", "yes", 1_700_000_000_000),
    );
    assert_eq!(next_data(&mut book, &mut signals).await["seq"], 2);

    exchange.skip_seq("A", 2);
    exchange.publish(
        "A",
        kalshi_delta("0.2200", "5.00", "yes", 1_700_000_000_001),
    );
    assert_eq!(next_data(&mut book, &mut signals).await["seq"], 5);
    let resync = next_data(&mut book, &mut signals).await;
    assert_eq!(
        (
            resync["type"].as_str(),
            &resync["sid"],
            resync["seq"].as_u64()
        ),
        (Some("orderbook_snapshot"), &sid, Some(6)),
        "{resync}"
    );
    exchange.publish("A", kalshi_delta("0.5400", "1.00", "no", 1_700_000_000_002));
    assert_eq!(next_data(&mut book, &mut signals).await["seq"], 7);
    assert!(
        matches!(
            signals[..],
            [Update::Gap {
                last_seq: 2,
                next_seq: 5
            }]
        ),
        "{signals:?}"
    );
    let sent = commands(&exchange.received());
    let get_snapshot: Vec<&Value> = sent
        .iter()
        .filter(|c| c["cmd"] == "update_subscription")
        .collect();
    assert_eq!(get_snapshot.len(), 1, "{sent:?}");
    assert_eq!(get_snapshot[0]["params"]["action"], "get_snapshot");
    assert_eq!(get_snapshot[0]["params"]["sids"], json!([sid]));
    assert_eq!(get_snapshot[0]["params"]["market_tickers"], json!(["A"]));
    assert!(sent.iter().all(|c| c["cmd"] != "unsubscribe"), "{sent:?}");
    let stats = client.stats();
    assert_eq!((stats.gaps, stats.resubscribes), (1, 0), "{stats:?}");
    client.close().await.unwrap();
    exchange.shutdown().await;
}

#[tokio::test]
async fn a_refused_get_snapshot_falls_back_to_subscribing_again() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let client = kalshi(&exchange).await;
    let mut book = client
        .subscribe(Topic::new("orderbook_delta").symbol("A"))
        .await
        .unwrap();
    let mut signals = Vec::new();
    exchange.publish("A", kalshi_delta("0.0800", "1.00", "yes", 1));
    let sid = next_data(&mut book, &mut signals).await["sid"]
        .as_u64()
        .unwrap();
    // The venue loses the sid without a word, and a late delta on it skips
    // numbers: the snapshot request is refused (code 7, unknown sid), so the
    // session subscribes again.
    let mut events = client.events();
    assert_eq!(exchange.forget_subscriptions("A"), 1);
    exchange.send_text_all(
        &json!({"type": "orderbook_delta", "sid": sid, "seq": 5,
                "msg": kalshi_delta("0.0800", "1.00", "yes", 2)})
        .to_string(),
    );
    assert_eq!(next_data(&mut book, &mut signals).await["seq"], 5);
    // Acknowledged: the venue holds the new subscription.
    wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    exchange.publish("A", kalshi_delta("0.0800", "2.00", "yes", 3));
    let again = next_data(&mut book, &mut signals).await;
    assert_ne!(again["sid"].as_u64(), Some(sid));
    assert!(
        matches!(
            signals[..],
            [
                Update::Gap {
                    last_seq: 1,
                    next_seq: 5
                },
                Update::Resubscribed { .. }
            ]
        ),
        "{signals:?}"
    );
    let sent = commands(&exchange.received());
    let order: Vec<&str> = sent
        .iter()
        .map(|c| {
            c["params"]["action"]
                .as_str()
                .unwrap_or(c["cmd"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        order,
        ["subscribe", "get_snapshot", "unsubscribe", "subscribe"]
    );
    client.close().await.unwrap();
    exchange.shutdown().await;
}

#[tokio::test]
async fn an_ok_that_took_a_number_of_the_sequence_is_not_a_gap() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let client = kalshi(&exchange).await;
    let mut book = client
        .subscribe(Topic::new("orderbook_delta").symbol("A"))
        .await
        .unwrap();
    let mut signals = Vec::new();
    exchange.publish("A", kalshi_delta("0.0800", "1.00", "yes", 1));
    let sid = next_data(&mut book, &mut signals).await["sid"].clone();
    let answer = client
        .request(resilient_ws::Request::new(
            "update_subscription",
            Some(json!({"sids": [sid], "action": "add_markets", "market_tickers": ["B"]})),
        ))
        .await
        .unwrap();
    let ok: Value = serde_json::from_str(answer.as_text().unwrap()).unwrap();
    assert_eq!(
        (ok["type"].as_str(), ok["seq"].as_u64()),
        (Some("ok"), Some(2))
    );
    exchange.publish("A", kalshi_delta("0.0800", "2.00", "yes", 2));
    assert_eq!(next_data(&mut book, &mut signals).await["seq"], 3);
    assert!(signals.is_empty(), "{signals:?}");
    assert_eq!(client.stats().gaps, 0);
    client.close().await.unwrap();
    exchange.shutdown().await;
}
