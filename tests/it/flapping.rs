//! Flapping venues and quick recovery (issue 11, items 1 and 8), on a paused
//! clock against the real test exchange.
//!
//! - A venue that keeps accepting us is never given up on: `max_attempts`
//!   counts consecutive attempts that never became a working session, and a
//!   session that worked resets it however short it was. The delay still grows
//!   (capped) while sessions stay short.
//! - After a session that was healthy for `reset_after`, the first retry goes
//!   out within a few milliseconds; a second failure backs off as before.

use crate::support;

use std::time::Duration;

use futures::StreamExt;
use resilient_ws::{
    Backoff, Client, Config, ConfigBuilder, ConnectionState, Error, Event, Events, Kalshi,
    Subscription, Topic, Update,
};
use support::exchange::{ticker_payload, AckMode, Exchange, Venue};
use tokio::time::Instant;

const SYMBOLS: [&str; 3] = ["A", "B", "C"];

/// Library defaults, except a seeded RNG and no liveness timers: on a paused
/// clock only the faults the test makes may end a session.
fn defaults(url: &str) -> ConfigBuilder {
    Config::builder(url)
        .backoff(Backoff::default().seed(23))
        .ping_interval(Duration::from_secs(3600))
        .idle_timeout(None)
}

async fn subscribed(client: &Client) -> Vec<Subscription> {
    let topics = SYMBOLS
        .iter()
        .map(|s| Topic::new("ticker").symbol(*s))
        .collect();
    client
        .subscribe_many(topics)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// The next event matching `pred` (virtual time: no real-time bound needed,
/// but a closed client ends the wait with a panic naming the result).
async fn event(events: &mut Events, client: &Client, pred: impl Fn(&Event) -> bool) -> Event {
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(event) if pred(&event) => return event,
                Some(_) => {}
                None => panic!("events ended: {:?}", client.closed().await),
            },
            result = client.closed() => panic!("the client finished: {result:?}"),
        }
    }
}

/// Waits until `sub` was re-established on the new connection.
async fn resubscribed(sub: &mut Subscription) {
    loop {
        match sub.next().await {
            Some(Ok(Update::Resubscribed { .. })) => return,
            Some(Ok(_)) => {}
            other => panic!("{}: {other:?}", sub.topic()),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn five_hundred_short_working_sessions_never_exhaust_the_attempts() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let cap = Backoff::default().cap;
    let (client, _messages) =
        Client::connect(defaults(&exchange.url()).build().unwrap(), Kalshi::new())
            .await
            .unwrap();
    let mut subs = subscribed(&client).await;
    let mut events = client.events();
    let mut delays = Vec::new();
    for session in 1..=500 {
        if session > 1 {
            event(&mut events, &client, |e| {
                matches!(e, Event::Connected { .. })
            })
            .await;
            for sub in &mut subs {
                resubscribed(sub).await;
            }
        }
        // The session worked (every subscription acknowledged); now the venue drops it.
        exchange.abort_all();
        match event(&mut events, &client, |e| {
            matches!(e, Event::ReconnectScheduled { .. })
        })
        .await
        {
            Event::ReconnectScheduled { delay, attempt } => {
                assert!(delay <= cap, "session {session}: {delay:?} above the cap");
                assert_eq!(
                    attempt, 1,
                    "session {session}: a working session resets the count"
                );
                delays.push(delay);
            }
            _ => unreachable!(),
        }
    }
    // The delay kept growing for short sessions: most of the later ones are
    // far above the first step.
    let late_long = delays[100..]
        .iter()
        .filter(|d| **d > Duration::from_secs(1))
        .count();
    assert!(late_long > 300, "{late_long} of 400 late delays above 1 s");
    // Every stream is alive and gets its data.
    event(&mut events, &client, |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;
    for sub in &mut subs {
        resubscribed(sub).await;
    }
    for symbol in SYMBOLS {
        exchange.publish(symbol, ticker_payload(Venue::Kalshi, symbol, 1));
    }
    for sub in &mut subs {
        match sub.next().await {
            Some(Ok(Update::Data(_))) => {}
            other => panic!("{}: {other:?}", sub.topic()),
        }
    }
    assert_ne!(*client.state().borrow(), ConnectionState::Closed);
    client.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn ten_refused_connects_still_give_up_with_defaults() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    exchange.set_refuse(true);
    let (client, _messages) =
        Client::spawn(defaults(&exchange.url()).build().unwrap(), Kalshi::new());
    match client.closed().await {
        Err(Error::Reconnect { attempts, .. }) => assert_eq!(attempts, 10),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn sessions_that_die_before_their_acks_count_as_failed_attempts() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let (client, _messages) =
        Client::connect(defaults(&exchange.url()).build().unwrap(), Kalshi::new())
            .await
            .unwrap();
    exchange.set_ack_mode(AckMode::Never);
    let mut events = client.events();
    let pending = {
        let client = client.clone();
        tokio::spawn(async move { client.subscribe(Topic::new("ticker").symbol("A")).await })
    };
    // Every connection is dropped while its subscription waits for the ack.
    exchange.abort_all();
    let result = loop {
        tokio::select! {
            event = events.next() => if let Some(Event::Connected { .. }) = event {
                exchange.abort_all();
            },
            result = client.closed() => break result,
        }
    };
    match result {
        Err(Error::Reconnect { attempts, .. }) => assert_eq!(attempts, 10),
        other => panic!("{other:?}"),
    }
    assert!(pending.await.unwrap().is_err());
}

#[tokio::test(start_paused = true)]
async fn after_a_healthy_session_the_first_retry_is_quick_and_the_second_backs_off() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let policy = Backoff::default().seed(5);
    let (client, _messages) =
        Client::connect(defaults(&exchange.url()).build().unwrap(), Kalshi::new())
            .await
            .unwrap();
    let mut subs = subscribed(&client).await;
    let mut events = client.events();
    // Healthy for longer than `reset_after` (virtual time).
    tokio::time::sleep(policy.reset_after + Duration::from_secs(1)).await;

    exchange.abort_all();
    let dropped_at = Instant::now();
    match event(&mut events, &client, |e| {
        matches!(e, Event::ReconnectScheduled { .. })
    })
    .await
    {
        Event::ReconnectScheduled { delay, .. } => {
            assert!(
                delay <= Duration::from_millis(5),
                "first retry after {delay:?}"
            )
        }
        _ => unreachable!(),
    }
    event(&mut events, &client, |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;
    let took = dropped_at.elapsed();
    assert!(
        took <= Duration::from_millis(5),
        "reconnected after {took:?}"
    );
    for sub in &mut subs {
        resubscribed(sub).await;
    }

    // Healthy again, then a drop whose quick retry is refused: the retry
    // after that gets the full jittered first step, then the next doubles.
    tokio::time::sleep(policy.reset_after + Duration::from_secs(1)).await;
    exchange.set_refuse(true);
    exchange.abort_all();
    let mut scheduled = Vec::new();
    while scheduled.len() < 3 {
        if let Event::ReconnectScheduled { delay, attempt } = event(&mut events, &client, |e| {
            matches!(e, Event::ReconnectScheduled { .. })
        })
        .await
        {
            scheduled.push((attempt, delay));
        }
    }
    assert!(scheduled[0].1 <= Duration::from_millis(5), "{scheduled:?}");
    assert_eq!(scheduled[1].0, 2, "{scheduled:?}");
    assert!(scheduled[1].1 <= policy.initial, "{scheduled:?}");
    assert!(scheduled[2].1 <= policy.initial * 2, "{scheduled:?}");
    assert!(
        scheduled[1].1 + scheduled[2].1 > Duration::from_millis(5),
        "the full backoff applies from the second failure: {scheduled:?}"
    );
    exchange.set_refuse(false);
    event(&mut events, &client, |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;
    client.close().await.unwrap();
}
