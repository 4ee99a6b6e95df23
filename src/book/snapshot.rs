//! Book snapshots from outside the feed: [`SnapshotSource`] and
//! [`BookSnapshot`].
//!
//! Some venues send book deltas on the WebSocket but the snapshot they apply
//! to only over REST (OKX since it retired the initial `books` snapshot, see
//! `src/protocol/VENUES.md`). An adapter that needs one asks for it; a small
//! shell runs the user's source off the frame path and hands the result back.
//! Rules, and why:
//! - The trait needs no HTTP crate: implement it with any client, or with a
//!   closure `Fn(String) -> impl Future`. A built-in REST source, where the
//!   crate has one, sits behind a cargo feature.
//! - The source is called at most once at a time per subscription, and only
//!   while that subscription's book waits for a snapshot, so the number of
//!   calls in flight is bounded by the number of book subscriptions.
//! - A snapshot names the sequence number it was taken at; only deltas after
//!   it are applied to it (the venue's rule decides which).
//! - Errors carry the source's message; a source must not put secrets in it
//!   (it is logged, and recorded by a [`Recorder`](crate::Recorder)).
//! - The adapter never runs a fetch itself (its book stays sans I/O): it asks
//!   ([`SnapshotRequest`]) and is handed the result ([`SnapshotFetched`]) as
//!   an input of the connection, like a frame. The connection's shell runs
//!   the fetch off the frame path and wakes up when it ends, so a fetched
//!   snapshot is applied at once, not when the next frame comes; a recorder
//!   keeps the result, so a replay hands it in at the same point.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use crate::ids::ServerId;

/// The error a snapshot source may return.
pub type SnapshotError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The future a [`SnapshotSource`] returns.
pub type SnapshotFuture = Pin<Box<dyn Future<Output = Result<BookSnapshot, SnapshotError>> + Send>>;

/// A full book of one symbol as another source (REST) gave it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BookSnapshot {
    /// The venue's sequence number of the state (OKX: `seqId`).
    pub seq: i64,
    /// Asks as (price, size) wire text, best (lowest) first.
    pub asks: Vec<(String, String)>,
    /// Bids as (price, size) wire text, best (highest) first.
    pub bids: Vec<(String, String)>,
    /// The venue's time of the state, when it sends one.
    pub venue_time: Option<SystemTime>,
}

/// Fetches a book snapshot of a symbol, e.g. over the venue's REST API.
///
/// Implemented for every `Fn(String) -> impl Future<Output = Result<BookSnapshot, SnapshotError>>`:
///
/// ```
/// use resilient_ws::{BookSnapshot, Okx, SnapshotError};
/// let okx = Okx::new().snapshot_source(|inst_id: String| async move {
///     // Call GET /api/v5/market/books?instId=... here.
///     let _ = inst_id;
///     Ok::<_, SnapshotError>(BookSnapshot::default())
/// });
/// # drop(okx);
/// ```
pub trait SnapshotSource: Send + Sync + 'static {
    /// The current book of `symbol` with the sequence number it was taken at.
    fn snapshot(&self, symbol: &str) -> SnapshotFuture;
}

impl<F, Fut> SnapshotSource for F
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<BookSnapshot, SnapshotError>> + Send + 'static,
{
    fn snapshot(&self, symbol: &str) -> SnapshotFuture {
        Box::pin(self(symbol.to_owned()))
    }
}

/// A snapshot an adapter asks for ([`Protocol::take_snapshot_requests`](crate::Protocol::take_snapshot_requests)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRequest {
    /// The subscription whose book waits for it.
    pub server_id: ServerId,
    /// The symbol to fetch (what [`SnapshotSource::snapshot`] is called with).
    pub symbol: String,
    /// The adapter's number for this request; the result carries it back, so
    /// an adapter can ignore the result of a request it no longer waits for.
    pub number: u64,
}

/// A finished fetch, handed back to the adapter that asked for it
/// ([`Protocol::snapshot_fetched`](crate::Protocol::snapshot_fetched)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFetched {
    /// The subscription of the request.
    pub server_id: ServerId,
    /// The request's number.
    pub number: u64,
    /// The snapshot, or the source's error as text.
    pub result: Result<BookSnapshot, String>,
}
