//! The WebSocket the sessions run on: tungstenite's protocol over the
//! crate's own bridge to the async transport, as a `Stream` of messages and
//! a `Sink` for them.
//!
//! Why not tokio-tungstenite's `WebSocketStream`: the feed must beat a
//! hand-written tokio-tungstenite loop (issue 22), and every one of its
//! `poll_next` calls registers two `AtomicWaker`s and converts the result,
//! even for a frame already in memory (~6% of the feed's time in a Kalshi
//! profile). Here a buffered frame costs no waker work at all: the waker is
//! registered only when the OS would block (`bridge.rs` says how).
//!
//! Rules, and why:
//! - The `Stream` and `Sink` behave as tokio-tungstenite's do, so the
//!   shells and their error mapping (`supervisor/socket_failure.rs`) do not
//!   change: errors pass through as tungstenite reports them; the stream
//!   ends (`None`) after tungstenite's `ConnectionClosed`/`AlreadyClosed`,
//!   and after any error it has returned; flushing or closing an already
//!   closed connection is not an error.
//! - One task drives both halves (the spawned shell or the feed's
//!   `poll_next`): the bridge keeps one waker, the last one given.
//! - Buffers are bounded: the OS is read into a block of
//!   `read_buffer_size`, grown to at most 128 KiB while the traffic fills it
//!   (`block.rs`; under TLS below rustls, whose plaintext the bridge reads
//!   in 4 KiB);
//!   messages and frames are limited by tungstenite's `max_message_size` and
//!   `max_frame_size`.
//! - [`WsStream::reads`] counts the reads from the connector's stream that
//!   returned bytes: the receive time of a frame is that of its read
//!   (`transport.rs`).

mod block;
mod bridge;
mod handshake;
mod transport;

#[cfg(test)]
mod tests;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Sink, Stream};
use tungstenite::{Error as WsError, Message, WebSocket};

pub(crate) use block::GROWN_BLOCK;
pub(crate) use bridge::Bridge;
pub(crate) use handshake::handshake;
pub(crate) use transport::Transport;

/// See the module docs.
pub(crate) struct WsStream {
    ws: WebSocket<Bridge>,
    /// `poll_close` queued the close frame and is flushing it.
    closing: bool,
    /// The stream has returned its last item.
    ended: bool,
    /// tungstenite can take another message: `false` after a `start_send`
    /// that could not write everything, until a flush went through.
    ready: bool,
}

impl WsStream {
    fn new(ws: WebSocket<Bridge>) -> Self {
        WsStream {
            ws,
            closing: false,
            ended: false,
            ready: true,
        }
    }

    /// How many reads from the connector's stream have returned bytes so far.
    pub(crate) fn reads(&self) -> u64 {
        self.ws.get_ref().reads()
    }

    /// The size of the bridge's block now.
    #[cfg(test)]
    pub(crate) fn block_len(&self) -> usize {
        self.ws.get_ref().block_len()
    }

    /// tungstenite with `cx`'s waker stored for the writes it makes.
    fn with(&mut self, cx: &Context<'_>) -> &mut WebSocket<Bridge> {
        self.ws.get_mut().set_waker(cx.waker());
        &mut self.ws
    }
}

/// `WouldBlock` is `Pending` (the bridge registered the waker).
fn pending_on_block<T>(result: Result<T, WsError>) -> Poll<Result<T, WsError>> {
    match result {
        Err(WsError::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        other => Poll::Ready(other),
    }
}

impl Stream for WsStream {
    type Item = Result<Message, WsError>;

    // Inlined into the shells, so they call the read loop directly.
    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.ws.poll_next_message(&mut this.ended, cx)
    }
}

/// The read loop, as a method of tungstenite's `WebSocket`.
///
/// Why a trait on tungstenite's type: rustc places a method's machine code
/// by its `Self` type, so this loop is compiled in the same codegen unit as
/// tungstenite's `read` and the protocol code under it, which can then be
/// inlined into it whatever else the crate contains. As a method of
/// `WsStream` it was in some builds compiled apart from them, and the calls
/// cost ~2% of the feed's time (Kalshi profile, same source otherwise).
trait PollMessage {
    /// The stream's next item: a message, refilling the bridge's block when
    /// it is empty; `Pending` with `cx` registered when the transport has
    /// nothing; `None` once `ended` (set after the last item).
    fn poll_next_message(
        &mut self,
        ended: &mut bool,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, WsError>>>;
}

impl PollMessage for WebSocket<Bridge> {
    fn poll_next_message(
        &mut self,
        ended: &mut bool,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, WsError>>> {
        if *ended {
            return Poll::Ready(None);
        }
        self.get_mut().set_waker(cx.waker());
        loop {
            match self.read() {
                Ok(message) => return Poll::Ready(Some(Ok(message))),
                Err(WsError::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => {
                    if self.get_mut().poll_unblock(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                Err(error) => {
                    *ended = true;
                    return match error {
                        WsError::AlreadyClosed | WsError::ConnectionClosed => Poll::Ready(None),
                        error => Poll::Ready(Some(Err(error))),
                    };
                }
            }
        }
    }
}

impl Sink<Message> for WsStream {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        if this.ready {
            return Poll::Ready(Ok(()));
        }
        // Blocked: try to flush the blockage away.
        let flushed = pending_on_block(this.with(cx).flush());
        if flushed.is_ready() {
            this.ready = true;
        }
        flushed
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), WsError> {
        let this = self.get_mut();
        match this.ws.write(message) {
            Ok(()) => {
                this.ready = true;
                Ok(())
            }
            // Queued, not yet written: `poll_ready` flushes it first.
            Err(WsError::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => {
                this.ready = false;
                Ok(())
            }
            Err(error) => {
                this.ready = true;
                Err(error)
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        let flushed = pending_on_block(this.with(cx).flush());
        if flushed.is_ready() {
            this.ready = true;
        }
        flushed.map(|result| match result {
            // The connection has just closed: the flush is complete.
            Err(WsError::ConnectionClosed) => Ok(()),
            other => other,
        })
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        this.ready = true;
        let closing = this.closing;
        let ws = this.with(cx);
        // Once the close frame is queued, flushing drives it out.
        let result = if closing { ws.flush() } else { ws.close(None) };
        match result {
            Ok(()) | Err(WsError::ConnectionClosed) => Poll::Ready(Ok(())),
            Err(WsError::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => {
                this.closing = true;
                Poll::Pending
            }
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}
