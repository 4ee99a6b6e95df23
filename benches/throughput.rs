//! `cargo bench --bench throughput`: throughput, added latency, recovery time
//! and memory of resilient-ws against a raw tokio-tungstenite read loop, on one
//! machine in one run. `BENCH_QUICK=1` shortens every phase for CI smoke runs.
//!
//! Everything runs against a Kalshi-style WebSocket server on 127.0.0.1:
//!
//! - in this process, on its own thread and current-thread runtime, for the
//!   throughput, latency, recovery and stalled-consumer phases; bulk data is
//!   pre-encoded as WebSocket frames and written as one buffer, so the server
//!   is not the bottleneck;
//! - in a child process (this binary re-executed with `RESILIENT_WS_BENCH_SERVER=1`)
//!   for the idle-connection phase, so the server's sockets and buffers are not
//!   counted in the client's RSS.
//!
//! The client side runs on a multi-thread runtime with 2 workers. The baseline
//! (a) is one task reading the socket, deserializing `type`, `sid` and `seq`
//! into a borrowed struct, looking the sid up in a `HashMap` and counting; (b)
//! is resilient-ws with one consumer task per `Subscription`.
//!
//! The last line is machine-readable:
//! `bench: throughput_ratio_1=R throughput_ratio_100=R vs_routing_1=R vs_routing_100_set=R vs_framing_1=R
//! vs_framing_100_set=R vs_routing_min=R vs_framing_min=R p50_added_us=X p99_added_us=X recovery_median_ms=X
//! kib_per_idle_conn=X`: `vs_routing` is library / baseline (a), `vs_framing` library / a raw loop that
//! only reads frames (b); the minima cover 1 subscription and 100 read through one `SubscriptionSet`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use resilient_ws::{
    Backoff, Client, Config, Kalshi, Overflow, QueueOptions, Subscription, Topic, Update,
};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

// ---- heap accounting ------------------------------------------------------

/// Counts live heap bytes while [`TRACKING`] is on (a relaxed load otherwise),
/// so the memory phases can report heap growth next to RSS.
struct CountingAlloc;

static TRACKING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

fn track(delta: i64) {
    if TRACKING.load(Ordering::Relaxed) {
        let now = LIVE.fetch_add(delta, Ordering::Relaxed) + delta;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// wrapper only updates counters.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            track(layout.size() as i64);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            track(layout.size() as i64);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            track(new_size as i64 - layout.size() as i64);
        }
        new
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Starts counting heap growth from zero.
fn heap_track_start() {
    TRACKING.store(false, Ordering::SeqCst);
    LIVE.store(0, Ordering::SeqCst);
    PEAK.store(0, Ordering::SeqCst);
    TRACKING.store(true, Ordering::SeqCst);
}

/// Stops counting; returns (net growth, peak growth) in bytes.
fn heap_track_stop() -> (i64, i64) {
    TRACKING.store(false, Ordering::SeqCst);
    (LIVE.load(Ordering::SeqCst), PEAK.load(Ordering::SeqCst))
}

// ---- settings -------------------------------------------------------------

const SERVER_ROLE_ENV: &str = "RESILIENT_WS_BENCH_SERVER";

struct Settings {
    quick: bool,
    /// `BENCH_PHASES` (comma-separated: idle, stall, throughput, latency, recovery); all when unset.
    phases: Option<Vec<String>>,
    /// `BENCH_CLIENT_THREADS`: worker threads of the client runtime, 0 = current-thread. Default 2.
    client_threads: usize,
    /// Frames per throughput run.
    frames: u64,
    /// Repetitions of each throughput run (the median is reported).
    repeats: usize,
    latency_rate: u64,
    latency_secs: f64,
    drops: usize,
    idle_conns: usize,
    idle_subs: usize,
    stall_frames: u64,
    stall_capacity: usize,
}

impl Settings {
    fn runs(&self, phase: &str) -> bool {
        self.phases
            .as_ref()
            .is_none_or(|p| p.iter().any(|x| x == phase))
    }

    fn from_env() -> Self {
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let phases = std::env::var("BENCH_PHASES")
            .ok()
            .map(|v| v.split(',').map(|p| p.trim().to_owned()).collect());
        let client_threads = std::env::var("BENCH_CLIENT_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2);
        if quick {
            Settings {
                quick,
                phases,
                client_threads,
                frames: 100_000,
                repeats: 1,
                latency_rate: 20_000,
                latency_secs: 0.5,
                drops: 10,
                idle_conns: 100,
                idle_subs: 10,
                stall_frames: 100_000,
                stall_capacity: 1024,
            }
        } else {
            Settings {
                quick,
                phases,
                client_threads,
                frames: 1_000_000,
                repeats: 3,
                latency_rate: 20_000,
                latency_secs: 4.0,
                drops: 50,
                idle_conns: 1000,
                idle_subs: 10,
                stall_frames: 500_000,
                stall_capacity: 1024,
            }
        }
    }
}

/// The clock shared by the server's send timestamps and the consumers.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    base().elapsed().as_nanos() as u64
}

// ---- wire format ----------------------------------------------------------

fn ticker(i: usize) -> String {
    format!("KX-{i:03}")
}

/// One Kalshi-style ticker payload (about 120 bytes); `ts` comes last.
fn ticker_payload(out: &mut Vec<u8>, sid: u64, seq: u64, ts: u64) {
    let price = 40 + seq % 20;
    let _ = write!(
        out,
        r#"{{"type":"ticker","sid":{sid},"seq":{seq},"msg":{{"market_ticker":"KX-{:03}","price":{price},"yes_bid":{},"yes_ask":{},"ts":{ts}}}}}"#,
        sid.saturating_sub(1),
        price - 1,
        price + 1,
    );
}

/// Appends an unmasked (server-to-client) WebSocket text frame.
fn push_ws_text(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(0x81);
    let len = payload.len();
    if len < 126 {
        out.push(len as u8);
    } else if len <= u16::MAX as usize {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// `frames` ticker frames round-robin over sids `1..=subs`, each sid's `seq`
/// counting from 1, as one pre-encoded buffer. Returns it and the mean payload size.
fn build_stream(frames: u64, subs: u64) -> (Arc<Vec<u8>>, f64) {
    let mut out = Vec::with_capacity(frames as usize * 130);
    let mut payload = Vec::with_capacity(160);
    let mut payload_bytes = 0u64;
    for n in 0..frames {
        let sid = n % subs + 1;
        let seq = n / subs + 1;
        payload.clear();
        ticker_payload(&mut payload, sid, seq, 10_000_000_000 + n);
        payload_bytes += payload.len() as u64;
        push_ws_text(&mut out, &payload);
    }
    (Arc::new(out), payload_bytes as f64 / frames as f64)
}

/// The routing fields the baseline reads, as the library's adapter does.
#[derive(Deserialize)]
struct Routing<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default)]
    sid: Option<u64>,
    #[serde(default)]
    seq: Option<u64>,
}

/// The send timestamp: the digits after the last `"ts":`.
fn extract_ts(text: &str) -> Option<u64> {
    let at = text.rfind("\"ts\":")? + 5;
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    text[at..at + digits].parse().ok()
}

// ---- the server -----------------------------------------------------------

enum ConnCmd {
    /// Write pre-encoded frames as one buffer.
    Blast {
        bytes: Arc<Vec<u8>>,
        done: oneshot::Sender<()>,
    },
    /// `count` frames on `sid`, one every `interval`, each stamped right before its write.
    Paced {
        count: u64,
        interval: Duration,
        sid: u64,
        done: oneshot::Sender<()>,
    },
    /// TCP abort (zero linger, then drop); replies with the instant just before the drop.
    Abort { done: oneshot::Sender<Instant> },
}

#[derive(Clone)]
struct ConnHandle {
    tx: mpsc::UnboundedSender<ConnCmd>,
    subs: Arc<AtomicUsize>,
}

impl ConnHandle {
    fn send(&self, cmd: ConnCmd) {
        let _ = self.tx.send(cmd);
    }

    fn blast(&self, bytes: Arc<Vec<u8>>) -> oneshot::Receiver<()> {
        let (done, rx) = oneshot::channel();
        self.send(ConnCmd::Blast { bytes, done });
        rx
    }

    fn paced(&self, count: u64, interval: Duration, sid: u64) -> oneshot::Receiver<()> {
        let (done, rx) = oneshot::channel();
        self.send(ConnCmd::Paced {
            count,
            interval,
            sid,
            done,
        });
        rx
    }

    async fn abort(&self) -> Option<Instant> {
        let (done, rx) = oneshot::channel();
        self.send(ConnCmd::Abort { done });
        rx.await.ok()
    }
}

#[derive(Default)]
struct ServerShared {
    /// Send one data frame (seq 1) right after each subscribe ack.
    data_on_ack: AtomicBool,
    next_conn: AtomicU64,
    conns: Mutex<Vec<(u64, ConnHandle)>>,
}

/// The in-process server: its own thread and current-thread runtime.
struct Server {
    port: u16,
    shared: Arc<ServerShared>,
}

impl Server {
    fn start() -> Server {
        let shared = Arc::new(ServerShared::default());
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let for_thread = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("server runtime");
                rt.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                    let _ = port_tx.send(listener.local_addr().expect("addr").port());
                    accept_loop(listener, for_thread).await;
                });
            })
            .expect("server thread");
        let port = port_rx.recv().expect("server port");
        Server { port, shared }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }

    /// The newest connection once it holds at least `subs` acknowledged subscriptions.
    async fn conn_with(&self, subs: usize) -> ConnHandle {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let newest = lock(&self.shared.conns).last().map(|(_, h)| h.clone());
            if let Some(handle) = newest {
                if handle.subs.load(Ordering::SeqCst) >= subs {
                    return handle;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the server never saw {subs} subscriptions"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn ws_config() -> WebSocketConfig {
    // The library's defaults for message and frame size.
    WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(4 << 20))
}

async fn accept_loop(listener: TcpListener, shared: Arc<ServerShared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_conn(stream, Arc::clone(&shared)));
    }
}

enum Step {
    Inbound(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Cmd(Option<ConnCmd>),
}

async fn serve_conn(stream: TcpStream, shared: Arc<ServerShared>) {
    let _ = stream.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(ws_config())).await
    else {
        return;
    };
    let id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let subs = Arc::new(AtomicUsize::new(0));
    lock(&shared.conns).push((
        id,
        ConnHandle {
            tx,
            subs: Arc::clone(&subs),
        },
    ));
    let mut next_sid = 1u64;
    loop {
        let step = tokio::select! {
            message = ws.next() => Step::Inbound(message),
            cmd = rx.recv() => Step::Cmd(cmd),
        };
        match step {
            Step::Inbound(Some(Ok(Message::Text(text)))) => {
                let Ok(request) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
                    continue;
                };
                let req_id = request["id"].as_u64().unwrap_or(0);
                match request["cmd"].as_str() {
                    Some("subscribe") => {
                        let sid = next_sid;
                        next_sid += 1;
                        let ack = format!(
                            r#"{{"id":{req_id},"type":"subscribed","msg":{{"channel":"ticker","sid":{sid}}}}}"#
                        );
                        if ws.send(Message::text(ack)).await.is_err() {
                            break;
                        }
                        if shared.data_on_ack.load(Ordering::SeqCst) {
                            let mut payload = Vec::new();
                            ticker_payload(&mut payload, sid, 1, now_ns());
                            let text = String::from_utf8(payload).unwrap_or_default();
                            if ws.send(Message::text(text)).await.is_err() {
                                break;
                            }
                        }
                        subs.fetch_add(1, Ordering::SeqCst);
                    }
                    Some("unsubscribe") => {
                        let sid = request["params"]["sids"][0].as_u64().unwrap_or(0);
                        let reply = format!(
                            r#"{{"id":{req_id},"sid":{sid},"seq":0,"type":"unsubscribed"}}"#
                        );
                        if ws.send(Message::text(reply)).await.is_err() {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            Step::Inbound(Some(Ok(Message::Close(_)))) => {
                // Complete the close handshake: tungstenite queued the reply.
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.flush()).await;
                break;
            }
            Step::Inbound(Some(Err(_))) | Step::Inbound(None) => break,
            Step::Inbound(Some(Ok(_))) => {}
            Step::Cmd(None) => break,
            Step::Cmd(Some(ConnCmd::Blast { bytes, done })) => {
                // Written raw after the handshake; tungstenite's own write buffer is empty.
                let tcp = ws.get_mut();
                let interrupted = tokio::select! {
                    r = tcp.write_all(&bytes) => if r.is_ok() { None } else { Some(None) },
                    cmd = rx.recv() => Some(cmd),
                };
                match interrupted {
                    None => {}
                    Some(Some(ConnCmd::Abort { done })) => {
                        let _ = ws.get_ref().set_zero_linger();
                        let _ = done.send(Instant::now());
                        break;
                    }
                    Some(_) => break,
                }
                let _ = ws.get_mut().flush().await;
                let _ = done.send(());
            }
            Step::Cmd(Some(ConnCmd::Paced {
                count,
                interval,
                sid,
                done,
            })) => {
                let tcp = ws.get_mut();
                let start = Instant::now();
                let mut frame = Vec::with_capacity(192);
                let mut payload = Vec::with_capacity(160);
                let mut ok = true;
                for n in 0..count {
                    let due = start + interval.mul_f64(n as f64);
                    let now = Instant::now();
                    if due > now {
                        // This thread serves nothing else while pacing.
                        std::thread::sleep(due - now);
                    }
                    payload.clear();
                    frame.clear();
                    ticker_payload(&mut payload, sid, n + 1, now_ns());
                    push_ws_text(&mut frame, &payload);
                    if tcp.write_all(&frame).await.is_err() {
                        ok = false;
                        break;
                    }
                }
                let _ = done.send(());
                if !ok {
                    break;
                }
            }
            Step::Cmd(Some(ConnCmd::Abort { done })) => {
                let _ = ws.get_ref().set_zero_linger();
                let at = Instant::now();
                drop(ws);
                let _ = done.send(at);
                lock(&shared.conns).retain(|(c, _)| *c != id);
                return;
            }
        }
    }
    lock(&shared.conns).retain(|(c, _)| *c != id);
}

/// The child-process server for the idle-connection phase: prints its port,
/// serves until stdin closes (the parent exited or is done).
fn child_server_main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("port {}", listener.local_addr().expect("addr").port());
        let _ = std::io::stdout().flush();
        tokio::spawn(accept_loop(listener, Arc::new(ServerShared::default())));
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await;
    });
}

struct ChildServer {
    child: Child,
    port: u16,
}

impl ChildServer {
    fn start() -> std::io::Result<ChildServer> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(SERVER_ROLE_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad child output {line:?}")))?;
        Ok(ChildServer { child, port })
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

// ---- measurements helpers -------------------------------------------------

/// A field of /proc/self/status in KiB (VmRSS, VmHWM).
fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    proc_status_kib("VmRSS")
}

/// Resets VmHWM to the current RSS; false when the kernel refuses.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// User + system CPU time of the whole process (all threads, server included).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is field 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // rest starts at field 3 (state), so field n is index n - 3.
    let total = ticks(14 - 3) + ticks(15 - 3);
    Duration::from_millis(total * 10) // USER_HZ is 100 on Linux
}

fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median_f64(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

fn config(url: &str) -> Config {
    Config::builder(url)
        .backoff(Backoff::immediate().max_attempts(None))
        // 100 subscribes at once instead of 2 s of pacing at the default 50/s.
        .rate_limit(1000, Duration::from_secs(1))
        .build()
        .expect("valid config")
}

fn topics(n: usize) -> Vec<Topic> {
    (0..n)
        .map(|i| Topic::new("ticker").symbol(ticker(i)))
        .collect()
}

async fn subscribe_all(client: &Client, n: usize, options: QueueOptions) -> Vec<Subscription> {
    let mut subs = Vec::with_capacity(n);
    if options == QueueOptions::default() {
        for sub in client
            .subscribe_many(topics(n))
            .await
            .expect("subscribe_many")
        {
            subs.push(sub.expect("subscribed"));
        }
    } else {
        for topic in topics(n) {
            subs.push(
                client
                    .subscribe_with(topic, options)
                    .await
                    .expect("subscribed"),
            );
        }
    }
    subs
}

/// The next data frame of a subscription, skipping signals.
async fn next_data(sub: &mut Subscription) -> Option<resilient_ws::Frame> {
    loop {
        match sub.next().await? {
            Ok(Update::Data(frame)) => return Some(frame),
            Ok(_) => continue,
            Err(error) if error.is_retryable() => continue,
            Err(error) => panic!("subscription ended: {error}"),
        }
    }
}

type RawWs = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// The baseline's connection: subscribes like the Kalshi adapter and returns
/// the socket with the sid -> index map built from the acks.
async fn raw_connect(url: &str, n: usize) -> (RawWs, HashMap<u64, usize>) {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true)
        .await
        .expect("raw connect");
    for i in 0..n {
        let text = format!(
            r#"{{"id":{},"cmd":"subscribe","params":{{"channels":["ticker"],"market_tickers":["{}"]}}}}"#,
            i + 1,
            ticker(i)
        );
        ws.send(Message::text(text)).await.expect("raw subscribe");
    }
    let mut sids = HashMap::with_capacity(n);
    while sids.len() < n {
        let Some(Ok(Message::Text(text))) = ws.next().await else {
            panic!("raw: connection ended before the acks");
        };
        let ack: serde_json::Value = serde_json::from_str(text.as_str()).expect("ack json");
        if ack["type"] == "subscribed" {
            let idx = ack["id"].as_u64().expect("ack id") as usize - 1;
            sids.insert(ack["msg"]["sid"].as_u64().expect("ack sid"), idx);
        }
    }
    (ws, sids)
}

// ---- throughput -----------------------------------------------------------

struct Run {
    /// Frames delivered to the consumers per second.
    msgs_per_sec: f64,
    cpu_ns_per_msg: f64,
    /// Frames the library's queues dropped (overflow).
    dropped: u64,
}

async fn throughput_raw(server: &Server, subs: usize, bytes: &Arc<Vec<u8>>, frames: u64) -> Run {
    let (mut ws, sids) = raw_connect(&server.url(), subs).await;
    let conn = server.conn_with(subs).await;
    let mut counts = vec![0u64; subs];
    let mut last_seq = vec![0u64; subs];
    let mut gaps = 0u64;
    let mut total = 0u64;
    let cpu0 = cpu_time();
    let start = Instant::now();
    let done = conn.blast(Arc::clone(bytes));
    while total < frames {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let Ok(routing) = serde_json::from_str::<Routing<'_>>(text.as_str()) else {
                    continue;
                };
                if routing.kind == "subscribed" {
                    continue;
                }
                if let Some(&idx) = routing.sid.and_then(|sid| sids.get(&sid)) {
                    counts[idx] += 1;
                    let seq = routing.seq.unwrap_or(0);
                    if seq != last_seq[idx] + 1 {
                        gaps += 1;
                    }
                    last_seq[idx] = seq;
                    total += 1;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("raw: stream ended early: {other:?}"),
        }
    }
    let elapsed = start.elapsed();
    let cpu = cpu_time() - cpu0;
    let _ = done.await;
    assert_eq!(gaps, 0, "raw baseline saw sequence gaps");
    assert_eq!(counts.iter().sum::<u64>(), frames);
    let _ = ws.close(None).await;
    Run {
        msgs_per_sec: frames as f64 / elapsed.as_secs_f64(),
        cpu_ns_per_msg: cpu.as_nanos() as f64 / frames as f64,
        dropped: 0,
    }
}

/// The framing limit (b): a raw tokio-tungstenite loop that only reads and
/// counts text frames, no parsing at all. What no WebSocket client can beat.
async fn throughput_framing(
    server: &Server,
    subs: usize,
    bytes: &Arc<Vec<u8>>,
    frames: u64,
) -> Run {
    let (mut ws, _sids) = raw_connect(&server.url(), subs).await;
    let conn = server.conn_with(subs).await;
    let mut total = 0u64;
    let cpu0 = cpu_time();
    let start = Instant::now();
    let done = conn.blast(Arc::clone(bytes));
    while total < frames {
        match ws.next().await {
            Some(Ok(Message::Text(_))) => total += 1,
            Some(Ok(_)) => {}
            other => panic!("framing: stream ended early: {other:?}"),
        }
    }
    let elapsed = start.elapsed();
    let cpu = cpu_time() - cpu0;
    let _ = done.await;
    let _ = ws.close(None).await;
    Run {
        msgs_per_sec: frames as f64 / elapsed.as_secs_f64(),
        cpu_ns_per_msg: cpu.as_nanos() as f64 / frames as f64,
        dropped: 0,
    }
}

/// How the library side consumes its subscriptions.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Consumers {
    /// One task reading every subscription through `futures::stream::select_all`,
    /// as the baseline's one loop reads every sid.
    Merged,
    /// One task per subscription.
    TaskEach,
    /// One task reading a `SubscriptionSet` (the library's merged stream).
    Set,
}

/// Counts data messages from `stream` until `expected` arrived or `stop` is
/// raised. No timer per wait (a timeout armed on every empty queue cost the
/// library side ~100 ns a message that the baseline's plain loop never pays);
/// `stop` only ends a consumer whose queue dropped frames, which never arrive.
async fn count_data<S>(stream: S, expected: u64, stop: watch::Receiver<bool>) -> (Instant, u64, S)
where
    S: futures::Stream<Item = Result<Update, resilient_ws::Error>> + Unpin,
{
    let mut stopped = Box::pin(async move {
        let mut stop = stop;
        let _ = stop.wait_for(|stop| *stop).await;
    });
    let mut stream = stream;
    let mut count = 0u64;
    while count < expected {
        let item = tokio::select! {
            biased;
            item = stream.next() => item,
            () = &mut stopped => break,
        };
        match item {
            Some(Ok(Update::Data(_))) => count += 1,
            Some(Ok(_)) => {}
            Some(Err(error)) if error.is_retryable() => {}
            Some(Err(error)) => panic!("subscription ended: {error}"),
            None => panic!("stream ended after {count} frames"),
        }
    }
    (Instant::now(), count, stream)
}

async fn throughput_lib(
    server: &Server,
    subs: usize,
    bytes: &Arc<Vec<u8>>,
    frames: u64,
    consumers: Consumers,
) -> Run {
    // Lossless like the raw loop: a full queue stops the socket (TCP
    // backpressure) instead of dropping, so a consumer that falls behind for a
    // moment slows the stream down rather than voiding the run.
    let config = Config::builder(server.url())
        .backoff(Backoff::immediate().max_attempts(None))
        .rate_limit(1000, Duration::from_secs(1))
        .overflow(Overflow::Block {
            timeout: Duration::from_secs(30),
        })
        .build()
        .expect("valid config");
    let (client, _messages) = Client::connect(config, Kalshi::new())
        .await
        .expect("connect");
    let subscriptions = subscribe_all(&client, subs, QueueOptions::default()).await;
    let conn = server.conn_with(subs).await;
    let per_sub = frames / subs as u64;
    let extra = (frames % subs as u64) as usize;
    let (stop_tx, stop_rx) = watch::channel(false);
    // Raises `stop` a second after every frame was routed, in case a queue
    // dropped some; normally the consumers finish long before.
    let watchdog = tokio::spawn({
        let client = client.clone();
        async move {
            while client.stats().queues.routed < frames {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = stop_tx.send(true);
        }
    });
    let cpu0 = cpu_time();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(subs);
    let mut merged = None;
    match consumers {
        Consumers::Set => {
            let mut set = client.subscribe_set(Vec::new()).await.expect("empty set");
            for sub in subscriptions {
                set.adopt(sub).expect("adopt");
            }
            merged = Some(tokio::spawn(async move {
                let (end, count, stream) =
                    count_data(set.map(|item| item.item), frames, stop_rx).await;
                drop(stream);
                (end, count, ())
            }));
        }
        Consumers::Merged => {
            merged = Some(tokio::spawn(async move {
                let (end, count, stream) =
                    count_data(futures::stream::select_all(subscriptions), frames, stop_rx).await;
                drop(stream);
                (end, count, ())
            }));
        }
        Consumers::TaskEach => {
            for (i, sub) in subscriptions.into_iter().enumerate() {
                let expected = per_sub + u64::from(i < extra);
                tasks.push(tokio::spawn(count_data(sub, expected, stop_rx.clone())));
            }
        }
    }
    let done = conn.blast(Arc::clone(bytes));
    let mut end = start;
    let mut delivered = 0u64;
    if let Some(task) = merged {
        let (finished, count, ()) = task.await.expect("consumer task");
        end = finished;
        delivered = count;
    }
    let mut keep = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (finished, count, sub) = task.await.expect("consumer task");
        end = end.max(finished);
        delivered += count;
        keep.push(sub);
    }
    let cpu = cpu_time() - cpu0;
    watchdog.abort();
    let _ = done.await;
    let stats = client.stats();
    assert_eq!(stats.gaps, 0, "library saw sequence gaps: {stats:?}");
    drop(keep);
    let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
    Run {
        msgs_per_sec: delivered as f64 / (end - start).as_secs_f64(),
        cpu_ns_per_msg: cpu.as_nanos() as f64 / frames as f64,
        dropped: stats.queues.dropped,
    }
}

struct ThroughputResult {
    raw: Vec<f64>,
    lib: Vec<f64>,
    framing: Vec<f64>,
    raw_cpu: Vec<f64>,
    lib_cpu: Vec<f64>,
    dropped: u64,
}

impl ThroughputResult {
    fn ratio(&self) -> f64 {
        median_f64(&self.lib) / median_f64(&self.raw)
    }

    /// Library over the framing limit (b); `None` when it was not measured.
    fn vs_framing(&self) -> Option<f64> {
        (!self.framing.is_empty()).then(|| median_f64(&self.lib) / median_f64(&self.framing))
    }
}

async fn throughput(
    server: &Server,
    settings: &Settings,
    subs: usize,
    consumers: Consumers,
) -> ThroughputResult {
    let (bytes, payload) = build_stream(settings.frames, subs as u64);
    println!(
        "  {} frames on {subs} subscription(s), mean payload {payload:.1} bytes, {:.1} MB on the wire",
        settings.frames,
        bytes.len() as f64 / 1e6
    );
    let mut result = ThroughputResult {
        raw: vec![],
        lib: vec![],
        framing: vec![],
        raw_cpu: vec![],
        lib_cpu: vec![],
        dropped: 0,
    };
    // For profiling one side: BENCH_CONSUMER=raw or lib.
    let only = std::env::var("BENCH_CONSUMER").unwrap_or_default();
    if !only.is_empty() {
        for _ in 0..settings.repeats {
            let run = if only == "raw" {
                throughput_raw(server, subs, &bytes, settings.frames).await
            } else if only == "framing" {
                throughput_framing(server, subs, &bytes, settings.frames).await
            } else {
                throughput_lib(server, subs, &bytes, settings.frames, consumers).await
            };
            println!(
                "  {only}: {:.0} msg/s, {} dropped",
                run.msgs_per_sec, run.dropped
            );
        }
        return result;
    }
    // Warm-up (not reported): page in the buffer, grow socket buffers.
    let warm = build_stream(settings.frames.min(100_000), subs as u64).0;
    let _ = throughput_raw(server, subs, &warm, settings.frames.min(100_000)).await;
    let _ = throughput_lib(server, subs, &warm, settings.frames.min(100_000), consumers).await;
    for rep in 0..settings.repeats {
        // Alternate the order so drift in background load hits both.
        let (raw, lib) = if rep % 2 == 0 {
            let raw = throughput_raw(server, subs, &bytes, settings.frames).await;
            let lib = throughput_lib(server, subs, &bytes, settings.frames, consumers).await;
            (raw, lib)
        } else {
            let lib = throughput_lib(server, subs, &bytes, settings.frames, consumers).await;
            let raw = throughput_raw(server, subs, &bytes, settings.frames).await;
            (raw, lib)
        };
        println!(
            "  run {}: raw {:>9.0} msg/s ({:>4.0} ns CPU/msg)   resilient-ws {:>9.0} msg/s ({:>4.0} ns CPU/msg, {} dropped)   ratio {:.3}",
            rep + 1,
            raw.msgs_per_sec,
            raw.cpu_ns_per_msg,
            lib.msgs_per_sec,
            lib.cpu_ns_per_msg,
            lib.dropped,
            lib.msgs_per_sec / raw.msgs_per_sec
        );
        let framing = throughput_framing(server, subs, &bytes, settings.frames).await;
        println!(
            "         framing limit (read only) {:>9.0} msg/s ({:>4.0} ns CPU/msg)   lib/framing {:.3}",
            framing.msgs_per_sec,
            framing.cpu_ns_per_msg,
            lib.msgs_per_sec / framing.msgs_per_sec
        );
        result.framing.push(framing.msgs_per_sec);
        result.dropped += lib.dropped;
        result.raw.push(raw.msgs_per_sec);
        result.lib.push(lib.msgs_per_sec);
        result.raw_cpu.push(raw.cpu_ns_per_msg);
        result.lib_cpu.push(lib.cpu_ns_per_msg);
    }
    result
}

// ---- latency --------------------------------------------------------------

struct Latency {
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
    samples: usize,
    rate: f64,
}

impl Latency {
    fn from_samples(mut samples: Vec<u64>, warmup: usize, elapsed: Duration) -> Latency {
        let sent = samples.len();
        let mut kept = samples.split_off(warmup.min(samples.len()));
        kept.sort_unstable();
        Latency {
            p50: percentile(&kept, 0.50),
            p99: percentile(&kept, 0.99),
            p999: percentile(&kept, 0.999),
            max: kept.last().copied().unwrap_or(0),
            samples: kept.len(),
            rate: sent as f64 / elapsed.as_secs_f64(),
        }
    }
}

async fn latency_raw(server: &Server, count: u64, interval: Duration) -> Latency {
    let (mut ws, sids) = raw_connect(&server.url(), 1).await;
    let conn = server.conn_with(1).await;
    let mut samples = Vec::with_capacity(count as usize);
    let mut counts = [0u64; 1];
    let start = Instant::now();
    let done = conn.paced(count, interval, 1);
    while (samples.len() as u64) < count {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let Ok(routing) = serde_json::from_str::<Routing<'_>>(text.as_str()) else {
                    continue;
                };
                if let Some(&idx) = routing.sid.and_then(|sid| sids.get(&sid)) {
                    counts[idx] += 1;
                    if let Some(ts) = extract_ts(text.as_str()) {
                        samples.push(now_ns().saturating_sub(ts));
                    }
                }
            }
            Some(Ok(_)) => {}
            other => panic!("raw: stream ended early: {other:?}"),
        }
    }
    let elapsed = start.elapsed();
    let _ = done.await;
    let _ = ws.close(None).await;
    Latency::from_samples(samples, (count / 10) as usize, elapsed)
}

async fn latency_lib(server: &Server, count: u64, interval: Duration) -> Latency {
    let (client, _messages) = Client::connect(config(&server.url()), Kalshi::new())
        .await
        .expect("connect");
    let mut sub = subscribe_all(&client, 1, QueueOptions::default())
        .await
        .pop()
        .expect("one subscription");
    let conn = server.conn_with(1).await;
    let consumer = tokio::spawn(async move {
        let mut samples = Vec::with_capacity(count as usize);
        while (samples.len() as u64) < count {
            let frame = next_data(&mut sub).await.expect("data");
            if let Some(ts) = frame.as_text().and_then(extract_ts) {
                samples.push(now_ns().saturating_sub(ts));
            }
        }
        samples
    });
    let start = Instant::now();
    let done = conn.paced(count, interval, 1);
    let samples = consumer.await.expect("consumer");
    let elapsed = start.elapsed();
    let _ = done.await;
    let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
    Latency::from_samples(samples, (count / 10) as usize, elapsed)
}

// ---- recovery -------------------------------------------------------------

async fn recovery(server: &Server, drops: usize, subs: usize) -> Vec<Duration> {
    server.shared.data_on_ack.store(true, Ordering::SeqCst);
    let (client, _messages) = Client::connect(config(&server.url()), Kalshi::new())
        .await
        .expect("connect");
    let mut subscriptions = subscribe_all(&client, subs, QueueOptions::default()).await;
    for sub in &mut subscriptions {
        next_data(sub).await.expect("initial data");
    }
    let mut times = Vec::with_capacity(drops);
    for round in 0..drops {
        let conn = server.conn_with(subs).await;
        let aborted_at = conn.abort().await.expect("abort");
        let firsts = futures::future::join_all(subscriptions.iter_mut().map(|sub| async move {
            tokio::time::timeout(Duration::from_secs(10), next_data(sub))
                .await
                .ok()
                .flatten()
                .map(|_| Instant::now())
        }))
        .await;
        let Some(last) = firsts
            .iter()
            .copied()
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().max())
        else {
            panic!("round {round}: a stream did not recover within 10 s");
        };
        times.push(last - aborted_at);
    }
    let stats = client.stats();
    assert_eq!(stats.reconnects as usize, drops, "{stats:?}");
    drop(subscriptions);
    let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
    server.shared.data_on_ack.store(false, Ordering::SeqCst);
    times
}

// ---- memory ---------------------------------------------------------------

struct IdleMemory {
    conns: usize,
    subs: usize,
    kib_per_conn: f64,
    heap_kib_per_conn: f64,
    rss_before: u64,
    rss_after: u64,
}

async fn idle_memory(settings: &Settings) -> std::io::Result<IdleMemory> {
    let mut conns = settings.idle_conns;
    if let Some(limit) = open_files_limit() {
        let fits = limit.saturating_sub(64) as usize;
        if fits < conns {
            println!("  note: open-files limit {limit} < {conns} + slack; measuring {fits} connections (raise with `ulimit -n 4096`)");
            conns = fits;
        }
    }
    let child = ChildServer::start()?;
    let url = format!("ws://127.0.0.1:{}/", child.port);
    let subs = settings.idle_subs;
    let topics_for = |c: usize| -> Vec<Topic> {
        (0..subs)
            .map(|j| Topic::new("ticker").symbol(format!("KX-IDLE-{c:04}-{j:02}")))
            .collect()
    };
    let open = |c: usize| {
        let url = url.clone();
        let topics = topics_for(c);
        async move {
            // The library's defaults throughout.
            let config = Config::builder(url).build().expect("valid config");
            let (client, messages) = Client::connect(config, Kalshi::new())
                .await
                .expect("connect");
            let subs: Vec<Subscription> = client
                .subscribe_many(topics)
                .await
                .expect("subscribe_many")
                .into_iter()
                .map(|s| s.expect("subscribed"))
                .collect();
            (client, messages, subs)
        }
    };
    // Warm-up: one client through its whole life, so one-time allocations
    // (runtime internals, lazy statics) are not counted per connection.
    {
        let (client, _m, _s) = open(usize::MAX / 2).await;
        let _ = client.close().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = rss_kib();
    heap_track_start();
    let clients: Vec<_> = futures::stream::iter(0..conns)
        .map(open)
        .buffer_unordered(32)
        .collect()
        .await;
    // Let every supervisor settle into its idle select loop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_kib();
    let (heap, _) = heap_track_stop();
    futures::stream::iter(clients)
        .for_each_concurrent(64, |(client, messages, subs)| async move {
            drop(subs);
            drop(messages);
            let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
        })
        .await;
    drop(child);
    Ok(IdleMemory {
        conns,
        subs,
        kib_per_conn: rss_after.saturating_sub(rss_before) as f64 / conns as f64,
        heap_kib_per_conn: heap as f64 / 1024.0 / conns as f64,
        rss_before,
        rss_after,
    })
}

struct Stalled {
    policy: &'static str,
    routed: u64,
    dropped: u64,
    queued: u64,
    rss_growth_kib: i64,
    peak_growth_kib: i64,
    heap_growth_kib: f64,
    heap_peak_kib: f64,
}

async fn stalled(
    server: &Server,
    settings: &Settings,
    bytes: &Arc<Vec<u8>>,
    policy: Overflow,
    name: &'static str,
) -> Stalled {
    let (client, _messages) = Client::connect(config(&server.url()), Kalshi::new())
        .await
        .expect("connect");
    let options = QueueOptions {
        capacity: Some(settings.stall_capacity),
        overflow: Some(policy),
    };
    let sub = subscribe_all(&client, 1, options)
        .await
        .pop()
        .expect("subscription");
    let conn = server.conn_with(1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rss_before = rss_kib();
    let peak_reset = reset_peak_rss();
    let mut peak_sampled = rss_before;
    heap_track_start();
    let done = conn.blast(Arc::clone(bytes));
    let blocking = matches!(policy, Overflow::Block { .. });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = (0u64, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        peak_sampled = peak_sampled.max(rss_kib());
        let routed = sub.stats().routed;
        if routed >= settings.stall_frames || Instant::now() > deadline {
            break;
        }
        if routed != last.0 {
            last = (routed, Instant::now());
        } else if blocking
            && routed >= settings.stall_capacity as u64
            && last.1.elapsed() > Duration::from_millis(500)
        {
            // Backpressure: the socket is no longer read and TCP has stopped the server.
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let rss_after = rss_kib();
    let (heap, heap_peak) = heap_track_stop();
    let peak = if peak_reset {
        proc_status_kib("VmHWM").max(peak_sampled)
    } else {
        peak_sampled
    };
    let stats = sub.stats();
    // Unblock and clean up: dropping the stream ends the subscription, the supervisor
    // reads on and the server's write completes.
    drop(sub);
    let _ = tokio::time::timeout(Duration::from_secs(10), done).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
    Stalled {
        policy: name,
        routed: stats.routed,
        dropped: stats.dropped,
        queued: stats.queued,
        rss_growth_kib: rss_after as i64 - rss_before as i64,
        peak_growth_kib: peak as i64 - rss_before as i64,
        heap_growth_kib: heap as f64 / 1024.0,
        heap_peak_kib: heap_peak as f64 / 1024.0,
    }
}

// ---- main -----------------------------------------------------------------

fn main() {
    if std::env::var_os(SERVER_ROLE_ENV).is_some() {
        child_server_main();
        return;
    }
    if std::env::var_os("BENCH_TRACE").is_some() {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::stderr)
            .init();
    }
    let settings = Settings::from_env();
    let _ = base();
    let rt = match settings.client_threads {
        0 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
    .expect("client runtime");
    // On a worker, not in `block_on`: a multi-thread runtime runs the
    // `block_on` future on this main thread, which readiness reaches only
    // through an extra unpark, and the raw baseline's loop runs right here.
    rt.block_on(async { tokio::spawn(run(settings)).await })
        .expect("benchmark task");
}

async fn run(settings: Settings) {
    let started = Instant::now();
    println!(
        "resilient-ws benchmark{} (client: tokio {}; server: in-process thread on 127.0.0.1)",
        if settings.quick { " [BENCH_QUICK]" } else { "" },
        match settings.client_threads {
            0 => "current-thread runtime".to_owned(),
            n => format!("multi-thread runtime, {n} workers"),
        }
    );

    // Memory first, while the allocator has not yet been churned by bulk phases.
    let mut idle = None;
    if settings.runs("idle") {
        println!("\n== memory: idle connections (server in a child process, library defaults) ==");
        match idle_memory(&settings).await {
            Ok(m) => {
                println!(
                    "  {} connections x {} subscriptions: RSS {} -> {} KiB: {:.1} KiB per connection (heap {:.1} KiB)",
                    m.conns, m.subs, m.rss_before, m.rss_after, m.kib_per_conn, m.heap_kib_per_conn
                );
                idle = Some(m);
            }
            Err(error) => println!("  skipped: could not start the child server: {error}"),
        }
    }

    let server = Server::start();

    if settings.runs("stall") {
        stall_phase(&server, &settings).await;
    }

    let (mut t1, mut t100, mut t100_set) = (None, None, None);
    if settings.runs("throughput") {
        // `BENCH_CASES=1,100,set,tasks` (all when unset) picks the runs, so a
        // callgrind profile can cover one case.
        let cases = std::env::var("BENCH_CASES").ok();
        let case = |name: &str| {
            cases
                .as_ref()
                .is_none_or(|c| c.split(',').any(|x| x == name))
        };
        let mut t100_tasks = None;
        if case("1") {
            println!("\n== throughput: 1 subscription ==");
            t1 = Some(throughput(&server, &settings, 1, Consumers::TaskEach).await);
        }
        if case("100") {
            println!("\n== throughput: 100 subscriptions, one consumer task (select_all) ==");
            t100 = Some(throughput(&server, &settings, 100, Consumers::Merged).await);
        }
        if case("set") {
            println!("\n== throughput: 100 subscriptions, one SubscriptionSet ==");
            t100_set = Some(throughput(&server, &settings, 100, Consumers::Set).await);
        }
        if case("tasks") {
            println!("\n== throughput: 100 subscriptions, one consumer task per subscription ==");
            t100_tasks = Some(throughput(&server, &settings, 100, Consumers::TaskEach).await);
        }
        for (label, t) in [
            ("1", &t1),
            ("100, one task", &t100),
            ("100, set", &t100_set),
            ("100, task each", &t100_tasks),
        ] {
            let Some(t) = t else { continue };
            println!(
                "  median ({label}): raw {:.0} msg/s, resilient-ws {:.0} msg/s, ratio {:.3} (runs {}; {} frames dropped in all)",
                median_f64(&t.raw),
                median_f64(&t.lib),
                t.ratio(),
                t.lib.len(),
                t.dropped
            );
        }
    }

    let (mut p50_added, mut p99_added) = (None, None);
    if settings.runs("latency") {
        let (p50, p99) = latency_phase(&server, &settings).await;
        p50_added = Some(p50);
        p99_added = Some(p99);
    }

    let mut recovery_median = None;
    if settings.runs("recovery") {
        println!(
            "\n== recovery: {} TCP aborts, 10 subscriptions, Backoff::immediate() ==",
            settings.drops
        );
        let mut times = recovery(&server, settings.drops, 10).await;
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let median = ms(times[times.len() / 2]);
        println!(
            "  abort -> first data on all 10 streams: median {:.2} ms  p90 {:.2} ms  max {:.2} ms  (min {:.2} ms)",
            median,
            ms(times[(times.len() * 9 / 10).min(times.len() - 1)]),
            ms(*times.last().expect("times")),
            ms(times[0])
        );
        recovery_median = Some(median);
    }

    println!("\n(total {:.0} s)", started.elapsed().as_secs_f64());
    let show = |v: Option<f64>, digits: usize| {
        v.map_or_else(|| "na".to_owned(), |v| format!("{v:.digits$}"))
    };
    // Ratios of the runs this line covers (1 subscription, and 100 read
    // through the merged SubscriptionSet), on this runtime and these frames.
    let covered = [&t1, &t100_set];
    let min = |f: &dyn Fn(&ThroughputResult) -> Option<f64>| {
        covered
            .iter()
            .filter_map(|t| t.as_ref().and_then(f))
            .reduce(f64::min)
    };
    let vs_routing_min = min(&|t| Some(t.ratio()));
    let vs_framing_min = min(&ThroughputResult::vs_framing);
    println!(
        "bench: throughput_ratio_1={} throughput_ratio_100={} vs_routing_1={} vs_routing_100_set={} vs_framing_1={} vs_framing_100_set={} vs_routing_min={} vs_framing_min={} p50_added_us={} p99_added_us={} recovery_median_ms={} kib_per_idle_conn={}",
        show(t1.as_ref().map(ThroughputResult::ratio), 3),
        show(t100.as_ref().map(ThroughputResult::ratio), 3),
        show(t1.as_ref().map(ThroughputResult::ratio), 3),
        show(t100_set.as_ref().map(ThroughputResult::ratio), 3),
        show(t1.as_ref().and_then(ThroughputResult::vs_framing), 3),
        show(t100_set.as_ref().and_then(ThroughputResult::vs_framing), 3),
        show(vs_routing_min, 3),
        show(vs_framing_min, 3),
        show(p50_added, 1),
        show(p99_added, 1),
        show(recovery_median, 2),
        show(idle.map(|m| m.kib_per_conn), 1),
    );
}

async fn stall_phase(server: &Server, settings: &Settings) {
    println!(
        "\n== memory: stalled consumer, capacity {} ==",
        settings.stall_capacity
    );
    let (bytes, payload) = build_stream(settings.stall_frames, 1);
    println!(
        "  {} frames ({:.1} MB, payload {payload:.0} B) to one subscription whose consumer never reads",
        settings.stall_frames,
        bytes.len() as f64 / 1e6
    );
    let policies = [
        (Overflow::DropOldest, "DropOldest"),
        (Overflow::DropNewest, "DropNewest"),
        (Overflow::Error, "Error"),
        (
            Overflow::Block {
                timeout: Duration::from_secs(60),
            },
            "Block",
        ),
    ];
    let mut worst_peak = 0i64;
    let mut worst_heap = 0f64;
    for (policy, name) in policies {
        let s = stalled(server, settings, &bytes, policy, name).await;
        println!(
            "  {:<10} routed {:>7} dropped {:>7} queued {:>5}  RSS +{:>6} KiB (peak +{:>6} KiB)  heap +{:>7.1} KiB (peak +{:>7.1} KiB)",
            s.policy, s.routed, s.dropped, s.queued, s.rss_growth_kib, s.peak_growth_kib, s.heap_growth_kib, s.heap_peak_kib
        );
        worst_peak = worst_peak.max(s.peak_growth_kib);
        worst_heap = worst_heap.max(s.heap_peak_kib);
    }
    let bound_kib = settings.stall_capacity as f64 * payload / 1024.0;
    let sent_kib = settings.stall_frames as f64 * payload / 1024.0;
    let bounded = (worst_peak as f64) < sent_kib / 8.0 && worst_heap < sent_kib / 8.0;
    println!(
        "  capacity x payload = {bound_kib:.0} KiB; data sent {sent_kib:.0} KiB; worst peak growth: RSS {worst_peak} KiB, heap {worst_heap:.0} KiB ({})",
        if bounded { "bounded" } else { "NOT bounded" }
    );
}

/// Returns the added p99 in microseconds.
/// Runs the latency comparison [`LATENCY_RUNS`] times (single-run tails on 2
/// cores swing by tens of microseconds) and returns the medians of the added
/// p50 and p99, in microseconds.
async fn latency_phase(server: &Server, settings: &Settings) -> (f64, f64) {
    let count = (settings.latency_rate as f64 * settings.latency_secs) as u64;
    let interval = Duration::from_secs_f64(1.0 / settings.latency_rate as f64);
    println!(
        "\n== latency: {} msg/s for {:.1} s, 1 subscription (first 10% discarded), {LATENCY_RUNS} runs ==",
        settings.latency_rate, settings.latency_secs
    );
    let added = |a: u64, b: u64| (b as f64 - a as f64) / 1e3;
    let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
    for run in 0..LATENCY_RUNS {
        let raw = latency_raw(server, count, interval).await;
        let lib = latency_lib(server, count, interval).await;
        for (label, l) in [("raw", &raw), ("resilient-ws", &lib)] {
            println!(
                "  run {}: {label:<12} p50 {:>6.1} us  p99 {:>6.1} us  p99.9 {:>7.1} us  max {:>8.1} us  ({} samples, {:.0} msg/s sent)",
                run + 1,
                l.p50 as f64 / 1e3,
                l.p99 as f64 / 1e3,
                l.p999 as f64 / 1e3,
                l.max as f64 / 1e3,
                l.samples,
                l.rate
            );
        }
        println!(
            "  run {}: added p50 {:+.1} us  p99 {:+.1} us  p99.9 {:+.1} us",
            run + 1,
            added(raw.p50, lib.p50),
            added(raw.p99, lib.p99),
            added(raw.p999, lib.p999)
        );
        p50s.push(added(raw.p50, lib.p50));
        p99s.push(added(raw.p99, lib.p99));
    }
    let (p50, p99) = (median_f64(&p50s), median_f64(&p99s));
    println!("  median added over {LATENCY_RUNS} runs: p50 {p50:+.1} us  p99 {p99:+.1} us");
    (p50, p99)
}

/// Latency runs whose median is reported.
const LATENCY_RUNS: usize = 5;
