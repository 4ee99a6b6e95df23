//! The reference for [`Decimal`](resilient_ws::Decimal): decimal text as digit
//! strings, compared as strings.
//!
//! Written from the grammar in `decimal.rs`'s module docs, with no integer
//! arithmetic at all: the exponent moves the decimal point inside the digit
//! string, and two values compare by sign, integer-part length and then the
//! digits. It cannot overflow, so it also says which texts are too large for
//! an `i128` mantissa.

use std::cmp::Ordering;

/// A decimal as the reference sees it: sign, integer digits without leading
/// zeros, fraction digits without trailing zeros; zero is never negative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefDecimal {
    pub(crate) negative: bool,
    pub(crate) int: String,
    pub(crate) frac: String,
    /// Digits after the point as sent, once the exponent is applied (may be
    /// negative: `12e2` has -2).
    pub(crate) sent_scale: i64,
    /// Significant digits of the value written at `max(sent_scale, 0)`
    /// decimal places (what an integer mantissa must hold).
    pub(crate) mantissa_digits: usize,
}

/// Parses `text` by the grammar, or `None` if it is not a decimal number.
pub(crate) fn parse(text: &str) -> Option<RefDecimal> {
    let mut chars = text.chars().peekable();
    let negative = chars.peek() == Some(&'-');
    if negative {
        chars.next();
    }
    let mut int = String::new();
    while let Some(c) = chars.peek().copied().filter(char::is_ascii_digit) {
        int.push(c);
        chars.next();
    }
    if int.is_empty() {
        return None;
    }
    let mut frac = String::new();
    if chars.peek() == Some(&'.') {
        chars.next();
        while let Some(c) = chars.peek().copied().filter(char::is_ascii_digit) {
            frac.push(c);
            chars.next();
        }
        if frac.is_empty() {
            return None;
        }
    }
    let mut exponent: i64 = 0;
    if matches!(chars.peek(), Some('e' | 'E')) {
        chars.next();
        let exp_negative = match chars.peek() {
            Some('-') => {
                chars.next();
                true
            }
            Some('+') => {
                chars.next();
                false
            }
            _ => false,
        };
        let digits: String = chars.by_ref().collect();
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || digits.len() > 4 {
            // More than four exponent digits is out of range, not a syntax
            // error, but the reference only needs "not a value we accept".
            return None;
        }
        exponent = digits.parse::<i64>().ok()?;
        if exp_negative {
            exponent = -exponent;
        }
    }
    if chars.next().is_some() {
        return None;
    }
    let sent_scale = frac.len() as i64 - exponent;
    // All digits, then move the point: value = digits * 10^(-sent_scale).
    let digits = format!("{int}{frac}");
    let (int_part, frac_part) = if sent_scale <= 0 {
        (
            format!("{digits}{}", "0".repeat((-sent_scale) as usize)),
            String::new(),
        )
    } else {
        let scale = sent_scale as usize;
        if digits.len() > scale {
            let (i, f) = digits.split_at(digits.len() - scale);
            (i.to_owned(), f.to_owned())
        } else {
            (
                "0".to_owned(),
                format!("{}{digits}", "0".repeat(scale - digits.len())),
            )
        }
    };
    let mantissa = format!("{int_part}{frac_part}");
    let mantissa_digits = mantissa.trim_start_matches('0').len();
    let int = int_part.trim_start_matches('0').to_owned();
    let frac = frac_part.trim_end_matches('0').to_owned();
    let zero = int.is_empty() && frac.is_empty();
    Some(RefDecimal {
        negative: negative && !zero,
        int,
        frac,
        sent_scale,
        mantissa_digits,
    })
}

impl RefDecimal {
    /// The value as canonical text (`0`, `-1.5`, `0.08`).
    pub(crate) fn canonical(&self) -> String {
        let int = if self.int.is_empty() { "0" } else { &self.int };
        let sign = if self.negative { "-" } else { "" };
        if self.frac.is_empty() {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{}", self.frac)
        }
    }

    /// Compares values: sign, then integer length, then digits.
    pub(crate) fn compare(&self, other: &Self) -> Ordering {
        let magnitude = || {
            self.int
                .len()
                .cmp(&other.int.len())
                .then_with(|| self.int.cmp(&other.int))
                .then_with(|| self.frac.cmp(&other.frac))
        };
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => magnitude(),
            (true, true) => magnitude().reverse(),
        }
    }
}
