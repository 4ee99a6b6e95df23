//! The emulator's shared state: live connections with their subscriptions, the
//! frames clients sent, and the fault knobs tests set. One `Mutex<State>` guards it;
//! every observable change bumps the `changed` watch so `wait_*` helpers wake on
//! events instead of polling.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::task::Waker;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::kraken_book::Book;
use super::{AckMode, DropAfter, Received, Venue, RECEIVED_LIMIT};
use crate::support::tasks::{lock, TaskSet};

/// A command to one connection's task.
pub(super) enum Cmd {
    /// Venue data; dropped while the connection is silent.
    Data(String),
    /// Explicit text (fault injection); sent even while silent.
    Text(String),
    Raw(Vec<u8>),
    Close(u16, String),
    Abort,
    Silent(bool),
}

/// One subscription a client holds on one connection.
pub(super) struct Sub {
    /// Kalshi sid (0 for Kraken).
    pub(super) sid: u64,
    pub(super) channel: String,
    /// `None` = every symbol (Kalshi subscribe without tickers).
    pub(super) symbols: Option<Vec<String>>,
    /// Last seq sent on this sid (Kalshi).
    pub(super) seq: u64,
    /// Kraken book depth (0 for other channels).
    pub(super) depth: u64,
}

impl Sub {
    pub(super) fn matches(&self, symbol: &str) -> bool {
        match &self.symbols {
            None => true,
            Some(list) => list.iter().any(|s| s == symbol),
        }
    }
}

pub(super) struct Conn {
    pub(super) tx: mpsc::Sender<Cmd>,
    pub(super) subs: Vec<Sub>,
    /// Whether the handshake check (if any) accepted this connection's credentials.
    pub(super) authenticated: bool,
}

pub(super) struct State {
    pub(super) next_conn: u64,
    pub(super) next_sid: u64,
    pub(super) handshakes: u64,
    pub(super) conns: BTreeMap<u64, Conn>,
    pub(super) received: Vec<Received>,
    pub(super) handshake_delay: Option<Duration>,
    pub(super) ack_mode: AckMode,
    /// Each new connection is reset on its own this long after its handshake or first ack.
    pub(super) drop_after: Option<DropAfter>,
    pub(super) rejects: HashMap<String, (String, u32)>,
    pub(super) skip: HashMap<String, u64>,
    pub(super) repeat: HashSet<String>,
    pub(super) corrupt: HashSet<String>,
    pub(super) books: HashMap<String, Book>,
    /// Kraken: the token private channels must carry (`None`: not checked).
    pub(super) required_token: Option<String>,
    /// Runs on every upgrade request (`None`: accept, authenticated).
    pub(super) handshake_check: Option<super::HandshakeCheck>,
    /// Kalshi: `orderbook_delta` subscribes start with a snapshot.
    pub(super) book_snapshots: bool,
    /// Kalshi: only when the subscribe asks (`send_initial_snapshot: true`,
    /// PROTOCOLS.md's reading of the flag).
    pub(super) snapshots_on_request: bool,
    /// Kalshi: the book a market's `orderbook_snapshot` shows, when set
    /// (`Exchange::set_kalshi_book`); else `kalshi_book_snapshot`.
    pub(super) kalshi_books: HashMap<String, serde_json::Value>,
    /// Kalshi: snapshots go out before the `subscribed` ack (or the `ok` of
    /// an `add_markets`) instead of after it.
    pub(super) kalshi_snapshots_first: bool,
}

impl State {
    pub(super) fn new() -> State {
        State {
            next_conn: 0,
            next_sid: 1,
            handshakes: 0,
            conns: BTreeMap::new(),
            received: Vec::new(),
            handshake_delay: None,
            ack_mode: AckMode::Normal,
            drop_after: None,
            rejects: HashMap::new(),
            required_token: None,
            handshake_check: None,
            skip: HashMap::new(),
            repeat: HashSet::new(),
            corrupt: HashSet::new(),
            books: HashMap::new(),
            book_snapshots: false,
            snapshots_on_request: false,
            kalshi_books: HashMap::new(),
            kalshi_snapshots_first: false,
        }
    }
}

/// The listener, taken out while refusing (`set_refuse`) and put back on the same port.
pub(super) struct ListenerSlot {
    pub(super) listener: Option<TcpListener>,
    pub(super) waker: Option<Waker>,
    pub(super) shut: bool,
}

pub(super) struct Shared {
    pub(super) venue: Venue,
    pub(super) addr: SocketAddr,
    pub(super) listener: Mutex<ListenerSlot>,
    pub(super) state: Mutex<State>,
    /// Bumped on every observable change (handshake, connection end, frame received).
    pub(super) changed: watch::Sender<u64>,
    pub(super) tasks: TaskSet,
    pub(super) heartbeat: watch::Sender<bool>,
}

impl Shared {
    pub(super) fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(super) fn record(&self, conn: u64, text: &str) {
        let mut state = lock(&self.state);
        // Bounded, so a long soak measures the client and not this log.
        if state.received.len() >= RECEIVED_LIMIT {
            // Drop whole connections where possible, so every connection
            // still in the log is complete from its first frame.
            let at_cut = state.received[RECEIVED_LIMIT / 2].conn;
            let older = state
                .received
                .iter()
                .position(|r| r.conn >= at_cut)
                .unwrap_or(0);
            let drop = if older > 0 { older } else { RECEIVED_LIMIT / 2 };
            state.received.drain(..drop);
        }
        state.received.push(Received {
            conn,
            at: Instant::now(),
            text: text.to_owned(),
        });
        drop(state);
        self.bump();
    }

    pub(super) fn broadcast(&self, make: impl Fn() -> Cmd) {
        let st = lock(&self.state);
        for c in st.conns.values() {
            let _ = c.tx.try_send(make());
        }
    }

    /// Venue handling of one client text frame; returns the frames to send back, in order.
    pub(super) fn handle_text(&self, conn: u64, text: &str) -> Vec<String> {
        match self.venue {
            Venue::Raw => Vec::new(),
            Venue::Kalshi => self.kalshi(conn, text),
            Venue::Kraken => self.kraken(conn, text),
        }
    }
}

/// Adds `key: value` to `v` when it is an object.
pub(super) fn with_field(mut v: Value, key: &str, value: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.insert(key.to_owned(), value);
    }
    v
}

/// `v` with `key: id` added when there is an id, as text.
pub(super) fn with_id(v: Value, key: &str, id: Option<&Value>) -> String {
    match id {
        Some(id) => with_field(v, key, id.clone()).to_string(),
        None => v.to_string(),
    }
}

/// A string or a list of strings as a list.
pub(super) fn string_list(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_owned)).collect(),
        Value::String(s) => Some(vec![s.clone()]),
        _ => None,
    }
}

/// A number or a list of numbers as a list.
pub(super) fn u64_list(v: Option<&Value>) -> Option<Vec<u64>> {
    match v? {
        Value::Array(a) => a.iter().map(Value::as_u64).collect(),
        other => other.as_u64().map(|x| vec![x]),
    }
}
