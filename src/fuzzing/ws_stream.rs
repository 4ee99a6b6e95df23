//! The crate's WebSocket stream (`socket/`) for the `ws_bridge` harness,
//! which compares it with tungstenite reading the same bytes from a blocking
//! reader: however the bytes are split into reads, wherever the transport
//! blocks, and whatever the block size, the bridge must yield what
//! tungstenite alone yields.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tungstenite::handshake::client::Request;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error as WsError, Message};

use crate::connector::AsyncStream;
use crate::socket::{handshake, Bridge, Transport, WsStream};

/// The stream the sessions read, as a harness sees it.
pub struct BridgedWs(WsStream);

/// Runs the opening handshake for `request` over `stream` (no TLS), the
/// bridge reading `block` bytes at a time and growing to eight times that
/// while refills fill it (as a plain connection grows to 128 KiB), so the
/// harness reaches every block size change.
///
/// # Errors
///
/// tungstenite's handshake errors.
pub async fn bridged_ws(
    stream: Box<dyn AsyncStream>,
    request: Request,
    block: usize,
    config: WebSocketConfig,
) -> Result<BridgedWs, WsError> {
    let bridge = Bridge::new(Transport::plain(stream), block, block.saturating_mul(8));
    handshake(request, bridge, config).await.map(BridgedWs)
}

impl BridgedWs {
    /// How many reads of the transport returned bytes.
    pub fn reads(&self) -> u64 {
        self.0.reads()
    }
}

impl Stream for BridgedWs {
    type Item = Result<Message, WsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().0).poll_next(cx)
    }
}
