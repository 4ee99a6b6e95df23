//! The main job: one resilient connection, one ticker subscription per symbol,
//! kept alive through injected faults, with an accounting summary at the end.
//!
//! ```text
//! cargo run --release --example market_feed -- [--protocol kalshi|kraken|weex|okx] [--url URL]
//!     [--symbols A,B,C] [--duration SECS] [--chaos-every-ms MS] [--seed N]
//!     [--connections N] [--metrics-addr 127.0.0.1:PORT]
//!     [--publish nats://HOST:PORT --shard I/N --replica NAME] [--record DIR] [--feed]
//! ```
//!
//! `--feed` runs the same job through the consumer-driven [`resilient_ws::Feed`]:
//! the one task that reads every item also reads the socket, answers pings and
//! reconnects (no spawned connection task); same faults, same summary and
//! checks. Not with `--connections` > 1 or `--publish`.
//!
//! `--publish` (build with `--features nats`) publishes every item to NATS
//! JetStream (stream `MD`, subjects `md.{venue}.{channel}.{instrument}`)
//! instead of counting it, for the instruments shard `I` of `N` owns under
//! rendezvous hashing; run each shard twice with different `--replica` names
//! and JetStream stores each update once. It prints a `publish:` summary line
//! (the sink's accounting) and fails if it does not balance. Without
//! `--publish` nothing changes.
//!
//! `--record DIR` records the connection(s) into DIR (rotating, crash-safe
//! files; one stream per connection) for `examples/replay.rs`; the
//! recorder's counters go to stderr at the end.
//!
//! `--connections N` (N > 1) runs the feed over a [`Pool`] of at most N
//! connections, the symbols spread evenly. `--metrics-addr` (build with
//! `--features metrics`) serves the counters as Prometheus text at
//! `http://ADDR/metrics` while the feed runs; it prints
//! `metrics: listening on ADDR` to stderr once bound (port 0 picks one).
//!
//! Without `--url` it starts an embedded exchange on 127.0.0.1 speaking
//! `--protocol` that streams ticker data and, every `--chaos-every-ms` (0 = off),
//! injects a random fault: TCP abort, close 1011, silence until the idle timeout,
//! or a garbage frame (the `op_venue` server for `weex` (V3) and `okx`: a dropped
//! connection, close 1011 or a garbage frame; WEEX also pings every 500 ms and
//! drops a client that does not answer). With `--url` it connects to that server instead.
//!
//! Progress goes to stderr once a second. At the end it closes cleanly and prints
//! exactly one line on stdout:
//!
//! ```text
//! summary: protocol=P received=N delivered=N dropped=N unroutable=N reconnects=N resubscribes=N gaps=N subscriptions_alive=K/M
//! ```
//!
//! `received` counts every non-control frame read from the socket; it must equal
//! `delivered + dropped + unroutable` once the streams are drained. The exit code
//! is 0 only if that holds and every subscription is still alive.

#[path = "../tests/support/mod.rs"]
mod support;

use support::{exchange, op_venue, weex};

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use resilient_ws::{
    Backoff, Client, Config, ConnectionState, Error, Kalshi, Kraken, Okx, Pool, PoolOptions,
    Protocol, RecordOptions, Recorder, Stats, Subscription, Topic, Update, Weex,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Venue {
    Kalshi,
    Kraken,
    Weex,
    Okx,
}

impl Venue {
    /// The ticker channel's name on this venue.
    fn ticker(self) -> &'static str {
        match self {
            Venue::Kalshi | Venue::Kraken | Venue::Weex => "ticker",
            Venue::Okx => "tickers",
        }
    }
}

/// The embedded exchange: the Kalshi/Kraken emulator or the WEEX/OKX `op_venue` server.
#[derive(Clone)]
enum Embedded {
    Exchange(exchange::Exchange),
    OpVenue(op_venue::OpVenue),
}

impl Embedded {
    async fn start(venue: Venue) -> std::io::Result<Embedded> {
        Ok(match venue {
            Venue::Kalshi => {
                Embedded::Exchange(exchange::Exchange::start(exchange::Venue::Kalshi).await?)
            }
            Venue::Kraken => {
                Embedded::Exchange(exchange::Exchange::start(exchange::Venue::Kraken).await?)
            }
            Venue::Weex => {
                let server = op_venue::OpVenue::start(op_venue::Dialect::Weex).await?;
                // WEEX drops clients that do not answer its heartbeat.
                weex::heartbeats(&server, Duration::from_millis(500), true);
                Embedded::OpVenue(server)
            }
            Venue::Okx => {
                Embedded::OpVenue(op_venue::OpVenue::start(op_venue::Dialect::Okx).await?)
            }
        })
    }

    fn url(&self) -> String {
        match self {
            Embedded::Exchange(e) => e.url(),
            Embedded::OpVenue(v) => v.url(),
        }
    }

    fn start_stream(
        &self,
        venue: Venue,
        symbols: Vec<String>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        match self {
            Embedded::Exchange(e) => e.start_stream(symbols, every),
            Embedded::OpVenue(v) => v.start_stream(venue.ticker(), symbols, every),
        }
    }

    async fn shutdown(&self) {
        match self {
            Embedded::Exchange(e) => e.shutdown().await,
            Embedded::OpVenue(v) => v.shutdown().await,
        }
    }
}

#[derive(Debug)]
struct Args {
    venue: Venue,
    url: Option<String>,
    symbols: Vec<String>,
    duration: Duration,
    chaos_every: Option<Duration>,
    seed: u64,
    connections: usize,
    metrics_addr: Option<std::net::SocketAddr>,
    publish: Option<String>,
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    shard: resilient_ws::Shard,
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    replica: String,
    record: Option<std::path::PathBuf>,
    /// `--feed`: the consumer-driven feed instead of the spawned supervisor.
    feed: bool,
}

const USAGE: &str = "usage: market_feed [--protocol kalshi|kraken|weex|okx] [--url URL] \
                     [--symbols A,B,C] [--duration SECS] [--chaos-every-ms MS] [--seed N] \
                     [--connections N] [--metrics-addr 127.0.0.1:PORT] \
                     [--publish nats://HOST:PORT --shard I/N --replica NAME] [--record DIR] [--feed]";

fn parse_args() -> Result<Args, String> {
    let mut venue = Venue::Kalshi;
    let mut url = None;
    let mut symbols: Option<Vec<String>> = None;
    let mut duration = Duration::from_secs(15);
    let mut chaos_every = Some(Duration::from_millis(2000));
    let mut seed = 42;
    let mut connections = 1;
    let mut metrics_addr = None;
    let mut publish = None;
    let mut shard = resilient_ws::Shard::whole();
    let mut replica = String::from("r0");
    let mut record = None;
    let mut feed = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--feed" {
            feed = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_owned());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |what: &str| format!("{flag}: {what}: {value:?}\n{USAGE}");
        match flag.as_str() {
            "--protocol" => {
                venue = match value.as_str() {
                    "kalshi" => Venue::Kalshi,
                    "kraken" => Venue::Kraken,
                    "weex" => Venue::Weex,
                    "okx" => Venue::Okx,
                    _ => return Err(bad("expected kalshi, kraken, weex or okx")),
                }
            }
            "--url" => url = Some(value),
            "--symbols" => {
                let list: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                if list.is_empty() {
                    return Err(bad("expected a comma-separated list"));
                }
                symbols = Some(list);
            }
            "--duration" => {
                duration = Duration::from_secs(value.parse().map_err(|_| bad("expected seconds"))?)
            }
            "--chaos-every-ms" => {
                let ms: u64 = value.parse().map_err(|_| bad("expected milliseconds"))?;
                chaos_every = (ms > 0).then(|| Duration::from_millis(ms));
            }
            "--seed" => seed = value.parse().map_err(|_| bad("expected an integer"))?,
            "--connections" => {
                connections = value.parse().map_err(|_| bad("expected a count"))?;
                if connections == 0 {
                    return Err(bad("expected at least 1"));
                }
            }
            "--metrics-addr" => {
                metrics_addr = Some(value.parse().map_err(|_| bad("expected IP:PORT"))?);
            }
            "--publish" => publish = Some(value),
            "--shard" => shard = value.parse().map_err(|_| bad("expected I/N with I < N"))?,
            "--replica" => replica = value,
            "--record" => record = Some(std::path::PathBuf::from(value)),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if feed && (connections > 1 || publish.is_some()) {
        return Err(format!(
            "--feed drives one connection: not with --connections > 1 or --publish\n{USAGE}"
        ));
    }
    let mut symbols = symbols.unwrap_or_else(|| default_symbols(venue));
    if publish.is_some() {
        // This shard's instruments only (rendezvous hashing, no coordinator).
        symbols.retain(|s| shard.owns(s));
        if symbols.is_empty() {
            return Err(format!("shard {shard} owns none of the symbols\n{USAGE}"));
        }
    }
    Ok(Args {
        venue,
        url,
        symbols,
        duration,
        chaos_every,
        seed,
        connections,
        metrics_addr,
        publish,
        shard,
        replica,
        record,
        feed,
    })
}

fn default_symbols(venue: Venue) -> Vec<String> {
    let list: &[&str] = match venue {
        Venue::Kalshi => &[
            "KXBTC-25",
            "KXETH-25",
            "KXSOL-25",
            "KXXRP-25",
            "KXDOGE-25",
            "KXADA-25",
            "KXLTC-25",
            "KXDOT-25",
        ],
        Venue::Kraken => &[
            "BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD", "DOGE/USD", "ADA/USD", "LTC/USD", "DOT/USD",
        ],
        Venue::Weex => &[
            "BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "LTCUSDT", "DOTUSDT",
        ],
        Venue::Okx => &[
            "BTC-USDT",
            "ETH-USDT",
            "SOL-USDT",
            "XRP-USDT",
            "DOGE-USDT",
            "ADA-USDT",
            "LTC-USDT",
            "DOT-USDT",
        ],
    };
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// What one consumer task saw.
#[derive(Default)]
struct Seen {
    data: AtomicU64,
    gaps: AtomicU64,
    ended: AtomicBool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .init();
    let _metrics = match args.metrics_addr {
        None => None,
        Some(addr) => match metrics_http::serve(addr).await {
            Ok(server) => Some(server),
            Err(message) => {
                eprintln!("{message}");
                return ExitCode::from(2);
            }
        },
    };
    match args.venue {
        Venue::Kalshi => run(args, Kalshi::new).await,
        Venue::Kraken => run(args, Kraken::new).await,
        Venue::Weex => run(args, Weex::new).await,
        Venue::Okx => run(args, Okx::new).await,
    }
}

async fn run<P: Protocol>(args: Args, protocol: fn() -> P) -> ExitCode {
    let protocol_name = protocol().name();
    // The embedded exchange, unless a URL was given.
    let embedded = match &args.url {
        Some(_) => None,
        None => match Embedded::start(args.venue).await {
            Ok(exchange) => Some(exchange),
            Err(error) => {
                eprintln!("cannot start the embedded exchange: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    let url = match (&args.url, &embedded) {
        (Some(url), _) => url.clone(),
        (None, Some(exchange)) => exchange.url(),
        (None, None) => unreachable!("either a URL or an embedded exchange"),
    };
    let recorder = match &args.record {
        None => None,
        Some(dir) => match Recorder::create(dir, RecordOptions::default()) {
            Ok(recorder) => Some(recorder),
            Err(error) => {
                eprintln!("cannot record into {}: {error}", dir.display());
                return ExitCode::from(2);
            }
        },
    };
    let mut builder = Config::builder(url);
    if let Some(recorder) = &recorder {
        builder = builder.record(recorder.clone());
    }
    let config = match builder
        .backoff(
            Backoff::new(Duration::from_millis(50), Duration::from_secs(2))
                .max_attempts(None)
                .reset_after(Duration::from_secs(5))
                .seed(args.seed),
        )
        .connect_timeout(Duration::from_secs(5))
        .ping_interval(Duration::from_secs(2))
        .pong_timeout(Duration::from_secs(2))
        .idle_timeout(Some(Duration::from_secs(3)))
        .request_timeout(Duration::from_secs(5))
        .build()
    {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };

    if args.feed {
        return driven::run(args, config, protocol(), embedded, recorder).await;
    }
    let (feed, unsolicited_task) = if args.connections > 1 {
        let per_connection = args.symbols.len().div_ceil(args.connections).max(1);
        let options = PoolOptions::default()
            .max_per_connection(per_connection)
            .max_connections(args.connections);
        match Pool::new(config, protocol, options) {
            Ok(pool) => (Feed::Pool(pool), None),
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::from(2);
            }
        }
    } else {
        let (client, mut unsolicited) = Client::spawn(config, protocol());
        let task = tokio::spawn(async move { while unsolicited.next().await.is_some() {} });
        (Feed::Client(client), Some(task))
    };

    let topics: Vec<Topic> = args
        .symbols
        .iter()
        .map(|s| Topic::new(args.venue.ticker()).symbol(s.clone()))
        .collect();
    if let Some(target) = args.publish.clone() {
        return publish::run(feed, topics, target, &args, embedded, protocol_name).await;
    }
    let subscriptions =
        match tokio::time::timeout(Duration::from_secs(30), feed.subscribe_many(topics)).await {
            Ok(Ok(results)) => results,
            Ok(Err(error)) => {
                eprintln!("subscribing failed: {error}");
                return ExitCode::FAILURE;
            }
            Err(_) => {
                eprintln!("subscribing timed out");
                return ExitCode::FAILURE;
            }
        };
    let total = subscriptions.len();
    let mut consumers = Vec::new();
    let mut seen_all = Vec::new();
    for (symbol, result) in args.symbols.iter().zip(subscriptions) {
        match result {
            Ok(subscription) => {
                let seen = Arc::new(Seen::default());
                seen_all.push(Arc::clone(&seen));
                consumers.push(tokio::spawn(consume(subscription, seen)));
            }
            Err(error) => eprintln!("subscription to {symbol} failed: {error}"),
        }
    }

    let mut load = Load::start(embedded.as_ref(), &args);

    let deadline = tokio::time::Instant::now() + args.duration;
    let mut progress = tokio::time::interval(Duration::from_secs(1));
    progress.tick().await;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = progress.tick() => {
                let s = feed.stats();
                let alive = seen_all.iter().filter(|s| !s.ended.load(Ordering::Relaxed)).count();
                eprintln!(
                    "[{protocol_name}] state={:?} frames_in={} delivered={} dropped={} unroutable={} reconnects={} resubscribes={} gaps={} alive={alive}/{total}",
                    feed.state(), s.frames_in, s.queues.delivered, s.queues.dropped, s.unroutable,
                    s.reconnects, s.resubscribes, s.gaps,
                );
            }
        }
    }

    load.stop_chaos();
    // Alive means: the stream is still open now, before we close on purpose.
    let alive = seen_all
        .iter()
        .filter(|s| !s.ended.load(Ordering::Relaxed) && s.data.load(Ordering::Relaxed) > 0)
        .count();
    let close_result = feed.close().await;
    load.stop_streaming();
    for consumer in consumers {
        let _ = consumer.await;
    }
    shut_down(unsolicited_task, embedded.as_ref(), recorder).await;

    let s = feed.stats();
    let consumed: u64 = seen_all
        .iter()
        .map(|s| s.data.load(Ordering::Relaxed))
        .sum();
    let gaps_seen: u64 = seen_all
        .iter()
        .map(|s| s.gaps.load(Ordering::Relaxed))
        .sum();
    let mut ok = summarize(protocol_name, &s, alive, total);
    if let Err(error) = close_result {
        eprintln!("FAIL: the client had already failed: {error}");
        ok = false;
    }
    // The subscriptions' consumers plus the unsolicited drain account for every delivery.
    if consumed > s.queues.delivered || gaps_seen + s.queues.signals_dropped < s.gaps + s.resets {
        eprintln!(
            "FAIL: consumers saw {consumed} frames and {gaps_seen} gap signals; stats say {} delivered, {} gaps, {} resets",
            s.queues.delivered, s.gaps, s.resets
        );
        ok = false;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The tail of a run, driven either way, once the client is closed: waits
/// for the unsolicited-frames drain (it ends with the client), stops the
/// embedded exchange, and flushes the recording to disk (blocking file I/O,
/// so off the runtime's threads) before printing its stats.
async fn shut_down(
    unsolicited_task: Option<tokio::task::JoinHandle<()>>,
    embedded: Option<&Embedded>,
    recorder: Option<Recorder>,
) {
    if let Some(task) = unsolicited_task {
        let _ = task.await;
    }
    if let Some(exchange) = embedded {
        exchange.shutdown().await;
    }
    if let Some(recorder) = recorder {
        let flushed = recorder.clone();
        let _ = tokio::task::spawn_blocking(move || flushed.flush()).await;
        eprintln!("record: {:?}", recorder.stats());
    }
}

/// Prints the run's summary line and checks what holds for every run, driven
/// either way: every subscription alive, every frame received accounted for
/// (delivered, dropped or unroutable; none left queued or stashed), and the
/// stats' own invariant. `false` when one fails (each failure is printed).
fn summarize(protocol_name: &str, s: &Stats, alive: usize, total: usize) -> bool {
    let received = s.frames_in - s.control;
    println!(
        "summary: protocol={protocol_name} received={received} delivered={} dropped={} unroutable={} reconnects={} resubscribes={} gaps={} subscriptions_alive={alive}/{total}",
        s.queues.delivered, s.queues.dropped, s.unroutable, s.reconnects, s.resubscribes, s.gaps,
    );
    let mut ok = true;
    if alive != total {
        eprintln!("FAIL: only {alive} of {total} subscriptions are alive");
        ok = false;
    }
    if received != s.queues.delivered + s.queues.dropped + s.unroutable
        || s.queues.queued != 0
        || s.stashed != 0
    {
        eprintln!("FAIL: counts do not add up: {s:?}");
        ok = false;
    }
    if !s.is_balanced() {
        eprintln!("FAIL: the accounting invariant does not hold: {s:?}");
        ok = false;
    }
    ok
}

/// `--feed`: the main job through the consumer-driven [`resilient_ws::Feed`].
mod driven {
    use std::collections::HashMap;
    use std::process::ExitCode;
    use std::time::Duration;

    use futures::StreamExt;
    use resilient_ws::{ClientId, Config, Feed, Protocol, Recorder, Topic, Update};

    use super::{Args, Embedded, Load};

    /// What the feed yielded for one subscription.
    #[derive(Default)]
    struct Seen {
        data: u64,
        gaps: u64,
        ended: bool,
    }

    impl Seen {
        fn take(&mut self, item: Result<Update, resilient_ws::Error>, id: ClientId) {
            match item {
                Ok(Update::Data(_)) => self.data += 1,
                Ok(Update::Gap { .. } | Update::Reset { .. }) => self.gaps += 1,
                Ok(_) => {}
                Err(error) if error.is_retryable() => {
                    eprintln!("subscription {id}: notice: {error}");
                }
                Err(error) => {
                    eprintln!("subscription {id} ended: {error}");
                    self.ended = true;
                }
            }
        }
    }

    pub(super) async fn run<P: Protocol>(
        args: Args,
        config: Config,
        protocol: P,
        embedded: Option<Embedded>,
        recorder: Option<Recorder>,
    ) -> ExitCode {
        let protocol_name = protocol.name();
        let (handle, mut feed) = Feed::new(config, protocol);
        let unsolicited_task = feed.take_unsolicited().map(|mut unsolicited| {
            tokio::spawn(async move { while unsolicited.next().await.is_some() {} })
        });
        let topics: Vec<Topic> = args
            .symbols
            .iter()
            .map(|s| Topic::new(args.venue.ticker()).symbol(s.clone()))
            .collect();
        let total = topics.len();
        let mut seen: HashMap<ClientId, Seen> = HashMap::new();
        // Subscribing is answered by polling the feed: subscribe from another
        // task and poll here meanwhile.
        let mut subscribing = tokio::spawn({
            let handle = handle.clone();
            async move { handle.subscribe_many(topics).await }
        });
        let subscribed = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                tokio::select! {
                    done = &mut subscribing => return done,
                    item = feed.next() => match item {
                        Some(item) => seen.entry(item.client_id).or_default().take(item.item, item.client_id),
                        None => return Ok(Ok(Vec::new())),
                    },
                }
            }
        })
        .await;
        match subscribed {
            Ok(Ok(Ok(results))) => {
                for (symbol, result) in args.symbols.iter().zip(results) {
                    match result {
                        Ok(id) => {
                            seen.entry(id).or_default();
                        }
                        Err(error) => eprintln!("subscription to {symbol} failed: {error}"),
                    }
                }
            }
            Ok(Ok(Err(error))) => {
                eprintln!("subscribing failed: {error}");
                return ExitCode::FAILURE;
            }
            Ok(Err(error)) => {
                eprintln!("subscribing task failed: {error}");
                return ExitCode::FAILURE;
            }
            Err(_) => {
                eprintln!("subscribing timed out");
                return ExitCode::FAILURE;
            }
        }

        let mut load = Load::start(embedded.as_ref(), &args);
        let deadline = tokio::time::Instant::now() + args.duration;
        let mut progress = tokio::time::interval(Duration::from_secs(1));
        progress.tick().await;
        let client = handle.client().clone();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = progress.tick() => {
                    let s = client.stats();
                    let alive = seen.values().filter(|s| !s.ended).count();
                    eprintln!(
                        "[{protocol_name} feed] state={:?} frames_in={} delivered={} dropped={} unroutable={} reconnects={} resubscribes={} gaps={} alive={alive}/{total}",
                        *client.state().borrow(), s.frames_in, s.queues.delivered, s.queues.dropped,
                        s.unroutable, s.reconnects, s.resubscribes, s.gaps,
                    );
                }
                item = feed.next() => match item {
                    Some(item) => seen.entry(item.client_id).or_default().take(item.item, item.client_id),
                    None => break,
                },
            }
        }
        load.stop_chaos();
        let alive = seen.values().filter(|s| !s.ended && s.data > 0).count();
        // Close from another task; the feed is polled (and drained) until it ends.
        let closing = tokio::spawn({
            let client = client.clone();
            async move { client.close().await }
        });
        let drained = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(item) = feed.next().await {
                seen.entry(item.client_id)
                    .or_default()
                    .take(item.item, item.client_id);
            }
        })
        .await;
        let close_result = closing
            .await
            .unwrap_or(Err(resilient_ws::Error::ClientClosed));
        load.stop_streaming();
        super::shut_down(unsolicited_task, embedded.as_ref(), recorder).await;

        let s = client.stats();
        let consumed: u64 = seen.values().map(|s| s.data).sum();
        let gaps_seen: u64 = seen.values().map(|s| s.gaps).sum();
        let mut ok = super::summarize(protocol_name, &s, alive, total);
        if drained.is_err() {
            eprintln!("FAIL: the feed did not end within 10 s of close");
            ok = false;
        }
        if let Err(error) = close_result {
            eprintln!("FAIL: the feed had already failed: {error}");
            ok = false;
        }
        // Every item the feed yielded is counted as delivered, exactly.
        if consumed != s.queues.delivered
            || gaps_seen + s.queues.signals_dropped < s.gaps + s.resets
        {
            eprintln!(
                "FAIL: the feed yielded {consumed} frames and {gaps_seen} gap signals; stats say {} delivered, {} gaps, {} resets",
                s.queues.delivered, s.gaps, s.resets
            );
            ok = false;
        }
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// One client, or a pool of them.
enum Feed {
    Client(Client),
    Pool(Pool),
}

impl Feed {
    async fn subscribe_many(
        &self,
        topics: Vec<Topic>,
    ) -> Result<Vec<Result<Subscription, Error>>, Error> {
        match self {
            Feed::Client(client) => client.subscribe_many(topics).await,
            Feed::Pool(pool) => {
                let each = topics.into_iter().map(|topic| pool.subscribe(topic));
                Ok(futures::future::join_all(each).await)
            }
        }
    }

    fn stats(&self) -> Stats {
        match self {
            Feed::Client(client) => client.stats(),
            Feed::Pool(pool) => pool.stats().total,
        }
    }

    /// The state, or for a pool every member's.
    fn state(&self) -> String {
        match self {
            Feed::Client(client) => format!("{:?}", *client.state().borrow()),
            Feed::Pool(pool) => {
                let stats = pool.stats();
                let connected = stats
                    .connections
                    .iter()
                    .filter(|c| c.state == ConnectionState::Connected)
                    .count();
                format!("{connected}/{} connected", stats.connections.len())
            }
        }
    }

    async fn close(&self) -> Result<(), Error> {
        match self {
            Feed::Client(client) => client.close().await,
            Feed::Pool(pool) => pool.close().await,
        }
    }
}

/// `--metrics-addr`: a Prometheus text endpoint over the process's recorder.
mod metrics_http {
    use std::net::SocketAddr;

    /// The listener task; dropped (aborted) when the feed ends.
    pub struct Server(tokio::task::JoinHandle<()>);

    impl Drop for Server {
        fn drop(&mut self) {
            self.0.abort();
        }
    }

    #[cfg(not(feature = "metrics"))]
    pub async fn serve(_: SocketAddr) -> Result<Server, String> {
        Err("--metrics-addr needs the metrics feature: cargo run --features metrics --example market_feed".into())
    }

    /// Installs the Prometheus recorder (an application may; the library never
    /// does) and answers every HTTP request with the current text.
    #[cfg(feature = "metrics")]
    pub async fn serve(addr: SocketAddr) -> Result<Server, String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|e| format!("metrics recorder: {e}"))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!("metrics: listening on {bound}");
        Ok(Server(tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let handle = handle.clone();
                tokio::spawn(async move {
                    // The request itself does not matter: read its head, answer.
                    let mut head = [0u8; 1024];
                    let _ = socket.read(&mut head).await;
                    handle.run_upkeep();
                    let body = handle.render();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        })))
    }
}

async fn consume(mut subscription: Subscription, seen: Arc<Seen>) {
    while let Some(item) = subscription.next().await {
        match item {
            Ok(Update::Data(_)) => {
                seen.data.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Update::Gap { .. } | Update::Reset { .. }) => {
                seen.gaps.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(error) if error.is_retryable() => {
                eprintln!("subscription {}: notice: {error}", subscription.client_id());
            }
            Err(error) => {
                eprintln!("subscription {} ended: {error}", subscription.client_id());
                seen.ended.store(true, Ordering::Relaxed);
                return;
            }
        }
    }
    seen.ended.store(true, Ordering::Relaxed);
}

/// The embedded venue's load for one run: its stream of data and, with
/// `--chaos-every-ms`, the chaos task. Every driving mode starts it once its
/// subscriptions are in, stops the chaos at the deadline and the stream once
/// the client is closed.
struct Load {
    streaming: Option<tokio::task::JoinHandle<()>>,
    chaos: Option<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(embedded: Option<&Embedded>, args: &Args) -> Self {
        let streaming = embedded.map(|exchange| {
            exchange.start_stream(args.venue, args.symbols.clone(), Duration::from_millis(10))
        });
        let chaos = match (embedded, args.chaos_every) {
            (Some(exchange), Some(every)) => {
                Some(tokio::spawn(chaos(exchange.clone(), every, args.seed)))
            }
            _ => None,
        };
        Load { streaming, chaos }
    }

    fn stop_chaos(&mut self) {
        if let Some(chaos) = self.chaos.take() {
            chaos.abort();
        }
    }

    fn stop_streaming(&mut self) {
        if let Some(streaming) = self.streaming.take() {
            streaming.abort();
        }
    }
}

/// Injects one random fault every `every`.
async fn chaos(embedded: Embedded, every: Duration, seed: u64) {
    let exchange = match embedded {
        Embedded::Exchange(exchange) => exchange,
        Embedded::OpVenue(venue) => return op_chaos(venue, every, seed).await,
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match rng.random_range(0..4u8) {
            0 => {
                eprintln!("chaos: TCP abort");
                exchange.abort_all();
            }
            1 => {
                eprintln!("chaos: close 1011");
                exchange.close_all(1011, "chaos: internal error");
            }
            2 => {
                eprintln!("chaos: silence until the idle timeout");
                exchange.set_silent(true);
            }
            _ => {
                eprintln!("chaos: garbage frame");
                exchange.send_text_all("}{ not json \u{1f4a5}");
            }
        }
    }
}

/// Injects one random fault every `every` into the WEEX/OKX server: a dropped
/// connection, close 1011, or a garbage frame.
async fn op_chaos(venue: op_venue::OpVenue, every: Duration, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match rng.random_range(0..3u8) {
            0 => {
                eprintln!("chaos: connection dropped");
                venue.drop_all();
            }
            1 => {
                eprintln!("chaos: close 1011");
                venue.close_all(1011, "chaos: internal error");
            }
            _ => {
                eprintln!("chaos: garbage frame");
                venue.send_text_all("}{ not json \u{1f4a5}");
            }
        }
    }
}

/// `--publish`: the feed's items go to NATS JetStream through the sink.
#[cfg(feature = "nats")]
mod publish {
    use super::*;
    use resilient_ws::sink::nats::{NatsOptions, NatsSink};

    pub async fn run(
        feed: Feed,
        topics: Vec<Topic>,
        target: String,
        args: &Args,
        embedded: Option<Embedded>,
        protocol_name: &'static str,
    ) -> ExitCode {
        let options = NatsOptions::new(target, protocol_name).replica(args.replica.clone());
        let sink = match NatsSink::connect(options).await {
            Ok(sink) => sink,
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(error) = sink.ensure_stream("MD").await {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
        let set = match &feed {
            Feed::Client(client) => client.subscribe_set(topics).await,
            Feed::Pool(pool) => pool.subscribe_set(topics).await,
        };
        let mut set = match set {
            Ok(set) => set,
            Err(error) => {
                eprintln!("subscribing failed: {error}");
                return ExitCode::FAILURE;
            }
        };
        eprintln!(
            "publish: shard {} replica {} owns {} instruments",
            args.shard,
            args.replica,
            set.len()
        );
        let mut load = Load::start(embedded.as_ref(), args);
        let stats = sink.run(&mut set, tokio::time::sleep(args.duration)).await;
        load.stop_chaos();
        load.stop_streaming();
        let set_stats = set.stats();
        drop(set);
        let _ = feed.close().await;
        if let Some(exchange) = &embedded {
            exchange.shutdown().await;
        }
        println!(
            "publish: received={} published={} deduplicated={} dropped={} (overflow={} too_large={} at_close={}) signals={} retries={} set_dropped={}",
            stats.received, stats.published, stats.deduplicated, stats.dropped(),
            stats.dropped_overflow, stats.dropped_too_large, stats.dropped_at_close,
            stats.signals, stats.retries, set_stats.dropped,
        );
        if stats.balances() && stats.buffered == 0 {
            ExitCode::SUCCESS
        } else {
            eprintln!("FAIL: the sink's accounting does not balance: {stats:?}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "nats"))]
mod publish {
    use super::*;

    pub async fn run(
        _feed: Feed,
        _topics: Vec<Topic>,
        _target: String,
        _args: &Args,
        _embedded: Option<Embedded>,
        _protocol_name: &'static str,
    ) -> ExitCode {
        eprintln!(
            "--publish needs the nats feature: cargo run --features nats --example market_feed"
        );
        ExitCode::from(2)
    }
}
