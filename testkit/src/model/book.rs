//! The Kraken book as PROTOCOLS.md describes it: sorted vectors of wire text,
//! exact decimal comparison by padding, the documented CRC-32 checksum.

use std::cmp::Ordering;

use resilient_ws::protocol::kraken::{BookError, Side, MAX_NUMBER_LEN};

/// A side of a book as (price, qty) wire text, best first.
pub(crate) type Levels = Vec<(String, String)>;

/// PROTOCOLS.md: per level, the text with `.` removed and leading zeros
/// stripped, price then qty, top 10 asks then top 10 bids, CRC-32.
pub(crate) fn reference_checksum(asks: &Levels, bids: &Levels) -> u32 {
    let mut text = String::new();
    for (price, qty) in asks.iter().take(10).chain(bids.iter().take(10)) {
        for number in [price, qty] {
            text.push_str(number.replace('.', "").trim_start_matches('0'));
        }
    }
    crc32fast::hash(text.as_bytes())
}

/// A plain decimal: digits, optionally one `.` with digits on both sides.
pub(crate) fn is_decimal(text: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    text.len() <= MAX_NUMBER_LEN
        && match text.split_once('.') {
            Some((int, frac)) => digits(int) && digits(frac),
            None => digits(text),
        }
}

pub(crate) fn is_zero(text: &str) -> bool {
    text.bytes().all(|b| b == b'0' || b == b'.')
}

/// Exact comparison of two valid decimals, by padding both to the same shape.
pub(crate) fn decimal_cmp(a: &str, b: &str) -> Ordering {
    let split = |s: &str| -> (String, String) {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        (int.to_owned(), frac.to_owned())
    };
    let ((ai, af), (bi, bf)) = (split(a), split(b));
    let int_len = ai.len().max(bi.len());
    let frac_len = af.len().max(bf.len());
    let pad = |int: &str, frac: &str| format!("{int:0>int_len$}{frac:0<frac_len$}");
    pad(&ai, &af).cmp(&pad(&bi, &bf))
}

/// Where the first invalid number is: (side, index, is the price).
pub(crate) fn first_invalid(
    asks: &[(&str, &str)],
    bids: &[(&str, &str)],
) -> Option<(Side, usize, bool)> {
    for (side, levels) in [(Side::Ask, asks), (Side::Bid, bids)] {
        for (index, (price, qty)) in levels.iter().enumerate() {
            if !is_decimal(price) {
                return Some((side, index, true));
            }
            if !is_decimal(qty) {
                return Some((side, index, false));
            }
        }
    }
    None
}

pub(crate) fn book_error_place(error: &BookError) -> (Side, usize, bool) {
    match *error {
        BookError::Price { side, index, .. } => (side, index, true),
        BookError::Qty { side, index, .. } => (side, index, false),
        other => panic!("a book error the model does not know: {other:?}"),
    }
}

/// The book as PROTOCOLS.md describes it, on sorted vectors.
#[derive(Default)]
pub(crate) struct BookModel {
    pub(crate) asks: Levels,
    pub(crate) bids: Levels,
}

impl BookModel {
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
        // Asks best (lowest) first, bids best (highest) first.
        for (side, levels, best_first) in [
            (&mut self.asks, asks, Ordering::Less),
            (&mut self.bids, bids, Ordering::Greater),
        ] {
            for &(price, qty) in levels {
                let at = side
                    .iter()
                    .position(|(p, _)| decimal_cmp(p, price) != best_first);
                let same = at.filter(|&i| decimal_cmp(&side[i].0, price) == Ordering::Equal);
                match (same, is_zero(qty)) {
                    (Some(i), true) => {
                        side.remove(i);
                    }
                    (Some(i), false) => side[i] = (price.to_owned(), qty.to_owned()),
                    (None, true) => {}
                    (None, false) => {
                        side.insert(at.unwrap_or(side.len()), (price.to_owned(), qty.to_owned()))
                    }
                }
            }
            side.truncate(depth);
        }
    }
}
