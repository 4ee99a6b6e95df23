//! The chaos soak for the `op_venue` venues (WEEX V3, OKX v5), client side: one
//! client through the fault proxy to the `op_venue` server run by the soak's
//! child process (`soak_harness`), tickers plus (OKX) books, with a random
//! fault every 100-500 ms from the proxy (cut, blackhole, stall, corruption)
//! or the server (drop, close 1011, garbage, refused subscribes for a moment,
//! bad book checksums, book gaps), and WEEX heartbeats that must be answered
//! throughout. `tests/chaos.rs` runs it next to the Kalshi/Kraken soak.
//!
//! What must hold: every stream is open and gets data after the last fault,
//! the counters balance, `close()` succeeds, and (WEEX) the server's
//! heartbeats were answered.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use resilient_ws::{Backoff, Client, Config, Okx, Protocol, Stats, Topic, Update, Weex};

use super::op_venue::Dialect;
use super::soak_harness::{op_tickers, OKX_BOOKS};
use super::soak_link::VenueLink;

/// The soak's result, for the report.
#[derive(Debug)]
pub struct OpReport {
    /// Which venue.
    pub dialect: Dialect,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Frames delivered per stream.
    pub per_stream: Vec<u64>,
    /// The client's counters at the end.
    pub stats: Stats,
    /// Server pings answered (WEEX).
    pub pongs: u64,
}

/// Runs one soak for `secs` seconds against the venue behind `link`; panics
/// with the seed when a promise breaks.
pub async fn op_soak(dialect: Dialect, link: VenueLink<'_>, seed: u64, secs: u64) -> OpReport {
    let config = Config::builder(link.url())
        .backoff(
            Backoff::new(Duration::from_millis(10), Duration::from_millis(200))
                .max_attempts(None)
                .seed(seed),
        )
        .connect_timeout(Duration::from_secs(1))
        .ping_interval(Duration::from_millis(250))
        .pong_timeout(Duration::from_millis(750))
        .idle_timeout(Some(Duration::from_millis(1500)))
        .request_timeout(Duration::from_secs(5))
        .close_timeout(Duration::from_secs(1))
        .build()
        .expect("config");
    match dialect {
        Dialect::Weex => run(dialect, link, config, Weex::new(), seed, secs).await,
        Dialect::Okx => run(dialect, link, config, Okx::new(), seed, secs).await,
    }
}

async fn run<P: Protocol>(
    dialect: Dialect,
    link: VenueLink<'_>,
    config: Config,
    protocol: P,
    seed: u64,
    secs: u64,
) -> OpReport {
    let ctx = format!("{dialect:?} CHAOS_SEED={seed}");
    let (ticker, symbols) = op_tickers(dialect);
    let mut topics: Vec<Topic> = symbols
        .iter()
        .map(|s| Topic::new(ticker).symbol(s.clone()))
        .collect();
    if dialect == Dialect::Okx {
        topics.extend(OKX_BOOKS.iter().map(|s| Topic::new("books").symbol(*s)));
    }
    let (client, mut messages) = Client::connect(config, protocol).await.expect("connects");
    let unsolicited = tokio::spawn(async move { while messages.next().await.is_some() {} });
    let mut counts = Vec::new();
    let mut consumers = Vec::new();
    for topic in topics {
        let mut sub = client
            .subscribe(topic.clone())
            .await
            .unwrap_or_else(|e| panic!("{ctx}: subscribe {topic}: {e}"));
        let count = Arc::new(AtomicU64::new(0));
        let ended = Arc::new(AtomicBool::new(false));
        counts.push((Arc::clone(&count), Arc::clone(&ended)));
        consumers.push(tokio::spawn(async move {
            while let Some(item) = sub.next().await {
                match item {
                    Ok(Update::Data(_)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(e) if e.is_retryable() => {}
                    Err(_) => break,
                }
            }
            ended.store(true, Ordering::SeqCst);
        }));
    }
    link.stream().await;
    let faults = link.faults(seed, secs).await;

    // Recovery: every stream gets fresh data after the last fault.
    let marks: Vec<u64> = counts
        .iter()
        .map(|(c, _)| c.load(Ordering::SeqCst))
        .collect();
    super::wait_until(&format!("{ctx}: every stream recovers"), || {
        counts
            .iter()
            .zip(&marks)
            .all(|((c, _), m)| c.load(Ordering::SeqCst) >= m + 3)
    })
    .await;
    assert!(
        counts
            .iter()
            .all(|(_, ended)| !ended.load(Ordering::SeqCst)),
        "{ctx}: a stream ended"
    );
    client
        .close()
        .await
        .unwrap_or_else(|e| panic!("{ctx}: close: {e}"));
    for consumer in consumers {
        let _ = consumer.await;
    }
    let _ = unsolicited.await;
    let stats = client.stats();
    assert!(
        stats.is_balanced(),
        "{ctx}: counters do not balance: {stats:?}"
    );
    let record = link.finish().await;
    let pongs = record["pongs"].as_u64().unwrap_or(0);
    if dialect == Dialect::Weex {
        assert!(pongs > 0, "{ctx}: no server heartbeat was answered");
    }
    OpReport {
        dialect,
        faults,
        per_stream: counts
            .iter()
            .map(|(c, _)| c.load(Ordering::SeqCst))
            .collect(),
        stats,
        pongs,
    }
}
