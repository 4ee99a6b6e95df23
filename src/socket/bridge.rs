//! tungstenite's blocking `Read`/`Write` over the async [`Transport`].
//!
//! Why not tokio-tungstenite's adapter: it polls the transport on every
//! read through a waker proxy, so every `poll_next` registers two
//! `AtomicWaker`s, even for a frame that is already in memory (~4.6% of the
//! feed's time in a Kalshi profile, plus its result conversion). Here the
//! waker is registered only when the OS would block.
//!
//! Rules, and why:
//! - `read` never touches the transport. It serves the block of bytes the
//!   last refill brought, and when that is empty says `WouldBlock`. The
//!   async shell then calls [`Bridge::poll_fill`] with its own `Context` and
//!   retries: a frame already buffered costs a memory copy and no waker work.
//! - The block (`block.rs`) is refilled only once empty and sized by the
//!   traffic between `read_buffer_size` and 128 KiB on a plain connection;
//!   under TLS it sits on rustls's plaintext and stays at most 4 KiB, fixed
//!   (the OS is read in blocks below rustls, `transport.rs`).
//! - End of stream and a read error found by a refill are handed to
//!   tungstenite by the next `read`, once, exactly as the transport reported
//!   them: tungstenite decides what they mean (a reset without a close
//!   handshake, a clean end after one), as it does under tokio-tungstenite.
//! - `write`/`flush` go straight to the transport with the waker the shell
//!   stored last ([`Bridge::set_waker`] replaces it only when it would wake
//!   another task: no atomics, no clone on the common path). Pending becomes
//!   `WouldBlock`, and the bridge remembers which direction blocked, so the
//!   shell knows whether to refill or just wait.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::AsyncWrite;

use super::block::ReadBlock;
use super::transport::Transport;

/// Which side of the bridge last said `WouldBlock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blocked {
    /// The block was empty: the transport must be read.
    Read,
    /// The transport's write side was not ready; its poll registered the
    /// stored waker.
    Write,
}

/// See the module docs.
pub(crate) struct Bridge {
    transport: Transport,
    /// Bytes from the transport not yet read by tungstenite.
    block: ReadBlock,
    /// What the last refill found besides bytes, for the next `read`:
    /// `Ok(())` is end of stream.
    found: Option<io::Result<()>>,
    /// The waker writes poll the transport with.
    waker: Waker,
    blocked: Blocked,
}

impl Bridge {
    /// Wraps `transport`, reading it `block` bytes at a time (at least 1),
    /// and up to `cap` bytes at a time while refills fill the block (a `cap`
    /// at or below `block` keeps the block fixed).
    pub(crate) fn new(transport: Transport, block: usize, cap: usize) -> Self {
        Bridge {
            transport,
            block: ReadBlock::new(block, cap),
            found: None,
            waker: Waker::noop().clone(),
            blocked: Blocked::Read,
        }
    }

    /// How many reads from the connector's stream have returned bytes so far.
    pub(crate) fn reads(&self) -> u64 {
        self.transport.reads()
    }

    /// The size of the block now.
    #[cfg(test)]
    pub(crate) fn block_len(&self) -> usize {
        self.block.len()
    }

    /// Makes `waker` the one writes register, unless the stored one already
    /// wakes the same task, or `waker` wakes nothing: the spawned shell
    /// drains buffered frames with `now_or_never`, and swapping its task's
    /// waker out and back for that would cost two reference-count atomics
    /// per wake-up and leave a write blocked meanwhile waking no one.
    pub(crate) fn set_waker(&mut self, waker: &Waker) {
        if self.waker.will_wake(waker)
            || waker.will_wake(futures::task::noop_waker_ref())
            || waker.will_wake(Waker::noop())
        {
            return;
        }
        self.waker.clone_from(waker);
    }

    /// After a `WouldBlock`: `Ready` when a retry can make progress (the
    /// block was refilled, or the transport's end or error is waiting to be
    /// read), `Pending` with `cx` registered otherwise.
    pub(crate) fn poll_unblock(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self.blocked {
            Blocked::Read => self.poll_fill(cx),
            // The blocked write registered the waker stored for this poll.
            Blocked::Write => Poll::Pending,
        }
    }

    /// Refills the empty block from the transport.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.block.unread().is_empty() || self.found.is_some() {
            return Poll::Ready(());
        }
        match self.block.poll_refill(Pin::new(&mut self.transport), cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(0)) => {
                self.found = Some(Ok(()));
                Poll::Ready(())
            }
            Poll::Ready(Ok(_)) => Poll::Ready(()),
            Poll::Ready(Err(error)) => {
                self.found = Some(Err(error));
                Poll::Ready(())
            }
        }
    }

    /// Polls the transport's write side with the stored waker; `Pending`
    /// becomes `WouldBlock`.
    fn with_waker<T>(
        &mut self,
        poll: impl FnOnce(Pin<&mut Transport>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> io::Result<T> {
        let mut cx = Context::from_waker(&self.waker);
        match poll(Pin::new(&mut self.transport), &mut cx) {
            Poll::Ready(result) => result,
            Poll::Pending => {
                self.blocked = Blocked::Write;
                Err(io::ErrorKind::WouldBlock.into())
            }
        }
    }
}

impl Read for Bridge {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.block.unread().is_empty() {
            return Ok(self.block.copy_to(buf));
        }
        match self.found.take() {
            Some(Ok(())) => Ok(0),
            Some(Err(error)) => Err(error),
            None => {
                self.blocked = Blocked::Read;
                Err(io::ErrorKind::WouldBlock.into())
            }
        }
    }
}

impl Write for Bridge {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.with_waker(|transport, cx| transport.poll_write(cx, buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.with_waker(|transport, cx| transport.poll_flush(cx))
    }
}
