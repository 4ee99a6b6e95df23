//! Kalshi's book as `src/protocol/VENUES.md` and the book's module docs
//! describe it, on the plainest structures: two ordered maps of integer
//! units (1e-8 of a dollar or of a contract), with the rules written out
//! again. Numbers are read with [`Decimal::parse`] (the `decimal` target
//! checks the parser); sums, order and `1 - price` are done here in `i128`.

use std::collections::BTreeMap;

use resilient_ws::decimal::Decimal;

/// Units per one: the model works in 1e-8.
pub(crate) const UNIT: i128 = 100_000_000;

/// A number the harness keeps within the model's range: at most 8 decimals
/// and below 1e15 in magnitude. `Err(())` when it is not a decimal at all.
pub(crate) enum Number {
    /// Its value in units.
    Units(i128),
    /// A decimal outside the model's range: the harness skips the line.
    OutOfRange,
}

/// Reads `text` as the book would: `Err` when it is not a decimal.
#[allow(clippy::result_unit_err)]
pub(crate) fn number(text: &str) -> Result<Number, ()> {
    let d = Decimal::parse(text).ok_or(())?;
    Ok(match units_of(&d) {
        Some(u) if u.abs() < 1_000_000_000_000_000 * UNIT => Number::Units(u),
        _ => Number::OutOfRange,
    })
}

/// `d` in units, whatever its size, when it has at most 8 decimals and fits
/// an `i128`. Inputs are capped (see [`number`]); sums of many capped inputs
/// are not, and the book may hold them.
pub(crate) fn units_of(d: &Decimal) -> Option<i128> {
    if d.scale() > 8 {
        return None;
    }
    10i128
        .checked_pow(8 - d.scale())
        .and_then(|f| d.mantissa().checked_mul(f))
}

/// The ways a change may be refused; the book must name one that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Refusal {
    NotADecimal,
    PriceOutOfRange,
    NegativeCount,
    DuplicatePrice,
    BelowZero,
    TooManyLevels,
}

/// One ladder: price units to count units, zero counts never kept.
pub(crate) type Ladder = BTreeMap<i128, i128>;

/// The model book.
#[derive(Debug, Clone, Default)]
pub(crate) struct KalshiModel {
    pub(crate) yes: Ladder,
    pub(crate) no: Ladder,
    pub(crate) cap: usize,
}

impl KalshiModel {
    /// Every rule a snapshot of these (already in-range) levels breaks; an
    /// empty list means it applies.
    pub(crate) fn snapshot(
        &mut self,
        yes: &[(Option<i128>, Option<i128>)],
        no: &[(Option<i128>, Option<i128>)],
    ) -> Vec<Refusal> {
        let mut broken = Vec::new();
        let mut ladders = [Ladder::new(), Ladder::new()];
        for (side, levels) in [yes, no].into_iter().enumerate() {
            let mut seen = Vec::new();
            // Every rule a level breaks counts, whichever the book checks first.
            for &(price, count) in levels {
                if price.is_none() || count.is_none() {
                    broken.push(Refusal::NotADecimal);
                }
                if price.is_some_and(|p| !(0..=UNIT).contains(&p)) {
                    broken.push(Refusal::PriceOutOfRange);
                }
                if count.is_some_and(|c| c < 0) {
                    broken.push(Refusal::NegativeCount);
                }
                let Some(price) = price else { continue };
                if seen.contains(&price) {
                    broken.push(Refusal::DuplicatePrice);
                }
                seen.push(price);
                if let Some(count) = count.filter(|c| *c > 0) {
                    ladders[side].insert(price, count);
                }
            }
            if ladders[side].len() > self.cap {
                broken.push(Refusal::TooManyLevels);
            }
        }
        if broken.is_empty() {
            let [yes, no] = ladders;
            self.yes = yes;
            self.no = no;
        }
        broken
    }

    /// Every rule a delta breaks; empty when it applies.
    pub(crate) fn delta(
        &mut self,
        yes_side: bool,
        price: Option<i128>,
        delta: Option<i128>,
    ) -> Vec<Refusal> {
        let mut broken = Vec::new();
        if price.is_none() || delta.is_none() {
            broken.push(Refusal::NotADecimal);
        }
        if price.is_some_and(|p| !(0..=UNIT).contains(&p)) {
            broken.push(Refusal::PriceOutOfRange);
        }
        let (Some(price), Some(delta), true) = (price, delta, broken.is_empty()) else {
            return broken;
        };
        let cap = self.cap;
        let ladder = if yes_side {
            &mut self.yes
        } else {
            &mut self.no
        };
        let held = ladder.get(&price).copied();
        let count = held.unwrap_or(0) + delta;
        if count < 0 {
            return vec![Refusal::BelowZero];
        }
        if count == 0 {
            ladder.remove(&price);
        } else if held.is_none() && ladder.len() == cap {
            return vec![Refusal::TooManyLevels];
        } else {
            ladder.insert(price, count);
        }
        Vec::new()
    }

    /// The bids, best first: YES bids, highest price first.
    pub(crate) fn bids(&self) -> Vec<(i128, i128)> {
        self.yes.iter().rev().map(|(p, c)| (*p, *c)).collect()
    }

    /// The asks, best first: NO bids as YES asks, lowest price first.
    pub(crate) fn asks(&self, yes_priced: bool) -> Vec<(i128, i128)> {
        let mut asks: Vec<(i128, i128)> = self
            .no
            .iter()
            .map(|(p, c)| (if yes_priced { *p } else { UNIT - *p }, *c))
            .collect();
        asks.sort();
        asks
    }
}
