//! Nothing ignored in silence (issue 20, item 4): a frame the adapter cannot
//! place is counted per kind and reported once per kind, and a subscription
//! silent past its channel's expectation is reported stale, once per silent
//! period. Real sockets (the Kraken test exchange); the stale timing runs on
//! the paused clock.

use crate::support;

use std::time::Duration;

use futures::StreamExt;
use resilient_ws::{
    Backoff, Client, Config, ConfigBuilder, Event, Events, Kraken, Topic, Unplaced, Update,
    MAX_KINDS, OTHER_KINDS,
};
use serde_json::json;
use support::exchange::{Exchange, Venue};
use support::{next, wait_event, wait_until};

fn fast(url: &str) -> ConfigBuilder {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).seed(4))
        .rate_limit(1000, Duration::from_secs(1))
}

/// Every `UnknownMessage` event up to (and including) the one for `last`.
async fn unknown_until(events: &mut Events, last: &str) -> Vec<(String, Unplaced)> {
    let mut seen = Vec::new();
    loop {
        let event = wait_event(events, |e| matches!(e, Event::UnknownMessage { .. })).await;
        if let Event::UnknownMessage { kind, fate } = event {
            let done = kind == last;
            seen.push((kind, fate));
            if done {
                return seen;
            }
        }
    }
}

#[tokio::test]
async fn each_kind_the_adapter_cannot_place_is_counted_and_reported_once() {
    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    let config = fast(&exchange.url()).build().unwrap();
    let (client, _messages) = Client::connect(config, Kraken::new()).await.unwrap();
    let mut events = client.events();
    let mut ticker = client
        .subscribe(Topic::new("ticker").symbol("BTC/USD"))
        .await
        .unwrap();

    // A method Kraken does not document (three times), data of a channel
    // nobody subscribed (twice), data of a known channel for a symbol nobody
    // subscribed (once).
    for _ in 0..3 {
        exchange.send_text_all(r#"{"method":"maintenance_notice","result":{"at":"soon"}}"#);
    }
    for _ in 0..2 {
        exchange.send_text_all(
            r#"{"channel":"level4","type":"update","data":[{"symbol":"BTC/USD","x":1}]}"#,
        );
    }
    exchange
        .send_text_all(r#"{"channel":"ticker","type":"update","data":[{"symbol":"DOGE/USD"}]}"#);
    // The subscribed stream is unaffected.
    exchange.publish("BTC/USD", json!({"last": 1}));
    match next(&mut ticker).await {
        Some(Ok(Update::Data(frame))) => assert!(frame.as_text().unwrap().contains("BTC/USD")),
        other => panic!("expected data, got {other:?}"),
    }
    exchange.send_text_all(r#"{"channel":"marker_kind"}"#);

    let seen = unknown_until(&mut events, "marker_kind").await;
    assert_eq!(
        seen,
        vec![
            ("maintenance_notice".to_owned(), Unplaced::UnknownType),
            ("level4".to_owned(), Unplaced::Unroutable),
            ("ticker".to_owned(), Unplaced::Unroutable),
            ("marker_kind".to_owned(), Unplaced::UnknownType),
        ],
        "one event per kind, in arrival order"
    );
    let counts: Vec<(String, u64)> = client
        .unplaced()
        .into_iter()
        .map(|k| (k.kind, k.count))
        .collect();
    assert_eq!(
        counts,
        vec![
            ("maintenance_notice".to_owned(), 3),
            ("level4".to_owned(), 2),
            ("ticker".to_owned(), 1),
            ("marker_kind".to_owned(), 1),
        ]
    );
    let stats = client.stats();
    assert!(stats.unroutable >= 7, "{stats:?}");
    assert!(stats.is_balanced(), "{stats:?}");
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_peer_naming_many_kinds_fills_a_bounded_table() {
    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    let config = fast(&exchange.url()).build().unwrap();
    let (client, _messages) = Client::connect(config, Kraken::new()).await.unwrap();
    let mut events = client.events();
    let long = "k".repeat(10_000);
    let kinds = 200;
    for n in 0..kinds {
        exchange.send_text_all(&format!(r#"{{"method":"{n}{long}"}}"#));
    }
    wait_until("every frame counted", || {
        client.unplaced().iter().map(|k| k.count).sum::<u64>() == kinds
    })
    .await;
    let table = client.unplaced();
    assert_eq!(table.len(), MAX_KINDS + 1);
    assert!(table
        .iter()
        .all(|k| k.kind.len() <= resilient_ws::MAX_KIND_BYTES));
    assert_eq!(
        table
            .iter()
            .find(|k| k.kind == OTHER_KINDS)
            .map(|k| k.count),
        Some(kinds - MAX_KINDS as u64)
    );
    // One event per kept kind and one for the rest: MAX_KINDS + 1 in all.
    let mut reported = 0;
    while let Some(Some(event)) = events.next().now_or_never_opt() {
        if matches!(event, Event::UnknownMessage { .. }) {
            reported += 1;
        }
    }
    assert_eq!(reported, MAX_KINDS + 1);
    client.close().await.unwrap();
}

trait NowOrNever: std::future::Future + Sized {
    fn now_or_never_opt(self) -> Option<Self::Output> {
        futures::FutureExt::now_or_never(self)
    }
}
impl<F: std::future::Future> NowOrNever for F {}

/// The next `Stale` event, waiting up to a minute of (paused) time.
async fn next_stale(events: &mut Events) -> Option<(resilient_ws::ClientId, String, Duration)> {
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(event) = events.next().await {
            if let Event::Stale {
                client_id,
                channel,
                silent_for,
            } = event
            {
                return Some((client_id, channel, silent_for));
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test(start_paused = true)]
async fn a_silent_subscription_is_reported_stale_once_per_silent_period() {
    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    let expected = Duration::from_secs(10);
    let config = fast(&exchange.url())
        .stale_after("ticker", expected)
        .build()
        .unwrap();
    let (client, _messages) = Client::connect(config, Kraken::new()).await.unwrap();
    let mut events = client.events();
    let mut btc = client
        .subscribe(Topic::new("ticker").symbol("BTC/USD"))
        .await
        .unwrap();
    // A channel without an expectation is never reported.
    let _trades = client
        .subscribe(Topic::new("trade").symbol("BTC/USD"))
        .await
        .unwrap();

    exchange.publish("BTC/USD", json!({"last": 1}));
    loop {
        if let Some(Ok(Update::Data(_))) = next(&mut btc).await {
            break;
        }
    }
    let last_data = tokio::time::Instant::now();
    let (client_id, channel, silent_for) = next_stale(&mut events).await.expect("a stale report");
    let waited = last_data.elapsed();
    assert_eq!((client_id, channel.as_str()), (btc.client_id(), "ticker"));
    assert!(silent_for >= expected, "{silent_for:?}");
    // The watch looks every quarter of the expectation.
    assert!(
        waited <= expected + expected / 4 + Duration::from_millis(100),
        "{waited:?}"
    );
    assert!(silent_for <= waited, "{silent_for:?} > {waited:?}");

    // Still silent: not reported again.
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(40), next_stale(&mut events))
            .await
            .ok()
            .flatten(),
        None,
        "one report per silent period"
    );

    // Data resumes, then stops again: a new silent period, a new report.
    exchange.publish("BTC/USD", json!({"last": 2}));
    loop {
        if let Some(Ok(Update::Data(_))) = next(&mut btc).await {
            break;
        }
    }
    let resumed = tokio::time::Instant::now();
    let (again, _, silent_for) = next_stale(&mut events).await.expect("a second report");
    assert_eq!(again, btc.client_id());
    assert!(resumed.elapsed() >= expected, "{:?}", resumed.elapsed());
    assert!(silent_for >= expected);
    assert_eq!(
        client.stats().reconnects,
        0,
        "a stale report reconnects nothing"
    );
    client.close().await.unwrap();
}

#[test]
fn stale_expectations_are_validated_and_clamped() {
    let zero = Config::builder("ws://127.0.0.1:1/")
        .stale_after("ticker", Duration::ZERO)
        .build();
    assert!(
        matches!(&zero, Err(resilient_ws::Error::Config(m)) if m.contains("stale_after")),
        "{zero:?}"
    );
    // "Never" is a year, not an overflow deep in the connection task.
    let never = Config::builder("ws://127.0.0.1:1/")
        .stale_after("ticker", Duration::MAX)
        .stale_after("book", Duration::from_secs(5))
        .stale_after("book", Duration::from_secs(7))
        .build()
        .unwrap();
    let shown = format!("{never:?}");
    assert!(
        shown.contains(r#"stale_after: [("ticker", 31536000s), ("book", 7s)]"#),
        "{shown}"
    );
}

/// The per-kind series (feature `metrics`). Kinds are known only when frames
/// arrive, so their series are registered by the connection task with the
/// recorder current there: here a scoped recorder around the whole runtime.
#[cfg(feature = "metrics")]
#[test]
fn unplaced_kinds_are_published_as_a_counter_per_kind() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let exchange = Exchange::start(Venue::Kraken).await.unwrap();
            let config = fast(&exchange.url())
                .metrics_interval(Duration::from_millis(20))
                .build()
                .unwrap();
            let (client, _messages) = Client::connect(config, Kraken::new()).await.unwrap();
            let mut events = client.events();
            exchange.send_text_all(r#"{"method":"maintenance_notice"}"#);
            exchange.send_text_all(r#"{"method":"maintenance_notice"}"#);
            exchange.send_text_all(r#"{"channel":"level4","data":[{"symbol":"X"}]}"#);
            unknown_until(&mut events, "level4").await;
            client.close().await.unwrap();
        })
    });
    let mut published: Vec<(String, String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "resilient_ws_unplaced_total")
        .map(|(key, _, _, value)| {
            let labels: Vec<String> = key
                .key()
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let kind = key
                .key()
                .labels()
                .find(|l| l.key() == "kind")
                .map(|l| l.value().to_owned())
                .unwrap_or_default();
            let value = match value {
                DebugValue::Counter(n) => n,
                other => panic!("{other:?}"),
            };
            (kind, labels.join(","), value)
        })
        .collect();
    published.sort();
    assert_eq!(published.len(), 2, "{published:?}");
    assert_eq!((published[0].0.as_str(), published[0].2), ("level4", 1));
    assert_eq!(
        (published[1].0.as_str(), published[1].2),
        ("maintenance_notice", 2)
    );
    assert!(published[0].1.contains("venue=kraken"), "{published:?}");
}
