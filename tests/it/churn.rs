//! Nothing grows with churn, and a cancelled `subscribe_many` leaves no
//! orphans (issue 11, items 4 and 7), against the real test exchange.
//!
//! The churn runs 2,000 cycles per venue by default (`CHURN_CYCLES=100000`
//! for the full count, about 3 minutes); the hub's pruning and the Kraken
//! maps are also churned 100,000 times in unit tests (`stats.rs`,
//! `protocol/kraken/mod.rs`).

use crate::support;

use std::time::Duration;

use resilient_ws::{Backoff, Client, Config, ConfigBuilder, Kalshi, Kraken, Topic};
use support::exchange::{AckMode, Exchange, Venue};

fn fast(url: &str) -> ConfigBuilder {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).seed(9))
        .ping_interval(Duration::from_secs(3600))
        .idle_timeout(None)
        .rate_limit(100_000, Duration::from_secs(1))
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_subscribe_many_leaves_no_orphans() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let (client, _messages) =
        Client::connect(fast(&exchange.url()).build().unwrap(), Kalshi::new())
            .await
            .unwrap();
    exchange.set_ack_mode(AckMode::Never);
    let topics = ["A", "B", "C"]
        .iter()
        .map(|s| Topic::new("ticker").symbol(*s))
        .collect();
    // Dropped while waiting for the first ack.
    let cancelled =
        tokio::time::timeout(Duration::from_secs(1), client.subscribe_many(topics)).await;
    assert!(cancelled.is_err(), "no ack ever comes");

    // On the next connection, nothing of A, B or C is replayed: a fresh
    // subscribe (replayed after anything older) is the first and only one.
    exchange.set_ack_mode(AckMode::Normal);
    exchange.abort_all();
    let _fresh = client
        .subscribe(Topic::new("ticker").symbol("FRESH"))
        .await
        .unwrap();
    let replayed: Vec<String> = exchange
        .received()
        .into_iter()
        .filter(|r| r.conn > 1 && r.text.contains("subscribe"))
        .map(|r| r.text)
        .collect();
    assert_eq!(replayed.len(), 1, "{replayed:#?}");
    assert!(replayed[0].contains("FRESH"), "{replayed:#?}");
    client.close().await.unwrap();
}

/// Subscribe/unsubscribe cycles without calling `stats()`: the stats hub
/// prunes ended queues on its own, so what it holds stays flat.
async fn churn(venue: Venue, cycles: u32) -> usize {
    let exchange = Exchange::start(venue).await.unwrap();
    let config = fast(&exchange.url()).build().unwrap();
    let (client, _messages) = match venue {
        Venue::Kraken => Client::connect(config, Kraken::new()).await.unwrap(),
        _ => Client::connect(config, Kalshi::new()).await.unwrap(),
    };
    let mut most = 0;
    for n in 0..cycles {
        let sub = client
            .subscribe(Topic::new("ticker").symbol(format!("S{n}")))
            .await
            .unwrap();
        if n % 2 == 0 {
            sub.unsubscribe().await.unwrap();
        } else {
            drop(sub);
        }
        most = most.max(client.tracked_queues());
    }
    client.close().await.unwrap();
    most
}

#[tokio::test]
async fn subscribe_unsubscribe_churn_keeps_the_stats_hub_flat() {
    let cycles = std::env::var("CHURN_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    for venue in [Venue::Kalshi, Venue::Kraken] {
        let most = churn(venue, cycles).await;
        assert!(
            most <= 130,
            "{venue:?}: the hub held {most} queues after {cycles} cycles"
        );
    }
}
