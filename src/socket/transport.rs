//! The byte stream under the WebSocket: the connector's stream, plain or
//! with TLS on top, and a count of the OS reads that returned bytes.
//!
//! Rules, and why:
//! - The count is kept on the connector's stream itself, under TLS: the
//!   receive time of a frame is when its bytes came off the socket, and the
//!   shells read the clock only when this count has moved (a clock read per
//!   frame was 3.5% of the library's time in a throughput profile).
//! - Under TLS the OS is read in blocks too (`block.rs`: `read_buffer_size`,
//!   growing to 128 KiB while the traffic fills them): rustls pulls
//!   ciphertext about 4 KiB at a time, and without a block under it each of
//!   those pulls would be a system call.
//! - TLS is tokio-rustls with the caller's `ClientConfig` (the crate's
//!   explicit provider, never a process-wide default; see [`crate::tls`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::client::TlsStream;

use super::block::ReadBlock;
use crate::connector::AsyncStream;

/// The connector's stream, plain or under TLS. See the module docs.
pub(crate) enum Transport {
    /// `ws://`: the connector's stream as it is.
    Plain(Counted),
    /// `wss://`: TLS over the connector's stream read in blocks. Boxed: the
    /// rustls state is large and the plain case should not carry its size.
    Tls(Box<TlsStream<Counted>>),
}

impl Transport {
    /// The connector's stream with no TLS.
    pub(crate) fn plain(stream: Box<dyn AsyncStream>) -> Self {
        Transport::Plain(Counted::new(stream))
    }

    /// TLS over `stream` for `server_name`, the OS read `block` bytes at a
    /// time under it, and up to `cap` while the traffic fills the blocks.
    /// The error is rustls's, wrapped in an I/O error as tokio-rustls hands
    /// it.
    pub(crate) async fn tls(
        stream: Box<dyn AsyncStream>,
        block: usize,
        cap: usize,
        server_name: ServerName<'static>,
        config: Arc<rustls::ClientConfig>,
    ) -> io::Result<Self> {
        let under = Counted::blocked(stream, block, cap);
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(server_name, under)
            .await?;
        Ok(Transport::Tls(Box::new(tls)))
    }

    /// Whether TLS runs on the connector's stream.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// How many reads from the connector's stream have returned bytes so far.
    pub(crate) fn reads(&self) -> u64 {
        match self {
            Transport::Plain(counted) => counted.reads,
            Transport::Tls(tls) => tls.get_ref().0.reads(),
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(counted) => Pin::new(counted).poll_read(cx, buf),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(counted) => Pin::new(&mut counted.stream).poll_write(cx, buf),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(counted) => Pin::new(&mut counted.stream).poll_flush(cx),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(counted) => Pin::new(&mut counted.stream).poll_shutdown(cx),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The connector's stream and how many reads from it returned bytes; under
/// rustls, read in blocks.
pub(crate) struct Counted {
    stream: Box<dyn AsyncStream>,
    reads: u64,
    /// Under rustls: the block the stream is read into (see `block.rs`).
    block: Option<ReadBlock>,
}

impl Counted {
    fn new(stream: Box<dyn AsyncStream>) -> Self {
        Counted {
            stream,
            reads: 0,
            block: None,
        }
    }

    /// `stream` read `block` bytes at a time, up to `cap` while the traffic
    /// fills the blocks.
    pub(super) fn blocked(stream: Box<dyn AsyncStream>, block: usize, cap: usize) -> Self {
        Counted {
            block: Some(ReadBlock::new(block, cap)),
            ..Counted::new(stream)
        }
    }

    /// How many reads from the stream have returned bytes so far.
    pub(super) fn reads(&self) -> u64 {
        self.reads
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Counted {
            stream,
            reads,
            block,
        } = self.get_mut();
        let Some(block) = block else {
            let before = buf.filled().len();
            ready!(Pin::new(stream).poll_read(cx, buf))?;
            if buf.filled().len() > before {
                *reads = reads.wrapping_add(1);
            }
            return Poll::Ready(Ok(()));
        };
        // An empty block is refilled first; `Ok(0)` (end) fills nothing.
        let refill = block.unread().is_empty();
        if ready!(block.poll_refill(Pin::new(stream), cx))? > 0 {
            if refill {
                *reads = reads.wrapping_add(1);
            }
            let count = block.copy_to(buf.initialize_unfilled());
            buf.advance(count);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
