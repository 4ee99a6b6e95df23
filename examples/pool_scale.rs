//! Scale figures for a `Pool` (issue 14): 10,000 subscriptions over 20
//! connections against the local exchange (`tests/support/exchange.rs`, same
//! process). Prints one line per figure; BENCHMARKS.md records a run.
//!
//! ```text
//! cargo run --release --example pool_scale
//! ```
//!
//! Knobs: `POOL_SCALE_SUBS` (10000), `POOL_SCALE_CONNECTIONS` (20),
//! `POOL_SCALE_SECS` (steady phase, 10), `POOL_SCALE_INTERVAL_MS` (each symbol
//! is published once per interval in the steady phase, 5000: 2,000 msg/s for
//! 10,000 symbols; the emulator's publish loop, not the client, limits how far
//! this goes up).
//!
//! Memory and CPU are whole-process figures (`/proc/self`), so they include
//! the in-process exchange's own per-connection and per-subscription state and
//! its encoding work: upper bounds for the library alone.

#[path = "../tests/support/mod.rs"]
mod support;

use support::{exchange, proxy};

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use resilient_ws::{
    Config, ConnectFuture, Connector, Event, Kalshi, Pool, PoolOptions, Topic, Transport, Update,
};
use tokio::net::TcpStream;
use tungstenite::client::IntoClientRequest;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of the process, in seconds.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted after the `)`.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    ticks as f64 / 100.0
}

/// The first connection goes through the fault proxy (to drop it later).
struct FirstThroughProxy {
    proxy: std::net::SocketAddr,
    direct: std::net::SocketAddr,
    attempts: AtomicUsize,
}

impl Connector for FirstThroughProxy {
    fn connect<'a>(&'a self, url: &'a str) -> ConnectFuture<'a> {
        Box::pin(async move {
            let first = self.attempts.fetch_add(1, Ordering::SeqCst) == 0;
            let addr = if first { self.proxy } else { self.direct };
            let request = url
                .into_client_request()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Transport {
                stream: Box::new(stream),
                request,
            })
        })
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let subs = env("POOL_SCALE_SUBS", 10_000) as usize;
    let connections = env("POOL_SCALE_CONNECTIONS", 20) as usize;
    let steady = Duration::from_secs(env("POOL_SCALE_SECS", 10));
    let interval = Duration::from_millis(env("POOL_SCALE_INTERVAL_MS", 5000).max(1));
    let cap = subs.div_ceil(connections);

    let exchange = exchange::Exchange::start(exchange::Venue::Kalshi)
        .await
        .expect("exchange");
    let proxy = proxy::Proxy::start(exchange.addr()).await.expect("proxy");
    let connector = FirstThroughProxy {
        proxy: proxy.addr(),
        direct: exchange.addr(),
        attempts: AtomicUsize::new(0),
    };
    // Default config: the default outbound rate limit (50 frames/s per connection).
    let config = Config::builder(exchange.url())
        .connector(connector)
        .build()
        .expect("config");
    let options = PoolOptions::default()
        .max_per_connection(cap)
        .max_connections(connections);
    let pool = Pool::new(config, Kalshi::new, options).expect("pool");
    let mut events = pool.events();
    let symbols: Vec<String> = (0..subs).map(|i| format!("S{i:05}")).collect();

    let rss_before = rss_kib();
    let started = Instant::now();
    let placed = futures::future::join_all(
        symbols
            .iter()
            .map(|s| pool.subscribe(Topic::new("ticker").symbol(s.clone()))),
    )
    .await;
    let subscribe_time = started.elapsed();
    let subscriptions: Vec<_> = placed.into_iter().map(|r| r.expect("subscribed")).collect();
    let rss_after = rss_kib();
    println!(
        "subscribe: {subs} subscriptions over {} connections in {:.2} s (default rate limit 50 frames/s per connection)",
        pool.connections(),
        subscribe_time.as_secs_f64()
    );
    let per_sub = (rss_after.saturating_sub(rss_before)) as f64 * 1024.0 / subs as f64;
    println!(
        "memory: RSS +{} KiB for {subs} subscriptions and {} connections = {per_sub:.0} B per subscription (connections included)",
        rss_after.saturating_sub(rss_before),
        pool.connections()
    );

    // One consumer task over every stream; counts data and Resubscribed signals.
    let data = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&data);
    let consumer = tokio::spawn(async move {
        let mut all = futures::stream::select_all(subscriptions);
        while let Some(item) = all.next().await {
            if let Ok(Update::Data(_)) = item {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    // Steady state: every symbol once per interval.
    let rate = subs as f64 / interval.as_secs_f64();
    let stream = exchange.start_stream(symbols.clone(), interval);
    tokio::time::sleep(interval).await;
    let (cpu0, n0, t0) = (cpu_secs(), data.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(steady).await;
    let (cpu1, n1, t1) = (cpu_secs(), data.load(Ordering::Relaxed), Instant::now());
    let messages = n1 - n0;
    println!(
        "steady: {:.0} msg/s offered, {:.0} msg/s delivered, CPU {:.1} us per message (process, exchange included), {:.0}% of one core",
        rate,
        messages as f64 / (t1 - t0).as_secs_f64(),
        (cpu1 - cpu0) * 1e6 / messages.max(1) as f64,
        (cpu1 - cpu0) * 100.0 / (t1 - t0).as_secs_f64()
    );

    // Recovery: drop the one connection that runs through the proxy.
    let cut_at = Instant::now();
    proxy.cut_all();
    let mut member = None;
    let mut resubscribed = 0;
    while let Some(event) = events.next().await {
        if let Event::Resubscribed { .. } = event.event {
            member = member.or(event.connection);
            if event.connection == member {
                resubscribed += 1;
                if resubscribed == cap {
                    break;
                }
            }
        }
    }
    println!(
        "recovery: connection {:?} of {} dropped; its {cap} subscriptions resubscribed in {:.2} s",
        member,
        pool.connections(),
        cut_at.elapsed().as_secs_f64()
    );
    let stats = pool.stats();
    let others_reconnected = stats
        .connections
        .iter()
        .filter(|c| Some(c.connection) != member && c.stats.reconnects > 0)
        .count();
    println!("recovery: other connections that reconnected: {others_reconnected}");

    stream.abort();
    pool.close().await.expect("close");
    let _ = consumer.await;
    exchange.shutdown().await;
}
