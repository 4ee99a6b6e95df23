//! A panic never hangs consumers, and no configuration panics (issue 11, item 5).
//!
//! A panic in the connection task, including in user `Protocol`, `Connector`
//! or `TokenSource` code, ends every stream (each subscription and the
//! `Messages` stream) with `Error::Panicked` and resolves `closed()`. Every
//! duration setting at `Duration::MAX` is clamped by `build()`, so nothing
//! overflows `Instant` arithmetic later: each one is driven through a
//! subscribe, a reconnect and a close 1013 on a paused clock.

use crate::support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use resilient_ws::{
    Backoff, Client, Config, ConfigBuilder, ConnectFuture, ConnectionState, Connector, Error,
    Inbound, Kalshi, Messages, Protocol, Request, ServerId, Subscription, TcpConnector, TokenError,
    Topic, Update,
};
use support::exchange::{ticker_payload, Exchange, Venue};

/// Far longer than anything a test waits for, in virtual time.
const FOREVER: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

fn config(url: &str) -> ConfigBuilder {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(10), Duration::from_millis(100)).seed(2))
        .ping_interval(Duration::from_secs(3600))
        .idle_timeout(None)
        // On a paused clock a year-long wait (the clamped Duration::MAX) would
        // otherwise advance through millions of metrics ticks (feature `metrics`).
        .metrics_interval(Duration::MAX)
}

/// Kalshi, except that the text `boom` makes `classify` panic.
struct Panicky(Kalshi);

impl Protocol for Panicky {
    fn name(&self) -> &'static str {
        "panicky"
    }
    fn encode_subscribe(&mut self, topics: &[&Topic], req_id: u64) -> String {
        self.0.encode_subscribe(topics, req_id)
    }
    fn encode_unsubscribe(&mut self, topic: &Topic, id: &ServerId, req_id: u64) -> Option<String> {
        self.0.encode_unsubscribe(topic, id, req_id)
    }
    fn can_batch(&self, first: &Topic, next: &Topic) -> bool {
        self.0.can_batch(first, next)
    }
    fn encode_request(
        &mut self,
        request: &Request,
        req_id: u64,
    ) -> Result<String, resilient_ws::ProtocolError> {
        self.0.encode_request(request, req_id)
    }
    fn classify<'a>(&mut self, text: &'a str) -> Inbound<'a> {
        assert_ne!(text, "boom", "a bug in user protocol code");
        self.0.classify(text)
    }
}

/// Connects normally once, then panics on the next attempt.
#[derive(Default)]
struct PanicsOnReconnect {
    calls: AtomicU32,
    tcp: TcpConnector,
}

impl Connector for PanicsOnReconnect {
    fn connect<'a>(&'a self, url: &'a str) -> ConnectFuture<'a> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        assert_eq!(call, 0, "a bug in user connector code");
        self.tcp.connect(url)
    }
}

async fn subscribed(client: &Client, symbols: &[&str]) -> Vec<Subscription> {
    let mut subs = Vec::new();
    for symbol in symbols {
        subs.push(
            client
                .subscribe(Topic::new("ticker").symbol(*symbol))
                .await
                .unwrap(),
        );
    }
    subs
}

/// Every stream ends with `Panicked` after what it held; `closed()` resolves
/// with it; later calls get it too.
async fn all_end_panicked(client: &Client, subs: Vec<Subscription>, mut messages: Messages) {
    tokio::time::timeout(FOREVER, async {
        for mut sub in subs {
            let last = loop {
                match sub.next().await {
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => break error,
                    None => panic!("{}: ended without an error", sub.topic()),
                }
            };
            assert!(matches!(last, Error::Panicked), "{last:?}");
            assert!(sub.next().await.is_none());
        }
        loop {
            match messages.next().await {
                Some(Ok(_)) => continue,
                Some(Err(error)) => {
                    assert!(matches!(error, Error::Panicked), "{error:?}");
                    break;
                }
                None => panic!("messages ended without an error"),
            }
        }
        assert!(messages.next().await.is_none());
        assert!(matches!(client.closed().await, Err(Error::Panicked)));
        assert_eq!(*client.state().borrow(), ConnectionState::Closed);
        assert!(matches!(
            client.subscribe(Topic::new("ticker").symbol("LATE")).await,
            Err(Error::Panicked)
        ));
    })
    .await
    .expect("every stream ended and closed() resolved");
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_user_protocol_code_ends_every_stream() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let (client, messages) = Client::connect(
        config(&exchange.url()).build().unwrap(),
        Panicky(Kalshi::new()),
    )
    .await
    .unwrap();
    let subs = subscribed(&client, &["A", "B"]).await;
    exchange.send_text_all("boom");
    all_end_panicked(&client, subs, messages).await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_user_connector_ends_every_stream() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let (client, messages) = Client::connect(
        config(&exchange.url())
            .connector(PanicsOnReconnect::default())
            .build()
            .unwrap(),
        Kalshi::new(),
    )
    .await
    .unwrap();
    let subs = subscribed(&client, &["A", "B"]).await;
    exchange.abort_all();
    all_end_panicked(&client, subs, messages).await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_user_token_source_ends_every_stream_and_pending_subscribes() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let source = {
        let calls = Arc::clone(&calls);
        move || {
            let call = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                assert_eq!(call, 0, "a bug in user token code");
                Ok::<_, TokenError>("t".to_owned())
            }
        }
    };
    let (client, messages) = Client::connect(
        config(&exchange.url())
            .token_source(source)
            .build()
            .unwrap(),
        Kalshi::new(),
    )
    .await
    .unwrap();
    let subs = subscribed(&client, &["A"]).await;
    exchange.set_refuse(true);
    exchange.abort_all();
    // A subscribe waiting for the next connection is answered too.
    let pending = client.subscribe(Topic::new("ticker").symbol("B"));
    let pending = tokio::time::timeout(FOREVER, pending)
        .await
        .expect("answered");
    assert!(matches!(pending, Err(Error::Panicked)), "{pending:?}");
    all_end_panicked(&client, subs, messages).await;
}

/// Drives a client through a subscribe, a dropped connection, a close 1013
/// (whose retry hint is the backoff cap) and a second subscribe; it must stay
/// up and deliver data throughout.
async fn survives(what: &str, builder: impl FnOnce(ConfigBuilder) -> ConfigBuilder) {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let config = builder(config(&exchange.url())).build().unwrap();
    let run = async {
        let (client, _messages) = Client::connect(config, Kalshi::new()).await.unwrap();
        let mut sub = client
            .subscribe(Topic::new("ticker").symbol("A"))
            .await
            .unwrap();
        for fault in 0..2 {
            if fault == 0 {
                exchange.abort_all();
            } else {
                exchange.close_all(1013, "try again later");
            }
            loop {
                match sub.next().await {
                    Some(Ok(Update::Resubscribed { .. })) => break,
                    Some(Ok(_)) => {}
                    other => panic!("{what}: {other:?}"),
                }
            }
        }
        exchange.publish("A", ticker_payload(Venue::Kalshi, "A", 1));
        loop {
            match sub.next().await {
                Some(Ok(Update::Data(_))) => break,
                Some(Ok(_)) => {}
                other => panic!("{what}: {other:?}"),
            }
        }
        // A second subscribe (a second rate-limited frame on this connection).
        let second = client.subscribe(Topic::new("ticker").symbol("B")).await;
        assert_ne!(*client.state().borrow(), ConnectionState::Closed, "{what}");
        drop(second);
        let _ = client.close().await;
    };
    tokio::time::timeout(FOREVER, run)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung (the connection task panicked?)"));
}

macro_rules! at_duration_max {
    ($($name:ident: $what:literal => $builder:expr;)*) => {$(
        #[tokio::test(start_paused = true)]
        async fn $name() {
            survives($what, $builder).await;
        }
    )*};
}

at_duration_max! {
    connect_timeout_at_duration_max_is_safe: "connect_timeout" => |b| b.connect_timeout(Duration::MAX);
    ping_interval_at_duration_max_is_safe: "ping_interval" => |b| b.ping_interval(Duration::MAX);
    pong_timeout_at_duration_max_is_safe: "pong_timeout" =>
        |b| b.ping_interval(Duration::from_secs(1)).pong_timeout(Duration::MAX);
    idle_timeout_at_duration_max_is_safe: "idle_timeout" => |b| b.idle_timeout(Some(Duration::MAX));
    request_timeout_at_duration_max_is_safe: "request_timeout" => |b| b.request_timeout(Duration::MAX);
    close_timeout_at_duration_max_is_safe: "close_timeout" => |b| b.close_timeout(Duration::MAX);
    rate_limit_window_at_duration_max_is_safe: "rate_limit window" => |b| b.rate_limit(1, Duration::MAX);
    backoff_cap_at_duration_max_and_close_1013_are_safe: "backoff cap (and close 1013)" =>
        |b| b.backoff(Backoff::new(Duration::from_millis(10), Duration::MAX).seed(2));
    backoff_reset_after_at_duration_max_is_safe: "backoff reset_after" => |b| b.backoff(
        Backoff::new(Duration::from_millis(10), Duration::from_millis(100)).reset_after(Duration::MAX),
    );
}
