//! The chaos soak for the op/args venues (WEEX, OKX v5): one client through
//! the fault proxy to the op/args server, tickers plus (OKX) books, with a
//! random fault every 100-500 ms from the proxy (cut, blackhole, stall,
//! corruption) or the server (drop, close 1011, garbage, refused subscribes
//! for a moment, bad book checksums, book gaps), and WEEX heartbeats that
//! must be answered throughout. `tests/chaos.rs` runs it next to the
//! Kalshi/Kraken soak.
//!
//! What must hold: every stream is open and gets data after the last fault,
//! the counters balance, and `close()` succeeds.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use resilient_ws::{Backoff, Client, Config, Okx, Protocol, Stats, Topic, Update, Weex};

use super::op_venue::{Dialect, OpVenue};
use super::proxy::{Direction, Proxy};
use super::{okx, weex};

/// Tickers per client.
const TICKERS: usize = 8;
/// OKX book subscriptions (verified, resynced on faults).
const BOOKS: [&str; 2] = ["BTC-USDT", "ETH-USDT"];

/// The soak's result, for the report.
#[derive(Debug)]
pub struct OpReport {
    /// Which venue.
    pub dialect: Dialect,
    /// Faults injected.
    pub faults: u64,
    /// Frames delivered per stream.
    pub per_stream: Vec<u64>,
    /// The client's counters at the end.
    pub stats: Stats,
    /// Server pings answered (WEEX).
    pub pongs: usize,
}

/// Runs one soak for `secs` seconds; panics with the seed when a promise breaks.
pub async fn op_soak(dialect: Dialect, seed: u64, secs: u64) -> OpReport {
    let venue = OpVenue::start(dialect).await.expect("server");
    if dialect == Dialect::Weex {
        weex::heartbeats(&venue, Duration::from_millis(200), true);
    }
    let proxy = Proxy::start(venue.addr()).await.expect("proxy");
    let config = Config::builder(proxy.url())
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
        Dialect::Weex => run(venue, proxy, config, Weex::new(), seed, secs).await,
        Dialect::Okx => run(venue, proxy, config, Okx::new(), seed, secs).await,
    }
}

async fn run<P: Protocol>(
    venue: OpVenue,
    proxy: Proxy,
    config: Config,
    protocol: P,
    seed: u64,
    secs: u64,
) -> OpReport {
    let dialect = venue.dialect();
    let ctx = format!("{dialect:?} CHAOS_SEED={seed}");
    let (ticker, prefix) = match dialect {
        Dialect::Weex => ("ticker", "W"),
        Dialect::Okx => ("tickers", "O"),
    };
    let symbols: Vec<String> = (0..TICKERS)
        .map(|i| format!("{prefix}{i:02}-USDT"))
        .collect();
    let mut topics: Vec<Topic> = symbols
        .iter()
        .map(|s| Topic::new(ticker).symbol(s.clone()))
        .collect();
    if dialect == Dialect::Okx {
        topics.extend(BOOKS.iter().map(|s| Topic::new("books").symbol(*s)));
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
    let stream = venue.start_stream(ticker, symbols.clone(), Duration::from_millis(50));
    let books = (dialect == Dialect::Okx).then(|| {
        let venue = venue.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            for n in 0u64.. {
                tick.tick().await;
                let size = format!("{}", 1 + n % 7);
                for inst in BOOKS {
                    okx::update(&venue, inst, &[("100.4", &size)], &[("100.75", &size)]);
                }
            }
        })
    });

    let mut rng = StdRng::seed_from_u64(seed);
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut faults = 0;
    while tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..500))).await;
        proxy.clear();
        venue.state().drop_subscribes = false;
        faults += 1;
        match rng.random_range(0..9u8) {
            0 => proxy.cut_all(),
            1 => proxy.set_blackhole(true),
            2 => proxy.set_stall(Direction::ServerToClient, true),
            3 => proxy.corrupt_next(Direction::ServerToClient, rng.random_range(0..150)),
            4 => venue.drop_all(),
            5 => venue.close_all(1011, "internal error"),
            6 => venue.send_text_all("}{ not json"),
            7 => venue.state().drop_subscribes = true,
            _ => {
                let inst = BOOKS[rng.random_range(0..BOOKS.len())].to_owned();
                let mut state = venue.state();
                if rng.random_range(0..2u8) == 0 {
                    state.corrupt_checksum.insert(inst);
                } else {
                    state.gap.insert(inst);
                }
            }
        }
    }
    proxy.clear();
    venue.state().drop_subscribes = false;

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
    stream.abort();
    let _ = stream.await;
    if let Some(books) = books {
        books.abort();
        let _ = books.await;
    }
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
    let pongs = venue.state().pongs.len();
    if dialect == Dialect::Weex {
        assert!(pongs > 0, "{ctx}: no server heartbeat was answered");
    }
    proxy.shutdown().await;
    venue.shutdown().await;
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
