//! `frame_read`: arbitrary bytes on the socket, through the real supervisor.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::task::noop_waker_ref;
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::derive_accept_key;

use resilient_ws::protocol::{Kalshi, Kraken, Protocol, RawProtocol, Topic};
use resilient_ws::Error;
use resilient_ws::Overflow;
use resilient_ws::{Backoff, Client, Config};
use resilient_ws::{ConnectFuture, Connector, Transport};
use resilient_ws::{Frame, Update};

/// How long one `frame_read` run may take before it counts as a hang. Nothing
/// in a run waits on a timer, so a healthy run takes microseconds.
const FRAME_READ_GUARD: Duration = Duration::from_secs(30);

/// The long timers of a `frame_read` client: none of them may fire in a run.
const NEVER: Duration = Duration::from_secs(3600);

/// Feeds arbitrary bytes to a real [`Client`] as what the server sends.
///
/// Byte 0 selects the setup: bits 0-1 the protocol (raw, Kalshi, Kraken,
/// Kraken with a token source), bits 2-3 the overflow policy, bits 4-5 how many bytes each socket
/// read returns after the handshake (all, 1, 3, 17), bit 6 whether the rest is
/// the whole server output (HTTP handshake included) instead of what follows
/// a valid `101 Switching Protocols`, bit 7 a queue capacity of 1 instead of 4.
///
/// The client connects through an in-memory [`Connector`] whose peer answers
/// the handshake, writes the bytes and hangs up. With Kalshi and Kraken, two
/// subscribe requests are registered before the handshake completes, so they
/// go out as request ids 1 and 2 and acks in the bytes can map them (Kalshi:
/// `ticker:KXBTC-25`, `orderbook_delta:KXETH-25`; Kraken: `book` `BTC/USD` and
/// `ETH/USD` at depth 10 in one request, `ticker:BTC/USD`).
///
/// The client must end (one attempt only) with a typed error, every stream
/// must end with its terminal error, and the counters must balance.
///
/// # Panics
///
/// When an invariant breaks: that is the point.
pub fn frame_read(data: &[u8]) {
    let Some((&selector, wire)) = data.split_first() else {
        return;
    };
    let setup = FrameSetup::new(selector);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
    let wire = wire.to_vec();
    runtime.block_on(async move {
        match setup.protocol {
            0 => run_frame_read(RawProtocol, Vec::new(), setup, wire).await,
            1 => {
                let topics = vec![
                    Topic::new("ticker").symbol("KXBTC-25"),
                    Topic::new("orderbook_delta").symbol("KXETH-25"),
                ];
                run_frame_read(Kalshi::new(), topics, setup, wire).await;
            }
            _ => {
                let topics = vec![
                    Topic::new("book").symbol("BTC/USD").param("depth", 10),
                    Topic::new("book").symbol("ETH/USD").param("depth", 10),
                    Topic::new("ticker").symbol("BTC/USD"),
                ];
                run_frame_read(Kraken::new(), topics, setup, wire).await;
            }
        }
    });
}

#[derive(Debug, Clone, Copy)]
struct FrameSetup {
    protocol: u8,
    overflow: Overflow,
    chunk: usize,
    raw_handshake: bool,
    capacity: usize,
    /// Kraken with a token source (private endpoints).
    token: bool,
}

impl FrameSetup {
    fn new(selector: u8) -> Self {
        FrameSetup {
            protocol: selector & 3,
            overflow: match (selector >> 2) & 3 {
                1 => Overflow::DropNewest,
                2 => Overflow::Error,
                _ => Overflow::DropOldest,
            },
            chunk: [usize::MAX, 1, 3, 17][usize::from((selector >> 4) & 3)],
            raw_handshake: selector & 0x40 != 0,
            capacity: if selector & 0x80 != 0 { 1 } else { 4 },
            token: selector & 3 == 3,
        }
    }
}

async fn run_frame_read<P: Protocol>(
    protocol: P,
    topics: Vec<Topic>,
    setup: FrameSetup,
    wire: Vec<u8>,
) {
    let gate = Arc::new(Gate::default());
    let connector = ScriptedConnector {
        peer: Mutex::new(Some(ScriptedPeer::new(wire, setup, Arc::clone(&gate)))),
    };
    let mut config = Config::builder("ws://fuzz.invalid/");
    if setup.token {
        config = config
            .token_source(|| async { Ok::<_, resilient_ws::TokenError>("fuzz-token".to_owned()) });
    }
    let config = config
        .connector(connector)
        .backoff(Backoff::immediate().max_attempts(Some(1)))
        .connect_timeout(NEVER)
        .ping_interval(NEVER)
        .pong_timeout(NEVER)
        .idle_timeout(None)
        .request_timeout(NEVER)
        .max_message_size(64 * 1024)
        .max_frame_size(16 * 1024)
        .queue_capacity(setup.capacity)
        .overflow(setup.overflow)
        // Nobody listens; a small ring keeps each run's allocations small.
        .event_capacity(4)
        .build()
        .expect("a valid fuzz config");
    let (client, mut messages) = Client::spawn(config, protocol);
    let subscribing = if topics.is_empty() {
        gate.open();
        None
    } else {
        let handle = client.clone();
        let mut subscribe = Box::pin(async move { handle.subscribe_many(topics).await });
        // One poll queues the command before the supervisor first runs. The
        // supervisor registers it while the peer holds back the handshake
        // answer; this task, scheduled after the supervisor, then opens the gate.
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(
            subscribe.as_mut().poll(&mut cx).is_pending(),
            "subscribed before connecting?"
        );
        let opener = Arc::clone(&gate);
        Some(tokio::spawn(async move {
            opener.open();
            subscribe.await
        }))
    };
    let result = tokio::time::timeout(FRAME_READ_GUARD, client.closed())
        .await
        .expect("client.closed() did not resolve: the client hung");
    let error = match result {
        Ok(()) => panic!("the client finished cleanly although nobody closed it"),
        Err(error) => error,
    };
    match &error {
        Error::Reconnect {
            attempts: 1,
            last_error,
        } => match &**last_error {
            Error::Connection { .. } | Error::Protocol { .. } | Error::Closed { .. } => {}
            // The venue said the session expired: reconnect for a fresh token.
            Error::Subscription { .. } if setup.token => {}
            other => panic!("unexpected cause of the last attempt: {other:?}"),
        },
        Error::Closed { code, .. } => {
            assert!(
                resilient_ws::default_permanent_close(*code),
                "fatal close {code}"
            )
        }
        other => panic!("unexpected terminal error: {other:?}"),
    }
    let terminal = error.to_string();

    // Every stream drains what was queued, then yields its terminal error, then ends.
    let mut delivered = drain_stream(&mut messages, setup, |e| e.to_string() == terminal);
    if let Some(subscribing) = subscribing {
        let results = tokio::time::timeout(FRAME_READ_GUARD, subscribing)
            .await
            .expect("subscribe_many did not resolve after the client finished")
            .expect("the subscribing task panicked")
            .expect("the subscribe command was queued before the client finished");
        let mut subscriptions = Vec::new();
        for result in results {
            match result {
                Ok(subscription) => subscriptions.push(subscription),
                Err(Error::Subscription { .. }) => {}
                Err(other) => assert_eq!(
                    other.to_string(),
                    terminal,
                    "a subscribe failed with {other:?}"
                ),
            }
        }
        for subscription in &mut subscriptions {
            // A subscription ends with the client's error, or alone when a
            // resubscribe was refused.
            let ended_by =
                |e: &Error| e.to_string() == terminal || matches!(e, Error::Subscription { .. });
            let data = drain_stream(subscription, setup, ended_by);
            let stats = subscription.stats();
            assert_eq!(
                stats.routed,
                stats.delivered + stats.dropped + stats.queued,
                "{stats:?}"
            );
            assert_eq!((stats.delivered, stats.queued), (data, 0), "{stats:?}");
            delivered += data;
        }
        let stats = client.stats();
        assert_eq!(stats.queues.delivered, delivered, "{stats:?}");
    }

    let stats = client.stats();
    assert!(stats.is_balanced(), "unbalanced stats: {stats:?}");
    assert_eq!(stats.queues.delivered, delivered, "{stats:?}");
    assert_eq!((stats.queues.queued, stats.stashed), (0, 0), "{stats:?}");
    if setup.protocol == 0 {
        // Every raw frame is data for the inbound stream.
        assert_eq!(stats.unroutable, 0, "{stats:?}");
    }
}

/// Drains a finished client's stream: data, signals and `QueueFull` notices,
/// then exactly one terminal error, then the end. Returns the data items.
fn drain_stream<S, T>(
    stream: &mut S,
    setup: FrameSetup,
    is_terminal: impl Fn(&Error) -> bool,
) -> u64
where
    S: futures::Stream<Item = Result<T, Error>> + Unpin,
    T: IsData,
{
    let mut data = 0;
    let mut ended = false;
    loop {
        let item = stream
            .next()
            .now_or_never()
            .expect("a finished client's stream must not pend");
        match item {
            Some(Ok(item)) => {
                assert!(!ended, "an item after the terminal error");
                data += u64::from(item.is_data());
            }
            Some(Err(Error::QueueFull { .. })) if setup.overflow == Overflow::Error && !ended => {}
            Some(Err(error)) => {
                assert!(!ended, "two terminal errors: {error:?}");
                assert!(is_terminal(&error), "unexpected terminal error {error:?}");
                ended = true;
            }
            None => break,
        }
    }
    assert!(ended, "a stream ended without its terminal error");
    data
}

/// Data items of a stream (as opposed to signals).
trait IsData {
    fn is_data(&self) -> bool;
}

impl IsData for Frame {
    fn is_data(&self) -> bool {
        true
    }
}

impl IsData for Update {
    fn is_data(&self) -> bool {
        Update::is_data(self)
    }
}

/// A connector that hands out one scripted in-memory peer, then refuses.
struct ScriptedConnector {
    peer: Mutex<Option<ScriptedPeer>>,
}

impl Connector for ScriptedConnector {
    fn connect<'a>(&'a self, _url: &'a str) -> ConnectFuture<'a> {
        Box::pin(async move {
            let peer = self
                .peer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::ConnectionRefused, "one connection only")
                })?;
            let request = "ws://fuzz.invalid/"
                .into_client_request()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            Ok(Transport {
                stream: Box::new(peer),
                request,
            })
        })
    }
}

/// Holds the peer's first byte back until the harness opens it.
#[derive(Default)]
struct Gate {
    open: std::sync::atomic::AtomicBool,
    reader: Mutex<Option<Waker>>,
}

impl Gate {
    fn open(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(waker) = self.reader.lock().unwrap_or_else(|p| p.into_inner()).take() {
            waker.wake();
        }
    }

    fn is_open(&self, cx: &Context<'_>) -> bool {
        if self.open.load(std::sync::atomic::Ordering::SeqCst) {
            return true;
        }
        *self.reader.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        self.open.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The server end of an in-memory connection: it reads the HTTP upgrade
/// request, answers it (or not, in raw mode), then sends the script and EOF.
/// Whatever the client writes afterwards is accepted and discarded. Nothing
/// is readable until the [`Gate`] opens.
struct ScriptedPeer {
    request: Vec<u8>,
    wire: Vec<u8>,
    outgoing: Vec<u8>,
    sent: usize,
    /// Bytes of `outgoing` that are the handshake answer (never chunked).
    head: usize,
    answered: bool,
    gate: Arc<Gate>,
    chunk: usize,
    reader: Option<Waker>,
}

impl ScriptedPeer {
    fn new(wire: Vec<u8>, setup: FrameSetup, gate: Arc<Gate>) -> Self {
        let mut peer = ScriptedPeer {
            request: Vec::new(),
            wire: Vec::new(),
            outgoing: Vec::new(),
            sent: 0,
            head: 0,
            answered: false,
            gate,
            chunk: setup.chunk,
            reader: None,
        };
        if setup.raw_handshake {
            peer.outgoing = wire;
            peer.answered = true;
        } else {
            peer.wire = wire;
        }
        peer
    }

    fn answer(&mut self, head_len: usize) {
        let head = String::from_utf8_lossy(&self.request[..head_len]).into_owned();
        let key = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim().to_owned())
            })
            .expect("the client sends Sec-WebSocket-Key");
        let accept = derive_accept_key(key.as_bytes());
        self.outgoing = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .into_bytes();
        self.head = self.outgoing.len();
        self.outgoing.append(&mut self.wire);
        self.answered = true;
        if let Some(waker) = self.reader.take() {
            waker.wake();
        }
    }
}

impl AsyncRead for ScriptedPeer {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.gate.is_open(cx) {
            return Poll::Pending;
        }
        if !self.answered {
            self.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let chunk = if self.sent < self.head {
            self.head - self.sent
        } else {
            self.chunk
        };
        let rest = &self.outgoing[self.sent..];
        let n = rest.len().min(buf.remaining()).min(chunk);
        buf.put_slice(&rest[..n]);
        self.sent += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ScriptedPeer {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if !self.answered {
            self.request.extend_from_slice(buf);
            if let Some(end) = self.request.windows(4).position(|w| w == b"\r\n\r\n") {
                self.answer(end + 4);
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
