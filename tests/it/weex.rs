//! The WEEX adapter (V3 wire shape) against the test server: requests with
//! ids and acks matched by id alone, every push kind routed by `e` and `s`,
//! refusals classified by code, and the server heartbeat answered so the
//! venue keeps the connection.

use crate::support;

use std::time::Duration;

use tokio::time::Instant;

use resilient_ws::protocol::weex::PONG_ID_BASE;
use resilient_ws::{
    BookBreak, Client, ConfigBuilder, Error, Event, Messages, Pool, PoolOptions, Subscription,
    Topic, Update, VenueErrorKind, Weex,
};
use serde_json::{json, Value};
use support::op_venue::{self, next_data, Dialect, OpVenue};
use support::{next, wait_event, wait_until, weex};

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
    // V3 chains update ids: a push's `U` is the previous push's `u`.
    assert_eq!(update["U"], snapshot["u"]);
    assert_eq!(next_data(&mut trade).await["E"], 1);
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
    assert_eq!(next_data(&mut orders).await["E"], 3);
    assert_eq!(next_data(&mut fill).await["E"], 4);
}

#[tokio::test]
async fn documented_refusals_and_error_codes_are_classified() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    {
        let mut state = venue.state();
        // V3's own refusal: no code, an `INVALID_ARGUMENT` message.
        let refused = weex::example("subscribe_refused");
        let msg = refused["msg"].as_str().unwrap().to_owned();
        state.rejects.insert("NOPEUSDT".into(), (0, msg));
        state
            .rejects
            .insert("AUTH".into(), (-1047, "Unauthorized".into()));
        state
            .rejects
            .insert("DOWN".into(), (-1054, "System error".into()));
    }
    let (client, _messages) = connect(&venue, |b| b).await;
    for (symbol, kind, code) in [
        ("NOPEUSDT", VenueErrorKind::Permanent, None),
        ("AUTH", VenueErrorKind::Permanent, Some(-1047)),
        ("DOWN", VenueErrorKind::Transient, Some(-1054)),
    ] {
        match client.subscribe(Topic::new("ticker").symbol(symbol)).await {
            Err(Error::Subscription { error, .. }) => {
                assert_eq!(error.kind, kind, "{symbol}");
                assert_eq!(error.code, code, "{symbol}");
                assert_eq!(
                    error.retry_after(),
                    None,
                    "{symbol}: no V3 code documents a wait"
                );
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
    // Each answer is V3's `{"method":"PONG","id":N}` with a fresh id from the
    // heartbeat id space, which no request id reaches.
    let answers: Vec<Value> = venue
        .state()
        .received
        .iter()
        .filter_map(|(_, t)| serde_json::from_str::<Value>(t).ok())
        .filter(|v| v["method"] == "PONG")
        .collect();
    assert!(answers.len() >= 10);
    let ids: Vec<u64> = answers.iter().map(|a| a["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(ids.iter().all(|id| *id >= PONG_ID_BASE), "{ids:?}");
    let documented = weex::example("pong");
    for answer in &answers {
        let keys: Vec<&String> = answer.as_object().unwrap().keys().collect();
        let expected: Vec<&String> = documented.as_object().unwrap().keys().collect();
        assert_eq!(keys, expected, "{answer}");
    }
    weex::push(&venue, "ticker", "BTCUSDT", 1);
    assert_eq!(next_data(&mut sub).await["E"], 1);
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
    // The replayed subscribe gets a fresh snapshot, then updates flow.
    let snapshot = next_depth(&mut sub, "SNAPSHOT").await;
    assert_eq!(snapshot["l"], 200);
    weex::depth_update(&venue, "ETHUSDT", 200, &[], &[("100.6", "0")]);
    let update = next_depth(&mut sub, "CHANGED").await;
    assert_eq!(update["U"], snapshot["u"]);
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
    assert_eq!(next_data(&mut live[0]).await["E"], 3);
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

/// The keys of a JSON value and the JSON type of each, recursively (an
/// array's first element stands for all): what "the same shape" means.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(items) => json!([items.first().map(shape)]),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

#[test]
fn the_test_venue_speaks_the_documented_shapes() {
    // Every message the test venue sends has the shape of the documented or
    // recorded example in tests/data/weex: it cannot drift without failing here.
    let pushes = [
        ("ticker", "ticker"),
        ("trade", "trade"),
        ("bookTicker", "bookTicker"),
        ("kline_1m_LAST_PRICE", "kline"),
        ("account", "account"),
        ("orders", "orders"),
        ("fill", "fill"),
        ("positions", "positions"),
    ];
    for (stream, example) in pushes {
        let symbol = if stream.contains('_')
            || !["account", "orders", "fill", "positions"].contains(&stream)
        {
            "ETHUSDT"
        } else {
            ""
        };
        let ours = weex::row_frame(stream, symbol, 7);
        let documented = weex::example(example);
        assert_eq!(shape(&ours), shape(&documented), "{stream}");
        assert_eq!(ours["e"], documented["e"], "{stream}");
    }
    // Depth: a snapshot and a CHANGED push.
    let book = support::op_venue::default_book();
    let snapshot = weex::depth_frame("ETHUSDT", 15, &book, 0, None);
    assert_eq!(shape(&snapshot), shape(&weex::example("depthSnapshot")));
    assert_eq!(
        (&snapshot["e"], &snapshot["d"]),
        (&json!("depthSnapshot"), &json!("SNAPSHOT"))
    );
    let changed = weex::depth_frame(
        "ETHUSDT",
        15,
        &book,
        0,
        Some((&[("1", "0")], &[("2", "1")])),
    );
    assert_eq!(shape(&changed), shape(&weex::example("depth")));
    assert_eq!(
        (&changed["e"], &changed["d"]),
        (&json!("depth"), &json!("CHANGED"))
    );
    // Heartbeats, greeting, replies.
    assert_eq!(
        shape(&weex::ping(false, 1)),
        shape(&weex::example("ping_public"))
    );
    assert_eq!(
        shape(&weex::ping(true, 1)),
        shape(&weex::example("ping_private"))
    );
    assert_eq!(
        shape(&weex::greeting(1)),
        shape(&weex::example("connected"))
    );
    let mut state = support::op_venue::State::default();
    let refused = weex::example("subscribe_refused");
    state.rejects.insert(
        "NOPEUSDT".into(),
        (0, refused["msg"].as_str().unwrap().to_owned()),
    );
    for (request, example) in [
        (
            json!({"method": "SUBSCRIBE", "params": ["ETHUSDT@ticker"], "id": 1}),
            "subscribe_ok",
        ),
        (
            json!({"method": "SUBSCRIBE", "params": ["NOPEUSDT@ticker"], "id": 1}),
            "subscribe_refused",
        ),
    ] {
        let replies = weex::on_request(&mut state, 1, &request);
        let reply: Value = serde_json::from_str(&replies[0]).unwrap();
        let documented = weex::example(example);
        let mut ours: Vec<&String> = reply.as_object().unwrap().keys().collect();
        let mut theirs: Vec<&String> = documented.as_object().unwrap().keys().collect();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "{example}");
        assert_eq!(reply["result"], documented["result"], "{example}");
    }
}

#[tokio::test]
async fn a_venue_answer_to_a_heartbeat_reply_never_acks_a_waiting_subscribe() {
    // Issue 19: every PONG went out as id 1; the venue answers a PONG on a
    // public connection by its id, so while subscribe 1 waited, that answer
    // acknowledged it. Here subscribe 1 is never answered: it must time out.
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    weex::heartbeats(&venue, Duration::from_millis(10), false);
    venue.state().drop_subscribes = true;
    let (client, _messages) =
        connect(&venue, |b| b.request_timeout(Duration::from_millis(500))).await;
    let result = client
        .subscribe(Topic::new("ticker").symbol("BTCUSDT"))
        .await;
    let pongs = venue.state().pongs.clone();
    assert!(!pongs.is_empty(), "heartbeats were answered meanwhile");
    assert_eq!(venue.ops("SUBSCRIBE")[0]["id"], 1);
    assert!(
        matches!(result, Err(Error::Timeout { .. })),
        "acked by a heartbeat answer: {result:?}"
    );
}

#[tokio::test]
async fn private_heartbeats_are_answered_and_the_venue_keeps_the_connection() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    weex::heartbeats(&venue, Duration::from_millis(20), true);
    let url = format!("{}/v3/ws/private", venue.url());
    let config = fast(&url).build().unwrap();
    let (client, _messages) = Client::connect(config, Weex::new()).await.unwrap();
    let mut orders = client.subscribe(Topic::new("orders")).await.unwrap();
    assert_eq!(venue.state().private_conns.len(), 1, "a private connection");
    wait_until("ten answered private pings", || {
        venue.state().pongs.len() >= 10
    })
    .await;
    assert_eq!(
        venue.handshakes(),
        1,
        "every type:ping was answered in time"
    );
    weex::push(&venue, "orders", "", 5);
    assert_eq!(next_data(&mut orders).await["E"], 5);
}

#[tokio::test]
async fn snapshot_pushes_reach_their_subscriptions_and_the_greeting_is_no_data() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    let (client, _messages) = connect(&venue, |b| b).await;
    let mut trade = client
        .subscribe(Topic::new("trade").symbol("ETHUSDT"))
        .await
        .unwrap();
    let mut last = client
        .subscribe(Topic::new("kline").symbol("ETHUSDT"))
        .await
        .unwrap();
    // A client holds one subscription per channel and symbol: a second kline
    // stream of the symbol names its stream as the channel.
    let mut mark = client
        .subscribe(Topic::new("kline_1h_MARK_PRICE").symbol("ETHUSDT"))
        .await
        .unwrap();
    let mut book_ticker = client
        .subscribe(Topic::new("bookTicker").symbol("ETHUSDT"))
        .await
        .unwrap();
    weex::push(&venue, "bookTicker", "ETHUSDT", 5);
    let top = next_data(&mut book_ticker).await;
    assert_eq!(
        (top["e"].clone(), top["E"].clone()),
        (json!("bookTicker"), json!(5))
    );
    weex::push_snapshot(&venue, "trade", "ETHUSDT", 1);
    weex::push_snapshot(&venue, "kline_1h_MARK_PRICE", "ETHUSDT", 2);
    weex::push_snapshot(&venue, "kline_1m_LAST_PRICE", "ETHUSDT", 3);
    weex::push(&venue, "kline_1h_MARK_PRICE", "ETHUSDT", 4);
    let first = next_data(&mut trade).await;
    assert_eq!(
        (first["e"].clone(), first["E"].clone()),
        (json!("tradeSnapshot"), json!(1))
    );
    let first = next_data(&mut mark).await;
    assert_eq!(
        (first["e"].clone(), first["E"].clone()),
        (json!("klineSnapshot"), json!(2))
    );
    assert_eq!(next_data(&mut mark).await["E"], 4);
    assert_eq!(next_data(&mut last).await["E"], 3);
    // The greeting every socket got is control, not data nor unroutable.
    let stats = client.stats();
    assert_eq!(stats.unroutable, 0, "{stats:?}");
    assert!(stats.control >= 1, "{stats:?}");
}

#[tokio::test]
async fn a_break_in_the_depth_update_ids_is_signalled_and_only_that_book_resyncs() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    let (client, _messages) = connect(&venue, |b| b).await;
    let mut events = client.events();
    let mut eth = client
        .subscribe(Topic::new("depth").symbol("ETHUSDT"))
        .await
        .unwrap();
    let mut btc = client
        .subscribe(Topic::new("depth").symbol("BTCUSDT"))
        .await
        .unwrap();
    next_depth(&mut eth, "SNAPSHOT").await;
    next_depth(&mut btc, "SNAPSHOT").await;
    weex::depth_update(&venue, "ETHUSDT", 15, &[("100.4", "2")], &[]);
    next_depth(&mut eth, "CHANGED").await;
    // One push is lost: the next one's `U` is not the previous `u`.
    venue.state().gap.insert("ETHUSDT".into());
    weex::depth_update(&venue, "ETHUSDT", 15, &[("100.4", "3")], &[]);
    next_depth(&mut eth, "CHANGED").await;
    match next(&mut eth).await {
        Some(Ok(Update::BookBreak(BookBreak::Discontinuity { expected, got }))) => {
            assert_eq!(got, expected + 5, "U skipped past the previous u")
        }
        other => panic!("expected the break signalled in-band, got {other:?}"),
    }
    let resynced = wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    match resynced {
        Event::Resubscribed { client_id, .. } => assert_eq!(client_id, eth.client_id()),
        other => panic!("{other:?}"),
    }
    // A fresh snapshot starts a new chain, which holds again.
    next_depth(&mut eth, "SNAPSHOT").await;
    weex::depth_update(&venue, "ETHUSDT", 15, &[("100.4", "4")], &[]);
    next_depth(&mut eth, "CHANGED").await;
    assert_eq!(client.stats().book_breaks, 1);
    // The other book never noticed.
    weex::depth_update(&venue, "BTCUSDT", 15, &[("100", "1")], &[]);
    next_depth(&mut btc, "CHANGED").await;
    let subscribes: Vec<Value> = venue.ops("SUBSCRIBE");
    let btc_subscribes = subscribes
        .iter()
        .filter(|r| r["params"] == json!(["BTCUSDT@depth15"]))
        .count();
    assert_eq!(btc_subscribes, 1);
    assert_eq!(subscribes.len(), 3, "ETH, BTC, and ETH again");
}

#[tokio::test]
async fn a_delisted_symbols_empty_snapshot_is_delivered_as_data() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    venue.state().delisted.insert("OLDUSDT".into());
    let (client, _messages) = connect(&venue, |b| b).await;
    let mut old = client
        .subscribe(Topic::new("depth").symbol("OLDUSDT"))
        .await
        .unwrap();
    let snapshot = next_depth(&mut old, "SNAPSHOT").await;
    assert_eq!(
        (snapshot["U"].clone(), snapshot["u"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(
        (snapshot["b"].clone(), snapshot["a"].clone()),
        (json!([]), json!([]))
    );
    assert_eq!(client.stats().book_breaks, 0);
}

#[tokio::test]
async fn six_refusals_close_with_1007_and_the_client_reconnects_the_rest_by_default() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    let refused = weex::example("subscribe_refused");
    let msg = refused["msg"].as_str().unwrap().to_owned();
    for i in 0..weex::REFUSALS_BEFORE_CLOSE {
        venue
            .state()
            .rejects
            .insert(format!("BAD{i}"), (0, msg.clone()));
    }
    // The default rule is the adapter's: WEEX's 1007 reconnects.
    let (client, _messages) = connect(&venue, |b| b).await;
    let mut events = client.events();
    let mut good = client
        .subscribe(Topic::new("ticker").symbol("ETHUSDT"))
        .await
        .unwrap();
    for i in 0..weex::REFUSALS_BEFORE_CLOSE {
        match client
            .subscribe(Topic::new("ticker").symbol(format!("BAD{i}")))
            .await
        {
            Err(Error::Subscription { error, .. }) => {
                assert_eq!(error.kind, VenueErrorKind::Permanent)
            }
            other => panic!("BAD{i}: {other:?}"),
        }
    }
    // The sixth refusal closed the socket with 1007; the client came back
    // and replayed only the accepted subscription.
    let closed = wait_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await;
    assert!(format!("{closed:?}").contains("1007"), "{closed:?}");
    wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    assert_eq!(venue.handshakes(), 2);
    let replayed: Vec<Value> = venue.ops("SUBSCRIBE");
    assert_eq!(
        replayed.last().unwrap()["params"],
        json!(["ETHUSDT@ticker"]),
        "{replayed:?}"
    );
    weex::push(&venue, "ticker", "ETHUSDT", 9);
    assert_eq!(next_data(&mut good).await["E"], 9);
}

#[tokio::test]
async fn public_connections_send_the_default_user_agent_or_the_one_set() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    let (client, _messages) = connect(&venue, |b| b).await;
    client.close().await.unwrap();
    let (client, _messages) = connect(&venue, |b| b.user_agent("my-desk/2.1")).await;
    client.close().await.unwrap();
    assert_eq!(
        venue.state().user_agents,
        [
            Some(resilient_ws::DEFAULT_USER_AGENT.to_owned()),
            Some("my-desk/2.1".to_owned())
        ]
    );
    assert_eq!(
        resilient_ws::DEFAULT_USER_AGENT,
        concat!("resilient-ws/", env!("CARGO_PKG_VERSION"))
    );
    // Without one, WEEX refuses a public handshake.
    let config = fast(&venue.url())
        .no_user_agent()
        .backoff(
            resilient_ws::Backoff::new(Duration::from_millis(1), Duration::from_millis(2))
                .max_attempts(Some(2)),
        )
        .build()
        .unwrap();
    let refused = Client::connect(config, Weex::new()).await;
    assert!(refused.is_err(), "a public handshake without User-Agent");
    assert_eq!(venue.handshakes(), 2, "no third connection was accepted");
    assert_eq!(venue.state().user_agents[2..], [None, None]);
}
