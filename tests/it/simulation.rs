//! Deterministic simulation with turmoil: the library runs unchanged over
//! turmoil's simulated TCP, plugged in through the public `Connector` trait
//! (`Transport { stream: Box<dyn AsyncStream>, request }`), against a small
//! Kalshi-style exchange host in the same simulation. Time is virtual, so a
//! 40-second scenario runs in well under a second of CPU.
//!
//! Each seed draws a fault schedule: network partitions, handshake drops and
//! stalls, a drop while the client is backing off, a drop in the middle of the
//! subscription replay, a silent peer (until the idle timeout), server close
//! frames, a server crash and restart, a latency spike and sequence gaps. Turmoil's
//! own RNG (message latency) uses the same seed. After the last fault the client
//! checks what the chaos soak checks: every stream flows again, sequence numbers
//! increase within a connection and every skip was announced, the server saw
//! each live subscription once per connection, and the counters balance.
//!
//! The client host runs in one of two modes (`Mode`), with the same fault
//! plans and the same checks: the spawned supervisor (`Client::connect`, one
//! consumer task per subscription) or a [`Feed`] that one consumer task polls,
//! so that task itself reads the socket, answers pings, fires the timers and
//! reconnects; for the feed the checks add that each symbol's items come under
//! the one client id its subscribe returned, and the feed's counters are exact.
//!
//! `SIM_SEED=N` runs one seed (in both modes); `SIM_SEEDS=K` runs seeds 0..K
//! in the spawned mode (default 40), `SIM_FEED_SEEDS=K` in the feed mode
//! (default `FEED_SEEDS`). A failing seed is printed with the tail of its trace.
//!
//! Replay: the fault schedule and turmoil's network are functions of the seed,
//! so a seed always replays the same faults at the same virtual times. For a
//! tick-for-tick identical replay the tokio runtimes' RNG must be seeded as
//! well, which turmoil does only under `--cfg tokio_unstable`:
//! `RUSTFLAGS="--cfg tokio_unstable" SIM_SEED=N cargo test --test it simulation::`
//! (a separate build; `a_seed_replays_to_the_same_trace` then asserts identical traces).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use resilient_ws::{
    Backoff, Client, ClientId, Config, ConnectFuture, ConnectionState, Connector, Error, Event,
    Feed, Kalshi, Operation, QueueStats, ServerId, Subscription, Topic, Transport, Update,
};
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

const SERVER: &str = "exchange";
const CLIENT: &str = "client";
const PORT: u16 = 8080;
const SYMBOLS: [&str; 6] = ["S0", "S1", "S2", "S3", "S4", "S5"];
const DATA_EVERY: Duration = Duration::from_millis(100);
const FAULTS_PER_SEED: usize = 8;
const FIRST_FAULT_AT: Duration = Duration::from_secs(2);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- what the exchange host, the client host and the driver share ----------

#[derive(Default)]
struct Stage {
    // Knobs, set by the driver.
    /// The next n accepted connections are closed before the WebSocket handshake.
    drop_handshakes: u32,
    /// The next n accepted connections never get a handshake answer.
    stall_handshakes: u32,
    /// The next connection is dropped when this many subscribes arrived.
    drop_after_subscribes: Option<usize>,
    /// Bumped: live connections stop sending data (they keep reading and answer pings).
    silent: u64,
    /// Bumped, with a code: live connections send a close frame.
    close: (u64, u16),
    /// Bumped: live connections are dropped (FIN).
    kick: u64,
    /// Bumped, with a symbol and a count: its next seq jumps.
    skip: (u64, usize, u64),

    // Observations.
    next_conn: u64,
    next_sid: u64,
    /// (connection, symbol subscribed) or (connection, symbol unsubscribed), in order.
    ops: Vec<(u64, Op)>,
    sid_owner: HashMap<u64, String>,
    /// The client's state and how often it entered Backoff (written by the client host).
    client_state: Option<ConnectionState>,
    backoffs: u64,
    /// Why connections ended and attempts failed, by kind.
    causes: BTreeMap<String, u64>,
    /// Both hosts' events with their virtual time, for the determinism check.
    trace: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Subscribe(String),
    Unsubscribe(String),
}

type Shared = Arc<Mutex<Stage>>;

fn trace(stage: &Shared, what: String) {
    let at = turmoil::sim_elapsed().unwrap_or_default();
    lock(stage)
        .trace
        .push(format!("{:>6}ms {what}", at.as_millis()));
}

// ---- the connector --------------------------------------------------------

/// Opens turmoil TCP streams: the only piece the library needs to run in the simulation.
struct SimConnector;

impl Connector for SimConnector {
    fn connect<'a>(&'a self, url: &'a str) -> ConnectFuture<'a> {
        Box::pin(async move {
            let request = url
                .into_client_request()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            let host = request.uri().host().unwrap_or_default().to_owned();
            let port = request.uri().port_u16().unwrap_or(80);
            let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
            Ok(Transport {
                stream: Box::new(stream),
                request,
            })
        })
    }
}

// ---- the exchange host ----------------------------------------------------

async fn exchange_host(stage: Shared) -> turmoil::Result {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::task::spawn_local(serve(tcp, Arc::clone(&stage)));
    }
}

struct Sub {
    sid: u64,
    symbol: String,
    seq: u64,
}

async fn serve(tcp: turmoil::net::TcpStream, stage: Shared) {
    let (conn, drop_it, stall_it) = {
        let mut st = lock(&stage);
        st.next_conn += 1;
        let drop_it = st.drop_handshakes > 0;
        st.drop_handshakes = st.drop_handshakes.saturating_sub(1);
        let stall_it = !drop_it && st.stall_handshakes > 0;
        if stall_it {
            st.stall_handshakes -= 1;
        }
        (st.next_conn, drop_it, stall_it)
    };
    if drop_it {
        trace(
            &stage,
            format!("server conn {conn}: dropped before the handshake"),
        );
        return;
    }
    if stall_it {
        trace(
            &stage,
            format!("server conn {conn}: handshake never answered"),
        );
        // Hold the socket until the client gives up on it.
        let mut tcp = tcp;
        let mut buf = [0u8; 1024];
        while let Ok(n) = tokio::io::AsyncReadExt::read(&mut tcp, &mut buf).await {
            if n == 0 {
                break;
            }
        }
        return;
    }
    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
        trace(&stage, format!("server conn {conn}: handshake failed"));
        return;
    };
    trace(&stage, format!("server conn {conn}: open"));
    let (mut silent_seen, close_seen, kick_seen, mut skip_seen, drop_after) = {
        let mut st = lock(&stage);
        (
            st.silent,
            st.close.0,
            st.kick,
            st.skip.0,
            st.drop_after_subscribes.take(),
        )
    };
    let mut silent = false;
    let mut subs: Vec<Sub> = Vec::new();
    let mut subscribes = 0usize;
    let mut tick = tokio::time::interval(DATA_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            message = ws.next() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        trace(&stage, format!("server conn {conn}: ended by the client"));
                        return;
                    }
                    Some(Ok(_)) => continue,
                };
                let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                let id = v["id"].clone();
                match v["cmd"].as_str() {
                    Some("subscribe") => {
                        let symbol = v["params"]["market_tickers"][0].as_str().unwrap_or_default().to_owned();
                        subscribes += 1;
                        if drop_after == Some(subscribes) {
                            trace(&stage, format!("server conn {conn}: dropped during the replay at {symbol}"));
                            return;
                        }
                        let sid = {
                            let mut st = lock(&stage);
                            st.next_sid += 1;
                            let sid = st.next_sid;
                            st.sid_owner.insert(sid, symbol.clone());
                            st.ops.push((conn, Op::Subscribe(symbol.clone())));
                            sid
                        };
                        subs.push(Sub { sid, symbol, seq: 0 });
                        let ack = json!({"id": id, "type": "subscribed", "msg": {"channel": "ticker", "sid": sid}});
                        if ws.send(Message::text(ack.to_string())).await.is_err() {
                            return;
                        }
                    }
                    Some("unsubscribe") => {
                        for sid in v["params"]["sids"].as_array().cloned().unwrap_or_default() {
                            let sid = sid.as_u64().unwrap_or_default();
                            subs.retain(|s| s.sid != sid);
                            let mut st = lock(&stage);
                            let owner = st.sid_owner.get(&sid).cloned().unwrap_or_default();
                            st.ops.push((conn, Op::Unsubscribe(owner)));
                        }
                        let ack = json!({"id": id, "type": "unsubscribed"});
                        if ws.send(Message::text(ack.to_string())).await.is_err() {
                            return;
                        }
                    }
                    _ => {}
                }
            }
            _ = tick.tick() => {
                let (silent_now, close, kick, skip) = {
                    let st = lock(&stage);
                    (st.silent, st.close, st.kick, st.skip)
                };
                if kick != kick_seen {
                    trace(&stage, format!("server conn {conn}: kicked"));
                    return;
                }
                if close.0 != close_seen {
                    trace(&stage, format!("server conn {conn}: close {}", close.1));
                    let frame = CloseFrame { code: CloseCode::from(close.1), reason: "sim".into() };
                    let _ = ws.close(Some(frame)).await;
                    // Read the client's reply (bounded), then drop.
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(Ok(_)) = ws.next().await {}
                    }).await;
                    return;
                }
                if silent_now != silent_seen {
                    silent_seen = silent_now;
                    silent = true;
                    trace(&stage, format!("server conn {conn}: silent"));
                }
                if skip.0 != skip_seen {
                    skip_seen = skip.0;
                    let symbol = SYMBOLS[skip.1];
                    for sub in subs.iter_mut().filter(|s| s.symbol == symbol) {
                        sub.seq += skip.2;
                    }
                }
                if silent {
                    continue;
                }
                for sub in &mut subs {
                    sub.seq += 1;
                    let data = json!({"type": "ticker", "sid": sub.sid, "seq": sub.seq,
                        "msg": {"market_ticker": sub.symbol}});
                    if ws.feed(Message::text(data.to_string())).await.is_err() {
                        return;
                    }
                }
                if ws.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}

// ---- the client host ----------------------------------------------------

#[derive(Default)]
struct StreamReport {
    symbol: String,
    data: u64,
    data_after_quiet: u64,
    gaps: u64,
    violations: Vec<String>,
    errors: Vec<String>,
    routed: u64,
    delivered: u64,
    dropped: u64,
}

/// Data counts per stream after the quiet point, shared with the consumers.
struct Progress {
    quiet: std::sync::atomic::AtomicBool,
    after_quiet: Vec<std::sync::atomic::AtomicU64>,
    bump: tokio::sync::watch::Sender<u64>,
}

impl Progress {
    fn all_at_least(&self, n: u64) -> bool {
        self.after_quiet
            .iter()
            .all(|c| c.load(std::sync::atomic::Ordering::Relaxed) >= n)
    }
}

/// One subscription's items, checked as they come: sequence numbers increase
/// within a connection, every skip is announced by a gap signal first, and
/// every frame is the subscription's own symbol. The same checks whichever
/// way the items are consumed (a [`Subscription`] of its own, or a feed).
struct Checker {
    index: usize,
    last: Option<u64>,
    announced: Option<(u64, u64)>,
    report: StreamReport,
}

impl Checker {
    fn new(index: usize) -> Checker {
        Checker {
            index,
            last: None,
            announced: None,
            report: StreamReport {
                symbol: SYMBOLS[index].to_owned(),
                ..StreamReport::default()
            },
        }
    }

    fn on_item(&mut self, item: Result<Update, Error>, progress: &Progress) {
        use std::sync::atomic::Ordering::Relaxed;
        let Checker {
            index,
            last,
            announced,
            report: r,
        } = self;
        match item {
            Ok(Update::Data(frame)) => {
                let Some(n) = frame.seq() else {
                    r.violations.push("no seq".into());
                    return;
                };
                let v: Value =
                    serde_json::from_str(frame.as_text().unwrap_or("null")).unwrap_or_default();
                if v["msg"]["market_ticker"] != SYMBOLS[*index] {
                    r.violations.push(format!("misrouted {v}"));
                }
                match *last {
                    Some(l) if n == l + 1 && announced.is_none() => {}
                    Some(l) if n > l + 1 && *announced == Some((l, n)) => {}
                    None if announced.is_none() => {}
                    _ => r
                        .violations
                        .push(format!("{last:?} -> {n} (announced {announced:?})")),
                }
                *last = Some(n);
                *announced = None;
                r.data += 1;
                if progress.quiet.load(Relaxed) {
                    r.data_after_quiet += 1;
                    progress.after_quiet[*index].fetch_add(1, Relaxed);
                    progress.bump.send_modify(|v| *v += 1);
                }
            }
            Ok(Update::Gap { last_seq, next_seq }) => {
                if *last != Some(last_seq) || announced.is_some() {
                    r.violations
                        .push(format!("gap {last_seq}->{next_seq} after {last:?}"));
                }
                r.gaps += 1;
                *announced = Some((last_seq, next_seq));
            }
            Ok(Update::Resubscribed { server_id }) => {
                if announced.is_some() || !matches!(server_id, ServerId::Num(_)) {
                    r.violations
                        .push(format!("resubscribed {server_id:?} after {announced:?}"));
                }
                *last = None;
                *announced = None;
            }
            Ok(other) => r.violations.push(format!("unexpected {other:?}")),
            Err(error) => r.errors.push(error.to_string()),
        }
    }
}

/// Reads one subscription (spawned mode) until it ends.
async fn consume(mut sub: Subscription, index: usize, progress: Arc<Progress>) -> StreamReport {
    let mut checker = Checker::new(index);
    while let Some(item) = sub.next().await {
        checker.on_item(item, &progress);
    }
    let q = sub.stats();
    let r = &mut checker.report;
    (r.routed, r.delivered, r.dropped) = (q.routed, q.delivered, q.dropped);
    checker.report
}

/// What the task that drove a feed saw.
struct FeedReport {
    reports: Vec<StreamReport>,
    /// The client ids each symbol's items came under.
    ids: Vec<HashSet<ClientId>>,
    /// Items whose topic is none of [`SYMBOLS`].
    strays: Vec<String>,
    stats: QueueStats,
}

/// Polls the feed until its stream ends (the consumer's task drives the
/// connection), handing each item to its symbol's checker.
///
/// `pauses` (virtual instants and lengths, in order): the consumer stops
/// polling the feed for that long, so nothing happens on the connection
/// meanwhile (no read, no ping, no timer); a scheduled part of the scenario.
async fn drive_feed(
    mut feed: Feed<Kalshi>,
    progress: Arc<Progress>,
    pauses: Vec<(Duration, Duration)>,
    stage: Shared,
) -> FeedReport {
    let mut checkers: Vec<Checker> = (0..SYMBOLS.len()).map(Checker::new).collect();
    let mut ids: Vec<HashSet<ClientId>> = vec![HashSet::new(); SYMBOLS.len()];
    let mut strays = Vec::new();
    let mut pauses = pauses.into_iter().peekable();
    loop {
        let next_pause = pauses.peek().copied();
        let item = tokio::select! {
            biased;
            _ = tokio::time::sleep(
                next_pause.map_or(Duration::ZERO, |(at, _)| at.saturating_sub(turmoil::elapsed()))
            ), if next_pause.is_some() => {
                let Some((_, length)) = pauses.next() else { continue };
                trace(&stage, format!("client: consumer pauses {}ms", length.as_millis()));
                tokio::time::sleep(length).await;
                trace(&stage, "client: consumer polls again".into());
                continue;
            }
            item = feed.next() => item,
        };
        let Some(item) = item else { break };
        let symbol = item.topic.symbol_name();
        match SYMBOLS.iter().position(|s| Some(*s) == symbol) {
            Some(index) => {
                ids[index].insert(item.client_id);
                checkers[index].on_item(item.item, &progress);
            }
            None => strays.push(format!(
                "{} {:?}: {:?}",
                item.client_id, item.topic, item.item
            )),
        }
    }
    FeedReport {
        reports: checkers.into_iter().map(|c| c.report).collect(),
        ids,
        strays,
        stats: feed.stats(),
    }
}

fn kind_of(error: &Error) -> String {
    match error {
        Error::Connection { source, .. } => {
            match source.downcast_ref::<resilient_ws::ConnectionError>() {
                Some(resilient_ws::ConnectionError::Io { kind, .. }) => format!("io {kind:?}"),
                Some(resilient_ws::ConnectionError::Lost(_)) => "lost (no close frame)".into(),
                Some(resilient_ws::ConnectionError::Handshake(_)) => "handshake failed".into(),
                _ => "connection".into(),
            }
        }
        Error::Closed { code, .. } => format!("close {code}"),
        Error::Timeout { operation, .. } => match operation {
            Operation::Connect => "connect timeout".into(),
            Operation::Ping => "ping timeout".into(),
            Operation::Receive => "idle timeout".into(),
            other => format!("{other:?} timeout"),
        },
        other => format!("{other:?}"),
    }
}

fn event_line(event: &Event) -> Option<String> {
    Some(match event {
        Event::Connecting { attempt } => format!("client connecting #{attempt}"),
        Event::Connected { attempt } => format!("client connected #{attempt}"),
        Event::AttemptFailed { attempt, error } => {
            format!("client attempt #{attempt} failed: {error}")
        }
        Event::Disconnected { cause } => format!("client disconnected: {cause}"),
        Event::ReconnectScheduled { attempt, delay } => {
            format!("client retry #{attempt} in {}ms", delay.as_millis())
        }
        Event::Resubscribed {
            client_id,
            server_id,
        } => {
            format!("client resubscribed {client_id} as {server_id}")
        }
        Event::Gap {
            client_id,
            last_seq,
            next_seq,
        } => {
            format!("client gap {client_id}: {last_seq} -> {next_seq}")
        }
        Event::Closed { error } => format!("client closed: {error:?}"),
        _ => return None,
    })
}

fn config(seed: u64) -> Config {
    Config::builder(format!("ws://{SERVER}:{PORT}/"))
        .connector(SimConnector)
        .backoff(
            Backoff::new(Duration::from_millis(100), Duration::from_secs(2))
                .jitter(0.5)
                .max_attempts(None)
                .seed(seed),
        )
        .connect_timeout(Duration::from_secs(1))
        .ping_interval(Duration::from_secs(1))
        .pong_timeout(Duration::from_secs(1))
        .idle_timeout(Some(Duration::from_millis(2500)))
        // Above ping + pong timeout: a replay on a dead connection is recycled
        // by the liveness check, never failed by its ack timeout.
        .request_timeout(Duration::from_secs(5))
        .close_timeout(Duration::from_secs(1))
        .build()
        .expect("valid config")
}

/// Who drives the connection in the client host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `Client::connect`: the library's own task; one task per subscription reads it.
    Spawned,
    /// `Feed::new`: one consumer task polls the feed, which reads the socket,
    /// runs the session and reconnects in that task; commands come from this host's task.
    Feed,
    /// As `Feed`, and the consumer also stops polling a few times (`consumer_pauses`).
    PausingFeed,
}

/// When and how long a `PausingFeed` consumer stops polling: three pauses
/// from 300 ms to 4 s (past the ping interval plus pong timeout, 2 s, and
/// the idle timeout, 2.5 s, or not), each over before the last fault's quiet
/// point. Drawn from the seed with an RNG of their own, so the seed's fault
/// plan is the same as in the other modes.
fn consumer_pauses(seed: u64, quiet_at: Duration) -> Vec<(Duration, Duration)> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7A05_E5ED);
    let span = quiet_at.saturating_sub(FIRST_FAULT_AT + Duration::from_secs(5));
    let mut pauses: Vec<(Duration, Duration)> = (0..3)
        .map(|_| {
            let at = FIRST_FAULT_AT + span.mul_f64(rng.random_range(0.0..1.0));
            (at, Duration::from_millis(rng.random_range(300..4_000)))
        })
        .collect();
    pauses.sort();
    // One at a time: a pause starts after the previous one ended.
    let mut free_at = Duration::ZERO;
    for (at, length) in &mut pauses {
        *at = (*at).max(free_at);
        free_at = *at + *length;
    }
    pauses.retain(|(at, length)| *at + *length < quiet_at);
    pauses
}

/// How the consumers end: joined after `close()`.
enum Consumers {
    Spawned(Vec<tokio::task::JoinHandle<StreamReport>>),
    Feed {
        task: tokio::task::JoinHandle<FeedReport>,
        ids: Vec<ClientId>,
    },
}

async fn client_host(seed: u64, stage: Shared, quiet_at: Duration, mode: Mode) -> turmoil::Result {
    let progress = Arc::new(Progress {
        quiet: Default::default(),
        after_quiet: SYMBOLS.iter().map(|_| Default::default()).collect(),
        bump: tokio::sync::watch::Sender::new(0),
    });
    let topics: Vec<Topic> = SYMBOLS
        .iter()
        .map(|s| Topic::new("ticker").symbol(*s))
        .collect();
    let (client, mut messages, consumers) = match mode {
        Mode::Spawned => {
            let (client, messages) = Client::connect(config(seed), Kalshi::new()).await?;
            let mut tasks = Vec::new();
            for (index, sub) in client.subscribe_many(topics).await?.into_iter().enumerate() {
                tasks.push(tokio::spawn(consume(sub?, index, Arc::clone(&progress))));
            }
            (client, messages, Consumers::Spawned(tasks))
        }
        Mode::Feed | Mode::PausingFeed => {
            let (handle, mut feed) = Feed::new(config(seed), Kalshi::new());
            let messages = feed.take_unsolicited().ok_or("unsolicited taken")?;
            let pauses = match mode {
                Mode::PausingFeed => consumer_pauses(seed, quiet_at),
                _ => Vec::new(),
            };
            let task = tokio::spawn(drive_feed(
                feed,
                Arc::clone(&progress),
                pauses,
                Arc::clone(&stage),
            ));
            let mut ids = Vec::new();
            for id in handle.subscribe_many(topics).await? {
                ids.push(id?);
            }
            (
                handle.client().clone(),
                messages,
                Consumers::Feed { task, ids },
            )
        }
    };
    let mut state = client.state();
    let watcher_stage = Arc::clone(&stage);
    tokio::spawn(async move {
        loop {
            let now = *state.borrow_and_update();
            {
                let mut st = lock(&watcher_stage);
                if now == ConnectionState::Backoff && st.client_state != Some(now) {
                    st.backoffs += 1;
                }
                st.client_state = Some(now);
            }
            if now == ConnectionState::Closed || state.changed().await.is_err() {
                break;
            }
        }
    });
    let mut events = client.events();
    let events_stage = Arc::clone(&stage);
    let events_task = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let cause = match &event {
                Event::Disconnected { cause } => Some(format!("disconnect: {}", kind_of(cause))),
                Event::AttemptFailed { error, .. } => Some(format!("attempt: {}", kind_of(error))),
                _ => None,
            };
            if let Some(cause) = cause {
                *lock(&events_stage).causes.entry(cause).or_default() += 1;
            }
            if let Some(line) = event_line(&event) {
                trace(&events_stage, line);
            }
            if matches!(event, Event::Closed { .. }) {
                break;
            }
        }
    });
    let inbound = tokio::spawn(async move {
        let mut n = 0u64;
        while messages.next().await.is_some() {
            n += 1;
        }
        n
    });

    // The driver injects faults until `quiet_at` (virtual time): a scheduled
    // instant of the scenario, not a guess at how long something takes.
    tokio::time::sleep(quiet_at.saturating_sub(turmoil::elapsed())).await;
    trace(&stage, "client: no more faults".into());
    progress
        .quiet
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let mut bumps = progress.bump.subscribe();
    let recovered = tokio::time::timeout(Duration::from_secs(30), async {
        while !progress.all_at_least(3) {
            if bumps.changed().await.is_err() {
                break;
            }
        }
    })
    .await
    .is_ok();
    trace(&stage, format!("client: recovered={recovered}"));
    client.close().await?;
    let mut problems = Vec::new();
    let reports = match consumers {
        Consumers::Spawned(tasks) => {
            let mut reports = Vec::new();
            for task in tasks {
                reports.push(task.await?);
            }
            reports
        }
        Consumers::Feed { task, ids } => {
            let fed = task.await?;
            problems.extend(check_feed(&fed, &ids));
            fed.reports
        }
    };
    events_task.await?;
    let unsolicited = inbound.await?;
    let stats = client.stats();
    let stage_now = lock(&stage);
    if !recovered {
        problems.push("not every stream flowed again after the last fault".to_owned());
    }
    if unsolicited != 0 {
        problems.push(format!("{unsolicited} unsolicited frames"));
    }
    for r in &reports {
        if !r.violations.is_empty() || !r.errors.is_empty() {
            problems.push(format!("{}: {:?} {:?}", r.symbol, r.violations, r.errors));
        }
        if r.data_after_quiet < 3 {
            problems.push(format!(
                "{}: {} frames after the last fault",
                r.symbol, r.data_after_quiet
            ));
        }
        if r.routed != r.delivered + r.dropped {
            problems.push(format!(
                "{}: routed {} != delivered {} + dropped {}",
                r.symbol, r.routed, r.delivered, r.dropped
            ));
        }
    }
    if !stats.is_balanced() {
        problems.push(format!("unbalanced {stats:?}"));
    }
    let gaps: u64 = reports.iter().map(|r| r.gaps).sum();
    if gaps != stats.gaps {
        problems.push(format!("{gaps} gap signals, {} gaps counted", stats.gaps));
    }
    problems.extend(check_ops(&stage_now.ops));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

/// The feed's own promises: each symbol's items all came under the one client
/// id its subscribe returned (re-mapped across every reconnect), nothing came
/// for a topic it does not hold, and its counters are exact: every routed
/// frame was yielded or dropped (none left queued at the end), and what was
/// yielded is what the checkers counted.
fn check_feed(fed: &FeedReport, ids: &[ClientId]) -> Vec<String> {
    let mut problems = Vec::new();
    for ((symbol, seen), id) in SYMBOLS.iter().zip(&fed.ids).zip(ids) {
        if seen.iter().any(|s| s != id) {
            problems.push(format!(
                "{symbol}: items under {seen:?}, subscribed as {id}"
            ));
        }
    }
    if !fed.strays.is_empty() {
        problems.push(format!("items of no subscription: {:?}", fed.strays));
    }
    let s = fed.stats;
    let data: u64 = fed.reports.iter().map(|r| r.data).sum();
    if s.routed != s.delivered + s.dropped + s.queued || s.queued != 0 || s.delivered != data {
        problems.push(format!("feed accounting {s:?}, {data} data items yielded"));
    }
    problems
}

/// Per connection: each live subscription subscribed once (a second time only
/// after an unsubscribe: the resync after a gap), first subscribes in creation
/// order, and the last connection carries them all.
fn check_ops(ops: &[(u64, Op)]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut by_conn: BTreeMap<u64, Vec<&Op>> = BTreeMap::new();
    for (conn, op) in ops {
        by_conn.entry(*conn).or_default().push(op);
    }
    let last = by_conn.keys().max().copied();
    for (conn, ops) in &by_conn {
        let mut live = HashSet::new();
        let mut first = Vec::new();
        for op in ops {
            match op {
                Op::Subscribe(s) => {
                    if !live.insert(s.clone()) {
                        problems.push(format!("conn {conn}: {s} subscribed twice"));
                    }
                    if !first.contains(s) {
                        first.push(s.clone());
                    }
                }
                Op::Unsubscribe(s) => {
                    if !live.remove(s) {
                        problems.push(format!("conn {conn}: {s} unsubscribed while not live"));
                    }
                }
            }
        }
        if first
            .iter()
            .map(String::as_str)
            .ne(SYMBOLS[..first.len()].iter().copied())
        {
            problems.push(format!("conn {conn}: replay order {first:?}"));
        }
        if Some(*conn) == last && first.len() != SYMBOLS.len() {
            problems.push(format!("last conn {conn} carries only {first:?}"));
        }
    }
    problems
}

// ---- the driver: a fault schedule drawn from the seed ---------------------

#[derive(Debug, Clone, Copy)]
enum SimFault {
    /// Client and server cannot exchange a packet for this long.
    Partition(Duration),
    /// The connection is dropped and the next n handshakes are refused mid-way.
    HandshakeDrops(u32),
    /// The connection is dropped and the next n handshakes are never answered.
    HandshakeStalls(u32),
    /// The connection is dropped; as soon as the client backs off, a partition.
    DropDuringBackoff(Duration),
    /// The connection is dropped; the next one drops after k replayed subscribes.
    DropDuringReplay(usize),
    /// The server stops sending data but answers pings: the idle timeout.
    SilentPeer,
    /// The server sends a close frame with this (non-permanent) code.
    CloseFrame(u16),
    /// The server crashes and restarts after this long.
    Restart(Duration),
    /// Every packet is held this long, then delivered.
    LatencySpike(Duration),
    /// One subscription's sequence jumps by n.
    SeqGap(usize, u64),
}

fn draw(rng: &mut StdRng) -> SimFault {
    let ms = |rng: &mut StdRng, lo: u64, hi: u64| Duration::from_millis(rng.random_range(lo..hi));
    match rng.random_range(0..10u8) {
        0 => SimFault::Partition(ms(rng, 300, 5_000)),
        1 => SimFault::HandshakeDrops(rng.random_range(1..4)),
        2 => SimFault::HandshakeStalls(rng.random_range(1..3)),
        3 => SimFault::DropDuringBackoff(ms(rng, 200, 3_000)),
        4 => SimFault::DropDuringReplay(rng.random_range(1..SYMBOLS.len())),
        5 => SimFault::SilentPeer,
        6 => SimFault::CloseFrame([1000, 1001, 1011, 1012, 1013][rng.random_range(0..5)]),
        7 => SimFault::Restart(ms(rng, 100, 3_000)),
        8 => SimFault::LatencySpike(ms(rng, 100, 2_500)),
        _ => SimFault::SeqGap(rng.random_range(0..SYMBOLS.len()), rng.random_range(1..10)),
    }
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Partition,
    Repair,
    Hold,
    Release,
    Crash,
    Bounce,
    Kick,
    DropHandshakes(u32),
    StallHandshakes(u32),
    DropAfterSubscribes(usize),
    Silent,
    Close(u16),
    Skip(usize, u64),
    /// Partition as soon as the client enters Backoff (repair after the duration).
    PartitionOnBackoff(Duration),
}

struct Plan {
    faults: Vec<(Duration, SimFault)>,
    actions: Vec<(Duration, Action)>,
    quiet_at: Duration,
}

fn plan(seed: u64) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5151_5151);
    let mut faults = Vec::new();
    let mut actions = Vec::new();
    let mut t = FIRST_FAULT_AT;
    for _ in 0..FAULTS_PER_SEED {
        let fault = draw(&mut rng);
        faults.push((t, fault));
        match fault {
            SimFault::Partition(d) => {
                actions.push((t, Action::Partition));
                actions.push((t + d, Action::Repair));
                t += d;
            }
            SimFault::HandshakeDrops(n) => {
                actions.push((t, Action::DropHandshakes(n)));
                actions.push((t, Action::Kick));
            }
            SimFault::HandshakeStalls(n) => {
                actions.push((t, Action::StallHandshakes(n)));
                actions.push((t, Action::Kick));
                t += Duration::from_secs(u64::from(n));
            }
            SimFault::DropDuringBackoff(d) => {
                actions.push((t, Action::Kick));
                actions.push((t, Action::PartitionOnBackoff(d)));
                t += d + Duration::from_secs(1);
            }
            SimFault::DropDuringReplay(k) => {
                actions.push((t, Action::DropAfterSubscribes(k)));
                actions.push((t, Action::Kick));
            }
            SimFault::SilentPeer => {
                actions.push((t, Action::Silent));
                t += Duration::from_secs(3);
            }
            SimFault::CloseFrame(code) => actions.push((t, Action::Close(code))),
            SimFault::Restart(down) => {
                actions.push((t, Action::Crash));
                actions.push((t + down, Action::Bounce));
                t += down;
            }
            SimFault::LatencySpike(d) => {
                actions.push((t, Action::Hold));
                actions.push((t + d, Action::Release));
                t += d;
            }
            SimFault::SeqGap(i, n) => actions.push((t, Action::Skip(i, n))),
        }
        t += Duration::from_millis(rng.random_range(1_500..4_000));
    }
    Plan {
        faults,
        actions,
        quiet_at: t,
    }
}

struct Outcome {
    mode: Mode,
    result: Result<(), String>,
    trace: Vec<String>,
    causes: BTreeMap<String, u64>,
    faults: Vec<(Duration, SimFault)>,
}

/// Runs one seed to the end; the result is the client host's verdict.
fn run_seed(seed: u64, mode: Mode) -> Outcome {
    let stage: Shared = Arc::default();
    let plan = plan(seed);
    let mut sim = turmoil::Builder::new()
        .simulation_duration(plan.quiet_at + Duration::from_secs(60))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(20))
        .rng_seed(seed)
        .tick_duration(Duration::from_millis(5))
        .build();
    let host_stage = Arc::clone(&stage);
    sim.host(SERVER, move || exchange_host(Arc::clone(&host_stage)));
    sim.client(
        CLIENT,
        client_host(seed, Arc::clone(&stage), plan.quiet_at, mode),
    );

    let mut actions = plan.actions.clone();
    actions.reverse(); // pop from the end in time order
    let mut armed: Option<(u64, Duration, Duration)> = None;
    let mut repairs: Vec<Duration> = Vec::new();
    let result = loop {
        let now = sim.elapsed();
        while actions.last().is_some_and(|(at, _)| *at <= now) {
            let (_, action) = actions.pop().expect("due action");
            trace_driver(&stage, now, action);
            let mut st = lock(&stage);
            match action {
                Action::Partition => sim.partition(CLIENT, SERVER),
                Action::Repair => sim.repair(CLIENT, SERVER),
                Action::Hold => sim.hold(CLIENT, SERVER),
                Action::Release => sim.release(CLIENT, SERVER),
                Action::Crash => {
                    drop(st);
                    sim.crash(SERVER);
                    continue;
                }
                Action::Bounce => {
                    drop(st);
                    sim.bounce(SERVER);
                    continue;
                }
                Action::Kick => st.kick += 1,
                Action::DropHandshakes(n) => st.drop_handshakes = n,
                Action::StallHandshakes(n) => st.stall_handshakes = n,
                Action::DropAfterSubscribes(k) => st.drop_after_subscribes = Some(k),
                Action::Silent => st.silent += 1,
                Action::Close(code) => st.close = (st.close.0 + 1, code),
                Action::Skip(i, n) => st.skip = (st.skip.0 + 1, i, n),
                Action::PartitionOnBackoff(d) => {
                    armed = Some((st.backoffs, d, now + Duration::from_secs(1)))
                }
            }
        }
        if let Some((backoffs, d, give_up_at)) = armed {
            let seen = lock(&stage).backoffs;
            if seen > backoffs {
                trace_line(&stage, now, "driver: client backing off: partition".into());
                sim.partition(CLIENT, SERVER);
                repairs.push(now + d);
                armed = None;
            } else if now >= give_up_at {
                trace_line(&stage, now, "driver: no backoff seen".into());
                armed = None;
            }
        }
        if repairs.first().is_some_and(|at| *at <= now) {
            repairs.remove(0);
            trace_line(&stage, now, "driver: repair".into());
            sim.repair(CLIENT, SERVER);
        }
        match sim.step() {
            Ok(true) => break Ok(()),
            Ok(false) => {}
            Err(error) => break Err(error.to_string()),
        }
    };
    let trace = std::mem::take(&mut lock(&stage).trace);
    let causes = std::mem::take(&mut lock(&stage).causes);
    Outcome {
        mode,
        result,
        trace,
        causes,
        faults: plan.faults,
    }
}

fn trace_line(stage: &Shared, at: Duration, line: String) {
    lock(stage)
        .trace
        .push(format!("{:>6}ms {line}", at.as_millis()));
}

fn trace_driver(stage: &Shared, at: Duration, action: Action) {
    trace_line(stage, at, format!("driver: {action:?}"));
}

/// The seeds to run: `SIM_SEED` alone, else 0..`count_var` (or 0..`default`).
fn seeds(count_var: &str, default: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|v| v.parse().ok()) {
        return vec![seed];
    }
    let count = std::env::var(count_var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    (0..count).collect()
}

fn report(seed: u64, outcome: &Outcome) -> String {
    let tail: Vec<&String> = outcome.trace.iter().rev().take(60).rev().collect();
    format!(
        "seed {seed} ({:?} mode) failed: {}\nfaults: {:?}\ntrace tail:\n{}\nreplay: SIM_SEED={seed} cargo test --test it simulation:: \
         (tick for tick: with RUSTFLAGS=\"--cfg tokio_unstable\")",
        outcome.mode,
        outcome.result.as_ref().err().map_or("", String::as_str),
        outcome.faults,
        tail.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("\n")
    )
}

/// Trace lines that show a fault took effect (not just that it was scheduled).
const EFFECTS: [&str; 8] = [
    "client backing off: partition",
    "dropped during the replay",
    "dropped before the handshake",
    "handshake never answered",
    ": silent",
    "driver: Crash",
    "driver: Hold",
    "client gap",
];

#[test]
fn many_seeds_of_faults_in_simulated_time() {
    many_seeds(Mode::Spawned, &seeds("SIM_SEEDS", 40));
}

/// The same seeds' faults with the consumer driving a [`Feed`]: one task
/// polls it (so the socket is read, pings answered, timers fired and
/// reconnects made in that task), subscribe and close come from another.
/// Same checks, plus the feed's own (`check_feed`): each symbol's items come
/// under its one client id, and the feed's counters are exact.
///
/// Default: the first `FEED_SEEDS` of the spawned test's 40 seeds (`SIM_FEED_SEEDS=K`
/// runs 0..K; `SIM_SEED=N` one seed in both tests). Why that many: see `FEED_SEEDS`.
#[test]
fn many_seeds_of_faults_in_simulated_time_through_the_feed() {
    many_seeds(Mode::Feed, &seeds("SIM_FEED_SEEDS", FEED_SEEDS));
}

/// The feed's consumer also stops polling three times per seed, from 300 ms
/// to 4 s (`consumer_pauses`), among the same faults: nothing is lost
/// silently and every check holds, whether a pause ends in a ping or idle
/// timeout and a reconnect or in just reading what the socket held. 10 seeds
/// (`SIM_PAUSE_SEEDS=K`): the scenario-coverage assertions need 20 seeds, so
/// this test asserts the checks, and that at least one pause was followed by
/// a disconnect and one was not (`pause_outcomes`, printed).
#[test]
fn a_feed_consumer_that_pauses_loses_nothing_silently() {
    many_seeds(Mode::PausingFeed, &seeds("SIM_PAUSE_SEEDS", 10));
}

/// Seeds the feed runs by default. Every fault kind and every cause the
/// spawned test asserts (`EFFECTS` and the causes list, checked from 20
/// seeds up) already shows up within the first 20 seeds, and a seed costs
/// about as much CPU in either mode; 20 keeps the added test time at half of
/// the spawned test's while every scenario is asserted to have happened
/// against the feed too. `SIM_FEED_SEEDS=40` (or more) for a longer run.
const FEED_SEEDS: u64 = 20;

/// Pauses the consumer ended (from the trace), and how many of them were
/// followed by a disconnect within 100 ms of virtual time of polling again
/// (the deadlines missed during the pause fire on that first poll).
fn pause_outcomes(trace: &[String]) -> (u64, u64) {
    let at =
        |line: &str| -> Option<u64> { line.trim_start().split("ms ").next()?.trim().parse().ok() };
    let (mut pauses, mut disconnected) = (0, 0);
    for (i, line) in trace.iter().enumerate() {
        if !line.contains("client: consumer polls again") {
            continue;
        }
        pauses += 1;
        let Some(resumed) = at(line) else { continue };
        let soon = trace[i + 1..]
            .iter()
            .take_while(|l| at(l).is_some_and(|t| t <= resumed + 100))
            .any(|l| l.contains("client disconnected"));
        if soon {
            disconnected += 1;
        }
    }
    (pauses, disconnected)
}

fn many_seeds(mode: Mode, seeds: &[u64]) {
    let mut pauses = (0, 0);
    let mut failures = Vec::new();
    let mut seen: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut causes: BTreeMap<String, u64> = BTreeMap::new();
    let mut effects: BTreeMap<&'static str, u64> = BTreeMap::new();
    for &seed in seeds {
        let outcome = run_seed(seed, mode);
        let (ended, disconnected) = pause_outcomes(&outcome.trace);
        pauses = (pauses.0 + ended, pauses.1 + disconnected);
        for (cause, n) in &outcome.causes {
            *causes.entry(cause.clone()).or_default() += n;
        }
        for line in &outcome.trace {
            for effect in EFFECTS {
                if line.contains(effect) {
                    *effects.entry(effect).or_default() += 1;
                }
            }
        }
        for (_, fault) in &outcome.faults {
            let name = match fault {
                SimFault::Partition(_) => "partition",
                SimFault::HandshakeDrops(_) => "handshake drops",
                SimFault::HandshakeStalls(_) => "handshake stalls",
                SimFault::DropDuringBackoff(_) => "drop during backoff",
                SimFault::DropDuringReplay(_) => "drop during replay",
                SimFault::SilentPeer => "silent peer",
                SimFault::CloseFrame(_) => "close frame",
                SimFault::Restart(_) => "server restart",
                SimFault::LatencySpike(_) => "latency spike",
                SimFault::SeqGap(..) => "sequence gap",
            };
            *seen.entry(name).or_default() += 1;
        }
        if outcome.result.is_err() {
            failures.push(report(seed, &outcome));
        }
    }
    eprintln!(
        "simulation ({mode:?}): {} seeds; faults injected by kind {seen:?}",
        seeds.len()
    );
    eprintln!("simulation ({mode:?}): effects {effects:?}");
    eprintln!("simulation ({mode:?}): what the client saw {causes:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    if mode == Mode::PausingFeed {
        eprintln!(
            "simulation ({mode:?}): {} consumer pauses, {} followed by a disconnect",
            pauses.0, pauses.1
        );
        if seeds.len() >= 10 {
            assert!(
                pauses.1 > 0 && pauses.1 < pauses.0,
                "pauses should end both ways: {pauses:?}"
            );
        }
    }
    if seeds.len() >= 20 {
        // Each scenario really happened somewhere in the default seed set.
        let causes_with = |prefix: &str| -> u64 {
            causes
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(_, n)| n)
                .sum()
        };
        for effect in EFFECTS {
            assert!(
                effects.get(effect).copied().unwrap_or(0) > 0,
                "never happened: {effect}"
            );
        }
        for cause in [
            "disconnect: idle timeout",
            "disconnect: ping timeout",
            "disconnect: close",
            "disconnect: lost (no close frame)",
            "attempt: connect timeout",
            "attempt: handshake failed",
        ] {
            assert!(
                causes_with(cause) > 0,
                "the client never saw {cause}: {causes:?}"
            );
        }
    }
}

/// Whether the tokio runtimes' RNG is seeded too. Turmoil seeds each host's
/// runtime from its own seed only under `--cfg tokio_unstable`; without it,
/// `tokio::select!` (the library's session loop is an unbiased select) picks
/// among ready branches at random, so two events due in the same tick may run
/// in either order and the exact interleaving can differ between runs.
#[allow(unexpected_cfgs)]
const RUNTIME_RNG_SEEDED: bool = cfg!(tokio_unstable);

#[test]
fn a_seed_replays_to_the_same_trace() {
    replays(Mode::Spawned);
}

/// The replay check with a feed: the feed adds no randomness of its own (it
/// polls in a fixed order), so a seed replays as in the spawned mode.
#[test]
fn a_seed_replays_to_the_same_trace_through_the_feed() {
    replays(Mode::Feed);
}

fn replays(mode: Mode) {
    let count = std::env::var("SIM_REPLAY_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3u64);
    let mut equal = 0;
    for seed in (0..count).map(|i| 7 + i * 1000) {
        let first = run_seed(seed, mode);
        let second = run_seed(seed, mode);
        // Always: the same schedule of faults, and the same verdict.
        assert_eq!(
            format!("{:?}", first.faults),
            format!("{:?}", second.faults),
            "seed {seed}"
        );
        assert!(first.result.is_ok(), "{}", report(seed, &first));
        assert!(second.result.is_ok(), "{}", report(seed, &second));
        if first.trace == second.trace {
            equal += 1;
        }
        if RUNTIME_RNG_SEEDED {
            // Everything seeded: the very same run, event for event, tick for tick.
            assert_eq!(first.trace, second.trace, "seed {seed}");
        }
    }
    eprintln!(
        "simulation ({mode:?}): {equal}/{count} seeds replayed tick for tick \
         (runtime RNG seeded: {RUNTIME_RNG_SEEDED})"
    );
}
