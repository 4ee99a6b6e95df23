//! A fault-injecting TCP proxy on 127.0.0.1, between a client and the test exchange.
//!
//! Every accepted connection gets its own upstream connection and one task that
//! pumps both directions. Faults are commands on the [`Proxy`] handle, published
//! through one `watch` channel that every connection task observes:
//!
//! - modes, which last until turned off: [`set_blackhole`](Proxy::set_blackhole)
//!   (accept, forward nothing either way: the half-open case),
//!   [`set_stall`](Proxy::set_stall) (one direction), [`set_delay`](Proxy::set_delay),
//!   [`set_throttle`](Proxy::set_throttle) (bytes per second, per direction);
//! - one-shots, which apply to the connections live when they are given:
//!   [`cut_all`](Proxy::cut_all) (RST both sides), [`fin_all`](Proxy::fin_all)
//!   (FIN both sides, no close frame), [`truncate_next`](Proxy::truncate_next)
//!   (forward the first `n` bytes of the next server-to-client chunk, then cut) and
//!   [`corrupt_next`](Proxy::corrupt_next) (overwrite one byte of the next chunk).
//!
//! Memory is bounded: each direction holds at most [`MAX_IN_FLIGHT`] chunks of at
//! most [`CHUNK`] bytes (the delay line); a stalled direction stops reading, so the
//! sender meets TCP backpressure instead of a growing buffer. [`Proxy::shutdown`]
//! aborts every task the proxy spawned and waits until they are gone.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, Instant};

use super::tasks::{CountGuard, TaskSet};

/// Largest chunk read from one side at a time.
pub const CHUNK: usize = 16 * 1024;
/// Chunks one direction may hold while they wait out the delay.
pub const MAX_IN_FLIGHT: usize = 64;

/// A direction of traffic through the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the client (the library) to the server (the exchange).
    ClientToServer,
    /// From the server to the client.
    ServerToClient,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::ClientToServer => 0,
            Direction::ServerToClient => 1,
        }
    }
}

/// The fault state every connection task watches.
#[derive(Clone, Debug, Default)]
struct Faults {
    blackhole: bool,
    stall: [bool; 2],
    delay: Duration,
    throttle: Option<u64>,
    /// Bumped by `cut_all`.
    cut: u64,
    /// Bumped by `fin_all`.
    fin: u64,
    /// Bumped by `truncate_next`, with the byte count.
    truncate: (u64, usize),
    /// Per direction: bumped by `corrupt_next`, with the byte offset.
    corrupt: [(u64, usize); 2],
}

impl Faults {
    fn stalled(&self, dir: Direction) -> bool {
        self.blackhole || self.stall[dir.index()]
    }
}

/// The one-shot commands a connection has already acted on (or that predate it).
#[derive(Clone, Copy)]
struct Seen {
    cut: u64,
    fin: u64,
    truncate: u64,
    corrupt: [u64; 2],
}

impl Seen {
    fn now(f: &Faults) -> Seen {
        Seen {
            cut: f.cut,
            fin: f.fin,
            truncate: f.truncate.0,
            corrupt: [f.corrupt[0].0, f.corrupt[1].0],
        }
    }
}

struct Shared {
    addr: SocketAddr,
    upstream: SocketAddr,
    faults: watch::Sender<Faults>,
    tasks: TaskSet,
    /// Connections whose pumps are running.
    live: watch::Sender<usize>,
    accepted: AtomicU64,
    cuts: AtomicU64,
}

/// Handle to a running proxy (cheap to clone).
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Shared>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.inner.addr)
            .field("upstream", &self.inner.upstream)
            .finish()
    }
}

impl Proxy {
    /// Binds 127.0.0.1:0 and forwards every accepted connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let shared = Arc::new(Shared {
            addr: listener.local_addr()?,
            upstream,
            faults: watch::Sender::new(Faults::default()),
            tasks: TaskSet::default(),
            live: watch::Sender::new(0),
            accepted: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
        });
        let _ = shared
            .tasks
            .spawn(accept_loop(Arc::clone(&shared), listener));
        Ok(Proxy { inner: shared })
    }

    /// `ws://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.inner.addr)
    }

    /// The proxy's own address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.inner.accepted.load(Ordering::Relaxed)
    }

    /// Connections ended by a cut (command, truncation, or an error on one side).
    pub fn cuts(&self) -> u64 {
        self.inner.cuts.load(Ordering::Relaxed)
    }

    /// Connections being forwarded now.
    pub fn live(&self) -> usize {
        *self.inner.live.borrow()
    }

    /// Waits until `live() == n`; false on timeout.
    pub async fn wait_live(&self, n: usize, timeout: Duration) -> bool {
        let mut rx = self.inner.live.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|live| *live == n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Every live connection: RST to both the client and the server.
    pub fn cut_all(&self) {
        self.inner.faults.send_modify(|f| f.cut += 1);
    }

    /// Every live connection: an orderly TCP close (FIN) to both the client and
    /// the server, without a WebSocket close frame.
    pub fn fin_all(&self) {
        self.inner.faults.send_modify(|f| f.fin += 1);
    }

    /// On: nothing is forwarded in either direction, on live and new connections
    /// (new ones are still accepted). Off: forwarding resumes.
    pub fn set_blackhole(&self, on: bool) {
        self.inner.faults.send_modify(|f| f.blackhole = on);
    }

    /// Stops (or resumes) reading and forwarding one direction.
    pub fn set_stall(&self, dir: Direction, on: bool) {
        self.inner.faults.send_modify(|f| f.stall[dir.index()] = on);
    }

    /// Holds every chunk this long before forwarding it (`Duration::ZERO`: off).
    pub fn set_delay(&self, delay: Duration) {
        self.inner.faults.send_modify(|f| f.delay = delay);
    }

    /// Limits each direction of each connection to `bytes_per_sec` (`None`: off).
    pub fn set_throttle(&self, bytes_per_sec: Option<u64>) {
        self.inner
            .faults
            .send_modify(|f| f.throttle = bytes_per_sec.map(|b| b.max(1)));
    }

    /// Every live connection: forward only the first `n` bytes of the next
    /// server-to-client chunk (typically in the middle of a frame), then cut.
    pub fn truncate_next(&self, n: usize) {
        self.inner
            .faults
            .send_modify(|f| f.truncate = (f.truncate.0 + 1, n));
    }

    /// Every live connection: set the byte at `offset` (or the last byte of a
    /// shorter chunk) of the next chunk in `dir` to 0xFF. A 0xFF byte is never
    /// valid UTF-8 and never a valid first or length byte of a server frame, so a
    /// WebSocket client always detects this corruption.
    pub fn corrupt_next(&self, dir: Direction, offset: usize) {
        let i = dir.index();
        self.inner
            .faults
            .send_modify(|f| f.corrupt[i] = (f.corrupt[i].0 + 1, offset));
    }

    /// Turns every mode off (blackhole, stalls, delay, throttle).
    pub fn clear(&self) {
        self.inner.faults.send_modify(|f| {
            f.blackhole = false;
            f.stall = [false; 2];
            f.delay = Duration::ZERO;
            f.throttle = None;
        });
    }

    /// Stops accepting, aborts every task the proxy spawned (connections are
    /// dropped) and waits until they are gone.
    pub async fn shutdown(&self) {
        self.inner.tasks.abort_all();
        self.inner.tasks.wait_gone().await;
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let (client, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Transient accept errors (e.g. fd exhaustion): try again shortly.
            Err(_) => {
                sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        let sh = Arc::clone(&shared);
        let _ = shared.tasks.spawn(connection(sh, client));
    }
}

/// Forwards one connection until both directions have ended, or cuts it.
async fn connection(shared: Arc<Shared>, client: TcpStream) {
    let _live = CountGuard::new(&shared.live);
    let mut faults = shared.faults.subscribe();
    let seen = Seen::now(&faults.borrow_and_update());
    let upstream = match TcpStream::connect(shared.upstream).await {
        Ok(upstream) => upstream,
        Err(_) => {
            // The server refused: so does the proxy, abruptly.
            let _ = client.set_zero_linger();
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    // Set by the first pump that cuts, so the other stops even if it is blocked in a write.
    let kill = watch::Sender::new(false);
    let c2s = pump(
        Direction::ClientToServer,
        client_read,
        upstream_write,
        faults.clone(),
        seen,
        kill.clone(),
    );
    let s2c = pump(
        Direction::ServerToClient,
        upstream_read,
        client_write,
        faults,
        seen,
        kill.clone(),
    );
    let (a, b) = tokio::join!(c2s, s2c);
    if a == End::Cut || b == End::Cut {
        shared.cuts.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The source sent FIN; it was passed on.
    Eof,
    /// Both sockets were reset.
    Cut,
}

/// Waits until this connection must be cut: a `cut_all` it has not seen, or its
/// other direction cut. Never returns while neither happens.
async fn cut_requested(
    faults: &mut watch::Receiver<Faults>,
    seen_cut: u64,
    kill: &mut watch::Receiver<bool>,
) {
    tokio::select! {
        _ = faults.wait_for(|f| f.cut != seen_cut) => {}
        _ = kill.wait_for(|k| *k) => {}
    }
}

/// One direction: read chunks from `src`, hold each for the delay, write them
/// to `dst` at the throttled rate; apply one-shot faults as chunks pass.
async fn pump(
    dir: Direction,
    mut src: OwnedReadHalf,
    mut dst: OwnedWriteHalf,
    faults: watch::Receiver<Faults>,
    seen: Seen,
    kill: watch::Sender<bool>,
) -> End {
    let end = forward(dir, &mut src, &mut dst, faults, seen, &kill).await;
    if end == End::Cut {
        // Zero linger on both sockets, and no FIN from the write half's drop:
        // when the halves are gone, both peers get a bare RST.
        let _ = src.as_ref().set_zero_linger();
        let _ = dst.as_ref().set_zero_linger();
        kill.send_replace(true);
        dst.forget();
    }
    end
}

async fn forward(
    dir: Direction,
    src: &mut OwnedReadHalf,
    dst: &mut OwnedWriteHalf,
    mut faults: watch::Receiver<Faults>,
    mut seen: Seen,
    kill: &watch::Sender<bool>,
) -> End {
    let mut kill_rx = kill.subscribe();
    let mut line: std::collections::VecDeque<(Instant, Vec<u8>, bool)> =
        std::collections::VecDeque::new();
    let mut buf = vec![0u8; CHUNK];
    let mut eof = false;
    loop {
        let f = faults.borrow_and_update().clone();
        if f.cut != seen.cut || *kill_rx.borrow_and_update() {
            return End::Cut;
        }
        if f.fin != seen.fin {
            let _ = dst.shutdown().await;
            return End::Eof;
        }
        if eof && line.is_empty() {
            let _ = dst.shutdown().await;
            return End::Eof;
        }
        let stalled = f.stalled(dir);
        let due = line.front().map(|(at, _, _)| *at + f.delay);
        let can_read = !stalled && !eof && line.len() < MAX_IN_FLIGHT;
        tokio::select! {
            changed = faults.changed() => {
                if changed.is_err() {
                    return End::Cut;
                }
            }
            _ = kill_rx.changed() => {}
            read = src.read(&mut buf), if can_read => match read {
                Ok(0) => eof = true,
                Ok(n) => {
                    let mut chunk = buf[..n].to_vec();
                    let i = dir.index();
                    if f.corrupt[i].0 != seen.corrupt[i] {
                        seen.corrupt[i] = f.corrupt[i].0;
                        let at = f.corrupt[i].1.min(n - 1);
                        chunk[at] = 0xFF;
                    }
                    let mut cut_after = false;
                    if dir == Direction::ServerToClient && f.truncate.0 != seen.truncate {
                        seen.truncate = f.truncate.0;
                        chunk.truncate(f.truncate.1);
                        cut_after = true;
                    }
                    line.push_back((Instant::now(), chunk, cut_after));
                }
                Err(_) => return End::Cut,
            },
            () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() && !stalled => {
                let Some((_, chunk, cut_after)) = line.pop_front() else {
                    continue;
                };
                let write = write_throttled(dst, &chunk, &faults);
                let mut cut_watch = faults.clone();
                let mut kill_watch = kill.subscribe();
                tokio::select! {
                    written = write => {
                        if written.is_err() {
                            return End::Cut;
                        }
                    }
                    () = cut_requested(&mut cut_watch, seen.cut, &mut kill_watch) => {
                        return End::Cut;
                    }
                }
                if cut_after {
                    return End::Cut;
                }
            }
        }
    }
}

/// Writes `chunk`, in slices of about 20 ms worth of bytes while a throttle is
/// on (re-read per slice, so lifting it speeds up the rest at once).
async fn write_throttled(
    dst: &mut OwnedWriteHalf,
    chunk: &[u8],
    faults: &watch::Receiver<Faults>,
) -> io::Result<()> {
    let mut offset = 0;
    while offset < chunk.len() {
        let throttle = faults.borrow().throttle;
        match throttle {
            None => {
                dst.write_all(&chunk[offset..]).await?;
                offset = chunk.len();
            }
            Some(rate) => {
                let slice = ((rate / 50).max(1) as usize).min(chunk.len() - offset);
                dst.write_all(&chunk[offset..offset + slice]).await?;
                offset += slice;
                sleep(Duration::from_secs_f64(slice as f64 / rate as f64)).await;
            }
        }
    }
    Ok(())
}
