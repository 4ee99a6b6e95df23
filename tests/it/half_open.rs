//! Half-open sockets are found within 10 s with the default liveness
//! settings, and a quiet feed whose peer answers pings is not recycled
//! (issue 11, item 9), on a paused clock against the real test exchange.

use crate::support;

use std::time::Duration;

use futures::StreamExt;
use resilient_ws::{
    Backoff, Client, Config, ConfigBuilder, Error, Event, Events, Kalshi, Operation, Topic,
};
use support::exchange::{Exchange, Venue};
use tokio::time::Instant;

/// Library defaults (liveness included), with a seeded backoff.
fn defaults(url: &str) -> ConfigBuilder {
    Config::builder(url).backoff(Backoff::default().seed(8))
}

/// Waits for the next disconnect, or `None` if `within` passes first.
async fn disconnect_within(events: &mut Events, within: Duration) -> Option<Error> {
    tokio::time::timeout(within, async {
        loop {
            match events.next().await {
                Some(Event::Disconnected { cause }) => return cause,
                Some(_) => {}
                None => panic!("events ended"),
            }
        }
    })
    .await
    .ok()
}

#[tokio::test(start_paused = true)]
async fn a_half_open_socket_is_detected_within_ten_seconds_with_defaults() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let (client, _messages) =
        Client::connect(defaults(&exchange.url()).build().unwrap(), Kalshi::new())
            .await
            .unwrap();
    let _sub = client
        .subscribe(Topic::new("ticker").symbol("A"))
        .await
        .unwrap();
    let mut events = client.events();
    // Worst case: silence starts just after a pong came back.
    tokio::time::sleep(Duration::from_millis(4_900)).await;
    exchange.set_silent(true);
    let silent_at = Instant::now();
    let cause = disconnect_within(&mut events, Duration::from_secs(60))
        .await
        .expect("the dead socket is noticed");
    let took = silent_at.elapsed();
    assert!(
        matches!(
            cause,
            Error::Timeout {
                operation: Operation::Ping,
                ..
            }
        ),
        "{cause:?}"
    );
    assert!(took <= Duration::from_secs(10), "detected after {took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_quiet_feed_that_answers_pings_stays_up() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    // Defaults: pings every 5 s keep being answered and no data comes for 10
    // minutes; the idle timeout is off by default (it recycled this feed at
    // 60 s before), so nothing may end the session.
    let (client, _messages) =
        Client::connect(defaults(&exchange.url()).build().unwrap(), Kalshi::new())
            .await
            .unwrap();
    let _sub = client
        .subscribe(Topic::new("ticker").symbol("A"))
        .await
        .unwrap();
    let mut events = client.events();
    let before = client.stats();
    assert!(
        disconnect_within(&mut events, Duration::from_secs(600))
            .await
            .is_none(),
        "recycled a live feed"
    );
    let stats = client.stats();
    let pings = stats.frames_out - before.frames_out;
    assert!(pings >= 100, "{pings} pings in 600 s");
    assert_eq!((stats.ping_timeouts, stats.idle_timeouts), (0, 0));
    assert_eq!(stats.reconnects, 0);
    client.close().await.unwrap();

    // The opt-in idle timeout still recycles a feed that sends no data.
    let (client, _messages) = Client::connect(
        defaults(&exchange.url())
            .idle_timeout(Some(Duration::from_secs(60)))
            .build()
            .unwrap(),
        Kalshi::new(),
    )
    .await
    .unwrap();
    let _sub = client
        .subscribe(Topic::new("ticker").symbol("B"))
        .await
        .unwrap();
    let mut events = client.events();
    let cause = disconnect_within(&mut events, Duration::from_secs(90)).await;
    assert!(
        matches!(
            cause,
            Some(Error::Timeout {
                operation: Operation::Receive,
                ..
            })
        ),
        "{cause:?}"
    );
    client.close().await.unwrap();
}
