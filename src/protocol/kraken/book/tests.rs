//! Unit tests of the order book: checksums on Kraken's published example,
//! level ordering and truncation, number validation.

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
