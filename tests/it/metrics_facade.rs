//! Issue 14: the `metrics` feature publishes the same numbers `stats()` returns,
//! labelled by venue and connection, plus one delivery wait per delivered message.
#![cfg(feature = "metrics")]

use crate::support;

use std::collections::HashMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use resilient_ws::{
    Backoff, Client, Config, ConnectionState, Error, Event, Kalshi, Stats, Topic, Update,
};
use serde_json::json;
use support::exchange::{Exchange, Venue};
use support::{next, wait_event, wait_until};

fn config(url: &str) -> Config {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).seed(3))
        .idle_timeout(None)
        .rate_limit(1000, Duration::from_secs(1))
        .connection_name("feed-a")
        .build()
        .expect("valid config")
}

/// Every series as `name{label=value,...}` -> value (counters, gauges, and
/// for a histogram the number of samples).
fn series(snapshotter: &Snapshotter) -> HashMap<String, f64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            match value {
                DebugValue::Counter(n) => (name, n as f64),
                DebugValue::Gauge(g) => (name, g.into_inner()),
                DebugValue::Histogram(samples) => {
                    assert!(samples.iter().all(|s| s.into_inner() >= 0.0));
                    (name, samples.len() as f64)
                }
            }
        })
        .collect()
}

fn get(series: &HashMap<String, f64>, name: &str, extra: &str) -> f64 {
    let key = format!("resilient_ws_{name}{{connection=feed-a,{extra}venue=kalshi}}");
    *series
        .get(&key)
        .unwrap_or_else(|| panic!("no series {key}; have {:?}", series.keys()))
}

fn assert_matches(series: &HashMap<String, f64>, stats: &Stats) {
    let counters = [
        ("frames_in_total", stats.frames_in),
        ("unroutable_total", stats.unroutable),
        ("reconnects_total", stats.reconnects),
        ("resubscribes_total", stats.resubscribes),
        ("gaps_total", stats.gaps),
        ("book_breaks_total", stats.book_breaks),
        ("routed_total", stats.queues.routed),
        ("delivered_total", stats.queues.delivered),
        ("dropped_total", stats.queues.dropped),
        ("queued", stats.queues.queued),
        ("subscriptions", stats.subscriptions),
    ];
    for (name, want) in counters {
        assert_eq!(get(series, name, ""), want as f64, "{name}");
    }
    assert_eq!(
        get(series, "venue_errors_total", "kind=permanent,"),
        stats.venue_errors_permanent as f64
    );
}

#[tokio::test]
async fn published_metrics_equal_stats_labelled_by_venue_and_connection() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Handles bind to the recorder current at spawn: a scoped one, no global install.
    let (client, _unsolicited) = metrics::with_local_recorder(&recorder, || {
        Client::spawn(config(&exchange.url()), Kalshi::new())
    });
    let mut state = client.state();
    tokio::time::timeout(
        support::SOON,
        state.wait_for(|s| *s == ConnectionState::Connected),
    )
    .await
    .expect("connects")
    .expect("state");
    let mut events = client.events();

    let mut a = client
        .subscribe(Topic::new("ticker").symbol("A"))
        .await
        .unwrap();
    let _b = client
        .subscribe(Topic::new("ticker").symbol("B"))
        .await
        .unwrap();
    // A venue refusal (counted by kind) and a gap.
    exchange.reject("NOPE", "Unknown market ticker", 8);
    let refused = client.subscribe(Topic::new("ticker").symbol("NOPE")).await;
    assert!(
        matches!(refused, Err(Error::Subscription { .. })),
        "{refused:?}"
    );
    for n in 0..5 {
        exchange.publish("A", json!({ "n": n }));
    }
    exchange.skip_seq("A", 2);
    exchange.publish("A", json!({ "n": 5 }));
    wait_event(&mut events, |e| matches!(e, Event::Gap { .. })).await;
    // B's frames stay queued (undelivered): the queue-depth gauge must see them.
    exchange.publish("B", json!({ "n": 0 }));
    exchange.publish("B", json!({ "n": 1 }));
    // One reconnect.
    exchange.abort_all();
    wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    let mut data = 0;
    while data < 6 {
        match next(&mut a).await {
            Some(Ok(Update::Data(_))) => data += 1,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    wait_until("B's frames queued", || client.stats().queues.queued >= 2).await;

    client.close().await.expect("clean close");
    let stats = client.stats();
    let published = series(&snapshotter);
    assert!(stats.gaps >= 1 && stats.reconnects == 1, "{stats:?}");
    assert_eq!(stats.venue_errors_permanent + stats.venue_errors_unknown, 1);
    assert!(
        stats.queues.queued >= 2 && stats.queues.delivered >= 6,
        "{stats:?}"
    );
    assert_matches(&published, &stats);
    assert_eq!(get(&published, "connection_state", ""), 0.0, "closed");
    // One receive-to-delivery wait per delivered message.
    assert_eq!(
        get(&published, "delivery_wait_seconds", ""),
        stats.queues.delivered as f64
    );
}

#[tokio::test]
async fn metrics_are_published_while_running_not_only_at_close() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let config = Config::builder(exchange.url())
        .idle_timeout(None)
        .metrics_interval(Duration::from_millis(20))
        .connection_name("feed-a")
        .build()
        .unwrap();
    let (client, _unsolicited) =
        metrics::with_local_recorder(&recorder, || Client::spawn(config, Kalshi::new()));
    let mut sub = client
        .subscribe(Topic::new("ticker").symbol("A"))
        .await
        .unwrap();
    exchange.publish("A", json!({ "n": 1 }));
    assert!(matches!(next(&mut sub).await, Some(Ok(Update::Data(_)))));
    // Polled, not slept: the publisher's tick is what this test waits for.
    let published = tokio::time::timeout(support::SOON, async {
        loop {
            let s = series(&snapshotter);
            let delivered = s.get("resilient_ws_delivered_total{connection=feed-a,venue=kalshi}");
            let state = s.get("resilient_ws_connection_state{connection=feed-a,venue=kalshi}");
            if delivered == Some(&1.0) && state == Some(&3.0) {
                return s;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("published while running");
    assert_eq!(get(&published, "subscriptions", ""), 1.0);
    client.close().await.unwrap();
}

#[tokio::test]
async fn venue_timestamps_give_a_receive_lag_per_stamped_frame() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (client, _unsolicited) = metrics::with_local_recorder(&recorder, || {
        Client::spawn(config(&exchange.url()), Kalshi::new())
    });
    let mut a = client
        .subscribe(Topic::new("ticker").symbol("A"))
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // Three frames stamped 100 s ago (Kalshi's `ts_ms`), one with only the
    // deprecated `ts` (read when `ts_ms` is missing) and one with no stamp
    // (no sample).
    for n in 0..3 {
        exchange.publish("A", json!({ "n": n, "ts_ms": now - 100_000 }));
    }
    exchange.publish("A", json!({ "n": 3, "ts": now / 1000 - 100 }));
    exchange.publish("A", json!({ "n": 4 }));
    let mut data = 0;
    while data < 5 {
        match next(&mut a).await {
            Some(Ok(Update::Data(_))) => data += 1,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    client.close().await.expect("clean close");
    let lags: Vec<f64> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "resilient_ws_venue_lag_seconds")
        .flat_map(|(.., value)| match value {
            DebugValue::Histogram(samples) => samples.into_iter().map(|s| s.into_inner()).collect(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(lags.len(), 4, "{lags:?}");
    // 100 s old, give or take the test's own second boundaries.
    assert!(lags.iter().all(|l| (99.0..=160.0).contains(l)), "{lags:?}");
}
