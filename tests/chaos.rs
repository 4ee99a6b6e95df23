//! Chaos soak: one client per protocol (Kalshi and Kraken v2, run concurrently;
//! WEEX and OKX v5 alongside through `support::op_soak`),
//! 20 subscriptions each, through the fault proxy to the test exchange, with a
//! random fault every 100-500 ms from the proxy (cut, blackhole, stall, delay,
//! throttle, truncation, corruption) or the exchange (abort, close codes,
//! silence, garbage, refusal, slow handshakes, sequence gaps and duplicates).
//!
//! The seed comes from `CHAOS_SEED` (random otherwise) and is printed first, so a
//! failure can be replayed: `CHAOS_SEED=N cargo test --test chaos -- --nocapture`.
//! Each protocol runs `CHAOS_SECS` seconds (default 30; the two run at once, so
//! CI spends about 30 s on a minute of soak). The fault schedule is a function of the
//! seed; the sockets' timing is real, so the interleaving is not.
//!
//! What must hold at the end (see `check`): every stream is open and got data
//! after the last fault; per stream the numbers (Kalshi `seq`, Kraken the
//! exchange's round counter) increase within a connection and every skipped range
//! was announced by an `Update::Gap` first; per connection the server saw each
//! live subscription once, in creation order (Kalshi resyncs after a gap: an
//! unsubscribe, then one new subscribe); the counters balance; RSS stays bounded;
//! the live heap does not trend upwards; and after `close()` no task is left.
//!
//! Where things run: the exchanges, the op/args servers and the fault proxies
//! (and the fault schedule) run in a child process, this test binary
//! re-executed with `RESILIENT_WS_CHAOS_EXCHANGE=1` running only the ignored
//! `chaos_exchange_child` (`support::soak_harness`; the parent's end of the
//! line protocol is `support::soak_link`). The child answers with the frames
//! the exchange received and its handshake and pong counts, so every promise
//! is checked as before; the parent holds only the clients and their
//! consumers, so its heap and RSS are the library's. Both processes print their
//! figures.
//!
//! Memory: RSS only ever grows (the allocator keeps freed pages), so the soak
//! also samples the live heap (bytes allocated minus freed, counted by
//! `stats_alloc`) once a second and fits a least-squares slope through the
//! samples after a warm-up, and prints the per-minute floor. With the harness
//! in the child, a slope is growth in the library (or in the consumers' bounded
//! reports). It is asserted on runs of at least `SLOPE_MIN_SECS` (shorter runs
//! print it): `CHAOS_SECS=300 cargo test --test chaos`.
//!
//! The soak figures are printed with `eprintln!` (`-- --nocapture` shows them).
//!
//! Both modes of driving a connection are soaked in every run: one of the
//! Kalshi and Kraken clients is a [`Feed`] polled by one consumer task (which
//! then reads the socket, runs the session and reconnects itself), the other
//! the spawned supervisor, swapped with the seed's parity (`modes`;
//! `CHAOS_FEED=kalshi|kraken|both|none` overrides); likewise one of the WEEX
//! and OKX clients (WEEX goes with Kalshi, OKX with Kraken). The same checks hold for
//! both; for the feed, also that each symbol's items all came under the client
//! id its subscribe returned, and the feed's counters balance over its
//! subscriptions with every delivered frame read.

mod support;

use std::alloc::System;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use resilient_ws::{
    Backoff, Client, ClientId, Config, Error, Event, Feed, Kalshi, Kraken, Operation,
    ProtocolError, QueueStats, ServerId, Stats, Subscription, Topic, Update,
};
use serde_json::Value;
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use support::exchange::Venue;
use support::op_venue::Dialect;
use support::soak_harness::{exchange_symbols, SUBSCRIPTIONS};
use support::soak_link::{HarnessChild, VenueLink};
use support::vm_rss_kib;
use tokio::sync::watch;
use tokio::time::Instant;

/// After the last fault every stream must get this many frames...
const FRAMES_AFTER_LAST_FAULT: u64 = 3;
/// ...within this long (a silent connection needs the idle timeout first).
const RECOVERY: Duration = Duration::from_secs(30);
/// RSS may grow at most this much from before the clients connect to the
/// last fault.
const RSS_GROWTH_LIMIT_KIB: u64 = 16 * 1024;
/// The live-heap slope is asserted on runs at least this long.
const SLOPE_MIN_SECS: u64 = 120;
/// Samples before this are warm-up (buffers and maps reaching their size).
const WARM_UP: Duration = Duration::from_secs(20);
/// The live heap may trend upwards at most this fast (KiB per minute).
const SLOPE_LIMIT_KIB_PER_MIN: f64 = 512.0;

#[global_allocator]
static HEAP: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not freed yet, process-wide.
fn live_heap_bytes() -> i64 {
    let s = HEAP.stats();
    // `realloc` already moves the difference into allocated/deallocated.
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

/// Least-squares slope of `(seconds, bytes)` samples, in KiB per minute.
fn slope_kib_per_min(samples: &[(f64, f64)]) -> f64 {
    let n = samples.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (sx, sy) = samples
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = samples.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    if den == 0.0 {
        return 0.0;
    }
    num / den * 60.0 / 1024.0
}

/// The lowest sample of each minute, in KiB: the floor the heap returns to
/// between bursts, so a trend in it is retained memory, not buffers in flight.
fn per_minute_low_kib(samples: &[(f64, f64)]) -> Vec<i64> {
    let mut lows: BTreeMap<u64, f64> = BTreeMap::new();
    for (at, bytes) in samples {
        let low = lows.entry((*at / 60.0) as u64).or_insert(*bytes);
        *low = low.min(*bytes);
    }
    lows.values().map(|b| (*b / 1024.0) as i64).collect()
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// What one consumer saw, checked as it read.
#[derive(Default, Debug)]
struct StreamReport {
    symbol: String,
    data: u64,
    gap_signals: u64,
    /// Numbers announced as skipped by gap signals.
    announced_skips: u64,
    resubscribed: u64,
    /// Kalshi sids this stream had when a gap was announced, to map the
    /// resync's unsubscribes back. Only those: a set of every sid ever seen
    /// would grow with every reconnect and count in the heap slope as if it
    /// were the library's.
    sids: HashSet<u64>,
    violations: Vec<String>,
    errors: Vec<Error>,
    /// The subscription's own counters (spawned mode; a feed's members are
    /// checked through the feed's total, `Report::queues`).
    stats: Option<QueueStats>,
}

/// Data counts since the last `mark`, shared with the consumers.
struct Progress {
    since_mark: Vec<AtomicU64>,
    bump: watch::Sender<u64>,
}

impl Progress {
    fn new(n: usize) -> Arc<Progress> {
        Arc::new(Progress {
            since_mark: (0..n).map(|_| AtomicU64::new(0)).collect(),
            bump: watch::Sender::new(0),
        })
    }

    fn on_data(&self, index: usize) {
        self.since_mark[index].fetch_add(1, Ordering::Relaxed);
        self.bump.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn mark(&self) {
        for c in &self.since_mark {
            c.store(0, Ordering::Relaxed);
        }
    }

    fn lagging(&self, at_least: u64) -> Vec<usize> {
        (0..self.since_mark.len())
            .filter(|i| self.since_mark[*i].load(Ordering::Relaxed) < at_least)
            .collect()
    }

    /// Waits until every stream has `at_least` frames since the mark.
    async fn wait_all(&self, at_least: u64, timeout: Duration) -> Result<(), Vec<usize>> {
        let mut rx = self.bump.subscribe();
        let wait = async {
            while !self.lagging(at_least).is_empty() {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
        let lagging = self.lagging(at_least);
        if lagging.is_empty() {
            Ok(())
        } else {
            Err(lagging)
        }
    }
}

/// The number that must increase within a connection: Kalshi's `seq`, or the
/// exchange's publish round for Kraken tickers (which carry no sequence).
fn number_of(venue: Venue, frame: &resilient_ws::Frame, value: &Value) -> Option<u64> {
    match venue {
        Venue::Kalshi => frame.seq(),
        _ => value["data"][0]["volume"].as_u64(),
    }
}

fn symbol_of(venue: Venue, value: &Value) -> Option<&str> {
    match venue {
        Venue::Kalshi => value["msg"]["market_ticker"].as_str(),
        _ => value["data"][0]["symbol"].as_str(),
    }
}

/// One subscription's items, checked as they come (order, gap signals, the
/// right symbol), whichever way they are consumed.
struct StreamCheck {
    venue: Venue,
    index: usize,
    last: Option<u64>,
    announced: Option<(u64, u64)>,
    last_sid: Option<u64>,
    report: StreamReport,
}

impl StreamCheck {
    fn new(venue: Venue, symbol: String, index: usize) -> StreamCheck {
        StreamCheck {
            venue,
            index,
            last: None,
            announced: None,
            last_sid: None,
            report: StreamReport {
                symbol,
                ..StreamReport::default()
            },
        }
    }

    fn on_item(&mut self, item: Result<Update, Error>, progress: &Progress) {
        let StreamCheck {
            venue,
            index,
            last,
            announced,
            last_sid,
            report,
        } = self;
        match item {
            Ok(Update::Data(frame)) => {
                let value: Value = match frame.as_text().map(serde_json::from_str) {
                    Some(Ok(value)) => value,
                    _ => {
                        report
                            .violations
                            .push(format!("unparseable data {frame:?}"));
                        return;
                    }
                };
                if symbol_of(*venue, &value) != Some(report.symbol.as_str()) {
                    report.violations.push(format!("misrouted frame {value}"));
                }
                if let Some(sid) = value["sid"].as_u64() {
                    *last_sid = Some(sid);
                }
                let Some(n) = number_of(*venue, &frame, &value) else {
                    report
                        .violations
                        .push(format!("no sequence number in {value}"));
                    return;
                };
                match *last {
                    Some(l) if n == l + 1 => {
                        if let Some(gap) = announced {
                            report
                                .violations
                                .push(format!("gap {gap:?} announced, then {l} -> {n}"));
                        }
                    }
                    Some(l) if n > l + 1 => {
                        if *announced != Some((l, n)) {
                            report.violations.push(format!(
                                "lost silently: {l} -> {n} without a gap signal (announced {announced:?})"
                            ));
                        }
                    }
                    Some(l) => report
                        .violations
                        .push(format!("not increasing within a connection: {l} -> {n}")),
                    None => {
                        if let Some(gap) = announced {
                            report
                                .violations
                                .push(format!("gap {gap:?} announced before the first frame"));
                        }
                    }
                }
                *last = Some(n);
                *announced = None;
                report.data += 1;
                progress.on_data(*index);
            }
            Ok(Update::Gap { last_seq, next_seq }) => {
                if *last != Some(last_seq) || next_seq <= last_seq + 1 || announced.is_some() {
                    report.violations.push(format!(
                        "gap {last_seq} -> {next_seq} does not follow {last:?} (announced {announced:?})"
                    ));
                }
                if let Some(sid) = *last_sid {
                    report.sids.insert(sid);
                }
                report.gap_signals += 1;
                report.announced_skips += next_seq.saturating_sub(last_seq + 1);
                *announced = Some((last_seq, next_seq));
            }
            Ok(Update::Resubscribed { server_id }) => {
                if let Some(gap) = announced {
                    report
                        .violations
                        .push(format!("gap {gap:?} announced, then resubscribed"));
                }
                if let ServerId::Num(sid) = server_id {
                    *last_sid = Some(sid);
                }
                report.resubscribed += 1;
                *last = None;
                *announced = None;
            }
            Ok(other) => report
                .violations
                .push(format!("unexpected signal {other:?}")),
            Err(error) => report.errors.push(error),
        }
    }
}

/// Reads one subscription (spawned mode) until it ends.
async fn consume(
    venue: Venue,
    symbol: String,
    index: usize,
    mut sub: Subscription,
    progress: Arc<Progress>,
) -> StreamReport {
    let mut check = StreamCheck::new(venue, symbol, index);
    while let Some(item) = sub.next().await {
        check.on_item(item, &progress);
    }
    check.report.stats = Some(sub.stats());
    check.report
}

/// What the task that polled a feed saw: the reports by symbol, the client
/// ids each symbol's items came under, items of no symbol, and the feed's
/// counters at the end.
struct FeedSeen {
    streams: Vec<StreamReport>,
    ids: Vec<HashSet<ClientId>>,
    strays: Vec<String>,
    stats: QueueStats,
}

/// Polls the feed until its stream ends (this task reads the socket, runs the
/// session and reconnects), handing each item to its symbol's check.
async fn drive_feed<P: resilient_ws::Protocol>(
    venue: Venue,
    symbols: Vec<String>,
    mut feed: Feed<P>,
    progress: Arc<Progress>,
) -> FeedSeen {
    let mut checks: Vec<StreamCheck> = symbols
        .iter()
        .enumerate()
        .map(|(i, s)| StreamCheck::new(venue, s.clone(), i))
        .collect();
    let mut ids = vec![HashSet::new(); symbols.len()];
    let mut strays = Vec::new();
    while let Some(item) = feed.next().await {
        let symbol = item.topic.symbol_name();
        match symbols.iter().position(|s| Some(s.as_str()) == symbol) {
            Some(i) => {
                ids[i].insert(item.client_id);
                checks[i].on_item(item.item, &progress);
            }
            None if strays.len() < 10 => strays.push(format!("{:?}: {:?}", item.topic, item.item)),
            None => {}
        }
    }
    FeedSeen {
        streams: checks.into_iter().map(|c| c.report).collect(),
        ids,
        strays,
        stats: feed.stats(),
    }
}

/// Disconnect causes and failed attempts, by kind, from the events stream.
#[derive(Default, Debug)]
struct Causes {
    disconnects: BTreeMap<String, u64>,
    failed_attempts: BTreeMap<String, u64>,
    lagged: u64,
}

fn kind_of(error: &Error) -> String {
    match error {
        Error::Connection { .. } => "connection".into(),
        Error::Closed { code, .. } => format!("close {code}"),
        Error::Timeout { operation, .. } => match operation {
            Operation::Connect => "connect timeout".into(),
            Operation::Ping => "ping timeout".into(),
            Operation::Receive => "idle timeout".into(),
            Operation::Send => "send timeout".into(),
            other => format!("{other:?} timeout"),
        },
        Error::Protocol { protocol_error } => match protocol_error {
            ProtocolError::InvalidUtf8 => "invalid utf-8".into(),
            ProtocolError::TooLarge(_) => "too large".into(),
            ProtocolError::Violation(_) => "ws violation".into(),
            other => format!("protocol {other:?}"),
        },
        other => format!("{other:?}"),
    }
}

async fn collect_causes(mut events: resilient_ws::Events) -> Causes {
    let mut causes = Causes::default();
    while let Some(event) = events.next().await {
        match event {
            Event::Disconnected { cause } => {
                *causes.disconnects.entry(kind_of(&cause)).or_default() += 1
            }
            Event::AttemptFailed { error, .. } => {
                *causes.failed_attempts.entry(kind_of(&error)).or_default() += 1
            }
            Event::Lagged { missed } => causes.lagged += missed,
            Event::Closed { .. } => break,
            _ => {}
        }
    }
    causes
}

struct Report {
    venue: Venue,
    mode: Mode,
    faults: BTreeMap<String, u64>,
    stats: Stats,
    causes: Causes,
    streams: Vec<StreamReport>,
    connections: u64,
    recovery: Duration,
    /// The harness child's RSS and live heap when this venue finished.
    child_rss_kib: u64,
    child_heap_kib: i64,
}

impl Report {
    fn faults_total(&self) -> u64 {
        self.faults.values().sum()
    }
}

/// `total += q`, field by field.
fn add_queue_stats(total: &mut QueueStats, q: &QueueStats) {
    total.routed += q.routed;
    total.delivered += q.delivered;
    total.dropped += q.dropped;
    total.queued += q.queued;
    total.signals_dropped += q.signals_dropped;
}

/// Who drives a client's connection in the soak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `Client::connect`: the library's task; one consumer task per subscription.
    Spawned,
    /// `Feed::new`: one consumer task polls the feed, which reads the socket,
    /// runs the session and reconnects in that task.
    Feed,
}

/// The mode of each protocol's client in this run: one of the two runs
/// through a feed, the other spawned, swapped with the seed's parity (an even
/// seed drives Kraken through the feed, an odd one Kalshi), so every run soaks
/// both modes in the same time and a seed replays in the same modes. The
/// WEEX soak follows Kalshi's mode and the OKX soak Kraken's.
/// `CHAOS_FEED=kalshi|kraken|both|none` chooses instead.
fn modes(seed: u64) -> (Mode, Mode) {
    use Mode::{Feed, Spawned};
    match std::env::var("CHAOS_FEED").ok().as_deref().map(str::trim) {
        Some("kalshi") => (Feed, Spawned),
        Some("kraken") => (Spawned, Feed),
        Some("both") => (Feed, Feed),
        Some("none") => (Spawned, Spawned),
        _ if seed % 2 == 1 => (Feed, Spawned),
        _ => (Spawned, Feed),
    }
}

/// The consumers of one soak, joined after `close()`.
enum Consumers {
    Spawned(Vec<tokio::task::JoinHandle<StreamReport>>),
    Feed {
        task: tokio::task::JoinHandle<FeedSeen>,
        /// What each subscribe returned, by symbol.
        ids: Vec<ClientId>,
    },
}

fn venue_setup(venue: Venue) -> (Vec<String>, Vec<Topic>) {
    let symbols = exchange_symbols(venue);
    let topics = symbols
        .iter()
        .map(|s| Topic::new("ticker").symbol(s))
        .collect();
    (symbols, topics)
}

/// Runs one protocol's soak against the venue behind `link` and returns what
/// it saw; panics (with the seed) on any broken promise.
async fn soak(venue: Venue, mode: Mode, link: VenueLink<'_>, chaos_seed: u64, secs: u64) -> Report {
    // Each protocol draws its own faults from the one seed.
    let seed = match venue {
        Venue::Kalshi => chaos_seed,
        _ => chaos_seed.wrapping_add(0x9E37_79B9_7F4A_7C15),
    };
    let ctx = format!("{venue:?} ({mode:?}) CHAOS_SEED={chaos_seed}");
    let (symbols, topics) = venue_setup(venue);
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
        // Longer than ping + pong timeout: a replay on a dead connection is
        // recycled by the liveness check before its ack could time out.
        .request_timeout(Duration::from_secs(5))
        .close_timeout(Duration::from_secs(1))
        .build()
        .expect("valid config");
    let progress = Progress::new(SUBSCRIPTIONS);
    let (client, mut messages, consumers) = match mode {
        Mode::Spawned => {
            let connected = match venue {
                Venue::Kalshi => Client::connect(config, Kalshi::new()).await,
                _ => Client::connect(config, Kraken::new()).await,
            };
            let (client, messages) = connected.expect("connects");
            let subs = client
                .subscribe_many(topics)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: subscribe_many: {e}"));
            let mut tasks = Vec::new();
            for (i, (sub, symbol)) in subs.into_iter().zip(&symbols).enumerate() {
                let sub = sub.unwrap_or_else(|e| panic!("{ctx}: subscribe {symbol}: {e}"));
                tasks.push(tokio::spawn(consume(
                    venue,
                    symbol.clone(),
                    i,
                    sub,
                    Arc::clone(&progress),
                )));
            }
            (client, messages, Consumers::Spawned(tasks))
        }
        Mode::Feed => {
            // One task polls the feed: it reads the socket, runs the session
            // and reconnects; subscribe and close come from this task.
            let (handle, messages, task) = match venue {
                Venue::Kalshi => {
                    let (handle, mut feed) = Feed::new(config, Kalshi::new());
                    let messages = feed.take_unsolicited().expect("unsolicited");
                    let task = drive_feed(venue, symbols.clone(), feed, Arc::clone(&progress));
                    (handle, messages, tokio::spawn(task))
                }
                _ => {
                    let (handle, mut feed) = Feed::new(config, Kraken::new());
                    let messages = feed.take_unsolicited().expect("unsolicited");
                    let task = drive_feed(venue, symbols.clone(), feed, Arc::clone(&progress));
                    (handle, messages, tokio::spawn(task))
                }
            };
            let ids = handle
                .subscribe_many(topics)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: subscribe_many: {e}"))
                .into_iter()
                .zip(&symbols)
                .map(|(id, symbol)| id.unwrap_or_else(|e| panic!("{ctx}: subscribe {symbol}: {e}")))
                .collect();
            (
                handle.client().clone(),
                messages,
                Consumers::Feed { task, ids },
            )
        }
    };
    let causes = tokio::spawn(collect_causes(client.events()));
    // Unsolicited frames (none expected, but the stream must be read).
    let unsolicited = tokio::spawn(async move {
        let mut n = 0u64;
        while messages.next().await.is_some() {
            n += 1;
        }
        n
    });
    link.stream().await;
    progress
        .wait_all(1, RECOVERY)
        .await
        .unwrap_or_else(|lagging| panic!("{ctx}: no first frame for {lagging:?}"));

    // The child runs the schedule (see `support::soak_harness`) and answers
    // once the last fault's modes are cleared.
    let mut faults = link.faults(seed, secs).await;

    // After the last fault every stream must flow again.
    let recovery_started = Instant::now();
    progress.mark();
    if let Err(lagging) = progress.wait_all(FRAMES_AFTER_LAST_FAULT, RECOVERY).await {
        let names: Vec<&str> = lagging.iter().map(|i| symbols[*i].as_str()).collect();
        panic!(
            "{ctx}: streams without data after the last fault: {names:?}; stats {:?}",
            client.stats()
        );
    }
    let recovery = recovery_started.elapsed();

    if venue == Venue::Kalshi {
        // Whether the random gaps and duplicates above landed on a live
        // connection is a matter of timing; these two surely do, so every run
        // checks a gap announcement and a duplicate drop at least once.
        let (gaps, duplicates) = (client.stats().gaps, client.stats().duplicates);
        let mut injected = false;
        for _ in 0..10 {
            link.gap().await;
            *faults.entry("SkipSeq".to_owned()).or_default() += 1;
            *faults.entry("RepeatSeq".to_owned()).or_default() += 1;
            let seen = tokio::time::timeout(Duration::from_secs(2), async {
                loop {
                    let now = client.stats();
                    if now.gaps > gaps && now.duplicates > duplicates {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await;
            if seen.is_ok() {
                injected = true;
                break;
            }
        }
        assert!(injected, "{ctx}: a final gap and duplicate were never seen");
        progress.mark();
        if let Err(lagging) = progress.wait_all(FRAMES_AFTER_LAST_FAULT, RECOVERY).await {
            panic!("{ctx}: streams without data after the final gap: {lagging:?}");
        }
    }

    client
        .close()
        .await
        .unwrap_or_else(|e| panic!("{ctx}: close: {e}"));
    let (streams, queues) = match consumers {
        Consumers::Spawned(tasks) => {
            let mut streams: Vec<StreamReport> = Vec::new();
            let mut queues = QueueStats::default();
            for task in tasks {
                let stream = task.await.expect("consumer task");
                add_queue_stats(&mut queues, &stream.stats.unwrap_or_default());
                streams.push(stream);
            }
            (streams, queues)
        }
        Consumers::Feed { task, ids } => {
            let seen = task.await.expect("feed task");
            assert!(
                seen.strays.is_empty(),
                "{ctx}: items of no subscription {:?}",
                seen.strays
            );
            for ((symbol, under), id) in symbols.iter().zip(&seen.ids).zip(&ids) {
                assert!(
                    under.iter().all(|u| u == id),
                    "{ctx}: {symbol}: items under {under:?}, subscribed as {id}"
                );
            }
            (seen.streams, seen.stats)
        }
    };
    let unsolicited = unsolicited.await.expect("inbound task");
    let causes = causes.await.expect("events task");
    let stats = client.stats();
    let record = link.finish().await;
    let received: Vec<(u64, String)> = record["received"]
        .as_array()
        .map(|frames| {
            frames
                .iter()
                .map(|r| {
                    let conn = r["conn"].as_u64().unwrap_or_default();
                    (conn, r["text"].as_str().unwrap_or_default().to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let connections = record["handshakes"].as_u64().unwrap_or_default();

    assert_eq!(unsolicited, 0, "{ctx}: unsolicited frames");
    check(&ctx, venue, &symbols, &streams, &queues, &stats, &received);
    Report {
        venue,
        mode,
        faults,
        stats,
        causes,
        streams,
        connections,
        recovery,
        child_rss_kib: record["child_rss_kib"].as_u64().unwrap_or_default(),
        child_heap_kib: record["child_heap_kib"].as_i64().unwrap_or_default(),
    }
}

/// The promises, checked after close.
fn check(
    ctx: &str,
    venue: Venue,
    symbols: &[String],
    streams: &[StreamReport],
    queues: &QueueStats,
    stats: &Stats,
    received: &[(u64, String)],
) {
    for s in streams {
        assert!(
            s.violations.is_empty(),
            "{ctx}: {}: {:#?}",
            s.symbol,
            s.violations
        );
        assert!(
            s.errors.is_empty(),
            "{ctx}: {}: stream errors {:?}",
            s.symbol,
            s.errors
        );
        assert!(s.data > 0, "{ctx}: {}: no data", s.symbol);
        if let Some(q) = s.stats {
            assert_eq!(
                q.routed,
                q.delivered + q.dropped + q.queued,
                "{ctx}: {}: {q:?}",
                s.symbol
            );
            assert_eq!(q.queued, 0, "{ctx}: {}: drained to the end", s.symbol);
            assert_eq!(q.delivered, s.data, "{ctx}: {}: {q:?}", s.symbol);
            assert_eq!(q.signals_dropped, 0, "{ctx}: {}: {q:?}", s.symbol);
        }
    }
    // The same over all subscriptions (for a feed: its own counters).
    let q = queues;
    let data: u64 = streams.iter().map(|s| s.data).sum();
    assert_eq!(q.routed, q.delivered + q.dropped + q.queued, "{ctx}: {q:?}");
    assert_eq!(q.queued, 0, "{ctx}: drained to the end: {q:?}");
    assert_eq!(
        q.delivered, data,
        "{ctx}: every delivered frame was read: {q:?}"
    );
    assert_eq!(q.signals_dropped, 0, "{ctx}: {q:?}");
    assert!(stats.is_balanced(), "{ctx}: {stats:?}");
    // Nothing was dropped for overflow: every drop is a duplicate sequence number.
    assert_eq!(q.dropped, stats.duplicates, "{ctx}: {stats:?}");
    let gap_signals: u64 = streams.iter().map(|s| s.gap_signals).sum();
    assert_eq!(
        gap_signals, stats.gaps,
        "{ctx}: every gap reached its stream"
    );
    if venue == Venue::Kalshi {
        assert!(gap_signals > 0 && stats.duplicates > 0, "{ctx}: {stats:?}");
    }
    assert_eq!(stats.resets, 0, "{ctx}: {stats:?}");
    assert!(stats.reconnects > 0, "{ctx}: the chaos caused no reconnect");
    check_subscribes(ctx, venue, symbols, streams, received);
}

/// Per connection the server saw each live subscription once, first-time
/// subscribes in creation order, and (Kalshi) a second subscribe only after
/// an unsubscribe of the first (the resync after a gap).
fn check_subscribes(
    ctx: &str,
    venue: Venue,
    symbols: &[String],
    streams: &[StreamReport],
    received: &[(u64, String)],
) {
    let sid_owner: HashMap<u64, &str> = streams
        .iter()
        .flat_map(|s| s.sids.iter().map(move |sid| (*sid, s.symbol.as_str())))
        .collect();
    let mut by_conn: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    for (conn, text) in received {
        if let Ok(v) = serde_json::from_str::<Value>(text) {
            by_conn.entry(*conn).or_default().push(v);
        }
    }
    let last_conn = by_conn.keys().max().copied();
    for (conn, frames) in &by_conn {
        let mut live: HashSet<String> = HashSet::new();
        let mut first_order: Vec<String> = Vec::new();
        for v in frames {
            let (subscribed, unsubscribed): (Vec<String>, Vec<String>) = match venue {
                Venue::Kalshi => {
                    match v["cmd"].as_str() {
                        Some("subscribe") => (
                            vec![v["params"]["market_tickers"][0]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned()],
                            vec![],
                        ),
                        Some("unsubscribe") => {
                            let sids = v["params"]["sids"].as_array().cloned().unwrap_or_default();
                            let owners = sids
                            .iter()
                            .map(|sid| {
                                let sid = sid.as_u64().unwrap_or_default();
                                sid_owner.get(&sid).map(|s| (*s).to_owned()).unwrap_or_else(
                                    || panic!("{ctx}: conn {conn}: unsubscribe of unknown sid {sid}"),
                                )
                            })
                            .collect();
                            (vec![], owners)
                        }
                        _ => (vec![], vec![]),
                    }
                }
                _ => match v["method"].as_str() {
                    Some("subscribe") => (
                        v["params"]["symbol"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|s| s.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        vec![],
                    ),
                    Some("unsubscribe") => panic!("{ctx}: conn {conn}: unexpected unsubscribe {v}"),
                    _ => (vec![], vec![]),
                },
            };
            for symbol in subscribed {
                assert!(
                    live.insert(symbol.clone()),
                    "{ctx}: conn {conn}: {symbol} subscribed twice while live"
                );
                if !first_order.contains(&symbol) {
                    first_order.push(symbol);
                }
            }
            for symbol in unsubscribed {
                assert!(
                    live.remove(&symbol),
                    "{ctx}: conn {conn}: {symbol} unsubscribed while not live"
                );
            }
        }
        assert_eq!(
            first_order.as_slice(),
            &symbols[..first_order.len()],
            "{ctx}: conn {conn}: the replay follows creation order"
        );
        if Some(*conn) == last_conn {
            assert_eq!(
                first_order.len(),
                symbols.len(),
                "{ctx}: conn {conn}: the last connection carries every subscription"
            );
        }
    }
}

fn print_report(r: &Report) {
    let s = &r.stats;
    let data: u64 = r.streams.iter().map(|s| s.data).sum();
    let gap_signals: u64 = r.streams.iter().map(|s| s.gap_signals).sum();
    let skipped: u64 = r.streams.iter().map(|s| s.announced_skips).sum();
    let resubscribed: u64 = r.streams.iter().map(|s| s.resubscribed).sum();
    eprintln!(
        "chaos[{:?} {:?}]: faults={} reconnects={} connections={} frames_in={} delivered={} \
         control={} unroutable={} duplicates_dropped={} gaps_reported={} seq_skipped_reported={} \
         resubscribes={} resubscribed_signals={} ping_timeouts={} idle_timeouts={} lost_silently=0 \
         streams_alive={}/{} recovery_after_last_fault={:?}",
        r.venue,
        r.mode,
        r.faults_total(),
        s.reconnects,
        r.connections,
        s.frames_in,
        data,
        s.control,
        s.unroutable,
        s.duplicates,
        gap_signals,
        skipped,
        s.resubscribes,
        resubscribed,
        s.ping_timeouts,
        s.idle_timeouts,
        r.streams.len(),
        SUBSCRIPTIONS,
        r.recovery,
    );
    eprintln!("chaos[{:?}]: faults by kind {:?}", r.venue, r.faults);
    eprintln!(
        "chaos[{:?}]: disconnect causes {:?}",
        r.venue, r.causes.disconnects
    );
    eprintln!(
        "chaos[{:?}]: failed attempts {:?} (events lagged: {})",
        r.venue, r.causes.failed_attempts, r.causes.lagged
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak_kalshi_and_kraken() {
    let seed = env_u64("CHAOS_SEED").unwrap_or_else(random_seed);
    let secs = env_u64("CHAOS_SECS").unwrap_or(30);
    eprintln!(
        "chaos: seed={seed} secs={secs}; replay with CHAOS_SEED={seed} CHAOS_SECS={secs} \
         cargo test --test chaos -- --nocapture"
    );
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline_tasks = metrics.num_alive_tasks();
    // The exchanges, op/args servers and fault proxies run in a child process:
    // from here on this process's heap and RSS are the clients' (and the
    // consumers' bounded reports), not the harness's.
    let harness = HarnessChild::spawn("chaos_exchange_child").await;
    let rss_before = vm_rss_kib();
    let heap_before = live_heap_bytes();

    // Samples stop when the end checks start (`HarnessChild::finishing`).
    let finishing = harness.finishing();
    let sampler = tokio::spawn(async move {
        let started = Instant::now();
        let mut samples = Vec::new();
        let mut rss = (0, 0);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if finishing.load(Ordering::SeqCst) {
                return (samples, rss);
            }
            let at = started.elapsed();
            if at >= WARM_UP {
                samples.push((at.as_secs_f64(), live_heap_bytes() as f64));
                rss = (if rss.0 == 0 { vm_rss_kib() } else { rss.0 }, vm_rss_kib());
            }
        }
    });
    let (kalshi_mode, kraken_mode) = modes(seed);
    eprintln!("chaos: Kalshi {kalshi_mode:?}, Kraken {kraken_mode:?}");
    let (kalshi, kraken, weex, okx) = tokio::join!(
        soak(
            Venue::Kalshi,
            kalshi_mode,
            harness.venue("kalshi"),
            seed,
            secs
        ),
        soak(
            Venue::Kraken,
            kraken_mode,
            harness.venue("kraken"),
            seed,
            secs
        ),
        support::op_soak::op_soak(
            Dialect::Weex,
            kalshi_mode == Mode::Feed,
            harness.venue("weex"),
            seed,
            secs
        ),
        support::op_soak::op_soak(
            Dialect::Okx,
            kraken_mode == Mode::Feed,
            harness.venue("okx"),
            seed,
            secs
        )
    );
    let (samples, (rss_warm, rss_last)) = sampler.await.expect("sampler");
    let rss_after = vm_rss_kib();
    let heap_after = live_heap_bytes();
    harness.shutdown().await;

    print_report(&kalshi);
    print_report(&kraken);
    for r in [&weex, &okx] {
        eprintln!(
            "chaos[{:?} {}]: faults={} {:?} reconnects={} resubscribes={} book_breaks={} pongs={} per-stream={:?}",
            r.dialect, if r.feed { "Feed" } else { "Spawned" }, r.faults.values().sum::<u64>(), r.faults, r.stats.reconnects, r.stats.resubscribes,
            r.stats.book_breaks, r.pongs, r.per_stream
        );
    }
    // Up to the end checks; `rss_after` also counts the exchange's log parsed for them.
    let growth = rss_last.saturating_sub(rss_before);
    eprintln!(
        "chaos: rss before={rss_before} KiB, at {WARM_UP:?}={rss_warm} KiB, at the last fault={rss_last} KiB \
         (growth {growth} KiB), after the end checks={rss_after} KiB (harness child: rss={} KiB, live heap={} KiB at its last finish)",
        kalshi.child_rss_kib.max(kraken.child_rss_kib),
        kalshi.child_heap_kib.max(kraken.child_heap_kib),
    );
    let slope = slope_kib_per_min(&samples);
    let faults: u64 = [&kalshi, &kraken]
        .iter()
        .map(|r| r.faults.values().sum::<u64>())
        .sum();
    eprintln!(
        "chaos: live heap before={} KiB, first sample={} KiB, last sample={} KiB, after the \
         soak={} KiB; slope {slope:.1} KiB/min over {} samples after {WARM_UP:?}, {faults} faults",
        heap_before / 1024,
        samples.first().map_or(0.0, |(_, b)| *b / 1024.0) as i64,
        samples.last().map_or(0.0, |(_, b)| *b / 1024.0) as i64,
        heap_after / 1024,
        samples.len(),
    );
    eprintln!(
        "chaos: live heap per minute (lowest sample, KiB): {:?}",
        per_minute_low_kib(&samples)
    );
    if secs >= SLOPE_MIN_SECS {
        assert!(
            slope < SLOPE_LIMIT_KIB_PER_MIN,
            "seed={seed}: the live heap grows {slope:.1} KiB/min"
        );
    }
    assert!(
        growth < RSS_GROWTH_LIMIT_KIB,
        "seed={seed}: RSS grew by {growth} KiB"
    );
    // The clients, consumers, exchanges and proxies are all gone: no task is left.
    support::wait_until("tasks back to the baseline", || {
        metrics.num_alive_tasks() <= baseline_tasks
    })
    .await;
    assert_eq!(metrics.num_alive_tasks(), baseline_tasks, "seed={seed}");
}

/// The exchange side of `chaos_soak_kalshi_and_kraken`, which runs this test
/// in a child process (this binary re-executed with `RESILIENT_WS_CHAOS_EXCHANGE=1`,
/// see `support::soak_harness`); on its own it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the chaos soak's child process; chaos_soak_kalshi_and_kraken runs it"]
async fn chaos_exchange_child() {
    if std::env::var_os(support::soak_harness::CHILD_ENV).is_none() {
        return;
    }
    support::soak_harness::serve(live_heap_bytes).await;
}
