//! The consumer-driven feed against the test exchange (and the fault proxy):
//! data flows from the feed's own `poll_next`, faults reconnect and
//! resubscribe with items continuing under the same client ids, commands work
//! from other tasks, accounting is exact, and close or drop ends everything.
//! The faults: drop, close and garbage frame in one test, silence (exchange
//! and network), FIN, reset, more close codes, a cut frame, a corrupted byte
//! and non-JSON text in another.
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
use support::proxy::{Direction, Proxy};
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
            condition(|| exchange.reconnected_with(handshakes, 3)),
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
        condition(|| exchange.reconnected_with(handshakes, 3)),
    )
    .await;
    assert_eq!(publish_round(&exchange, &mut feed, 2).await, before);

    let handshakes = exchange.handshakes();
    proxy.fin_all();
    drive_until(
        &mut feed,
        condition(|| exchange.reconnected_with(handshakes, 3)),
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

/// What a fault in [`the_other_faults_reconnect_with_the_cause_reported`] is
/// expected to end the session with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// Silence: the liveness check (a pong or frame overdue).
    Timeout,
    /// The socket ended without a close frame, or the bytes broke the framing.
    Connection,
    /// A WebSocket protocol violation.
    Protocol,
    /// A close frame with this code.
    Close(u16),
}

fn cause_of(error: &Error) -> Option<Cause> {
    Some(match error {
        Error::Timeout { .. } => Cause::Timeout,
        Error::Connection { .. } => Cause::Connection,
        Error::Protocol { .. } => Cause::Protocol,
        Error::Closed { code, .. } => Cause::Close(*code),
        _ => return None,
    })
}

/// Drives the feed until every one of `ids` has yielded `Update::Resubscribed`
/// (its replay was acknowledged on the new connection); items of `ids` only.
async fn until_resubscribed(feed: &mut Feed<Kalshi>, ids: &[ClientId]) {
    let mut left: Vec<ClientId> = ids.to_vec();
    let work = async {
        while !left.is_empty() {
            let item = feed.next().await.expect("the feed goes on");
            assert!(ids.contains(&item.client_id), "{item:?}");
            if let Ok(Update::Resubscribed { .. }) = item.item {
                left.retain(|id| *id != item.client_id);
            }
        }
    };
    tokio::time::timeout(SOON, work)
        .await
        .expect("every subscription resubscribed");
}

/// The rest of the fault catalogue against the feed (drop, close and garbage
/// frame are above): a silent exchange and a network blackhole (silence, found
/// by the feed's own ping timer), a TCP FIN and an exchange reset without a
/// close frame, close codes 1001 and 1012, a frame cut in the middle and a
/// corrupted byte. Each one ends the session with its cause reported, the feed
/// reconnects, every subscription yields `Resubscribed`, and the next round
/// arrives under the same client ids. A text frame that is not JSON at all is
/// not a reason to reconnect: the round after it arrives on the same
/// connection. Accounting is exact throughout.
#[tokio::test]
async fn the_other_faults_reconnect_with_the_cause_reported() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let proxy = Proxy::start(exchange.addr()).await.unwrap();
    let (handle, mut feed) = Feed::new(config(&proxy.url()).build().unwrap(), Kalshi::new());
    let (causes_tx, mut causes) = tokio::sync::mpsc::unbounded_channel();
    let mut events = handle.client().events();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let resilient_ws::Event::Disconnected { cause } = event {
                let _ = causes_tx.send(cause);
            }
        }
    });
    let ids = subscribe_all(&handle, &mut feed).await;
    let before = publish_round(&exchange, &mut feed, 1).await;

    let faults: [(&str, Cause, Fault); 8] = [
        (
            "silent exchange",
            Cause::Timeout,
            Box::new(|| exchange.set_silent(true)),
        ),
        (
            "network blackhole",
            Cause::Timeout,
            Box::new(|| proxy.set_blackhole(true)),
        ),
        ("tcp fin", Cause::Connection, Box::new(|| proxy.fin_all())),
        (
            "exchange reset",
            Cause::Connection,
            Box::new(|| exchange.abort_all()),
        ),
        (
            "close 1001",
            Cause::Close(1001),
            Box::new(|| exchange.close_all(1001, "going away")),
        ),
        (
            "close 1012",
            Cause::Close(1012),
            Box::new(|| exchange.close_all(1012, "restart")),
        ),
        (
            "frame cut in the middle",
            Cause::Connection,
            // Published after the fault is armed: the next chunk is a data frame.
            Box::new(|| proxy.truncate_next(5)),
        ),
        (
            "corrupted byte",
            Cause::Protocol,
            Box::new(|| proxy.corrupt_next(Direction::ServerToClient, 0)),
        ),
    ];
    let mut n = 1;
    for (name, expected, fault) in &faults {
        let reconnects = handle.client().stats().reconnects;
        fault();
        if *name == "frame cut in the middle" || *name == "corrupted byte" {
            // The armed fault hits the next chunk from the exchange.
            for symbol in SYMBOLS {
                exchange.publish(symbol, json!({ "n": 0 }));
            }
        }
        let (cause, _) = drive_until(&mut feed, causes.recv()).await;
        let cause = cause.expect("a disconnect is reported");
        if *name == "network blackhole" {
            // Silence was detected; let the reconnect through.
            proxy.clear();
        }
        // The cut and corruption may land either in a frame or between two.
        let acceptable = match expected {
            Cause::Connection | Cause::Protocol => {
                matches!(cause_of(&cause), Some(Cause::Connection | Cause::Protocol))
            }
            _ => cause_of(&cause) == Some(*expected),
        };
        assert!(acceptable, "{name}: ended by {cause:?}");
        until_resubscribed(&mut feed, &ids).await;
        n += 1;
        let after = publish_round(&exchange, &mut feed, n).await;
        assert_eq!(after, before, "{name}: same client ids after the reconnect");
        assert!(
            handle.client().stats().reconnects > reconnects,
            "{name}: {:?}",
            handle.client().stats()
        );
        assert_balanced(&feed);
    }

    // Garbage that is not a frame error: the session goes on.
    let reconnects = handle.client().stats().reconnects;
    exchange.send_text_all("this is not json {");
    n += 1;
    let after = publish_round(&exchange, &mut feed, n).await;
    assert_eq!(after, before, "garbage text: same client ids");
    assert_eq!(handle.client().stats().reconnects, reconnects);
    assert!(causes.try_recv().is_err(), "garbage text: no disconnect");
    assert_balanced(&feed);
    for id in ids {
        let s = feed.subscription_stats(id).expect("still live");
        assert_eq!(s.routed, s.delivered + s.dropped + s.queued, "{s:?}");
    }
}

/// A permanent close code ends the feed: every subscription yields the
/// close as its last item, the stream ends, `closed()` returns it, and the
/// feed never reconnects.
#[tokio::test]
async fn a_permanent_close_ends_every_subscription_with_it() {
    for code in [1008, 4000] {
        let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
        let (handle, mut feed) = Feed::new(config(&exchange.url()).build().unwrap(), Kalshi::new());
        let ids = subscribe_all(&handle, &mut feed).await;
        exchange.close_all(code, "permanent");
        let mut last: HashMap<ClientId, SetItem> = HashMap::new();
        let work = async {
            while let Some(item) = feed.next().await {
                last.insert(item.client_id, item);
            }
        };
        tokio::time::timeout(SOON, work)
            .await
            .expect("the stream ends");
        for id in &ids {
            let item = &last[id];
            assert!(
                matches!(&item.item, Err(Error::Closed { code: c, .. }) if *c == code),
                "{code}: {id} ended with {:?}",
                item.item
            );
        }
        let closed = handle.client().closed().await;
        assert!(
            matches!(&closed, Err(Error::Closed { code: c, .. }) if *c == code),
            "{closed:?}"
        );
        assert_eq!(exchange.handshakes(), 1, "{code}: never reconnected");
        assert_balanced(&feed);
        exchange.shutdown().await;
    }
}

/// `close()` while the network is silent: a ping is already out when the
/// close starts and its pong deadline passes during the close; the close
/// still completes, the stream ends, and nothing reconnects.
#[tokio::test]
async fn close_in_a_blackhole_is_not_undone_by_a_ping_timeout() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let proxy = Proxy::start(exchange.addr()).await.unwrap();
    // Pong deadline 400 ms, inside the close timeout.
    let builder = config(&proxy.url()).close_timeout(Duration::from_millis(1500));
    let (handle, mut feed) = Feed::new(builder.build().unwrap(), Kalshi::new());
    let mut events = handle.client().events();
    subscribe_all(&handle, &mut feed).await;
    publish_round(&exchange, &mut feed, 1).await;
    proxy.set_blackhole(true);
    let client = handle.client().clone();
    let sent = client.stats().frames_out;
    let (_, _) = drive_until(&mut feed, condition(|| client.stats().frames_out > sent)).await;
    // What happened before the close (the first connect) is not the question.
    while let Some(Some(_)) = futures::FutureExt::now_or_never(events.next()) {}
    let close = tokio::spawn(async move { client.close().await });
    let work = async { while feed.next().await.is_some() {} };
    tokio::time::timeout(SOON, work)
        .await
        .expect("the stream ends");
    let closed = tokio::time::timeout(SOON, close)
        .await
        .expect("close returns")
        .unwrap();
    assert!(closed.is_ok(), "{closed:?}");
    assert_eq!(*handle.client().state().borrow(), ConnectionState::Closed);
    while let Some(Some(event)) = futures::FutureExt::now_or_never(events.next()) {
        assert!(
            !matches!(
                event,
                resilient_ws::Event::Connecting { .. } | resilient_ws::Event::Disconnected { .. }
            ),
            "the feed went on after close(): {event:?}"
        );
    }
    assert_eq!(proxy.accepted(), 1, "no new connection after close()");
    assert_balanced(&feed);
}
