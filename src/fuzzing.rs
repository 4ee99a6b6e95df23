//! Fuzz harnesses, one public function per target in `fuzz/fuzz_targets/`.
//!
//! Each harness takes the fuzzer's bytes, drives one part of the library the
//! way the supervisor does, and panics when an invariant breaks. The unit tests
//! at the bottom replay every file under `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` through the same functions, so `cargo test`
//! keeps every seed and every crash found so far green.
//!
//! | target | input | what must hold |
//! |---|---|---|
//! | [`frame_read`] | selector byte + raw server bytes | no panic, no hang, a typed terminal error, balanced stats |
//! | [`kalshi_classify`] | JSON lines | no panic, pure, short errors, encode/classify round trips |
//! | [`kraken_classify`] | JSON lines and `#` commands | no panic, deterministic, verified books really verify |
//! | [`kraken_book`] | a depth line, then `S`/`U` lines of `price:qty` | book equals a reference model; sorted, no zeros, depth; checksum |
//! | [`session_script`] | [`arbitrary`] script of session events | registry equals a model; exact accounting; no stale server id routes |

pub use crate::queue::{Pushed, Queue};
pub use crate::subscription::{
    Acked, ClientId, Entry, Phase, ProtocolBatching, Registry, Route, SeqCheck, Stashed,
};

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use futures::task::noop_waker_ref;
use std::future::Future;

use futures::{FutureExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::connector::{ConnectFuture, Connector, Transport};
use crate::error::{Error, SubscriptionOp, VenueError};
use crate::message::{Frame, Update};
use crate::protocol::kraken::{checksum_levels, Book, BookError, Side, MAX_NUMBER_LEN};
use crate::protocol::{
    ChecksumMismatch, Inbound, Kalshi, Kraken, Protocol, RawProtocol, Request, ServerId, Topic,
};
use crate::queue::Overflow;
use crate::{Backoff, Client, Config};

// ===========================================================================
// frame_read: arbitrary bytes on the socket, through the real supervisor
// ===========================================================================

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
        config =
            config.token_source(|| async { Ok::<_, crate::TokenError>("fuzz-token".to_owned()) });
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
            assert!(crate::default_permanent_close(*code), "fatal close {code}")
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

// ===========================================================================
// Classification: shared checks
// ===========================================================================

/// Checks that hold for any classification of any frame.
fn check_inbound(inbound: &Inbound<'_>) {
    if let Inbound::Invalid(error) = inbound {
        // Errors name the failure, never quote the (possibly huge) frame.
        let text = error.to_string();
        assert!(
            text.len() < 160,
            "an error that quotes its frame? {text:.200}"
        );
    }
}

fn parse_json(frame: &str) -> Value {
    serde_json::from_str(frame)
        .unwrap_or_else(|e| panic!("an encoded frame is not JSON ({e}): {frame}"))
}

/// Lines of a classify input that are also round-tripped through the encoders
/// (each round trip builds and parses several JSON frames: costly per line).
const ROUND_TRIPS: usize = 4;

/// At most the first 40 bytes of `line` (on a char boundary): round trips
/// exercise escaping on any text; long text would only make them slow.
fn sample(line: &str) -> &str {
    let mut end = line.len().min(40);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// Round-trip numbers derived from a line, including the u64 edges.
fn numbers_for(line: &str) -> (u64, u64, u64) {
    let n = line.len() as u64;
    let mix = line
        .bytes()
        .fold(n, |acc, b| acc.wrapping_mul(31).wrapping_add(u64::from(b)));
    let req_id = if mix % 5 == 0 {
        u64::MAX
    } else {
        mix % 1_000_000
    };
    let sid = if mix % 7 == 0 { u64::MAX } else { mix % 97 };
    let seq = mix % 3;
    (req_id, sid, seq)
}

// ===========================================================================
// kalshi_classify
// ===========================================================================

/// Classifies every line of the input as a Kalshi frame, and round-trips each
/// line's text through the encoders and through server frames that carry it.
///
/// # Panics
///
/// When an invariant breaks.
pub fn kalshi_classify(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut kalshi = Kalshi::new();
    for (n, line) in text.split('\n').enumerate() {
        let round_trip = n < ROUND_TRIPS;
        let inbound = kalshi.classify(line);
        check_inbound(&inbound);
        // Kalshi classification keeps no state: the same frame, the same verdict.
        assert_eq!(inbound, Kalshi::new().classify(line), "{line:.200}");
        if let Inbound::Subscribed {
            channel: Some(channel),
            ..
        } = &inbound
        {
            if round_trip {
                kalshi_round_trip(channel);
            }
        }
        if round_trip {
            kalshi_round_trip(sample(line));
        }
        check_venue_errors(line);
    }
}

/// The venue error parsers keep the text and never contradict themselves.
fn check_venue_errors(text: &str) {
    let (_, sid, _) = numbers_for(text);
    let code = i64::try_from(sid).ok();
    for error in [VenueError::kraken(text), VenueError::kalshi(code, text)] {
        assert_eq!(error.raw, text);
        assert!(error.to_string().ends_with(text));
        assert!(
            error.retry_after().is_none() || error.is_retryable(),
            "{error:?}"
        );
        match (error.severity, error.category) {
            (Some(severity), Some(category)) => {
                let letter = match severity {
                    crate::Severity::Error => "E",
                    crate::Severity::Warning => "W",
                };
                assert_eq!(format!("{letter}{category}:{}", error.message), text);
            }
            (None, None) => assert_eq!(error.message, text),
            other => panic!("half a Kraken shape {other:?} in {error:?}"),
        }
    }
}

fn kalshi_round_trip(s: &str) {
    let (req_id, sid, seq) = numbers_for(s);
    let mut kalshi = Kalshi::new();

    // Our frames carry arbitrary text intact.
    let topic = Topic::new(s).symbol(s);
    let sub = parse_json(&kalshi.encode_subscribe(&[&topic], req_id));
    assert_eq!(sub["id"], json!(req_id));
    assert_eq!(sub["cmd"], json!("subscribe"));
    assert_eq!(sub["params"]["channels"], json!([s]));
    assert_eq!(sub["params"]["market_tickers"], json!([s]));
    let unsub = kalshi
        .encode_unsubscribe(&topic, &ServerId::Num(sid), req_id)
        .expect("kalshi unsubscribes by sid");
    let unsub = parse_json(&unsub);
    assert_eq!(
        (&unsub["id"], &unsub["params"]["sids"]),
        (&json!(req_id), &json!([sid]))
    );
    let request = Request::new(s, Some(json!({ "text": s })));
    let encoded = kalshi
        .encode_request(&request, req_id)
        .expect("kalshi encodes any request");
    let encoded = parse_json(&encoded);
    assert_eq!(
        (&encoded["id"], &encoded["cmd"], &encoded["params"]["text"]),
        (&json!(req_id), &json!(s), &json!(s))
    );

    // Server frames built around arbitrary text classify as what they are.
    let ack =
        json!({"id": req_id, "type": "subscribed", "msg": {"channel": s, "sid": sid}}).to_string();
    assert_eq!(
        kalshi.classify(&ack),
        Inbound::Subscribed {
            req_id: Some(req_id),
            server_id: ServerId::Num(sid),
            channel: Some(Cow::Borrowed(s)),
            symbol: None,
        }
    );
    let error = json!({"id": req_id, "type": "error", "msg": {"code": 6, "msg": s}}).to_string();
    assert_eq!(
        kalshi.classify(&error),
        Inbound::Rejected {
            req_id: Some(req_id),
            symbol: None,
            error: VenueError::kalshi(Some(6), s),
        }
    );
    let data = json!({"type": "ticker", "sid": sid, "seq": seq, "msg": {"text": s}}).to_string();
    let msg = json!({"text": s}).to_string();
    assert_eq!(
        kalshi.classify(&data),
        Inbound::Data {
            server_id: ServerId::Num(sid),
            seq: Some(seq),
            checksum: None,
            payload: Some(&msg),
        }
    );
}

// ===========================================================================
// kraken_classify
// ===========================================================================

/// Classifies every line as a Kraken frame on two adapters side by side (they
/// must agree: no hidden state), with `#` lines as adapter calls the supervisor
/// makes: `#sub CHANNEL DEPTH|- SYMBOL...` (encode a subscribe), `#unsub
/// CHANNEL [SYMBOL]` (forget and encode the unsubscribe), `#forget KEY`, `#reset`.
///
/// After each book frame the book is checked; a single-item book frame that
/// classified without a checksum verdict must match its book's checksum.
///
/// # Panics
///
/// When an invariant breaks.
pub fn kraken_classify(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut a = Kraken::new();
    let mut b = Kraken::new();
    let mut req_id = 1u64;
    for (n, line) in text.split('\n').enumerate() {
        let round_trip = n < ROUND_TRIPS;
        if let Some(command) = line.strip_prefix('#') {
            req_id += 1;
            kraken_command(&mut a, command, req_id);
            kraken_command(&mut b, command, req_id);
            continue;
        }
        let inbound = a.classify(line);
        check_inbound(&inbound);
        assert_eq!(
            inbound,
            b.classify(line),
            "two adapters disagree on {line:.200}"
        );
        match &inbound {
            Inbound::Subscribed {
                server_id,
                channel: Some(channel),
                symbol,
                ..
            } => {
                assert_eq!(*server_id, Kraken::server_id(channel, symbol.as_deref()));
                if round_trip {
                    kraken_round_trip(channel);
                }
            }
            Inbound::Subscribed { channel: None, .. } => {
                panic!("a kraken ack without a channel: {line:.200}")
            }
            Inbound::Data {
                server_id,
                checksum,
                ..
            } => check_book_frame(&a, line, server_id, *checksum),
            _ => {}
        }
        if round_trip {
            kraken_round_trip(sample(line));
        }
        check_venue_errors(line);
    }
}

fn kraken_command(kraken: &mut Kraken, command: &str, req_id: u64) {
    let mut words = command.split_whitespace();
    match words.next() {
        Some("sub") => {
            let Some(channel) = words.next() else { return };
            let depth = words.next().and_then(|d| d.parse::<u64>().ok());
            let topics: Vec<Topic> = words
                .map(|symbol| {
                    let topic = Topic::new(channel).symbol(symbol);
                    match depth {
                        Some(depth) => topic.param("depth", depth),
                        None => topic,
                    }
                })
                .collect();
            let topics = if topics.is_empty() {
                vec![Topic::new(channel)]
            } else {
                topics
            };
            // One request per batchable run, as the registry groups them.
            let mut start = 0;
            while start < topics.len() {
                let mut end = start + 1;
                while end < topics.len() && kraken.can_batch(&topics[start], &topics[end]) {
                    end += 1;
                }
                let batch: Vec<&Topic> = topics[start..end].iter().collect();
                let frame = parse_json(&kraken.encode_subscribe(&batch, req_id));
                assert_eq!(frame["method"], json!("subscribe"));
                assert_eq!(frame["params"]["channel"], json!(channel));
                assert_eq!(frame["req_id"], json!(req_id));
                start = end;
            }
        }
        Some("unsub") => {
            let Some(channel) = words.next() else { return };
            let topic = match words.next() {
                Some(symbol) => Topic::new(channel).symbol(symbol),
                None => Topic::new(channel),
            };
            let server_id = Kraken::server_id(channel, topic.symbol_name());
            kraken.forget(&server_id);
            if let Some(frame) = kraken.encode_unsubscribe(&topic, &server_id, req_id) {
                let frame = parse_json(&frame);
                assert_eq!(frame["method"], json!("unsubscribe"));
                assert_eq!(frame["params"]["channel"], json!(channel));
            }
        }
        Some("forget") => {
            let key = words.next().unwrap_or_default();
            kraken.forget(&ServerId::Key(key.into()));
        }
        Some("reset") => kraken.reset(),
        _ => {}
    }
}

/// Checks the book a book frame touched, and that a frame classified as
/// verified really carried its book's checksum.
fn check_book_frame(
    kraken: &Kraken,
    line: &str,
    server_id: &ServerId,
    verdict: Option<ChecksumMismatch>,
) {
    let ServerId::Key(key) = server_id else {
        panic!("kraken routes by key, got {server_id:?}");
    };
    let Some(symbol) = key.strip_prefix("book:") else {
        return;
    };
    let Some(book) = kraken.book(symbol) else {
        return;
    };
    check_book(book);
    if verdict.is_some() {
        return;
    }
    let Ok(frame) = serde_json::from_str::<Value>(line) else {
        return;
    };
    let is_method = frame.get("method").is_some_and(Value::is_string);
    if is_method || frame.get("channel") != Some(&json!("book")) {
        return;
    }
    let Some([item]) = frame
        .get("data")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    else {
        return;
    };
    if item.get("symbol").and_then(Value::as_str) != Some(symbol) {
        return;
    }
    let expected = match item.get("checksum") {
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Some(Value::String(s)) => s.parse::<u32>().ok(),
        _ => None,
    };
    if let Some(expected) = expected {
        assert_eq!(
            book.checksum(),
            expected,
            "a frame passed verification with another checksum: {line:.300}"
        );
    }
}

fn kraken_round_trip(s: &str) {
    let (req_id, _, _) = numbers_for(s);
    let mut kraken = Kraken::new();

    let topic = Topic::new(s).symbol(s);
    let sub = parse_json(&kraken.encode_subscribe(&[&topic], req_id));
    assert_eq!(
        (&sub["method"], &sub["req_id"]),
        (&json!("subscribe"), &json!(req_id))
    );
    assert_eq!(
        (&sub["params"]["channel"], &sub["params"]["symbol"]),
        (&json!(s), &json!([s]))
    );
    let unsub = kraken
        .encode_unsubscribe(&topic, &Kraken::server_id(s, Some(s)), req_id)
        .expect("kraken unsubscribes by topic");
    let unsub = parse_json(&unsub);
    assert_eq!(
        (&unsub["method"], &unsub["params"]["symbol"]),
        (&json!("unsubscribe"), &json!([s]))
    );
    let ping = parse_json(
        &kraken
            .encode_ping(req_id)
            .expect("kraken has an app-level ping"),
    );
    assert_eq!(
        (&ping["method"], &ping["req_id"]),
        (&json!("ping"), &json!(req_id))
    );

    let mut kraken = Kraken::new();
    let ack = json!({"method": "subscribe", "result": {"channel": s, "symbol": s}, "success": true, "req_id": req_id});
    assert_eq!(
        kraken.classify(&ack.to_string()),
        Inbound::Subscribed {
            req_id: Some(req_id),
            server_id: Kraken::server_id(s, Some(s)),
            channel: Some(Cow::Borrowed(s)),
            symbol: Some(Cow::Borrowed(s)),
        }
    );
    let reject =
        json!({"error": s, "method": "subscribe", "success": false, "symbol": s, "req_id": req_id});
    assert_eq!(
        kraken.classify(&reject.to_string()),
        Inbound::Rejected {
            req_id: Some(req_id),
            symbol: Some(Cow::Borrowed(s)),
            error: VenueError::kraken(s),
        }
    );
    let data = json!({"channel": "ticker", "type": "update", "data": [{"symbol": s, "last": 1.5}]});
    let items = json!([{"symbol": s, "last": 1.5}]).to_string();
    assert_eq!(
        kraken.classify(&data.to_string()),
        Inbound::Data {
            server_id: Kraken::server_id("ticker", Some(s)),
            seq: None,
            checksum: None,
            payload: Some(&items),
        }
    );
    let pong = json!({"method": "pong", "req_id": req_id});
    assert_eq!(kraken.classify(&pong.to_string()), Inbound::Pong);
}

// ===========================================================================
// kraken_book: the book against a reference model
// ===========================================================================

/// Applies a script of snapshots and updates to a [`Book`] and to a simple
/// reference model, and compares them after every step.
///
/// Format: the first line is the depth (10 if unreadable); then one line per
/// change: `S` (snapshot) or `U` (update), the ask levels, `|`, the bid levels,
/// each level `price:qty` as wire text. Other lines are skipped.
///
/// # Panics
///
/// When the book breaks an invariant or differs from the model.
pub fn kraken_book(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let depth = lines
        .next()
        .and_then(|l| l.trim().parse::<usize>().ok())
        .unwrap_or(10);
    let mut book = Book::new(depth);
    let mut model = BookModel::default();
    for line in lines {
        let mut words = line.split_whitespace();
        let snapshot = match words.next() {
            Some("S" | "s") => true,
            Some("U" | "u") => false,
            _ => continue,
        };
        let (mut asks, mut bids) = (Vec::new(), Vec::new());
        let mut side = &mut asks;
        for word in words {
            if word == "|" {
                side = &mut bids;
                continue;
            }
            side.push(word.split_once(':').unwrap_or((word, "")));
        }
        let before = (
            levels_of(book.asks()),
            levels_of(book.bids()),
            book.checksum(),
        );
        let result = if snapshot {
            book.apply_snapshot(&asks, &bids)
        } else {
            book.apply_update(&asks, &bids)
        };
        match (result, first_invalid(&asks, &bids)) {
            (Ok(()), None) => model.apply(snapshot, &asks, &bids, depth),
            (Err(error), Some(expected)) => {
                assert_eq!(book_error_place(&error), expected, "{error}");
                let after = (
                    levels_of(book.asks()),
                    levels_of(book.bids()),
                    book.checksum(),
                );
                assert_eq!(before, after, "a refused change altered the book");
            }
            (result, expected) => panic!(
                "book said {result:?}, the model expected an error at {expected:?}: {line:.300}"
            ),
        }
        check_book(&book);
        assert!(book.asks().len() <= depth && book.bids().len() <= depth);
        assert_eq!(
            levels_of(book.asks()),
            model.asks,
            "asks differ from the model after {line:.300}"
        );
        assert_eq!(
            levels_of(book.bids()),
            model.bids,
            "bids differ from the model after {line:.300}"
        );
    }
}

type Levels = Vec<(String, String)>;

fn levels_of<'a>(levels: impl Iterator<Item = crate::protocol::kraken::Level<'a>>) -> Levels {
    levels
        .map(|l| (l.price().to_owned(), l.qty().to_owned()))
        .collect()
}

/// Checks a book's own invariants and that its checksum is a function of its
/// levels (the same book always gives the same checksum).
fn check_book(book: &Book) {
    let asks = levels_of(book.asks());
    let bids = levels_of(book.bids());
    assert!(
        asks.len() <= book.depth() && bids.len() <= book.depth(),
        "over depth {}",
        book.depth()
    );
    for (price, qty) in asks.iter().chain(&bids) {
        assert!(
            is_decimal(price) && is_decimal(qty),
            "stored invalid text {price:?} {qty:?}"
        );
        assert!(!is_zero(qty), "stored a zero quantity at {price}");
    }
    for pair in asks.windows(2) {
        assert_eq!(
            decimal_cmp(&pair[0].0, &pair[1].0),
            Ordering::Less,
            "asks not strictly ascending: {asks:?}"
        );
    }
    for pair in bids.windows(2) {
        assert_eq!(
            decimal_cmp(&pair[0].0, &pair[1].0),
            Ordering::Greater,
            "bids not strictly descending: {bids:?}"
        );
    }
    let (a, b) = (borrowed(&asks), borrowed(&bids));
    let checksum = book.checksum();
    assert_eq!(checksum, checksum_levels(&a, &b));
    assert_eq!(
        checksum,
        reference_checksum(&asks, &bids),
        "checksum differs from the documented algorithm"
    );
    assert_eq!(checksum, book.clone().checksum());
    let mut rebuilt = Book::new(book.depth());
    rebuilt
        .apply_snapshot(&a, &b)
        .expect("a book's own levels are valid");
    assert_eq!(
        rebuilt.checksum(),
        checksum,
        "the same levels gave another checksum"
    );
}

fn borrowed(side: &Levels) -> Vec<(&str, &str)> {
    side.iter().map(|(p, q)| (p.as_str(), q.as_str())).collect()
}

/// PROTOCOLS.md: per level, the text with `.` removed and leading zeros
/// stripped, price then qty, top 10 asks then top 10 bids, CRC-32.
fn reference_checksum(asks: &Levels, bids: &Levels) -> u32 {
    let mut text = String::new();
    for (price, qty) in asks.iter().take(10).chain(bids.iter().take(10)) {
        for number in [price, qty] {
            text.push_str(number.replace('.', "").trim_start_matches('0'));
        }
    }
    crc32fast::hash(text.as_bytes())
}

/// A plain decimal: digits, optionally one `.` with digits on both sides.
fn is_decimal(text: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    text.len() <= MAX_NUMBER_LEN
        && match text.split_once('.') {
            Some((int, frac)) => digits(int) && digits(frac),
            None => digits(text),
        }
}

fn is_zero(text: &str) -> bool {
    text.bytes().all(|b| b == b'0' || b == b'.')
}

/// Exact comparison of two valid decimals, by padding both to the same shape.
fn decimal_cmp(a: &str, b: &str) -> Ordering {
    let split = |s: &str| -> (String, String) {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        (int.to_owned(), frac.to_owned())
    };
    let ((ai, af), (bi, bf)) = (split(a), split(b));
    let int_len = ai.len().max(bi.len());
    let frac_len = af.len().max(bf.len());
    let pad = |int: &str, frac: &str| format!("{int:0>int_len$}{frac:0<frac_len$}");
    pad(&ai, &af).cmp(&pad(&bi, &bf))
}

/// Where the first invalid number is: (side, index, is the price).
fn first_invalid(asks: &[(&str, &str)], bids: &[(&str, &str)]) -> Option<(Side, usize, bool)> {
    for (side, levels) in [(Side::Ask, asks), (Side::Bid, bids)] {
        for (index, (price, qty)) in levels.iter().enumerate() {
            if !is_decimal(price) {
                return Some((side, index, true));
            }
            if !is_decimal(qty) {
                return Some((side, index, false));
            }
        }
    }
    None
}

fn book_error_place(error: &BookError) -> (Side, usize, bool) {
    match *error {
        BookError::Price { side, index, .. } => (side, index, true),
        BookError::Qty { side, index, .. } => (side, index, false),
    }
}

/// The book as PROTOCOLS.md describes it, on sorted vectors.
#[derive(Default)]
struct BookModel {
    asks: Levels,
    bids: Levels,
}

impl BookModel {
    fn apply(
        &mut self,
        snapshot: bool,
        asks: &[(&str, &str)],
        bids: &[(&str, &str)],
        depth: usize,
    ) {
        if snapshot {
            self.asks.clear();
            self.bids.clear();
        }
        // Asks best (lowest) first, bids best (highest) first.
        for (side, levels, best_first) in [
            (&mut self.asks, asks, Ordering::Less),
            (&mut self.bids, bids, Ordering::Greater),
        ] {
            for &(price, qty) in levels {
                let at = side
                    .iter()
                    .position(|(p, _)| decimal_cmp(p, price) != best_first);
                let same = at.filter(|&i| decimal_cmp(&side[i].0, price) == Ordering::Equal);
                match (same, is_zero(qty)) {
                    (Some(i), true) => {
                        side.remove(i);
                    }
                    (Some(i), false) => side[i] = (price.to_owned(), qty.to_owned()),
                    (None, true) => {}
                    (None, false) => {
                        side.insert(at.unwrap_or(side.len()), (price.to_owned(), qty.to_owned()))
                    }
                }
            }
            side.truncate(depth);
        }
    }
}

// ===========================================================================
// session_script: the registry and queues, driven as the session drives them
// ===========================================================================

/// Request timeout of the script session, in ticks of [`Step::Wait`].
const REQUEST_TIMEOUT_TICKS: u64 = 4;
/// Longest script run (steps past it are ignored), to bound one execution.
const MAX_STEPS: usize = 400;
const CHANNELS: [&str; 3] = ["ticker", "book", "trade"];
const SYMBOLS: [&str; 3] = ["BTC/USD", "ETH/USD", "SOL/USD"];

/// A session script: settings, then events in order.
#[derive(Arbitrary, Debug)]
struct Script {
    /// Kraken batching rules (and keys) instead of Kalshi's.
    kraken: bool,
    /// Stash capacity, modulo 5.
    stash_capacity: u8,
    /// Resubscribe on a gap or reset.
    resync_on_gap: bool,
    steps: Vec<Step>,
}

/// One event of a session script.
#[derive(Arbitrary, Debug)]
enum Step {
    /// A connection comes up (after a drop, if one is up): replay everything unsent.
    Connect,
    /// The connection drops.
    Drop,
    /// `count % 3 + 1` subscriptions on one channel (subscribe_many).
    Subscribe {
        channel: u8,
        symbol: u8,
        count: u8,
        capacity: u8,
        policy: u8,
    },
    /// A handle unsubscribes (possibly one whose subscription already ended).
    Unsubscribe { pick: u8 },
    /// The venue acknowledges a subscribe: a member of request `req` (255: an
    /// unknown request) is the target; the ack names its channel and symbol,
    /// `% 3`: not at all, as subscribed, or another one (an alias); `echo`:
    /// whether the ack carries the request id.
    Ack {
        req: u8,
        member: u8,
        sid: SidPick,
        channel: u8,
        symbol: u8,
        echo: bool,
        patient: bool,
    },
    /// The venue refuses a subscribe (naming a symbol or not); `expired`: the
    /// refusal says the session token expired (the client has a token source).
    Reject {
        req: u8,
        symbol: Option<u8>,
        expired: bool,
    },
    /// A data frame arrives.
    Data {
        sid: SidPick,
        seq: SeqPick,
        bad_checksum: bool,
        patient: bool,
    },
    /// A consumer reads up to `max % 8 + 1` items.
    Read { pick: u8, max: u8 },
    /// A consumer drops its stream; `lost`: its unsubscribe command was lost.
    DropConsumer { pick: u8, lost: bool },
    /// Time passes (`ticks % 8`): subscribe requests time out.
    Wait { ticks: u8 },
}

/// How an ack names what it acknowledges.
#[derive(Debug, Clone, Copy)]
struct Naming {
    channel: u8,
    symbol: u8,
    echo: bool,
}

/// Another name from `names` than `name` (an alias the venue might use).
fn other(names: &'static [&'static str], name: &str) -> &'static str {
    let at = names.iter().position(|n| *n == name).map_or(0, |i| i + 1);
    names[at % names.len()]
}

/// The server id an ack or data frame names.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum SidPick {
    /// A small number (Kalshi style).
    Num(u8),
    /// The key of a subscription's topic (Kraken style): for an ack, of the
    /// member it targets; for data, of a live subscription.
    Key(u8),
    /// One seen before (acked or sent data for), possibly stale now.
    Seen(u8),
}

/// A data frame's sequence number, relative to where its target stands.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum SeqPick {
    None,
    Next,
    Repeat,
    Jump(u8),
    /// Absolute (255: u64::MAX).
    Abs(u8),
}

/// Runs a session script against the registry and queues, mirroring the
/// supervisor's calls, and checks after every step that the registry agrees
/// with a reference model, that every frame is counted exactly once, and that
/// no server id routes a frame unless the latest ack on this connection mapped it.
///
/// # Panics
///
/// When an invariant breaks.
pub fn session_script(data: &[u8]) {
    let Ok(script) = Script::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut harness = SessionHarness::new(&script);
    for step in script.steps.iter().take(MAX_STEPS) {
        harness.step(step);
        harness.check();
    }
    harness.finish();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MPhase {
    Unsent,
    Pending(u64),
    Active,
}

struct MSub {
    topic: Topic,
    phase: MPhase,
    server_id: Option<ServerId>,
    acked_once: bool,
    last_seq: Option<u64>,
}

struct MRequest {
    op: SubscriptionOp,
    members: Vec<ClientId>,
}

/// The registry as its documentation describes it.
#[derive(Default)]
struct Model {
    subs: BTreeMap<ClientId, MSub>,
    requests: BTreeMap<u64, MRequest>,
    /// Server ids the latest acks on this connection mapped, and to whom.
    valid: HashMap<ServerId, ClientId>,
    /// (server id, frame number)
    stash: VecDeque<(ServerId, u64)>,
    stash_capacity: usize,
}

/// What the model expects an ack to do.
#[derive(Debug, PartialEq)]
struct MAcked {
    client_id: ClientId,
    resubscribed: bool,
    released: Vec<(ServerId, u64)>,
}

impl Model {
    fn matches(&self, id: ClientId, channel: Option<&str>, symbol: Option<&str>) -> bool {
        self.subs.get(&id).is_some_and(|s| {
            channel.is_none_or(|c| s.topic.channel() == c)
                && symbol.is_none_or(|y| s.topic.symbol_name() == Some(y))
        })
    }

    fn leave(&mut self, req_id: u64, id: ClientId) {
        if let Some(request) = self.requests.get_mut(&req_id) {
            request.members.retain(|m| *m != id);
            if request.members.is_empty() {
                self.requests.remove(&req_id);
            }
        }
    }

    fn remove(&mut self, id: ClientId) -> bool {
        let Some(sub) = self.subs.remove(&id) else {
            return false;
        };
        if let Some(server_id) = &sub.server_id {
            if self.valid.get(server_id) == Some(&id) {
                self.valid.remove(server_id);
            }
        }
        if let MPhase::Pending(req_id) = sub.phase {
            self.leave(req_id, id);
        }
        true
    }

    fn unsent_batches(&self, batching: &dyn ProtocolBatching) -> Vec<Vec<ClientId>> {
        let mut batches: Vec<Vec<ClientId>> = Vec::new();
        let mut first: Option<&Topic> = None;
        for (id, sub) in &self.subs {
            if sub.phase != MPhase::Unsent {
                first = None;
                continue;
            }
            match (batches.last_mut(), first) {
                (Some(batch), Some(f)) if batching.batchable(f, &sub.topic) => batch.push(*id),
                _ => {
                    batches.push(vec![*id]);
                    first = Some(&sub.topic);
                }
            }
        }
        batches
    }

    fn mark_sent(&mut self, members: &[ClientId], req_id: u64) {
        let mut op = SubscriptionOp::Subscribe;
        for id in members {
            let sub = self.subs.get_mut(id).expect("members are live");
            if sub.acked_once {
                op = SubscriptionOp::Resubscribe;
            }
            sub.phase = MPhase::Pending(req_id);
        }
        self.requests.insert(
            req_id,
            MRequest {
                op,
                members: members.to_vec(),
            },
        );
    }

    fn on_subscribed(
        &mut self,
        req_id: Option<u64>,
        server_id: &ServerId,
        channel: Option<&str>,
        symbol: Option<&str>,
    ) -> Option<MAcked> {
        // No request id: the oldest pending request naming this channel and symbol.
        let req_id = match req_id {
            Some(req_id) => req_id,
            None if channel.is_none() && symbol.is_none() => return None,
            None => {
                *self
                    .requests
                    .iter()
                    .find(|(_, r)| r.members.iter().any(|m| self.matches(*m, channel, symbol)))?
                    .0
            }
        };
        let request = self.requests.get(&req_id)?;
        let exact = request
            .members
            .iter()
            .copied()
            .find(|m| self.matches(*m, channel, symbol));
        // An ack belongs to the member it names or to nobody.
        let id = exact?;
        // A server id routed to another live subscription is never re-pointed.
        if self
            .valid
            .get(server_id)
            .is_some_and(|holder| *holder != id)
        {
            return None;
        }
        self.leave(req_id, id);
        self.valid.insert(server_id.clone(), id);
        let sub = self.subs.get_mut(&id).expect("members are live");
        if let Some(old) = sub.server_id.replace(server_id.clone()) {
            if old != *server_id && self.valid.get(&old) == Some(&id) {
                self.valid.remove(&old);
            }
        }
        sub.phase = MPhase::Active;
        sub.last_seq = None;
        let resubscribed = sub.acked_once;
        sub.acked_once = true;
        let (released, kept): (VecDeque<_>, VecDeque<_>) =
            self.stash.drain(..).partition(|(s, _)| s == server_id);
        self.stash = kept;
        Some(MAcked {
            client_id: id,
            resubscribed,
            released: released.into_iter().collect(),
        })
    }

    fn on_rejected(
        &mut self,
        req_id: Option<u64>,
        symbol: Option<&str>,
    ) -> Option<(ClientId, SubscriptionOp)> {
        let request = self.requests.get(&req_id?)?;
        let op = request.op;
        let id = request
            .members
            .iter()
            .copied()
            .find(|m| self.matches(*m, None, symbol))?;
        self.remove(id);
        Some((id, op))
    }

    fn requeue_rejected(
        &mut self,
        req_id: Option<u64>,
        symbol: Option<&str>,
    ) -> Option<(ClientId, SubscriptionOp)> {
        let request = self.requests.get(&req_id?)?;
        let op = request.op;
        let id = request
            .members
            .iter()
            .copied()
            .find(|m| self.matches(*m, None, symbol))?;
        self.leave(req_id?, id);
        self.subs.get_mut(&id)?.phase = MPhase::Unsent;
        Some((id, op))
    }

    fn on_timeout(&mut self, req_id: u64) -> Vec<(ClientId, SubscriptionOp)> {
        let Some(request) = self.requests.remove(&req_id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for id in request.members {
            if let Some(sub) = self.subs.remove(&id) {
                if let Some(server_id) = &sub.server_id {
                    if self.valid.get(server_id) == Some(&id) {
                        self.valid.remove(server_id);
                    }
                }
                out.push((id, request.op));
            }
        }
        out
    }

    fn route(&self, server_id: &ServerId) -> Route {
        match self.valid.get(server_id) {
            Some(id) => Route::To(*id),
            None if !self.requests.is_empty() => Route::Stash,
            None => Route::Unroutable,
        }
    }

    fn stash(&mut self, server_id: ServerId, frame: u64) -> Option<u64> {
        if self.stash_capacity == 0 {
            return Some(frame);
        }
        let evicted = if self.stash.len() >= self.stash_capacity {
            self.stash.pop_front().map(|(_, f)| f)
        } else {
            None
        };
        self.stash.push_back((server_id, frame));
        evicted
    }

    fn check_seq(&mut self, id: ClientId, seq: u64) -> SeqCheck {
        let Some(sub) = self.subs.get_mut(&id) else {
            return SeqCheck::InOrder;
        };
        let verdict = match sub.last_seq {
            None => SeqCheck::InOrder,
            Some(last) if seq == last.wrapping_add(1) => SeqCheck::InOrder,
            Some(last) if seq <= last => SeqCheck::Duplicate,
            Some(last) => SeqCheck::Gap {
                last_seq: last,
                next_seq: seq,
            },
        };
        if verdict != SeqCheck::Duplicate {
            sub.last_seq = Some(seq);
        }
        verdict
    }

    fn begin_resync(&mut self, id: ClientId) -> Option<ServerId> {
        let sub = self.subs.get_mut(&id)?;
        if sub.phase != MPhase::Active {
            return None;
        }
        let old = sub.server_id.take();
        sub.phase = MPhase::Unsent;
        sub.last_seq = None;
        if let Some(server_id) = &old {
            if self.valid.get(server_id) == Some(&id) {
                self.valid.remove(server_id);
            }
        }
        old
    }

    fn on_disconnect(&mut self) -> usize {
        self.valid.clear();
        self.requests.clear();
        let dropped = self.stash.len();
        self.stash.clear();
        for sub in self.subs.values_mut() {
            sub.server_id = None;
            sub.phase = MPhase::Unsent;
            sub.last_seq = None;
        }
        dropped
    }
}

/// What the harness knows about one subscription's queue and consumer, kept
/// after the subscription ends.
struct Consumer {
    queue: Arc<Queue>,
    alive: bool,
    /// Data items popped (must equal the queue's `delivered`).
    popped: u64,
    /// Push order of each frame number handed to this queue.
    pushed: HashMap<u64, u64>,
    pushes: u64,
    last_popped: Option<u64>,
    ended: bool,
    waiter: Option<oneshot::Receiver<Result<(), Error>>>,
    ever_acked: bool,
}

struct SessionHarness {
    registry: Registry,
    /// The callers of `subscribe`, answered as the supervisor's replies do.
    readies: HashMap<ClientId, oneshot::Sender<Result<(), Error>>>,
    model: Model,
    batching: Box<dyn ProtocolBatching>,
    kraken: bool,
    resync_on_gap: bool,
    connected: bool,
    consumers: BTreeMap<ClientId, Consumer>,
    next_client_id: ClientId,
    next_req_id: u64,
    sent_requests: Vec<u64>,
    now: u64,
    deadlines: BTreeSet<(u64, u64)>,
    seen: BTreeSet<ServerId>,
    /// The server id each data frame (by number) was sent under.
    frames: Vec<ServerId>,
    frames_in: u64,
    control: u64,
    unroutable: u64,
}

impl SessionHarness {
    fn new(script: &Script) -> Self {
        let stash_capacity = usize::from(script.stash_capacity % 5);
        let batching: Box<dyn ProtocolBatching> = if script.kraken {
            Box::new(Kraken::new())
        } else {
            Box::new(Kalshi::new())
        };
        SessionHarness {
            registry: Registry::new(stash_capacity, usize::MAX),
            readies: HashMap::new(),
            model: Model {
                stash_capacity,
                ..Model::default()
            },
            batching,
            kraken: script.kraken,
            resync_on_gap: script.resync_on_gap,
            connected: false,
            consumers: BTreeMap::new(),
            next_client_id: 1,
            next_req_id: 1,
            sent_requests: Vec::new(),
            now: 0,
            deadlines: BTreeSet::new(),
            seen: BTreeSet::new(),
            frames: Vec::new(),
            frames_in: 0,
            control: 0,
            unroutable: 0,
        }
    }

    fn step(&mut self, step: &Step) {
        match *step {
            Step::Connect => {
                if self.connected {
                    self.disconnect();
                }
                self.connected = true;
                self.flush_unsent();
            }
            Step::Drop => self.disconnect(),
            Step::Subscribe {
                channel,
                symbol,
                count,
                capacity,
                policy,
            } => self.subscribe(channel, symbol, count, capacity, policy),
            Step::Unsubscribe { pick } => {
                if let Some(id) = self.pick_consumer(pick) {
                    // `Subscription::unsubscribe` consumes the handle.
                    self.unsubscribe(id);
                    self.drop_consumer(id, true);
                }
            }
            Step::Ack {
                req,
                member,
                sid,
                channel,
                symbol,
                echo,
                patient,
            } if self.connected => {
                let naming = Naming {
                    channel,
                    symbol,
                    echo,
                };
                self.ack(req, member, sid, naming, patient);
            }
            Step::Reject {
                req,
                symbol,
                expired,
            } if self.connected => self.reject(req, symbol, expired),
            Step::Data {
                sid,
                seq,
                bad_checksum,
                patient,
            } if self.connected => self.data(sid, seq, bad_checksum, patient),
            Step::Read { pick, max } => {
                if let Some(id) = self.pick_consumer(pick) {
                    self.read(id, usize::from(max % 8) + 1);
                }
            }
            Step::DropConsumer { pick, lost } => {
                if let Some(id) = self.pick_consumer(pick) {
                    self.drop_consumer(id, lost);
                }
            }
            Step::Wait { ticks } if self.connected => {
                self.now += u64::from(ticks % 8);
                while let Some(&(at, req_id)) = self.deadlines.first() {
                    if at > self.now {
                        break;
                    }
                    self.deadlines.pop_first();
                    self.expire(req_id);
                }
            }
            // Frames and timers need a connection.
            Step::Ack { .. } | Step::Reject { .. } | Step::Data { .. } | Step::Wait { .. } => {}
        }
    }

    fn pick_consumer(&self, pick: u8) -> Option<ClientId> {
        let alive: Vec<ClientId> = self
            .consumers
            .iter()
            .filter(|(_, c)| c.alive)
            .map(|(id, _)| *id)
            .collect();
        (!alive.is_empty()).then(|| alive[usize::from(pick) % alive.len()])
    }

    fn pick_request(&self, req: u8) -> Option<u64> {
        if req == u8::MAX || self.sent_requests.is_empty() {
            return None;
        }
        // Mostly the latest requests, sometimes old (finished) ones.
        let back = usize::from(req) % self.sent_requests.len().min(8);
        Some(self.sent_requests[self.sent_requests.len() - 1 - back])
    }

    fn key_of(&self, topic: &Topic) -> ServerId {
        if self.kraken {
            Kraken::server_id(topic.channel(), topic.symbol_name())
        } else {
            ServerId::Key(topic.to_string().into())
        }
    }

    // ---- mirrored supervisor paths ------------------------------------------

    fn disconnect(&mut self) {
        if !self.connected {
            return;
        }
        self.connected = false;
        let dropped = self.registry.on_disconnect();
        assert_eq!(
            dropped,
            self.model.on_disconnect(),
            "stash frames dropped on disconnect"
        );
        self.unroutable += dropped as u64;
        // The session's request deadlines go with it.
        self.deadlines.clear();
    }

    fn subscribe(&mut self, channel: u8, symbol: u8, count: u8, capacity: u8, policy: u8) {
        let channel = CHANNELS[usize::from(channel) % CHANNELS.len()];
        for i in 0..=(count % 3) {
            let topic = match (usize::from(symbol) + usize::from(i)) % (SYMBOLS.len() + 1) {
                n if n < SYMBOLS.len() => Topic::new(channel).symbol(SYMBOLS[n]),
                _ => Topic::new(channel),
            };
            let policy = match policy % 4 {
                0 => Overflow::DropOldest,
                1 => Overflow::DropNewest,
                2 => Overflow::Error,
                _ => Overflow::Block {
                    timeout: Duration::from_secs(1),
                },
            };
            let queue = Queue::new(usize::from(capacity % 3) + 1, policy);
            let (ready, waiter) = oneshot::channel();
            let id = self.next_client_id;
            self.next_client_id += 1;
            self.registry.add(id, topic.clone(), Arc::clone(&queue));
            self.readies.insert(id, ready);
            self.model.subs.insert(
                id,
                MSub {
                    topic,
                    phase: MPhase::Unsent,
                    server_id: None,
                    acked_once: false,
                    last_seq: None,
                },
            );
            self.consumers.insert(
                id,
                Consumer {
                    queue,
                    alive: true,
                    popped: 0,
                    pushed: HashMap::new(),
                    pushes: 0,
                    last_popped: None,
                    ended: false,
                    waiter: Some(waiter),
                    ever_acked: false,
                },
            );
        }
        if self.connected {
            self.flush_unsent();
        }
    }

    /// session.rs `flush_unsent`.
    fn flush_unsent(&mut self) {
        let batches = self.registry.unsent_batches(&*self.batching);
        assert_eq!(
            batches,
            self.model.unsent_batches(&*self.batching),
            "replay batches"
        );
        for batch in batches {
            let mut members = Vec::with_capacity(batch.len());
            for id in batch {
                let alive = self
                    .registry
                    .get(id)
                    .is_some_and(|e| e.queue.consumer_alive());
                if alive {
                    members.push(id);
                } else {
                    self.end_subscription(id, None);
                }
            }
            if members.is_empty() {
                continue;
            }
            let req_id = self.next_req_id;
            self.next_req_id += 1;
            self.registry.mark_sent(&members, req_id);
            self.model.mark_sent(&members, req_id);
            self.sent_requests.push(req_id);
            self.deadlines
                .insert((self.now + REQUEST_TIMEOUT_TICKS, req_id));
        }
    }

    /// session.rs `end_subscription` (and the offline unsubscribe).
    fn end_subscription(&mut self, id: ClientId, error: Option<Error>) {
        let Some(entry) = self.registry.remove(id) else {
            assert!(
                !self.model.remove(id),
                "registry lost live subscription {id}"
            );
            return;
        };
        assert!(
            self.model.remove(id),
            "registry had a subscription {id} the model ended"
        );
        entry.queue.finish(error);
        self.ended(id);
    }

    fn ended(&mut self, id: ClientId) {
        if let Some(consumer) = self.consumers.get_mut(&id) {
            consumer.ended = true;
        }
    }

    fn unsubscribe(&mut self, id: ClientId) {
        self.end_subscription(id, None);
    }

    fn ack(&mut self, req: u8, member: u8, sid: SidPick, naming: Naming, patient: bool) {
        self.frames_in += 1;
        self.control += 1;
        let picked = self.pick_request(req);
        let target = picked
            .and_then(|r| self.model.requests.get(&r))
            .map(|r| r.members[usize::from(member) % r.members.len()])
            .and_then(|id| self.model.subs.get(&id))
            .map(|s| s.topic.clone())
            .unwrap_or_else(|| Topic::new(CHANNELS[usize::from(member) % CHANNELS.len()]));
        let server_id = match sid {
            SidPick::Num(n) => ServerId::Num(u64::from(n % 6)),
            SidPick::Key(_) => self.key_of(&target),
            SidPick::Seen(i) => self.seen_pick(i),
        };
        self.seen.insert(server_id.clone());
        let req_id = if naming.echo { picked } else { None };
        let channel = match naming.channel % 3 {
            0 => None,
            1 => Some(target.channel()),
            _ => Some(other(&CHANNELS, target.channel())),
        };
        let symbol = match naming.symbol % 3 {
            0 => None,
            1 => target.symbol_name(),
            _ => Some(other(&SYMBOLS, target.symbol_name().unwrap_or_default())),
        };
        let (channel, symbol) = (channel.map(str::to_owned), symbol.map(str::to_owned));
        let expected =
            self.model
                .on_subscribed(req_id, &server_id, channel.as_deref(), symbol.as_deref());
        let acked = self.registry.on_subscribed(
            req_id,
            server_id.clone(),
            channel.as_deref(),
            symbol.as_deref(),
        );
        let Some(acked) = acked else {
            assert!(
                expected.is_none(),
                "the ack matched nothing; the model expected {expected:?}"
            );
            return;
        };
        let got = MAcked {
            client_id: acked.client_id,
            resubscribed: acked.resubscribed,
            released: acked
                .stashed
                .iter()
                .map(|s| (s.server_id.clone(), frame_number(&s.frame)))
                .collect(),
        };
        assert_eq!(
            Some(&got),
            expected.as_ref(),
            "ack of {req_id:?} with {server_id}"
        );
        let id = acked.client_id;
        if let Some(consumer) = self.consumers.get_mut(&id) {
            consumer.ever_acked = true;
        }
        if !acked.resubscribed {
            if let Some(waiter) = self.readies.remove(&id) {
                let _ = waiter.send(Ok(()));
            }
        }
        if acked.resubscribed {
            if let Some(entry) = self.registry.get(id) {
                entry.queue.push_signal(Update::Resubscribed {
                    server_id: server_id.clone(),
                });
            }
        }
        for stashed in acked.stashed {
            assert_eq!(
                stashed.server_id, server_id,
                "the ack released a frame of another server id"
            );
            self.deliver(id, stashed.frame, stashed.checksum, patient);
        }
        if !self.registry.any_pending() {
            let unclaimed = self.registry.clear_stash();
            assert_eq!(unclaimed, self.model.stash.len(), "unclaimed stash");
            self.model.stash.clear();
            self.unroutable += unclaimed as u64;
        }
    }

    fn seen_pick(&self, i: u8) -> ServerId {
        let n = self.seen.len();
        if n == 0 {
            return ServerId::Num(0);
        }
        self.seen
            .iter()
            .nth(usize::from(i) % n)
            .cloned()
            .unwrap_or(ServerId::Num(0))
    }

    /// session.rs `on_rejected` (the client has a token source).
    fn reject(&mut self, req: u8, symbol: Option<u8>, expired: bool) {
        self.frames_in += 1;
        self.control += 1;
        let req_id = self.pick_request(req);
        let symbol = symbol.map(|s| SYMBOLS[usize::from(s) % SYMBOLS.len()]);
        if expired {
            let requeued = self.registry.requeue_rejected(req_id, symbol);
            assert_eq!(
                requeued,
                self.model.requeue_rejected(req_id, symbol),
                "requeue of {req_id:?}"
            );
            if requeued.is_some() {
                // The session ends to reconnect with a fresh token.
                self.disconnect();
                return;
            }
        }
        let expected = self.model.on_rejected(req_id, symbol);
        let Some((id, op, entry)) = self.registry.on_rejected(req_id, symbol) else {
            assert!(
                expected.is_none(),
                "the rejection matched nothing; the model expected {expected:?}"
            );
            return;
        };
        assert_eq!(Some((id, op)), expected, "rejection of {req_id:?}");
        let error = Error::Subscription {
            op,
            client_id: id,
            req_id,
            error: VenueError::new(Some(6), "refused"),
        };
        if let Some(waiter) = self.readies.remove(&id) {
            let _ = waiter.send(Err(error.clone()));
        }
        entry.queue.finish(Some(error));
        self.ended(id);
    }

    /// session.rs `expire` for a subscribe request.
    fn expire(&mut self, req_id: u64) {
        let resubscribe = self.model.requests.get(&req_id).map(|r| r.op);
        assert_eq!(
            self.registry.pending_op(req_id),
            resubscribe,
            "pending op of request {req_id}"
        );
        if resubscribe == Some(SubscriptionOp::Resubscribe) {
            // session.rs: a replay that is not acknowledged ends the connection.
            self.disconnect();
            return;
        }
        let expected = self.model.on_timeout(req_id);
        let timed_out = self.registry.on_timeout(req_id);
        let got: Vec<(ClientId, SubscriptionOp)> =
            timed_out.iter().map(|(id, op, _)| (*id, *op)).collect();
        assert_eq!(got, expected, "timeout of request {req_id}");
        for (id, _, entry) in timed_out {
            let error = Error::Timeout {
                operation: crate::Operation::Subscribe,
                timeout: Duration::from_secs(REQUEST_TIMEOUT_TICKS),
            };
            if let Some(waiter) = self.readies.remove(&id) {
                let _ = waiter.send(Err(error.clone()));
            }
            entry.queue.finish(Some(error));
            self.ended(id);
        }
    }

    fn data(&mut self, sid: SidPick, seq: SeqPick, bad_checksum: bool, patient: bool) {
        self.frames_in += 1;
        let server_id = match sid {
            SidPick::Num(n) => ServerId::Num(u64::from(n % 6)),
            SidPick::Key(i) => {
                let topics: Vec<Topic> =
                    self.model.subs.values().map(|s| s.topic.clone()).collect();
                match topics.len() {
                    0 => ServerId::Num(0),
                    n => self.key_of(&topics[usize::from(i) % n]),
                }
            }
            SidPick::Seen(i) => self.seen_pick(i),
        };
        self.seen.insert(server_id.clone());
        let last = self
            .model
            .valid
            .get(&server_id)
            .and_then(|id| self.model.subs.get(id))
            .and_then(|s| s.last_seq);
        let seq = match seq {
            SeqPick::None => None,
            SeqPick::Next => Some(last.map_or(1, |l| l.wrapping_add(1))),
            SeqPick::Repeat => Some(last.unwrap_or(1)),
            SeqPick::Jump(k) => Some(last.unwrap_or(0).wrapping_add(2 + u64::from(k))),
            SeqPick::Abs(u8::MAX) => Some(u64::MAX),
            SeqPick::Abs(v) => Some(u64::from(v)),
        };
        let number = self.frames.len() as u64;
        self.frames.push(server_id.clone());
        let frame = Frame::text(number.to_string(), seq);
        let checksum = bad_checksum.then_some(ChecksumMismatch {
            expected: 1,
            computed: 2,
        });

        let route = self.registry.route(&server_id);
        // The core rule: only a server id that the latest ack on this
        // connection mapped routes, and only to that subscription.
        assert_eq!(route, self.model.route(&server_id), "route of {server_id}");
        match route {
            Route::To(id) => self.deliver(id, frame, checksum, patient),
            Route::Stash => {
                let evicted = self.registry.stash(Stashed {
                    server_id: server_id.clone(),
                    frame,
                    checksum,
                });
                let expected = self.model.stash(server_id, number);
                assert_eq!(evicted, usize::from(expected.is_some()), "stash eviction");
                self.unroutable += evicted as u64;
            }
            Route::Unroutable => self.unroutable += 1,
        }
    }

    /// session.rs `deliver`.
    fn deliver(
        &mut self,
        id: ClientId,
        frame: Frame,
        checksum: Option<ChecksumMismatch>,
        patient: bool,
    ) {
        let Some((queue, verdict)) = self.registry.target(id, frame.seq()) else {
            assert!(!self.model.subs.contains_key(&id));
            self.unroutable += 1;
            return;
        };
        let mut resync = false;
        if let Some(seq) = frame.seq() {
            assert_eq!(
                verdict,
                self.model.check_seq(id, seq),
                "sequence check of {seq}"
            );
            match verdict {
                SeqCheck::InOrder => {}
                SeqCheck::Duplicate => {
                    queue.count_discarded();
                    return;
                }
                SeqCheck::Gap { last_seq, next_seq } => {
                    queue.push_signal(Update::Gap { last_seq, next_seq });
                    resync = self.resync_on_gap;
                }
            }
        }
        if let Some(consumer) = self.consumers.get_mut(&id) {
            consumer
                .pushed
                .insert(frame_number(&frame), consumer.pushes);
            consumer.pushes += 1;
        }
        let alive = self.push(id, &queue, Update::Data(frame), patient);
        if !alive {
            self.end_subscription(id, None);
            return;
        }
        if let Some(ChecksumMismatch { expected, computed }) = checksum {
            queue.push_signal(Update::ChecksumMismatch { expected, computed });
            resync = true;
        }
        if resync {
            self.resync(id);
        }
    }

    /// session.rs `push`: `false` when the subscription is over.
    fn push(&mut self, id: ClientId, queue: &Arc<Queue>, update: Update, patient: bool) -> bool {
        match queue.push(update) {
            Pushed::Queued | Pushed::Dropped { .. } => true,
            Pushed::ConsumerGone => false,
            Pushed::Full(update) => {
                let Overflow::Block { .. } = queue.policy() else {
                    panic!("Full from a queue that does not block");
                };
                if patient && self.consumers.get(&id).is_some_and(|c| c.alive) {
                    // The consumer makes room before the timeout.
                    for _ in 0..=(queue.capacity() + 64) {
                        if queue.stats().queued < queue.capacity() as u64 {
                            break;
                        }
                        self.pop_one(id);
                    }
                    return self.push(id, queue, update, patient);
                }
                if patient {
                    // wait_space returns at once when the consumer is gone.
                    return self.push(id, queue, update, patient);
                }
                let error = Error::Backpressure {
                    channel: "fuzz".to_owned(),
                    server_id: "-".to_owned(),
                    client_id: id,
                    maxsize: queue.capacity(),
                };
                queue.finish(Some(error.clone()));
                let _ = queue.push(update);
                self.end_subscription(id, Some(error));
                false
            }
        }
    }

    /// session.rs `resync`.
    fn resync(&mut self, id: ClientId) {
        let old = self.registry.begin_resync(id);
        assert_eq!(old, self.model.begin_resync(id), "resync of {id}");
        if old.is_none() {
            return;
        }
        // The unsubscribe takes a request id.
        self.next_req_id += 1;
        self.flush_unsent();
    }

    fn drop_consumer(&mut self, id: ClientId, lost: bool) {
        let Some(consumer) = self.consumers.get_mut(&id) else {
            return;
        };
        consumer.alive = false;
        let queue = Arc::clone(&consumer.queue);
        queue.consumer_dropped();
        // `Subscription::drop` sends an unsubscribe unless the queue already ended.
        if !lost && !queue.is_finished() {
            self.unsubscribe(id);
        }
    }

    /// Pops one item of `id`'s queue as its consumer; `false` when nothing is ready.
    fn pop_one(&mut self, id: ClientId) -> bool {
        let Some(consumer) = self.consumers.get_mut(&id) else {
            return false;
        };
        let mut cx = Context::from_waker(noop_waker_ref());
        match consumer.queue.poll_pop(&mut cx) {
            Poll::Ready(Some(Ok(Update::Data(frame)))) => {
                let number = frame_number(&frame);
                let order = *consumer.pushed.get(&number).unwrap_or_else(|| {
                    panic!("subscription {id} received frame {number} that was never routed to it")
                });
                assert!(
                    consumer.last_popped.is_none_or(|last| order > last),
                    "subscription {id} received frame {number} out of order"
                );
                consumer.last_popped = Some(order);
                consumer.popped += 1;
                true
            }
            Poll::Ready(Some(Ok(_signal))) => true,
            Poll::Ready(Some(Err(Error::QueueFull { .. }))) => {
                assert_eq!(
                    consumer.queue.policy(),
                    Overflow::Error,
                    "QueueFull from another policy"
                );
                true
            }
            Poll::Ready(Some(Err(_terminal))) => {
                assert!(
                    consumer.queue.is_finished(),
                    "an error item from a live queue"
                );
                true
            }
            Poll::Ready(None) => {
                assert!(
                    consumer.queue.is_finished(),
                    "a stream ended before its queue"
                );
                false
            }
            Poll::Pending => {
                assert!(!consumer.queue.is_finished(), "a finished queue pends");
                false
            }
        }
    }

    fn read(&mut self, id: ClientId, max: usize) {
        for _ in 0..max {
            if !self.pop_one(id) {
                break;
            }
        }
    }

    // ---- invariants ----------------------------------------------------------

    fn check(&mut self) {
        if let Err(broken) = self.registry.check_invariants() {
            panic!("registry invariant: {broken}");
        }

        // The registry is the model.
        assert_eq!(
            self.registry.len(),
            self.model.subs.len(),
            "live subscriptions"
        );
        for (id, sub) in &self.model.subs {
            let entry = self
                .registry
                .get(*id)
                .unwrap_or_else(|| panic!("subscription {id} missing"));
            let phase = match entry.phase {
                Phase::Unsent => MPhase::Unsent,
                Phase::Pending { req_id } => MPhase::Pending(req_id),
                Phase::Active => MPhase::Active,
            };
            assert_eq!(phase, sub.phase, "phase of {id}");
            assert_eq!(entry.server_id, sub.server_id, "server id of {id}");
            assert_eq!(entry.acked_once, sub.acked_once, "acked_once of {id}");
            assert_eq!(entry.last_seq, sub.last_seq, "last_seq of {id}");
        }
        assert_eq!(self.registry.any_pending(), !self.model.requests.is_empty());
        for req_id in self.model.requests.keys() {
            assert!(
                self.registry.is_pending(*req_id),
                "request {req_id} should be pending"
            );
        }
        assert_eq!(
            self.registry.stashed(),
            self.model.stash.len(),
            "stash size"
        );

        // No stale server id routes: every id ever seen routes exactly as the
        // acks on this connection say.
        for server_id in &self.seen {
            assert_eq!(
                self.registry.route_of(server_id),
                self.model.valid.get(server_id).copied(),
                "route_of({server_id})"
            );
            assert_eq!(
                self.registry.route(server_id),
                self.model.route(server_id),
                "route({server_id})"
            );
        }
        // Each live subscription holds at most one server id, and valid ids are distinct per sub.
        let mut holders = BTreeSet::new();
        for id in self.model.valid.values() {
            assert!(
                holders.insert(*id),
                "subscription {id} mapped by two server ids"
            );
        }

        // Nothing hangs: a live subscription's queue is open, an ended one's is finished.
        let mut routed = 0;
        for (id, consumer) in &mut self.consumers {
            let live = self.model.subs.contains_key(id);
            assert_eq!(
                live, !consumer.ended,
                "subscription {id}: live {live}, ended {}",
                consumer.ended
            );
            assert_eq!(
                consumer.queue.is_finished(),
                consumer.ended,
                "queue of {id} finished?"
            );
            let stats = consumer.queue.stats();
            assert_eq!(
                stats.routed,
                stats.delivered + stats.dropped + stats.queued,
                "queue of {id}: {stats:?}"
            );
            assert_eq!(
                stats.delivered, consumer.popped,
                "queue of {id}: delivered vs popped"
            );
            assert!(
                stats.queued <= consumer.queue.capacity() as u64,
                "queue of {id} over capacity"
            );
            routed += stats.routed;
            if let Some(waiter) = &mut consumer.waiter {
                match waiter.try_recv() {
                    Ok(Ok(())) => {
                        assert!(consumer.ever_acked, "{id} resolved Ok without an ack");
                        consumer.waiter = None;
                    }
                    Ok(Err(_)) => {
                        assert!(
                            !consumer.ever_acked && consumer.ended,
                            "{id} failed after its ack"
                        );
                        consumer.waiter = None;
                    }
                    Err(oneshot::error::TryRecvError::Closed) => {
                        assert!(consumer.ended, "{id} waiter dropped while live");
                        consumer.waiter = None;
                    }
                    Err(oneshot::error::TryRecvError::Empty) => {
                        assert!(
                            !consumer.ever_acked,
                            "{id} acked but its caller still waits"
                        );
                    }
                }
            }
        }
        // Every data frame offered is routed, unroutable or stashed.
        assert_eq!(
            self.frames_in,
            routed + self.control + self.unroutable + self.registry.stashed() as u64,
            "frames_in = routed + control + unroutable + stashed"
        );
    }

    /// supervisor `finish`: every stream ends; consumers drain to the end.
    fn finish(mut self) {
        self.disconnect();
        let ids: Vec<ClientId> = self.registry.iter().map(|(id, _)| id).collect();
        for id in ids {
            if let Some(entry) = self.registry.remove(id) {
                assert!(self.model.remove(id));
                if let Some(waiter) = self.readies.remove(&id) {
                    let _ = waiter.send(Err(Error::ClientClosed));
                }
                entry.queue.finish(Some(Error::ClientClosed));
                self.ended(id);
            }
        }
        self.check();
        let ids: Vec<ClientId> = self
            .consumers
            .iter()
            .filter(|(_, c)| c.alive)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let mut steps = 0;
            while self.pop_one(id) {
                steps += 1;
                assert!(steps < 10_000, "stream {id} never ends");
            }
            let mut cx = Context::from_waker(noop_waker_ref());
            let end = self.consumers[&id].queue.poll_pop(&mut cx);
            assert!(
                matches!(end, Poll::Ready(None)),
                "stream {id} did not end: {end:?}"
            );
            assert_eq!(self.consumers[&id].queue.stats().queued, 0);
        }
        self.check();
    }
}

fn frame_number(frame: &Frame) -> u64 {
    frame
        .as_text()
        .and_then(|t| t.parse().ok())
        .expect("script frames are numbered")
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    type Harness = fn(&[u8]);

    const TARGETS: [(&str, Harness); 5] = [
        ("frame_read", frame_read),
        ("kalshi_classify", kalshi_classify),
        ("kraken_classify", kraken_classify),
        ("kraken_book", kraken_book),
        ("session_script", session_script),
    ];

    fn files(dir: &Path) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        files
    }

    fn replay(kind: &str) -> usize {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz")
            .join(kind);
        let mut replayed = 0;
        for (target, harness) in TARGETS {
            for file in files(&root.join(target)) {
                let data =
                    std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                let result = std::panic::catch_unwind(|| harness(&data));
                assert!(result.is_ok(), "{target} failed on {}", file.display());
                replayed += 1;
            }
        }
        replayed
    }

    #[test]
    fn the_seed_corpus_replays_cleanly() {
        let replayed = replay("corpus");
        assert!(
            replayed >= TARGETS.len(),
            "expected seeds for every target, found {replayed}"
        );
    }

    #[test]
    fn every_regression_replays_cleanly() {
        replay("regressions");
    }

    #[test]
    fn empty_and_tiny_inputs_are_fine() {
        for (_, harness) in TARGETS {
            harness(&[]);
            harness(&[0]);
            harness(&[0xff; 7]);
        }
    }
}
