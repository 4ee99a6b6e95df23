//! The client's opening handshake, run by tungstenite's own machine over the
//! [`Bridge`].
//!
//! Why tungstenite's machine: it checks the response (status, `Upgrade`,
//! `Sec-WebSocket-Accept`), keeps a refused response for the caller, and
//! hands the bytes the server sent right after its `101` to the WebSocket:
//! what the machine read past the response goes in as the WebSocket's first
//! bytes, and what it did not read stays in the bridge's block. No frame is
//! lost however the response and the first frames share a read.
//!
//! Each round stores the task's waker in the bridge first; a round that
//! blocks either refills the block (it blocked reading) or waits for the
//! write its blocked poll registered.

use std::future::poll_fn;
use std::task::Poll;

use tungstenite::handshake::client::Request;
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::ClientHandshake;
use tungstenite::Error as WsError;

use super::{Bridge, WsStream};

/// Runs the handshake for `request` over `bridge`.
///
/// # Errors
///
/// tungstenite's, as it reports them (a refused upgrade is
/// [`WsError::Http`] with the response).
pub(crate) async fn handshake(
    request: Request,
    bridge: Bridge,
    config: WebSocketConfig,
) -> Result<WsStream, WsError> {
    let mut start = Some((request, bridge));
    let mut waiting: Option<MidHandshake<ClientHandshake<Bridge>>> = None;
    poll_fn(move |cx| loop {
        let round = match (waiting.take(), start.take()) {
            (Some(mut mid), _) => {
                mid.get_mut().get_mut().set_waker(cx.waker());
                mid.handshake()
            }
            (None, Some((request, mut bridge))) => {
                bridge.set_waker(cx.waker());
                tungstenite::client::client_with_config(request, bridge, Some(config))
            }
            // Not reached: the future is not polled after it finished.
            (None, None) => return Poll::Ready(Err(WsError::AlreadyClosed)),
        };
        match round {
            Ok((ws, _response)) => return Poll::Ready(Ok(WsStream::new(ws))),
            Err(HandshakeError::Failure(error)) => return Poll::Ready(Err(error)),
            Err(HandshakeError::Interrupted(mut mid)) => {
                let unblocked = mid.get_mut().get_mut().poll_unblock(cx);
                waiting = Some(mid);
                if unblocked.is_pending() {
                    return Poll::Pending;
                }
            }
        }
    })
    .await
}
