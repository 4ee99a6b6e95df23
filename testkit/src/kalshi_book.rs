//! `kalshi_book`: the Kalshi order book against the reference model in
//! `model/kalshi_book.rs`.

use super::model::kalshi_book::{number, units_of, KalshiModel, Number, Refusal, UNIT};
use resilient_ws::decimal::Decimal;
use resilient_ws::fuzzing::{KalshiBook, KalshiBookError, Outcome};

/// Most lines one input plays (a bound on one run).
const MAX_STEPS: usize = 2_000;

/// Applies a script of snapshots and deltas to a `KalshiBook` and to the
/// model, and compares them after every step.
///
/// Format: the first line is the ladder cap (a number, 8 if unreadable,
/// at most 64) and, after it, `y` when NO levels come in YES-leg prices
/// (`use_yes_price`); then one line per change:
/// - `S` yes levels `|` no levels, each level `price:count` (a snapshot);
/// - `D y|n price delta` (a delta on the YES or NO ladder).
///
/// Other lines, and lines with a decimal outside the model's range (more
/// than 8 places, or 1e15 and above), are skipped.
///
/// # Panics
///
/// When the book breaks an invariant or differs from the model.
pub fn kalshi_book(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let mut head = lines.next().unwrap_or("").split_whitespace();
    let cap = head
        .next()
        .and_then(|w| w.parse::<usize>().ok())
        .unwrap_or(8)
        .min(64);
    let yes_priced = head.next() == Some("y");
    let mut book = KalshiBook::new(cap);
    let mut model = KalshiModel {
        cap,
        ..KalshiModel::default()
    };
    for line in lines.take(MAX_STEPS) {
        let mut words = line.split_whitespace();
        let (result, broken) = match words.next() {
            Some("S") => {
                let (mut yes, mut no) = (Vec::new(), Vec::new());
                let mut side = &mut yes;
                for word in words {
                    if word == "|" {
                        side = &mut no;
                        continue;
                    }
                    side.push(word.split_once(':').unwrap_or((word, "")));
                }
                let (Some(yes_units), Some(no_units)) = (units(&yes), units(&no)) else {
                    continue;
                };
                let before = book.clone();
                let result = book.apply_snapshot(&yes, &no);
                if result.is_err() {
                    assert_eq!(book, before, "a refused snapshot changed the book");
                }
                (result, model.snapshot(&yes_units, &no_units))
            }
            Some("D") => {
                let side = match words.next() {
                    Some("y") => Outcome::Yes,
                    Some("n") => Outcome::No,
                    _ => continue,
                };
                let (price, delta) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let Some((p, d)) = units(&[(price, delta)]).and_then(|u| u.first().copied()) else {
                    continue;
                };
                let before = book.clone();
                let result = book.apply_delta(side, price, delta);
                if result.is_err() {
                    assert_eq!(book, before, "a refused delta changed the book");
                }
                (result, model.delta(side == Outcome::Yes, p, d))
            }
            _ => continue,
        };
        match (&result, broken.is_empty()) {
            (Ok(()), true) => {}
            (Err(error), false) => assert!(
                broken.contains(&refusal(error)),
                "book refused with {error:?}, the model with {broken:?}: {line:.300}"
            ),
            _ => panic!("book said {result:?}, the model {broken:?}: {line:.300}"),
        }
        check(&book, &model, yes_priced, line);
    }
}

/// The levels in model units (`None` for a number that is not a decimal);
/// `None` overall when one is a decimal out of the model's range.
#[allow(clippy::type_complexity)]
fn units(levels: &[(&str, &str)]) -> Option<Vec<(Option<i128>, Option<i128>)>> {
    let one = |text: &str| match number(text) {
        Err(()) => Some(None),
        Ok(Number::Units(u)) => Some(Some(u)),
        Ok(Number::OutOfRange) => None,
    };
    levels
        .iter()
        .map(|(p, c)| Some((one(p)?, one(c)?)))
        .collect()
}

fn refusal(error: &KalshiBookError) -> Refusal {
    match error {
        KalshiBookError::NotADecimal => Refusal::NotADecimal,
        KalshiBookError::PriceOutOfRange => Refusal::PriceOutOfRange,
        KalshiBookError::NegativeCount => Refusal::NegativeCount,
        KalshiBookError::DuplicatePrice => Refusal::DuplicatePrice,
        KalshiBookError::BelowZero => Refusal::BelowZero,
        KalshiBookError::TooManyLevels => Refusal::TooManyLevels,
    }
}

/// A decimal the book produced, in model units. Its scale is at most the
/// inputs' (8); its size may exceed the input cap, since counts add up.
fn to_units(d: Decimal) -> i128 {
    match units_of(&d) {
        Some(u) => u,
        None => panic!("the book holds {d}, more decimals than it was given"),
    }
}

fn check(book: &KalshiBook, model: &KalshiModel, yes_priced: bool, line: &str) {
    let bids: Vec<(i128, i128)> = book
        .bids()
        .map(|(p, c)| (to_units(p), to_units(c)))
        .collect();
    let asks: Vec<(i128, i128)> = book
        .asks(yes_priced)
        .map(|(p, c)| (to_units(p), to_units(c)))
        .collect();
    assert_eq!(bids, model.bids(), "bids differ after {line:.300}");
    assert_eq!(
        asks,
        model.asks(yes_priced),
        "asks differ after {line:.300}"
    );
    let (yes, no) = book.len();
    assert!(yes <= model.cap && no <= model.cap, "over the cap");
    for (price, count) in bids.iter().chain(&asks) {
        assert!((0..=UNIT).contains(price) && *count > 0, "{price} {count}");
    }
}
