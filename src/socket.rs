//! The byte stream under the WebSocket: the OS is read in blocks of
//! `read_buffer_size`, and every read that returned bytes is counted.
//!
//! Why a buffer here, under tungstenite's own: tungstenite reads into the
//! spare capacity of the buffer it splits frames from. The library keeps those
//! frames (they sit in a queue until the consumer takes them), so that buffer
//! is shared and each read gets only the few KiB left at its end: measured,
//! 6,080 `recvfrom` calls per 100,000 Kalshi frames of ~125 bytes (2-4 KiB
//! each), against 117 for a loop that drops its frames at once. Reading the OS
//! into a buffer of our own makes those small reads memory copies: 797 calls
//! for the same frames.
//!
//! Why the count: the receive time of a frame is when its bytes came off the
//! socket. Frames cut from one OS read share that read's time, so the shell
//! reads the clock only when the count has moved (a clock read per frame was
//! 3.5% of the library's time in a throughput profile).
//!
//! Writes go straight through; the buffer only reads.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};

use crate::connector::AsyncStream;

/// The connector's stream, read in blocks and counted. See the module docs.
pub(crate) struct Socket(BufReader<Counted>);

/// The connector's stream and how many reads from it returned bytes.
struct Counted {
    stream: Box<dyn AsyncStream>,
    reads: u64,
}

impl Socket {
    /// Wraps `stream`, reading it `block` bytes at a time.
    pub(crate) fn new(stream: Box<dyn AsyncStream>, block: usize) -> Self {
        Socket(BufReader::with_capacity(
            block.max(1),
            Counted { stream, reads: 0 },
        ))
    }

    /// How many reads from the OS stream have returned bytes so far.
    pub(crate) fn reads(&self) -> u64 {
        self.0.get_ref().reads
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.reads = self.reads.wrapping_add(1);
        }
        polled
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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn reads_in_blocks_and_counts_only_reads_that_returned_bytes() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let mut socket = Socket::new(Box::new(client), 8);
        server.write_all(b"0123456789abcdef").await.unwrap();
        let mut small = [0u8; 3];
        socket.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"012");
        // One block of 8 came off the stream; the rest of it is buffered.
        assert_eq!(socket.reads(), 1);
        let mut rest = [0u8; 5];
        socket.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"34567");
        assert_eq!(socket.reads(), 1, "served from the block, no new read");
        socket.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"89abc");
        assert_eq!(socket.reads(), 2);
        // End of stream: a read that returns nothing is not counted.
        drop(server);
        let mut tail = Vec::new();
        socket.read_to_end(&mut tail).await.unwrap();
        assert_eq!(tail, b"def");
        assert_eq!(socket.reads(), 2);
    }

    #[tokio::test]
    async fn writes_go_straight_through() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let mut socket = Socket::new(Box::new(client), 8);
        socket.write_all(b"hello").await.unwrap();
        socket.flush().await.unwrap();
        let mut got = [0u8; 5];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        assert_eq!(socket.reads(), 0);
    }
}
