//! In-process WebSocket exchange emulator on 127.0.0.1 for the integration tests and the
//! main example: a Raw echo-less server, a Kalshi-style venue and a Kraken v2 venue, with
//! fault injection (resets, close codes, silence, refusal, slow handshakes, seq gaps,
//! bad checksums).
//!
//! Layout: this file is the handle tests hold ([`Exchange`]) and its venue-neutral
//! knobs; `state` is the shared state behind it; `server` the accept loop and the
//! per-connection task; `kalshi` and `kraken` (with `kraken_book`) what each venue
//! answers and publishes. A new venue is one more file beside them plus an arm in
//! `Shared::handle_text` and `Exchange::publish`.

mod kalshi;
mod kraken;
mod kraken_book;
mod server;
mod state;

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

// Not every test binary uses them; they stay reachable at their old path.
#[allow(unused_imports)]
pub use kalshi::{kalshi_book_snapshot, kalshi_delta, KALSHI_MARKET_ID};
#[allow(unused_imports)]
pub use kraken::{KRAKEN_CONNECTION_ID_BASE, KRAKEN_PRIVATE_CHANNELS};
use state::{with_field, Cmd, ListenerSlot, Shared, State};

use crate::support::tasks::{lock, TaskSet};

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
    Arc<dyn Fn(&tungstenite::handshake::server::Request) -> Gate + Send + Sync>;

/// Kalshi's private channels (Quick Start: WebSockets, *Authentication*).
pub const KALSHI_PRIVATE_CHANNELS: [&str; 5] = [
    "orderbook_delta",
    "fill",
    "market_positions",
    "communications",
    "order_group_updates",
];

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

/// When the exchange drops every connection on its own (`set_drop_after`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropAfter {
    /// This long after the WebSocket handshake, whatever was answered.
    Handshake(Duration),
    /// This long after the connection's first subscribe was acknowledged: a
    /// venue whose sessions work but are short.
    Ack(Duration),
}

/// At most this many received frames are kept: when full, the connections
/// older than the one at the middle go (or the oldest half, if one connection
/// fills it). Tests look at recent frames, and a long soak must measure the
/// client, not this log.
pub const RECEIVED_LIMIT: usize = 4_096;

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
        // Kalshi's `ticker` as of its fixed-point migration (legacy integer
        // fields removed 12 Mar 2026): prices `_dollars`, sizes `_fp`.
        Venue::Kalshi | Venue::Raw => {
            let secs = 1_700_000_000 + n;
            json!({
                "market_id": KALSHI_MARKET_ID,
                "market_ticker": symbol,
                "price_dollars": format!("0.{:02}00", 50 + n % 40),
                "yes_bid_dollars": format!("0.{:02}00", 49 + n % 40),
                "yes_ask_dollars": format!("0.{:02}00", 51 + n % 40),
                "volume_fp": format!("{n}.00"),
                "open_interest_fp": format!("{}.00", 1000 + n),
                "dollar_volume": n / 2,
                "dollar_open_interest": (1000 + n) / 2,
                "yes_bid_size_fp": "300.00",
                "yes_ask_size_fp": "150.00",
                "last_trade_size_fp": "25.00",
                "ts": secs,
                "ts_ms": secs * 1000,
                "time": rfc3339(secs)
            })
        }
    }
}

/// Unix seconds as an RFC 3339 UTC timestamp (days to civil date after
/// Howard Hinnant's published algorithm).
fn rfc3339(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
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

impl Exchange {
    /// Runs `check` on every later upgrade request (`None`: accept all, authenticated).
    pub fn set_handshake_check(&self, check: Option<HandshakeCheck>) {
        lock(&self.inner.state).handshake_check = check;
    }

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
            state: Mutex::new(State::new()),
            changed: watch::Sender::new(0),
            tasks: TaskSet::default(),
            heartbeat: watch::Sender::new(false),
        });
        shared.tasks.spawn(server::accept_loop(shared.clone()));
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
        self.inner.tasks.abort_all();
        let old = {
            let mut slot = lock(&self.inner.listener);
            slot.shut = true;
            slot.waker = None;
            slot.listener.take()
        };
        drop(old);
        self.inner.tasks.wait_gone().await;
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

    /// The text frames received from clients, in arrival order (the last
    /// [`RECEIVED_LIMIT`] at most).
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

    /// Future connections are reset (TCP RST, no close frame) on their own,
    /// as `when` says (`None`: they live until a test ends them).
    pub fn set_drop_after(&self, when: Option<DropAfter>) {
        lock(&self.inner.state).drop_after = when;
    }

    /// How future subscribe requests are acknowledged.
    pub fn set_ack_mode(&self, m: AckMode) {
        lock(&self.inner.state).ack_mode = m;
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
            Venue::Kalshi => st.publish_kalshi(symbol, payload),
            Venue::Kraken => st.publish_kraken(symbol, payload),
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
        self.inner
            .tasks
            .spawn(fut)
            .unwrap_or_else(|| tokio::spawn(async {}))
    }

    /// After a fault: a handshake came after the `before` count, every
    /// older connection is gone (the server drops one only when its task
    /// ends, so a cut connection can linger and still hold its
    /// subscriptions), and the one connection left holds `subscriptions`.
    /// Publishing before this may go to the dead connection only.
    pub fn reconnected_with(&self, before: u64, subscriptions: usize) -> bool {
        self.handshakes() > before
            && self.live_connections() == 1
            && self.subscriptions() == subscriptions
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
