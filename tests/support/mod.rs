//! Shared helpers for the integration tests.
#![allow(dead_code)]

pub mod exchange;
pub mod kalshi_auth;
pub mod nats;
pub mod okx;
pub mod op_soak;
pub mod op_venue;
pub mod proxy;
pub mod rest;
pub mod soak_harness;
pub mod soak_link;
pub mod tasks;
pub mod tls;
pub mod tunnel;
pub mod weex;

use std::time::Duration;

use futures::{Stream, StreamExt};
use resilient_ws::{Event, Events};

/// Generous bound for anything that should happen "soon" on loopback, even on a
/// loaded 2-core machine. Tests wait on events up to this long; they never sleep.
pub const SOON: Duration = Duration::from_secs(10);

/// Waits for the first event matching `pred`; panics with the events seen on timeout.
pub async fn wait_event(events: &mut Events, pred: impl Fn(&Event) -> bool) -> Event {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(SOON, async {
        while let Some(event) = events.next().await {
            if pred(&event) {
                return Some(event);
            }
            seen.push(format!("{event:?}"));
        }
        None
    })
    .await;
    match found {
        Ok(Some(event)) => event,
        _ => panic!("expected event not seen; saw: {seen:#?}"),
    }
}

/// The next item of a stream, bounded by [`SOON`].
pub async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    tokio::time::timeout(SOON, stream.next())
        .await
        .expect("stream item within SOON")
}

/// Re-checks `cond` (after yielding to the runtime) until it holds; panics after [`SOON`].
///
/// Used only for counters that have no event of their own; it polls a condition
/// with a deadline, it does not sleep a guessed duration.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + SOON;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Resident set size of this process, in KiB (`VmRSS` in /proc/self/status).
/// A fresh, empty directory under the system's temp dir, named for the test
/// (`name`), the process and the time, so parallel tests never share one.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "resilient-ws-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Installs a tracing subscriber for debugging (RUST_LOG style env filter not needed).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
}
