//! The WEEX V3 depth book of each subscribed depth stream, kept as exact
//! decimals and published to the shared [`BookViews`].
//!
//! Rules, with the facts and their sources in `src/protocol/VENUES.md`:
//! - A snapshot (`depthSnapshot` / `d:"SNAPSHOT"`) replaces the whole book
//!   with its `b` (bids) and `a` (asks), each a list of `[price, qty]`
//!   (strings; JSON numbers are read the same way). A `CHANGED` push sets
//!   each level it names; a quantity of zero deletes that price.
//! - Prices are keyed by exact [`Decimal`] value, so `"100.40"` and
//!   `"100.4"` are one level (the newer text replaces the older). The wire
//!   text of each level is kept, so the view shows what the venue sent.
//! - A level that is not a non-negative decimal (or does not fit a
//!   [`Decimal`]) makes the whole push unusable: the book is left as it was
//!   and the caller treats it as a break (dropped, signalled, resynced).
//! - The book is published to the views of its symbol (the push's `s`)
//!   only while its update-id chain holds (`chain.rs`); a break, a lost
//!   connection or the end of the subscription drops the book and clears the
//!   views until the next snapshot. With two depth streams of one symbol
//!   (`depth15` and `depth200`) both publish to that symbol's view: their
//!   top levels are the same book.
//! - Memory: one book per subscribed depth stream (the caller passes only
//!   subscribed streams); after each push a side holds at most
//!   [`MAX_LEVELS_PER_SIDE`] levels, each at most
//!   [`MAX_TEXT_LEN`](crate::decimal::MAX_TEXT_LEN) bytes of price and of
//!   quantity text, so a side is bounded in count and bytes whatever the
//!   peer sends (within one push, by the frame size limit too). At the cap
//!   the worst-priced levels (the far end of the side) are dropped: the top
//!   of the book, which views read, is unaffected, and WEEX subscribes at
//!   most 200 levels.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::super::ServerId;
use crate::book::{BookViews, Verified};
use crate::decimal::Decimal;

/// Levels kept per side of one book; beyond it the worst are dropped. Five
/// times WEEX's deepest subscription (200), so churn below the top never
/// reaches it on a real feed.
pub const MAX_LEVELS_PER_SIDE: usize = 1000;

/// A push's levels that cannot be applied; the book is left unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelError {
    /// `b`/`a` is not a list of `[price, qty]` pairs.
    Shape,
    /// A price or quantity is not a non-negative decimal that fits.
    Number,
}

impl LevelError {
    /// A fixed description, for a [`BookBreak::Unusable`](crate::BookBreak::Unusable).
    pub(crate) fn reason(self) -> &'static str {
        match self {
            LevelError::Shape => "levels are not [price, qty] pairs",
            LevelError::Number => "a price or quantity is not a non-negative decimal",
        }
    }
}

impl fmt::Display for LevelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// One stored level: the wire text of its price and quantity.
#[derive(Debug, Clone)]
struct Level {
    price: Box<str>,
    qty: Box<str>,
}

/// One side, keyed by exact price (ascending).
type Side = BTreeMap<Decimal, Level>;

/// A WEEX depth book: asks and bids by exact price, wire text kept.
///
/// Invariants, whatever is applied: one level per decimal price, no zero
/// quantity, no negative number, at most [`MAX_LEVELS_PER_SIDE`] levels per
/// side. A push that cannot be applied leaves the book as it was.
#[derive(Debug, Clone)]
pub struct DepthBook {
    asks: Side,
    bids: Side,
    /// Levels kept per side after each push.
    cap: usize,
}

impl Default for DepthBook {
    fn default() -> Self {
        DepthBook::with_cap(MAX_LEVELS_PER_SIDE)
    }
}

/// A validated change: exact price and quantity with their text.
type Change<'a> = (Decimal, Decimal, &'a str, &'a str);

impl DepthBook {
    /// An empty book keeping at most `cap` levels per side (the adapter uses
    /// [`MAX_LEVELS_PER_SIDE`]; the fuzz target a small cap, to reach it).
    pub fn with_cap(cap: usize) -> Self {
        DepthBook {
            asks: Side::new(),
            bids: Side::new(),
            cap,
        }
    }

    /// Replaces the book with the given levels (price text, qty text). Zero
    /// quantities are skipped; a repeated price keeps its last level; each
    /// side is then cut to the cap (its worst levels dropped).
    pub fn apply_snapshot(
        &mut self,
        asks: &[(&str, &str)],
        bids: &[(&str, &str)],
    ) -> Result<(), LevelError> {
        let (asks, bids) = (validate(asks)?, validate(bids)?);
        self.asks.clear();
        self.bids.clear();
        apply(&mut self.asks, &asks);
        apply(&mut self.bids, &bids);
        self.truncate();
        Ok(())
    }

    /// Applies changes in order: a zero quantity deletes the price, any
    /// other sets it (taking the new text); each side is then cut to the cap.
    pub fn apply_changes(
        &mut self,
        asks: &[(&str, &str)],
        bids: &[(&str, &str)],
    ) -> Result<(), LevelError> {
        let (asks, bids) = (validate(asks)?, validate(bids)?);
        apply(&mut self.asks, &asks);
        apply(&mut self.bids, &bids);
        self.truncate();
        Ok(())
    }

    fn truncate(&mut self) {
        // The worst levels go: the highest asks, the lowest bids.
        while self.asks.len() > self.cap {
            self.asks.pop_last();
        }
        while self.bids.len() > self.cap {
            self.bids.pop_first();
        }
    }

    /// The asks, lowest price first, as (price, qty) wire text.
    pub fn asks(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.asks.values().map(|l| (&*l.price, &*l.qty))
    }

    /// The bids, highest price first, as (price, qty) wire text.
    pub fn bids(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.bids.values().rev().map(|l| (&*l.price, &*l.qty))
    }
}

fn validate<'a>(levels: &[(&'a str, &'a str)]) -> Result<Vec<Change<'a>>, LevelError> {
    levels
        .iter()
        .map(|&(price, qty)| {
            let p = Decimal::parse(price).filter(|d| !d.is_negative());
            let q = Decimal::parse(qty).filter(|d| !d.is_negative());
            match (p, q) {
                (Some(p), Some(q)) => Ok((p, q, price, qty)),
                _ => Err(LevelError::Number),
            }
        })
        .collect()
}

fn apply(side: &mut Side, changes: &[Change<'_>]) {
    for &(price, qty, price_text, qty_text) in changes {
        if qty.is_zero() {
            side.remove(&price);
        } else {
            side.insert(
                price,
                Level {
                    price: price_text.into(),
                    qty: qty_text.into(),
                },
            );
        }
    }
}

/// One `[price, qty]` of a push, as text (a string's content or a number).
struct WireLevel<'a>(&'a RawValue, &'a RawValue);

impl<'de: 'a, 'a> Deserialize<'de> for WireLevel<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (price, qty) = <(&'a RawValue, &'a RawValue)>::deserialize(d)?;
        Ok(WireLevel(price, qty))
    }
}

/// The text of a JSON string without escapes, or of a number.
fn scalar_text(raw: &RawValue) -> Option<&str> {
    let text = raw.get();
    match text.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').filter(|t| !t.contains('\\')),
        None => Some(text),
    }
}

/// A push's `b` or `a` as (price, qty) text; absent is empty.
pub(super) fn wire_levels(raw: Option<&RawValue>) -> Result<Vec<(&str, &str)>, LevelError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let levels: Vec<WireLevel<'_>> =
        serde_json::from_str(raw.get()).map_err(|_| LevelError::Shape)?;
    levels
        .iter()
        .map(|WireLevel(p, q)| match (scalar_text(p), scalar_text(q)) {
            (Some(p), Some(q)) => Ok((p, q)),
            _ => Err(LevelError::Shape),
        })
        .collect()
}

/// One depth push, as far as the book needs it.
pub(super) struct Push<'a> {
    /// The push's symbol (`s`): the key of its views.
    pub(super) symbol: Option<&'a str>,
    /// A snapshot (replaces the book) or a `CHANGED` push.
    pub(super) snapshot: bool,
    /// `a`, raw.
    pub(super) asks: Option<&'a RawValue>,
    /// `b`, raw.
    pub(super) bids: Option<&'a RawValue>,
    /// The venue's time of the push (`E`).
    pub(super) venue_time: Option<SystemTime>,
}

/// The book of each subscribed depth stream, and the views they publish to.
#[derive(Debug, Default)]
pub(super) struct DepthBooks {
    books: HashMap<ServerId, (Box<str>, DepthBook)>,
    views: BookViews,
}

impl DepthBooks {
    /// The shared views.
    pub(super) fn views(&self) -> BookViews {
        self.views.clone()
    }

    /// Applies a push whose update ids continue the chain (or a snapshot).
    /// `Err` means it could not be applied: the book is dropped (views
    /// cleared), and the caller reports a break.
    pub(super) fn apply(
        &mut self,
        server_id: &ServerId,
        push: &Push<'_>,
    ) -> Result<(), LevelError> {
        let result = self.try_apply(server_id, push);
        if let Err(error) = result {
            tracing::debug!(%server_id, %error, "weex: depth push cannot be applied; dropping the book");
            self.drop_book(server_id);
        }
        result
    }

    fn try_apply(&mut self, server_id: &ServerId, push: &Push<'_>) -> Result<(), LevelError> {
        let asks = wire_levels(push.asks)?;
        let bids = wire_levels(push.bids)?;
        let symbol = push.symbol.unwrap_or_default();
        if push.snapshot {
            let mut book = DepthBook::default();
            book.apply_snapshot(&asks, &bids)?;
            self.books.insert(server_id.clone(), (symbol.into(), book));
        } else {
            match self.books.get_mut(server_id) {
                Some((_, book)) => book.apply_changes(&asks, &bids)?,
                // Before a snapshot (or after a break): nothing to apply to.
                None => return Ok(()),
            }
        }
        if let Some((symbol, book)) = self.books.get(server_id) {
            self.views.verified(
                symbol,
                book.asks(),
                book.bids(),
                Verified {
                    checksum: None,
                    snapshot: push.snapshot,
                    venue_time: push.venue_time,
                },
            );
        }
        Ok(())
    }

    /// Drops a stream's book and clears its symbol's views (a break, or the
    /// subscription ended).
    pub(super) fn drop_book(&mut self, server_id: &ServerId) {
        if let Some((symbol, _)) = self.books.remove(server_id) {
            self.views.invalidate(Some(&symbol));
        }
    }

    /// Drops the book of the stream named `stream` (`SYMBOL@depth15`).
    pub(super) fn drop_stream(&mut self, stream: &str) {
        let found = self
            .books
            .keys()
            .find(|id| matches!(id, ServerId::Key(key) if **key == *stream))
            .cloned();
        if let Some(id) = found {
            self.drop_book(&id);
        }
    }

    /// Drops every book (the connection was lost).
    pub(super) fn clear(&mut self) {
        self.books.clear();
        self.views.invalidate(None);
    }

    /// The book of a stream, if it has one (for tests).
    #[cfg(test)]
    pub(super) fn book(&self, server_id: &ServerId) -> Option<&DepthBook> {
        self.books.get(server_id).map(|(_, book)| book)
    }

    /// How many books are kept (for bound tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.books.len()
    }
}
