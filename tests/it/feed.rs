//! The consumer-driven feed against the test exchange (and the fault proxy):
//! data flows from the feed's own `poll_next`, faults reconnect and
//! resubscribe with items continuing under the same client ids, commands work
//! from other tasks, accounting is exact, and close or drop ends everything.
//!
//! While a command or a condition is awaited, the test keeps polling the feed
//! ([`drive_until`]): nothing happens on the connection otherwise.

use crate::support;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use resilient_ws::{
    Backoff, ClientId, Config, ConfigBuilder, ConnectionState, Error, Event, Feed, FeedHandle,
    Kalshi, Operation, Overflow, QueueOptions, SetItem, Topic, Update,
};
use serde_json::{json, Value};
use support::exchange::{raw_frame, Exchange, Venue};
use support::proxy::Proxy;
use support::SOON;

const SYMBOLS: [&str; 3] = ["A", "B", "C"];

fn config(url: &str) -> ConfigBuilder {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).seed(3))
        .connect_timeout(Duration::from_millis(500))
        .ping_interval(Duration::from_millis(100))
        .pong_timeout(Duration::from_millis(400))
        .idle_timeout(None)
        .request_timeout(Duration::from_secs(5))
        .rate_limit(1000, Duration::from_secs(1))
}

/// Polls `feed` (keeping what it yields) until `until` completes, bounded by
/// [`SOON`]. Returns `until`'s output and the items.
async fn drive_until<T>(
    feed: &mut Feed<Kalshi>,
    until: impl Future<Output = T>,
) -> (T, Vec<SetItem>) {
    let mut items = Vec::new();
    let mut until = std::pin::pin!(until);
    let work = async {
        loop {
            tokio::select! {
                biased;
                out = &mut until => return out,
                item = feed.next() => match item {
                    Some(item) => items.push(item),
                    // The feed ended: only `until` can still finish.
                    None => return (&mut until).await,
                },
            }
        }
    };
    let out = tokio::time::timeout(SOON, work)
        .await
        .expect("finished within SOON");
    (out, items)
}

/// A condition re-checked while the feed is driven.
async fn condition(mut cond: impl FnMut() -> bool) {
    while !cond() {
        tokio::task::yield_now().await;
    }
}

/// The `n` of a data item published by [`publish_round`], if it is one.
fn n_of(item: &SetItem) -> Option<u64> {
    let Ok(Update::Data(frame)) = &item.item else {
        return None;
    };
    let value: Value = serde_json::from_str(frame.as_text()?).ok()?;
    value["msg"]["n"].as_u64()
}

/// Publishes `{"n": n}` on every symbol and drives the feed until each
/// subscription has yielded it; returns the client id that carried each symbol.
async fn publish_round(
    exchange: &Exchange,
    feed: &mut Feed<Kalshi>,
    n: u64,
) -> HashMap<String, ClientId> {
    for symbol in SYMBOLS {
        exchange.publish(symbol, json!({ "n": n }));
    }
    let mut seen: HashMap<String, ClientId> = HashMap::new();
    let work = async {
        while seen.len() < SYMBOLS.len() {
            let item = feed.next().await.expect("the feed goes on");
            if n_of(&item) == Some(n) {
                let symbol = item.topic.symbol_name().unwrap_or_default().to_owned();
                assert!(
                    seen.insert(symbol, item.client_id).is_none(),
                    "one frame per subscription"
                );
            }
        }
    };
    tokio::time::timeout(SOON, work)
        .await
        .expect("every subscription yields the round");
    seen
}

/// Subscribes [`SYMBOLS`] from another task while the feed is driven.
async fn subscribe_all(handle: &FeedHandle, feed: &mut Feed<Kalshi>) -> Vec<ClientId> {
    let topics = SYMBOLS
        .iter()
        .map(|s| Topic::new("ticker").symbol(*s))
        .collect();
    let task = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.subscribe_many(topics).await })
    };
    let (joined, _) = drive_until(feed, task).await;
    joined
        .expect("subscribe task")
        .expect("subscribe_many")
        .into_iter()
        .map(|r| r.expect("acknowledged"))
        .collect()
}

fn assert_balanced(feed: &Feed<Kalshi>) {
    let s = feed.stats();
    assert_eq!(
        s.routed,
        s.delivered + s.dropped + s.queued,
        "routed = delivered + dropped + queued: {s:?}"
    );
}

#[tokio::test]
async fn several_topics_flow_through_the_feed_with_commands_from_another_task() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let (handle, mut feed) = Feed::new(config(&exchange.url()).build().unwrap(), Kalshi::new());
    let ids = subscribe_all(&handle, &mut feed).await;
    assert_eq!(ids.len(), 3);
    assert_eq!(exchange.subscriptions(), 3);

    let carried = publish_round(&exchange, &mut feed, 1).await;
    for (symbol, id) in SYMBOLS.iter().zip(&ids) {
        assert_eq!(carried[*symbol], *id, "each item names its subscription");
    }

    // A one-off send from another task goes out on the feed's socket.
    let send = {
        let client = handle.client().clone();
        tokio::spawn(async move { client.send(r#"{"hello":1}"#).await })
    };
    let (sent, _) = drive_until(&mut feed, send).await;
    sent.unwrap().unwrap();
    let (found, _) = drive_until(
        &mut feed,
        condition(|| exchange.received().iter().any(|r| r.text.contains("hello"))),
    )
    .await;
    let () = found;

    // Unsubscribing one from another task: the others go on.
    let unsubscribe = {
        let handle = handle.clone();
        let id = ids[0];
        tokio::spawn(async move { handle.unsubscribe(id).await })
    };
    let (done, _) = drive_until(&mut feed, unsubscribe).await;
    done.unwrap().unwrap();
    let (_, _) = drive_until(&mut feed, condition(|| exchange.subscriptions() == 2)).await;
    for symbol in SYMBOLS {
        exchange.publish(symbol, json!({ "n": 2 }));
    }
    let mut got = Vec::new();
    while got.len() < 2 {
        let item = support::next(&mut feed).await.expect("the feed goes on");
        if n_of(&item) == Some(2) {
            got.push(item.client_id);
        }
    }
    assert!(!got.contains(&ids[0]), "nothing after unsubscribe: {got:?}");
    assert_balanced(&feed);
    assert_eq!(
        handle.client().state().borrow().clone(),
        ConnectionState::Connected
    );
}

/// One injected fault.
type Fault<'a> = Box<dyn Fn() + 'a>;

/// Drop, close and garbage: each reconnects, resubscribes, and items go on
/// under the same client ids.
#[tokio::test]
async fn faults_reconnect_and_resubscribe_with_items_continuing() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let proxy = Proxy::start(exchange.addr()).await.unwrap();
    let (handle, mut feed) = Feed::new(config(&proxy.url()).build().unwrap(), Kalshi::new());
    let ids = subscribe_all(&handle, &mut feed).await;
    let before = publish_round(&exchange, &mut feed, 1).await;

    let faults: [(&str, Fault); 3] = [
        ("tcp drop", Box::new(|| proxy.cut_all())),
        (
            "close 1011",
            Box::new(|| exchange.close_all(1011, "restart")),
        ),
        (
            "garbage frame",
            // A frame with a reserved opcode: a protocol error for tungstenite.
            Box::new(|| exchange.send_raw_all(raw_frame(0x3, true, 0, b"junk", false))),
        ),
    ];
    for (round, (name, fault)) in faults.iter().enumerate() {
        let handshakes = exchange.handshakes();
        fault();
        let (reconnected, _) = drive_until(
            &mut feed,
            condition(|| exchange.handshakes() > handshakes && exchange.subscriptions() == 3),
        )
        .await;
        let () = reconnected;
        let n = round as u64 + 2;
        let after = publish_round(&exchange, &mut feed, n).await;
        assert_eq!(after, before, "{name}: same client ids after the reconnect");
    }
    let stats = handle.client().stats();
    assert!(stats.reconnects >= 3, "{stats:?}");
    assert_balanced(&feed);
    for id in ids {
        let s = feed.subscription_stats(id).expect("still live");
        assert_eq!(s.routed, s.delivered + s.dropped + s.queued);
    }
}

/// Silence (a blackhole: nothing in either direction, the socket still open)
/// is found by the feed's own pong deadline while it is polled, and ends the
/// session as a ping `Timeout`; once it lifts, and after an orderly TCP close
/// without a close frame (FIN), the feed reconnects and the next round
/// arrives under the same client ids, with exact accounting.
#[tokio::test]
async fn silence_and_a_fin_reconnect_the_feed() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let proxy = Proxy::start(exchange.addr()).await.unwrap();
    let (handle, mut feed) = Feed::new(config(&proxy.url()).build().unwrap(), Kalshi::new());
    let mut events = handle.client().events();
    let ids = subscribe_all(&handle, &mut feed).await;
    let before = publish_round(&exchange, &mut feed, 1).await;

    let handshakes = exchange.handshakes();
    proxy.set_blackhole(true);
    let (cause, _) = drive_until(&mut feed, async {
        match support::wait_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await {
            Event::Disconnected { cause } => cause,
            _ => unreachable!(),
        }
    })
    .await;
    match cause {
        Error::Timeout {
            operation: Operation::Ping,
            timeout,
        } => assert_eq!(timeout, Duration::from_millis(400)),
        other => panic!("silence should end the session as a ping timeout, got {other:?}"),
    }
    proxy.set_blackhole(false);
    drive_until(
        &mut feed,
        condition(|| exchange.handshakes() > handshakes && exchange.subscriptions() == 3),
    )
    .await;
    assert_eq!(publish_round(&exchange, &mut feed, 2).await, before);

    let handshakes = exchange.handshakes();
    proxy.fin_all();
    drive_until(
        &mut feed,
        condition(|| exchange.handshakes() > handshakes && exchange.subscriptions() == 3),
    )
    .await;
    assert_eq!(publish_round(&exchange, &mut feed, 3).await, before);

    assert!(handle.client().stats().reconnects >= 2);
    assert_balanced(&feed);
    for id in ids {
        let s = feed.subscription_stats(id).expect("still live");
        assert_eq!(s.routed, s.delivered + s.dropped + s.queued, "{s:?}");
    }
}

/// The feed takes a queue's items in one batch and yields them one by one:
/// a snapshot between two items counts exactly what was yielded as
/// delivered, and what is taken but not yet yielded as queued.
#[tokio::test]
async fn a_snapshot_between_items_counts_exactly_what_was_yielded() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let (handle, mut feed) = Feed::new(config(&exchange.url()).build().unwrap(), Kalshi::new());
    subscribe_all(&handle, &mut feed).await;
    let start = feed.stats();
    const BURST: u64 = 100;
    for n in 1..=BURST {
        exchange.publish("A", json!({ "n": n }));
    }
    let mut yielded = 0;
    while yielded < BURST {
        let item = support::next(&mut feed).await.expect("the feed goes on");
        if n_of(&item).is_some() {
            yielded += 1;
        }
        let s = feed.stats();
        assert_eq!(s.delivered - start.delivered, yielded, "{s:?}");
        assert_eq!(s.routed, s.delivered + s.dropped + s.queued, "{s:?}");
        assert_eq!(handle.client().stats().queues.delivered, s.delivered);
    }
}

/// A small queue under `DropOldest` that the consumer does not drain while a
/// burst arrives: what is yielded is exactly `delivered`, and every routed
/// frame is counted once.
#[tokio::test]
async fn accounting_is_exact_when_the_feed_drops() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let (handle, mut feed) = Feed::new(config(&exchange.url()).build().unwrap(), Kalshi::new());
    let options = QueueOptions {
        capacity: Some(4),
        overflow: Some(Overflow::DropOldest),
    };
    let task = {
        let handle = handle.clone();
        tokio::spawn(async move {
            handle
                .subscribe_many_with(vec![Topic::new("ticker").symbol("A")], options)
                .await
        })
    };
    let (result, early) = drive_until(&mut feed, task).await;
    let id = result.unwrap().unwrap().pop().unwrap().unwrap();
    const BURST: u64 = 200;
    for n in 1..=BURST {
        exchange.publish("A", json!({ "n": n }));
    }
    // Read until the last frame of the burst has come out.
    let mut yielded = early.iter().filter(|i| n_of(i).is_some()).count() as u64;
    loop {
        let item = support::next(&mut feed).await.expect("the feed goes on");
        assert_eq!(item.client_id, id);
        if let Some(n) = n_of(&item) {
            yielded += 1;
            if n == BURST {
                break;
            }
        }
    }
    let s = feed.subscription_stats(id).unwrap();
    assert_eq!(s.routed, BURST, "{s:?}");
    assert_eq!(s.delivered, yielded, "{s:?}");
    assert_eq!(s.queued, 0, "{s:?}");
    assert_eq!(s.routed, s.delivered + s.dropped + s.queued, "{s:?}");
    assert!(s.dropped > 0, "the burst overflowed a queue of 4: {s:?}");
}

/// Close from another task: the stream ends, the closer returns, later
/// commands get the terminal answer, and the feed spawned no task.
#[tokio::test]
async fn close_from_another_task_ends_the_stream() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let (handle, mut feed) = Feed::new(config(&exchange.url()).build().unwrap(), Kalshi::new());
    let ids = subscribe_all(&handle, &mut feed).await;
    publish_round(&exchange, &mut feed, 1).await;

    let closer = {
        let client = handle.client().clone();
        tokio::spawn(async move { client.close().await })
    };
    let mut ended = Vec::new();
    let work = async {
        while let Some(item) = feed.next().await {
            ended.push(item);
        }
    };
    tokio::time::timeout(SOON, work)
        .await
        .expect("the stream ends");
    assert!(feed.next().await.is_none(), "stays ended");
    tokio::time::timeout(SOON, closer)
        .await
        .expect("close returns")
        .unwrap()
        .unwrap();
    assert_eq!(*handle.client().state().borrow(), ConnectionState::Closed);
    assert!(matches!(
        handle.subscribe(Topic::new("ticker").symbol("D")).await,
        Err(Error::ClientClosed)
    ));
    assert!(ended.iter().all(|i| ids.contains(&i.client_id)));
    assert_balanced(&feed);
    assert!(exchange.wait_live(0, SOON).await, "the socket is closed");
    // The exchange's connection task is gone too: what is left is what ran
    // before the feed existed (the feed itself never spawned a task).
    support::wait_until("no task left", || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
            == tasks_before
    })
    .await;
}

/// Dropping the feed answers everyone: nothing waits for ever.
#[tokio::test]
async fn dropping_the_feed_answers_every_handle() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let (handle, mut feed) = Feed::new(config(&exchange.url()).build().unwrap(), Kalshi::new());
    subscribe_all(&handle, &mut feed).await;
    drop(feed);
    let closed = tokio::time::timeout(SOON, handle.client().closed())
        .await
        .expect("closed() resolves");
    assert!(closed.is_ok(), "{closed:?}");
    let send = tokio::time::timeout(SOON, handle.client().send("x"))
        .await
        .expect("send answers");
    assert!(matches!(send, Err(Error::ClientClosed)), "{send:?}");
}

/// Reconnecting given up: each subscription yields the terminal error and the
/// stream ends.
#[tokio::test]
async fn giving_up_ends_every_subscription_with_the_error() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let builder = config(&exchange.url()).backoff(
        Backoff::new(Duration::from_millis(5), Duration::from_millis(10))
            .max_attempts(Some(2))
            .seed(1),
    );
    let (handle, mut feed) = Feed::new(builder.build().unwrap(), Kalshi::new());
    let ids = subscribe_all(&handle, &mut feed).await;
    exchange.set_refuse(true);
    exchange.abort_all();
    let mut errors = Vec::new();
    let work = async {
        while let Some(item) = feed.next().await {
            if let Err(error) = item.item {
                if !error.is_retryable() {
                    errors.push((item.client_id, error));
                }
            }
        }
    };
    tokio::time::timeout(SOON, work)
        .await
        .expect("the stream ends");
    assert_eq!(errors.len(), ids.len(), "{errors:?}");
    assert!(errors
        .iter()
        .all(|(_, e)| matches!(e, Error::Reconnect { .. })));
    let closed = handle.client().closed().await;
    assert!(matches!(closed, Err(Error::Reconnect { .. })), "{closed:?}");
}
