//! Book frames: Kraken's published checksum example, update verification,
//! truncation to the subscribed depth, unapplicable frames, numbers sent as
//! strings, and which symbols get a book at all.

use super::*;

#[test]
fn published_example_via_a_snapshot_frame() {
    assert_eq!(checksum_levels(&ASKS, &BIDS), 3_310_070_434);
    let kraken = with_book("BTC/USD", 10);
    let book = kraken.book("BTC/USD").unwrap();
    assert_eq!(book.checksum(), 3_310_070_434);
    assert_eq!(book.depth(), 10);
    assert_eq!(
        book.asks().next().map(|l| (l.price(), l.qty())),
        Some(("45285.2", "0.00100000"))
    );
    assert_eq!(
        book.bids().next().map(|l| (l.price(), l.qty())),
        Some(("45283.5", "0.10000000"))
    );
}

#[test]
fn updates_verify_and_a_mismatch_is_reported_once() {
    let mut kraken = with_book("BTC/USD", 10);
    let mut shadow = Book::new(10);
    shadow.apply_snapshot(&ASKS, &BIDS).unwrap();
    // Delete (qty 0, other text of the same price), replace, insert.
    type Levels<'a> = &'a [(&'a str, &'a str)];
    let updates: [(Levels<'_>, Levels<'_>); 3] = [
        (&[("45285.20", "0.00000000")], &[]),
        (&[], &[("45283.4", "2.00000000"), ("45283.45", "0.5")]),
        (&[("45285.0", "0.25000000")], &[("45276.6", "0")]),
    ];
    for (asks, bids) in updates {
        shadow.apply_update(asks, bids).unwrap();
        let frame = book_frame("update", "BTC/USD", asks, bids, Some(checksum_of(&shadow)));
        assert_eq!(routed(kraken.classify(&frame)), data("book:BTC/USD", None));
    }
    let book = kraken.book("BTC/USD").unwrap();
    assert_eq!(book.checksum(), shadow.checksum());
    assert_eq!(book.asks().next().map(|l| l.price()), Some("45285.0"));
    assert_eq!(
        book.bids().take(3).map(|l| l.price()).collect::<Vec<_>>(),
        ["45283.5", "45283.45", "45283.4"]
    );
    assert_eq!(book.bids().len(), 10);

    // A wrong checksum is reported, and the book is dropped...
    let expected = shadow.checksum().wrapping_add(1);
    let frame = book_frame(
        "update",
        "BTC/USD",
        &[("45300.0", "1.0")],
        &[],
        Some(expected),
    );
    shadow.apply_update(&[("45300.0", "1.0")], &[]).unwrap();
    assert_eq!(
        routed(kraken.classify(&frame)),
        data(
            "book:BTC/USD",
            Some(BookBreak::ChecksumMismatch {
                expected,
                computed: shadow.checksum()
            })
        )
    );
    assert!(kraken.book("BTC/USD").is_none());
    // ...so later updates go unverified until the fresh snapshot.
    let frame = book_frame("update", "BTC/USD", &[("45301.0", "1.0")], &[], Some(1));
    assert_eq!(routed(kraken.classify(&frame)), data("book:BTC/USD", None));
    let snapshot = book_frame("snapshot", "BTC/USD", &ASKS, &BIDS, Some(3_310_070_434));
    assert_eq!(
        routed(kraken.classify(&snapshot)),
        data("book:BTC/USD", None)
    );
    assert_eq!(
        kraken.book("BTC/USD").map(Book::checksum),
        Some(3_310_070_434)
    );
    // A snapshot with a wrong checksum is a mismatch too.
    let snapshot = book_frame("snapshot", "BTC/USD", &ASKS, &BIDS, Some(5));
    assert_eq!(
        routed(kraken.classify(&snapshot)),
        data(
            "book:BTC/USD",
            Some(BookBreak::ChecksumMismatch {
                expected: 5,
                computed: 3_310_070_434
            })
        )
    );
}

#[test]
fn books_are_truncated_to_the_subscribed_depth() {
    let mut kraken = with_book("BTC/USD", 10);
    // A better ask pushes the tenth one out; the venue sends no delete for it.
    let mut asks = ASKS.to_vec();
    asks.insert(0, ("45285.1", "1.0"));
    asks.truncate(10);
    let frame = book_frame(
        "update",
        "BTC/USD",
        &[("45285.1", "1.0")],
        &[],
        Some(checksum_levels(&asks, &BIDS)),
    );
    assert_eq!(routed(kraken.classify(&frame)), data("book:BTC/USD", None));
    assert_eq!(kraken.book("BTC/USD").map(|b| b.asks().len()), Some(10));
    // Deleting the best ask does not bring the truncated one back.
    asks.remove(0);
    let frame = book_frame(
        "update",
        "BTC/USD",
        &[("45285.1", "0")],
        &[],
        Some(checksum_levels(&asks, &BIDS)),
    );
    assert_eq!(routed(kraken.classify(&frame)), data("book:BTC/USD", None));
    assert_eq!(kraken.book("BTC/USD").map(|b| b.asks().len()), Some(9));

    // Depth 25 keeps more than the ten levels the checksum covers.
    let mut kraken = with_book("ETH/USD", 25);
    let frame = book_frame(
        "update",
        "ETH/USD",
        &[("45400.0", "1.0")],
        &[],
        Some(3_310_070_434),
    );
    assert_eq!(routed(kraken.classify(&frame)), data("book:ETH/USD", None));
    assert_eq!(
        kraken.book("ETH/USD").map(|b| (b.depth(), b.asks().len())),
        Some((25, 11))
    );
}

#[test]
fn unapplicable_book_frames_are_breaks_and_drop_the_book() {
    let bad_updates = [
        book_frame("update", "BTC/USD", &[("1e5", "1")], &[], Some(7)),
        book_frame("update", "BTC/USD", &[("-1", "1")], &[], Some(7)),
        book_frame("update", "BTC/USD", &[], &[("45283.5", "\"abc\"")], Some(7)),
        book_frame("update", "BTC/USD", &[("\"\"", "1")], &[], Some(7)),
        book_frame("update", "BTC/USD", &[(&"9".repeat(10_000), "1")], &[], Some(7)),
        r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","asks":[{"price":1}],"bids":[],"checksum":7}]}"#.to_owned(),
        r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","asks":null,"checksum":7}]}"#.to_owned(),
        r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","asks":[1],"bids":[],"checksum":7}]}"#.to_owned(),
    ];
    for frame in &bad_updates {
        let mut kraken = with_book("BTC/USD", 10);
        let Inbound::Data { book_break, .. } = kraken.classify(frame) else {
            panic!("not data: {frame:.120}");
        };
        assert!(
            matches!(book_break, Some(BookBreak::Unusable { .. })),
            "{book_break:?} {frame:.120}"
        );
        assert!(kraken.book("BTC/USD").is_none());
        // Without a book the same frame is only routed.
        assert_eq!(routed(kraken.classify(frame)), data("book:BTC/USD", None));
    }
    // A checksum that is not a u32.
    for checksum in ["-1", "4294967296", "1.5", "\"x\"", "null"] {
        let mut kraken = with_book("BTC/USD", 10);
        let frame = format!(
            r#"{{"channel":"book","type":"update","data":[{{"symbol":"BTC/USD","asks":[],"bids":[],"checksum":{checksum}}}]}}"#
        );
        let expected = if checksum == "null" {
            None
        } else {
            Some(BookBreak::Unusable {
                reason: "a book checksum that is not a 32-bit unsigned number",
            })
        };
        assert_eq!(
            routed(kraken.classify(&frame)),
            data("book:BTC/USD", expected),
            "{checksum}"
        );
    }
    // A bad snapshot of an unsubscribed symbol is only routed...
    let mut kraken = Kraken::new();
    let frame = book_frame("snapshot", "BTC/USD", &[("\"abc\"", "1")], &[], Some(9));
    assert_eq!(routed(kraken.classify(&frame)), data("book:BTC/USD", None));
    // ...but once subscribed it is reported even without a book, so a fresh
    // one is requested.
    kraken.encode_subscribe(&[&Topic::new("book").symbol("BTC/USD")], 1);
    assert_eq!(
        routed(kraken.classify(&frame)),
        data(
            "book:BTC/USD",
            Some(BookBreak::Unusable {
                reason: "a level's price is not a plain non-negative decimal"
            })
        )
    );
    assert!(kraken.book("BTC/USD").is_none());
    // Book data that is no list of items is routed by what can be read.
    assert_eq!(
        routed(kraken.classify(r#"{"channel":"book","type":"snapshot","data":{"x":1}}"#)),
        data("book", None)
    );
}

#[test]
fn numbers_sent_as_strings_keep_their_text() {
    let mut kraken = Kraken::new();
    kraken.encode_subscribe(&[&Topic::new("book").symbol("A")], 1);
    let frame = r#"{"channel":"book","type":"snapshot","data":[{"symbol":"A","asks":[{"price":"0.0500","qty":"10.0"}],"bids":[{"price":0.04,"qty":0.5}],"checksum":"5001004"}]}"#;
    let expected = checksum_levels(&[("0.0500", "10.0")], &[("0.04", "0.5")]);
    assert_eq!(expected, crc32fast::hash(b"50010045"));
    let frame = frame.replace("\"5001004\"", &expected.to_string());
    assert_eq!(routed(kraken.classify(&frame)), data("book:A", None));
}

#[test]
fn reset_and_forget_drop_books() {
    let mut kraken = with_book("BTC/USD", 10);
    kraken.encode_subscribe(&[&Topic::new("book").symbol("ETH/USD")], 2);
    let snapshot = book_frame("snapshot", "ETH/USD", &ASKS, &BIDS, Some(3_310_070_434));
    assert_eq!(
        routed(kraken.classify(&snapshot)),
        data("book:ETH/USD", None)
    );
    kraken.forget(&key("ticker:BTC/USD"));
    kraken.forget(&ServerId::Num(1));
    assert!(kraken.book("BTC/USD").is_some());
    kraken.forget(&key("book:BTC/USD"));
    assert!(kraken.book("BTC/USD").is_none());
    assert!(kraken.book("ETH/USD").is_some());
    // Unsubscribed: a stray snapshot still in flight builds no book again.
    let stray = book_frame("snapshot", "BTC/USD", &ASKS, &BIDS, Some(3_310_070_434));
    assert_eq!(routed(kraken.classify(&stray)), data("book:BTC/USD", None));
    assert!(kraken.book("BTC/USD").is_none());
    assert_eq!(kraken.book_count(), 1);
    kraken.reset();
    assert!(kraken.book("ETH/USD").is_none());
    // The depth survives: a snapshot after the replayed subscribe uses it.
    let mut kraken = with_book("BTC/USD", 25);
    kraken.reset();
    let snapshot = book_frame("snapshot", "BTC/USD", &ASKS, &BIDS, Some(3_310_070_434));
    kraken.classify(&snapshot);
    assert_eq!(kraken.book("BTC/USD").map(Book::depth), Some(25));
    // Subscribing again starts a fresh book with the next snapshot.
    kraken.encode_subscribe(
        &[&Topic::new("book").symbol("BTC/USD").param("depth", 100)],
        2,
    );
    assert!(kraken.book("BTC/USD").is_none());
    kraken.classify(&snapshot);
    assert_eq!(kraken.book("BTC/USD").map(Book::depth), Some(100));
}

#[test]
fn snapshots_for_unsubscribed_symbols_allocate_no_book() {
    let mut kraken = with_book("BTC/USD", 10);
    kraken.encode_subscribe(&[&Topic::new("ticker").symbol("SOL/USD")], 2);
    assert_eq!(kraken.book_count(), 1);
    // 10,000 distinct symbols the client never subscribed on the book channel
    // (one of them subscribed on another channel): each frame is routed by
    // its key as before, but no book is built, verified or kept.
    let snapshots = (0..10_000)
        .map(|n| format!("S{n}/USD"))
        .chain(["SOL/USD".into()]);
    for symbol in snapshots {
        let snapshot = book_frame("snapshot", &symbol, &ASKS, &BIDS, Some(3_310_070_434));
        assert_eq!(
            routed(kraken.classify(&snapshot)),
            data(&format!("book:{symbol}"), None)
        );
        // A wrong checksum is not even looked at.
        let snapshot = book_frame("snapshot", &symbol, &ASKS, &BIDS, Some(1));
        assert_eq!(
            routed(kraken.classify(&snapshot)),
            data(&format!("book:{symbol}"), None)
        );
        let update = book_frame("update", &symbol, &[("1.0", "1.0")], &[], Some(1));
        assert_eq!(
            routed(kraken.classify(&update)),
            data(&format!("book:{symbol}"), None)
        );
        assert!(kraken.book(&symbol).is_none());
    }
    // Many unsubscribed symbols in one frame: none of them gets a book.
    let many: Vec<String> = (0..100)
        .map(|n| {
            format!(
                r#"{{"symbol":"M{n}/USD","bids":{},"asks":{},"checksum":3310070434}}"#,
                levels(&BIDS),
                levels(&ASKS)
            )
        })
        .collect();
    let frame = format!(
        r#"{{"channel":"book","type":"snapshot","data":[{}]}}"#,
        many.join(",")
    );
    assert_eq!(routed(kraken.classify(&frame)), data("book:M0/USD", None));
    // Malformed snapshots of unsubscribed symbols report nothing either.
    let bad = book_frame("snapshot", "X/USD", &[("\"abc\"", "1")], &[], Some(9));
    assert_eq!(routed(kraken.classify(&bad)), data("book:X/USD", None));
    let bad = r#"{"channel":"book","type":"snapshot","data":[{"symbol":"X/USD","asks":null}]}"#;
    assert_eq!(routed(kraken.classify(bad)), data("book:X/USD", None));
    assert_eq!(kraken.book_count(), 1);

    // The subscribed symbol still has its book, verified as before.
    assert_eq!(
        kraken.book("BTC/USD").map(Book::checksum),
        Some(3_310_070_434)
    );
    let mut shadow = Book::new(10);
    shadow.apply_snapshot(&ASKS, &BIDS).unwrap();
    shadow.apply_update(&[("45285.0", "0.5")], &[]).unwrap();
    let update = book_frame(
        "update",
        "BTC/USD",
        &[("45285.0", "0.5")],
        &[],
        Some(shadow.checksum()),
    );
    assert_eq!(routed(kraken.classify(&update)), data("book:BTC/USD", None));
    let bad = book_frame("update", "BTC/USD", &[("45300.0", "1.0")], &[], Some(7));
    shadow.apply_update(&[("45300.0", "1.0")], &[]).unwrap();
    assert_eq!(
        routed(kraken.classify(&bad)),
        data(
            "book:BTC/USD",
            Some(BookBreak::ChecksumMismatch {
                expected: 7,
                computed: shadow.checksum()
            })
        )
    );
    assert_eq!(kraken.book_count(), 0);
    // A subscribe made later (one of the symbols above) gets its book.
    kraken.encode_subscribe(&[&Topic::new("book").symbol("S7/USD")], 3);
    let snapshot = book_frame("snapshot", "S7/USD", &ASKS, &BIDS, Some(3_310_070_434));
    assert_eq!(
        routed(kraken.classify(&snapshot)),
        data("book:S7/USD", None)
    );
    assert_eq!(kraken.book_count(), 1);
    assert_eq!(
        kraken.book("S7/USD").map(Book::checksum),
        Some(3_310_070_434)
    );
}
