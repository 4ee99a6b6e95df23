//! The socket side of the emulator: the accept loop (which `set_refuse` can
//! pause without losing the port), the WebSocket handshake (optionally delayed),
//! and one task per connection that applies commands from the test, answers client
//! frames through the venue handler, and sends Kraken heartbeats.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::Message;

use super::kraken::{self, HEARTBEAT_PERIOD};
use super::state::{Cmd, Conn, Shared};
use super::{DropAfter, Gate, Venue};
use crate::support::tasks::lock;

/// Capacity of each connection's command queue; commands beyond it are dropped.
const CMD_CAPACITY: usize = 65_536;
/// Server-side message and frame size limit (large, so oversize frames can be sent).
const MAX_SIZE: usize = 64 << 20;
/// How long a server-initiated close waits for the client's close reply.
const CLOSE_DRAIN: Duration = Duration::from_secs(2);

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

pub(super) async fn accept_loop(shared: Arc<Shared>) {
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
                shared.tasks.spawn(connection(sh, tcp));
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
    let callback = |request: &tungstenite::handshake::server::Request, response| match check
        .as_ref()
        .map(|check| check(request))
    {
        None => Ok(response),
        Some(Gate::Accept { authenticated: ok }) => {
            authenticated = ok;
            Ok(response)
        }
        Some(Gate::Refuse {
            status,
            retry_after,
        }) => {
            let mut refusal = tungstenite::http::Response::builder().status(status);
            if let Some(value) = retry_after {
                refusal = refusal.header("Retry-After", value);
            }
            Err(refusal.body(None).expect("a valid refusal"))
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

/// Sleeps until `at` (forever for `None`).
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending::<()>().await,
    }
}

/// Whether connection `id` holds a subscription (its subscribe was acknowledged).
fn acknowledged(shared: &Shared, id: u64) -> bool {
    lock(&shared.state)
        .conns
        .get(&id)
        .is_some_and(|c| !c.subs.is_empty())
}

/// Serves one connection until it ends; `ws` is dropped (socket closed) on return.
async fn serve(shared: &Shared, id: u64, mut ws: ServerWs, mut rx: mpsc::Receiver<Cmd>) {
    let kraken = shared.venue == Venue::Kraken;
    if kraken && !send_frames(&mut ws, vec![kraken::status_frame(id)]).await {
        return;
    }
    let mut hb_rx = shared.heartbeat.subscribe();
    let mut hb = tokio::time::interval_at(Instant::now() + HEARTBEAT_PERIOD, HEARTBEAT_PERIOD);
    hb.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut silent = false;
    let drop_after = lock(&shared.state).drop_after;
    // When this connection resets itself (`Exchange::set_drop_after`).
    let mut drop_at = match drop_after {
        Some(DropAfter::Handshake(d)) => Instant::now().checked_add(d),
        _ => None,
    };
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
            _ = sleep_until_some(drop_at), if drop_at.is_some() => {
                let _ = ws.get_ref().set_zero_linger();
                return;
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
                    if let (Some(DropAfter::Ack(d)), None) = (drop_after, drop_at) {
                        if acknowledged(shared, id) {
                            drop_at = Instant::now().checked_add(d);
                        }
                    }
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
