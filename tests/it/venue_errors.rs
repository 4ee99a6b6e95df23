//! Venue errors (issue 7): every documented Kraken string and the Kalshi codes
//! are classified, retry hints lengthen the next backoff delay, and the token
//! source is called before connecting and again when the session is invalid.

use crate::support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilient_ws::{
    Backoff, Client, Config, Error, Event, Kalshi, Kraken, TokenError, Topic, VenueErrorKind,
    KRAKEN_LOCKOUT,
};
use serde_json::Value;
use support::exchange::{Exchange, Venue};
use support::{next, wait_event, SOON};

fn config(url: &str) -> resilient_ws::ConfigBuilder {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(10), Duration::from_millis(200)).jitter(0.0))
        .idle_timeout(None)
        .rate_limit(1000, Duration::from_secs(1))
}

#[tokio::test]
async fn every_documented_kraken_error_reaches_the_caller_classified() {
    let cases = [
        (
            "EService:Unavailable",
            VenueErrorKind::Transient,
            true,
            None,
        ),
        ("EService:Busy", VenueErrorKind::Transient, true, None),
        (
            "EGeneral:Internal error",
            VenueErrorKind::Transient,
            true,
            None,
        ),
        (
            "EGeneral:Temporary lockout",
            VenueErrorKind::Lockout,
            true,
            Some(KRAKEN_LOCKOUT),
        ),
        (
            "EOrder:Rate limit exceeded",
            VenueErrorKind::RateLimited,
            true,
            None,
        ),
        ("EAPI:Invalid key", VenueErrorKind::Permanent, false, None),
        (
            "EAPI:Invalid signature",
            VenueErrorKind::Permanent,
            false,
            None,
        ),
        (
            "EGeneral:Permission denied",
            VenueErrorKind::Permanent,
            false,
            None,
        ),
        (
            "EGeneral:Invalid arguments",
            VenueErrorKind::Permanent,
            false,
            None,
        ),
        (
            "EQuery:Unknown asset pair",
            VenueErrorKind::Permanent,
            false,
            None,
        ),
        (
            "ESession:Invalid session",
            VenueErrorKind::SessionExpired,
            true,
            None,
        ),
        (
            "Currency pair not supported XBT/USD",
            VenueErrorKind::Permanent,
            false,
            None,
        ),
        (
            "Rate limit for snapshot requests exceeded",
            VenueErrorKind::RateLimited,
            true,
            None,
        ),
    ];
    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    let (client, _messages) =
        Client::connect(config(&exchange.url()).build().unwrap(), Kraken::new())
            .await
            .unwrap();
    for (i, (text, kind, retryable, retry_after)) in cases.into_iter().enumerate() {
        let symbol = format!("S{i}/USD");
        exchange.reject(&symbol, text, 0);
        let error = client
            .subscribe(Topic::new("ticker").symbol(&symbol))
            .await
            .expect_err(text);
        let venue = error
            .venue_error()
            .unwrap_or_else(|| panic!("{text}: {error:?}"));
        assert_eq!((venue.kind, venue.raw.as_str()), (kind, text));
        assert_eq!(
            (error.is_retryable(), error.retry_after()),
            (retryable, retry_after),
            "{text}"
        );
        assert!(matches!(error, Error::Subscription { .. }));
    }
    client.close().await.unwrap();
}

#[tokio::test]
async fn kalshi_errors_map_the_same_way() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let (client, _messages) =
        Client::connect(config(&exchange.url()).build().unwrap(), Kalshi::new())
            .await
            .unwrap();
    let cases = [
        ("A", "Internal error", 17, VenueErrorKind::Transient),
        ("B", "Already subscribed", 6, VenueErrorKind::Permanent),
        ("C", "Unknown channel name", 8, VenueErrorKind::Permanent),
        ("D", "Rate limit exceeded", 0, VenueErrorKind::RateLimited),
    ];
    for (symbol, message, code, kind) in cases {
        exchange.reject(symbol, message, code);
        let error = client
            .subscribe(Topic::new("ticker").symbol(symbol))
            .await
            .expect_err(message);
        let venue = error.venue_error().expect("a venue error");
        assert_eq!(
            (venue.code, venue.kind),
            (Some(i64::from(code)), kind),
            "{message}"
        );
    }
    client.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_lockout_lengthens_the_next_backoff_delay() {
    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    exchange.reject("LOCK/USD", "EGeneral:Temporary lockout", 0);
    let (client, _messages) =
        Client::connect(config(&exchange.url()).build().unwrap(), Kraken::new())
            .await
            .unwrap();
    let mut events = client.events();
    let error = client
        .subscribe(Topic::new("ticker").symbol("LOCK/USD"))
        .await
        .unwrap_err();
    assert_eq!(error.retry_after(), Some(KRAKEN_LOCKOUT));
    exchange.abort_all();
    match wait_event(&mut events, |e| {
        matches!(e, Event::ReconnectScheduled { .. })
    })
    .await
    {
        Event::ReconnectScheduled { delay, .. } => {
            assert!(delay > KRAKEN_LOCKOUT - Duration::from_secs(5), "{delay:?}");
            assert!(delay <= KRAKEN_LOCKOUT);
        }
        _ => unreachable!(),
    }
    client.close().await.unwrap();
}

#[tokio::test]
async fn close_1013_try_again_later_waits_at_least_the_backoff_cap() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let config = config(&exchange.url()).build().unwrap();
    let (client, _messages) = Client::connect(config, resilient_ws::RawProtocol)
        .await
        .unwrap();
    let mut events = client.events();
    exchange.close_all(1011, "plain restart");
    let plain = match wait_event(&mut events, |e| {
        matches!(e, Event::ReconnectScheduled { .. })
    })
    .await
    {
        Event::ReconnectScheduled { delay, .. } => delay,
        _ => unreachable!(),
    };
    // No hint: the session worked, so the retry is quick (a backoff step at
    // most), far below the cap.
    assert!(plain <= Duration::from_millis(10), "no hint: {plain:?}");
    wait_event(&mut events, |e| matches!(e, Event::Connected { .. })).await;
    assert!(exchange.wait_live(1, SOON).await);
    exchange.close_all(1013, "try again later");
    match wait_event(&mut events, |e| {
        matches!(e, Event::ReconnectScheduled { .. })
    })
    .await
    {
        // The hint is a deadline set when the close arrived, so a little of it has passed.
        Event::ReconnectScheduled { delay, .. } => {
            assert!(
                delay > Duration::from_millis(150) && delay <= Duration::from_millis(200),
                "{delay:?}"
            );
        }
        _ => unreachable!(),
    }
    client.close().await.unwrap();
}

/// A token source that hands out tok-1, tok-2, ... and counts its calls.
fn counting_tokens() -> (Arc<AtomicU32>, impl resilient_ws::TokenSource) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let source = move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok::<_, TokenError>(format!("tok-{n}")) }
    };
    (calls, source)
}

fn tokens_sent(exchange: &Exchange, conn: u64) -> Vec<(String, String)> {
    exchange
        .received()
        .into_iter()
        .filter(|r| r.conn == conn)
        .filter_map(|r| serde_json::from_str::<Value>(&r.text).ok())
        .filter(|v| v["method"] == "subscribe")
        .map(|v| {
            let channel = v["params"]["channel"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (
                channel,
                v["params"]["token"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_invalid_session_fetches_a_fresh_token_and_replays_private_subscriptions() {
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    exchange.require_token(Some("tok-1"));
    let (calls, source) = counting_tokens();
    let config = config(&exchange.url())
        .token_source(source)
        .build()
        .unwrap();
    let (client, _messages) = Client::connect(config.clone(), Kraken::new())
        .await
        .unwrap();
    let mut events = client.events();
    let executions = client.subscribe(Topic::new("executions")).await.unwrap();
    assert_eq!(
        tokens_sent(&exchange, 1),
        vec![("executions".to_owned(), "tok-1".to_owned())]
    );

    // The venue now wants a newer token: the next private subscribe is refused.
    exchange.require_token(Some("tok-2"));
    let balances = client
        .subscribe(Topic::new("balances"))
        .await
        .expect("resolves after the refresh");
    match wait_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await {
        Event::Disconnected { cause } => {
            assert_eq!(
                cause.venue_error().map(|v| v.kind),
                Some(VenueErrorKind::SessionExpired)
            );
        }
        _ => unreachable!(),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one token per connection");
    assert_eq!(
        tokens_sent(&exchange, 2),
        vec![
            ("executions".to_owned(), "tok-2".to_owned()),
            ("balances".to_owned(), "tok-2".to_owned())
        ],
        "both private subscriptions replayed with the fresh token"
    );
    assert_eq!(
        (executions.client_id().get(), balances.client_id().get()),
        (1, 2)
    );

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    let shown = format!("{logs}\n{config:?}\n{:?}", Kraken::new());
    assert!(!shown.contains("tok-"), "a token leaked: {shown}");
    client.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failing_token_source_is_a_typed_error_retried_with_backoff() {
    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let source = move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n <= 2 {
                Err::<String, TokenError>("token endpoint: 503".into())
            } else {
                Ok("tok".to_owned())
            }
        }
    };
    let config = Config::builder(exchange.url())
        .backoff(Backoff::new(Duration::from_secs(1), Duration::from_secs(4)).jitter(0.0))
        .token_source(source)
        .build()
        .unwrap();
    let (client, _messages) = Client::spawn(config, Kraken::new());
    let mut events = client.events();
    let started = tokio::time::Instant::now();
    for attempt in 1..=2 {
        match wait_event(&mut events, |e| matches!(e, Event::AttemptFailed { .. })).await {
            Event::AttemptFailed {
                attempt: a,
                error: Error::Token { source, .. },
            } => {
                assert_eq!(a, attempt);
                assert_eq!(source.to_string(), "token endpoint: 503");
            }
            other => panic!("{other:?}"),
        }
    }
    wait_event(&mut events, |e| matches!(e, Event::Connected { .. })).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "no hot loop: one call per attempt"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "1 s then 2 s of backoff: {:?}",
        started.elapsed()
    );
    client.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_token_source_that_never_works_ends_with_the_terminal_error() {
    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    let source = || async { Err::<String, TokenError>("no credentials".into()) };
    let config = Config::builder(exchange.url())
        .backoff(Backoff::new(Duration::from_secs(1), Duration::from_secs(2)).max_attempts(Some(3)))
        .token_source(source)
        .build()
        .unwrap();
    let (client, mut messages) = Client::spawn(config, Kraken::new());
    match next(&mut messages).await {
        Some(Err(Error::Reconnect {
            attempts: 3,
            last_error,
        })) => {
            assert!(matches!(*last_error, Error::Token { .. }), "{last_error:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(client.closed().await.is_err());
    assert_eq!(exchange.handshakes(), 0, "no socket without a token");
}
