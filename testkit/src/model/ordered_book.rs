//! A naive order book: each side a `BTreeMap` keyed by the exact decimal
//! value of the price (the digit-string reference of `model/decimal.rs`,
//! not the library's `Decimal`), holding the wire text of the last level
//! set at that price.
//!
//! Written from the rules the venues document: a snapshot replaces the
//! book, a change sets a price's level or, with a zero quantity, deletes
//! it; after each push a side keeps only its best `depth` levels (Kraken:
//! the subscribed depth; WEEX: the library's cap).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::decimal::{self as reference, RefDecimal};

/// An exact price, ordered by value.
#[derive(Debug, Clone)]
struct Price(RefDecimal);

impl PartialEq for Price {
    fn eq(&self, other: &Self) -> bool {
        self.0.compare(&other.0) == Ordering::Equal
    }
}

impl Eq for Price {}

impl PartialOrd for Price {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Price {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.compare(&other.0)
    }
}

/// (price text, qty text), best first.
pub(crate) type TextLevels = Vec<(String, String)>;

/// The naive book.
#[derive(Debug, Default, Clone)]
pub(crate) struct OrderedBook {
    asks: BTreeMap<Price, (String, String)>,
    bids: BTreeMap<Price, (String, String)>,
}

impl OrderedBook {
    /// Applies one push of levels the caller has found valid (each price
    /// and quantity readable by the reference).
    ///
    /// # Panics
    ///
    /// When a level is not a decimal the reference reads.
    pub(crate) fn apply(
        &mut self,
        snapshot: bool,
        asks: &[(&str, &str)],
        bids: &[(&str, &str)],
        depth: usize,
    ) {
        if snapshot {
            self.asks.clear();
            self.bids.clear();
        }
        for (side, levels) in [(&mut self.asks, asks), (&mut self.bids, bids)] {
            for &(price, qty) in levels {
                let key = Price(reference::parse(price).expect("a valid price"));
                let qty_value = reference::parse(qty).expect("a valid quantity");
                if qty_value.int.is_empty() && qty_value.frac.is_empty() {
                    side.remove(&key);
                } else {
                    side.insert(key, (price.to_owned(), qty.to_owned()));
                }
            }
        }
        while self.asks.len() > depth {
            self.asks.pop_last();
        }
        while self.bids.len() > depth {
            self.bids.pop_first();
        }
    }

    /// The asks, lowest first.
    pub(crate) fn asks(&self) -> TextLevels {
        self.asks.values().cloned().collect()
    }

    /// The bids, highest first.
    pub(crate) fn bids(&self) -> TextLevels {
        self.bids.values().rev().cloned().collect()
    }
}
