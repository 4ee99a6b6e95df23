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
//! - The block starts at `read_buffer_size` (under TLS at most 4 KiB and
//!   fixed, as the OS is read in full blocks below rustls and rustls holds
//!   the plaintext) and is refilled only once empty. On a plain connection
//!   it follows the traffic, between that size and a cap ([`GROWN_BLOCK`],
//!   128 KiB, tungstenite's own read size): a refill that fills the whole
//!   block doubles the next one, a refill that brings at most an eighth of a
//!   grown block puts the next one back to the start size. So a busy
//!   connection reads the OS in large blocks (one system call and one clock
//!   read per ~1,000 small frames: +4-8 % frames per second for Kraken-sized
//!   frames) while an idle one holds only the start size, and the peer can
//!   never make it larger than the cap.
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

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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

/// The largest block a plain connection's bridge grows to (see the module
/// docs): tungstenite's own read size, what a hand-written
/// tokio-tungstenite loop reads the OS with.
pub(crate) const GROWN_BLOCK: usize = 128 << 10;

/// See the module docs.
pub(crate) struct Bridge {
    transport: Transport,
    /// Bytes from the transport; `block[start..end]` is not yet read.
    block: Box<[u8]>,
    /// The size the block starts at and returns to when traffic calms.
    base: usize,
    /// The size it may grow to (at least `base`).
    cap: usize,
    /// The size of the block the next refill reads into.
    next: usize,
    start: usize,
    end: usize,
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
        let base = block.max(1);
        Bridge {
            transport,
            block: vec![0; base].into_boxed_slice(),
            base,
            cap: cap.max(base),
            next: base,
            start: 0,
            end: 0,
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
        if self.start < self.end || self.found.is_some() {
            return Poll::Ready(());
        }
        if self.block.len() != self.next {
            // Empty, so nothing is lost: a new block of the size the last
            // refill asked for.
            self.block = vec![0; self.next].into_boxed_slice();
        }
        let mut buf = ReadBuf::new(&mut self.block);
        match Pin::new(&mut self.transport).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => {
                let filled = buf.filled().len();
                self.next = next_block(self.block.len(), filled, self.base, self.cap);
                self.start = 0;
                self.end = filled;
                if filled == 0 {
                    self.found = Some(Ok(()));
                }
                Poll::Ready(())
            }
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

/// The size of the next block after a refill of a `len`-byte block brought
/// `filled` bytes: doubled (up to `cap`) when the refill filled it, back to
/// `base` when it brought at most an eighth of a grown block, else the same.
pub(super) fn next_block(len: usize, filled: usize, base: usize, cap: usize) -> usize {
    if filled >= len && len < cap {
        len.saturating_mul(2).min(cap)
    } else if len > base && filled <= len / 8 {
        base
    } else {
        len
    }
}

impl Read for Bridge {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let unread = self.block.get(self.start..self.end).unwrap_or_default();
        if !unread.is_empty() {
            let count = unread.len().min(buf.len());
            if let (Some(into), Some(from)) = (buf.get_mut(..count), unread.get(..count)) {
                into.copy_from_slice(from);
            }
            self.start += count;
            return Ok(count);
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
