//! An OKX book built from a REST snapshot (issue 23 items 2 and 5): the
//! fetched snapshot is applied the moment its fetch ends, with no further
//! WebSocket frame, in the spawned client and in the consumer-driven `Feed`;
//! and a recorded session replays to the same items and the same book views,
//! because the fetch's result is recorded as an input and handed in at the
//! same point. The REST side is a real HTTP endpoint on 127.0.0.1
//! (`support::okx::BooksEndpoint`), the WebSocket side the op/args test venue.

use crate::support;

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use resilient_ws::{
    BookBreak, BookSnapshot, BookTop, BookView, Event, Feed, Okx, Pace, RecordOptions, Recorder,
    Recording, Replay, SetItem, SnapshotError, Topic, Update,
};
use support::okx::{self, server_levels, BooksEndpoint};
use support::op_venue::{self, next_data, OpVenue};
use support::{next, scratch_dir, wait_event, SOON};

const SEED: u64 = 51;
const INST: &str = "BTC-USDT";

/// No client ping (so no pong) within the test: the only frames are the
/// ones the test pushes.
const NO_PING: Duration = Duration::from_secs(3600);

/// A venue that sends book deltas without a snapshot, checksum 0, and its
/// gated REST endpoint.
async fn rest_venue() -> (OpVenue, BooksEndpoint) {
    let venue = okx::venue_without_snapshot().await;
    let rest = BooksEndpoint::start(&venue, true).await;
    (venue, rest)
}

fn okx_with_rest(rest: &BooksEndpoint) -> Okx {
    let port = rest.port;
    Okx::new().snapshot_source(move |inst| okx::fetch_books(port, inst))
}

/// The view holds the venue's book exactly.
fn assert_exact(top: &BookTop, venue: &OpVenue) {
    let own = |(p, s): (&str, &str)| (p.to_owned(), s.to_owned());
    let levels = (top.asks().map(own).collect(), top.bids().map(own).collect());
    assert_eq!(levels, server_levels(venue, INST));
}

/// Waits on the view's changes (no polling) until it holds a verified book.
async fn verified(view: &mut BookView) -> std::sync::Arc<BookTop> {
    loop {
        if let Some(top) = view.latest() {
            return top;
        }
        view.changed().await.expect("the adapter is alive");
    }
}

#[tokio::test]
async fn a_fetched_snapshot_verifies_the_view_without_another_frame() {
    let (venue, rest) = rest_venue().await;
    let client = op_venue::connect(&venue, SEED, okx_with_rest(&rest), |b| {
        b.ping_interval(NO_PING)
    })
    .await
    .0;
    let mut view = client.book_views().unwrap().watch(INST, 400);
    let mut book = client
        .subscribe(Topic::new("books").symbol(INST))
        .await
        .unwrap();
    okx::update(&venue, INST, &[("100.45", "2")], &[("100.6", "0")]);
    assert_eq!(next_data(&mut book).await["action"], "update");
    rest.next_request().await;
    assert!(!view.is_verified());

    let frames = client.stats().frames_in;
    rest.take.add_permits(1);
    rest.answer.add_permits(1);
    let top = tokio::time::timeout(SOON, verified(&mut view))
        .await
        .expect("verified within SOON of the answer, with no frame after it");
    assert_eq!(client.stats().frames_in, frames, "no frame came meanwhile");
    assert_exact(&top, &venue);
    assert_eq!(top.checksum(), None, "verified by seqId (checksum 0)");
    client.close().await.unwrap();
}

/// A break found while the fetched snapshot is applied (a delta buffered
/// after the snapshot was taken carries a wrong checksum) is reported the
/// moment the answer arrives, as a frame's break is: the in-band signal, the
/// event, the counter, and the resync, with no frame after the answer. A
/// recording of it replays (through an adapter with no source) to the same
/// items, the break at the same point.
#[tokio::test]
async fn a_break_in_the_buffered_deltas_is_reported_when_the_snapshot_arrives() {
    let dir = scratch_dir("okx-rest-break");
    let recorder = Recorder::create(&dir, RecordOptions::default()).unwrap();
    let (venue, rest) = rest_venue().await;
    let client = op_venue::connect(&venue, SEED, okx_with_rest(&rest), |b| {
        b.ping_interval(NO_PING).record(recorder.clone())
    })
    .await
    .0;
    let mut events = client.events();
    let view = client.book_views().unwrap().watch(INST, 400);
    let mut book = client
        .subscribe(Topic::new("books").symbol(INST))
        .await
        .unwrap();
    let mut live = Vec::new();
    okx::update(&venue, INST, &[("100.45", "2")], &[("100.6", "0")]);
    live.push(seen(&next(&mut book).await.unwrap(), &view));
    rest.next_request().await;
    rest.take.add_permits(1);
    let taken = rest.next_taken().await;
    // After the snapshot was taken: buffered, applied after it, and wrong.
    venue.state().corrupt_checksum.insert(INST.into());
    okx::update(&venue, INST, &[("100.5", "0")], &[("101.25", "4.000")]);
    let item = next(&mut book).await.unwrap();
    live.push(seen(&item, &view));
    let Ok(Update::Data(frame)) = item else {
        panic!("expected the delta, got {item:?}");
    };
    let delta: serde_json::Value = serde_json::from_str(frame.as_text().unwrap()).unwrap();
    assert!(delta["data"][0]["seqId"].as_i64().unwrap() > taken);
    assert!(!view.is_verified());

    let frames = client.stats().frames_in;
    rest.answer.add_permits(1);
    let item = next(&mut book).await.unwrap();
    live.push(seen(&item, &view));
    match item {
        Ok(Update::BookBreak(BookBreak::ChecksumMismatch { expected, computed })) => {
            assert_ne!(expected, computed)
        }
        other => panic!("expected the in-band break at once, got {other:?}"),
    }
    assert!(!view.is_verified(), "a break leaves the view unverified");
    wait_event(&mut events, |e| matches!(e, Event::BookBreak { .. })).await;
    assert_eq!(client.stats().book_breaks, 1);
    // The resync: unsubscribed and subscribed again; the only frames since
    // the answer are the venue's two acks of it.
    wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    assert_eq!(
        client.stats().frames_in,
        frames + 2,
        "no frame but the resync's acks came after the answer"
    );
    live.push(seen(&next(&mut book).await.unwrap(), &view));
    client.close().await.unwrap();
    while let Some(item) = next(&mut book).await {
        live.push(seen(&item, &view));
    }
    let flushed = recorder.clone();
    tokio::task::spawn_blocking(move || flushed.flush())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recorder.stats().dropped, 0);

    let replayed = replay_items(&dir, Okx::new(), &venue).await;
    assert_eq!(
        live, replayed,
        "the same items, the break at the same point"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A source that keeps failing: the last failed attempt is the break, and it
/// is reported at once (no frame comes after the first delta).
#[tokio::test]
async fn a_source_that_keeps_failing_breaks_the_book_at_once() {
    let venue = okx::venue_without_snapshot().await;
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = calls.clone();
    let okx = Okx::new().snapshot_source(move |_inst: String| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { Err::<BookSnapshot, SnapshotError>("the REST endpoint is down".into()) }
    });
    let client = op_venue::connect(&venue, SEED, okx, |b| b.ping_interval(NO_PING))
        .await
        .0;
    let mut book = client
        .subscribe(Topic::new("books").symbol(INST))
        .await
        .unwrap();
    okx::update(&venue, INST, &[("100.45", "2")], &[("100.6", "0")]);
    assert_eq!(next_data(&mut book).await["action"], "update");
    match next(&mut book).await {
        Some(Ok(Update::BookBreak(BookBreak::Unusable { .. }))) => {}
        other => panic!("expected the in-band break at once, got {other:?}"),
    }
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        resilient_ws::protocol::okx::MAX_SNAPSHOT_ATTEMPTS
    );
    assert_eq!(client.stats().book_breaks, 1);
    client.close().await.unwrap();
}

/// Drives `feed` (dropping its items) until `until` is done, within SOON.
async fn drive_until<T>(feed: &mut Feed<Okx>, until: impl Future<Output = T>) -> T {
    let mut until = std::pin::pin!(until);
    let work = async {
        loop {
            tokio::select! {
                biased;
                out = &mut until => return out,
                item = feed.next() => assert!(item.is_some(), "the feed goes on"),
            }
        }
    };
    tokio::time::timeout(SOON, work)
        .await
        .expect("finished within SOON")
}

#[tokio::test]
async fn a_fetched_snapshot_verifies_the_view_without_another_frame_in_a_feed() {
    let (venue, rest) = rest_venue().await;
    let okx = okx_with_rest(&rest);
    let mut view = okx.book_views().watch(INST, 400);
    let config = op_venue::fast(&venue.url(), SEED)
        .ping_interval(NO_PING)
        .build()
        .unwrap();
    let (handle, mut feed) = Feed::new(config, okx);
    let subscribe = handle.subscribe(Topic::new("books").symbol(INST));
    drive_until(&mut feed, subscribe).await.unwrap();
    okx::update(&venue, INST, &[("100.45", "2")], &[("100.6", "0")]);
    // The delta's item, then the request it made.
    let data = tokio::time::timeout(SOON, feed.next())
        .await
        .expect("the delta within SOON")
        .expect("the feed goes on");
    assert!(matches!(data.item, Ok(Update::Data(_))), "{data:?}");
    drive_until(&mut feed, rest.next_request()).await;
    assert!(!view.is_verified());

    let frames = handle.client().stats().frames_in;
    rest.take.add_permits(1);
    rest.answer.add_permits(1);
    let top = drive_until(&mut feed, verified(&mut view)).await;
    assert_eq!(
        handle.client().stats().frames_in,
        frames,
        "no frame came meanwhile"
    );
    assert_exact(&top, &venue);
    handle.close().await;
}

/// An item as compared between live and replay: its kind and text, and the
/// book view (levels, checksum, update count, venue time; everything but the
/// local time it was applied) right after it was read.
fn seen(item: &Result<Update, resilient_ws::Error>, view: &BookView) -> String {
    let item = match item {
        Ok(Update::Data(frame)) => format!("data {}", frame.as_text().unwrap_or_default()),
        Ok(other) => format!("signal {other:?}"),
        Err(error) => format!("error retryable={}", error.is_retryable()),
    };
    format!("{item} | view {:?}", view.latest())
}

/// The items of a replay of the recording in `dir` through `okx`, each with
/// the view right after it (as `seen`).
async fn replay_items(dir: &std::path::Path, okx: Okx, venue: &OpVenue) -> Vec<String> {
    let view = okx.book_views().watch(INST, 400);
    let config = op_venue::fast(&venue.url(), SEED).build().unwrap();
    let mut replay = Replay::new(
        Recording::open(dir).unwrap(),
        config,
        okx,
        Pace::AsFastAsPossible,
    );
    let mut replayed = Vec::new();
    let work = async {
        // Replay hands in the next input only once the items before it are
        // read, so each view is the one right after its item's frame.
        while let Some(SetItem { item, .. }) = replay.next().await {
            replayed.push(seen(&item, &view));
        }
    };
    tokio::time::timeout(SOON, work)
        .await
        .expect("the replay ends");
    let stats = replay.stats();
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(stats.writes_mismatched, 0, "{stats:?}");
    replayed
}

#[tokio::test]
async fn a_recorded_rest_built_book_replays_to_the_same_items_and_views() {
    let dir = scratch_dir("okx-rest-book");
    let recorder = Recorder::create(&dir, RecordOptions::default()).unwrap();
    let (venue, rest) = rest_venue().await;
    let client = op_venue::connect(&venue, SEED, okx_with_rest(&rest), |b| {
        b.ping_interval(NO_PING).record(recorder.clone())
    })
    .await
    .0;
    let mut view = client.book_views().unwrap().watch(INST, 400);
    let mut book = client
        .subscribe(Topic::new("books").symbol(INST))
        .await
        .unwrap();
    let mut live = Vec::new();
    // Before the snapshot is taken, then while it is fetched.
    okx::update(&venue, INST, &[("100.45", "2")], &[("100.6", "0")]);
    live.push(seen(&support::next(&mut book).await.unwrap(), &view));
    rest.next_request().await;
    okx::update(&venue, INST, &[("100.45", "0"), ("100", "7.5")], &[]);
    live.push(seen(&support::next(&mut book).await.unwrap(), &view));
    rest.take.add_permits(1);
    rest.answer.add_permits(1);
    let top = tokio::time::timeout(SOON, verified(&mut view))
        .await
        .expect("verified");
    assert_exact(&top, &venue);
    assert_eq!(top.updates(), 1, "both deltas were in the snapshot");
    // After it.
    okx::update(&venue, INST, &[("100.5", "0")], &[("101.25", "4.000")]);
    live.push(seen(&support::next(&mut book).await.unwrap(), &view));
    okx::update(&venue, INST, &[], &[("100.75", "0.25")]);
    live.push(seen(&support::next(&mut book).await.unwrap(), &view));
    assert_exact(&view.latest().expect("still verified"), &venue);
    client.close().await.unwrap();
    assert!(
        tokio::time::timeout(SOON, book.next())
            .await
            .expect("the subscription ends after close")
            .is_none(),
        "nothing after close"
    );
    let flushed = recorder.clone();
    tokio::task::spawn_blocking(move || flushed.flush())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recorder.stats().dropped, 0);
    let summary = Recording::open(&dir).unwrap().summary();
    assert_eq!(summary.snapshots, 1, "{summary:?}");

    // Replay through an adapter configured as live (its source must never
    // run), and through one configured with no source at all: the recording
    // says the live adapter had one.
    let never = Okx::new().snapshot_source(|_inst: String| async move {
        Err::<BookSnapshot, SnapshotError>("replay must not fetch".into())
    });
    for (okx, how) in [(never, "with a source"), (Okx::new(), "without a source")] {
        let replayed = replay_items(&dir, okx, &venue).await;
        assert_eq!(live, replayed, "the same items and views, replayed {how}");
    }
    assert!(
        live.last().is_some_and(|l| !l.ends_with("view None")),
        "verified at the end: {live:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
