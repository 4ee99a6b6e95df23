//! Kalshi's order book through a real session against the test venue (issue
//! 23): the view a client reads equals the venue's book after its snapshot
//! and deltas; a seq gap or a count below zero unverifies it, reaches the
//! subscription in-band, resyncs that subscription with `get_snapshot`, and
//! the snapshot that answers verifies it again; a lost connection shows
//! nothing until the replayed subscription's snapshot. A snapshot sent ahead
//! of its ack verifies too; markets added with `add_markets` get books and
//! those removed with `delete_markets` lose them.

use crate::support;

use std::time::{Duration, UNIX_EPOCH};

use resilient_ws::{
    Backoff, BookBreak, BookTop, BookView, Client, Config, ConfigBuilder, Decimal, Event, Kalshi,
    Pace, RecordOptions, Recorder, Recording, Replay, Request, SetItem, Subscription, Topic,
    Update,
};
use serde_json::{json, Value};
use support::exchange::{kalshi_delta, Exchange, Received, Venue};
use support::{next, scratch_dir, wait_event, SOON};

fn fast(url: &str) -> ConfigBuilder {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).seed(3))
        .idle_timeout(None)
        .rate_limit(1000, Duration::from_secs(1))
}

/// A venue whose book subscribes start with a snapshot, a client of it, and
/// a view of market `A` (taken from the running client).
async fn setup(
    exchange: &Exchange,
    config: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> (Client, BookView, Subscription) {
    exchange.set_book_snapshots(true);
    let config = config(fast(&exchange.url())).build().unwrap();
    let client = Client::connect(config, Kalshi::new()).await.unwrap().0;
    let views = client.book_views().expect("Kalshi publishes book views");
    let view = views.watch("A", 10);
    assert!(
        view.latest().is_none(),
        "nothing verified before a snapshot"
    );
    let book = client
        .subscribe(Topic::new("orderbook_delta").symbol("A"))
        .await
        .unwrap();
    (client, view, book)
}

/// The next data frame as JSON; signals go to `signals`. Once a frame is
/// here the adapter has applied it, so the view shows it.
async fn next_data(sub: &mut Subscription, signals: &mut Vec<Update>) -> Value {
    loop {
        match tokio::time::timeout(SOON, next(sub)).await {
            Ok(Some(Ok(Update::Data(frame)))) => {
                return serde_json::from_str(frame.as_text().unwrap()).unwrap()
            }
            Ok(Some(Ok(signal))) => signals.push(signal),
            other => panic!("expected data, got {other:?} (signals {signals:?})"),
        }
    }
}

type Levels = Vec<(String, String)>;

fn sides(top: &BookTop) -> (Levels, Levels) {
    let own = |(p, q): (&str, &str)| (p.to_owned(), q.to_owned());
    (top.asks().map(own).collect(), top.bids().map(own).collect())
}

fn levels(pairs: &[(&str, &str)]) -> Levels {
    pairs
        .iter()
        .map(|(p, q)| ((*p).to_owned(), (*q).to_owned()))
        .collect()
}

fn get_snapshots(received: &[Received]) -> usize {
    received
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.text).ok())
        .filter(|c| c["cmd"] == "update_subscription" && c["params"]["action"] == "get_snapshot")
        .count()
}

fn at(ms: u64) -> Option<std::time::SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

#[tokio::test]
async fn the_view_is_the_venues_book_after_its_snapshot_and_deltas() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let (client, view, mut book) = setup(&exchange, |c| c).await;
    let mut signals = Vec::new();
    // The venue's snapshot: YES bids 0.08 x 300, 0.22 x 333; NO bids 0.54 x 20, 0.56 x 146.
    assert_eq!(
        next_data(&mut book, &mut signals).await["type"],
        "orderbook_snapshot"
    );
    let top = view.latest().expect("verified by the snapshot");
    assert_eq!(
        sides(&top),
        (
            levels(&[("0.4400", "146.00"), ("0.4600", "20.00")]),
            levels(&[("0.2200", "333.00"), ("0.0800", "300.00")])
        )
    );
    assert_eq!(
        (top.updates(), top.venue_time(), top.checksum()),
        (1, None, None)
    );
    for (price, delta, side, ts) in [
        ("0.0800", "-100.00", "yes", 1_700_000_000_001),
        ("0.2200", "-333.00", "yes", 1_700_000_000_002),
        ("0.5500", "2.50", "no", 1_700_000_000_003),
        ("0.5600", "-0.01", "no", 1_700_000_000_004),
        ("0.2100", "1.00", "yes", 1_700_000_000_005),
    ] {
        exchange.publish("A", kalshi_delta(price, delta, side, ts));
        next_data(&mut book, &mut signals).await;
    }
    let top = view.latest().expect("still verified");
    assert_eq!(
        sides(&top),
        (
            levels(&[
                ("0.4400", "145.99"),
                ("0.4500", "2.50"),
                ("0.4600", "20.00")
            ]),
            levels(&[("0.2100", "1.00"), ("0.0800", "200.00")])
        )
    );
    assert_eq!(top.updates(), 6);
    assert_eq!(top.venue_time(), at(1_700_000_000_005));
    assert!(top.applied() >= UNIX_EPOCH);
    let d = |t: &str| Decimal::parse(t).unwrap();
    assert_eq!(top.best_bid(), Some((d("0.21"), d("1"))));
    assert_eq!(top.best_ask(), Some((d("0.44"), d("145.99"))));
    assert!(signals.is_empty(), "{signals:?}");
    client.close().await.unwrap();
    exchange.shutdown().await;
}

#[tokio::test]
async fn a_gap_unverifies_the_view_and_signals_it_in_band() {
    // No resync, so the unverified state stays to be seen.
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let (client, view, mut book) = setup(&exchange, |c| c.resync_on_gap(false)).await;
    let mut signals = Vec::new();
    next_data(&mut book, &mut signals).await;
    exchange.publish("A", kalshi_delta("0.0800", "-100.00", "yes", 1));
    next_data(&mut book, &mut signals).await;
    assert!(view.is_verified());
    exchange.skip_seq("A", 2);
    exchange.publish("A", kalshi_delta("0.0800", "1.00", "yes", 2));
    assert_eq!(next_data(&mut book, &mut signals).await["seq"], 5);
    assert!(
        matches!(
            signals[..],
            [Update::Gap {
                last_seq: 2,
                next_seq: 5
            }]
        ),
        "{signals:?}"
    );
    assert!(view.latest().is_none(), "a gap unverifies the book");
    // In-order deltas after the gap have no book to apply to.
    exchange.publish("A", kalshi_delta("0.0800", "1.00", "yes", 3));
    assert_eq!(next_data(&mut book, &mut signals).await["seq"], 6);
    assert!(view.latest().is_none());
    assert_eq!(get_snapshots(&exchange.received()), 0);
    client.close().await.unwrap();
    exchange.shutdown().await;
}

#[tokio::test]
async fn a_gap_resyncs_and_the_answering_snapshot_verifies_the_view_again() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let (client, view, mut book) = setup(&exchange, |c| c).await;
    let mut signals = Vec::new();
    let sid = next_data(&mut book, &mut signals).await["sid"].clone();
    exchange.publish("A", kalshi_delta("0.0800", "-100.00", "yes", 1));
    next_data(&mut book, &mut signals).await;
    // The venue's book moves on while seq 3 and 4 are lost.
    exchange.set_kalshi_book("A", &[("0.3000", "12.00")], &[("0.6500", "4.00")]);
    exchange.skip_seq("A", 2);
    exchange.publish("A", kalshi_delta("0.0800", "1.00", "yes", 2));
    assert_eq!(next_data(&mut book, &mut signals).await["seq"], 5);
    let snapshot = next_data(&mut book, &mut signals).await;
    assert_eq!(
        (
            snapshot["type"].as_str(),
            &snapshot["sid"],
            snapshot["seq"].as_u64()
        ),
        (Some("orderbook_snapshot"), &sid, Some(6))
    );
    let top = view.latest().expect("the snapshot verifies the book again");
    assert_eq!(
        sides(&top),
        (
            levels(&[("0.3500", "4.00")]),
            levels(&[("0.3000", "12.00")])
        )
    );
    assert_eq!(top.updates(), 1, "the view restarted at the snapshot");
    exchange.publish("A", kalshi_delta("0.3000", "-2.00", "yes", 7));
    next_data(&mut book, &mut signals).await;
    let top = view.latest().unwrap();
    assert_eq!(sides(&top).1, levels(&[("0.3000", "10.00")]));
    assert_eq!((top.updates(), top.venue_time()), (2, at(7)));
    assert!(
        matches!(
            signals[..],
            [Update::Gap {
                last_seq: 2,
                next_seq: 5
            }]
        ),
        "{signals:?}"
    );
    assert_eq!(get_snapshots(&exchange.received()), 1);
    assert_eq!(client.stats().gaps, 1);
    client.close().await.unwrap();
    exchange.shutdown().await;
}

#[tokio::test]
async fn a_count_below_zero_signals_resyncs_and_verifies_again() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let (client, view, mut book) = setup(&exchange, |c| c).await;
    let mut signals = Vec::new();
    next_data(&mut book, &mut signals).await;
    // The venue's book and ours disagree: 300 contracts at 0.08, not 301.
    exchange.publish("A", kalshi_delta("0.0800", "-301.00", "yes", 1));
    next_data(&mut book, &mut signals).await;
    let snapshot = next_data(&mut book, &mut signals).await;
    assert_eq!(snapshot["type"], "orderbook_snapshot");
    assert!(
        matches!(
            signals[..],
            [Update::BookBreak(BookBreak::Unusable {
                reason: "a delta takes a count below zero"
            })]
        ),
        "{signals:?}"
    );
    let top = view.latest().expect("verified again by the snapshot");
    assert_eq!(
        sides(&top).1,
        levels(&[("0.2200", "333.00"), ("0.0800", "300.00")])
    );
    assert_eq!(get_snapshots(&exchange.received()), 1);
    assert_eq!(client.stats().book_breaks, 1);
    client.close().await.unwrap();
    exchange.shutdown().await;
}

#[tokio::test]
async fn a_lost_connection_unverifies_and_the_replayed_subscription_verifies_again() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let (client, view, mut book) = setup(&exchange, |c| c).await;
    let mut signals = Vec::new();
    next_data(&mut book, &mut signals).await;
    assert!(view.is_verified());
    let mut events = client.events();
    exchange.set_kalshi_book("A", &[("0.5000", "1.00")], &[]);
    // Reconnects are refused until the test has looked.
    exchange.set_refuse(true);
    exchange.abort_all();
    wait_event(&mut events, |e| matches!(e, Event::AttemptFailed { .. })).await;
    assert!(
        view.latest().is_none(),
        "no book is shown while disconnected"
    );
    exchange.set_refuse(false);
    let snapshot = next_data(&mut book, &mut signals).await;
    assert_eq!(snapshot["type"], "orderbook_snapshot");
    let top = view
        .latest()
        .expect("the replayed subscription's snapshot verifies it");
    assert_eq!(sides(&top), (levels(&[]), levels(&[("0.5000", "1.00")])));
    assert!(
        signals
            .iter()
            .any(|s| matches!(s, Update::Resubscribed { .. })),
        "{signals:?}"
    );
    client.close().await.unwrap();
    exchange.shutdown().await;
}

#[tokio::test]
async fn a_snapshot_before_its_ack_verifies_the_market() {
    // The venue sends the snapshot ahead of the `subscribed` ack: the
    // session stashes it until the ack, and the book must still see it.
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    exchange.set_kalshi_snapshots_first(true);
    let (client, view, mut book) = setup(&exchange, |c| c).await;
    let mut signals = Vec::new();
    let snapshot = next_data(&mut book, &mut signals).await;
    assert_eq!(
        (snapshot["type"].as_str(), snapshot["seq"].as_u64()),
        (Some("orderbook_snapshot"), Some(1))
    );
    let top = view.latest().expect("the early snapshot verifies the book");
    assert_eq!(
        sides(&top).1,
        levels(&[("0.2200", "333.00"), ("0.0800", "300.00")])
    );
    exchange.publish("A", kalshi_delta("0.0800", "-100.00", "yes", 1));
    next_data(&mut book, &mut signals).await;
    let top = view.latest().expect("still verified");
    assert_eq!(
        sides(&top).1,
        levels(&[("0.2200", "333.00"), ("0.0800", "200.00")])
    );
    assert_eq!(top.updates(), 2);
    assert!(signals.is_empty(), "{signals:?}");
    assert_eq!(get_snapshots(&exchange.received()), 0, "no resync needed");
    client.close().await.unwrap();
    exchange.shutdown().await;
}

/// The user's `update_subscription` on the book's sid, answered.
async fn update_markets(client: &Client, sid: &Value, action: &str, markets: &[&str]) -> Value {
    let answer = client
        .request(Request::new(
            "update_subscription",
            Some(json!({"sids": [sid], "market_tickers": markets, "action": action})),
        ))
        .await
        .unwrap();
    serde_json::from_str(answer.as_text().unwrap()).unwrap()
}

/// `add_markets` gives the added market a book (its snapshot, then its
/// deltas, seq-checked with the sid's); a gap's `get_snapshot` names it; and
/// `delete_markets` drops it. `snapshots_first`: the venue sends the added
/// market's snapshot before the `ok` rather than after it.
async fn added_and_deleted_markets(snapshots_first: bool) {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    exchange.set_kalshi_snapshots_first(snapshots_first);
    exchange.set_kalshi_book("B", &[("0.4000", "5.00")], &[("0.5500", "7.00")]);
    let (client, view_a, mut book) = setup(&exchange, |c| c).await;
    let view_b = client.book_views().unwrap().watch("B", 10);
    let mut signals = Vec::new();
    let sid = next_data(&mut book, &mut signals).await["sid"].clone();
    assert!(view_b.latest().is_none());

    let ok = update_markets(&client, &sid, "add_markets", &["B"]).await;
    assert_eq!(ok["msg"]["market_tickers"], json!(["A", "B"]));
    let snapshot = next_data(&mut book, &mut signals).await;
    assert_eq!(
        (
            snapshot["type"].as_str(),
            snapshot["msg"]["market_ticker"].as_str()
        ),
        (Some("orderbook_snapshot"), Some("B"))
    );
    let top = view_b
        .latest()
        .expect("the added market's snapshot verifies it");
    assert_eq!(
        sides(&top),
        (levels(&[("0.4500", "7.00")]), levels(&[("0.4000", "5.00")]))
    );
    exchange.publish("B", kalshi_delta("0.4000", "-1.00", "yes", 11));
    next_data(&mut book, &mut signals).await;
    let top = view_b.latest().expect("still verified");
    assert_eq!(sides(&top).1, levels(&[("0.4000", "4.00")]));
    assert_eq!((top.updates(), top.venue_time()), (2, at(11)));

    // A gap on the sid: the resync asks for both markets' snapshots.
    exchange.skip_seq("A", 2);
    exchange.publish("A", kalshi_delta("0.0800", "1.00", "yes", 12));
    next_data(&mut book, &mut signals).await;
    let mut resent = Vec::new();
    for _ in 0..2 {
        let snapshot = next_data(&mut book, &mut signals).await;
        assert_eq!(snapshot["type"], "orderbook_snapshot");
        resent.push(
            snapshot["msg"]["market_ticker"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    resent.sort();
    assert_eq!(resent, ["A", "B"]);
    let asked: Vec<Value> = exchange
        .received()
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.text).ok())
        .filter(|c| c["params"]["action"] == "get_snapshot")
        .map(|c| c["params"]["market_tickers"].clone())
        .collect();
    assert_eq!(asked, [json!(["A", "B"])]);
    assert_eq!(view_a.latest().map(|t| t.updates()), Some(1));
    assert_eq!(
        view_b.latest().map(|t| sides(&t).1),
        Some(levels(&[("0.4000", "5.00")])),
        "B is the venue's book again"
    );
    assert!(matches!(signals[..], [Update::Gap { .. }]), "{signals:?}");

    // delete_markets: B's book goes with the `ok`; A's stays.
    update_markets(&client, &sid, "delete_markets", &["B"]).await;
    assert!(view_b.latest().is_none(), "a deleted market shows no book");
    assert!(view_a.is_verified());
    exchange.publish("A", kalshi_delta("0.0800", "1.00", "yes", 13));
    next_data(&mut book, &mut signals).await;
    assert!(view_a.is_verified());
    assert_eq!(signals.len(), 1, "{signals:?}");
    client.close().await.unwrap();
    exchange.shutdown().await;
}

#[tokio::test]
async fn added_markets_get_books_and_deleted_markets_drop_them() {
    added_and_deleted_markets(false).await;
}

#[tokio::test]
async fn an_added_markets_snapshot_before_the_ok_verifies_it() {
    added_and_deleted_markets(true).await;
}

#[tokio::test]
async fn an_early_snapshot_that_cannot_apply_is_signalled_with_the_next_frame() {
    // The early snapshot has a price above $1: the book refuses it. The
    // session delivered its stashed copy with no signal, so the signal
    // rides on the sid's next data frame, and the resync verifies the book.
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    exchange.set_kalshi_snapshots_first(true);
    exchange.set_kalshi_book("A", &[("1.5000", "1.00")], &[]);
    let (client, view, mut book) = setup(&exchange, |c| c).await;
    let mut signals = Vec::new();
    assert_eq!(
        next_data(&mut book, &mut signals).await["type"],
        "orderbook_snapshot"
    );
    assert!(
        view.latest().is_none(),
        "a refused snapshot verifies nothing"
    );
    assert!(signals.is_empty(), "{signals:?}");
    exchange.set_kalshi_book("A", &[("0.5000", "2.00")], &[]);
    exchange.publish("A", kalshi_delta("0.5000", "1.00", "yes", 1));
    assert_eq!(
        next_data(&mut book, &mut signals).await["type"],
        "orderbook_delta"
    );
    let snapshot = next_data(&mut book, &mut signals).await;
    assert_eq!(snapshot["type"], "orderbook_snapshot");
    assert!(
        matches!(
            signals[..],
            [Update::BookBreak(BookBreak::Unusable {
                reason: "a price is outside [0, 1] dollars"
            })]
        ),
        "{signals:?}"
    );
    let top = view.latest().expect("the resync's snapshot verifies it");
    assert_eq!(sides(&top).1, levels(&[("0.5000", "2.00")]));
    assert_eq!(get_snapshots(&exchange.received()), 1);
    client.close().await.unwrap();
    exchange.shutdown().await;
}

/// The `market_tickers` of every `subscribe` the venue read, in order.
fn subscribed_markets(received: &[Received]) -> Vec<Value> {
    received
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.text).ok())
        .filter(|c| c["cmd"] == "subscribe")
        .map(|c| c["params"]["market_tickers"].clone())
        .collect()
}

/// Drops the connection and returns the snapshots the replayed
/// subscription brought, by market (sorted), once `count` came.
async fn reconnect_and_take_snapshots(
    exchange: &Exchange,
    book: &mut Subscription,
    signals: &mut Vec<Update>,
    count: usize,
) -> Vec<String> {
    exchange.abort_all();
    let mut markets = Vec::new();
    while markets.len() < count {
        let frame = next_data(book, signals).await;
        assert_eq!(frame["type"], "orderbook_snapshot", "{frame}");
        markets.push(frame["msg"]["market_ticker"].as_str().unwrap().to_owned());
    }
    markets.sort();
    assert!(
        signals
            .iter()
            .any(|s| matches!(s, Update::Resubscribed { .. })),
        "{signals:?}"
    );
    markets
}

#[tokio::test]
async fn an_added_market_is_subscribed_again_after_a_reconnect() {
    // The bug: the session replayed the topic as first subscribed (A only),
    // so B's data silently stopped after a reconnect.
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    exchange.set_kalshi_book("B", &[("0.4000", "5.00")], &[]);
    let (client, view_a, mut book) = setup(&exchange, |c| c).await;
    let view_b = client.book_views().unwrap().watch("B", 10);
    let mut signals = Vec::new();
    let sid = next_data(&mut book, &mut signals).await["sid"].clone();
    update_markets(&client, &sid, "add_markets", &["B"]).await;
    next_data(&mut book, &mut signals).await; // B's snapshot
    assert!(view_b.is_verified());

    exchange.set_kalshi_book("B", &[("0.3000", "2.00")], &[]);
    let resent = reconnect_and_take_snapshots(&exchange, &mut book, &mut signals, 2).await;
    assert_eq!(resent, ["A", "B"]);
    assert_eq!(
        subscribed_markets(&exchange.received()),
        [json!(["A"]), json!(["A", "B"])],
        "the replayed subscribe names the added market"
    );
    // B's data flows again, and its book is the venue's.
    exchange.publish("B", kalshi_delta("0.3000", "1.00", "yes", 21));
    let delta = next_data(&mut book, &mut signals).await;
    assert_eq!(delta["msg"]["market_ticker"], "B");
    let top = view_b
        .latest()
        .expect("B verified again after the reconnect");
    assert_eq!(sides(&top), (levels(&[]), levels(&[("0.3000", "3.00")])));
    assert_eq!(top.venue_time(), at(21));
    assert!(view_a.is_verified());
    assert_eq!(signals.len(), 1, "only the resubscribe: {signals:?}");
    client.close().await.unwrap();
    exchange.shutdown().await;
}

#[tokio::test]
async fn a_deleted_market_stays_deleted_after_a_reconnect() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let (client, view_a, mut book) = setup(&exchange, |c| c).await;
    let view_b = client.book_views().unwrap().watch("B", 10);
    let mut signals = Vec::new();
    let sid = next_data(&mut book, &mut signals).await["sid"].clone();
    update_markets(&client, &sid, "add_markets", &["B"]).await;
    next_data(&mut book, &mut signals).await; // B's snapshot
    let ok = update_markets(&client, &sid, "delete_markets", &["A"]).await;
    assert_eq!(ok["msg"]["market_tickers"], json!(["B"]));
    assert!(view_a.latest().is_none());

    let resent = reconnect_and_take_snapshots(&exchange, &mut book, &mut signals, 1).await;
    assert_eq!(resent, ["B"]);
    assert_eq!(
        subscribed_markets(&exchange.received()),
        [json!(["A"]), json!(["B"])],
        "the replayed subscribe names the markets the venue held"
    );
    // A's delta (published first) never comes: B's is the next frame.
    exchange.publish("A", kalshi_delta("0.0800", "1.00", "yes", 31));
    exchange.publish("B", kalshi_delta("0.4000", "1.00", "yes", 32));
    let delta = next_data(&mut book, &mut signals).await;
    assert_eq!(delta["msg"]["market_ticker"], "B");
    assert!(view_a.latest().is_none(), "a deleted market gets no book");
    assert!(view_b.is_verified());
    client.close().await.unwrap();
    exchange.shutdown().await;
}

/// An item and, right after it, the views of markets A and B.
fn seen_with_views(
    item: &Result<Update, resilient_ws::Error>,
    a: &BookView,
    b: &BookView,
) -> String {
    let item = match item {
        Ok(Update::Data(frame)) => frame.as_text().unwrap_or_default().to_owned(),
        other => format!("{other:?}"),
    };
    let view = |v: &BookView| v.latest().map(|t| (sides(&t), t.updates(), t.venue_time()));
    format!("{item} | A {:?} | B {:?}", view(a), view(b))
}

#[tokio::test]
async fn a_recorded_add_markets_replays_to_the_same_items_and_books() {
    // Only the request's recordable params (sid, action, markets) may reach
    // the file; this one rides along in the same request and must not.
    const SECRET: &str = "tok-5ecret-in-request-params";
    let dir = scratch_dir("kalshi-add-markets");
    let recorder = Recorder::create(&dir, RecordOptions::default()).unwrap();
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    exchange.set_kalshi_book("B", &[("0.4000", "5.00")], &[("0.5500", "7.00")]);
    let (client, view_a, mut book) = setup(&exchange, |c| c.record(recorder.clone())).await;
    let view_b = client.book_views().unwrap().watch("B", 10);
    let mut live = Vec::new();
    let take = async |book: &mut Subscription| {
        let item = tokio::time::timeout(SOON, next(book))
            .await
            .expect("an item")
            .expect("the subscription goes on");
        let text = seen_with_views(&item, &view_a, &view_b);
        (item, text)
    };
    let (snapshot, text) = take(&mut book).await;
    live.push(text);
    let Ok(Update::Data(snapshot)) = snapshot else {
        panic!("{snapshot:?}")
    };
    let sid = serde_json::from_str::<Value>(snapshot.as_text().unwrap()).unwrap()["sid"].clone();
    client
        .request(Request::new(
            "update_subscription",
            Some(
                json!({"sids": [sid], "market_tickers": ["B"], "action": "add_markets",
                        "api_token": SECRET}),
            ),
        ))
        .await
        .unwrap();
    live.push(take(&mut book).await.1); // B's snapshot
    exchange.publish("B", kalshi_delta("0.4000", "-1.00", "yes", 41));
    live.push(take(&mut book).await.1);
    update_markets(&client, &sid, "delete_markets", &["A"]).await;
    exchange.publish("B", kalshi_delta("0.5500", "2.00", "no", 42));
    live.push(take(&mut book).await.1);
    assert!(
        live.last().unwrap().contains("| A None | B Some"),
        "B verified, A deleted: {live:?}"
    );
    client.close().await.unwrap();
    drop(book);
    let flushed = recorder.clone();
    tokio::task::spawn_blocking(move || flushed.flush())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recorder.stats().dropped, 0);
    let mut all = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let file = String::from_utf8_lossy(&all);
    assert!(
        file.contains("add_markets"),
        "the update's action is recorded"
    );
    assert!(!file.contains(SECRET), "the request's other params are not");

    let kalshi = Kalshi::new();
    let views = kalshi.book_views();
    let (replay_a, replay_b) = (views.watch("A", 10), views.watch("B", 10));
    let config = fast(&exchange.url()).build().unwrap();
    let mut replay = Replay::new(
        Recording::open(&dir).unwrap(),
        config,
        kalshi,
        Pace::AsFastAsPossible,
    );
    let mut replayed = Vec::new();
    let work = async {
        // Replay hands in the next input only once the items before it are
        // read, so each view is the one right after its item's frame.
        while let Some(SetItem { item, .. }) = futures::StreamExt::next(&mut replay).await {
            replayed.push(seen_with_views(&item, &replay_a, &replay_b));
        }
    };
    tokio::time::timeout(SOON, work)
        .await
        .expect("the replay ends");
    assert_eq!(live, replayed, "the same items and books");
    assert_eq!(replay.stats().dropped, 0);
    let _ = std::fs::remove_dir_all(&dir);
    exchange.shutdown().await;
}

/// PROTOCOLS.md reads `send_initial_snapshot: true` as the way to ask for a
/// snapshot on book channels; a venue that sends one only when asked still
/// gives a plain `orderbook_delta` topic a verified book, because the adapter
/// asks. Before, it did not, and the view stayed unverified for good.
#[tokio::test]
async fn a_book_subscribe_asks_for_its_snapshot() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    exchange.set_kalshi_snapshots_on_request();
    let config = fast(&exchange.url()).build().unwrap();
    let client = Client::connect(config, Kalshi::new()).await.unwrap().0;
    let view = client.book_views().expect("book views").watch("A", 10);
    let mut book = client
        .subscribe(Topic::new("orderbook_delta").symbol("A"))
        .await
        .unwrap();
    let mut signals = Vec::new();
    assert_eq!(
        next_data(&mut book, &mut signals).await["type"],
        "orderbook_snapshot"
    );
    assert!(
        view.latest().is_some(),
        "verified by the snapshot it asked for"
    );
    client.close().await.unwrap();
}
