//! The block of bytes a connection reads the OS into, sized by the traffic.
//!
//! Two readers use it: the bridge under tungstenite on a plain connection,
//! and the reader under rustls on a TLS one (there rustls pulls ciphertext
//! about 4 KiB at a time, and without a block under it each pull would be a
//! system call).
//!
//! Rules, and why:
//! - The block is refilled only once it is empty, and changes size only
//!   then, so no byte is ever moved or lost by a resize.
//! - It starts at `read_buffer_size` (16 KiB by default: an idle connection
//!   holds that much) and follows the traffic up to a cap ([`GROWN_BLOCK`],
//!   128 KiB, tungstenite's own read size, what a hand-written
//!   tokio-tungstenite loop reads the OS with): a refill that fills the
//!   whole block doubles the next one, a refill that brings at most an
//!   eighth of a grown block puts the next one back to the start size. A
//!   busy stream then costs one system call per ~1,000 small frames
//!   (Kraken-sized frames: 241 `recvfrom` per 100,000 frames, 1,832 with a
//!   fixed 16 KiB block), and the peer can never make it larger than the cap.
//! - A new size is a new zeroed allocation (no `unsafe` to read into
//!   uninitialised memory): at most one per refill, and only when the
//!   traffic changes pace.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// The largest block a connection grows to (see the module docs).
pub(crate) const GROWN_BLOCK: usize = 128 << 10;

/// See the module docs.
pub(crate) struct ReadBlock {
    /// `block[start..end]` is not yet consumed.
    block: Box<[u8]>,
    start: usize,
    end: usize,
    /// The size the block starts at and returns to when traffic calms.
    base: usize,
    /// The size it may grow to (at least `base`).
    cap: usize,
    /// The size of the block the next refill reads into.
    next: usize,
}

impl ReadBlock {
    /// A block of `base` bytes (at least 1) that may grow to `cap` (a `cap`
    /// at or below `base` keeps it fixed).
    pub(crate) fn new(base: usize, cap: usize) -> Self {
        let base = base.max(1);
        ReadBlock {
            block: vec![0; base].into_boxed_slice(),
            start: 0,
            end: 0,
            base,
            cap: cap.max(base),
            next: base,
        }
    }

    /// The bytes read and not yet consumed.
    #[inline]
    pub(crate) fn unread(&self) -> &[u8] {
        self.block.get(self.start..self.end).unwrap_or_default()
    }

    /// Copies as much of the unread bytes into `into` as fit; how many.
    #[inline]
    pub(crate) fn copy_to(&mut self, into: &mut [u8]) -> usize {
        let unread = self.unread();
        let count = unread.len().min(into.len());
        if let (Some(into), Some(from)) = (into.get_mut(..count), unread.get(..count)) {
            into.copy_from_slice(from);
        }
        self.start += count;
        count
    }

    /// Reads `source` into the block, which must be empty (else `Ready(Ok)`
    /// with what is unread, reading nothing). `Ready(Ok(0))` is the end of
    /// the stream.
    pub(crate) fn poll_refill<R: AsyncRead + ?Sized>(
        &mut self,
        source: Pin<&mut R>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if self.start < self.end {
            return Poll::Ready(Ok(self.end - self.start));
        }
        if self.block.len() != self.next {
            // Empty, so nothing is lost: a block of the size the last
            // refill asked for.
            self.block = vec![0; self.next].into_boxed_slice();
        }
        let mut buf = ReadBuf::new(&mut self.block);
        ready!(source.poll_read(cx, &mut buf))?;
        let filled = buf.filled().len();
        self.next = next_block(self.block.len(), filled, self.base, self.cap);
        self.start = 0;
        self.end = filled;
        Poll::Ready(Ok(filled))
    }

    /// The size of the block now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.block.len()
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
