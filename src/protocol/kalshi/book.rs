//! One Kalshi market's order book, from `orderbook_snapshot` and
//! `orderbook_delta`, in exact decimals.
//!
//! Kalshi's book holds bids only, one ladder per outcome: YES bids and NO
//! bids, each level a price in dollars and a contract count, both
//! fixed-point strings since the 2026 migration (`src/protocol/VENUES.md`,
//! "Kalshi"). A snapshot gives each ladder whole (`yes_dollars_fp`,
//! `no_dollars_fp`, a ladder absent when empty); a delta adds a signed
//! `delta_fp` to the count at `price_dollars` on `side`. Rules, and why:
//!
//! - Prices and counts are [`Decimal`]s: exact sums, never `f64` (a count
//!   that drifts by `1e-16` is a phantom level that never goes away).
//! - A price outside `[0, 1]` dollars, a count below zero, a number that is
//!   not a decimal, a price twice in one ladder of a snapshot, or a sum that
//!   does not fit is refused ([`KalshiBookError`]) and the book is left as it
//!   was: the caller treats it as a break.
//! - A delta that takes a count below zero is refused the same way: the book
//!   and the venue disagree, so the book is no longer the venue's.
//! - A count that reaches zero removes the level; a snapshot's zero levels
//!   are not kept.
//! - Each ladder holds at most `max_levels` levels (count); every level is two
//!   fixed-size decimals, so that bounds the bytes too. More is refused, not
//!   truncated: a bids-only book cut at depth N would show the wrong best
//!   levels once the top ones are taken. [`MAX_LEVELS`] covers every price a
//!   market with four decimals can have; at most 64 bytes a level (two
//!   `Decimal`s) that is at most about 640 KiB of entries per ladder, plus
//!   the map's nodes. A venue that sent more would be refused at every
//!   snapshot: each refusal is a break and a resync, logged at debug.

use std::collections::BTreeMap;
use std::fmt;

use crate::decimal::Decimal;

/// The most levels a ladder holds by default: every price from `0.0000` to
/// `1.0000` in steps of `0.0001` (Kalshi's finest tick) fits.
pub(crate) const MAX_LEVELS: usize = 10_001;

/// Why a snapshot or delta was refused (the book did not change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KalshiBookError {
    /// A price or count that is not a decimal number (or does not fit).
    NotADecimal,
    /// A price outside `[0, 1]` dollars.
    PriceOutOfRange,
    /// A snapshot level with a negative count.
    NegativeCount,
    /// A snapshot that names one price twice in one ladder.
    DuplicatePrice,
    /// A delta that would take a count below zero.
    BelowZero,
    /// More levels in one ladder than the book holds.
    TooManyLevels,
}

impl KalshiBookError {
    /// What was refused, in words.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::NotADecimal => "a price or count is not a decimal number",
            Self::PriceOutOfRange => "a price is outside [0, 1] dollars",
            Self::NegativeCount => "a snapshot level has a negative count",
            Self::DuplicatePrice => "a snapshot names a price twice",
            Self::BelowZero => "a delta takes a count below zero",
            Self::TooManyLevels => "more levels than the book holds",
        }
    }
}

impl fmt::Display for KalshiBookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// The side of Kalshi's book a level is on: bids for the YES or the NO outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Bids to buy YES.
    Yes,
    /// Bids to buy NO.
    No,
}

impl Outcome {
    /// `"yes"` or `"no"`, as the venue names a delta's `side`.
    pub(crate) fn parse(side: &str) -> Option<Outcome> {
        match side {
            "yes" => Some(Outcome::Yes),
            "no" => Some(Outcome::No),
            _ => None,
        }
    }
}

type Ladder = BTreeMap<Decimal, Decimal>;

/// One market's book: YES bids and NO bids, price to count. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KalshiBook {
    yes: Ladder,
    no: Ladder,
    max_levels: usize,
}

impl Default for KalshiBook {
    fn default() -> Self {
        Self::new(MAX_LEVELS)
    }
}

impl KalshiBook {
    /// An empty book whose ladders hold at most `max_levels` levels each.
    pub fn new(max_levels: usize) -> Self {
        KalshiBook {
            yes: Ladder::new(),
            no: Ladder::new(),
            max_levels,
        }
    }

    /// Replaces both ladders with a snapshot's `(price, count)` levels.
    ///
    /// # Errors
    ///
    /// See the module docs; the book is unchanged on an error.
    pub fn apply_snapshot(
        &mut self,
        yes: &[(&str, &str)],
        no: &[(&str, &str)],
    ) -> Result<(), KalshiBookError> {
        let yes = self.ladder(yes)?;
        let no = self.ladder(no)?;
        self.yes = yes;
        self.no = no;
        Ok(())
    }

    fn ladder(&self, levels: &[(&str, &str)]) -> Result<Ladder, KalshiBookError> {
        let mut ladder = Ladder::new();
        let mut seen = std::collections::BTreeSet::new();
        for &(price, count) in levels {
            let price = parse_price(price)?;
            let count = Decimal::parse(count).ok_or(KalshiBookError::NotADecimal)?;
            if count.is_negative() {
                return Err(KalshiBookError::NegativeCount);
            }
            if !seen.insert(price) {
                return Err(KalshiBookError::DuplicatePrice);
            }
            if !count.is_zero() {
                ladder.insert(price, count);
                if ladder.len() > self.max_levels {
                    return Err(KalshiBookError::TooManyLevels);
                }
            }
        }
        Ok(ladder)
    }

    /// Adds `delta` contracts to the level at `price` on `side`.
    ///
    /// # Errors
    ///
    /// See the module docs; the book is unchanged on an error.
    pub fn apply_delta(
        &mut self,
        side: Outcome,
        price: &str,
        delta: &str,
    ) -> Result<(), KalshiBookError> {
        let price = parse_price(price)?;
        let delta = Decimal::parse(delta).ok_or(KalshiBookError::NotADecimal)?;
        let max_levels = self.max_levels;
        let ladder = match side {
            Outcome::Yes => &mut self.yes,
            Outcome::No => &mut self.no,
        };
        let count = match ladder.get(&price) {
            Some(old) => old.checked_add(delta),
            None => Some(delta),
        }
        .ok_or(KalshiBookError::NotADecimal)?;
        if count.is_negative() {
            return Err(KalshiBookError::BelowZero);
        }
        if count.is_zero() {
            ladder.remove(&price);
            return Ok(());
        }
        if !ladder.contains_key(&price) && ladder.len() >= max_levels {
            return Err(KalshiBookError::TooManyLevels);
        }
        ladder.insert(price, count);
        Ok(())
    }

    /// The YES bids, highest price first: the book's bids.
    pub fn bids(&self) -> impl Iterator<Item = (Decimal, Decimal)> + '_ {
        self.yes.iter().rev().map(|(p, c)| (*p, *c))
    }

    /// The YES asks, lowest price first: each NO bid is an offer to sell YES.
    /// With `yes_priced` (the subscription asked for `use_yes_price`) the NO
    /// ladder is already in YES-leg prices; otherwise a NO bid at `p` is a
    /// YES ask at `1 - p`, computed exactly at `p`'s scale.
    pub fn asks(&self, yes_priced: bool) -> impl Iterator<Item = (Decimal, Decimal)> + '_ {
        let (direct, derived) = if yes_priced {
            (Some(self.no.iter()), None)
        } else {
            (None, Some(self.no.iter().rev()))
        };
        let one = Decimal::new(1, 0).unwrap_or(Decimal::ZERO);
        direct.into_iter().flatten().map(|(p, c)| (*p, *c)).chain(
            derived.into_iter().flatten().filter_map(move |(p, c)| {
                // `p` is in [0, 1] with a scale of at most 28: always fits.
                Some((one.checked_sub(*p)?, *c))
            }),
        )
    }

    /// Levels held per ladder (YES, NO).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn len(&self) -> (usize, usize) {
        (self.yes.len(), self.no.len())
    }
}

/// A price in `[0, 1]` dollars.
fn parse_price(text: &str) -> Result<Decimal, KalshiBookError> {
    let price = Decimal::parse(text).ok_or(KalshiBookError::NotADecimal)?;
    let one = Decimal::new(1, 0).unwrap_or(Decimal::ZERO);
    if price.is_negative() || price > one {
        return Err(KalshiBookError::PriceOutOfRange);
    }
    Ok(price)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text).unwrap()
    }

    fn text(levels: impl Iterator<Item = (Decimal, Decimal)>) -> Vec<(String, String)> {
        levels
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect()
    }

    fn pairs(levels: &[(&str, &str)]) -> Vec<(String, String)> {
        levels
            .iter()
            .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
            .collect()
    }

    #[test]
    fn snapshot_then_deltas_give_the_exact_book() {
        let mut book = KalshiBook::default();
        book.apply_snapshot(
            &[("0.0800", "300.00"), ("0.2200", "333.00")],
            &[("0.5400", "20.00"), ("0.5600", "146.00")],
        )
        .unwrap();
        assert_eq!(
            text(book.bids()),
            pairs(&[("0.2200", "333.00"), ("0.0800", "300.00")])
        );
        // NO 0.56 is a YES ask at 0.44; NO 0.54 at 0.46.
        assert_eq!(
            text(book.asks(false)),
            pairs(&[("0.4400", "146.00"), ("0.4600", "20.00")])
        );
        assert_eq!(
            text(book.asks(true)),
            pairs(&[("0.5400", "20.00"), ("0.5600", "146.00")])
        );
        book.apply_delta(Outcome::Yes, "0.0800", "-100.00").unwrap();
        book.apply_delta(Outcome::Yes, "0.22", "-333").unwrap();
        book.apply_delta(Outcome::No, "0.5500", "0.10").unwrap();
        // Fractional counts accumulate exactly: no phantom level remains.
        for _ in 0..10 {
            book.apply_delta(Outcome::No, "0.5400", "-2.00").unwrap();
        }
        assert_eq!(text(book.bids()), pairs(&[("0.0800", "200.00")]));
        assert_eq!(
            text(book.asks(false)),
            pairs(&[("0.4400", "146.00"), ("0.4500", "0.10")])
        );
        assert_eq!(book.len(), (1, 2));
    }

    #[test]
    fn a_level_is_two_fixed_size_decimals() {
        // The byte bound in the module docs rests on this.
        assert!(std::mem::size_of::<(Decimal, Decimal)>() <= 64);
    }

    #[test]
    fn refusals_leave_the_book_as_it_was() {
        let mut book = KalshiBook::new(2);
        book.apply_snapshot(&[("0.10", "1")], &[]).unwrap();
        let before = book.clone();
        for (side, price, delta, error) in [
            (Outcome::Yes, "0.10", "-1.01", KalshiBookError::BelowZero),
            (Outcome::No, "0.30", "-1", KalshiBookError::BelowZero),
            (
                Outcome::Yes,
                "1.0001",
                "1",
                KalshiBookError::PriceOutOfRange,
            ),
            (Outcome::Yes, "-0.1", "1", KalshiBookError::PriceOutOfRange),
            (Outcome::Yes, "x", "1", KalshiBookError::NotADecimal),
            (Outcome::Yes, "0.5", "", KalshiBookError::NotADecimal),
        ] {
            assert_eq!(book.apply_delta(side, price, delta), Err(error));
            assert_eq!(book, before);
        }
        book.apply_delta(Outcome::Yes, "0.20", "1").unwrap();
        assert_eq!(
            book.apply_delta(Outcome::Yes, "0.30", "1"),
            Err(KalshiBookError::TooManyLevels)
        );
        // A level that exists may still change at the cap.
        book.apply_delta(Outcome::Yes, "0.20", "1").unwrap();
        let before = book.clone();
        for (yes, error) in [
            (
                &[("0.1", "1"), ("0.10", "2")][..],
                KalshiBookError::DuplicatePrice,
            ),
            (&[("0.1", "-1")][..], KalshiBookError::NegativeCount),
            (
                &[("0.1", "1"), ("0.2", "1"), ("0.3", "1")][..],
                KalshiBookError::TooManyLevels,
            ),
        ] {
            assert_eq!(book.apply_snapshot(yes, &[]), Err(error));
            assert_eq!(book, before);
        }
        // Zero levels are not kept, and do not count against the cap.
        book.apply_snapshot(&[("0.1", "0"), ("0.2", "1"), ("0.3", "1")], &[])
            .unwrap();
        assert_eq!(book.len(), (2, 0));
        assert_eq!(text(book.bids())[0].0, d("0.3").to_string());
    }
}
