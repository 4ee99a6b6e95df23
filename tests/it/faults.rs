//! One network fault at a time, through the fault proxy (tests/support/proxy.rs)
//! between the client and the Kalshi-style test exchange: what the library does
//! for each, checked exactly. The chaos soak (tests/chaos.rs) mixes them at random.

use crate::support;

use std::time::Duration;

use futures::StreamExt;
use resilient_ws::{
    Backoff, Client, Config, ConfigBuilder, ConnectionError, ConnectionState, Error, Event, Events,
    Kalshi, Operation, ProtocolError, Subscription, Topic, Update,
};
use serde_json::{json, Value};
use support::exchange::{Exchange, Venue};
use support::proxy::{Direction, Proxy};
use support::{next, wait_event, wait_until, SOON};
use tokio::time::Instant;

fn config(url: &str) -> ConfigBuilder {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).seed(9))
        .connect_timeout(Duration::from_millis(500))
        .ping_interval(Duration::from_millis(100))
        .pong_timeout(Duration::from_millis(400))
        .idle_timeout(None)
        .request_timeout(Duration::from_secs(5))
        .rate_limit(1000, Duration::from_secs(1))
}

struct Rig {
    exchange: Exchange,
    proxy: Proxy,
    client: Client,
    sub: Subscription,
    events: Events,
}

async fn rig(builder: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Rig {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let proxy = Proxy::start(exchange.addr()).await.unwrap();
    let config = builder(config(&proxy.url())).build().unwrap();
    let (client, _messages) = Client::connect(config, Kalshi::new()).await.unwrap();
    let events = client.events();
    let sub = client
        .subscribe(Topic::new("ticker").symbol("F"))
        .await
        .unwrap();
    Rig {
        exchange,
        proxy,
        client,
        sub,
        events,
    }
}

impl Rig {
    /// Publishes `{"n": n}` and waits for that frame on the subscription,
    /// skipping signals; returns the frame's JSON.
    async fn round_trip(&mut self, n: u64) -> Value {
        self.exchange.publish("F", json!({ "n": n }));
        loop {
            match next(&mut self.sub).await {
                Some(Ok(Update::Data(frame))) => {
                    let value: Value = serde_json::from_str(frame.as_text().unwrap()).unwrap();
                    if value["msg"]["n"].is_null() {
                        continue; // a ticker from `start_stream`
                    }
                    assert_eq!(value["msg"]["n"], n, "frames arrive in order, none lost");
                    return value;
                }
                Some(Ok(_)) => continue,
                other => panic!("expected data, got {other:?}"),
            }
        }
    }

    async fn disconnect_cause(&mut self) -> Error {
        match wait_event(&mut self.events, |e| {
            matches!(e, Event::Disconnected { .. })
        })
        .await
        {
            Event::Disconnected { cause } => cause,
            _ => unreachable!(),
        }
    }

    /// The fault is lifted: the subscription is re-established and data flows.
    async fn recovers(&mut self, n: u64) {
        self.proxy.clear();
        loop {
            match next(&mut self.sub).await {
                Some(Ok(Update::Resubscribed { .. })) => break,
                Some(Ok(_)) => continue,
                other => panic!("expected the resubscribe signal, got {other:?}"),
            }
        }
        self.round_trip(n).await;
        let stats = self.client.stats();
        assert!(stats.reconnects >= 1, "{stats:?}");
        self.client.close().await.unwrap();
        let stats = self.client.stats();
        assert!(stats.is_balanced(), "{stats:?}");
        self.exchange.shutdown().await;
        self.proxy.shutdown().await;
    }
}

fn io_kind(error: &Error) -> Option<std::io::ErrorKind> {
    match error {
        Error::Connection { source, .. } => match source.downcast_ref::<ConnectionError>() {
            Some(ConnectionError::Io { kind, .. }) => Some(*kind),
            _ => None,
        },
        _ => None,
    }
}

fn is_lost_without_close_frame(error: &Error) -> bool {
    match error {
        Error::Connection { source, .. } => matches!(
            source.downcast_ref::<ConnectionError>(),
            Some(ConnectionError::Lost(_))
        ),
        _ => false,
    }
}

#[tokio::test]
async fn a_cut_resets_both_sides_and_the_client_reconnects() {
    let mut rig = rig(|b| b).await;
    rig.round_trip(1).await;
    rig.proxy.cut_all();
    let cause = rig.disconnect_cause().await;
    assert_eq!(
        io_kind(&cause),
        Some(std::io::ErrorKind::ConnectionReset),
        "{cause:?}"
    );
    assert!(cause.is_retryable());
    // The server side was reset too: its connection is gone before the new one.
    assert!(rig.exchange.wait_handshakes(2, SOON).await);
    assert_eq!(rig.proxy.cuts(), 1);
    rig.recovers(2).await;
}

#[tokio::test]
async fn a_fin_without_a_close_frame_is_a_lost_connection() {
    let mut rig = rig(|b| b).await;
    rig.round_trip(1).await;
    rig.proxy.fin_all();
    let cause = rig.disconnect_cause().await;
    assert!(is_lost_without_close_frame(&cause), "{cause:?}");
    rig.recovers(2).await;
}

#[tokio::test]
async fn a_frame_truncated_mid_way_is_never_delivered() {
    let mut rig = rig(|b| b).await;
    rig.round_trip(1).await;
    // The next server frame (n = 2) is cut after 7 bytes: inside its JSON.
    rig.proxy.truncate_next(7);
    rig.exchange.publish("F", json!({"n": 2}));
    let cause = rig.disconnect_cause().await;
    assert!(
        matches!(cause, Error::Connection { .. }),
        "a reset mid-frame is a connection error: {cause:?}"
    );
    let received = rig.client.stats();
    assert_eq!(received.queues.routed, 1, "only n = 1 was routed");
    // The stream's next data is the one published after the reconnect.
    rig.recovers(3).await;
}

#[tokio::test]
async fn corrupt_bytes_are_protocol_errors_and_a_reconnect() {
    // Offsets into the next server frame `81 7e LL LL {"type":"ticker",...`:
    // 0 = first header byte (0xFF sets the reserved bits and an unknown opcode),
    // 1 = length byte (0xFF: masked, 64-bit length from JSON bytes: far too large),
    // 30 = payload (0xFF is never valid UTF-8).
    type Check = fn(&ProtocolError) -> bool;
    let cases: [(usize, Check); 3] = [
        (0, |e| matches!(e, ProtocolError::Violation(_))),
        (1, |e| matches!(e, ProtocolError::TooLarge(_))),
        (30, |e| matches!(e, ProtocolError::InvalidUtf8)),
    ];
    for (offset, expected) in cases {
        let mut rig = rig(|b| b).await;
        rig.round_trip(1).await;
        rig.proxy.corrupt_next(Direction::ServerToClient, offset);
        rig.exchange.publish("F", json!({"n": 2}));
        match rig.disconnect_cause().await {
            Error::Protocol { protocol_error } => {
                assert!(
                    expected(&protocol_error),
                    "offset {offset}: {protocol_error:?}"
                )
            }
            other => panic!("offset {offset}: {other:?}"),
        }
        assert_eq!(rig.client.stats().queues.routed, 1, "offset {offset}");
        rig.recovers(3).await;
    }
}

#[tokio::test]
async fn a_corrupt_header_from_the_client_makes_the_server_drop_the_connection() {
    let mut rig = rig(|b| b).await;
    rig.round_trip(1).await;
    // The next client frame (a ping, every 100 ms) gets 0xFF as its first byte:
    // reserved bits and opcode, which the server refuses by dropping the connection.
    rig.proxy.corrupt_next(Direction::ClientToServer, 0);
    let cause = rig.disconnect_cause().await;
    assert!(is_lost_without_close_frame(&cause), "{cause:?}");
    rig.recovers(2).await;
}

#[tokio::test]
async fn a_blackhole_is_a_ping_timeout_then_connect_timeouts_until_it_lifts() {
    let mut rig = rig(|b| b).await;
    rig.round_trip(1).await;
    rig.proxy.set_blackhole(true);
    match rig.disconnect_cause().await {
        Error::Timeout {
            operation: Operation::Ping,
            timeout,
        } => assert_eq!(timeout, Duration::from_millis(400)),
        other => panic!("{other:?}"),
    }
    // New connections are accepted by the proxy but the handshake never gets through.
    match wait_event(&mut rig.events, |e| {
        matches!(e, Event::AttemptFailed { .. })
    })
    .await
    {
        Event::AttemptFailed {
            error:
                Error::Timeout {
                    operation: Operation::Connect,
                    ..
                },
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    assert!(rig.proxy.accepted() >= 2);
    assert_eq!(rig.exchange.handshakes(), 1);
    rig.recovers(2).await;
}

#[tokio::test]
async fn a_stall_in_either_direction_is_a_ping_timeout() {
    for dir in [Direction::ServerToClient, Direction::ClientToServer] {
        let mut rig = rig(|b| b).await;
        rig.round_trip(1).await;
        rig.proxy.set_stall(dir, true);
        match rig.disconnect_cause().await {
            Error::Timeout {
                operation: Operation::Ping,
                ..
            } => {}
            other => panic!("{dir:?}: {other:?}"),
        }
        rig.recovers(2).await;
    }
}

#[tokio::test]
async fn a_stall_with_data_flowing_is_caught_by_the_idle_timeout_too() {
    // Pings are far apart here: only the idle timeout can notice.
    let mut rig = rig(|b| {
        b.ping_interval(Duration::from_secs(60))
            .idle_timeout(Some(Duration::from_millis(400)))
    })
    .await;
    let stream = rig
        .exchange
        .start_stream(vec!["F".into()], Duration::from_millis(20));
    rig.proxy.set_stall(Direction::ServerToClient, true);
    match rig.disconnect_cause().await {
        Error::Timeout {
            operation: Operation::Receive,
            timeout,
        } => assert_eq!(timeout, Duration::from_millis(400)),
        other => panic!("{other:?}"),
    }
    stream.abort();
    rig.recovers(1_000_000).await;
}

#[tokio::test]
async fn delay_holds_every_frame_back_and_loses_nothing() {
    let delay = Duration::from_millis(150);
    // Pong timeout well above twice the delay: pings survive it.
    let mut rig = rig(|b| b.pong_timeout(Duration::from_secs(5))).await;
    rig.round_trip(1).await;
    rig.proxy.set_delay(delay);
    for n in 2..=6 {
        let sent = Instant::now();
        rig.round_trip(n).await;
        assert!(sent.elapsed() >= delay, "n = {n}: {:?}", sent.elapsed());
    }
    assert_eq!(rig.client.stats().reconnects, 0);
    rig.client.close().await.unwrap();
    rig.exchange.shutdown().await;
    rig.proxy.shutdown().await;
}

#[tokio::test]
async fn throttle_caps_the_byte_rate_and_loses_nothing() {
    const RATE: u64 = 8_000;
    let mut rig = rig(|b| b.ping_interval(Duration::from_secs(60))).await;
    rig.round_trip(0).await;
    rig.proxy.set_throttle(Some(RATE));
    let pad = "x".repeat(500);
    let before = rig.client.stats().bytes_in;
    let started = Instant::now();
    for n in 1..=20u64 {
        rig.exchange.publish("F", json!({"n": n, "pad": pad}));
    }
    for n in 1..=20u64 {
        let value = match next(&mut rig.sub).await {
            Some(Ok(Update::Data(frame))) => {
                serde_json::from_str::<Value>(frame.as_text().unwrap()).unwrap()
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(value["msg"]["n"], n);
    }
    let elapsed = started.elapsed();
    let bytes = rig.client.stats().bytes_in - before;
    // Everything beyond the first 20 ms slice waited for the throttle.
    let floor = Duration::from_secs_f64(bytes.saturating_sub(RATE / 50) as f64 / RATE as f64);
    assert!(
        elapsed >= floor,
        "{bytes} bytes in {elapsed:?}, floor {floor:?}"
    );
    assert_eq!(rig.client.stats().reconnects, 0);
    rig.client.close().await.unwrap();
    rig.exchange.shutdown().await;
    rig.proxy.shutdown().await;
}

/// Waits for `close()` run in the background, checking it does not reconnect.
async fn close_without_reconnecting(
    rig: &mut Rig,
    close: tokio::task::JoinHandle<Result<(), Error>>,
) {
    let result = tokio::time::timeout(SOON, close)
        .await
        .expect("close() finishes")
        .expect("close task");
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(*rig.client.state().borrow(), ConnectionState::Closed);
    let mut reconnected = false;
    while let Some(Some(event)) = futures::FutureExt::now_or_never(rig.events.next()) {
        if matches!(event, Event::Connecting { .. } | Event::Disconnected { .. }) {
            reconnected = true;
        }
    }
    assert!(!reconnected, "the client went on after close()");
    assert_eq!(rig.proxy.accepted(), 1, "no new connection after close()");
    rig.exchange.shutdown().await;
    rig.proxy.shutdown().await;
}

#[tokio::test]
async fn close_completes_when_the_server_drops_tcp_instead_of_answering() {
    let mut rig = rig(|b| b.close_timeout(Duration::from_secs(5))).await;
    rig.round_trip(1).await;
    // Our close frame never reaches the server; the server then drops the connection.
    rig.proxy.set_stall(Direction::ClientToServer, true);
    let mut state = rig.client.state();
    let client = rig.client.clone();
    let close = tokio::spawn(async move { client.close().await });
    state
        .wait_for(|s| *s == ConnectionState::Closing)
        .await
        .unwrap();
    rig.proxy.cut_all();
    close_without_reconnecting(&mut rig, close).await;
}

#[tokio::test]
async fn close_is_not_undone_by_a_ping_timeout() {
    let mut rig = rig(|b| b.close_timeout(Duration::from_secs(2))).await;
    rig.round_trip(1).await;
    rig.proxy.set_blackhole(true);
    // A ping goes out into the blackhole; its pong deadline (400 ms) falls
    // inside the close timeout (2 s).
    let sent = rig.client.stats().frames_out;
    wait_until("a ping into the blackhole", || {
        rig.client.stats().frames_out > sent
    })
    .await;
    let client = rig.client.clone();
    let close = tokio::spawn(async move { client.close().await });
    close_without_reconnecting(&mut rig, close).await;
}
