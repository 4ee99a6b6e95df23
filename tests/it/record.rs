//! Record and replay against the test exchange: a client recorded through
//! faults (a TCP drop, a close 1011, a garbage frame) yields, when its
//! recording is replayed through the same adapter and session core, the same
//! items, subscription by subscription: client id, payload text, signal kind.
//! Also: the recording survives a torn tail, and a full recorder queue drops
//! (and counts) records instead of blocking the connection.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use resilient_ws::{
    Backoff, BookBreak, Client, ClientId, Config, ConfigBuilder, Kalshi, Pace, RecordOptions,
    Recorder, Recording, Replay, SetItem, SubscriptionSet, Topic, Update,
};
use serde_json::json;
use support::exchange::{raw_frame, Exchange, Venue};
use support::proxy::Proxy;
use support::{scratch_dir, SOON};

const SYMBOLS: [&str; 3] = ["A", "B", "C"];

/// A named fault to inject.
type Fault<'a> = (&'a str, Box<dyn Fn() + 'a>);

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

/// What is compared between live and replay: per item, its kind and text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// The frame's text and its wall-clock receive time: the driver hands the
    /// core the wall clock at connect, the recorder keeps that same reading,
    /// so a replay stamps every frame with the wall time live did.
    Data(String, std::time::SystemTime),
    Gap,
    Reset,
    BookBreak(BookBreak),
    Resubscribed,
    Error {
        retryable: bool,
    },
    Other,
}

fn seen(item: &SetItem) -> Seen {
    match &item.item {
        Ok(Update::Data(frame)) => Seen::Data(
            frame.as_text().unwrap_or_default().to_owned(),
            frame.received().wall,
        ),
        Ok(Update::Gap { .. }) => Seen::Gap,
        Ok(Update::Reset { .. }) => Seen::Reset,
        Ok(Update::BookBreak(kind)) => Seen::BookBreak(*kind),
        Ok(Update::Resubscribed { .. }) => Seen::Resubscribed,
        Err(error) => Seen::Error {
            retryable: error.is_retryable(),
        },
        Ok(_) => Seen::Other,
    }
}

/// Items per subscription, in order.
fn by_client(items: &[SetItem]) -> BTreeMap<ClientId, Vec<Seen>> {
    let mut map: BTreeMap<ClientId, Vec<Seen>> = BTreeMap::new();
    for item in items {
        map.entry(item.client_id).or_default().push(seen(item));
    }
    map
}

/// Publishes round `n` on every symbol and reads the set until each
/// subscription has yielded it (keeping every item read).
async fn round(exchange: &Exchange, set: &mut SubscriptionSet, n: u64, items: &mut Vec<SetItem>) {
    for symbol in SYMBOLS {
        exchange.publish(symbol, json!({ "n": n }));
    }
    let mut got = 0;
    let work = async {
        while got < SYMBOLS.len() {
            let item = set.next().await.expect("the set goes on");
            if let Ok(Update::Data(frame)) = &item.item {
                if frame
                    .as_text()
                    .is_some_and(|t| t.contains(&format!("\"n\":{n}")))
                {
                    got += 1;
                }
            }
            items.push(item);
        }
    };
    tokio::time::timeout(SOON, work)
        .await
        .expect("every subscription yields the round");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_chaos_run_replays_to_the_same_items() {
    let dir = scratch_dir("chaos");
    let recorder = Recorder::create(&dir, RecordOptions::default()).unwrap();
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let proxy = Proxy::start(exchange.addr()).await.unwrap();
    let live_config = config(&proxy.url())
        .record(recorder.clone())
        .build()
        .unwrap();
    let (client, _unsolicited) = Client::spawn(live_config, Kalshi::new());
    let topics = SYMBOLS
        .iter()
        .map(|s| Topic::new("ticker").symbol(*s))
        .collect();
    let mut set = client.subscribe_set(topics).await.unwrap();
    let mut live = Vec::new();
    round(&exchange, &mut set, 1, &mut live).await;

    let faults: [Fault<'_>; 3] = [
        ("tcp drop", Box::new(|| proxy.cut_all())),
        (
            "close 1011",
            Box::new(|| exchange.close_all(1011, "restart")),
        ),
        (
            "garbage frame",
            Box::new(|| exchange.send_raw_all(raw_frame(0x3, true, 0, b"junk", false))),
        ),
    ];
    for (i, (name, fault)) in faults.iter().enumerate() {
        let handshakes = exchange.handshakes();
        fault();
        // Read while waiting: the reconnect and resubscribe show up as items.
        let work = async {
            while !exchange.reconnected_with(handshakes, 3) {
                tokio::select! {
                    Some(item) = set.next() => live.push(item),
                    () = tokio::task::yield_now() => {}
                }
            }
        };
        tokio::time::timeout(SOON, work)
            .await
            .unwrap_or_else(|_| panic!("{name}: reconnected and resubscribed"));
        round(&exchange, &mut set, i as u64 + 2, &mut live).await;
    }
    client.close().await.unwrap();
    let rest = tokio::time::timeout(SOON, async {
        let mut rest = Vec::new();
        while let Some(item) = set.next().await {
            rest.push(item);
        }
        rest
    })
    .await
    .expect("the set ends after close");
    live.extend(rest);
    drop(set);
    let flushed = recorder.clone();
    tokio::task::spawn_blocking(move || flushed.flush())
        .await
        .unwrap()
        .unwrap();
    let stats = recorder.stats();
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert!(client.stats().reconnects >= 3);

    let replay_config = config(&proxy.url()).build().unwrap();
    let mut replay = Replay::new(
        Recording::open(&dir).unwrap(),
        replay_config,
        Kalshi::new(),
        Pace::AsFastAsPossible,
    );
    let replayed: Vec<SetItem> = tokio::time::timeout(SOON, (&mut replay).collect())
        .await
        .expect("the replay ends");

    let (live_map, replay_map) = (by_client(&live), by_client(&replayed));
    assert_eq!(live_map.len(), 3, "three subscriptions: {live_map:?}");
    for (id, items) in &live_map {
        let again = replay_map.get(id).expect("replay has the subscription");
        for (i, (a, b)) in items.iter().zip(again).enumerate() {
            assert_eq!(a, b, "subscription {id}, item {i}");
        }
        assert_eq!(items.len(), again.len(), "subscription {id}: item count");
    }
    assert_eq!(live_map.len(), replay_map.len());
    let data = live
        .iter()
        .filter(|i| matches!(seen(i), Seen::Data(..)))
        .count();
    assert!(data >= 12, "four rounds of three: {data}");
    let resubscribed = live
        .iter()
        .filter(|i| seen(i) == Seen::Resubscribed)
        .count();
    assert!(
        resubscribed >= 9,
        "three reconnects of three: {resubscribed}"
    );
    let r = replay.stats();
    assert_eq!(r.writes_mismatched, 0, "{r:?}");
    assert!(r.writes_matched > 0, "{r:?}");
    assert_eq!(r.dropped, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a client writes (a one-off send here; subscribe frames with a token
/// likewise) may hold credentials: the recording keeps only its length and
/// CRC, so the secret never reaches the file, while the frames it received
/// are there.
#[tokio::test]
async fn outbound_secrets_never_reach_the_recording() {
    const SECRET: &str = "sk-live-5ecret-t0ken";
    let dir = scratch_dir("secret");
    let recorder = Recorder::create(&dir, RecordOptions::default()).unwrap();
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let url = format!("{}?token={SECRET}", exchange.url());
    let config = config(&url).record(recorder.clone()).build().unwrap();
    let (client, _unsolicited) = Client::spawn(config, Kalshi::new());
    let mut set = client
        .subscribe_set(vec![Topic::new("ticker").symbol("A")])
        .await
        .unwrap();
    client
        .send(format!(r#"{{"cmd":"login","token":"{SECRET}"}}"#))
        .await
        .unwrap();
    let mut items = Vec::new();
    round_of(&exchange, &mut set, &mut items).await;
    assert!(
        exchange
            .wait_received(|r| r.iter().any(|r| r.text.contains(SECRET)), SOON)
            .await,
        "the send went out"
    );
    client.close().await.unwrap();
    drop(set);
    let flushed = recorder.clone();
    tokio::task::spawn_blocking(move || flushed.flush())
        .await
        .unwrap()
        .unwrap();
    let mut all = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("\"n\":1"), "the received frame is recorded");
    assert!(!text.contains(SECRET), "the secret is not");
    let _ = std::fs::remove_dir_all(&dir);
}

/// One round on symbol A only.
async fn round_of(exchange: &Exchange, set: &mut SubscriptionSet, items: &mut Vec<SetItem>) {
    exchange.publish("A", json!({ "n": 1 }));
    let work = async {
        loop {
            let item = set.next().await.expect("the set goes on");
            let done = matches!(&item.item, Ok(Update::Data(f)) if f.as_text().is_some_and(|t| t.contains("\"n\":1")));
            items.push(item);
            if done {
                break;
            }
        }
    };
    tokio::time::timeout(SOON, work)
        .await
        .expect("the round arrives");
}
