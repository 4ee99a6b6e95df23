//! The `decimal` target: [`Decimal`] against the digit-string reference
//! (`model/decimal.rs`), differential.
//!
//! Input: lines of text. Each line must parse exactly when the reference says
//! it is a decimal that fits (refused as out of range only where the
//! reference says it needs more than an `i128` mantissa or more than
//! `MAX_SCALE` places), print back to the reference's value, keep its scale,
//! and compare with every other line as the reference compares them. Equal
//! values must hash alike.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use super::model::decimal::{self as reference, RefDecimal};
use resilient_ws::decimal::{Decimal, DecimalError, MAX_SCALE, MAX_TEXT_LEN};

/// At most this many lines per input: the pairwise comparison is quadratic.
const MAX_LINES: usize = 32;

/// Fuzz entry point: see the module docs.
pub fn decimal(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parsed: Vec<(Decimal, RefDecimal)> = Vec::new();
    for line in text.split('\n').take(MAX_LINES) {
        let real = Decimal::try_parse(line);
        let model = if line.len() > MAX_TEXT_LEN {
            None
        } else {
            reference::parse(line)
        };
        match (real, model) {
            (Ok(value), Some(model)) => {
                assert!(
                    fits(&model) != Some(false),
                    "{line:?} parsed to {value:?} but does not fit: {model:?}"
                );
                assert_eq!(
                    value.normalized().to_string(),
                    model.canonical(),
                    "{line:?}"
                );
                let sent = model.sent_scale;
                let scale = if sent <= 0 || (value.is_zero() && sent > i64::from(MAX_SCALE)) {
                    0
                } else {
                    sent
                };
                assert_eq!(i64::from(value.scale()), scale, "{line:?} scale");
                assert_eq!(
                    value.to_string().parse::<Decimal>(),
                    Ok(value),
                    "{line:?} round trip"
                );
                parsed.push((value, model));
            }
            (Err(DecimalError::OutOfRange), Some(model)) => {
                assert!(
                    fits(&model) != Some(true),
                    "{line:?} refused as out of range, but fits: {model:?}"
                );
            }
            (Err(DecimalError::OutOfRange), None) => {
                // Only an over-long exponent is out of range without being a
                // value the reference reads.
                assert!(
                    line.contains(['e', 'E']),
                    "{line:?} out of range without an exponent"
                );
            }
            (Err(DecimalError::Syntax), Some(model)) => {
                panic!("{line:?} refused as syntax, but the reference reads {model:?}")
            }
            (Err(_), None) => {}
            (Err(error), Some(model)) => {
                panic!("{line:?} refused with a new error {error:?}; the reference reads {model:?}")
            }
            (Ok(value), None) => panic!("{line:?} parsed to {value:?}, the reference refuses it"),
        }
    }
    for (a, ma) in &parsed {
        for (b, mb) in &parsed {
            assert_eq!(a.cmp(b), ma.compare(mb), "{a:?} vs {b:?}");
            if a == b {
                assert_eq!(hash(a), hash(b), "{a:?} and {b:?} are equal but hash apart");
            }
        }
    }
}

/// Whether the reference value fits a `Decimal`: `Some(true)` surely,
/// `Some(false)` surely not, `None` at the `i128` edge (39 digits), where
/// the magnitude decides.
fn fits(model: &RefDecimal) -> Option<bool> {
    if model.int.is_empty() && model.frac.is_empty() {
        return Some(true); // zero, whatever its exponent
    }
    if model.sent_scale > i64::from(MAX_SCALE) {
        return Some(false);
    }
    match model.mantissa_digits {
        0..=38 => Some(true),
        39 => None,
        _ => Some(false),
    }
}

fn hash(value: &Decimal) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}
