//! Durable subscriptions over the Kalshi-style protocol (issue 3): acks and
//! rejections, ids that survive reconnects, the early-frame stash, replay
//! pacing, per-subscription queues, sequence tracking and requests.

use crate::support;

use std::time::Duration;

use resilient_ws::{
    Backoff, Client, ClientId, Config, ConfigBuilder, Error, Event, Kalshi, Operation, Overflow,
    QueueOptions, Request, Subscription, SubscriptionOp, Topic, Update,
};
use serde_json::{json, Value};
use support::exchange::{AckMode, Exchange, Received, Venue};
use support::{next, wait_event, wait_until, SOON};

fn fast(url: &str) -> ConfigBuilder {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).seed(2))
        .idle_timeout(None)
        .rate_limit(1000, Duration::from_secs(1))
}

async fn kalshi(
    exchange: &Exchange,
    builder: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> Client {
    let config = builder(fast(&exchange.url()))
        .build()
        .expect("valid config");
    Client::connect(config, Kalshi::new())
        .await
        .expect("connects")
        .0
}

fn ticker(symbol: &str) -> Topic {
    Topic::new("ticker").symbol(symbol)
}

/// The next data frame's JSON, skipping signals.
async fn next_data(sub: &mut Subscription) -> Value {
    loop {
        match next(sub).await {
            Some(Ok(Update::Data(frame))) => {
                return serde_json::from_str(frame.as_text().unwrap()).unwrap()
            }
            Some(Ok(_)) => continue,
            other => panic!("expected data, got {other:?}"),
        }
    }
}

/// Subscribe requests the server received on connection `conn`, as ticker lists.
fn subscribes_on(received: &[Received], conn: u64) -> Vec<String> {
    received
        .iter()
        .filter(|r| r.conn == conn)
        .filter_map(|r| serde_json::from_str::<Value>(&r.text).ok())
        .filter(|v| v["cmd"] == "subscribe")
        .map(|v| {
            v["params"]["market_tickers"][0]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn subscribe_resolves_on_the_ack_and_routes_by_sid() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let client = kalshi(&exchange, |b| b).await;
    let mut a = client.subscribe(ticker("A")).await.unwrap();
    let mut b = client.subscribe(ticker("B")).await.unwrap();
    assert_ne!(a.client_id(), b.client_id());
    exchange.publish("B", json!({"price": 2}));
    exchange.publish("A", json!({"price": 1}));
    assert_eq!(next_data(&mut a).await["msg"]["price"], 1);
    assert_eq!(next_data(&mut b).await["msg"]["price"], 2);
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_rejection_is_a_typed_subscription_error_with_the_venue_code() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    exchange.reject("NOPE", "Unknown market ticker", 8);
    let client = kalshi(&exchange, |b| b).await;
    match client.subscribe(ticker("NOPE")).await {
        Err(Error::Subscription {
            op, req_id, error, ..
        }) => {
            assert_eq!(op, SubscriptionOp::Subscribe);
            assert!(req_id.is_some());
            assert_eq!(error.code, Some(8));
            assert_eq!(error.message, "Unknown market ticker");
        }
        other => panic!("{other:?}"),
    }
    // Others are unaffected.
    let mut ok = client.subscribe(ticker("OK")).await.unwrap();
    exchange.publish("OK", json!({"p": 1}));
    next_data(&mut ok).await;
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_missing_ack_is_a_subscribe_timeout() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    exchange.set_ack_mode(AckMode::Never);
    let client = kalshi(&exchange, |b| b.request_timeout(Duration::from_millis(300))).await;
    match client.subscribe(ticker("A")).await {
        Err(Error::Timeout {
            operation: Operation::Subscribe,
            timeout,
        }) => {
            assert_eq!(timeout, Duration::from_millis(300));
        }
        other => panic!("{other:?}"),
    }
    client.close().await.unwrap();
}

#[tokio::test]
async fn subscriptions_keep_their_stream_and_id_across_many_reconnects() {
    const RECONNECTS: u64 = 12;
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    // Twelve drops in quick succession look like a flapping server; lift the
    // attempt limit so this test is about re-mapping, not giving up.
    let client = kalshi(&exchange, |b| {
        b.backoff(
            Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).max_attempts(None),
        )
    })
    .await;
    let mut events = client.events();
    let symbols = ["S0", "S1", "S2", "S3", "S4"];
    let mut subs = Vec::new();
    for s in symbols {
        subs.push(client.subscribe(ticker(s)).await.unwrap());
    }
    let ids: Vec<ClientId> = subs.iter().map(Subscription::client_id).collect();
    // One subscription goes away before the reconnects: it must not be replayed.
    let gone = subs.remove(2);
    gone.unsubscribe().await.unwrap();
    let live: Vec<&str> = vec!["S0", "S1", "S3", "S4"];

    for round in 1..=RECONNECTS {
        exchange.abort_all();
        let conn = round + 1;
        assert!(exchange.wait_handshakes(conn, SOON).await);
        // Every live subscription is re-acknowledged on the new connection.
        for _ in 0..live.len() {
            wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
        }
        for (i, s) in live.iter().enumerate() {
            exchange.publish(s, json!({"round": round}));
            let value = next_data(&mut subs[i]).await;
            assert_eq!(value["msg"]["round"], round, "{s} in round {round}");
        }
        let received = exchange.received();
        assert_eq!(
            subscribes_on(&received, conn),
            live,
            "round {round}: each live subscription once, in order"
        );
    }
    let now_ids: Vec<ClientId> = subs.iter().map(Subscription::client_id).collect();
    assert_eq!(now_ids, vec![ids[0], ids[1], ids[3], ids[4]]);
    // Fresh sids on every connection (the server never reuses one).
    let stats = client.stats();
    assert_eq!(stats.reconnects, RECONNECTS);
    assert_eq!(stats.resubscribes, RECONNECTS * live.len() as u64);
    assert_eq!(stats.unroutable, 0);
    client.close().await.unwrap();
    let stats = client.stats();
    assert!(stats.is_balanced(), "{stats:?}");
}

#[tokio::test]
async fn subscribing_while_disconnected_queues_behind_the_replay() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let client = kalshi(&exchange, |b| {
        b.backoff(Backoff::new(Duration::from_millis(300), Duration::from_millis(300)).jitter(0.0))
    })
    .await;
    let mut events = client.events();
    let _first = client.subscribe(ticker("FIRST")).await.unwrap();
    exchange.abort_all();
    wait_event(&mut events, |e| {
        matches!(e, Event::ReconnectScheduled { .. })
    })
    .await;
    let mut late = client.subscribe(ticker("LATE")).await.unwrap();
    exchange.publish("LATE", json!({"x": 1}));
    assert_eq!(next_data(&mut late).await["msg"]["x"], 1);
    assert_eq!(
        subscribes_on(&exchange.received(), 2),
        vec!["FIRST", "LATE"]
    );
    client.close().await.unwrap();
}

#[tokio::test]
async fn frames_that_beat_their_ack_are_stashed_and_delivered_after_it() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    exchange.set_ack_mode(AckMode::DataFirst);
    let client = kalshi(&exchange, |b| b).await;
    let mut sub = client.subscribe(ticker("EARLY")).await.unwrap();
    let first = next_data(&mut sub).await;
    assert_eq!(
        first["seq"], 1,
        "the frame sent before the ack reached the stream"
    );
    let stats = client.stats();
    assert_eq!((stats.unroutable, stats.stashed), (0, 0));
    client.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_replay_respects_the_strict_rate_limit() {
    const SUBS: usize = 50;
    let window = Duration::from_secs(1);
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let config = Config::builder(exchange.url())
        .backoff(Backoff::immediate())
        .rate_limit(10, window)
        .idle_timeout(None)
        .request_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let (client, _messages) = Client::connect(config, Kalshi::new()).await.unwrap();
    let topics = (0..SUBS).map(|i| ticker(&format!("T{i:02}"))).collect();
    let subs = client.subscribe_many(topics).await.unwrap();
    assert!(subs.iter().all(Result::is_ok));
    let mut events = client.events();
    exchange.abort_all();
    for _ in 0..SUBS {
        wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    }
    let arrivals: Vec<tokio::time::Instant> = exchange
        .received()
        .into_iter()
        .filter(|r| r.conn == 2 && r.text.contains("\"subscribe\""))
        .map(|r| r.at)
        .collect();
    assert_eq!(arrivals.len(), SUBS);
    // No window of one second holds more than 10 of them.
    for (i, t) in arrivals.iter().enumerate() {
        let in_window = arrivals[i..]
            .iter()
            .filter(|u| u.duration_since(*t) < window)
            .count();
        assert!(
            in_window <= 10,
            "{in_window} resubscribes within {window:?} from #{i}"
        );
    }
    let span = arrivals[SUBS - 1].duration_since(arrivals[0]);
    assert!(
        span >= Duration::from_secs(4),
        "50 frames at 10/s span at least 4 s, got {span:?}"
    );
    client.close().await.unwrap();
}

/// Publishes `count` frames for `symbol` and waits until the client routed them.
async fn flood(exchange: &Exchange, client: &Client, symbol: &str, count: u64) {
    let before = client.stats().queues.routed;
    for n in 1..=count {
        exchange.publish(symbol, json!({"n": n}));
    }
    wait_until("frames routed", || {
        client.stats().queues.routed >= before + count
    })
    .await;
}

fn n_of(value: &Value) -> u64 {
    value["msg"]["n"].as_u64().unwrap()
}

async fn stalled(client: &Client, symbol: &str, overflow: Overflow) -> Subscription {
    let options = QueueOptions {
        capacity: Some(3),
        overflow: Some(overflow),
    };
    client
        .subscribe_with(ticker(symbol), options)
        .await
        .unwrap()
}

#[tokio::test]
async fn per_subscription_policies_with_a_stalled_consumer() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let client = kalshi(&exchange, |b| b.resync_on_gap(false)).await;
    let mut oldest = stalled(&client, "OLD", Overflow::DropOldest).await;
    let mut newest = stalled(&client, "NEW", Overflow::DropNewest).await;
    let mut error = stalled(&client, "ERR", Overflow::Error).await;
    let mut normal = client.subscribe(ticker("DEF")).await.unwrap();

    for symbol in ["OLD", "NEW", "ERR", "DEF"] {
        flood(&exchange, &client, symbol, 8).await;
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(n_of(&next_data(&mut oldest).await));
    }
    assert_eq!(got, vec![6, 7, 8]);
    got.clear();
    for _ in 0..3 {
        got.push(n_of(&next_data(&mut newest).await));
    }
    assert_eq!(got, vec![1, 2, 3]);
    match next(&mut error).await {
        Some(Err(Error::QueueFull {
            queue_size: 3,
            dropped_count: 5,
        })) => {}
        other => panic!("{other:?}"),
    }
    for want in 1..=3 {
        assert_eq!(n_of(&next_data(&mut error).await), want);
    }
    // The default (capacity 1024) kept everything.
    for want in 1..=8 {
        assert_eq!(n_of(&next_data(&mut normal).await), want);
    }
    for (sub, dropped) in [(&oldest, 5), (&newest, 5), (&error, 5), (&normal, 0)] {
        let s = sub.stats();
        assert_eq!(
            (s.routed, s.dropped, s.queued),
            (8, dropped, 0),
            "{:?}",
            sub.topic()
        );
        assert_eq!(s.routed, s.delivered + s.dropped + s.queued);
    }
    let stats = client.stats();
    assert!(stats.is_balanced(), "{stats:?}");
    client.close().await.unwrap();
}

#[tokio::test]
async fn block_ends_only_the_stalled_subscription_with_backpressure() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let client = kalshi(&exchange, |b| b).await;
    let mut events = client.events();
    let mut blocked = stalled(
        &client,
        "BLK",
        Overflow::Block {
            timeout: Duration::from_millis(200),
        },
    )
    .await;
    let mut other = client.subscribe(ticker("OTH")).await.unwrap();
    let blocked_id = blocked.client_id();
    for n in 1..=5 {
        exchange.publish("BLK", json!({"n": n}));
    }
    let ended = wait_event(
        &mut events,
        |e| matches!(e, Event::SubscriptionEnded { client_id, .. } if *client_id == blocked_id),
    )
    .await;
    assert!(matches!(
        ended,
        Event::SubscriptionEnded {
            error: Some(Error::Backpressure { .. }),
            ..
        }
    ));
    for want in 1..=3 {
        assert_eq!(n_of(&next_data(&mut blocked).await), want);
    }
    match next(&mut blocked).await {
        Some(Err(Error::Backpressure {
            channel,
            client_id,
            maxsize,
            server_id,
        })) => {
            assert_eq!(
                (channel.as_str(), client_id, maxsize),
                ("ticker:BLK", blocked_id, 3)
            );
            assert_ne!(server_id, "-");
        }
        other => panic!("{other:?}"),
    }
    assert!(next(&mut blocked).await.is_none());
    // The connection and the other subscription go on.
    exchange.publish("OTH", json!({"n": 1}));
    assert_eq!(n_of(&next_data(&mut other).await), 1);
    assert_eq!(exchange.handshakes(), 1);
    // The venue was told.
    assert!(
        exchange
            .wait_received(|r| r.iter().any(|m| m.text.contains("unsubscribe")), SOON)
            .await
    );
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_gap_is_a_signal_and_triggers_a_fresh_subscribe_of_that_subscription_only() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let client = kalshi(&exchange, |b| b).await;
    let mut events = client.events();
    let mut gapped = client.subscribe(ticker("GAP")).await.unwrap();
    let _calm = client.subscribe(ticker("CALM")).await.unwrap();
    exchange.publish("GAP", json!({"n": 1}));
    next_data(&mut gapped).await;
    exchange.skip_seq("GAP", 3);
    exchange.publish("GAP", json!({"n": 2}));
    match next(&mut gapped).await {
        Some(Ok(Update::Gap {
            last_seq: 1,
            next_seq: 5,
        })) => {}
        other => panic!("expected the gap signal, got {other:?}"),
    }
    assert_eq!(
        n_of(&next_data(&mut gapped).await),
        2,
        "the frame after the gap is still delivered"
    );
    match wait_event(&mut events, |e| matches!(e, Event::Gap { .. })).await {
        Event::Gap {
            client_id,
            last_seq: 1,
            next_seq: 5,
        } => assert_eq!(client_id, gapped.client_id()),
        other => panic!("{other:?}"),
    }
    wait_event(
        &mut events,
        |e| matches!(e, Event::Resubscribed { client_id, .. } if *client_id == gapped.client_id()),
    )
    .await;
    let subs = subscribes_on(&exchange.received(), 1);
    assert_eq!(subs, vec!["GAP", "CALM", "GAP"]);
    assert!(exchange
        .received()
        .iter()
        .any(|r| r.text.contains("\"unsubscribe\"")));
    exchange.publish("GAP", json!({"n": 3}));
    assert_eq!(n_of(&next_data(&mut gapped).await), 3);
    let stats = client.stats();
    assert_eq!((stats.gaps, stats.resubscribes), (1, 1));
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_duplicate_sequence_number_is_dropped_and_counted() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let client = kalshi(&exchange, |b| b).await;
    let mut sub = client.subscribe(ticker("DUP")).await.unwrap();
    exchange.publish("DUP", json!({"n": 1}));
    exchange.repeat_seq("DUP");
    exchange.publish("DUP", json!({"n": 2}));
    exchange.publish("DUP", json!({"n": 3}));
    assert_eq!(n_of(&next_data(&mut sub).await), 1);
    assert_eq!(
        n_of(&next_data(&mut sub).await),
        3,
        "the duplicate of seq 1 never reached the stream"
    );
    let stats = client.stats();
    assert_eq!((stats.duplicates, stats.gaps), (1, 0));
    assert_eq!(sub.stats().dropped, 1);
    client.close().await.unwrap();
}

#[tokio::test]
async fn requests_are_correlated_by_id_and_time_out() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let client = kalshi(&exchange, |b| b.request_timeout(Duration::from_millis(300))).await;
    let sub = client.subscribe(ticker("A")).await.unwrap();
    let _ = sub;
    let params = json!({"sids": [1], "action": "add_markets", "market_tickers": ["B"]});
    let answer = client
        .request(Request::new("update_subscription", Some(params)))
        .await
        .unwrap();
    let value: Value = serde_json::from_str(answer.as_text().unwrap()).unwrap();
    assert_eq!(value["type"], "ok");

    exchange.set_silent(true);
    match client
        .request(Request::new(
            "update_subscription",
            Some(json!({"sids": [1]})),
        ))
        .await
    {
        Err(Error::Timeout {
            operation: Operation::Request,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    client.close().await.unwrap();
}

#[tokio::test]
async fn requests_in_flight_fail_at_once_on_disconnect_and_are_never_replayed() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let client = kalshi(&exchange, |b| b.request_timeout(Duration::from_secs(60))).await;
    exchange.set_silent(true);
    let pending = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .request(Request::new("place_order", Some(json!({"qty": 1}))))
                .await
        })
    };
    // The request went out; the server read it before going silent? It may not
    // have: wait for the client to have written it instead.
    wait_until("request written", || client.stats().frames_out >= 1).await;
    exchange.abort_all();
    let result = tokio::time::timeout(SOON, pending)
        .await
        .expect("fails well before the 60 s timeout")
        .unwrap();
    assert!(
        matches!(result, Err(Error::Connection { .. })),
        "{result:?}"
    );
    assert!(exchange.wait_handshakes(2, SOON).await);
    // Give the new connection a round trip, then check nothing was re-sent.
    let _probe = client.subscribe(ticker("PROBE")).await.unwrap();
    assert!(!exchange
        .received()
        .iter()
        .any(|r| r.conn == 2 && r.text.contains("place_order")));
    client.close().await.unwrap();
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let client = kalshi(&exchange, |b| b).await;
    let sub = client.subscribe(ticker("X")).await.unwrap();
    assert_eq!(exchange.subscriptions(), 1);
    drop(sub);
    assert!(
        exchange
            .wait_received(
                |r| r.iter().any(|m| m.text.contains("\"unsubscribe\"")),
                SOON
            )
            .await
    );
    wait_until("server dropped the subscription", || {
        exchange.subscriptions() == 0
    })
    .await;
    client.close().await.unwrap();
}

#[tokio::test]
async fn an_unacknowledged_replay_reconnects_instead_of_ending_the_subscription() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let client = kalshi(&exchange, |b| {
        b.request_timeout(Duration::from_millis(300))
            .ping_interval(Duration::from_secs(60))
            .pong_timeout(Duration::from_secs(30))
    })
    .await;
    let mut a = client.subscribe(ticker("A")).await.unwrap();
    let mut events = client.events();

    // The next connection completes its handshake but swallows the replay.
    exchange.set_ack_mode(AckMode::Never);
    exchange.abort_all();
    let cause = match wait_event(&mut events, |e| {
        matches!(
            e,
            Event::Disconnected {
                cause: Error::Timeout { .. }
            }
        )
    })
    .await
    {
        Event::Disconnected { cause } => cause,
        other => unreachable!("{other:?}"),
    };
    assert!(
        matches!(
            cause,
            Error::Timeout {
                operation: Operation::Subscribe,
                ..
            }
        ),
        "{cause:?}"
    );

    // Once the venue answers again, the same stream resumes (had the timeout
    // ended it, `next_data` would meet `Err(Timeout)` instead of data).
    exchange.set_ack_mode(AckMode::Normal);
    wait_event(
        &mut events,
        |e| matches!(e, Event::Resubscribed { client_id, .. } if *client_id == a.client_id()),
    )
    .await;
    exchange.publish("A", json!({"price": 7}));
    assert_eq!(next_data(&mut a).await["msg"]["price"], 7);
    // The subscribe was sent on each of the three connections.
    let received = exchange.received();
    let conns: Vec<u64> = received
        .iter()
        .filter(|r| r.text.contains("\"subscribe\""))
        .map(|r| r.conn)
        .collect();
    assert!(conns.len() >= 3, "{conns:?}");
}

#[tokio::test]
async fn a_late_ack_for_an_abandoned_subscribe_is_unsubscribed() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let client = kalshi(&exchange, |b| b.request_timeout(Duration::from_secs(30))).await;
    exchange.set_ack_mode(AckMode::Never);
    // The caller gives up before the venue answers: the subscription is dropped
    // while its subscribe is still pending.
    let gave_up = tokio::time::timeout(Duration::from_millis(200), client.subscribe(ticker("A")));
    assert!(
        gave_up.await.is_err(),
        "no ack, so the subscribe must still be waiting"
    );
    let subscribe_id = {
        let mut id = None;
        wait_until("the subscribe reached the exchange", || {
            id = exchange
                .received()
                .iter()
                .filter_map(|r| serde_json::from_str::<Value>(&r.text).ok())
                .find(|v| v["cmd"] == "subscribe")
                .and_then(|v| v["id"].as_u64());
            id.is_some()
        })
        .await;
        id.unwrap()
    };

    // The venue acknowledges after all, under sid 99.
    exchange.send_text_all(
        &json!({"type": "subscribed", "id": subscribe_id, "msg": {"channel": "ticker", "sid": 99}})
            .to_string(),
    );
    let mut unsubscribed = Vec::new();
    wait_until("an unsubscribe for sid 99", || {
        unsubscribed = exchange
            .received()
            .iter()
            .filter_map(|r| serde_json::from_str::<Value>(&r.text).ok())
            .filter(|v| v["cmd"] == "unsubscribe")
            .map(|v| v["params"]["sids"].clone())
            .collect();
        !unsubscribed.is_empty()
    })
    .await;
    assert_eq!(unsubscribed, vec![json!([99])]);
}
