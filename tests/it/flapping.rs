//! Flapping venues and quick recovery (issue 11, items 1 and 8), on a paused
//! clock against the real test exchange.
//!
//! - A venue that keeps accepting us is never given up on: `max_attempts`
//!   counts consecutive attempts that never became a working session, and a
//!   session that worked resets it however short it was. The delay still grows
//!   (capped) while sessions stay short.
//! - After a session that was healthy for `reset_after`, the first retry goes
//!   out within a few milliseconds; a second failure backs off as before.
//! - A venue whose sessions work but are short (it drops every connection
//!   ~800 ms after the acks while streaming, issue 19) sees us connected at
//!   least 90% of the time, with a median outage under 20 ms and never more
//!   than two attempts a second: on a paused clock and on a real one. A venue
//!   that drops us before any ack, or within milliseconds of it, still backs
//!   off to the cap, and only the attempts that never worked count towards
//!   `max_attempts`.

use crate::support;

use std::time::Duration;

use futures::StreamExt;
use resilient_ws::{
    Backoff, Client, Config, ConfigBuilder, ConnectionState, Error, Event, Events, Kalshi,
    Subscription, Topic, Update,
};
use support::exchange::{ticker_payload, AckMode, DropAfter, Exchange, Venue};
use support::SOON;
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

/// What a client's events showed while a venue kept dropping it.
#[derive(Debug, Default)]
struct Measured {
    /// The length of the run.
    run: Duration,
    /// Time spent connected (`Connected` to `Disconnected`).
    connected: Duration,
    /// Each `Disconnected` to the next `Connected`.
    outages: Vec<Duration>,
    /// When each attempt started (`Connecting`).
    attempts: Vec<Instant>,
    /// Every `ReconnectScheduled`: the attempt number and the delay.
    scheduled: Vec<(u32, Duration)>,
}

impl Measured {
    fn connected_share(&self) -> f64 {
        self.connected.as_secs_f64() / self.run.as_secs_f64()
    }

    fn median_outage(&self) -> Duration {
        let mut outages = self.outages.clone();
        outages.sort();
        outages.get(outages.len() / 2).copied().unwrap_or_default()
    }

    fn max_outage(&self) -> Duration {
        self.outages.iter().max().copied().unwrap_or_default()
    }

    /// The most attempts that started within any `window`.
    fn most_attempts_within(&self, window: Duration) -> usize {
        (0..self.attempts.len())
            .map(|i| {
                let from = self.attempts[i];
                self.attempts[i..]
                    .iter()
                    .take_while(|t| **t < from + window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    fn attempts_per_second(&self) -> f64 {
        self.attempts.len() as f64 / self.run.as_secs_f64()
    }

    fn summary(&self) -> String {
        format!(
            "connected {:.1}% of {:?}, {} drops, median outage {:?}, max outage {:?}, \
             {} attempts ({:.2}/s, at most {} within 1 s)",
            100.0 * self.connected_share(),
            self.run,
            self.outages.len(),
            self.median_outage(),
            self.max_outage(),
            self.attempts.len(),
            self.attempts_per_second(),
            self.most_attempts_within(Duration::from_secs(1)),
        )
    }
}

/// Follows `events` for `run` (the client is connected when it starts).
async fn measure(events: &mut Events, client: &Client, run: Duration) -> Measured {
    let start = Instant::now();
    let end = tokio::time::sleep_until(start + run);
    tokio::pin!(end);
    let mut measured = Measured {
        run,
        ..Measured::default()
    };
    let mut up_since = Some(start);
    let mut down_since = None;
    loop {
        tokio::select! {
            _ = &mut end => break,
            event = events.next() => match event {
                Some(Event::Connecting { .. }) => measured.attempts.push(Instant::now()),
                Some(Event::Connected { .. }) => {
                    let now = Instant::now();
                    up_since = Some(now);
                    if let Some(since) = down_since.take() {
                        measured.outages.push(now - since);
                    }
                }
                Some(Event::Disconnected { .. }) => {
                    let now = Instant::now();
                    if let Some(since) = up_since.take() {
                        measured.connected += now - since;
                    }
                    down_since = Some(now);
                }
                Some(Event::ReconnectScheduled { attempt, delay }) => {
                    measured.scheduled.push((attempt, delay));
                }
                Some(_) => {}
                None => panic!("events ended: {:?}", client.closed().await),
            },
            result = client.closed() => panic!("the client finished: {result:?}"),
        }
    }
    if let Some(since) = up_since {
        measured.connected += Instant::now() - since;
    }
    measured
}

/// Drains `subs` in the background; each task returns how many data items it saw.
fn drain(subs: Vec<Subscription>) -> Vec<tokio::task::JoinHandle<u64>> {
    subs.into_iter()
        .map(|mut sub| {
            tokio::spawn(async move {
                let mut data = 0;
                while let Some(item) = sub.next().await {
                    match item {
                        Ok(Update::Data(_)) => data += 1,
                        Ok(_) => {}
                        Err(error) => panic!("{}: {error}", sub.topic()),
                    }
                }
                data
            })
        })
        .collect()
}

/// A venue that streams and drops every connection 800 ms after its first
/// ack, against the default policy, followed for `run`.
async fn against_a_venue_dropping_every_800_ms(run: Duration, every: Duration) -> Measured {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    exchange.set_drop_after(Some(DropAfter::Ack(Duration::from_millis(800))));
    let symbols = SYMBOLS.iter().map(|s| s.to_string()).collect();
    let _stream = exchange.start_stream(symbols, every);
    let (client, _messages) =
        Client::connect(defaults(&exchange.url()).build().unwrap(), Kalshi::new())
            .await
            .unwrap();
    let mut events = client.events();
    let drained = drain(subscribed(&client).await);
    let measured = measure(&mut events, &client, run).await;
    client.close().await.unwrap();
    for (symbol, task) in SYMBOLS.iter().zip(drained) {
        assert!(task.await.unwrap() > 0, "{symbol}: no data");
    }
    exchange.shutdown().await;
    measured
}

/// Issue 19's rule, checked with margins: connected at least 90% of the
/// time, a median outage under 20 ms, never more than two attempts a second.
fn assert_mostly_connected(measured: &Measured) {
    let summary = measured.summary();
    println!("{summary}");
    assert!(measured.outages.len() >= 5, "{summary}");
    assert!(measured.connected_share() >= 0.9, "{summary}");
    assert!(
        measured.median_outage() < Duration::from_millis(20),
        "{summary}"
    );
    assert!(measured.attempts_per_second() <= 2.0, "{summary}");
    // A real clock may see two attempts a second apart a little closer.
    assert!(
        measured.most_attempts_within(Duration::from_millis(900)) <= 2,
        "{summary}"
    );
    for (attempt, delay) in &measured.scheduled {
        assert_eq!(*attempt, 1, "{summary}: a working session resets the count");
        assert!(*delay <= Duration::from_secs(1), "{summary}: {delay:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_venue_that_drops_every_800_ms_keeps_us_connected_on_a_paused_clock() {
    let measured =
        against_a_venue_dropping_every_800_ms(Duration::from_secs(60), Duration::from_millis(10))
            .await;
    assert_mostly_connected(&measured);
}

#[tokio::test]
async fn a_venue_that_drops_every_800_ms_keeps_us_connected_on_a_real_socket() {
    // Real time, so this test takes this long; FLAPPING_SECS measures longer.
    let secs = std::env::var("FLAPPING_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let measured =
        against_a_venue_dropping_every_800_ms(Duration::from_secs(secs), Duration::from_millis(1))
            .await;
    assert_mostly_connected(&measured);
}

/// Spawns a client with `policy` whose subscription waits for its ack from
/// the start, so every session it replays in is answered or never worked.
fn pending_client(exchange: &Exchange, policy: Backoff) -> (Client, Events) {
    let config = defaults(&exchange.url()).backoff(policy).build().unwrap();
    let (client, _messages) = Client::spawn(config, Kalshi::new());
    let events = client.events();
    let subscriber = client.clone();
    tokio::spawn(async move {
        // Held (and drained) until the client finishes.
        if let Ok(mut sub) = subscriber.subscribe(Topic::new("ticker").symbol("A")).await {
            while sub.next().await.is_some() {}
        }
    });
    (client, events)
}

/// Every `ReconnectScheduled` until the client finishes, and its result.
async fn scheduled_until_closed(
    events: &mut Events,
    client: &Client,
) -> (Vec<(u32, Duration)>, Result<(), Error>) {
    let mut scheduled = Vec::new();
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Event::ReconnectScheduled { attempt, delay }) => scheduled.push((attempt, delay)),
                Some(_) => {}
                None => return (scheduled, client.closed().await),
            },
            result = client.closed() => return (scheduled, result),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_venue_that_closes_before_any_ack_backs_off_to_the_cap_and_gives_up() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    exchange.set_ack_mode(AckMode::Never);
    // Up for most of a second each time, but never answering.
    exchange.set_drop_after(Some(DropAfter::Handshake(Duration::from_millis(800))));
    let policy = Backoff::default().seed(31);
    let (client, mut events) = pending_client(&exchange, policy.clone());
    let (scheduled, result) = scheduled_until_closed(&mut events, &client).await;
    match result {
        Err(Error::Reconnect { attempts, .. }) => assert_eq!(attempts, 10),
        other => panic!("{other:?}"),
    }
    // Nine delays, each the full jittered step: attempt n+2 waits at most
    // base(n), and the steps reach the cap.
    assert_eq!(scheduled.len(), 9, "{scheduled:?}");
    for (n, (attempt, delay)) in scheduled.iter().enumerate() {
        assert_eq!(*attempt as usize, n + 2, "{scheduled:?}");
        let bound = policy.base_delay(n as u32).max(policy.attempt_window());
        assert!(*delay <= bound, "{scheduled:?}");
    }
    assert_eq!(policy.base_delay(6), policy.cap);
    let at_cap: Duration = scheduled[6..].iter().map(|(_, d)| *d).sum();
    assert!(at_cap > policy.cap / 2, "{scheduled:?}");
    assert_eq!(exchange.handshakes(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_venue_that_drops_within_milliseconds_of_the_acks_backs_off_to_the_cap() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    exchange.set_drop_after(Some(DropAfter::Ack(Duration::from_millis(2))));
    let policy = Backoff::default().seed(37);
    let cap = policy.cap;
    let (client, mut events) = pending_client(&exchange, policy);
    let measured = measure(&mut events, &client, Duration::from_secs(600)).await;
    let summary = measured.summary();
    println!("{summary}");
    // Sessions worked, so nothing counts towards `max_attempts`: no give-up.
    assert!(measured.scheduled.len() > 20, "{summary}");
    for (attempt, _) in &measured.scheduled {
        assert_eq!(*attempt, 1, "{summary}");
    }
    // The delays grew to the cap's range and the attempts thinned out.
    assert!(
        measured.scheduled.iter().any(|(_, d)| *d > cap / 2),
        "{summary}: {:?}",
        measured.scheduled
    );
    assert!(
        measured.most_attempts_within(Duration::from_secs(1)) <= 2,
        "{summary}"
    );
    let last_minute = measured
        .attempts
        .iter()
        .filter(|t| **t > Instant::now() - Duration::from_secs(60))
        .count();
    assert!(
        last_minute <= 12,
        "{summary}: {last_minute} in the last minute"
    );
    assert!(measured.connected_share() < 0.1, "{summary}");
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_venue_that_closes_before_any_ack_backs_off_and_gives_up_on_a_real_socket() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    exchange.set_ack_mode(AckMode::Never);
    exchange.set_drop_after(Some(DropAfter::Handshake(Duration::from_millis(5))));
    // Default steps, fewer of them, so the real wait stays a few seconds.
    let policy = Backoff::default().max_attempts(Some(4)).seed(41);
    let (client, mut events) = pending_client(&exchange, policy.clone());
    let started = Instant::now();
    let (scheduled, result) =
        tokio::time::timeout(SOON, scheduled_until_closed(&mut events, &client))
            .await
            .expect("gives up within SOON");
    match result {
        Err(Error::Reconnect { attempts, .. }) => assert_eq!(attempts, 4),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        scheduled
            .iter()
            .map(|(attempt, _)| *attempt)
            .collect::<Vec<_>>(),
        vec![2, 3, 4],
        "every attempt that never worked counts"
    );
    for (n, (_, delay)) in scheduled.iter().enumerate() {
        let bound = policy.base_delay(n as u32).max(policy.attempt_window());
        assert!(*delay <= bound, "{scheduled:?}");
    }
    // Four attempts: the last one at least a window after the second.
    assert!(
        started.elapsed() >= policy.attempt_window(),
        "{scheduled:?}"
    );
    assert_eq!(exchange.handshakes(), 4);
}
