//! The WEEX depth book read through `Client::book_views` against the test
//! venue: the view equals the venue's book after the snapshot and each
//! change, and an update-id break (or a push the client cannot place)
//! clears it, is signalled in-band, resyncs that one subscription and
//! verifies again from the fresh snapshot.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use resilient_ws::{
    BookBreak, BookTop, BookView, Client, Decimal, Event, Messages, Topic, Update, Weex,
};
use support::op_venue::{self, next_data, Dialect, OpVenue};
use support::{next, wait_event, weex, SOON};

const SEED: u64 = 23;

async fn connect(venue: &OpVenue) -> (Client, Messages) {
    op_venue::connect(venue, SEED, Weex::new(), |b| b).await
}

fn dec(text: &str) -> Decimal {
    Decimal::parse(text).expect("a decimal")
}

/// The venue's book of `symbol` as exact decimals, best first: (asks, bids).
type Sides = (Vec<(Decimal, Decimal)>, Vec<(Decimal, Decimal)>);

fn venue_book(venue: &OpVenue, symbol: &str) -> Sides {
    let state = venue.state();
    let book = &state.books[symbol];
    let side = |levels: Vec<(&String, &String)>| -> Vec<(Decimal, Decimal)> {
        levels.into_iter().map(|(p, q)| (dec(p), dec(q))).collect()
    };
    (
        side(book.asks.iter().map(|(p, q)| (&p.0, q)).collect()),
        side(book.bids.iter().rev().map(|(p, q)| (&p.0, q)).collect()),
    )
}

fn sides(top: &BookTop) -> Sides {
    (top.ask_levels().collect(), top.bid_levels().collect())
}

/// Waits until the view holds a verified state equal to `expected`.
async fn until_view_is(view: &mut BookView, expected: &Sides) -> Arc<BookTop> {
    let found = tokio::time::timeout(SOON, async {
        loop {
            if let Some(top) = view.latest() {
                if sides(&top) == *expected {
                    return top;
                }
            }
            view.changed().await.expect("the client is alive");
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("view never became {expected:?}: {:?}", view.latest()))
}

#[tokio::test]
async fn the_view_is_the_venues_book_after_the_snapshot_and_each_change() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    let (client, _messages) = connect(&venue).await;
    let books = client.book_views().expect("WEEX keeps books");
    let mut view = books.watch("ETHUSDT", 10);
    assert!(view.latest().is_none(), "nothing before the snapshot");
    let started = SystemTime::now();
    let mut sub = client
        .subscribe(Topic::new("depth").symbol("ETHUSDT"))
        .await
        .unwrap();
    let top = until_view_is(&mut view, &venue_book(&venue, "ETHUSDT")).await;
    assert_eq!(top.updates(), 1);
    assert_eq!(
        top.checksum(),
        None,
        "verified by update ids, not a checksum"
    );
    assert_eq!(top.best_bid(), Some((dec("100.5"), dec("3"))));
    assert!(top
        .venue_time()
        .is_some_and(|t| t + Duration::from_secs(1) >= started));
    assert!(top.applied() >= started);
    // Changes: a level deleted by quantity 0, one set, one added.
    weex::depth_update(
        &venue,
        "ETHUSDT",
        15,
        &[("100.5", "0"), ("100.45", "4")],
        &[],
    );
    weex::depth_update(
        &venue,
        "ETHUSDT",
        15,
        &[],
        &[("100.75", "1.25"), ("100.6", "0")],
    );
    let top = until_view_is(&mut view, &venue_book(&venue, "ETHUSDT")).await;
    assert_eq!(top.updates(), 3);
    assert_eq!(top.best_bid(), Some((dec("100.45"), dec("4"))));
    assert_eq!(top.best_ask(), Some((dec("100.75"), dec("1.25"))));
    assert_eq!(
        top.asks().collect::<Vec<_>>(),
        [("100.75", "1.25"), ("101", "9")],
        "the wire text is kept"
    );
    // The raw frames still reach the subscription, and nothing broke.
    for _ in 0..3 {
        next_data(&mut sub).await;
    }
    assert_eq!(client.stats().book_breaks, 0);
    // Ending the subscription clears the view.
    drop(sub);
    tokio::time::timeout(SOON, async {
        while view.is_verified() {
            view.changed().await.expect("the client is alive");
        }
    })
    .await
    .expect("the view is cleared when the subscription ends");
}

/// Breaks ETHUSDT's chain with `break_it`, then checks the break clears the
/// view, is signalled in-band as the kind `expected` accepts, resyncs only
/// that subscription, and that the fresh snapshot verifies the view again.
async fn a_break_clears_signals_resyncs_and_verifies_again(
    break_it: impl FnOnce(&OpVenue),
    expected: impl Fn(&BookBreak) -> bool,
) {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    let (client, _messages) = connect(&venue).await;
    let mut events = client.events();
    let books = client.book_views().expect("WEEX keeps books");
    let mut eth_view = books.watch("ETHUSDT", 10);
    let btc_view = books.watch("BTCUSDT", 10);
    let mut eth = client
        .subscribe(Topic::new("depth").symbol("ETHUSDT"))
        .await
        .unwrap();
    let _btc = client
        .subscribe(Topic::new("depth").symbol("BTCUSDT"))
        .await
        .unwrap();
    weex::depth_update(&venue, "ETHUSDT", 15, &[("100.4", "2")], &[]);
    until_view_is(&mut eth_view, &venue_book(&venue, "ETHUSDT")).await;
    // The venue's book moves on in a push the client cannot chain; the
    // resync's snapshot is held back, so the cleared view can be seen.
    venue.state().hold_snapshots.insert("ETHUSDT".into());
    break_it(&venue);
    loop {
        match next(&mut eth).await {
            Some(Ok(Update::BookBreak(kind))) if expected(&kind) => break,
            Some(Ok(Update::Data(_))) => continue,
            other => panic!("expected the break signalled in-band, got {other:?}"),
        }
    }
    assert!(!eth_view.is_verified(), "the break clears the view");
    let resynced = wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    match resynced {
        Event::Resubscribed { client_id, .. } => assert_eq!(client_id, eth.client_id()),
        other => panic!("{other:?}"),
    }
    // Changes before the new snapshot are not applied to anything.
    weex::depth_update(&venue, "ETHUSDT", 15, &[("100", "8")], &[]);
    let change = next_data(&mut eth).await;
    assert_eq!(change["d"], "CHANGED");
    assert!(!eth_view.is_verified(), "no snapshot yet");
    weex::release_snapshot(&venue, "ETHUSDT", 15);
    // The fresh snapshot is the venue's book, changes included.
    let top = until_view_is(&mut eth_view, &venue_book(&venue, "ETHUSDT")).await;
    assert_eq!(top.updates(), 1, "a fresh snapshot");
    assert_eq!(top.best_bid(), Some((dec("100.5"), dec("3"))));
    weex::depth_update(&venue, "ETHUSDT", 15, &[("100.5", "0")], &[]);
    let top = until_view_is(&mut eth_view, &venue_book(&venue, "ETHUSDT")).await;
    assert_eq!(top.best_bid(), Some((dec("100.4"), dec("7"))));
    assert_eq!(client.stats().book_breaks, 1);
    assert!(btc_view.is_verified(), "the other book never noticed");
    let btc_subscribes = venue
        .ops("SUBSCRIBE")
        .iter()
        .filter(|r| r["params"] == serde_json::json!(["BTCUSDT@depth15"]))
        .count();
    assert_eq!(btc_subscribes, 1);
}

#[tokio::test]
async fn an_update_id_break_clears_the_view_signals_resyncs_and_verifies_again() {
    a_break_clears_signals_resyncs_and_verifies_again(
        |venue| {
            venue.state().gap.insert("ETHUSDT".into());
            weex::depth_update(venue, "ETHUSDT", 15, &[("100.4", "7")], &[]);
        },
        // The venue's `U` skips 5 past the previous `u`.
        |kind| matches!(kind, BookBreak::Discontinuity { expected, got } if *got == expected + 5),
    )
    .await;
}

#[tokio::test]
async fn a_push_without_update_ids_clears_the_view_signals_resyncs_and_verifies_again() {
    a_break_clears_signals_resyncs_and_verifies_again(
        |venue| {
            weex::depth_update_without_ids(venue, "ETHUSDT", 15, &[("100.4", "7")], &[]);
        },
        |kind| {
            *kind
                == BookBreak::Unusable {
                    reason: "a depth update without its update ids U and u",
                }
        },
    )
    .await;
}
