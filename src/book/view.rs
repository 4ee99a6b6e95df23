//! Verified order books, readable by consumers, for every venue:
//! [`BookViews`], [`BookView`] and [`BookTop`].
//!
//! An adapter owns its books and runs inside the connection's task (or the
//! consumer's, for a feed); consumers live elsewhere. After each book frame
//! that verified, the adapter publishes the top levels of that symbol's book
//! to the views that watch it, through a `tokio::sync::watch` channel holding an
//! `Arc<BookTop>`. Rules, and why:
//! - One view type for every venue, and every bundled adapter publishes to
//!   it: Kraken (its CRC-32 checksum verifies each frame), OKX (`seqId`
//!   continuity, and its checksum while non-zero), WEEX (`U`/`u` update-id
//!   continuity verifies each push; symbol as WEEX spells it, `BTCUSDT`) and
//!   Kalshi (its per-`sid` `seq` verifies each frame; see `protocol::kalshi`
//!   for how a yes/no book reads as bids and asks: YES bids are the bids, NO
//!   bids are the asks at `1 - price`, computed exactly). Levels are kept as
//!   the venue's wire text where a checksum needs it (Kalshi's are the exact
//!   decimals printed at the scale sent) and read as exact [`Decimal`]s,
//!   never `f64`.
//! - Only the top `levels` a view asked for are copied, once per verified
//!   frame, into one text buffer (one allocation for the text, one for the
//!   offsets), and only while a view of that symbol is alive: an unwatched book
//!   costs nothing, a watched one never a copy of the whole book.
//! - Reading is a clone of an `Arc` under the watch's lock, released at once:
//!   no lock is held across an await, and the adapter never waits on a reader.
//! - When a book stops being verified (a checksum mismatch, a sequence or
//!   update-id break, a malformed frame, the connection lost, the subscription
//!   ended) the view holds `None` until the next snapshot verifies, so nobody
//!   reads a book the library distrusts; the break itself reaches the
//!   subscription's stream in-band and that one subscription resyncs: a
//!   break the adapter finds as [`Update::BookBreak`](crate::Update::BookBreak)
//!   naming its kind ([`BookBreak`](crate::BookBreak): checksum mismatch,
//!   update-id discontinuity, unusable update), a sequence gap the session
//!   finds as [`Update::Gap`](crate::Update::Gap).
//! - A view is the latest verified state: it may be ahead of the frames still
//!   waiting in the subscription's queue. [`BookTop::updates`] counts the book
//!   frames applied since the snapshot, to correlate.
//! - The number of watched symbols is the user's (views are made by the user),
//!   not the peer's, and `levels` is capped at the book's depth.
//! - [`BookViews`] is shared: get it from the adapter before connecting
//!   (`Kraken::book_views`) or from a running client
//!   ([`Client::book_views`](crate::Client::book_views)) at any time.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::watch;

use crate::decimal::Decimal;
use crate::error::Error;

/// The top levels of a verified book, with the exact wire text of each price
/// and quantity, the checksum that verified it (where the venue has one), the
/// venue's time of the last applied update and when it was applied.
#[derive(Clone, PartialEq, Eq)]
pub struct BookTop {
    text: String,
    /// (price end, qty end) offsets into `text`, asks then bids.
    ends: Vec<(u32, u32)>,
    asks: usize,
    checksum: Option<i64>,
    frames: u64,
    venue_time: Option<SystemTime>,
    applied: SystemTime,
}

/// What an adapter knows about one verified book frame, for [`BookViews::verified`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Verified {
    /// The checksum the frame verified against, if the venue sends one.
    pub(crate) checksum: Option<i64>,
    /// Whether the frame was a snapshot (restarts [`BookTop::updates`]).
    pub(crate) snapshot: bool,
    /// The venue's time of the update, if it sends one.
    pub(crate) venue_time: Option<SystemTime>,
}

impl BookTop {
    fn build<'a>(
        asks: impl Iterator<Item = (&'a str, &'a str)>,
        bids: impl Iterator<Item = (&'a str, &'a str)>,
        levels: usize,
        verified: Verified,
        frames: u64,
    ) -> Self {
        let asks: Vec<_> = asks.take(levels).collect();
        let bids: Vec<_> = bids.take(levels).collect();
        let len = asks
            .iter()
            .chain(&bids)
            .map(|(price, qty)| price.len() + qty.len())
            .sum();
        let mut text = String::with_capacity(len);
        let mut ends = Vec::with_capacity(asks.len() + bids.len());
        for (price, qty) in asks.iter().chain(&bids) {
            text.push_str(price);
            let price_end = text.len();
            text.push_str(qty);
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
            checksum: verified.checksum,
            frames,
            venue_time: verified.venue_time,
            applied: SystemTime::now(),
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

    /// The asks, lowest price first: (price, qty) as the venue sent them
    /// (Kalshi: YES asks derived from NO bids, see the module docs).
    pub fn asks(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        (0..self.asks).map(|i| self.level(i).unwrap_or(("", "")))
    }

    /// The bids, highest price first: (price, qty) as the venue sent them.
    pub fn bids(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        (self.asks..self.ends.len()).map(|i| self.level(i).unwrap_or(("", "")))
    }

    /// The asks, lowest price first, as exact decimals (price, quantity).
    /// A level whose text is not a decimal (the venue's checksum verified it,
    /// so this does not happen on a real feed) is left out.
    pub fn ask_levels(&self) -> impl Iterator<Item = (Decimal, Decimal)> + '_ {
        self.asks().filter_map(decimal_level)
    }

    /// The bids, highest price first, as exact decimals (price, quantity).
    pub fn bid_levels(&self) -> impl Iterator<Item = (Decimal, Decimal)> + '_ {
        self.bids().filter_map(decimal_level)
    }

    /// The best (lowest) ask as exact decimals, if any.
    pub fn best_ask(&self) -> Option<(Decimal, Decimal)> {
        self.ask_levels().next()
    }

    /// The best (highest) bid as exact decimals, if any.
    pub fn best_bid(&self) -> Option<(Decimal, Decimal)> {
        self.bid_levels().next()
    }

    /// The venue checksum this state verified against, for venues that send
    /// one (Kraken: unsigned CRC-32; OKX: signed); `None` where the book is
    /// verified by sequence or update-id continuity instead.
    pub fn checksum(&self) -> Option<i64> {
        self.checksum
    }

    /// Book frames applied since the snapshot (1 for the snapshot itself).
    pub fn updates(&self) -> u64 {
        self.frames
    }

    /// The venue's time of the last applied update, when the venue sends one.
    pub fn venue_time(&self) -> Option<SystemTime> {
        self.venue_time
    }

    /// When the adapter applied the last update: the receive time, give or
    /// take the microseconds between the socket read and classification.
    pub fn applied(&self) -> SystemTime {
        self.applied
    }
}

impl fmt::Debug for BookTop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BookTop")
            .field("asks", &self.asks().collect::<Vec<_>>())
            .field("bids", &self.bids().collect::<Vec<_>>())
            .field("checksum", &self.checksum)
            .field("updates", &self.frames)
            .field("venue_time", &self.venue_time)
            .finish()
    }
}

fn decimal_level((price, qty): (&str, &str)) -> Option<(Decimal, Decimal)> {
    Some((Decimal::parse(price)?, Decimal::parse(qty)?))
}

type Latest = Option<Arc<BookTop>>;

struct Slot {
    tx: watch::Sender<Latest>,
    levels: usize,
    frames: u64,
}

/// The registry of book views shared between an adapter and its consumers.
/// Cheap to clone.
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

    /// Publishes the book of `symbol` (its levels, best first) after a frame
    /// that verified.
    pub(crate) fn verified<'a>(
        &self,
        symbol: &str,
        asks: impl Iterator<Item = (&'a str, &'a str)>,
        bids: impl Iterator<Item = (&'a str, &'a str)>,
        verified: Verified,
    ) {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(symbol) else {
            return;
        };
        if slot.tx.receiver_count() == 0 {
            slots.remove(symbol);
            return;
        }
        slot.frames = if verified.snapshot {
            1
        } else {
            slot.frames + 1
        };
        let top = BookTop::build(asks, bids, slot.levels, verified, slot.frames);
        slot.tx.send_replace(Some(Arc::new(top)));
    }

    /// How many levels per side the views of `symbol` want, or `None` when
    /// no view of it is alive: an adapter that has to format its levels
    /// (Kalshi) formats only these, and nothing for an unwatched book.
    pub(crate) fn levels(&self, symbol: &str) -> Option<usize> {
        let slots = self.lock();
        let slot = slots.get(symbol)?;
        (slot.tx.receiver_count() > 0).then_some(slot.levels)
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

    /// Whether the view holds a verified state now.
    pub fn is_verified(&self) -> bool {
        self.rx.borrow().is_some()
    }

    /// Waits until the state changes (a new verified frame, or it became
    /// unverified), then returns it.
    ///
    /// # Errors
    ///
    /// [`Error::ClientClosed`](crate::Error::ClientClosed) once the adapter is gone.
    pub async fn changed(&mut self) -> Result<Option<Arc<BookTop>>, Error> {
        self.rx.changed().await.map_err(|_| Error::ClientClosed)?;
        Ok(self.rx.borrow_and_update().clone())
    }
}
