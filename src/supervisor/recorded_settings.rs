//! The config settings that shape a session's decisions, kept in each
//! stream's first record so a replay makes the same decisions even when the
//! caller's config differs (a different ping interval would ping at other
//! times; a smaller stash would drop other frames).
//!
//! Kept: ping interval, pong, idle, request and close timeouts, the
//! default queue capacity, the stash bounds and whether a gap resyncs; and
//! whether the adapter had a book snapshot source
//! ([`Protocol::book_snapshot_source`](crate::Protocol::book_snapshot_source)),
//! which decides whether its books wait for fetched snapshots: replay makes
//! the adapter wait as live did, whatever source it was given (none needed).
//! Not kept: the outbound rate limit and the on-connect frames (which may
//! hold credentials); replay uses the caller's.

use std::time::Duration;

use serde_json::{json, Value};

use crate::config::Config;

/// The settings of `config`, and whether the adapter had a book
/// `snapshot_source`, as JSON text.
pub(super) fn of(config: &Config, snapshot_source: bool) -> String {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    json!({
        "ping_interval_ms": ms(config.ping_interval),
        "pong_timeout_ms": ms(config.pong_timeout),
        "idle_timeout_ms": config.idle_timeout.map(ms),
        "request_timeout_ms": ms(config.request_timeout),
        "close_timeout_ms": ms(config.close_timeout),
        "queue_capacity": config.queue_capacity,
        "stash_capacity": config.stash_capacity,
        "stash_bytes": config.stash_bytes,
        "resync_on_gap": config.resync_on_gap,
        "snapshot_source": snapshot_source,
    })
    .to_string()
}

/// Whether the live adapter had a book snapshot source, per recorded
/// settings (`of`'s text); `None` in recordings made before it was kept.
pub(crate) fn snapshot_source(text: &str) -> Option<bool> {
    serde_json::from_str::<Value>(text)
        .ok()?
        .get("snapshot_source")?
        .as_bool()
}

/// Applies recorded settings (`of`'s text) to `config`; what is missing or
/// malformed keeps the config's value.
pub(crate) fn apply(text: &str, config: &mut Config) {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let ms = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_u64)
            .map(Duration::from_millis)
    };
    let count = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
    };
    if let Some(d) = ms("ping_interval_ms") {
        config.ping_interval = d;
    }
    if let Some(d) = ms("pong_timeout_ms") {
        config.pong_timeout = d;
    }
    match value.get("idle_timeout_ms") {
        Some(Value::Null) => config.idle_timeout = None,
        Some(v) => {
            if let Some(n) = v.as_u64() {
                config.idle_timeout = Some(Duration::from_millis(n));
            }
        }
        None => {}
    }
    if let Some(d) = ms("request_timeout_ms") {
        config.request_timeout = d;
    }
    if let Some(d) = ms("close_timeout_ms") {
        config.close_timeout = d;
    }
    if let Some(n) = count("queue_capacity") {
        config.queue_capacity = n;
    }
    if let Some(n) = count("stash_capacity") {
        config.stash_capacity = n;
    }
    if let Some(n) = count("stash_bytes") {
        config.stash_bytes = n;
    }
    if let Some(on) = value.get("resync_on_gap").and_then(Value::as_bool) {
        config.resync_on_gap = on;
    }
}
