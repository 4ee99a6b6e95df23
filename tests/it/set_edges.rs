//! Issue 19: a `SubscriptionSet` that merges several clients and pools keeps
//! members with the same client id apart (two venues in one set, exact
//! totals), and a set survives refusals: one refused topic among fifty is a
//! member whose only item is its error, on a client and on a pool, while the
//! other 49 stream.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use resilient_ws::{
    Backoff, Client, ClientId, Config, ConfigBuilder, Error, Kalshi, Kraken, MemberKey, Pool,
    PoolOptions, SetItem, SubscriptionSet, Topic, Update,
};
use support::exchange::{ticker_payload, Exchange, Venue};
use support::next;

fn fast(url: &str) -> ConfigBuilder {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).seed(19))
        .idle_timeout(None)
        .rate_limit(1000, Duration::from_secs(1))
}

fn ticker(symbol: &str) -> Topic {
    Topic::new("ticker").symbol(symbol)
}

fn symbol(item: &SetItem) -> String {
    item.topic.symbol_name().unwrap_or_default().to_owned()
}

/// What a set yielded, per symbol: data frames, and errors as text.
#[derive(Debug, Default)]
struct Seen {
    data: BTreeMap<String, u64>,
    errors: BTreeMap<String, (MemberKey, ClientId, Error)>,
}

/// Reads `data` data items (and every error met on the way), skipping signals.
async fn read(set: &mut SubscriptionSet, data: u64) -> Seen {
    let mut seen = Seen::default();
    let mut got = 0;
    while got < data {
        let item = next(set).await.expect("the set goes on");
        match &item.item {
            Ok(Update::Data(frame)) => {
                assert_eq!(frame.client_id(), Some(item.client_id));
                *seen.data.entry(symbol(&item)).or_default() += 1;
                got += 1;
            }
            Ok(_) => {}
            Err(error) => {
                let first = seen
                    .errors
                    .insert(symbol(&item), (item.member, item.client_id, error.clone()));
                assert!(first.is_none(), "two errors for {}", symbol(&item));
            }
        }
    }
    seen
}

/// The refusal may come before, among or after the data: reads until one
/// error has been seen (nothing but an error may come meanwhile).
async fn read_refusal(set: &mut SubscriptionSet, seen: &mut Seen) {
    while seen.errors.is_empty() {
        let item = next(set).await.expect("the refusal is an item");
        let name = symbol(&item);
        match item.item {
            Err(error) => {
                seen.errors
                    .insert(name, (item.member, item.client_id, error));
            }
            other => panic!("unexpected {other:?} from {name}"),
        }
    }
}

/// Must show 2: a Kalshi client and a Kraken pool both number their
/// subscriptions 1, 2, ...; in one set each keeps its own member (keyed by
/// the set), nothing is evicted or unsubscribed, every counter reaches the
/// set's totals, and removing one member leaves its namesake streaming.
/// Keyed by client id, the second adopt of id 1 silently replaced the first.
#[tokio::test]
async fn two_venues_in_one_set_keep_members_with_the_same_client_id_apart() {
    let kalshi_venue = Exchange::start(Venue::Kalshi).await.unwrap();
    let kraken_venue = Exchange::start(Venue::Kraken).await.unwrap();
    let kalshi = Client::connect(fast(&kalshi_venue.url()).build().unwrap(), Kalshi::new())
        .await
        .unwrap()
        .0;
    let kraken = Pool::new(
        fast(&kraken_venue.url()).build().unwrap(),
        Kraken::new,
        PoolOptions::default().connect_spacing(Duration::from_millis(1)),
    )
    .unwrap();

    let mut set = kalshi
        .subscribe_set(vec![ticker("KX-A"), ticker("KX-B")])
        .await
        .unwrap();
    for symbol in ["BTC/USD", "ETH/USD"] {
        let subscription = kraken.subscribe(ticker(symbol)).await.unwrap();
        set.adopt(subscription).unwrap();
    }
    assert_eq!(set.len(), 4, "nothing evicted");
    let members: BTreeMap<String, (MemberKey, ClientId)> = set
        .members()
        .map(|(key, id, topic)| (topic.symbol_name().unwrap().to_owned(), (key, id)))
        .collect();
    let client_ids: Vec<u64> = members.values().map(|(_, id)| id.get()).collect();
    let keys: BTreeSet<MemberKey> = members.values().map(|(key, _)| *key).collect();
    // The collision this test is about: each source numbered its own 1 and 2.
    assert_eq!(client_ids.iter().filter(|id| **id == 1).count(), 2);
    assert_eq!(client_ids.iter().filter(|id| **id == 2).count(), 2);
    assert_eq!(keys.len(), 4, "one key per member");
    assert_eq!(kalshi_venue.subscriptions(), 2, "nothing unsubscribed");
    assert_eq!(kraken_venue.subscriptions(), 2, "nothing unsubscribed");

    // A different number of frames per member: 3, 2, 4, 1.
    let plan = [
        (&kalshi_venue, "KX-A", 3),
        (&kalshi_venue, "KX-B", 2),
        (&kraken_venue, "BTC/USD", 4),
        (&kraken_venue, "ETH/USD", 1),
    ];
    for (venue, symbol, frames) in plan {
        for n in 0..frames {
            venue.publish(symbol, ticker_payload(venue.venue(), symbol, n));
        }
    }
    let seen = read(&mut set, 10).await;
    assert!(seen.errors.is_empty(), "{:?}", seen.errors);
    let want: BTreeMap<String, u64> = plan.iter().map(|(_, s, n)| (s.to_string(), *n)).collect();
    assert_eq!(seen.data, want);
    for (_, symbol, frames) in plan {
        let stats = set.member_stats(members[symbol].0).unwrap();
        assert_eq!(
            (stats.routed, stats.delivered, stats.queued),
            (frames, frames, 0)
        );
    }
    let total = set.stats();
    assert_eq!(
        (total.routed, total.delivered, total.dropped, total.queued),
        (10, 10, 0, 0)
    );

    // Remove Kalshi's member 1: Kraken's member 1 stays and streams.
    let (kalshi_one, kraken_one) = (members["KX-A"], members["BTC/USD"]);
    assert_eq!(kalshi_one.1, kraken_one.1, "the same client id");
    assert!(set.remove(kalshi_one.0).await.unwrap());
    assert_eq!(set.len(), 3);
    assert!(set.member_stats(kraken_one.0).is_some());
    kraken_venue.publish("BTC/USD", ticker_payload(Venue::Kraken, "BTC/USD", 9));
    let seen = read(&mut set, 1).await;
    assert_eq!(seen.data, BTreeMap::from([("BTC/USD".to_owned(), 1)]));
    let total = set.stats();
    assert_eq!((total.routed, total.delivered, total.queued), (11, 11, 0));
    kalshi.close().await.unwrap();
    kraken.close().await.unwrap();
}

/// Fifty symbols, the 18th refused by the venue.
fn fifty(prefix: &str) -> (Vec<Topic>, String) {
    let symbols: Vec<String> = (0..50).map(|i| format!("{prefix}{i}")).collect();
    let refused = symbols[17].clone();
    (symbols.iter().map(|s| ticker(s)).collect(), refused)
}

/// Publishes one frame per symbol, reads the 49 that can arrive and the one
/// error, and checks that exactly `refused` was refused, with the venue's reason.
async fn one_refused_among_fifty(set: &mut SubscriptionSet, venue: &Exchange, prefix: &str) {
    let (topics, refused) = fifty(prefix);
    assert_eq!(set.len(), 50, "49 subscriptions and the refused topic");
    for topic in &topics {
        let symbol = topic.symbol_name().unwrap();
        venue.publish(symbol, ticker_payload(venue.venue(), symbol, 1));
    }
    let mut seen = read(set, 49).await;
    read_refusal(set, &mut seen).await;
    let streamed: BTreeSet<&str> = seen.data.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = topics
        .iter()
        .filter_map(|t| t.symbol_name())
        .filter(|s| *s != refused)
        .collect();
    assert_eq!(streamed, expected, "the other 49 stream");
    assert!(seen.data.values().all(|n| *n == 1));
    assert_eq!(seen.errors.len(), 1, "{:?}", seen.errors);
    let (_, client_id, error) = &seen.errors[&refused];
    match error {
        Error::Subscription {
            client_id: refused_id,
            error,
            ..
        } => {
            assert_eq!(refused_id, client_id);
            assert!(error.message.contains("Unknown market"), "{error:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(set.len(), 49, "the refused member left after its item");
    let total = set.stats();
    assert_eq!(
        (total.routed, total.delivered, total.dropped, total.queued),
        (49, 49, 0, 0)
    );
    assert_eq!(venue.subscriptions(), 49, "none of the others unsubscribed");
}

/// Must show 3, on a client: Kraken batches the fifty into requests and
/// answers per symbol; the one refusal fails neither the set nor its batch.
#[tokio::test]
async fn one_refused_topic_among_fifty_on_a_client_leaves_the_others_streaming() {
    let venue = Exchange::start(Venue::Kraken).await.unwrap();
    let (_, refused) = fifty("K");
    venue.reject(&refused, "Unknown market K17", 0);
    let client = Client::connect(fast(&venue.url()).build().unwrap(), Kraken::new())
        .await
        .unwrap()
        .0;
    let (topics, _) = fifty("K");
    let mut set = client.subscribe_set(topics).await.expect("the set opens");
    one_refused_among_fifty(&mut set, &venue, "K").await;
    client.close().await.unwrap();
}

/// Must show 3, on a pool: fifty Kalshi topics over five connections, one
/// refused.
#[tokio::test]
async fn one_refused_topic_among_fifty_on_a_pool_leaves_the_others_streaming() {
    let venue = Exchange::start(Venue::Kalshi).await.unwrap();
    let (_, refused) = fifty("P");
    venue.reject(&refused, "Unknown market ticker", 8);
    let options = PoolOptions::default()
        .max_per_connection(10)
        .max_connections(5)
        .connect_spacing(Duration::from_millis(1));
    let pool = Pool::new(fast(&venue.url()).build().unwrap(), Kalshi::new, options).unwrap();
    let (topics, _) = fifty("P");
    let mut set = pool.subscribe_set(topics).await.expect("the set opens");
    assert_eq!(pool.connections(), 5);
    one_refused_among_fifty(&mut set, &venue, "P").await;
    pool.close().await.unwrap();
}

/// A topic no connection can take (every allowed one is full) is refused
/// alone too, with the pool's own error and a client id of its own.
#[tokio::test]
async fn a_topic_that_finds_the_pool_full_is_refused_alone() {
    let venue = Exchange::start(Venue::Kalshi).await.unwrap();
    let options = PoolOptions::default()
        .max_per_connection(2)
        .max_connections(2)
        .connect_spacing(Duration::from_millis(1));
    let pool = Pool::new(fast(&venue.url()).build().unwrap(), Kalshi::new, options).unwrap();
    let topics: Vec<Topic> = ["F0", "F1", "F2", "F3", "F4"].map(ticker).to_vec();
    let mut set = pool.subscribe_set(topics).await.expect("the set opens");
    assert_eq!(set.len(), 5);
    let client_ids: BTreeSet<ClientId> = set.members().map(|(_, id, _)| id).collect();
    assert_eq!(client_ids.len(), 5, "unique within the pool");
    for symbol in ["F0", "F1", "F2", "F3"] {
        venue.publish(symbol, ticker_payload(Venue::Kalshi, symbol, 1));
    }
    let mut seen = read(&mut set, 4).await;
    read_refusal(&mut set, &mut seen).await;
    assert_eq!(seen.data.len(), 4);
    let (_, _, error) = &seen.errors["F4"];
    assert!(
        matches!(error, Error::Config(text) if text.contains("pool is full")),
        "{error:?}"
    );
    assert_eq!(set.len(), 4);
    pool.close().await.unwrap();
}
