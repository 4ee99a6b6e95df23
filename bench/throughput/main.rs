//! `cargo bench --bench throughput`: throughput, added latency, recovery time
//! and memory of resilient-ws against a raw tokio-tungstenite read loop, on one
//! machine in one run. `BENCH_QUICK=1` shortens every phase for CI smoke runs.
//!
//! Everything runs against a Kalshi-style WebSocket server on 127.0.0.1:
//!
//! - in this process, on its own thread and current-thread runtime, for the
//!   throughput, latency, recovery and stalled-consumer phases; bulk data is
//!   pre-encoded as WebSocket frames and written as one buffer, so the server
//!   is not the bottleneck;
//! - in a child process (this binary re-executed with `RESILIENT_WS_BENCH_SERVER=1`)
//!   for the idle-connection phase, so the server's sockets and buffers are not
//!   counted in the client's RSS.
//!
//! The throughput phase is a matrix run in this one process: Kalshi and
//! Kraken v2 ticker frames (`BENCH_VENUES`), on a current-thread client runtime
//! and on one with 2 workers (each built in turn here; `BENCH_CLIENT_THREADS=N`
//! runs only that one), with 1 subscription and with 100 read through one
//! `SubscriptionSet` (`BENCH_CASES`; see `matrix.rs`). Each case compares
//! resilient-ws against (a) a raw tokio-tungstenite loop doing the routing
//! parse a hand-written client needs (borrowed serde struct, one `HashMap`
//! lookup) and (b) a raw loop that only reads frames. The other phases run on
//! the 2-worker runtime (or `BENCH_CLIENT_THREADS`), Kalshi frames.
//!
//! The last line is machine-readable:
//! `bench: throughput_ratio_1=R throughput_ratio_100=R vs_routing_1=R vs_routing_100_set=R
//! vs_framing_1=R vs_framing_100_set=R vs_routing_<venue>_<ct|mt2>_<1|100>=R
//! vs_framing_<venue>_<ct|mt2>_<1|100>=R ... matrix_cells=N vs_routing_min=R vs_framing_min=R
//! p50_added_us=X p99_added_us=X feed_p50_added_us=X feed_p99_added_us=X recovery_median_ms=X
//! kib_per_idle_conn=X`: `vs_routing` is
//! library / (a), `vs_framing` library / (b); the unsuffixed older keys are Kalshi on the
//! 2-worker runtime; the minima cover every judged cell that ran (`matrix_cells`, 8 for
//! the full matrix). `feed_vs_routing_*` is the consumer-driven feed / (a); the
//! `feed_p*_added_us` keys are the feed's added latency, measured as the spawned mode's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use resilient_ws::{
    Backoff, Client, Config, Kalshi, Kraken, Overflow, QueueOptions, Subscription, Topic, Update,
};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::Message;

mod alloc;
mod kraken;
mod matrix;
mod measure;
mod phases;
mod server;
mod settings;
mod wire;

use alloc::*;
use kraken::*;
use matrix::*;
use measure::*;
use phases::*;
use server::*;
use settings::*;
use wire::*;

fn main() {
    if std::env::var_os(SERVER_ROLE_ENV).is_some() {
        child_server_main();
        return;
    }
    if std::env::var_os("BENCH_TRACE").is_some() {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::stderr)
            .init();
    }
    let settings = Arc::new(Settings::from_env());
    let _ = base();
    let started = Instant::now();
    println!(
        "resilient-ws benchmark{} (client: tokio {} for throughput, {} for the other phases; server: in-process thread on 127.0.0.1)",
        if settings.quick { " [BENCH_QUICK]" } else { "" },
        settings
            .runtimes
            .iter()
            .map(|&t| runtime_label(t))
            .collect::<Vec<_>>()
            .join(" and "),
        runtime_label(settings.client_threads)
    );
    let primary = client_runtime(settings.client_threads);

    // Memory first, while the allocator has not yet been churned by bulk phases.
    let mut idle = None;
    if settings.runs("idle") {
        println!("\n== memory: idle connections (server in a child process, library defaults) ==");
        let for_task = Arc::clone(&settings);
        match on(&primary, async move { idle_memory(&for_task).await }) {
            Ok(m) => {
                println!(
                    "  {} connections x {} subscriptions: RSS {} -> {} KiB: {:.1} KiB per connection (heap {:.1} KiB)",
                    m.conns, m.subs, m.rss_before, m.rss_after, m.kib_per_conn, m.heap_kib_per_conn
                );
                idle = Some(m);
            }
            Err(error) => println!("  skipped: could not start the child server: {error}"),
        }
    }

    let server = Server::start();

    if settings.runs("stall") {
        let (server, settings) = (server.clone(), Arc::clone(&settings));
        on(
            &primary,
            async move { stall_phase(&server, &settings).await },
        );
    }

    let mut matrix = Vec::new();
    if settings.runs("throughput") {
        for &threads in &settings.runtimes {
            // Each runtime in turn; the primary one is reused, any other is
            // dropped (with whatever it still runs) before the next.
            let own = (threads != settings.client_threads).then(|| client_runtime(threads));
            let rt = own.as_ref().unwrap_or(&primary);
            matrix.extend(on(
                rt,
                throughput_cell(server.clone(), Arc::clone(&settings), threads),
            ));
        }
        print_medians(&matrix);
    }

    let (mut p50_added, mut p99_added) = (None, None);
    let (mut feed_p50_added, mut feed_p99_added) = (None, None);
    if settings.runs("latency") {
        let (server, settings) = (server.clone(), Arc::clone(&settings));
        let added = on(
            &primary,
            async move { latency_phase(&server, &settings).await },
        );
        p50_added = Some(added.p50);
        p99_added = Some(added.p99);
        feed_p50_added = Some(added.feed_p50);
        feed_p99_added = Some(added.feed_p99);
    }

    let mut recovery_median = None;
    if settings.runs("recovery") {
        println!(
            "\n== recovery: {} TCP aborts, 10 subscriptions, Backoff::immediate() ==",
            settings.drops
        );
        let (for_task, drops) = (server.clone(), settings.drops);
        let mut times = on(
            &primary,
            async move { recovery(&for_task, drops, 10).await },
        );
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let median = ms(times[times.len() / 2]);
        println!(
            "  abort -> first data on all 10 streams: median {:.2} ms  p90 {:.2} ms  max {:.2} ms  (min {:.2} ms)",
            median,
            ms(times[(times.len() * 9 / 10).min(times.len() - 1)]),
            ms(*times.last().expect("times")),
            ms(times[0])
        );
        recovery_median = Some(median);
    }

    println!("\n(total {:.0} s)", started.elapsed().as_secs_f64());
    let show = |v: Option<f64>, digits: usize| {
        v.map_or_else(|| "na".to_owned(), |v| format!("{v:.digits$}"))
    };
    println!(
        "bench: {} p50_added_us={} p99_added_us={} feed_p50_added_us={} feed_p99_added_us={} recovery_median_ms={} kib_per_idle_conn={}",
        bench_keys(&matrix, settings.client_threads),
        show(p50_added, 1),
        show(p99_added, 1),
        show(feed_p50_added, 1),
        show(feed_p99_added, 1),
        show(recovery_median, 2),
        show(idle.map(|m| m.kib_per_conn), 1),
    );
}

/// A client runtime: current-thread for 0, else that many workers.
fn client_runtime(threads: usize) -> tokio::runtime::Runtime {
    match threads {
        0 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
    .expect("client runtime")
}

/// Runs `task` to completion on `rt`.
fn on<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    task: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    // Spawned, not run in `block_on`: a multi-thread runtime runs the
    // `block_on` future on this main thread, which readiness reaches only
    // through an extra unpark, and the raw baselines' loops run right there.
    rt.block_on(async { tokio::spawn(task).await })
        .expect("benchmark task")
}

async fn stall_phase(server: &Server, settings: &Settings) {
    println!(
        "\n== memory: stalled consumer, capacity {} ==",
        settings.stall_capacity
    );
    let (bytes, payload) = build_stream(settings.stall_frames, 1);
    println!(
        "  {} frames ({:.1} MB, payload {payload:.0} B) to one subscription whose consumer never reads",
        settings.stall_frames,
        bytes.len() as f64 / 1e6
    );
    let policies = [
        (Overflow::DropOldest, "DropOldest"),
        (Overflow::DropNewest, "DropNewest"),
        (Overflow::Error, "Error"),
        (
            Overflow::Block {
                timeout: Duration::from_secs(60),
            },
            "Block",
        ),
    ];
    let mut worst_peak = 0i64;
    let mut worst_heap = 0f64;
    for (policy, name) in policies {
        let s = stalled(server, settings, &bytes, policy, name).await;
        println!(
            "  {:<10} routed {:>7} dropped {:>7} queued {:>5}  RSS +{:>6} KiB (peak +{:>6} KiB)  heap +{:>7.1} KiB (peak +{:>7.1} KiB)",
            s.policy, s.routed, s.dropped, s.queued, s.rss_growth_kib, s.peak_growth_kib, s.heap_growth_kib, s.heap_peak_kib
        );
        worst_peak = worst_peak.max(s.peak_growth_kib);
        worst_heap = worst_heap.max(s.heap_peak_kib);
    }
    let bound_kib = settings.stall_capacity as f64 * payload / 1024.0;
    let sent_kib = settings.stall_frames as f64 * payload / 1024.0;
    let bounded = (worst_peak as f64) < sent_kib / 8.0 && worst_heap < sent_kib / 8.0;
    println!(
        "  capacity x payload = {bound_kib:.0} KiB; data sent {sent_kib:.0} KiB; worst peak growth: RSS {worst_peak} KiB, heap {worst_heap:.0} KiB ({})",
        if bounded { "bounded" } else { "NOT bounded" }
    );
}

/// The medians of the added latencies, in microseconds.
struct Added {
    p50: f64,
    p99: f64,
    feed_p50: f64,
    feed_p99: f64,
}

/// Runs the latency comparison [`LATENCY_RUNS`] times (single-run tails on 2
/// cores swing by tens of microseconds) and returns the medians of the added
/// p50 and p99 of the spawned mode and of the feed, each against the raw
/// loop of the same run.
async fn latency_phase(server: &Server, settings: &Settings) -> Added {
    let count = (settings.latency_rate as f64 * settings.latency_secs) as u64;
    let interval = Duration::from_secs_f64(1.0 / settings.latency_rate as f64);
    println!(
        "\n== latency: {} msg/s for {:.1} s, 1 subscription (first 10% discarded), {LATENCY_RUNS} runs ==",
        settings.latency_rate, settings.latency_secs
    );
    let added = |a: u64, b: u64| (b as f64 - a as f64) / 1e3;
    let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
    let (mut feed_p50s, mut feed_p99s) = (Vec::new(), Vec::new());
    for run in 0..LATENCY_RUNS {
        let raw = latency_raw(server, count, interval).await;
        let lib = latency_lib(server, count, interval).await;
        let feed = latency_feed(server, count, interval).await;
        for (label, l) in [("raw", &raw), ("resilient-ws", &lib), ("feed", &feed)] {
            println!(
                "  run {}: {label:<12} p50 {:>6.1} us  p99 {:>6.1} us  p99.9 {:>7.1} us  max {:>8.1} us  ({} samples, {:.0} msg/s sent)",
                run + 1,
                l.p50 as f64 / 1e3,
                l.p99 as f64 / 1e3,
                l.p999 as f64 / 1e3,
                l.max as f64 / 1e3,
                l.samples,
                l.rate
            );
        }
        println!(
            "  run {}: added p50 {:+.1} us  p99 {:+.1} us  p99.9 {:+.1} us; feed p50 {:+.1} us  p99 {:+.1} us  p99.9 {:+.1} us",
            run + 1,
            added(raw.p50, lib.p50),
            added(raw.p99, lib.p99),
            added(raw.p999, lib.p999),
            added(raw.p50, feed.p50),
            added(raw.p99, feed.p99),
            added(raw.p999, feed.p999)
        );
        p50s.push(added(raw.p50, lib.p50));
        p99s.push(added(raw.p99, lib.p99));
        feed_p50s.push(added(raw.p50, feed.p50));
        feed_p99s.push(added(raw.p99, feed.p99));
    }
    let result = Added {
        p50: median_f64(&p50s),
        p99: median_f64(&p99s),
        feed_p50: median_f64(&feed_p50s),
        feed_p99: median_f64(&feed_p99s),
    };
    println!(
        "  median added over {LATENCY_RUNS} runs: p50 {:+.1} us  p99 {:+.1} us; feed p50 {:+.1} us  p99 {:+.1} us",
        result.p50, result.p99, result.feed_p50, result.feed_p99
    );
    result
}

/// Latency runs whose median is reported.
const LATENCY_RUNS: usize = 5;
