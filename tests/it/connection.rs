//! The supervised raw connection (issue 2): reconnects, liveness, close codes,
//! the inbound queue's overflow policies, give-up paths and clean close, all
//! against a real WebSocket server on 127.0.0.1.

use crate::support;

use std::time::Duration;

use futures::StreamExt;
use resilient_ws::{
    Backoff, Client, Config, ConfigBuilder, ConnectionError, ConnectionState, Error, Event,
    Messages, Operation, Overflow, ProtocolError, RawProtocol,
};
use serde_json::json;
use support::exchange::{raw_frame, Exchange, Venue};
use support::{next, wait_event, wait_until, SOON};

fn fast(url: &str) -> ConfigBuilder {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(10), Duration::from_millis(50)).seed(1))
        .ping_interval(Duration::from_secs(30))
        .pong_timeout(Duration::from_secs(10))
        .idle_timeout(None)
}

async fn raw_client(
    exchange: &Exchange,
    builder: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> (Client, Messages) {
    let config = builder(fast(&exchange.url()))
        .build()
        .expect("valid config");
    Client::connect(config, RawProtocol)
        .await
        .expect("connects")
}

fn text_of(item: Option<Result<resilient_ws::Frame, Error>>) -> String {
    match item {
        Some(Ok(frame)) => frame.as_text().unwrap_or_default().to_owned(),
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// A port nothing listens on: connecting to it is refused at once.
fn refused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

#[test]
fn handles_are_cheap_clone_send_sync() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<Client>();
    fn assert_send<T: Send + 'static>() {}
    assert_send::<resilient_ws::Subscription>();
    assert_send::<Messages>();
}

#[tokio::test]
async fn frames_flow_and_survive_a_tcp_abort() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let (client, mut messages) = raw_client(&exchange, |b| b).await;
    let mut events = client.events();

    exchange.publish("A", json!({"n": 1}));
    assert!(text_of(next(&mut messages).await).contains("\"n\":1"));

    exchange.abort_all();
    let cause = match wait_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await {
        Event::Disconnected { cause } => cause,
        _ => unreachable!(),
    };
    assert!(matches!(cause, Error::Connection { .. }), "{cause:?}");
    assert!(cause.is_retryable());
    wait_event(&mut events, |e| matches!(e, Event::Connected { .. })).await;
    assert!(exchange.wait_live(1, SOON).await);

    exchange.publish("A", json!({"n": 2}));
    assert!(text_of(next(&mut messages).await).contains("\"n\":2"));
    let stats = client.stats();
    assert_eq!((stats.connects, stats.reconnects), (2, 1));
    assert_eq!(stats.queues.delivered, 2);
    assert!(stats.is_balanced(), "{stats:?}");
    client.close().await.unwrap();
}

/// Frames cut from one read of the socket share that read's receive time;
/// a frame from a later read gets a later one. (Each frame used to read the
/// clock itself, so two frames of one read had different times.)
#[tokio::test]
async fn frames_from_one_socket_read_share_its_receive_time() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let (client, mut messages) = raw_client(&exchange, |b| b).await;
    assert!(exchange.wait_live(1, SOON).await);
    // Two frames in one write: they leave the socket in one read.
    let mut both = raw_frame(0x1, true, 0, b"first", false);
    both.extend(raw_frame(0x1, true, 0, b"second", false));
    exchange.send_raw_all(both);
    let first = next(&mut messages).await.unwrap().unwrap();
    let second = next(&mut messages).await.unwrap().unwrap();
    assert_eq!(
        (first.as_text(), second.as_text()),
        (Some("first"), Some("second"))
    );
    assert_eq!(first.received().at, second.received().at);
    assert_eq!(first.received().wall, second.received().wall);
    let between = tokio::time::Instant::now();
    exchange.send_raw_all(raw_frame(0x1, true, 0, b"third", false));
    let third = next(&mut messages).await.unwrap().unwrap();
    assert_eq!(third.as_text(), Some("third"));
    assert!(third.received().at >= between.into_std());
    assert!(third.received().at > second.received().at);
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_transient_close_code_reconnects_and_a_permanent_one_ends_everything() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let (client, mut messages) = raw_client(&exchange, |b| b).await;
    let mut events = client.events();

    exchange.close_all(1011, "restarting");
    match wait_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await {
        Event::Disconnected {
            cause: Error::Closed { code, reason, .. },
        } => {
            assert_eq!((code, reason.as_str()), (1011, "restarting"));
        }
        other => panic!("{other:?}"),
    }
    wait_event(&mut events, |e| matches!(e, Event::Connected { .. })).await;
    assert!(exchange.wait_live(1, SOON).await);

    exchange.close_all(4001, "bad key");
    match next(&mut messages).await {
        Some(Err(Error::Closed {
            code: 4001, reason, ..
        })) => assert_eq!(reason, "bad key"),
        other => panic!("expected the terminal close as last item, got {other:?}"),
    }
    assert!(
        next(&mut messages).await.is_none(),
        "the stream ends after the terminal error"
    );
    match client.closed().await {
        Err(Error::Closed { code: 4001, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        exchange.handshakes(),
        2,
        "no reconnect after a permanent close code"
    );
    assert_eq!(*client.state().borrow(), ConnectionState::Closed);
}

#[tokio::test]
async fn the_permanent_close_codes_are_configurable() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let (client, _messages) =
        raw_client(&exchange, |b| b.permanent_close_codes(|code| code == 1011)).await;
    let mut events = client.events();
    exchange.close_all(4001, "app code, retried under this config");
    wait_event(&mut events, |e| matches!(e, Event::Connected { .. })).await;
    assert!(exchange.wait_live(1, SOON).await);
    exchange.close_all(1011, "now permanent");
    assert!(matches!(
        client.closed().await,
        Err(Error::Closed { code: 1011, .. })
    ));
}

#[tokio::test]
async fn no_pong_means_a_ping_timeout_and_a_reconnect() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let (client, _messages) = raw_client(&exchange, |b| {
        b.ping_interval(Duration::from_millis(50))
            .pong_timeout(Duration::from_millis(300))
    })
    .await;
    let mut events = client.events();
    exchange.set_silent(true);
    match wait_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await {
        Event::Disconnected {
            cause: Error::Timeout { operation, timeout },
        } => {
            assert_eq!(operation, Operation::Ping);
            assert_eq!(timeout, Duration::from_millis(300));
        }
        other => panic!("{other:?}"),
    }
    wait_event(&mut events, |e| matches!(e, Event::Connected { .. })).await;
    assert!(client.stats().ping_timeouts >= 1);
    client.close().await.unwrap();
}

#[tokio::test]
async fn pongs_do_not_keep_a_silent_feed_alive() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    // Pings every 20 ms are answered; no data ever comes.
    let (client, _messages) = raw_client(&exchange, |b| {
        b.ping_interval(Duration::from_millis(20))
            .pong_timeout(Duration::from_secs(5))
            .idle_timeout(Some(Duration::from_millis(200)))
    })
    .await;
    let mut events = client.events();
    match wait_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await {
        Event::Disconnected {
            cause: Error::Timeout { operation, .. },
        } => assert_eq!(operation, Operation::Receive),
        other => panic!("{other:?}"),
    }
    let stats = client.stats();
    assert!(
        stats.idle_timeouts >= 1 && stats.ping_timeouts == 0,
        "{stats:?}"
    );
    client.close().await.unwrap();
}

#[tokio::test]
async fn data_keeps_the_idle_timer_quiet() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let (client, mut messages) = raw_client(&exchange, |b| {
        b.idle_timeout(Some(Duration::from_millis(400)))
    })
    .await;
    let stream = exchange.start_stream(vec!["A".into()], Duration::from_millis(20));
    // Sixty frames at 20 ms spacing span well over the idle timeout.
    for _ in 0..60 {
        next(&mut messages).await.expect("frame").expect("no error");
    }
    stream.abort();
    assert_eq!(client.stats().idle_timeouts, 0);
    assert_eq!(exchange.handshakes(), 1);
    client.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn refused_connections_end_the_stream_with_the_terminal_error() {
    let port = refused_port();
    let config = Config::builder(format!("ws://127.0.0.1:{port}/"))
        .backoff(
            Backoff::new(Duration::from_secs(1), Duration::from_secs(8))
                .max_attempts(Some(3))
                .seed(3),
        )
        .build()
        .unwrap();
    let (client, mut messages) = Client::spawn(config, RawProtocol);
    let mut events = client.events();
    let started = tokio::time::Instant::now();

    match messages.next().await {
        Some(Err(Error::Reconnect {
            attempts,
            last_error,
        })) => {
            assert_eq!(attempts, 3);
            assert!(
                matches!(*last_error, Error::Connection { .. }),
                "{last_error:?}"
            );
        }
        other => panic!("expected Reconnect, got {other:?}"),
    }
    assert!(messages.next().await.is_none());
    assert!(matches!(
        client.closed().await,
        Err(Error::Reconnect { attempts: 3, .. })
    ));
    // Two delays, each at most its capped base (1 s, then 2 s).
    assert!(
        started.elapsed() <= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    let mut scheduled = Vec::new();
    while let Some(Some(event)) = events.now_or_never_opt() {
        if let Event::ReconnectScheduled { attempt, delay } = event {
            scheduled.push((attempt, delay));
        }
    }
    assert_eq!(scheduled.len(), 2, "{scheduled:?}");
    assert_eq!((scheduled[0].0, scheduled[1].0), (2, 3));
    assert!(scheduled[0].1 <= Duration::from_secs(1) && scheduled[1].1 <= Duration::from_secs(2));
}

trait NowOrNeverOpt: futures::Stream + Unpin {
    fn now_or_never_opt(&mut self) -> Option<Option<Self::Item>> {
        futures::FutureExt::now_or_never(self.next())
    }
}
impl<S: futures::Stream + Unpin> NowOrNeverOpt for S {}

#[tokio::test(start_paused = true)]
async fn a_handshake_that_never_finishes_times_out_and_gives_up() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    exchange.set_handshake_delay(Some(Duration::MAX));
    let config = Config::builder(exchange.url())
        .connect_timeout(Duration::from_secs(2))
        .backoff(
            Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).max_attempts(Some(2)),
        )
        .build()
        .unwrap();
    let (client, mut messages) = Client::spawn(config, RawProtocol);
    match messages.next().await {
        Some(Err(Error::Reconnect {
            attempts: 2,
            last_error,
        })) => match *last_error {
            Error::Timeout {
                operation: Operation::Connect,
                timeout,
            } => assert_eq!(timeout, Duration::from_secs(2)),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert!(client.closed().await.is_err());
}

#[tokio::test]
async fn send_fails_fast_while_disconnected_and_works_when_connected() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let (client, _messages) = raw_client(&exchange, |b| {
        b.backoff(Backoff::new(
            Duration::from_secs(60),
            Duration::from_secs(60),
        ))
    })
    .await;
    client.send("hello").await.unwrap();
    assert!(
        exchange
            .wait_received(|r| r.iter().any(|m| m.text == "hello"), SOON)
            .await
    );

    let mut events = client.events();
    exchange.abort_all();
    wait_event(&mut events, |e| {
        matches!(e, Event::ReconnectScheduled { .. })
    })
    .await;
    match client.send("lost?").await {
        Err(Error::Connection { source, .. }) => {
            let source = source
                .downcast_ref::<ConnectionError>()
                .map(|e| e.to_string());
            assert_eq!(source.as_deref(), Some("not connected"));
        }
        other => panic!("expected a fast failure, got {other:?}"),
    }
    client.close().await.unwrap();
    assert!(
        !exchange.received().iter().any(|m| m.text == "lost?"),
        "never replayed"
    );
}

#[tokio::test]
async fn the_on_connect_handshake_is_replayed_on_every_connection() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let (client, _messages) =
        raw_client(&exchange, |b| b.on_connect("auth-1").on_connect("auth-2")).await;
    let mut events = client.events();
    assert!(exchange.wait_received(|r| r.len() >= 2, SOON).await);
    exchange.abort_all();
    wait_event(&mut events, |e| matches!(e, Event::Connected { .. })).await;
    assert!(exchange.wait_received(|r| r.len() >= 4, SOON).await);
    let seen: Vec<(u64, String)> = exchange
        .received()
        .into_iter()
        .map(|r| (r.conn, r.text))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, "auth-1".to_owned()),
            (1, "auth-2".to_owned()),
            (2, "auth-1".to_owned()),
            (2, "auth-2".to_owned())
        ]
    );
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_flapping_server_whose_sessions_work_is_never_given_up() {
    // Issue 11 item 1: `max_attempts` counts attempts that never became a
    // working session. A raw session with nothing to acknowledge works as soon
    // as it is up, so a server that accepts and drops at once, twelve times,
    // does not exhaust a limit of four. (Sessions that die before their acks
    // still give up: `flapping.rs::sessions_that_die_before_their_acks_count_as_failed_attempts`.)
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let config = fast(&exchange.url())
        .backoff(
            Backoff::new(Duration::from_millis(5), Duration::from_millis(20))
                .max_attempts(Some(4))
                .reset_after(Duration::from_secs(3600)),
        )
        .build()
        .unwrap();
    let (client, _messages) = Client::spawn(config, RawProtocol);
    let mut events = client.events();
    let mut closes = 0;
    while closes < 12 {
        tokio::select! {
            event = events.next() => match event {
                Some(Event::Connected { attempt }) => {
                    assert_eq!(attempt, 1, "a working session resets the count");
                    closes += 1;
                    exchange.abort_all();
                }
                Some(_) => {}
                None => panic!("events ended: {:?}", client.closed().await),
            },
            result = client.closed() => panic!("gave up: {result:?}"),
        }
    }
    client.close().await.unwrap();
}

#[tokio::test]
async fn urls_with_credentials_never_leak_into_errors_or_logs() {
    use std::sync::{Arc, Mutex};
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

    let port = refused_port();
    let url = format!("ws://user:secret@127.0.0.1:{port}/feed?token=secret");
    let config = Config::builder(&url)
        .backoff(
            Backoff::new(Duration::from_millis(1), Duration::from_millis(2)).max_attempts(Some(2)),
        )
        .build()
        .unwrap();
    let (client, mut messages) = Client::spawn(config.clone(), RawProtocol);
    let terminal = next(&mut messages)
        .await
        .expect("terminal item")
        .expect_err("an error");
    let mut texts = vec![
        format!("{terminal}"),
        format!("{terminal:?}"),
        format!("{config:?}"),
    ];
    let mut source = std::error::Error::source(&terminal);
    while let Some(s) = source {
        texts.push(format!("{s} {s:?}"));
        source = s.source();
    }
    texts.push(String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned());
    let all = texts.join("\n");
    assert!(
        all.contains(&format!("ws://127.0.0.1:{port}/feed")),
        "the redacted URL is shown: {all}"
    );
    assert!(!all.contains("secret"), "a secret leaked: {all}");
    assert!(!all.contains("token="), "the query leaked: {all}");
    drop(client);
}

/// The server sends `count` frames while the consumer does not read; returns
/// once the client has routed all of them.
async fn flood(exchange: &Exchange, client: &Client, count: u64) {
    for n in 1..=count {
        exchange.publish("A", json!({"n": n}));
    }
    wait_until("all frames routed", || {
        client.stats().queues.routed >= count
    })
    .await;
}

fn n_of(frame: &resilient_ws::Frame) -> u64 {
    let value: serde_json::Value = serde_json::from_str(frame.as_text().unwrap()).unwrap();
    value["n"].as_u64().unwrap()
}

#[tokio::test]
async fn drop_oldest_keeps_the_newest_and_counts_the_rest() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let (client, mut messages) = raw_client(&exchange, |b| {
        b.queue_capacity(4).overflow(Overflow::DropOldest)
    })
    .await;
    flood(&exchange, &client, 10).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(n_of(&next(&mut messages).await.unwrap().unwrap()));
    }
    assert_eq!(got, vec![7, 8, 9, 10]);
    let q = messages.stats();
    assert_eq!((q.routed, q.delivered, q.dropped, q.queued), (10, 4, 6, 0));
    client.close().await.unwrap();
}

#[tokio::test]
async fn drop_newest_keeps_the_oldest() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let (client, mut messages) = raw_client(&exchange, |b| {
        b.queue_capacity(4).overflow(Overflow::DropNewest)
    })
    .await;
    flood(&exchange, &client, 10).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(n_of(&next(&mut messages).await.unwrap().unwrap()));
    }
    assert_eq!(got, vec![1, 2, 3, 4]);
    assert_eq!(messages.stats().dropped, 6);
    client.close().await.unwrap();
}

#[tokio::test]
async fn error_policy_yields_queue_full_and_the_stream_goes_on() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let (client, mut messages) =
        raw_client(&exchange, |b| b.queue_capacity(3).overflow(Overflow::Error)).await;
    flood(&exchange, &client, 8).await;
    match next(&mut messages).await {
        Some(Err(Error::QueueFull {
            queue_size: 3,
            dropped_count: 5,
        })) => {}
        other => panic!("expected QueueFull first, got {other:?}"),
    }
    for want in 1..=3 {
        assert_eq!(n_of(&next(&mut messages).await.unwrap().unwrap()), want);
    }
    exchange.publish("A", json!({"n": 9}));
    assert_eq!(n_of(&next(&mut messages).await.unwrap().unwrap()), 9);
    let stats = client.stats();
    assert!(stats.is_balanced(), "{stats:?}");
    client.close().await.unwrap();
}

#[tokio::test]
async fn block_policy_stops_reading_then_ends_the_stream_with_backpressure() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let (client, mut messages) = raw_client(&exchange, |b| {
        b.queue_capacity(2).overflow(Overflow::Block {
            timeout: Duration::from_millis(200),
        })
    })
    .await;
    for n in 1..=5 {
        exchange.publish("A", json!({"n": n}));
    }
    wait_until("backpressure ended the inbound stream", || {
        client.stats().queues.dropped >= 1
    })
    .await;
    assert_eq!(n_of(&next(&mut messages).await.unwrap().unwrap()), 1);
    assert_eq!(n_of(&next(&mut messages).await.unwrap().unwrap()), 2);
    match next(&mut messages).await {
        Some(Err(Error::Backpressure { maxsize: 2, .. })) => {}
        other => panic!("expected Backpressure, got {other:?}"),
    }
    assert!(next(&mut messages).await.is_none());
    // The connection itself is unharmed.
    assert_eq!(*client.state().borrow(), ConnectionState::Connected);
    client.close().await.unwrap();
}

#[tokio::test]
async fn block_policy_resumes_when_the_consumer_catches_up() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let (client, mut messages) = raw_client(&exchange, |b| {
        b.queue_capacity(2).overflow(Overflow::Block {
            timeout: Duration::from_secs(30),
        })
    })
    .await;
    for n in 1..=50 {
        exchange.publish("A", json!({"n": n}));
    }
    for want in 1..=50 {
        assert_eq!(
            n_of(&next(&mut messages).await.unwrap().unwrap()),
            want,
            "no loss, no reordering"
        );
    }
    assert_eq!(messages.stats().dropped, 0);
    client.close().await.unwrap();
}

#[tokio::test]
async fn close_lets_the_consumer_drain_then_ends_and_leaves_no_task() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let baseline = metrics.num_alive_tasks();
    let (client, mut messages) = raw_client(&exchange, |b| b).await;
    let mut events = client.events();
    flood(&exchange, &client, 5).await;

    client.close().await.unwrap();
    for want in 1..=5 {
        assert_eq!(n_of(&next(&mut messages).await.unwrap().unwrap()), want);
    }
    assert!(
        next(&mut messages).await.is_none(),
        "a clean close ends without an error"
    );
    assert!(client.closed().await.is_ok());
    wait_event(&mut events, |e| matches!(e, Event::Closed { error: None })).await;
    assert!(
        exchange.wait_live(0, SOON).await,
        "the server saw the close"
    );
    // The supervisor task is gone (the server's per-connection task too).
    wait_until("tasks back to baseline", || {
        metrics.num_alive_tasks() <= baseline
    })
    .await;
    assert!(matches!(
        client.send("late").await,
        Err(Error::ClientClosed)
    ));
}

#[tokio::test]
async fn an_oversize_message_is_a_protocol_error_and_a_reconnect() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let (client, _messages) =
        raw_client(&exchange, |b| b.max_message_size(1024).max_frame_size(1024)).await;
    let mut events = client.events();
    exchange.send_text_all(&"x".repeat(64 * 1024));
    match wait_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await {
        Event::Disconnected {
            cause:
                Error::Protocol {
                    protocol_error: ProtocolError::TooLarge(_),
                },
        } => {}
        other => panic!("{other:?}"),
    }
    wait_event(&mut events, |e| matches!(e, Event::Connected { .. })).await;
    client.close().await.unwrap();
}

#[tokio::test]
async fn invalid_utf8_is_a_protocol_error_and_a_reconnect() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let (client, _messages) = raw_client(&exchange, |b| b).await;
    let mut events = client.events();
    exchange.send_raw_all(raw_frame(0x1, true, 0, &[0x66, 0xff, 0xfe, 0x6f], false));
    match wait_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await {
        Event::Disconnected {
            cause:
                Error::Protocol {
                    protocol_error: ProtocolError::InvalidUtf8,
                },
        } => {}
        other => panic!("{other:?}"),
    }
    wait_event(&mut events, |e| matches!(e, Event::Connected { .. })).await;
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_protocol_violation_is_a_protocol_error_and_a_reconnect() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let (client, _messages) = raw_client(&exchange, |b| b).await;
    let mut events = client.events();
    // Reserved bits set without a negotiated extension.
    exchange.send_raw_all(raw_frame(0x1, true, 0b111, b"hi", false));
    match wait_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await {
        Event::Disconnected {
            cause:
                Error::Protocol {
                    protocol_error: ProtocolError::Violation(_),
                },
        } => {}
        other => panic!("{other:?}"),
    }
    wait_event(&mut events, |e| matches!(e, Event::Connected { .. })).await;
    client.close().await.unwrap();
}

#[tokio::test]
async fn the_state_watch_and_events_follow_the_lifecycle() {
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let config = fast(&exchange.url()).build().unwrap();
    let (client, _messages) = Client::spawn(config, RawProtocol);
    let mut events = client.events();
    let mut state = client.state();
    state
        .wait_for(|s| *s == ConnectionState::Connected)
        .await
        .unwrap();
    exchange.abort_all();
    let mut kinds = Vec::new();
    loop {
        let event = next(&mut events).await.expect("event");
        let kind = match &event {
            Event::Connecting { .. } => "connecting",
            Event::Connected { .. } => "connected",
            Event::Disconnected { .. } => "disconnected",
            Event::ReconnectScheduled { .. } => "scheduled",
            _ => continue,
        };
        kinds.push(kind);
        if kind == "connected" && kinds.contains(&"disconnected") {
            break;
        }
    }
    // The first Connecting/Connected may precede our subscription to events.
    let tail: Vec<&str> = kinds
        .iter()
        .skip_while(|k| **k != "disconnected")
        .copied()
        .collect();
    assert_eq!(
        tail,
        vec!["disconnected", "scheduled", "connecting", "connected"]
    );
    client.close().await.unwrap();
    assert_eq!(*state.borrow_and_update(), ConnectionState::Closed);
}
