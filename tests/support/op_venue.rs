//! A WebSocket server on 127.0.0.1 speaking OKX v5's `op`/`args` style or
//! WEEX's V3 `method`/`params` style, with fault knobs: swallowed subscribes
//! (drops), rejections with a venue code, book sequence gaps, bad checksums
//! (OKX), server heartbeats that must be answered (WEEX) and client pings
//! left unanswered (OKX).
//!
//! WEEX V3 here: requests `{"method":"SUBSCRIBE"|"UNSUBSCRIBE","params":
//! ["BTCUSDT@ticker",..],"id":N}` answered `{"result":true,"id":N}` (or
//! `{"result":false,"id":N,"msg":..}` when refused), pushes
//! `{"e":..,"E":..,"s":..,"d":..}`, heartbeats `{"event":"ping","time":T}`
//! (`{"type":"ping",..}` on a `/private` path) answered by
//! `{"method":"PONG","id":..}`, a `connected` greeting first, and a public
//! handshake without a `User-Agent` refused (see `weex.rs`). A subscription is recorded as
//! (conn, stream, symbol): `BTCUSDT@depth15` is ("depth15", "BTCUSDT"), a
//! bare private channel `orders` is ("orders", "").
//!
//! The dialect-specific frames (WEEX pushes and depth books, OKX books and
//! their checksum, computed here independently of the library) live in
//! `weex.rs` and `okx.rs`; this file is the connection plumbing they share, and the
//! client-side setup `tests/weex.rs` and `tests/okx.rs` share ([`fast`],
//! [`connect`], [`next_data`]).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use resilient_ws::{
    Backoff, Client, Config, ConfigBuilder, Messages, Protocol, Subscription, Update,
};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tungstenite::handshake::server::Request;
use tungstenite::Message;

/// How many server pings in a row may go unanswered before a strict server
/// drops the connection.
pub const UNANSWERED_LIMIT: u64 = 3;

/// Which venue the server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// WEEX V3: `method`/`params` requests answered by id; the server pings
    /// and drops clients that do not pong.
    Weex,
    /// OKX v5: request ids echoed; the client pings with the text `ping`.
    Okx,
}

/// A book kept by the server: price text -> size text, per side.
#[derive(Clone, Debug, Default)]
pub struct ServerBook {
    /// Bids by price (compared as numbers; best is the highest).
    pub bids: BTreeMap<Price, String>,
    /// Asks by price (best is the lowest).
    pub asks: BTreeMap<Price, String>,
    /// The last `seqId` sent.
    pub seq: i64,
}

impl ServerBook {
    /// Applies level changes as the venues define them: size "0" deletes the
    /// price, any other size sets it.
    pub fn apply(&mut self, bids: &[(&str, &str)], asks: &[(&str, &str)]) {
        for (side, changes) in [(&mut self.bids, bids), (&mut self.asks, asks)] {
            for (p, s) in changes {
                if s.parse::<f64>().unwrap_or(0.0) == 0.0 {
                    side.remove(&Price((*p).to_owned()));
                } else {
                    side.insert(Price((*p).to_owned()), (*s).to_owned());
                }
            }
        }
    }
}

/// A price text ordered by its value (test prices are plain decimals).
#[derive(Clone, Debug, PartialEq)]
pub struct Price(pub String);

impl Eq for Price {}
impl PartialOrd for Price {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Price {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let a: f64 = self.0.parse().unwrap_or(0.0);
        let b: f64 = other.0.parse().unwrap_or(0.0);
        a.total_cmp(&b)
    }
}

/// The knobs and the record, behind one lock.
#[derive(Default)]
pub struct State {
    /// Symbols whose subscribe is refused with (code, message).
    pub rejects: HashMap<String, (i64, String)>,
    /// A refusal is used once: the symbol leaves `rejects` when refused.
    pub reject_once: bool,
    /// OKX: within one request, every error is sent before the acks (OKX
    /// does not document the order of its replies to a batch).
    pub errors_first: bool,
    /// Send every reply and pushed frame as a raw-deflate binary frame (the
    /// compression OKX's v3 API and WEEX's V2 used).
    pub deflate: bool,
    /// Swallow subscribe requests (no ack, no error).
    pub drop_subscribes: bool,
    /// Answer the client's text `ping` (OKX); off = unanswered heartbeats.
    pub answer_pings: bool,
    /// WEEX: how often the server pings; `None` = never.
    pub ping_every: Option<Duration>,
    /// WEEX: close a connection whose previous ping is unanswered.
    pub require_pong: bool,
    /// The next book update for these symbols carries a wrong checksum (OKX).
    pub corrupt_checksum: HashSet<String>,
    /// The next book update for these symbols skips a sequence number.
    pub gap: HashSet<String>,
    /// OKX: subscribing `books` sends no snapshot (OKX's 2026 change).
    pub okx_no_snapshot: bool,
    /// OKX: every book push carries `checksum` 0 (retired since June 2026).
    pub okx_zero_checksum: bool,
    /// Books by symbol (OKX `books`, WEEX `depth<level>`).
    pub books: HashMap<String, ServerBook>,
    /// Live subscriptions: (conn, channel or WEEX stream, instId or symbol).
    pub subs: HashSet<(u64, String, String)>,
    /// Every text frame a client sent, with its connection.
    pub received: Vec<(u64, String)>,
    /// WEEX `{"method":"PONG"}` answers to server pings, as their `id` values.
    pub pongs: Vec<Value>,
    /// WEEX: connections made on a `/private` path (they get `type:ping`).
    pub private_conns: HashSet<u64>,
    /// WEEX: refused subscribes per connection.
    pub refusals: HashMap<u64, u32>,
    /// WEEX: close a connection with 1007 after six refused subscribes.
    pub close_after_refusals: bool,
    /// WEEX: symbols whose depth snapshot is empty with `U = u = 0`.
    pub delisted: HashSet<String>,
    /// WEEX: symbols whose depth subscribe is acked but whose snapshot is
    /// held back until `weex::release_snapshot`.
    pub hold_snapshots: HashSet<String>,
    /// WEEX: refuse (403) a public handshake without a `User-Agent`.
    pub require_user_agent: bool,
    /// The `User-Agent` of every handshake, in order (`None`: absent).
    pub user_agents: Vec<Option<String>>,
}

struct Shared {
    dialect: Dialect,
    addr: SocketAddr,
    state: Mutex<State>,
    conns: Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>,
    handshakes: AtomicU64,
    pings_sent: AtomicU64,
    /// The accept loop and every connection task, for `shutdown`.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

/// Handle to a running server (cheap to clone).
#[derive(Clone)]
pub struct OpVenue {
    shared: Arc<Shared>,
}

impl OpVenue {
    /// Starts a server on an ephemeral loopback port.
    pub async fn start(dialect: Dialect) -> std::io::Result<OpVenue> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let weex = dialect == Dialect::Weex;
        let state = State {
            answer_pings: true,
            close_after_refusals: weex,
            require_user_agent: weex,
            ..State::default()
        };
        let shared = Arc::new(Shared {
            dialect,
            addr: listener.local_addr()?,
            state: Mutex::new(state),
            conns: Mutex::new(HashMap::new()),
            handshakes: AtomicU64::new(0),
            pings_sent: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
        });
        let accept = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let shared = Arc::clone(&accept);
                let conn = tokio::spawn(async move {
                    let mut private = false;
                    let gate = Arc::clone(&shared);
                    // The refusal type is tungstenite's; its size is not ours to choose.
                    #[allow(clippy::result_large_err)]
                    let callback = |request: &Request, response| {
                        private = request.uri().path().ends_with("/private");
                        let agent = request
                            .headers()
                            .get("user-agent")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let mut state = gate.state.lock().unwrap();
                        let refuse = state.require_user_agent && !private && agent.is_none();
                        state.user_agents.push(agent);
                        if refuse {
                            let refusal = tungstenite::http::Response::builder()
                                .status(403)
                                .body(None)
                                .expect("a valid refusal");
                            return Err(refusal);
                        }
                        Ok(response)
                    };
                    if let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await {
                        serve(shared, ws, private).await;
                    }
                });
                let mut tasks = accept.tasks.lock().unwrap();
                tasks.retain(|t| !t.is_finished());
                tasks.push(conn.abort_handle());
            }
        });
        shared.tasks.lock().unwrap().push(task.abort_handle());
        Ok(OpVenue { shared })
    }

    /// `ws://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.shared.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The dialect spoken.
    pub fn dialect(&self) -> Dialect {
        self.shared.dialect
    }

    /// The knobs and the record.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    /// Completed handshakes so far.
    pub fn handshakes(&self) -> u64 {
        self.shared.handshakes.load(Ordering::SeqCst)
    }

    /// Server pings sent so far (WEEX).
    pub fn pings_sent(&self) -> u64 {
        self.shared.pings_sent.load(Ordering::SeqCst)
    }

    /// Client frames parsed as JSON whose `op` (OKX) or `method` (WEEX) is `op`.
    pub fn ops(&self, op: &str) -> Vec<Value> {
        self.state()
            .received
            .iter()
            .filter_map(|(_, t)| serde_json::from_str::<Value>(t).ok())
            .filter(|v| v["op"] == op || v["method"] == op)
            .collect()
    }

    /// Sends `frame` to every connection subscribed to `channel`/`inst`.
    pub fn push(&self, channel: &str, inst: &str, frame: &Value) {
        let conns: Vec<u64> = self
            .state()
            .subs
            .iter()
            .filter(|(_, c, i)| c == channel && i == inst)
            .map(|(conn, _, _)| *conn)
            .collect();
        for conn in conns {
            self.send(conn, frame.to_string());
        }
    }

    /// Sends a text frame on one connection (deflated when `deflate` is on).
    pub fn send(&self, conn: u64, text: String) {
        let message = outgoing(&self.state(), text);
        if let Some(tx) = self.shared.conns.lock().unwrap().get(&conn) {
            let _ = tx.send(message);
        }
    }

    /// Drops every connection without a close frame.
    pub fn drop_all(&self) {
        self.shared.conns.lock().unwrap().clear();
    }

    /// Sends a close frame with `code` on every connection, then ends them.
    pub fn close_all(&self, code: u16, reason: &str) {
        use tungstenite::protocol::CloseFrame;
        for tx in self.shared.conns.lock().unwrap().values() {
            let _ = tx.send(Message::Close(Some(CloseFrame {
                code: code.into(),
                reason: reason.to_owned().into(),
            })));
        }
    }

    /// Sends `text` on every connection.
    pub fn send_text_all(&self, text: &str) {
        for tx in self.shared.conns.lock().unwrap().values() {
            let _ = tx.send(Message::text(text.to_owned()));
        }
    }

    /// Pushes `{"arg":..,"data":[{"instId":..,"n":n}]}` (OKX) or
    /// `{"e":..,"E":..,"s":..,"d":[{"s":..,"n":n}]}` (WEEX) on `channel` for
    /// each symbol every `interval`, to whoever is subscribed.
    pub fn start_stream(
        &self,
        channel: &'static str,
        symbols: Vec<String>,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let venue = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            for n in 0u64.. {
                ticker.tick().await;
                for symbol in &symbols {
                    let frame = match venue.dialect() {
                        Dialect::Okx => with_arg(
                            channel,
                            symbol,
                            json!({"data": [{"instId": symbol, "n": n}]}),
                        ),
                        Dialect::Weex => super::weex::row_frame(channel, symbol, n),
                    };
                    venue.push(channel, symbol, &frame);
                }
            }
        })
    }

    /// Stops accepting, ends every connection and waits until their tasks are gone.
    pub async fn shutdown(&self) {
        let tasks: Vec<_> = self.shared.tasks.lock().unwrap().drain(..).collect();
        for task in &tasks {
            task.abort();
        }
        self.drop_all();
        while tasks.iter().any(|t| !t.is_finished()) {
            tokio::task::yield_now().await;
        }
    }

    /// How many connections are open.
    pub fn live(&self) -> usize {
        self.shared.conns.lock().unwrap().len()
    }
}

/// `text` as the server sends it: a text frame, or a raw-deflate binary
/// frame when `state.deflate` is on.
fn outgoing(state: &State, text: String) -> Message {
    if !state.deflate {
        return Message::text(text);
    }
    use std::io::Write;
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    Message::binary(encoder.finish().unwrap())
}

/// `{"arg":{"channel":..,"instId":..}}` plus `rest`.
pub fn with_arg(channel: &str, inst: &str, rest: Value) -> Value {
    let mut frame = json!({"arg": {"channel": channel, "instId": inst}});
    if let (Some(frame), Value::Object(rest)) = (frame.as_object_mut(), rest) {
        frame.extend(rest);
    }
    frame
}

async fn serve(
    shared: Arc<Shared>,
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    private: bool,
) {
    let conn = shared.handshakes.fetch_add(1, Ordering::SeqCst) + 1;
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    // Only the map holds the sender: `drop_all` ends this loop.
    shared.conns.lock().unwrap().insert(conn, tx);
    let (mut sink, mut stream) = ws.split();
    let weex = shared.dialect == Dialect::Weex;
    if weex {
        if private {
            shared.state.lock().unwrap().private_conns.insert(conn);
        }
        let greeting = super::weex::greeting(conn).to_string();
        if sink.send(Message::text(greeting)).await.is_err() {
            shared.conns.lock().unwrap().remove(&conn);
            return;
        }
    }
    let ping_every = shared.state.lock().unwrap().ping_every;
    let mut ticker = ping_every.map(|every| {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut ping_time: u64 = 0;
    // Pings sent since the last pong that answered one of them.
    let mut unanswered: u64 = 0;
    loop {
        let tick = async {
            match &mut ticker {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            out = rx.recv() => match out {
                Some(message) => {
                    let close = matches!(message, Message::Close(_));
                    if sink.send(message).await.is_err() || close {
                        break;
                    }
                }
                None => break,
            },
            _ = tick => {
                if unanswered >= UNANSWERED_LIMIT && shared.state.lock().unwrap().require_pong {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
                ping_time += 1;
                unanswered += 1;
                shared.pings_sent.fetch_add(1, Ordering::SeqCst);
                let ping = super::weex::ping(private, ping_time);
                if sink.send(Message::text(ping.to_string())).await.is_err() {
                    break;
                }
            }
            inbound = stream.next() => match inbound {
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str().to_owned();
                    if !weex && text.len() > super::okx::MAX_REQUEST_BYTES {
                        // OKX: "the total length of multiple channels cannot
                        // exceed 64 KB"; beyond it, close frame 1009.
                        use tungstenite::protocol::CloseFrame;
                        let close = CloseFrame {
                            code: 1009.into(),
                            reason: "Request message exceeds the maximum frame length".into(),
                        };
                        let _ = sink.send(Message::Close(Some(close))).await;
                        break;
                    }
                    if let Ok(v) = serde_json::from_str::<Value>(&text) {
                        // WEEX V3's answer carries no time: any PONG after a ping counts.
                        if v["method"] == "PONG" && v.get("id").is_some() && ping_time >= 1 {
                            unanswered = 0;
                        }
                    }
                    let replies: Vec<Message> = {
                        let replies = on_text(&shared, conn, &text);
                        let state = shared.state.lock().unwrap();
                        replies.into_iter().map(|r| outgoing(&state, r)).collect()
                    };
                    for reply in replies {
                        if sink.send(reply).await.is_err() {
                            break;
                        }
                    }
                    if weex && super::weex::close_after_refusals(&shared.state.lock().unwrap(), conn) {
                        use tungstenite::protocol::CloseFrame;
                        let close = CloseFrame {
                            code: 1007.into(),
                            reason: "too many refused subscriptions".into(),
                        };
                        let _ = sink.send(Message::Close(Some(close))).await;
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    shared.conns.lock().unwrap().remove(&conn);
    let mut state = shared.state.lock().unwrap();
    state.subs.retain(|(c, _, _)| *c != conn);
    state.private_conns.remove(&conn);
}

/// What the server answers to one client frame (the OKX dialect here; WEEX's
/// in `weex::on_request`).
fn on_text(shared: &Shared, conn: u64, text: &str) -> Vec<String> {
    let mut state = shared.state.lock().unwrap();
    state.received.push((conn, text.to_owned()));
    if text == "ping" {
        return if shared.dialect == Dialect::Okx && state.answer_pings {
            vec!["pong".to_owned()]
        } else {
            Vec::new()
        };
    }
    let Ok(request) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    if shared.dialect == Dialect::Weex {
        return super::weex::on_request(&mut state, conn, &request);
    }
    let op = request["op"].as_str().unwrap_or_default();
    let id = request.get("id").cloned();
    let mut replies = Vec::new();
    let mut errors = Vec::new();
    let echo = |mut frame: Value| {
        if let (Some(id), Some(obj)) = (&id, frame.as_object_mut()) {
            obj.insert("id".to_owned(), id.clone());
        }
        frame
    };
    for arg in request["args"].as_array().cloned().unwrap_or_default() {
        let channel = arg["channel"].as_str().unwrap_or_default().to_owned();
        let inst = arg["instId"].as_str().unwrap_or_default().to_owned();
        match op {
            "subscribe" if state.drop_subscribes => {}
            "subscribe" => {
                if let Some((code, msg)) = state.rejects.get(&inst).cloned() {
                    if state.reject_once {
                        state.rejects.remove(&inst);
                    }
                    // OKX sends its codes as strings, and its error names
                    // no `arg` (the documented failure example).
                    let error = json!({"event": "error", "code": code.to_string(), "msg": msg, "connId": conn_id(conn)});
                    errors.push(echo(error).to_string());
                    continue;
                }
                state.subs.insert((conn, channel.clone(), inst.clone()));
                // OKX echoes the request's `arg` as sent (`instId`, or the
                // `instType` / `instFamily` a channel is subscribed by).
                let ack = json!({"event": "subscribe", "arg": arg, "connId": conn_id(conn)});
                replies.push(echo(ack).to_string());
                if channel == "books" && !state.okx_no_snapshot {
                    let zero = state.okx_zero_checksum;
                    let book = state.books.entry(inst.clone()).or_insert_with(default_book);
                    book.seq += 1;
                    let mut frame = super::okx::book_frame(&inst, "snapshot", book, -1, None);
                    if zero {
                        frame["data"][0]["checksum"] = serde_json::json!(0);
                    }
                    replies.push(frame.to_string());
                } else if channel == "books" {
                    state.books.entry(inst.clone()).or_insert_with(default_book);
                }
            }
            "unsubscribe" => {
                state.subs.remove(&(conn, channel.clone(), inst.clone()));
                let ack = json!({"event": "unsubscribe", "arg": arg, "connId": conn_id(conn)});
                replies.push(echo(ack).to_string());
            }
            _ => {}
        }
    }
    if state.errors_first {
        errors.append(&mut replies);
        return errors;
    }
    // In argument order would interleave them; acks first, then errors,
    // is the order the tests that do not care about it have always seen.
    replies.append(&mut errors);
    replies
}

/// OKX's `connId` for connection `conn` (8 hex digits, as documented).
pub fn conn_id(conn: u64) -> String {
    format!("{conn:08x}")
}

/// A small two-sided book.
pub fn default_book() -> ServerBook {
    let mut book = ServerBook::default();
    for (p, s) in [("100.5", "3"), ("100.4", "1.50"), ("100", "7")] {
        book.bids.insert(Price(p.to_owned()), s.to_owned());
    }
    for (p, s) in [("100.6", "2"), ("100.75", "0.5000"), ("101", "9")] {
        book.asks.insert(Price(p.to_owned()), s.to_owned());
    }
    book
}

/// The client config the op/args tests start from: fast seeded backoff, no
/// idle timeout, an outbound rate limit no test reaches.
pub fn fast(url: &str, seed: u64) -> ConfigBuilder {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).seed(seed))
        .idle_timeout(None)
        .rate_limit(1000, Duration::from_secs(1))
}

/// Connects `protocol` to `venue` with [`fast`] adjusted by `b`.
pub async fn connect<P: Protocol>(
    venue: &OpVenue,
    seed: u64,
    protocol: P,
    b: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> (Client, Messages) {
    Client::connect(b(fast(&venue.url(), seed)).build().unwrap(), protocol)
        .await
        .unwrap()
}

/// The next data frame of `sub` as JSON (a `Resubscribed` marker is skipped).
pub async fn next_data(sub: &mut Subscription) -> Value {
    loop {
        match super::next(sub).await {
            Some(Ok(Update::Data(frame))) => {
                return serde_json::from_str(frame.as_text().unwrap()).unwrap()
            }
            Some(Ok(Update::Resubscribed { .. })) => continue,
            other => panic!("expected data, got {other:?}"),
        }
    }
}
