//! The WEEX adapter (V3 wire shape) against the test server: requests with
//! ids and acks matched by id alone, every push kind routed by `e` and `s`,
//! refusals classified by code, and the server heartbeat answered so the
//! venue keeps the connection.

use crate::support;

use std::time::Duration;

use tokio::time::Instant;

use resilient_ws::{
    Client, ConfigBuilder, Error, Event, Messages, Pool, PoolOptions, Subscription, Topic, Update,
    VenueErrorKind, Weex,
};
use serde_json::{json, Value};
use support::op_venue::{self, next_data, Dialect, OpVenue};
use support::{wait_event, wait_until, weex};

const SEED: u64 = 5;

fn fast(url: &str) -> ConfigBuilder {
    op_venue::fast(url, SEED)
}

async fn connect(
    venue: &OpVenue,
    b: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> (Client, Messages) {
    op_venue::connect(venue, SEED, Weex::new(), b).await
}

/// The next data frame of `sub` whose `d` is `kind` (depth snapshots and
/// updates), skipping others.
async fn next_depth(sub: &mut Subscription, kind: &str) -> Value {
    for _ in 0..10 {
        let frame = next_data(sub).await;
        if frame["d"] == kind {
            return frame;
        }
    }
    panic!("no {kind} depth frame");
}

#[tokio::test]
async fn ticker_depth_and_trades_are_acked_by_id_and_routed() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    let (client, _messages) = connect(&venue, |b| b).await;
    let mut ticker = client
        .subscribe(Topic::new("ticker").symbol("BTCUSDT"))
        .await
        .unwrap();
    let mut depth = client
        .subscribe(Topic::new("depth").symbol("BTCUSDT"))
        .await
        .unwrap();
    let mut trade = client
        .subscribe(Topic::new("trade").symbol("BTCUSDT"))
        .await
        .unwrap();
    let requests = venue.ops("SUBSCRIBE");
    let params: Vec<&Value> = requests.iter().map(|r| &r["params"]).collect();
    assert_eq!(
        params,
        [
            &json!(["BTCUSDT@ticker"]),
            &json!(["BTCUSDT@depth15"]),
            &json!(["BTCUSDT@trade"])
        ]
    );
    let ids: Vec<u64> = requests.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // Depth: the snapshot the server sends after the ack, then an update.
    let snapshot = next_depth(&mut depth, "SNAPSHOT").await;
    assert_eq!(
        (snapshot["s"].clone(), snapshot["l"].clone()),
        (json!("BTCUSDT"), json!(15))
    );
    weex::push(&venue, "trade", "BTCUSDT", 1);
    weex::push(&venue, "ticker", "BTCUSDT", 2);
    weex::depth_update(&venue, "BTCUSDT", 15, &[("100.4", "2")], &[]);
    let update = next_depth(&mut depth, "CHANGED").await;
    assert_eq!(update["b"], json!([["100.4", "2"]]));
    assert_eq!(update["U"], json!(snapshot["u"].as_i64().unwrap() + 1));
    assert_eq!(next_data(&mut trade).await["d"][0]["n"], 1);
    // The payload span is the push's rows, `d`.
    match support::next(&mut ticker).await {
        Some(Ok(Update::Data(frame))) => {
            let whole: Value = serde_json::from_str(frame.as_text().unwrap()).unwrap();
            assert_eq!(whole["e"], "ticker");
            let rows: Value = serde_json::from_slice(frame.payload()).unwrap();
            assert_eq!(rows, whole["d"]);
        }
        other => panic!("{other:?}"),
    }
    drop(trade);
    wait_until("unsubscribe sent", || venue.ops("UNSUBSCRIBE").len() == 1).await;
    let unsubscribe = &venue.ops("UNSUBSCRIBE")[0];
    assert_eq!(unsubscribe["params"], json!(["BTCUSDT@trade"]));
    assert!(unsubscribe["id"].as_u64().unwrap() > ids[2]);
}

#[tokio::test]
async fn private_channels_are_subscribed_by_name_and_routed_by_type() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    let (client, _messages) = connect(&venue, |b| b).await;
    let mut orders = client.subscribe(Topic::new("orders")).await.unwrap();
    let mut fill = client.subscribe(Topic::new("fill")).await.unwrap();
    assert_eq!(venue.ops("SUBSCRIBE")[0]["params"], json!(["orders"]));
    weex::push(&venue, "fill", "", 4);
    weex::push(&venue, "orders", "", 3);
    assert_eq!(next_data(&mut orders).await["d"][0]["n"], 3);
    assert_eq!(next_data(&mut fill).await["d"][0]["n"], 4);
}

#[tokio::test]
async fn documented_error_codes_are_classified() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    {
        let mut state = venue.state();
        state
            .rejects
            .insert("AUTH".into(), (40002, "invalid sign".into()));
        state
            .rejects
            .insert("BUSY".into(), (40029, "too many requests".into()));
        state
            .rejects
            .insert("DOWN".into(), (50001, "system busy".into()));
    }
    let (client, _messages) = connect(&venue, |b| b).await;
    for (symbol, kind, retry) in [
        ("AUTH", VenueErrorKind::Permanent, false),
        ("BUSY", VenueErrorKind::RateLimited, true),
        ("DOWN", VenueErrorKind::Transient, false),
    ] {
        match client.subscribe(Topic::new("ticker").symbol(symbol)).await {
            Err(Error::Subscription { error, .. }) => {
                assert_eq!(error.kind, kind, "{symbol}");
                assert_eq!(error.retry_after().is_some(), retry, "{symbol}");
            }
            other => panic!("{symbol}: {other:?}"),
        }
    }
    assert!(client
        .subscribe(Topic::new("ticker").symbol("OK"))
        .await
        .is_ok());
}

#[tokio::test]
async fn server_heartbeats_are_answered_and_the_venue_keeps_the_connection() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    weex::heartbeats(&venue, Duration::from_millis(20), true);
    let (client, _messages) = connect(&venue, |b| b).await;
    let mut sub = client
        .subscribe(Topic::new("ticker").symbol("BTCUSDT"))
        .await
        .unwrap();
    wait_until("ten answered pings", || venue.state().pongs.len() >= 10).await;
    assert_eq!(venue.handshakes(), 1, "every ping was answered in time");
    // Each answer is the V3 `{"method":"PONG","id":1}`.
    let answers: Vec<Value> = venue
        .state()
        .received
        .iter()
        .filter_map(|(_, t)| serde_json::from_str::<Value>(t).ok())
        .filter(|v| v["method"] == "PONG")
        .collect();
    assert!(answers.len() >= 10);
    assert!(
        answers
            .iter()
            .all(|a| *a == json!({"method": "PONG", "id": 1})),
        "{answers:?}"
    );
    weex::push(&venue, "ticker", "BTCUSDT", 1);
    assert_eq!(next_data(&mut sub).await["d"][0]["n"], 1);
}

#[tokio::test]
async fn swallowed_subscribes_time_out_and_a_drop_resubscribes() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    let (client, _messages) =
        connect(&venue, |b| b.request_timeout(Duration::from_millis(300))).await;
    let mut events = client.events();
    let mut sub = client
        .subscribe(Topic::new("depth").symbol("ETHUSDT").param("level", 200))
        .await
        .unwrap();
    venue.state().drop_subscribes = true;
    assert!(client
        .subscribe(Topic::new("depth").symbol("LOST"))
        .await
        .is_err());
    venue.state().drop_subscribes = false;
    next_depth(&mut sub, "SNAPSHOT").await;
    venue.drop_all();
    wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    // The replayed subscribe gets a fresh snapshot, then updates flow; a
    // gap (an update id skipped) reaches the consumer as sent.
    let snapshot = next_depth(&mut sub, "SNAPSHOT").await;
    assert_eq!(snapshot["l"], 200);
    venue.state().gap.insert("ETHUSDT".into());
    weex::depth_update(&venue, "ETHUSDT", 200, &[], &[("100.6", "0")]);
    let update = next_depth(&mut sub, "CHANGED").await;
    assert_eq!(update["U"], json!(snapshot["u"].as_i64().unwrap() + 2));
}

#[tokio::test]
async fn a_client_that_does_not_answer_heartbeats_is_dropped() {
    // The fault knob proves the answers matter: a raw client never replies.
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    weex::heartbeats(&venue, Duration::from_millis(10), true);
    let config = fast(&venue.url()).build().unwrap();
    let (client, _messages) = Client::connect(config, resilient_ws::RawProtocol)
        .await
        .unwrap();
    let mut events = client.events();
    wait_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await;
    assert!(venue.state().pongs.is_empty());
}

/// Spends the connection's whole window: 119 subscribe/unsubscribe cycles
/// and two more subscribes, 240 operations (WEEX documents 240 per hour per
/// connection). Returns the two live subscriptions and the instant before the
/// first operation.
async fn spend_the_window(client: &Client, venue: &OpVenue) -> (Vec<Subscription>, Instant) {
    let started = Instant::now();
    for n in 0..119 {
        let sub = client
            .subscribe(Topic::new("ticker").symbol(format!("S{n}")))
            .await
            .unwrap();
        sub.unsubscribe().await.unwrap();
    }
    let mut live = Vec::new();
    for channel in ["ticker", "trade"] {
        live.push(
            client
                .subscribe(Topic::new(channel).symbol("LIVE"))
                .await
                .unwrap(),
        );
    }
    wait_until("240 operations written", || {
        venue.ops("SUBSCRIBE").len() + venue.ops("UNSUBSCRIBE").len() == 240
    })
    .await;
    assert_eq!(venue.ops("SUBSCRIBE").len(), 121);
    (live, started)
}

#[tokio::test(start_paused = true)]
async fn the_241st_operation_in_an_hour_waits_for_the_window_and_others_go_ahead() {
    // Nothing else on the clock: no pings. While a frame is on its way, the
    // test polls (`wait_until`) so the paused clock only moves in small steps.
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    let (client, _messages) =
        connect(&venue, |b| b.ping_interval(Duration::from_secs(86_400))).await;
    let (_live, started) = spend_the_window(&client, &venue).await;
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );

    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.subscribe(Topic::new("depth").symbol("NEXT")).await }
    });
    // A one-off frame is not an operation: it goes at once.
    client.send(r#"{"method":"HELLO","id":0}"#).await.unwrap();
    wait_until("the one-off frame", || venue.ops("HELLO").len() == 1).await;
    // Just before an hour has passed since the first operation, the
    // subscribe still waits (neither refused nor dropped)...
    tokio::time::sleep_until(started + Duration::from_secs(3599)).await;
    assert_eq!(venue.ops("SUBSCRIBE").len(), 121, "the window is spent");
    assert!(!waiting.is_finished());
    // ...and goes once the first operation has left the window.
    wait_until("the 241st operation", || {
        venue.ops("SUBSCRIBE").len() == 122
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(3600),
        "{:?}",
        started.elapsed()
    );
    wait_until("its ack", || waiting.is_finished()).await;
    assert!(waiting.await.unwrap().is_ok());
    assert_eq!(venue.handshakes(), 1);
}

#[tokio::test]
async fn a_new_connection_starts_a_fresh_window_and_its_replay_spends_it() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    let (client, _messages) = connect(&venue, |b| b).await;
    let mut events = client.events();
    let (mut live, _) = spend_the_window(&client, &venue).await;
    venue.drop_all();
    wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    // The replay (two operations of the new window) and a new subscribe go
    // at once: WEEX counts per connection.
    let next = tokio::time::timeout(
        support::SOON,
        client.subscribe(Topic::new("depth").symbol("NEXT")),
    )
    .await
    .expect("not held back by the old connection's window");
    assert!(next.is_ok(), "{next:?}");
    let on_second = venue
        .state()
        .received
        .iter()
        .filter(|(conn, text)| *conn == 2 && text.contains("SUBSCRIBE"))
        .count();
    assert_eq!(on_second, 3);
    weex::push(&venue, "ticker", "LIVE", 3);
    assert_eq!(next_data(&mut live[0]).await["d"][0]["n"], 3);
}

#[tokio::test]
async fn a_pool_places_around_a_connection_whose_window_holds_requests_back() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    let options = PoolOptions::default().connect_spacing(Duration::from_millis(1));
    let pool = Pool::new(fast(&venue.url()).build().unwrap(), Weex::new, options).unwrap();
    for n in 0..120 {
        let sub = pool
            .subscribe(Topic::new("ticker").symbol(format!("S{n}")))
            .await
            .unwrap();
        sub.unsubscribe().await.unwrap();
    }
    wait_until("240 operations written", || {
        venue.ops("SUBSCRIBE").len() + venue.ops("UNSUBSCRIBE").len() == 240
    })
    .await;
    assert_eq!(pool.connections(), 1);
    // The first member's window is spent but holds nothing back yet: the
    // next subscribe goes there and waits...
    let held = tokio::spawn({
        let pool = pool.clone();
        async move { pool.subscribe(Topic::new("depth").symbol("HELD")).await }
    });
    wait_until("a request held back", || {
        pool.stats().connections[0].stats.subscribe_ops_waiting == 1
    })
    .await;
    // ...and the one after opens a connection with a fresh window.
    let next = tokio::time::timeout(
        support::SOON,
        pool.subscribe(Topic::new("depth").symbol("NEXT")),
    )
    .await
    .expect("placed on a connection with budget");
    assert!(next.is_ok(), "{next:?}");
    assert_eq!((pool.connections(), venue.handshakes()), (2, 2));
    assert!(!held.is_finished());
    held.abort();
    drop(next);
    pool.close().await.unwrap();
}
