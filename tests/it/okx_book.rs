//! The OKX book readable through `BookViews` (issue 23): built from the
//! WebSocket snapshot when OKX sends one, from a REST snapshot source when it
//! does not (OKX's 2026 change), verified by `seqId`/`prevSeqId` when the
//! checksum is 0, made unverified and resynced on a break. The REST side is
//! a real HTTP endpoint on 127.0.0.1 (`support::okx::BooksEndpoint`).

use crate::support;

use std::sync::Arc;

use resilient_ws::{
    BookBreak, BookTop, BookView, Client, Decimal, Event, Okx, Subscription, Topic, Update,
};
use support::okx::{self, server_levels, BooksEndpoint};
use support::op_venue::{self, next_data, Dialect, OpVenue};
use support::{next, wait_event, wait_until};

const SEED: u64 = 23;
const INST: &str = "BTC-USDT";

type Levels = Vec<(String, String)>;

fn top_levels(top: &BookTop) -> (Levels, Levels) {
    let own = |(p, s): (&str, &str)| (p.to_owned(), s.to_owned());
    (top.asks().map(own).collect(), top.bids().map(own).collect())
}

/// The view equals the venue's book exactly, as text and as decimals.
fn assert_view_is_the_venues_book(view: &BookView, venue: &OpVenue) {
    let top = view.latest().expect("a verified book");
    let (asks, bids) = server_levels(venue, INST);
    assert_eq!(top_levels(&top), (asks.clone(), bids.clone()));
    let decimal =
        |(p, s): &(String, String)| (Decimal::parse(p).unwrap(), Decimal::parse(s).unwrap());
    assert_eq!(top.best_ask(), asks.first().map(decimal));
    assert_eq!(
        top.bid_levels().collect::<Vec<_>>(),
        bids.iter().map(decimal).collect::<Vec<_>>()
    );
    assert!(
        top.venue_time().is_some(),
        "the venue time of the last update"
    );
    assert_eq!(
        top.checksum(),
        None,
        "OKX's checksum is 0: verified by seqId"
    );
}

/// Pushes one more delta at a time (each classified before the next) until
/// the fetched snapshot has been applied and the view is verified: deltas
/// keep arriving before, during and after the fetch, as OKX's do (that the
/// snapshot needs no further frame is `okx_book_rest.rs`'s test).
async fn delta_until_verified(venue: &OpVenue, book: &mut Subscription, view: &BookView) {
    for i in 0..500u32 {
        if view.is_verified() {
            return;
        }
        let price = format!("99.{:03}", i + 1);
        okx::update(venue, INST, &[(&price, "1")], &[]);
        let _ = next_data(book).await;
        tokio::task::yield_now().await;
    }
    panic!("the view never verified");
}

async fn okx_client(venue: &OpVenue, okx: Okx) -> Client {
    op_venue::connect(venue, SEED, okx, |b| b).await.0
}

#[tokio::test]
async fn deltas_before_during_and_after_a_rest_snapshot_build_the_exact_book() {
    let venue = okx::venue_without_snapshot().await;
    let rest = Arc::new(BooksEndpoint::start(&venue, true).await);
    let port = rest.port;
    let okx = Okx::new().snapshot_source(move |inst| okx::fetch_books(port, inst));
    let client = okx_client(&venue, okx).await;
    let view = client
        .book_views()
        .expect("OKX keeps books")
        .watch(INST, 400);
    let mut book = client
        .subscribe(Topic::new("books").symbol(INST))
        .await
        .unwrap();

    // Before: the first delta asks for the snapshot.
    okx::update(&venue, INST, &[("100.45", "2")], &[("100.6", "0")]);
    assert_eq!(next_data(&mut book).await["action"], "update");
    let path = rest.next_request().await;
    assert!(path.contains("instId=BTC-USDT"), "{path}");
    // During, before the snapshot is taken: in it, so dropped from the buffer.
    // (It deletes the level the first delta set: re-applying that one after
    // the snapshot would bring the level back.)
    okx::update(
        &venue,
        INST,
        &[("100.45", "0"), ("100", "7.5")],
        &[("100.7", "1")],
    );
    let _ = next_data(&mut book).await;
    rest.take.add_permits(1);
    wait_until("snapshot taken", || rest.taken.lock().unwrap().len() == 1).await;
    // During, after it was taken: not in it, applied after it.
    okx::update(&venue, INST, &[("100.5", "0")], &[("101.25", "4.000")]);
    let _ = next_data(&mut book).await;
    assert!(!view.is_verified(), "nothing verified before the snapshot");
    rest.answer.add_permits(1);
    // After.
    delta_until_verified(&venue, &mut book, &view).await;
    assert_view_is_the_venues_book(&view, &venue);
    okx::update(&venue, INST, &[], &[("100.75", "0.25")]);
    let _ = next_data(&mut book).await;
    assert_view_is_the_venues_book(&view, &venue);
    assert_eq!(rest.taken.lock().unwrap().len(), 1, "one snapshot sufficed");
    assert_eq!(client.stats().book_breaks, 0);
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_gap_after_a_rest_snapshot_unverifies_resyncs_and_refetches() {
    let venue = okx::venue_without_snapshot().await;
    let rest = BooksEndpoint::start(&venue, false).await;
    let port = rest.port;
    let okx = Okx::new().snapshot_source(move |inst| okx::fetch_books(port, inst));
    let client = okx_client(&venue, okx).await;
    let mut events = client.events();
    let mut book = client
        .subscribe(Topic::new("books").symbol(INST))
        .await
        .unwrap();
    // The view is obtainable at any time, also after subscribing.
    let view = client.book_views().unwrap().watch(INST, 400);
    delta_until_verified(&venue, &mut book, &view).await;
    assert_view_is_the_venues_book(&view, &venue);

    venue.state().gap.insert(INST.into());
    okx::update(&venue, INST, &[("100.2", "1")], &[]);
    let _ = next_data(&mut book).await;
    match next(&mut book).await {
        Some(Ok(Update::BookBreak(BookBreak::Discontinuity { expected, got }))) => {
            assert_eq!(got, expected + 1, "prevSeqId one past the last seqId")
        }
        other => panic!("expected the in-band break signal, got {other:?}"),
    }
    assert!(!view.is_verified(), "a break makes the view unverified");
    wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    delta_until_verified(&venue, &mut book, &view).await;
    assert_view_is_the_venues_book(&view, &venue);
    assert_eq!(
        rest.taken.lock().unwrap().len(),
        2,
        "refetched after the break"
    );
    assert_eq!(client.stats().book_breaks, 1);
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_websocket_snapshot_with_checksum_zero_is_readable_and_a_gap_resyncs() {
    let venue = OpVenue::start(Dialect::Okx).await.unwrap();
    venue.state().okx_zero_checksum = true;
    let okx = Okx::new();
    let views = okx.book_views();
    let client = okx_client(&venue, okx).await;
    let mut view = views.watch(INST, 2);
    let mut events = client.events();
    let mut book = client
        .subscribe(Topic::new("books").symbol(INST))
        .await
        .unwrap();
    assert_eq!(next_data(&mut book).await["action"], "snapshot");
    let top = view.latest().expect("verified by the snapshot");
    assert_eq!(top.updates(), 1);
    assert_eq!(top.asks().len(), 2, "only the watched levels are copied");
    okx::update(&venue, INST, &[("100.45", "2")], &[("100.6", "0")]);
    let _ = next_data(&mut book).await;
    let top = view.latest().unwrap();
    assert_eq!(top.updates(), 2);
    let (asks, bids) = server_levels(&venue, INST);
    assert_eq!(top_levels(&top), (asks[..2].to_vec(), bids[..2].to_vec()));

    venue.state().gap.insert(INST.into());
    okx::update(&venue, INST, &[("100.2", "1")], &[]);
    let _ = next_data(&mut book).await;
    assert!(matches!(
        next(&mut book).await,
        Some(Ok(Update::BookBreak(BookBreak::Discontinuity { .. })))
    ));
    assert!(view.latest().is_none());
    wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    assert_eq!(next_data(&mut book).await["action"], "snapshot");
    let top = view
        .changed()
        .await
        .unwrap()
        .or_else(|| view.latest())
        .expect("verified again");
    assert_eq!(top.updates(), 1);
    client.close().await.unwrap();
}

/// The built-in REST source (feature `okx-rest`) against the local endpoint.
#[cfg(feature = "okx-rest")]
#[tokio::test]
async fn the_built_in_rest_source_builds_the_book() {
    use resilient_ws::protocol::okx::rest::OkxRestSnapshots;
    let venue = OpVenue::start(Dialect::Okx).await.unwrap();
    venue.state().okx_no_snapshot = true;
    let rest = BooksEndpoint::start(&venue, false).await;
    let tls = resilient_ws::tls::client_config().unwrap();
    let source =
        OkxRestSnapshots::with_options(&format!("http://127.0.0.1:{}", rest.port), 400, tls)
            .unwrap();
    let client = okx_client(&venue, Okx::new().snapshot_source(source)).await;
    let view = client.book_views().unwrap().watch(INST, 400);
    let mut book = client
        .subscribe(Topic::new("books").symbol(INST))
        .await
        .unwrap();
    delta_until_verified(&venue, &mut book, &view).await;
    let top = view.latest().unwrap();
    assert_eq!(top_levels(&top), server_levels(&venue, INST));
    assert!(rest
        .next_request()
        .await
        .ends_with("instId=BTC-USDT&sz=400"));
    client.close().await.unwrap();
}
