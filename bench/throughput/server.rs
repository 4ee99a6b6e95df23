//! The bench's WebSocket server on 127.0.0.1: in-process on its own thread and
//! current-thread runtime, or in a child process (this binary re-executed with
//! `RESILIENT_WS_BENCH_SERVER=1`) so its sockets are not counted in the client's RSS.
//!
//! It speaks both venues by the request's shape: a Kalshi request has `cmd`,
//! a Kraken v2 request has `method` (see `kraken.rs`). Bulk data is whatever
//! pre-encoded buffer the client side hands to [`ConnHandle::blast`].

use super::*;

pub(crate) enum ConnCmd {
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
pub(crate) struct ConnHandle {
    pub(crate) tx: mpsc::UnboundedSender<ConnCmd>,
    pub(crate) subs: Arc<AtomicUsize>,
}

impl ConnHandle {
    pub(crate) fn send(&self, cmd: ConnCmd) {
        let _ = self.tx.send(cmd);
    }

    pub(crate) fn blast(&self, bytes: Arc<Vec<u8>>) -> oneshot::Receiver<()> {
        let (done, rx) = oneshot::channel();
        self.send(ConnCmd::Blast { bytes, done });
        rx
    }

    pub(crate) fn paced(&self, count: u64, interval: Duration, sid: u64) -> oneshot::Receiver<()> {
        let (done, rx) = oneshot::channel();
        self.send(ConnCmd::Paced {
            count,
            interval,
            sid,
            done,
        });
        rx
    }

    pub(crate) async fn abort(&self) -> Option<Instant> {
        let (done, rx) = oneshot::channel();
        self.send(ConnCmd::Abort { done });
        rx.await.ok()
    }
}

#[derive(Default)]
pub(crate) struct ServerShared {
    /// Send one data frame (seq 1) right after each subscribe ack.
    pub(crate) data_on_ack: AtomicBool,
    pub(crate) next_conn: AtomicU64,
    pub(crate) conns: Mutex<Vec<(u64, ConnHandle)>>,
}

/// The in-process server: its own thread and current-thread runtime. Cloning
/// shares it (every client runtime of the matrix talks to the same server).
#[derive(Clone)]
pub(crate) struct Server {
    pub(crate) port: u16,
    pub(crate) shared: Arc<ServerShared>,
}

impl Server {
    pub(crate) fn start() -> Server {
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

    pub(crate) fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }

    /// The newest connection once it holds at least `subs` acknowledged subscriptions.
    pub(crate) async fn conn_with(&self, subs: usize) -> ConnHandle {
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

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn ws_config() -> WebSocketConfig {
    // The library's defaults for message and frame size.
    WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(4 << 20))
}

pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<ServerShared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_conn(stream, Arc::clone(&shared)));
    }
}

pub(crate) enum Step {
    Inbound(Option<Result<Message, tungstenite::Error>>),
    Cmd(Option<ConnCmd>),
}

pub(crate) async fn serve_conn(stream: TcpStream, shared: Arc<ServerShared>) {
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
                if request.get("method").is_some() {
                    // A Kraken v2 request: acks per symbol, or a pong.
                    let (replies, added) = kraken_reply(&request);
                    let mut ok = true;
                    for reply in replies {
                        if ws.send(Message::text(reply)).await.is_err() {
                            ok = false;
                            break;
                        }
                    }
                    if !ok {
                        break;
                    }
                    subs.fetch_add(added, Ordering::SeqCst);
                    continue;
                }
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
pub(crate) fn child_server_main() {
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

pub(crate) struct ChildServer {
    pub(crate) child: Child,
    pub(crate) port: u16,
}

impl ChildServer {
    pub(crate) fn start() -> std::io::Result<ChildServer> {
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
