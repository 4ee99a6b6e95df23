//! The verified Kraken book, readable by consumers: [`BookViews`] and [`BookView`].
//!
//! The adapter owns the books and runs inside the supervisor task; consumers
//! live elsewhere. After each book frame that verified (its checksum matched
//! the local book), the adapter publishes the top levels of that symbol's book
//! to the views that watch it, through a `tokio::sync::watch` channel holding
//! an `Arc<BookTop>`. Rules, and why:
//! - Only the top `levels` a view asked for are copied, once per verified
//!   frame, into one text buffer (one allocation for the text, one for the
//!   offsets), and only while a view of that symbol is alive: an unwatched book
//!   costs nothing, a watched one never a copy of the whole book.
//! - Reading is a clone of an `Arc` under the watch's lock, released at once:
//!   no lock is held across an await, and the supervisor never waits on a reader.
//! - When a book stops being verified (a mismatch, a malformed frame, the
//!   connection lost, the subscription ended) the view holds `None` until the
//!   next snapshot verifies, so nobody reads a book the library distrusts.
//! - A view is the latest verified state: it may be ahead of the frames still
//!   waiting in the subscription's queue. [`BookTop::frames`] counts the book
//!   frames applied since the snapshot, to correlate.
//! - The number of watched symbols is the user's (views are made by the user),
//!   not the peer's, and `levels` is capped at the book's depth.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::book::Book;

/// The top levels of a verified book, with the exact wire text of each price
/// and quantity, and the checksum that verified it.
#[derive(Clone, PartialEq, Eq)]
pub struct BookTop {
    text: String,
    /// (price end, qty end) offsets into `text`, asks then bids.
    ends: Vec<(u32, u32)>,
    asks: usize,
    checksum: u32,
    frames: u64,
}

impl BookTop {
    fn build(book: &Book, levels: usize, checksum: u32, frames: u64) -> Self {
        let asks: Vec<_> = book.asks().take(levels).collect();
        let bids: Vec<_> = book.bids().take(levels).collect();
        let len = asks
            .iter()
            .chain(&bids)
            .map(|l| l.price().len() + l.qty().len())
            .sum();
        let mut text = String::with_capacity(len);
        let mut ends = Vec::with_capacity(asks.len() + bids.len());
        for level in asks.iter().chain(&bids) {
            text.push_str(level.price());
            let price_end = text.len();
            text.push_str(level.qty());
            // Levels are at most `MAX_NUMBER_LEN` bytes and a side at most
            // 1000 levels: far below u32::MAX.
            ends.push((
                u32::try_from(price_end).unwrap_or(u32::MAX),
                u32::try_from(text.len()).unwrap_or(u32::MAX),
            ));
        }
        BookTop {
            text,
            ends,
            asks: asks.len(),
            checksum,
            frames,
        }
    }

    fn level(&self, index: usize) -> Option<(&str, &str)> {
        let start = match index.checked_sub(1) {
            Some(prev) => self.ends.get(prev)?.1 as usize,
            None => 0,
        };
        let (price_end, qty_end) = *self.ends.get(index)?;
        let price = self.text.get(start..price_end as usize)?;
        let qty = self.text.get(price_end as usize..qty_end as usize)?;
        Some((price, qty))
    }

    /// The asks, lowest price first: (price, qty) as the venue sent them.
    pub fn asks(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        (0..self.asks).map(|i| self.level(i).unwrap_or(("", "")))
    }

    /// The bids, highest price first: (price, qty) as the venue sent them.
    pub fn bids(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        (self.asks..self.ends.len()).map(|i| self.level(i).unwrap_or(("", "")))
    }

    /// The venue checksum this state verified against.
    pub fn checksum(&self) -> u32 {
        self.checksum
    }

    /// Book frames applied since the snapshot (1 for the snapshot itself).
    pub fn frames(&self) -> u64 {
        self.frames
    }
}

impl fmt::Debug for BookTop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BookTop")
            .field("asks", &self.asks().collect::<Vec<_>>())
            .field("bids", &self.bids().collect::<Vec<_>>())
            .field("checksum", &self.checksum)
            .field("frames", &self.frames)
            .finish()
    }
}

type Latest = Option<Arc<BookTop>>;

struct Slot {
    tx: watch::Sender<Latest>,
    levels: usize,
    frames: u64,
}

/// The registry of book views shared between a [`Kraken`](super::Kraken)
/// adapter and its consumers. Cheap to clone.
#[derive(Clone, Default)]
pub struct BookViews {
    slots: Arc<Mutex<HashMap<Box<str>, Slot>>>,
}

impl fmt::Debug for BookViews {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BookViews")
            .field("symbols", &self.lock().len())
            .finish()
    }
}

impl BookViews {
    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A view of `symbol`'s verified book, `levels` per side (at most the
    /// subscribed depth is ever available). Views of one symbol share one
    /// state: the deepest `levels` asked for wins.
    pub fn watch(&self, symbol: &str, levels: usize) -> BookView {
        let mut slots = self.lock();
        let slot = slots.entry(symbol.into()).or_insert_with(|| Slot {
            tx: watch::Sender::new(None),
            levels,
            frames: 0,
        });
        slot.levels = slot.levels.max(levels);
        BookView {
            rx: slot.tx.subscribe(),
        }
    }

    /// Publishes `book` of `symbol` after a frame that verified against `checksum`.
    pub(crate) fn verified(&self, symbol: &str, book: &Book, checksum: u32, snapshot: bool) {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(symbol) else {
            return;
        };
        if slot.tx.receiver_count() == 0 {
            slots.remove(symbol);
            return;
        }
        slot.frames = if snapshot { 1 } else { slot.frames + 1 };
        let top = BookTop::build(book, slot.levels, checksum, slot.frames);
        slot.tx.send_replace(Some(Arc::new(top)));
    }

    /// `symbol`'s book is no longer verified (or gone); `None` for every symbol.
    pub(crate) fn invalidate(&self, symbol: Option<&str>) {
        let slots = self.lock();
        let clear = |slot: &Slot| {
            slot.tx.send_if_modified(|latest| latest.take().is_some());
        };
        match symbol {
            Some(symbol) => {
                if let Some(slot) = slots.get(symbol) {
                    clear(slot);
                }
            }
            None => slots.values().for_each(clear),
        }
    }
}

/// A consumer's view of one symbol's verified book. Cheap to read; made by
/// [`BookViews::watch`].
#[derive(Debug, Clone)]
pub struct BookView {
    rx: watch::Receiver<Latest>,
}

impl BookView {
    /// The latest verified state, or `None` while there is none (before the
    /// first snapshot verified, or after a mismatch until the next one).
    pub fn latest(&self) -> Option<Arc<BookTop>> {
        self.rx.borrow().clone()
    }

    /// Waits until the state changes (a new verified frame, or it became
    /// unverified), then returns it.
    ///
    /// # Errors
    ///
    /// [`Error::ClientClosed`](crate::Error::ClientClosed) once the adapter is gone.
    pub async fn changed(&mut self) -> Result<Option<Arc<BookTop>>, crate::Error> {
        self.rx
            .changed()
            .await
            .map_err(|_| crate::Error::ClientClosed)?;
        Ok(self.rx.borrow_and_update().clone())
    }
}
