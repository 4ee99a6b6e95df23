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
//!
//! With `feed` the client is a [`Feed`] polled by one consumer task (which then
//! answers the heartbeats, verifies the books and reconnects itself); each
//! topic's items must then all come under the client id its subscribe
//! returned, and the feed's counters balance with nothing left queued.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use resilient_ws::{
    Backoff, Client, ClientId, Config, Feed, Okx, Protocol, Stats, Topic, Update, Weex,
};

use super::op_venue::Dialect;
use super::soak_harness::{op_tickers, OKX_BOOKS};
use super::soak_link::VenueLink;

/// The soak's result, for the report.
#[derive(Debug)]
pub struct OpReport {
    /// Which venue.
    pub dialect: Dialect,
    /// Driven through a [`Feed`] (else the spawned supervisor).
    pub feed: bool,
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
pub async fn op_soak(
    dialect: Dialect,
    feed: bool,
    link: VenueLink<'_>,
    seed: u64,
    secs: u64,
) -> OpReport {
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
        Dialect::Weex => run(dialect, feed, link, config, Weex::new(), seed, secs).await,
        Dialect::Okx => run(dialect, feed, link, config, Okx::new(), seed, secs).await,
    }
}

/// One stream's data count, and whether it ended.
type Count = (Arc<AtomicU64>, Arc<AtomicBool>);

/// Counts one item of a stream; false once the stream has ended.
fn count_item(item: Result<Update, resilient_ws::Error>, (count, ended): &Count) -> bool {
    match item {
        Ok(Update::Data(_)) => {
            count.fetch_add(1, Ordering::SeqCst);
        }
        Ok(_) => {}
        Err(e) if e.is_retryable() => {}
        Err(_) => {
            ended.store(true, Ordering::SeqCst);
            return false;
        }
    }
    true
}

/// What the task that polled a feed saw.
struct FeedSeen {
    /// The client ids each topic's items came under.
    ids: Vec<Vec<ClientId>>,
    /// Items for no topic of the soak.
    strays: u64,
    queues: resilient_ws::QueueStats,
}

async fn run<P: Protocol>(
    dialect: Dialect,
    feed: bool,
    link: VenueLink<'_>,
    config: Config,
    protocol: P,
    seed: u64,
    secs: u64,
) -> OpReport {
    let mode = if feed { "feed" } else { "spawned" };
    let ctx = format!("{dialect:?} ({mode}) CHAOS_SEED={seed}");
    let (ticker, symbols) = op_tickers(dialect);
    let mut topics: Vec<Topic> = symbols
        .iter()
        .map(|s| Topic::new(ticker).symbol(s.clone()))
        .collect();
    if dialect == Dialect::Okx {
        topics.extend(OKX_BOOKS.iter().map(|s| Topic::new("books").symbol(*s)));
    }
    let counts: Vec<Count> = topics.iter().map(|_| Default::default()).collect();
    let mut consumers = Vec::new();
    let mut fed = None;
    let (client, mut messages) = if feed {
        let (handle, mut feed) = Feed::new(config, protocol);
        let messages = feed.take_unsolicited().expect("unsolicited");
        // One task polls the feed and counts each item for its topic.
        let task = {
            let topics = topics.clone();
            let counts = counts.clone();
            tokio::spawn(async move {
                let mut seen = FeedSeen {
                    ids: vec![Vec::new(); topics.len()],
                    strays: 0,
                    queues: Default::default(),
                };
                while let Some(item) = feed.next().await {
                    match topics.iter().position(|t| *t == *item.topic) {
                        Some(i) => {
                            if !seen.ids[i].contains(&item.client_id) {
                                seen.ids[i].push(item.client_id);
                            }
                            count_item(item.item, &counts[i]);
                        }
                        None => seen.strays += 1,
                    }
                }
                seen.queues = feed.stats();
                seen
            })
        };
        let mut ids = Vec::new();
        for topic in &topics {
            let id = handle
                .subscribe(topic.clone())
                .await
                .unwrap_or_else(|e| panic!("{ctx}: subscribe {topic}: {e}"));
            ids.push(id);
        }
        fed = Some((task, ids));
        (handle.client().clone(), messages)
    } else {
        let (client, messages) = Client::connect(config, protocol).await.expect("connects");
        for (topic, count) in topics.iter().zip(&counts) {
            let mut sub = client
                .subscribe(topic.clone())
                .await
                .unwrap_or_else(|e| panic!("{ctx}: subscribe {topic}: {e}"));
            let count = count.clone();
            consumers.push(tokio::spawn(async move {
                while let Some(item) = sub.next().await {
                    if !count_item(item, &count) {
                        break;
                    }
                }
                count.1.store(true, Ordering::SeqCst);
            }));
        }
        (client, messages)
    };
    let unsolicited = tokio::spawn(async move { while messages.next().await.is_some() {} });
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
    if let Some((task, ids)) = fed {
        let seen = task.await.expect("feed task");
        for ((topic, under), id) in topics.iter().zip(&seen.ids).zip(&ids) {
            assert!(
                under.iter().all(|u| u == id),
                "{ctx}: {topic}: items under {under:?}, subscribed as {id}"
            );
        }
        assert_eq!(seen.strays, 0, "{ctx}: items of no subscription");
        let q = seen.queues;
        assert_eq!(q.routed, q.delivered + q.dropped + q.queued, "{ctx}: {q:?}");
        assert_eq!(q.queued, 0, "{ctx}: drained to the end: {q:?}");
        let data: u64 = counts.iter().map(|(c, _)| c.load(Ordering::SeqCst)).sum();
        assert_eq!(
            q.delivered, data,
            "{ctx}: every delivered frame was read: {q:?}"
        );
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
        feed,
        faults,
        per_stream: counts
            .iter()
            .map(|(c, _)| c.load(Ordering::SeqCst))
            .collect(),
        stats,
        pongs,
    }
}
