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
mod tests {
    use super::*;

    /// Kraken's published example (PROTOCOLS.md).
    const ASKS: [(&str, &str); 10] = [
        ("45285.2", "0.00100000"),
        ("45286.4", "1.54571953"),
        ("45286.6", "1.54571109"),
        ("45289.6", "1.54560911"),
        ("45290.2", "0.15890660"),
        ("45291.8", "1.54553491"),
        ("45294.7", "0.04454749"),
        ("45296.1", "0.35380000"),
        ("45297.5", "0.09945542"),
        ("45299.5", "0.18772827"),
    ];
    const BIDS: [(&str, &str); 10] = [
        ("45283.5", "0.10000000"),
        ("45283.4", "1.54582015"),
        ("45282.1", "0.10000000"),
        ("45281.0", "0.10000000"),
        ("45280.3", "1.54592586"),
        ("45279.0", "0.07990000"),
        ("45277.6", "0.03310103"),
        ("45277.5", "0.30000000"),
        ("45277.3", "1.54602737"),
        ("45276.6", "0.15445238"),
    ];

    fn levels<'a>(it: impl Iterator<Item = Level<'a>>) -> Vec<(&'a str, &'a str)> {
        it.map(|l| (l.price(), l.qty())).collect()
    }

    /// Checks the documented invariants.
    fn check(book: &Book) {
        let asks = levels(book.asks());
        let bids = levels(book.bids());
        for side in [&asks, &bids] {
            assert!(side.len() <= book.depth());
            for (p, q) in side {
                assert!(!Decimal::parse(q).unwrap().is_zero(), "zero qty at {p}");
            }
        }
        for w in asks.windows(2) {
            assert_eq!(cmp_price(w[0].0, w[1].0), Ok(Ordering::Less), "{asks:?}");
        }
        for w in bids.windows(2) {
            assert_eq!(cmp_price(w[0].0, w[1].0), Ok(Ordering::Greater), "{bids:?}");
        }
    }

    #[test]
    fn published_example_checksum() {
        assert_eq!(checksum_levels(&ASKS, &BIDS), 3_310_070_434);
        let mut book = Book::new(10);
        book.apply_snapshot(&ASKS, &BIDS).unwrap();
        assert_eq!(book.checksum(), 3_310_070_434);
        assert_eq!(levels(book.asks()), ASKS);
        assert_eq!(levels(book.bids()), BIDS);
        check(&book);
    }

    #[test]
    fn checksum_uses_only_the_top_ten_of_each_side() {
        let mut asks = ASKS.to_vec();
        asks.push(("45300.0", "9.0"));
        let mut bids = BIDS.to_vec();
        bids.push(("45000.0", "9.0"));
        assert_eq!(checksum_levels(&asks, &bids), 3_310_070_434);
        // Through floats the text would lose its zeros and give another value.
        let floats: Vec<(String, String)> = ASKS
            .iter()
            .chain(BIDS.iter())
            .map(|(p, q)| {
                (
                    p.parse::<f64>().unwrap().to_string(),
                    q.parse::<f64>().unwrap().to_string(),
                )
            })
            .collect();
        let (fa, fb) = floats.split_at(10);
        let fa: Vec<(&str, &str)> = fa.iter().map(|(p, q)| (p.as_str(), q.as_str())).collect();
        let fb: Vec<(&str, &str)> = fb.iter().map(|(p, q)| (p.as_str(), q.as_str())).collect();
        assert_ne!(checksum_levels(&fa, &fb), 3_310_070_434);
    }

    #[test]
    fn checksum_text_drops_dots_and_leading_zeros() {
        assert_eq!(
            checksum_levels(&[("0.00100000", "0.5")], &[]),
            crc32fast::hash(b"1000005")
        );
        assert_eq!(
            checksum_levels(&[("10.05", "100")], &[]),
            crc32fast::hash(b"1005100")
        );
        assert_eq!(checksum_levels(&[], &[]), 0);
    }

    #[test]
    fn decimal_comparison_is_exact() {
        assert_eq!(cmp_price("45285.2", "45286.40"), Ok(Ordering::Less));
        assert_eq!(cmp_price("0.00100000", "0.001"), Ok(Ordering::Equal));
        assert_eq!(cmp_price("007", "7.000"), Ok(Ordering::Equal));
        assert_eq!(cmp_price("9.99", "10"), Ok(Ordering::Less));
        assert_eq!(cmp_price("0.12", "0.2"), Ok(Ordering::Less));
        assert_eq!(cmp_price("0.1", "0.12"), Ok(Ordering::Less));
        assert_eq!(cmp_price("100", "99.999999"), Ok(Ordering::Greater));
        assert_eq!(cmp_price("0", "0.000"), Ok(Ordering::Equal));
        // Differs only beyond f64 precision.
        assert_eq!(
            cmp_price("1.00000000000000000001", "1"),
            Ok(Ordering::Greater)
        );
    }

    #[test]
    fn odd_number_text_is_an_error_not_a_panic() {
        let long = "9".repeat(10_000);
        let cases: [(&str, NumberError); 12] = [
            ("1e5", NumberError::Exponent),
            ("1E5", NumberError::Exponent),
            ("-1", NumberError::Negative),
            ("", NumberError::Empty),
            ("abc", NumberError::NotDecimal),
            ("+1", NumberError::NotDecimal),
            (".5", NumberError::NotDecimal),
            ("5.", NumberError::NotDecimal),
            ("1.2.3", NumberError::NotDecimal),
            (" 1", NumberError::NotDecimal),
            ("\"1\"", NumberError::NotDecimal),
            (&long, NumberError::TooLong),
        ];
        for (text, reason) in cases {
            let mut book = Book::new(10);
            book.apply_snapshot(&ASKS, &BIDS).unwrap();
            assert_eq!(
                book.apply_update(&[("1", "1"), (text, "1")], &[]),
                Err(BookError::Price {
                    side: Side::Ask,
                    index: 1,
                    reason
                })
            );
            assert_eq!(
                book.apply_update(&[], &[(text, "1")]),
                Err(BookError::Price {
                    side: Side::Bid,
                    index: 0,
                    reason
                })
            );
            assert_eq!(
                book.apply_snapshot(&[("1", text)], &[]),
                Err(BookError::Qty {
                    side: Side::Ask,
                    index: 0,
                    reason
                })
            );
            // Unchanged, including the valid level before the bad one.
            assert_eq!(book.checksum(), 3_310_070_434, "{text:.20}");
            assert!(cmp_price(text, "1").is_err());
            let err = BookError::Price {
                side: Side::Ask,
                index: 1,
                reason,
            };
            assert!(err.to_string().len() < 60);
        }
        let max = "1".repeat(MAX_NUMBER_LEN);
        assert!(Book::new(1).apply_update(&[(&max, &max)], &[]).is_ok());
    }

    #[test]
    fn zero_quantity_deletes_and_replacement_keeps_the_new_text() {
        let mut book = Book::new(10);
        book.apply_snapshot(&ASKS, &BIDS).unwrap();
        book.apply_update(
            &[("45285.20", "0.0")],
            &[("45283.50", "2"), ("45283.4", "0")],
        )
        .unwrap();
        check(&book);
        assert_eq!(book.asks().len(), 9);
        assert_eq!(book.asks().next().map(|l| l.price()), Some("45286.4"));
        assert_eq!(book.bids().len(), 9);
        assert_eq!(
            levels(book.bids().take(2)),
            [("45283.50", "2"), ("45282.1", "0.10000000")]
        );
        // Deleting a price that is not there is a no-op.
        book.apply_update(&[("1", "0")], &[]).unwrap();
        assert_eq!(book.asks().len(), 9);
        // A zero quantity in a snapshot is not stored.
        book.apply_snapshot(&[("1", "0.000"), ("2", "1")], &[])
            .unwrap();
        assert_eq!(levels(book.asks()), [("2", "1")]);
        assert_eq!(book.bids().len(), 0);
    }

    #[test]
    fn equal_prices_with_different_text_are_one_level() {
        let mut book = Book::new(10);
        book.apply_update(&[("0.00100000", "1"), ("0.001", "2")], &[])
            .unwrap();
        assert_eq!(levels(book.asks()), [("0.001", "2")]);
        book.apply_update(&[("0.0010", "3")], &[]).unwrap();
        assert_eq!(levels(book.asks()), [("0.0010", "3")]);
        // The checksum uses the stored text, not a normalized form.
        assert_eq!(book.checksum(), crc32fast::hash(b"103"));
    }

    #[test]
    fn truncation_happens_after_all_changes() {
        let mut book = Book::new(3);
        book.apply_snapshot(
            &[("1", "1"), ("2", "1"), ("3", "1"), ("4", "1")],
            &[("9", "1"), ("8", "1"), ("7", "1"), ("6", "1")],
        )
        .unwrap();
        assert_eq!(levels(book.asks()), [("1", "1"), ("2", "1"), ("3", "1")]);
        assert_eq!(levels(book.bids()), [("9", "1"), ("8", "1"), ("7", "1")]);
        // A better level pushes the worst one out...
        book.apply_update(&[("0.5", "1")], &[("9.5", "1")]).unwrap();
        assert_eq!(levels(book.asks()), [("0.5", "1"), ("1", "1"), ("2", "1")]);
        assert_eq!(levels(book.bids()), [("9.5", "1"), ("9", "1"), ("8", "1")]);
        // ...and is truncated only after the whole message: insert then delete in
        // one update keeps the level that would otherwise have been cut.
        book.apply_update(&[("0.1", "1"), ("0.1", "0")], &[])
            .unwrap();
        assert_eq!(levels(book.asks()), [("0.5", "1"), ("1", "1"), ("2", "1")]);
        check(&book);
        let mut zero = Book::new(0);
        zero.apply_snapshot(&ASKS, &BIDS).unwrap();
        assert_eq!(
            (zero.asks().len(), zero.bids().len(), zero.checksum()),
            (0, 0, 0)
        );
    }

    #[test]
    fn invariants_hold_under_pseudo_random_changes() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let prices = [
            "1", "1.0", "01", "1.5", "2", "2.50", "2.5", "3", "10", "0.9", "0.90",
        ];
        let qtys = ["0", "0.0", "1", "2.5", "0.001"];
        let mut book = Book::new(4);
        for _ in 0..2_000 {
            let n = (next() % 4) as usize;
            let pick = |r: u64| (prices[(r % 11) as usize], qtys[((r >> 8) % 5) as usize]);
            let asks: Vec<_> = (0..n).map(|_| pick(next())).collect();
            let bids: Vec<_> = (0..n).map(|_| pick(next())).collect();
            if next() % 10 == 0 {
                book.apply_snapshot(&asks, &bids).unwrap();
            } else {
                book.apply_update(&asks, &bids).unwrap();
            }
            check(&book);
        }
    }
}
