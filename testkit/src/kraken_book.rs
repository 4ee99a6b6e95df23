//! `kraken_book`: the Kraken order book against two reference models: the
//! sorted vectors of wire text in `model/book.rs` (with the documented
//! checksum) and the naive `BTreeMap` of exact decimals in
//! `model/ordered_book.rs`.

use std::cmp::Ordering;

use super::model::book::{
    book_error_place, decimal_cmp, first_invalid, is_decimal, is_zero, reference_checksum,
    BookModel, Levels,
};
use super::model::ordered_book::OrderedBook;
use resilient_ws::protocol::kraken::{checksum_levels, Book};

/// Applies a script of snapshots and updates to a [`Book`] and to a simple
/// reference model, and compares them after every step.
///
/// Format: the first line is the depth (10 if unreadable); then one line per
/// change: `S` (snapshot) or `U` (update), the ask levels, `|`, the bid levels,
/// each level `price:qty` as wire text. Other lines are skipped.
///
/// # Panics
///
/// When the book breaks an invariant or differs from the model.
pub fn kraken_book(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let depth = lines
        .next()
        .and_then(|l| l.trim().parse::<usize>().ok())
        .unwrap_or(10);
    let mut book = Book::new(depth);
    let mut model = BookModel::default();
    let mut ordered = OrderedBook::default();
    for line in lines {
        let mut words = line.split_whitespace();
        let snapshot = match words.next() {
            Some("S" | "s") => true,
            Some("U" | "u") => false,
            _ => continue,
        };
        let (mut asks, mut bids) = (Vec::new(), Vec::new());
        let mut side = &mut asks;
        for word in words {
            if word == "|" {
                side = &mut bids;
                continue;
            }
            side.push(word.split_once(':').unwrap_or((word, "")));
        }
        let before = (
            levels_of(book.asks()),
            levels_of(book.bids()),
            book.checksum(),
        );
        let result = if snapshot {
            book.apply_snapshot(&asks, &bids)
        } else {
            book.apply_update(&asks, &bids)
        };
        match (result, first_invalid(&asks, &bids)) {
            (Ok(()), None) => {
                model.apply(snapshot, &asks, &bids, depth);
                ordered.apply(snapshot, &asks, &bids, depth);
            }
            (Err(error), Some(expected)) => {
                assert_eq!(book_error_place(&error), expected, "{error}");
                let after = (
                    levels_of(book.asks()),
                    levels_of(book.bids()),
                    book.checksum(),
                );
                assert_eq!(before, after, "a refused change altered the book");
            }
            (result, expected) => panic!(
                "book said {result:?}, the model expected an error at {expected:?}: {line:.300}"
            ),
        }
        check_book(&book);
        assert!(book.asks().len() <= depth && book.bids().len() <= depth);
        assert_eq!(
            levels_of(book.asks()),
            model.asks,
            "asks differ from the model after {line:.300}"
        );
        assert_eq!(
            levels_of(book.bids()),
            model.bids,
            "bids differ from the model after {line:.300}"
        );
        assert_eq!(
            levels_of(book.asks()),
            ordered.asks(),
            "asks differ from the ordered model after {line:.300}"
        );
        assert_eq!(
            levels_of(book.bids()),
            ordered.bids(),
            "bids differ from the ordered model after {line:.300}"
        );
    }
}

fn levels_of<'a>(
    levels: impl Iterator<Item = resilient_ws::protocol::kraken::Level<'a>>,
) -> Levels {
    levels
        .map(|l| (l.price().to_owned(), l.qty().to_owned()))
        .collect()
}

/// Checks a book's own invariants and that its checksum is a function of its
/// levels (the same book always gives the same checksum).
pub(super) fn check_book(book: &Book) {
    let asks = levels_of(book.asks());
    let bids = levels_of(book.bids());
    assert!(
        asks.len() <= book.depth() && bids.len() <= book.depth(),
        "over depth {}",
        book.depth()
    );
    for (price, qty) in asks.iter().chain(&bids) {
        assert!(
            is_decimal(price) && is_decimal(qty),
            "stored invalid text {price:?} {qty:?}"
        );
        assert!(!is_zero(qty), "stored a zero quantity at {price}");
    }
    for pair in asks.windows(2) {
        assert_eq!(
            decimal_cmp(&pair[0].0, &pair[1].0),
            Ordering::Less,
            "asks not strictly ascending: {asks:?}"
        );
    }
    for pair in bids.windows(2) {
        assert_eq!(
            decimal_cmp(&pair[0].0, &pair[1].0),
            Ordering::Greater,
            "bids not strictly descending: {bids:?}"
        );
    }
    let (a, b) = (borrowed(&asks), borrowed(&bids));
    let checksum = book.checksum();
    assert_eq!(checksum, checksum_levels(&a, &b));
    assert_eq!(
        checksum,
        reference_checksum(&asks, &bids),
        "checksum differs from the documented algorithm"
    );
    assert_eq!(checksum, book.clone().checksum());
    let mut rebuilt = Book::new(book.depth());
    rebuilt
        .apply_snapshot(&a, &b)
        .expect("a book's own levels are valid");
    assert_eq!(
        rebuilt.checksum(),
        checksum,
        "the same levels gave another checksum"
    );
}

fn borrowed(side: &Levels) -> Vec<(&str, &str)> {
    side.iter().map(|(p, q)| (p.as_str(), q.as_str())).collect()
}
