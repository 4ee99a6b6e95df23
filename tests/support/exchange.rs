//! In-process WebSocket exchange emulator on 127.0.0.1 for the integration tests and the
//! main example: a Raw echo-less server, a Kalshi-style venue and a Kraken v2 venue, with
//! fault injection (resets, close codes, silence, refusal, slow handshakes, seq gaps,
//! bad checksums). Self-contained: include it with `#[path = ...] mod exchange;`.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use resilient_ws::protocol::kraken::checksum_levels;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Capacity of each connection's command queue; commands beyond it are dropped.
const CMD_CAPACITY: usize = 65_536;
/// Server-side message and frame size limit (large, so oversize frames can be sent).
const MAX_SIZE: usize = 64 << 20;
/// How long a server-initiated close waits for the client's close reply.
const CLOSE_DRAIN: Duration = Duration::from_secs(2);
/// Kraken heartbeat period.
const HEARTBEAT_PERIOD: Duration = Duration::from_secs(1);
/// Kraken channels that need `params.token` when a token is required.
pub const KRAKEN_PRIVATE_CHANNELS: [&str; 3] = ["executions", "balances", "level3"];

/// Kraken `connection_id` of connection `n` is this plus `n` (always above `i64::MAX`).
pub const KRAKEN_CONNECTION_ID_BASE: u64 = 13_834_774_380_200_032_777;
const TIME_IN: &str = "2023-09-25T09:04:31.742599Z";
const TIME_OUT: &str = "2023-09-25T09:04:31.742648Z";
const BOOK_SNAPSHOT_TS: &str = "2023-10-06T17:35:55.440295Z";
const BOOK_UPDATE_TS: &str = "2023-10-06T17:35:56.101010Z";
const KRAKEN_DEPTHS: [u64; 5] = [10, 25, 100, 500, 1000];

/// Kraken's published example book: prices in tenths, quantities in 1e-8 units.
const DEFAULT_ASKS: [(u64, u64); 10] = [
    (452_852, 100_000),
    (452_864, 154_571_953),
    (452_866, 154_571_109),
    (452_896, 154_560_911),
    (452_902, 15_890_660),
    (452_918, 154_553_491),
    (452_947, 4_454_749),
    (452_961, 35_380_000),
    (452_975, 9_945_542),
    (452_995, 18_772_827),
];
const DEFAULT_BIDS: [(u64, u64); 10] = [
    (452_835, 10_000_000),
    (452_834, 154_582_015),
    (452_821, 10_000_000),
    (452_810, 10_000_000),
    (452_803, 154_592_586),
    (452_790, 7_990_000),
    (452_776, 3_310_103),
    (452_775, 30_000_000),
    (452_773, 154_602_737),
    (452_766, 15_445_238),
];

/// Which protocol the emulated exchange speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Venue {
    /// Records client frames only; `publish` broadcasts the payload to every connection.
    Raw,
    /// Kalshi-style: server-assigned `sid`s, per-sid `seq`.
    Kalshi,
    /// Kraken WebSocket v2: identity is channel + symbol, per-symbol acks.
    Kraken,
}

/// How subscribe requests are acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckMode {
    /// Ack (or reject) as the venue does.
    Normal,
    /// Swallow subscribe requests: no ack, no error, no subscription.
    Never,
    /// Send one data frame for the new subscription before its ack.
    DataFirst,
}

/// One text frame received from a client.
#[derive(Clone, Debug)]
pub struct Received {
    /// Connection id (1 for the first completed handshake, then 2, ...).
    pub conn: u64,
    /// When the server read it.
    pub at: Instant,
    /// The frame's text.
    pub text: String,
}

/// Handle to a running test exchange (cheap to clone).
#[derive(Clone)]
pub struct Exchange {
    inner: Arc<Shared>,
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("venue", &self.inner.venue)
            .field("addr", &self.inner.addr)
            .finish()
    }
}

enum Cmd {
    /// Venue data; dropped while the connection is silent.
    Data(String),
    /// Explicit text (fault injection); sent even while silent.
    Text(String),
    Raw(Vec<u8>),
    Close(u16, String),
    Abort,
    Silent(bool),
}

struct Sub {
    /// Kalshi sid (0 for Kraken).
    sid: u64,
    channel: String,
    /// `None` = every symbol (Kalshi subscribe without tickers).
    symbols: Option<Vec<String>>,
    /// Last seq sent on this sid (Kalshi).
    seq: u64,
    /// Kraken book depth (0 for other channels).
    depth: u64,
}

impl Sub {
    fn matches(&self, symbol: &str) -> bool {
        match &self.symbols {
            None => true,
            Some(list) => list.iter().any(|s| s == symbol),
        }
    }
}

struct Conn {
    tx: mpsc::Sender<Cmd>,
    subs: Vec<Sub>,
    /// Whether the handshake check (if any) accepted this connection's credentials.
    authenticated: bool,
}

/// What a handshake check decides (checks live in e.g. tests/support/kalshi_auth.rs).
pub enum Gate {
    /// Upgrade; `authenticated: false` refuses Kalshi private channels (code 9).
    Accept { authenticated: bool },
    /// Answer the upgrade with this HTTP status (and `Retry-After` value).
    Refuse {
        status: u16,
        retry_after: Option<String>,
    },
}

/// Inspects each upgrade request before the handshake completes.
pub type HandshakeCheck =
    Arc<dyn Fn(&tokio_tungstenite::tungstenite::handshake::server::Request) -> Gate + Send + Sync>;

/// Kalshi's private channels (Quick Start: WebSockets, *Authentication*).
pub const KALSHI_PRIVATE_CHANNELS: [&str; 5] = [
    "orderbook_delta",
    "fill",
    "market_positions",
    "communications",
    "order_group_updates",
];

struct Book {
    /// Ascending by price.
    asks: Vec<(u64, u64)>,
    /// Descending by price.
    bids: Vec<(u64, u64)>,
    step: u64,
}

fn price_text(p: u64) -> String {
    format!("{}.{}", p / 10, p % 10)
}

fn qty_text(q: u64) -> String {
    format!("{}.{:08}", q / 100_000_000, q % 100_000_000)
}

fn levels_json(levels: &[(u64, u64)]) -> String {
    let items: Vec<String> = levels
        .iter()
        .map(|&(p, q)| format!(r#"{{"price":{},"qty":{}}}"#, price_text(p), qty_text(q)))
        .collect();
    format!("[{}]", items.join(","))
}

impl Book {
    fn new() -> Book {
        Book {
            asks: DEFAULT_ASKS.to_vec(),
            bids: DEFAULT_BIDS.to_vec(),
            step: 0,
        }
    }

    fn checksum(&self) -> u32 {
        let text = |l: &[(u64, u64)]| -> Vec<(String, String)> {
            l.iter()
                .take(10)
                .map(|&(p, q)| (price_text(p), qty_text(q)))
                .collect()
        };
        let asks = text(&self.asks);
        let bids = text(&self.bids);
        let a: Vec<(&str, &str)> = asks.iter().map(|(p, q)| (p.as_str(), q.as_str())).collect();
        let b: Vec<(&str, &str)> = bids.iter().map(|(p, q)| (p.as_str(), q.as_str())).collect();
        checksum_levels(&a, &b)
    }

    /// Changes one level's qty (alternating sides); returns (is_ask, level).
    fn mutate(&mut self) -> (bool, (u64, u64)) {
        let k = self.step;
        self.step += 1;
        let is_ask = k % 2 == 0;
        let side = if is_ask {
            &mut self.asks
        } else {
            &mut self.bids
        };
        let idx = ((k / 2) as usize) % side.len();
        side[idx].1 += 1_000_000;
        (is_ask, side[idx])
    }
}

struct State {
    next_conn: u64,
    next_sid: u64,
    handshakes: u64,
    conns: BTreeMap<u64, Conn>,
    received: Vec<Received>,
    handshake_delay: Option<Duration>,
    ack_mode: AckMode,
    rejects: HashMap<String, (String, u32)>,
    skip: HashMap<String, u64>,
    repeat: HashSet<String>,
    corrupt: HashSet<String>,
    books: HashMap<String, Book>,
    /// Kraken: the token private channels must carry (`None`: not checked).
    required_token: Option<String>,
    /// Runs on every upgrade request (`None`: accept, authenticated).
    handshake_check: Option<HandshakeCheck>,
}

impl State {
    fn take_checksum(&mut self, symbol: &str, checksum: u32) -> u32 {
        if self.corrupt.remove(symbol) {
            checksum.wrapping_add(1)
        } else {
            checksum
        }
    }

    fn book_snapshot(&mut self, symbol: &str) -> String {
        let book = self
            .books
            .entry(symbol.to_owned())
            .or_insert_with(Book::new);
        let (bids, asks, cs) = (
            levels_json(&book.bids),
            levels_json(&book.asks),
            book.checksum(),
        );
        let cs = self.take_checksum(symbol, cs);
        format!(
            r#"{{"channel":"book","type":"snapshot","data":[{{"symbol":{},"bids":{},"asks":{},"checksum":{},"timestamp":"{}"}}]}}"#,
            Value::from(symbol),
            bids,
            asks,
            cs,
            BOOK_SNAPSHOT_TS
        )
    }

    fn book_update(&mut self, symbol: &str) -> String {
        let book = self
            .books
            .entry(symbol.to_owned())
            .or_insert_with(Book::new);
        let (is_ask, level) = book.mutate();
        let cs = book.checksum();
        let cs = self.take_checksum(symbol, cs);
        let changed = levels_json(&[level]);
        let (bids, asks) = if is_ask {
            ("[]".to_owned(), changed)
        } else {
            (changed, "[]".to_owned())
        };
        format!(
            r#"{{"channel":"book","type":"update","data":[{{"symbol":{},"bids":{},"asks":{},"checksum":{},"timestamp":"{}"}}]}}"#,
            Value::from(symbol),
            bids,
            asks,
            cs,
            BOOK_UPDATE_TS
        )
    }
}

struct ListenerSlot {
    listener: Option<TcpListener>,
    waker: Option<Waker>,
    shut: bool,
}

struct Tasks {
    closed: bool,
    handles: Vec<AbortHandle>,
}

struct Shared {
    venue: Venue,
    addr: SocketAddr,
    listener: Mutex<ListenerSlot>,
    state: Mutex<State>,
    /// Bumped on every observable change (handshake, connection end, frame received).
    changed: watch::Sender<u64>,
    tasks: Mutex<Tasks>,
    /// Number of spawned tasks not yet finished or dropped.
    alive: watch::Sender<usize>,
    heartbeat: watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Decrements the live-task count when a spawned task ends or is aborted.
struct TaskGuard(Arc<Shared>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.alive.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Unregisters a connection when its task ends or is aborted.
struct ConnGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        lock(&self.shared.state).conns.remove(&self.id);
        self.shared.bump();
    }
}

fn spawn_tracked<F>(shared: &Arc<Shared>, fut: F) -> Option<JoinHandle<()>>
where
    F: Future<Output = ()> + Send + 'static,
{
    let mut tasks = lock(&shared.tasks);
    if tasks.closed {
        return None;
    }
    tasks.handles.retain(|h| !h.is_finished());
    shared.alive.send_modify(|n| *n += 1);
    let guard = TaskGuard(shared.clone());
    let handle = tokio::spawn(async move {
        let _guard = guard;
        fut.await
    });
    tasks.handles.push(handle.abort_handle());
    Some(handle)
}

/// Adds `key: value` to `v` when it is an object.
fn with_field(mut v: Value, key: &str, value: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.insert(key.to_owned(), value);
    }
    v
}

fn with_id(v: Value, key: &str, id: Option<&Value>) -> String {
    match id {
        Some(id) => with_field(v, key, id.clone()).to_string(),
        None => v.to_string(),
    }
}

fn kalshi_error(id: Option<&Value>, code: u32, msg: &str) -> String {
    with_id(
        json!({"type": "error", "msg": {"code": code, "msg": msg}}),
        "id",
        id,
    )
}

fn kalshi_data(channel: &str, sid: u64, seq: u64, msg: &Value) -> String {
    json!({"type": channel, "sid": sid, "seq": seq, "msg": msg}).to_string()
}

fn kraken_stamped(v: Value, req_id: Option<&Value>) -> String {
    let v = with_field(v, "time_in", Value::from(TIME_IN));
    let v = with_field(v, "time_out", Value::from(TIME_OUT));
    with_id(v, "req_id", req_id)
}

fn kraken_failure(
    method: &str,
    symbol: Option<&str>,
    error: &str,
    req_id: Option<&Value>,
) -> String {
    let mut v = json!({"error": error, "method": method, "success": false});
    if let Some(s) = symbol {
        v = with_field(v, "symbol", Value::from(s));
    }
    kraken_stamped(v, req_id)
}

fn kraken_data(channel: &str, payload: &Value) -> String {
    json!({"channel": channel, "type": "update", "data": [payload]}).to_string()
}

fn string_list(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_owned)).collect(),
        Value::String(s) => Some(vec![s.clone()]),
        _ => None,
    }
}

fn u64_list(v: Option<&Value>) -> Option<Vec<u64>> {
    match v? {
        Value::Array(a) => a.iter().map(Value::as_u64).collect(),
        other => other.as_u64().map(|x| vec![x]),
    }
}

/// A ticker payload for `symbol` in the venue's style; `n` varies the numbers.
pub fn ticker_payload(venue: Venue, symbol: &str, n: u64) -> Value {
    match venue {
        Venue::Kraken => json!({
            "symbol": symbol,
            "bid": 45283.5,
            "bid_qty": 0.1,
            "ask": 45285.2,
            "ask_qty": 0.001,
            "last": 45284.0,
            "volume": n,
            "vwap": 45000.0,
            "low": 44000.0,
            "high": 46000.0,
            "change": 100.0,
            "change_pct": 0.22
        }),
        Venue::Kalshi | Venue::Raw => json!({
            "market_ticker": symbol,
            "price": 50 + n % 40,
            "yes_bid": 49 + n % 40,
            "yes_ask": 51 + n % 40,
            "volume": n,
            "open_interest": 1000 + n,
            "ts": 1_700_000_000 + n
        }),
    }
}

/// A hand-built WebSocket frame. `rsv` is the 3-bit RSV1..RSV3 field (0b100 = RSV1);
/// the length uses the 7-bit, 16-bit or 64-bit form as needed; `masked` applies a fixed key.
pub fn raw_frame(opcode: u8, fin: bool, rsv: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(if fin { 0x80 } else { 0 } | ((rsv & 0x07) << 4) | (opcode & 0x0f));
    let mask_bit = if masked { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= 0xffff {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if masked {
        let key = [0x37u8, 0xfa, 0x21, 0x3d];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

impl Shared {
    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn record(&self, conn: u64, text: &str) {
        lock(&self.state).received.push(Received {
            conn,
            at: Instant::now(),
            text: text.to_owned(),
        });
        self.bump();
    }

    fn broadcast(&self, make: impl Fn() -> Cmd) {
        let st = lock(&self.state);
        for c in st.conns.values() {
            let _ = c.tx.try_send(make());
        }
    }

    /// Venue handling of one client text frame; returns the frames to send back, in order.
    fn handle_text(&self, conn: u64, text: &str) -> Vec<String> {
        match self.venue {
            Venue::Raw => Vec::new(),
            Venue::Kalshi => self.kalshi(conn, text),
            Venue::Kraken => self.kraken(conn, text),
        }
    }

    fn kalshi(&self, conn: u64, text: &str) -> Vec<String> {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return vec![kalshi_error(None, 1, "Unable to process message")];
        };
        let id = v.get("id");
        let Some(cmd) = v.get("cmd").and_then(Value::as_str) else {
            return vec![kalshi_error(id, 1, "Unable to process message")];
        };
        let params = v.get("params").and_then(Value::as_object);
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        match cmd {
            "subscribe" => {
                if st.ack_mode == AckMode::Never {
                    return Vec::new();
                }
                let Some(params) = params else {
                    return vec![kalshi_error(id, 2, "Params required")];
                };
                let channels = string_list(params.get("channels")).unwrap_or_default();
                let Some(channel) = channels.first().cloned() else {
                    return vec![kalshi_error(id, 3, "Channels required")];
                };
                let tickers = string_list(params.get("market_tickers"))
                    .or_else(|| string_list(params.get("market_ticker")));
                for t in tickers.iter().flatten() {
                    if let Some((msg, code)) = st.rejects.get(t) {
                        return vec![kalshi_error(id, *code, msg)];
                    }
                }
                let Some(c) = st.conns.get_mut(&conn) else {
                    return Vec::new();
                };
                if !c.authenticated && KALSHI_PRIVATE_CHANNELS.contains(&channel.as_str()) {
                    return vec![kalshi_error(id, 9, "Authentication required")];
                }
                let sid = st.next_sid;
                st.next_sid += 1;
                let mut out = Vec::new();
                let mut sub = Sub {
                    sid,
                    channel: channel.clone(),
                    symbols: tickers,
                    seq: 0,
                    depth: 0,
                };
                if st.ack_mode == AckMode::DataFirst {
                    let symbol = sub
                        .symbols
                        .as_ref()
                        .and_then(|s| s.first().cloned())
                        .unwrap_or_default();
                    let msg = with_field(
                        ticker_payload(Venue::Kalshi, &symbol, 0),
                        "market_ticker",
                        Value::from(symbol.as_str()),
                    );
                    sub.seq = 1;
                    out.push(kalshi_data(&channel, sid, 1, &msg));
                }
                c.subs.push(sub);
                out.push(with_id(
                    json!({"type": "subscribed", "msg": {"channel": channel, "sid": sid}}),
                    "id",
                    id,
                ));
                out
            }
            "unsubscribe" => {
                let Some(sids) =
                    params.and_then(|p| u64_list(p.get("sids")).or_else(|| u64_list(p.get("sid"))))
                else {
                    return vec![kalshi_error(id, 4, "Subscription IDs required")];
                };
                let Some(c) = st.conns.get_mut(&conn) else {
                    return Vec::new();
                };
                let mut out = Vec::new();
                for sid in sids {
                    match c.subs.iter().position(|s| s.sid == sid) {
                        Some(i) => {
                            let sub = c.subs.remove(i);
                            out.push(with_id(
                                json!({"sid": sid, "seq": sub.seq, "type": "unsubscribed"}),
                                "id",
                                id,
                            ));
                        }
                        None => out.push(kalshi_error(id, 7, "Unknown subscription ID")),
                    }
                }
                out
            }
            other => {
                if other == "update_subscription" {
                    if let (Some(p), Some(c)) = (params, st.conns.get_mut(&conn)) {
                        let sids = u64_list(p.get("sids"))
                            .or_else(|| u64_list(p.get("sid")))
                            .unwrap_or_default();
                        let tickers = string_list(p.get("market_tickers")).unwrap_or_default();
                        let action = p.get("action").and_then(Value::as_str).unwrap_or("");
                        for sub in c.subs.iter_mut().filter(|s| sids.contains(&s.sid)) {
                            if let Some(list) = sub.symbols.as_mut() {
                                match action {
                                    "add_markets" => {
                                        for t in &tickers {
                                            if !list.contains(t) {
                                                list.push(t.clone());
                                            }
                                        }
                                    }
                                    "delete_markets" => list.retain(|s| !tickers.contains(s)),
                                    _ => {}
                                }
                            }
                        }
                    }
                }
                match id {
                    Some(_) => vec![with_id(json!({"type": "ok"}), "id", id)],
                    None => Vec::new(),
                }
            }
        }
    }

    fn kraken(&self, conn: u64, text: &str) -> Vec<String> {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return vec![kraken_stamped(
                json!({"error": "EGeneral:Invalid arguments", "success": false}),
                None,
            )];
        };
        let req_id = v.get("req_id");
        let Some(method) = v.get("method").and_then(Value::as_str) else {
            return vec![kraken_stamped(
                json!({"error": "EGeneral:Invalid arguments", "success": false}),
                req_id,
            )];
        };
        match method {
            "ping" => vec![kraken_stamped(json!({"method": "pong"}), req_id)],
            "subscribe" | "unsubscribe" => self.kraken_sub(conn, method, &v, req_id),
            other => vec![kraken_failure(
                other,
                None,
                "EGeneral:Invalid arguments",
                req_id,
            )],
        }
    }

    fn kraken_sub(
        &self,
        conn: u64,
        method: &str,
        v: &Value,
        req_id: Option<&Value>,
    ) -> Vec<String> {
        let subscribe = method == "subscribe";
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        if subscribe && st.ack_mode == AckMode::Never {
            return Vec::new();
        }
        let params = v.get("params").and_then(Value::as_object);
        let channel = params
            .and_then(|p| p.get("channel"))
            .and_then(Value::as_str);
        let (Some(params), Some(channel)) = (params, channel) else {
            return vec![kraken_failure(
                method,
                None,
                "EGeneral:Invalid arguments",
                req_id,
            )];
        };
        let symbols = match params.get("symbol") {
            None => Vec::new(),
            Some(Value::Array(a)) => {
                match a
                    .iter()
                    .map(|x| x.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                {
                    Some(list) => list,
                    None => {
                        return vec![kraken_failure(
                            method,
                            None,
                            "EGeneral:Invalid arguments",
                            req_id,
                        )]
                    }
                }
            }
            Some(_) => {
                return vec![kraken_failure(
                    method,
                    None,
                    "EGeneral:Invalid arguments",
                    req_id,
                )]
            }
        };
        let private = KRAKEN_PRIVATE_CHANNELS.contains(&channel);
        if let (true, Some(required)) = (private, &st.required_token) {
            let token = params.get("token").and_then(Value::as_str);
            if token != Some(required.as_str()) {
                return vec![kraken_failure(
                    method,
                    None,
                    "ESession:Invalid session",
                    req_id,
                )];
            }
        }
        let is_book = channel == "book";
        let depth = if is_book {
            match params.get("depth") {
                None => Some(10),
                Some(d) => d.as_u64().filter(|d| KRAKEN_DEPTHS.contains(d)),
            }
        } else {
            Some(0)
        };
        let snapshot = params
            .get("snapshot")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let data_first = st.ack_mode == AckMode::DataFirst;
        let mut out = Vec::new();

        let ack = |symbol: Option<&str>, depth: u64| -> String {
            let mut result = json!({"channel": channel});
            if subscribe {
                result = with_field(result, "snapshot", Value::from(snapshot));
            }
            if is_book {
                result = with_field(result, "depth", Value::from(depth));
            }
            if let Some(s) = symbol {
                result = with_field(result, "symbol", Value::from(s));
            }
            kraken_stamped(
                json!({"method": method, "result": result, "success": true}),
                req_id,
            )
        };

        if symbols.is_empty() {
            let Some(c) = st.conns.get_mut(&conn) else {
                return Vec::new();
            };
            let pos = c.subs.iter().position(|s| {
                s.channel == channel && s.symbols.as_ref().is_some_and(|l| l.is_empty())
            });
            if subscribe {
                if pos.is_some() {
                    return vec![kraken_failure(method, None, "Already subscribed", req_id)];
                }
                c.subs.push(Sub {
                    sid: 0,
                    channel: channel.to_owned(),
                    symbols: Some(Vec::new()),
                    seq: 0,
                    depth: depth.unwrap_or(10),
                });
            } else {
                match pos {
                    Some(i) => {
                        c.subs.remove(i);
                    }
                    None => {
                        return vec![kraken_failure(
                            method,
                            None,
                            "Subscription Not Found",
                            req_id,
                        )]
                    }
                }
            }
            return vec![ack(None, depth.unwrap_or(10))];
        }

        for symbol in &symbols {
            let existing = st.conns.get(&conn).and_then(|c| {
                c.subs.iter().position(|s| {
                    s.channel == channel
                        && s.symbols
                            .as_ref()
                            .is_some_and(|l| l.len() == 1 && l[0] == *symbol)
                })
            });
            if !subscribe {
                match (existing, st.conns.get_mut(&conn)) {
                    (Some(i), Some(c)) => {
                        let sub = c.subs.remove(i);
                        out.push(ack(Some(symbol), sub.depth));
                    }
                    _ => out.push(kraken_failure(
                        method,
                        Some(symbol),
                        "Subscription Not Found",
                        req_id,
                    )),
                }
                continue;
            }
            if let Some((error, _)) = st.rejects.get(symbol) {
                out.push(kraken_failure(method, Some(symbol), error, req_id));
                continue;
            }
            let Some(depth) = depth else {
                out.push(kraken_failure(
                    method,
                    Some(symbol),
                    "EGeneral:Invalid arguments:depth",
                    req_id,
                ));
                continue;
            };
            if existing.is_some() {
                out.push(kraken_failure(
                    method,
                    Some(symbol),
                    "Already subscribed",
                    req_id,
                ));
                continue;
            }
            let Some(c) = st.conns.get_mut(&conn) else {
                return Vec::new();
            };
            c.subs.push(Sub {
                sid: 0,
                channel: channel.to_owned(),
                symbols: Some(vec![symbol.clone()]),
                seq: 0,
                depth,
            });
            if data_first {
                if is_book {
                    out.push(st.book_snapshot(symbol));
                } else {
                    let payload = with_field(
                        ticker_payload(Venue::Kraken, symbol, 0),
                        "symbol",
                        Value::from(symbol.as_str()),
                    );
                    out.push(kraken_data(channel, &payload));
                }
                out.push(ack(Some(symbol), depth));
            } else {
                out.push(ack(Some(symbol), depth));
                if is_book && snapshot {
                    out.push(st.book_snapshot(symbol));
                }
            }
        }
        out
    }
}

type ServerWs = WebSocketStream<TcpStream>;

async fn send_frames(ws: &mut ServerWs, frames: Vec<String>) -> bool {
    for f in frames {
        if ws.feed(Message::text(f)).await.is_err() {
            return false;
        }
    }
    ws.flush().await.is_ok()
}

async fn wait_delay(d: Duration) {
    match Instant::now().checked_add(d) {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending::<()>().await,
    }
}

async fn accept_loop(shared: Arc<Shared>) {
    loop {
        let accepted = poll_fn(|cx| {
            let mut slot = lock(&shared.listener);
            let stale = slot.waker.as_ref().is_none_or(|w| !w.will_wake(cx.waker()));
            if stale {
                slot.waker = Some(cx.waker().clone());
            }
            match slot.listener.as_ref() {
                Some(l) => l.poll_accept(cx),
                None => Poll::Pending,
            }
        })
        .await;
        match accepted {
            Ok((tcp, _)) => {
                let _ = tcp.set_nodelay(true);
                let sh = shared.clone();
                spawn_tracked(&shared, connection(sh, tcp));
            }
            // Transient accept errors (e.g. fd exhaustion): back off a little.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

// The refusal type is tungstenite's; its size is not ours to choose.
#[allow(clippy::result_large_err)]
async fn connection(shared: Arc<Shared>, tcp: TcpStream) {
    let delay = lock(&shared.state).handshake_delay;
    if let Some(d) = delay {
        wait_delay(d).await;
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_SIZE))
        .max_frame_size(Some(MAX_SIZE));
    let check = lock(&shared.state).handshake_check.clone();
    let mut authenticated = true;
    let callback = |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                    response| {
        match check.as_ref().map(|check| check(request)) {
            None => Ok(response),
            Some(Gate::Accept { authenticated: ok }) => {
                authenticated = ok;
                Ok(response)
            }
            Some(Gate::Refuse {
                status,
                retry_after,
            }) => {
                let mut refusal =
                    tokio_tungstenite::tungstenite::http::Response::builder().status(status);
                if let Some(value) = retry_after {
                    refusal = refusal.header("Retry-After", value);
                }
                Err(refusal.body(None).expect("a valid refusal"))
            }
        }
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(tcp, callback, Some(config)).await
    else {
        return;
    };
    let (tx, rx) = mpsc::channel(CMD_CAPACITY);
    let id = {
        let mut st = lock(&shared.state);
        st.next_conn += 1;
        st.handshakes += 1;
        let id = st.next_conn;
        st.conns.insert(
            id,
            Conn {
                tx,
                subs: Vec::new(),
                authenticated,
            },
        );
        id
    };
    let _guard = ConnGuard {
        shared: shared.clone(),
        id,
    };
    shared.bump();
    serve(&shared, id, ws, rx).await;
}

async fn close_and_drain(shared: &Shared, id: u64, ws: &mut ServerWs, code: u16, reason: String) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    if ws.close(Some(frame)).await.is_err() {
        return;
    }
    let drain = async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg {
                shared.record(id, t.as_str());
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_DRAIN, drain).await;
}

/// Serves one connection until it ends; `ws` is dropped (socket closed) on return.
async fn serve(shared: &Shared, id: u64, mut ws: ServerWs, mut rx: mpsc::Receiver<Cmd>) {
    let kraken = shared.venue == Venue::Kraken;
    if kraken {
        let status = json!({
            "channel": "status",
            "type": "update",
            "data": [{
                "api_version": "v2",
                "connection_id": KRAKEN_CONNECTION_ID_BASE + id,
                "system": "online",
                "version": "2.0.0"
            }]
        });
        if !send_frames(&mut ws, vec![status.to_string()]).await {
            return;
        }
    }
    let mut hb_rx = shared.heartbeat.subscribe();
    let mut hb = tokio::time::interval_at(Instant::now() + HEARTBEAT_PERIOD, HEARTBEAT_PERIOD);
    hb.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut silent = false;
    loop {
        let hb_on = kraken && !silent && *hb_rx.borrow_and_update();
        tokio::select! {
            biased;
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { return };
                match cmd {
                    Cmd::Data(t) => {
                        if !silent && !send_frames(&mut ws, vec![t]).await {
                            return;
                        }
                    }
                    Cmd::Text(t) => {
                        if !send_frames(&mut ws, vec![t]).await {
                            return;
                        }
                    }
                    Cmd::Raw(bytes) => {
                        if ws.flush().await.is_err() {
                            return;
                        }
                        let tcp = ws.get_mut();
                        if tcp.write_all(&bytes).await.is_err() || tcp.flush().await.is_err() {
                            return;
                        }
                    }
                    Cmd::Close(code, reason) => {
                        close_and_drain(shared, id, &mut ws, code, reason).await;
                        return;
                    }
                    Cmd::Abort => {
                        let _ = ws.get_ref().set_zero_linger();
                        return;
                    }
                    Cmd::Silent(on) => silent = on,
                }
            }
            changed = hb_rx.changed() => {
                if changed.is_err() {
                    return;
                }
                hb.reset();
            }
            _ = hb.tick(), if hb_on => {
                if !send_frames(&mut ws, vec![r#"{"channel":"heartbeat"}"#.to_owned()]).await {
                    return;
                }
            }
            msg = ws.next(), if !silent => match msg {
                Some(Ok(Message::Text(t))) => {
                    shared.record(id, t.as_str());
                    let replies = shared.handle_text(id, t.as_str());
                    if !replies.is_empty() && !send_frames(&mut ws, replies).await {
                        return;
                    }
                }
                // Recorded as `binary:` + hex, for the binary-send tests.
                Some(Ok(Message::Binary(b))) => {
                    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                    shared.record(id, &format!("binary:{hex}"));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
        }
    }
}

impl Exchange {
    /// Binds 127.0.0.1:0 and starts accepting.
    pub async fn start(venue: Venue) -> std::io::Result<Exchange> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            venue,
            addr,
            listener: Mutex::new(ListenerSlot {
                listener: Some(listener),
                waker: None,
                shut: false,
            }),
            state: Mutex::new(State {
                next_conn: 0,
                next_sid: 1,
                handshakes: 0,
                conns: BTreeMap::new(),
                received: Vec::new(),
                handshake_delay: None,
                ack_mode: AckMode::Normal,
                rejects: HashMap::new(),
                required_token: None,
                handshake_check: None,
                skip: HashMap::new(),
                repeat: HashSet::new(),
                corrupt: HashSet::new(),
                books: HashMap::new(),
            }),
            changed: watch::Sender::new(0),
            tasks: Mutex::new(Tasks {
                closed: false,
                handles: Vec::new(),
            }),
            alive: watch::Sender::new(0),
            heartbeat: watch::Sender::new(false),
        });
        spawn_tracked(&shared, accept_loop(shared.clone()));
        Ok(Exchange { inner: shared })
    }

    /// `ws://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.inner.addr)
    }

    /// The bound address (kept across `set_refuse`).
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The venue this exchange speaks.
    pub fn venue(&self) -> Venue {
        self.inner.venue
    }

    /// Stops accepting, aborts every task the exchange spawned and waits until they are gone.
    /// Connections are dropped without a close frame (FIN, not RST).
    pub async fn shutdown(&self) {
        let handles = {
            let mut tasks = lock(&self.inner.tasks);
            tasks.closed = true;
            std::mem::take(&mut tasks.handles)
        };
        for h in &handles {
            h.abort();
        }
        let old = {
            let mut slot = lock(&self.inner.listener);
            slot.shut = true;
            slot.waker = None;
            slot.listener.take()
        };
        drop(old);
        let mut rx = self.inner.alive.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Completed WebSocket handshakes so far (= connections ever served).
    pub fn handshakes(&self) -> u64 {
        lock(&self.inner.state).handshakes
    }

    /// Connections currently open (handshake done, not yet ended).
    pub fn live_connections(&self) -> usize {
        lock(&self.inner.state).conns.len()
    }

    async fn wait_until(&self, cond: impl Fn() -> bool, timeout: Duration) -> bool {
        let mut rx = self.inner.changed.subscribe();
        let wait = async {
            loop {
                if cond() {
                    return true;
                }
                if rx.changed().await.is_err() {
                    return cond();
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(done) => done,
            Err(_) => cond(),
        }
    }

    /// Waits until `handshakes() >= n`; false on timeout.
    pub async fn wait_handshakes(&self, n: u64, timeout: Duration) -> bool {
        self.wait_until(|| self.handshakes() >= n, timeout).await
    }

    /// Waits until `live_connections() == n`; false on timeout.
    pub async fn wait_live(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(|| self.live_connections() == n, timeout)
            .await
    }

    /// Every text frame received from clients, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.inner.state).received.clone()
    }

    /// Waits until `pred(received())` holds (re-checked on every new frame); false on timeout.
    pub async fn wait_received(
        &self,
        pred: impl Fn(&[Received]) -> bool,
        timeout: Duration,
    ) -> bool {
        self.wait_until(|| pred(&self.received()), timeout).await
    }

    /// Forgets the frames received so far.
    pub fn clear_received(&self) {
        lock(&self.inner.state).received.clear();
    }

    /// Every live connection: TCP RST without a close frame (zero linger, then drop).
    pub fn abort_all(&self) {
        self.inner.broadcast(|| Cmd::Abort);
    }

    /// Every live connection: send a Close frame with `code`/`reason`, wait (bounded) for the
    /// client's reply, then drop the TCP connection.
    pub fn close_all(&self, code: u16, reason: &str) {
        self.inner.broadcast(|| Cmd::Close(code, reason.to_owned()));
    }

    /// Every live connection: send this text frame (even while silent).
    pub fn send_text_all(&self, text: &str) {
        self.inner.broadcast(|| Cmd::Text(text.to_owned()));
    }

    /// Every live connection: flush the WebSocket, then write these bytes onto the TCP stream.
    pub fn send_raw_all(&self, bytes: Vec<u8>) {
        self.inner.broadcast(|| Cmd::Raw(bytes.clone()));
    }

    /// Every live connection: stop (or resume) reading and sending venue traffic, keeping the
    /// socket open. Applies to connections live now; new connections start not silent.
    pub fn set_silent(&self, on: bool) {
        self.inner.broadcast(|| Cmd::Silent(on));
    }

    /// On: close the listener (connects get ECONNREFUSED). Off: re-bind the same port.
    /// Panics if the port cannot be re-bound.
    pub fn set_refuse(&self, on: bool) {
        let mut slot = lock(&self.inner.listener);
        if slot.shut {
            return;
        }
        if on {
            let old = slot.listener.take();
            drop(slot);
            drop(old);
        } else if slot.listener.is_none() {
            let addr = self.inner.addr;
            let std_listener = std::net::TcpListener::bind(addr)
                .unwrap_or_else(|e| panic!("exchange: cannot re-bind {addr}: {e}"));
            std_listener
                .set_nonblocking(true)
                .unwrap_or_else(|e| panic!("exchange: set_nonblocking: {e}"));
            let listener = TcpListener::from_std(std_listener)
                .unwrap_or_else(|e| panic!("exchange: register listener: {e}"));
            slot.listener = Some(listener);
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }
    }

    /// Future connections wait `d` after TCP accept before the WebSocket handshake
    /// (`Some(Duration::MAX)` = never complete it).
    pub fn set_handshake_delay(&self, d: Option<Duration>) {
        lock(&self.inner.state).handshake_delay = d;
    }

    /// How future subscribe requests are acknowledged.
    pub fn set_ack_mode(&self, m: AckMode) {
        lock(&self.inner.state).ack_mode = m;
    }

    /// Runs `check` on every later upgrade request (`None`: accept all, authenticated).
    pub fn set_handshake_check(&self, check: Option<HandshakeCheck>) {
        lock(&self.inner.state).handshake_check = check;
    }

    /// Kraken: private channels must carry this `params.token`, else the
    /// subscription is refused (`None`: not checked).
    pub fn require_token(&self, token: Option<&str>) {
        lock(&self.inner.state).required_token = token.map(str::to_owned);
    }

    /// Future subscribes containing this symbol fail (Kalshi: code+msg; Kraken: error text).
    pub fn reject(&self, symbol: &str, error: &str, code: u32) {
        lock(&self.inner.state)
            .rejects
            .insert(symbol.to_owned(), (error.to_owned(), code));
    }

    /// Undoes `reject(symbol, ..)`.
    pub fn unreject(&self, symbol: &str) {
        lock(&self.inner.state).rejects.remove(symbol);
    }

    /// Kraken only: `{"channel":"heartbeat"}` every second on each connection while on.
    pub fn set_heartbeat(&self, on: bool) {
        self.inner.heartbeat.send_replace(on);
    }

    /// Sends one data frame for `symbol` on every live subscription that includes it.
    /// Kalshi adds `market_ticker`, Kraken adds `symbol` (object payloads). Kraken `book`
    /// subscriptions ignore `payload` and get a one-level book update with its checksum.
    /// Raw: sends the payload (with `symbol` added) to every live connection.
    pub fn publish(&self, symbol: &str, payload: Value) {
        let mut guard = lock(&self.inner.state);
        let st = &mut *guard;
        match self.inner.venue {
            Venue::Raw => {
                let text = with_field(payload, "symbol", Value::from(symbol)).to_string();
                for c in st.conns.values() {
                    let _ = c.tx.try_send(Cmd::Data(text.clone()));
                }
            }
            Venue::Kalshi => {
                let skip = st.skip.remove(symbol).unwrap_or(0);
                let repeat = st.repeat.remove(symbol);
                let msg = with_field(payload, "market_ticker", Value::from(symbol));
                for c in st.conns.values_mut() {
                    for sub in c.subs.iter_mut().filter(|s| s.matches(symbol)) {
                        let seq = if repeat && sub.seq > 0 {
                            sub.seq
                        } else {
                            sub.seq + 1 + skip
                        };
                        sub.seq = seq;
                        let _ =
                            c.tx.try_send(Cmd::Data(kalshi_data(&sub.channel, sub.sid, seq, &msg)));
                    }
                }
            }
            Venue::Kraken => {
                let data = with_field(payload, "symbol", Value::from(symbol));
                let has_book = st.conns.values().any(|c| {
                    c.subs
                        .iter()
                        .any(|s| s.channel == "book" && s.matches(symbol))
                });
                let book = if has_book {
                    Some(st.book_update(symbol))
                } else {
                    None
                };
                for c in st.conns.values() {
                    for sub in c.subs.iter().filter(|s| s.matches(symbol)) {
                        let text = match (&book, sub.channel == "book") {
                            (Some(b), true) => b.clone(),
                            _ => kraken_data(&sub.channel, &data),
                        };
                        let _ = c.tx.try_send(Cmd::Data(text));
                    }
                }
            }
        }
    }

    /// Kalshi: the next publish for `symbol` jumps seq by `n` extra (a gap).
    pub fn skip_seq(&self, symbol: &str, n: u64) {
        *lock(&self.inner.state)
            .skip
            .entry(symbol.to_owned())
            .or_default() += n;
    }

    /// Kalshi: the next publish for `symbol` reuses the previous seq (a duplicate).
    pub fn repeat_seq(&self, symbol: &str) {
        lock(&self.inner.state).repeat.insert(symbol.to_owned());
    }

    /// Kraken: the next book frame (snapshot or update) for `symbol` carries a wrong checksum.
    pub fn corrupt_next_checksum(&self, symbol: &str) {
        lock(&self.inner.state).corrupt.insert(symbol.to_owned());
    }

    /// The server's current checksum of `symbol`'s book (the default book if never used).
    pub fn book_checksum(&self, symbol: &str) -> u32 {
        let st = lock(&self.inner.state);
        match st.books.get(symbol) {
            Some(b) => b.checksum(),
            None => Book::new().checksum(),
        }
    }

    /// Publishes `ticker_payload` for every symbol every `interval` (first round at once);
    /// aborted by `shutdown`.
    pub fn start_stream(&self, symbols: Vec<String>, interval: Duration) -> JoinHandle<()> {
        let ex = self.clone();
        let period = interval.max(Duration::from_millis(1));
        let fut = async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut n = 0u64;
            loop {
                tick.tick().await;
                n += 1;
                for s in &symbols {
                    ex.publish(s, ticker_payload(ex.inner.venue, s, n));
                }
            }
        };
        spawn_tracked(&self.inner, fut).unwrap_or_else(|| tokio::spawn(async {}))
    }

    /// Live subscriptions summed over live connections.
    pub fn subscriptions(&self) -> usize {
        lock(&self.inner.state)
            .conns
            .values()
            .map(|c| c.subs.len())
            .sum()
    }
}
