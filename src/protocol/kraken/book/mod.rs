//! A Kraken v2 order book kept on the exact wire text of its numbers, and the
//! book checksum.
//!
//! Prices and quantities are never converted to floating point: each level keeps
//! the JSON number text the venue sent (`0.00100000` stays `0.00100000`), because
//! the checksum is computed over that text. Prices are ordered by an exact
//! decimal comparison of the text, so `0.001` and `0.00100000` are the same price
//! level (the newer text replaces the older one).
//!
//! ```
//! use resilient_ws::protocol::kraken::Book;
//!
//! let mut book = Book::new(10);
//! book.apply_snapshot(&[("45285.2", "0.00100000")], &[("45283.5", "0.10000000")])?;
//! book.apply_update(&[("45285.2", "0")], &[("45283.40", "1.5")])?;
//! assert_eq!(book.asks().count(), 0);
//! let bids: Vec<_> = book.bids().map(|l| (l.price(), l.qty())).collect();
//! assert_eq!(bids, [("45283.5", "0.10000000"), ("45283.40", "1.5")]);
//! # Ok::<(), resilient_ws::protocol::kraken::BookError>(())
//! ```

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;

/// The longest price or quantity text accepted, in bytes.
pub const MAX_NUMBER_LEN: usize = 64;

/// How many levels of each side the checksum covers.
pub const CHECKSUM_LEVELS: usize = 10;

/// The Kraken v2 book checksum of levels given in book order: asks by ascending
/// price, bids by descending price, each as (price text, qty text). Only the
/// first [`CHECKSUM_LEVELS`] of each side are used.
///
/// For each level the price text with `.` removed and leading zeros stripped,
/// then the quantity the same way, are concatenated, asks first; the result is
/// the CRC-32 (ISO-HDLC) of that string.
///
/// ```
/// use resilient_ws::protocol::kraken::checksum_levels;
/// let crc = checksum_levels(&[("0.05", "10.0")], &[("0.04", "0.5")]);
/// assert_eq!(crc, crc32fast::hash(b"510045"));
/// ```
pub fn checksum_levels(asks: &[(&str, &str)], bids: &[(&str, &str)]) -> u32 {
    checksum_of(asks.iter().copied(), bids.iter().copied())
}

fn checksum_of<'a>(
    asks: impl Iterator<Item = (&'a str, &'a str)>,
    bids: impl Iterator<Item = (&'a str, &'a str)>,
) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    for (price, qty) in asks.take(CHECKSUM_LEVELS).chain(bids.take(CHECKSUM_LEVELS)) {
        feed(&mut hasher, price);
        feed(&mut hasher, qty);
    }
    hasher.finalize()
}

/// Feeds `text` with its dots removed and leading zeros stripped. Removing the
/// dots first makes every leading `0` or `.` part of the stripped prefix.
fn feed(hasher: &mut crc32fast::Hasher, text: &str) {
    for part in text.trim_start_matches(['0', '.']).split('.') {
        hasher.update(part.as_bytes());
    }
}

/// Why a price or quantity text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NumberError {
    /// The text is empty.
    Empty,
    /// The text is longer than [`MAX_NUMBER_LEN`].
    TooLong,
    /// The number is negative.
    Negative,
    /// The number uses exponent notation (`1e5`).
    Exponent,
    /// The text is not digits with at most one `.` between digits.
    NotDecimal,
}

impl fmt::Display for NumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NumberError::Empty => "empty",
            NumberError::TooLong => "too long",
            NumberError::Negative => "negative",
            NumberError::Exponent => "exponent notation",
            NumberError::NotDecimal => "not a plain decimal",
        })
    }
}

impl std::error::Error for NumberError {}

/// A side of the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Sell orders, best (lowest) price first.
    Ask,
    /// Buy orders, best (highest) price first.
    Bid,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Ask => "ask",
            Side::Bid => "bid",
        })
    }
}

/// A book change that could not be applied. The book is left unchanged.
///
/// The error names the offending level but never quotes its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BookError {
    /// A level's price is not a plain non-negative decimal.
    Price {
        /// The side the level was given for.
        side: Side,
        /// The level's position in the list given for that side.
        index: usize,
        /// What is wrong with the text.
        reason: NumberError,
    },
    /// A level's quantity is not a plain non-negative decimal.
    Qty {
        /// The side the level was given for.
        side: Side,
        /// The level's position in the list given for that side.
        index: usize,
        /// What is wrong with the text.
        reason: NumberError,
    },
}

impl fmt::Display for BookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BookError::Price {
                side,
                index,
                reason,
            } => write!(f, "{side} level {index}: price is {reason}"),
            BookError::Qty {
                side,
                index,
                reason,
            } => write!(f, "{side} level {index}: quantity is {reason}"),
        }
    }
}

impl std::error::Error for BookError {}

impl BookError {
    /// A fixed description, for a [`BookBreak::Unusable`](crate::BookBreak::Unusable).
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            BookError::Price { .. } => "a level's price is not a plain non-negative decimal",
            BookError::Qty { .. } => "a level's quantity is not a plain non-negative decimal",
        }
    }
}

/// Compares two price texts as exact decimals.
///
/// ```
/// use std::cmp::Ordering;
/// use resilient_ws::protocol::kraken::cmp_price;
/// assert_eq!(cmp_price("45285.2", "45286.40"), Ok(Ordering::Less));
/// assert_eq!(cmp_price("0.00100000", "0.001"), Ok(Ordering::Equal));
/// assert!(cmp_price("1e5", "1").is_err());
/// ```
///
/// # Errors
///
/// When either text is not a plain non-negative decimal of at most
/// [`MAX_NUMBER_LEN`] bytes.
pub fn cmp_price(a: &str, b: &str) -> Result<Ordering, NumberError> {
    Ok(Decimal::parse(a)?.cmp(Decimal::parse(b)?))
}

/// A validated decimal, normalized for comparison: the integer digits without
/// leading zeros and the fraction digits without trailing zeros.
#[derive(Debug, Clone, Copy)]
struct Decimal<'a> {
    int: &'a str,
    frac: &'a str,
}

impl<'a> Decimal<'a> {
    /// Validates `text`: ASCII digits, optionally one `.` with digits on both sides.
    fn parse(text: &'a str) -> Result<Self, NumberError> {
        if text.is_empty() {
            return Err(NumberError::Empty);
        }
        if text.len() > MAX_NUMBER_LEN {
            return Err(NumberError::TooLong);
        }
        if text.starts_with('-') {
            return Err(NumberError::Negative);
        }
        if text.contains(['e', 'E']) {
            return Err(NumberError::Exponent);
        }
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let valid = match text.split_once('.') {
            Some((int, frac)) => digits(int) && digits(frac),
            None => digits(text),
        };
        if !valid {
            return Err(NumberError::NotDecimal);
        }
        Ok(Decimal::normalize(text))
    }

    /// Normalizes text already known to be valid (no validation; never panics).
    fn normalize(text: &'a str) -> Self {
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        Decimal {
            int: int.trim_start_matches('0'),
            frac: frac.trim_end_matches('0'),
        }
    }

    fn is_zero(self) -> bool {
        self.int.is_empty() && self.frac.is_empty()
    }

    /// Exact numeric order: integer parts by length then digits, then the
    /// fraction digits (trailing zeros stripped, so plain string order works).
    fn cmp(self, other: Decimal<'_>) -> Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(other.int))
            .then_with(|| self.frac.cmp(other.frac))
    }
}

/// One stored level. Equality and order are by price only (as decimals), so a
/// side holds at most one level per price.
#[derive(Debug, Clone)]
struct Entry {
    price: Box<str>,
    qty: Box<str>,
}

impl Entry {
    fn level(&self) -> Level<'_> {
        Level {
            price: &self.price,
            qty: &self.qty,
        }
    }
}

/// The price key a side is ordered by. Lookups by a borrowed price go through
/// `dyn PriceKey`, so deleting a level does not allocate a probe entry.
trait PriceKey {
    fn key(&self) -> Decimal<'_>;
}

impl PriceKey for Entry {
    fn key(&self) -> Decimal<'_> {
        Decimal::normalize(&self.price)
    }
}

struct Probe<'a>(Decimal<'a>);

impl PriceKey for Probe<'_> {
    fn key(&self) -> Decimal<'_> {
        self.0
    }
}

impl<'a> Borrow<dyn PriceKey + 'a> for Entry {
    fn borrow(&self) -> &(dyn PriceKey + 'a) {
        self
    }
}

impl PartialEq for dyn PriceKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key().cmp(other.key()) == Ordering::Equal
    }
}

impl Eq for dyn PriceKey + '_ {}

impl PartialOrd for dyn PriceKey + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn PriceKey + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(other.key())
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key().cmp(other.key()) == Ordering::Equal
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(other.key())
    }
}

/// A price level of a [`Book`], borrowed: the wire text of its price and quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Level<'a> {
    price: &'a str,
    qty: &'a str,
}

impl<'a> Level<'a> {
    /// The price, as the venue last sent it.
    pub fn price(&self) -> &'a str {
        self.price
    }

    /// The quantity, as the venue last sent it (never zero).
    pub fn qty(&self) -> &'a str {
        self.qty
    }
}

/// A Kraken v2 order book for one symbol, truncated to its subscribed depth.
///
/// Invariants, whatever is applied: each side is strictly ordered by price (no
/// two levels at the same decimal price), holds no zero quantity, and has at
/// most [`depth`](Book::depth) levels. A change that cannot be applied leaves
/// the book as it was.
#[derive(Debug, Clone)]
pub struct Book {
    depth: usize,
    /// Ascending by price.
    asks: BTreeSet<Entry>,
    /// Ascending by price (iterated in reverse for best-first order).
    bids: BTreeSet<Entry>,
}

impl Book {
    /// An empty book that keeps at most `depth` levels per side.
    pub fn new(depth: usize) -> Self {
        Book {
            depth,
            asks: BTreeSet::new(),
            bids: BTreeSet::new(),
        }
    }

    /// The number of levels kept per side.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Replaces the whole book with the given levels (price text, qty text).
    /// Zero quantities are ignored, a repeated price keeps its last level, and
    /// each side is truncated to the depth.
    ///
    /// # Errors
    ///
    /// When a price or quantity is not a plain non-negative decimal; the book
    /// is then unchanged.
    pub fn apply_snapshot(
        &mut self,
        asks: &[(&str, &str)],
        bids: &[(&str, &str)],
    ) -> Result<(), BookError> {
        validate(Side::Ask, asks)?;
        validate(Side::Bid, bids)?;
        self.asks.clear();
        self.bids.clear();
        apply(&mut self.asks, asks);
        apply(&mut self.bids, bids);
        self.truncate();
        Ok(())
    }

    /// Applies level changes in order (a zero quantity deletes the level at
    /// that price; otherwise the level is inserted or replaced, taking the new
    /// text), then truncates each side to the depth.
    ///
    /// # Errors
    ///
    /// When a price or quantity is not a plain non-negative decimal; the book
    /// is then unchanged.
    pub fn apply_update(
        &mut self,
        asks: &[(&str, &str)],
        bids: &[(&str, &str)],
    ) -> Result<(), BookError> {
        validate(Side::Ask, asks)?;
        validate(Side::Bid, bids)?;
        apply(&mut self.asks, asks);
        apply(&mut self.bids, bids);
        self.truncate();
        Ok(())
    }

    /// The asks, lowest price first.
    pub fn asks(&self) -> impl DoubleEndedIterator<Item = Level<'_>> + ExactSizeIterator {
        self.asks.iter().map(Entry::level)
    }

    /// The bids, highest price first.
    pub fn bids(&self) -> impl DoubleEndedIterator<Item = Level<'_>> + ExactSizeIterator {
        self.bids.iter().rev().map(Entry::level)
    }

    /// The Kraken checksum of the top [`CHECKSUM_LEVELS`] levels of each side.
    pub fn checksum(&self) -> u32 {
        checksum_of(
            self.asks().map(|l| (l.price, l.qty)),
            self.bids().map(|l| (l.price, l.qty)),
        )
    }

    fn truncate(&mut self) {
        while self.asks.len() > self.depth {
            self.asks.pop_last();
        }
        while self.bids.len() > self.depth {
            self.bids.pop_first();
        }
    }
}

fn validate(side: Side, levels: &[(&str, &str)]) -> Result<(), BookError> {
    for (index, &(price, qty)) in levels.iter().enumerate() {
        Decimal::parse(price).map_err(|reason| BookError::Price {
            side,
            index,
            reason,
        })?;
        Decimal::parse(qty).map_err(|reason| BookError::Qty {
            side,
            index,
            reason,
        })?;
    }
    Ok(())
}

/// Applies validated levels to one side.
fn apply(side: &mut BTreeSet<Entry>, levels: &[(&str, &str)]) {
    for &(price, qty) in levels {
        if Decimal::normalize(qty).is_zero() {
            side.remove(&Probe(Decimal::normalize(price)) as &dyn PriceKey);
        } else {
            side.replace(Entry {
                price: price.into(),
                qty: qty.into(),
            });
        }
    }
}

#[cfg(test)]
mod tests;
