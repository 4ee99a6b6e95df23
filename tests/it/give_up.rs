//! Give-up paths: whatever makes the client stop for good, every stream (each
//! subscription and the `Messages` stream) yields the terminal error as its last
//! item and ends, `Client::closed()` resolves with it, and later calls return it,
//! all within a bounded (virtual, `start_paused`) time.
//!
//! Covered elsewhere, not repeated here:
//! - refused from the first attempt: `connection.rs::refused_connections_end_the_stream_with_the_terminal_error`
//! - a handshake that never finishes, without subscriptions:
//!   `connection.rs::a_handshake_that_never_finishes_times_out_and_gives_up`
//! - a flapping server: `flapping.rs` (working sessions never exhaust the attempts; sessions that die before their acks do)
//! - configurable permanent codes: `connection.rs::the_permanent_close_codes_are_configurable`
//! - a token source that never works: `venue_errors.rs::a_token_source_that_never_works_ends_with_the_terminal_error`
//! - a close frame with an invalid code (reported as 1002): `bad_input.rs::the_bad_input_matrix_kalshi`

use crate::support;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use resilient_ws::{
    Backoff, Client, Config, ConfigBuilder, ConnectFuture, ConnectionError, Connector, Error,
    Kalshi, Messages, Operation, Subscription, Topic, Transport,
};
use support::exchange::{Exchange, Venue};
use tokio::time::Instant;
use tungstenite::client::IntoClientRequest;

const SYMBOLS: [&str; 3] = ["A", "B", "C"];

fn config(url: &str) -> ConfigBuilder {
    Config::builder(url)
        .backoff(
            Backoff::new(Duration::from_secs(1), Duration::from_secs(8))
                .max_attempts(Some(3))
                .seed(11),
        )
        .connect_timeout(Duration::from_secs(2))
        // No liveness timers: only the fault under test can end anything.
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

/// Every stream ends with an error `is_terminal` accepts as its last item;
/// `closed()` and later calls return it. Returns the terminal error.
async fn all_end_with(
    client: &Client,
    subs: Vec<Subscription>,
    mut messages: Messages,
    is_terminal: impl Fn(&Error) -> bool,
) -> Error {
    for mut sub in subs {
        let topic = sub.topic().to_string();
        let last = loop {
            match sub.next().await {
                Some(Ok(_)) => continue,
                Some(Err(error)) => break error,
                None => panic!("{topic}: ended without the terminal error"),
            }
        };
        assert!(is_terminal(&last), "{topic}: {last:?}");
        assert!(sub.next().await.is_none(), "{topic}: ends after the error");
    }
    match messages.next().await {
        Some(Err(error)) => assert!(is_terminal(&error), "messages: {error:?}"),
        other => panic!("messages: {other:?}"),
    }
    assert!(messages.next().await.is_none());
    let terminal = client.closed().await.expect_err("a terminal error");
    assert!(is_terminal(&terminal), "closed(): {terminal:?}");
    match client.subscribe(Topic::new("ticker").symbol("LATE")).await {
        Err(error) => assert!(is_terminal(&error), "subscribe after: {error:?}"),
        Ok(_) => panic!("subscribed after giving up"),
    }
    match client.send("late").await {
        Err(error) => assert!(is_terminal(&error), "send after: {error:?}"),
        Ok(()) => panic!("sent after giving up"),
    }
    terminal
}

fn io_kind(error: &Error) -> Option<io::ErrorKind> {
    match error {
        Error::Connection { source, .. } => match source.downcast_ref::<ConnectionError>() {
            Some(ConnectionError::Io { kind, .. }) => Some(*kind),
            _ => None,
        },
        _ => None,
    }
}

#[tokio::test(start_paused = true)]
async fn every_permanent_close_code_ends_every_stream() {
    for code in [1002, 1003, 1007, 1008, 1009, 1010, 4000, 4001, 4999] {
        let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
        let (client, messages) =
            Client::connect(config(&exchange.url()).build().unwrap(), Kalshi::new())
                .await
                .unwrap();
        let subs = subscribed(&client).await;
        let started = Instant::now();
        exchange.close_all(code, "permanent");
        let terminal = all_end_with(
            &client,
            subs,
            messages,
            |e| matches!(e, Error::Closed { code: c, .. } if *c == code),
        )
        .await;
        assert!(!terminal.is_retryable(), "{code}");
        assert!(started.elapsed() <= Duration::from_secs(1), "{code}");
        assert_eq!(exchange.handshakes(), 1, "{code}: never reconnected");
        exchange.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn max_attempts_end_every_subscription_with_the_reconnect_error() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let (client, messages) =
        Client::connect(config(&exchange.url()).build().unwrap(), Kalshi::new())
            .await
            .unwrap();
    let subs = subscribed(&client).await;
    let started = Instant::now();
    exchange.set_refuse(true);
    exchange.abort_all();
    let terminal = all_end_with(&client, subs, messages, |e| {
        matches!(e, Error::Reconnect { attempts: 3, .. })
    })
    .await;
    let Error::Reconnect { last_error, .. } = &terminal else {
        unreachable!()
    };
    assert_eq!(
        io_kind(last_error),
        Some(io::ErrorKind::ConnectionRefused),
        "{last_error:?}"
    );
    // The lost session and two refused attempts: two delays of at most 1 s and 2 s.
    assert!(
        started.elapsed() <= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    exchange.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_server_that_accepts_tcp_but_never_finishes_the_handshake_ends_every_subscription() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let (client, messages) =
        Client::connect(config(&exchange.url()).build().unwrap(), Kalshi::new())
            .await
            .unwrap();
    let subs = subscribed(&client).await;
    let started = Instant::now();
    exchange.set_handshake_delay(Some(Duration::MAX));
    exchange.abort_all();
    let terminal = all_end_with(&client, subs, messages, |e| {
        matches!(e, Error::Reconnect { attempts: 3, .. })
    })
    .await;
    let Error::Reconnect { last_error, .. } = &terminal else {
        unreachable!()
    };
    assert!(
        matches!(
            **last_error,
            Error::Timeout {
                operation: Operation::Connect,
                timeout
            } if timeout == Duration::from_secs(2)
        ),
        "{last_error:?}"
    );
    // The session that worked does not count as a failed attempt: three
    // attempts time out (2 s each) after delays of at most 1 s, 2 s and 4 s.
    assert!(
        started.elapsed() <= Duration::from_secs(13),
        "{:?}",
        started.elapsed()
    );
    exchange.shutdown().await;
}

/// Connects over TCP for the first `working` attempts, then fails like a name
/// lookup would, before any socket is opened.
struct LookupFailsAfter {
    addr: SocketAddr,
    working: u32,
    calls: AtomicU32,
}

impl Connector for LookupFailsAfter {
    fn connect<'a>(&'a self, url: &'a str) -> ConnectFuture<'a> {
        Box::pin(async move {
            let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if call > self.working {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "failed to lookup address information: Name or service not known",
                ));
            }
            let request = url
                .into_client_request()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            let stream = tokio::net::TcpStream::connect(self.addr).await?;
            Ok(Transport {
                stream: Box::new(stream),
                request,
            })
        })
    }
}

fn is_lookup_failure(error: &Error) -> bool {
    matches!(error, Error::Reconnect { attempts: 3, last_error }
        if io_kind(last_error) == Some(io::ErrorKind::NotFound))
}

#[tokio::test(start_paused = true)]
async fn a_name_lookup_that_starts_failing_ends_every_subscription() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let config = config("ws://feed.example.invalid/")
        .connector(LookupFailsAfter {
            addr: exchange.addr(),
            working: 1,
            calls: AtomicU32::new(0),
        })
        .build()
        .unwrap();
    let (client, messages) = Client::connect(config, Kalshi::new()).await.unwrap();
    let subs = subscribed(&client).await;
    let started = Instant::now();
    exchange.abort_all();
    all_end_with(&client, subs, messages, is_lookup_failure).await;
    assert!(
        started.elapsed() <= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(exchange.handshakes(), 1);
    exchange.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_name_lookup_that_never_works_fails_connect_and_pending_subscribes() {
    let connector = LookupFailsAfter {
        addr: SocketAddr::from(([127, 0, 0, 1], 9)),
        working: 0,
        calls: AtomicU32::new(0),
    };
    let config = config("ws://feed.example.invalid/")
        .connector(connector)
        .build()
        .unwrap();
    let started = Instant::now();
    // `connect` waits for the first connection, so it returns the terminal error.
    match Client::connect(config.clone(), Kalshi::new()).await {
        Err(error) => assert!(is_lookup_failure(&error), "{error:?}"),
        Ok(_) => panic!("connected without a name"),
    }
    assert!(started.elapsed() <= Duration::from_secs(3));
    // `spawn` returns at once: a subscribe made meanwhile fails with the same error.
    let (client, messages) = Client::spawn(config, Kalshi::new());
    match client.subscribe(Topic::new("ticker").symbol("A")).await {
        Err(error) => assert!(is_lookup_failure(&error), "{error:?}"),
        Ok(_) => panic!("subscribed without a connection"),
    }
    all_end_with(&client, Vec::new(), messages, is_lookup_failure).await;
}
