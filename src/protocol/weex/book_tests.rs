//! The WEEX depth book through the adapter: what the views show after
//! snapshots and changes, and what clears them.

use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::decimal::Decimal;
use crate::protocol::BookBreak;

fn subscribe_depth(weex: &mut Weex, symbol: &str) -> ServerId {
    let topic = Topic::new("depth").symbol(symbol);
    let _ = weex.encode_subscribe(&[&topic], 1);
    Weex::server_id(&topic)
}

/// A depth push of ETHUSDT: `kind` SNAPSHOT or CHANGED, ids, time, levels.
fn push(kind: &str, first: u64, last: u64, time: u64, bids: &str, asks: &str) -> String {
    let e = if kind == "SNAPSHOT" {
        "depthSnapshot"
    } else {
        "depth"
    };
    format!(
        r#"{{"e":"{e}","E":{time},"s":"ETHUSDT","U":{first},"u":{last},"l":15,"d":"{kind}","b":{bids},"a":{asks}}}"#
    )
}

fn verdict(inbound: &Inbound<'_>) -> Option<BookBreak> {
    match inbound {
        Inbound::Data { book_break, .. } => *book_break,
        other => panic!("not data: {other:?}"),
    }
}

fn dec(text: &str) -> Decimal {
    Decimal::parse(text).expect("a decimal")
}

fn levels(levels: &[(&str, &str)]) -> Vec<(Decimal, Decimal)> {
    levels.iter().map(|&(p, q)| (dec(p), dec(q))).collect()
}

#[test]
fn the_view_shows_the_snapshot_and_each_change_as_exact_decimals() {
    let mut weex = Weex::new();
    let view = weex.book_views().watch("ETHUSDT", 10);
    subscribe_depth(&mut weex, "ETHUSDT");
    let snapshot = push(
        "SNAPSHOT",
        100,
        100,
        1_776_000_000_010,
        r#"[["2089.90","1.2"],["2089.80","0.7"]]"#,
        r#"[["2090.10","3.4"],["2090.20","0.9"]]"#,
    );
    assert_eq!(verdict(&weex.classify(&snapshot)), None);
    let top = view.latest().expect("verified after the snapshot");
    assert_eq!(top.updates(), 1);
    assert_eq!(top.checksum(), None);
    assert_eq!(
        top.venue_time(),
        Some(UNIX_EPOCH + Duration::from_millis(1_776_000_000_010))
    );
    assert_eq!(
        top.bid_levels().collect::<Vec<_>>(),
        levels(&[("2089.90", "1.2"), ("2089.80", "0.7")])
    );
    // A change: delete a bid (quantity "0.000"), set an ask by another
    // spelling of its price, add a bid between the others.
    let changed = push(
        "CHANGED",
        100,
        112,
        1_776_000_000_510,
        r#"[["2089.90","0.000"],["2089.85","5"]]"#,
        r#"[["2090.1","2.4"]]"#,
    );
    assert_eq!(verdict(&weex.classify(&changed)), None);
    let top = view.latest().expect("still verified");
    assert_eq!(top.updates(), 2);
    assert_eq!(
        top.venue_time(),
        Some(UNIX_EPOCH + Duration::from_millis(1_776_000_000_510))
    );
    assert_eq!(
        top.bids().collect::<Vec<_>>(),
        [("2089.85", "5"), ("2089.80", "0.7")]
    );
    assert_eq!(
        top.asks().collect::<Vec<_>>(),
        [("2090.1", "2.4"), ("2090.20", "0.9")],
        "one level per decimal price, with the newer text"
    );
    assert_eq!(top.best_ask(), Some((dec("2090.10"), dec("2.4"))));
}

#[test]
fn a_break_or_an_unusable_push_clears_the_view_until_the_next_snapshot() {
    let mut weex = Weex::new();
    let view = weex.book_views().watch("ETHUSDT", 5);
    let depth = subscribe_depth(&mut weex, "ETHUSDT");
    let snapshot = push("SNAPSHOT", 10, 10, 1, r#"[["1","1"]]"#, r#"[["2","1"]]"#);
    let _ = weex.classify(&snapshot);
    assert!(view.is_verified());
    // An update-id break.
    let skipped = push("CHANGED", 11, 12, 2, r#"[["1","2"]]"#, "[]");
    assert_eq!(
        verdict(&weex.classify(&skipped)),
        Some(BookBreak::Discontinuity {
            expected: 10,
            got: 11
        })
    );
    assert!(!view.is_verified());
    assert!(weex.books.book(&depth).is_none());
    // Changes after the break are not applied and not reported again.
    let after = push("CHANGED", 12, 13, 3, r#"[["1","3"]]"#, "[]");
    assert_eq!(verdict(&weex.classify(&after)), None);
    assert!(!view.is_verified());
    let _ = weex.classify(&snapshot);
    assert!(view.is_verified());
    // Levels that are not non-negative decimals: the push is a break.
    let number = "a price or quantity is not a non-negative decimal";
    let shape = "levels are not [price, qty] pairs";
    for (bad, reason) in [
        (r#"[["1","-2"]]"#, number),
        (r#"[["x","2"]]"#, number),
        (r#"[["1"]]"#, shape),
        (r#"{"1":"2"}"#, shape),
        (r#"[["1","1e400"]]"#, number),
    ] {
        let _ = weex.classify(&snapshot);
        assert!(view.is_verified());
        let broken = push("CHANGED", 10, 11, 4, bad, "[]");
        assert_eq!(
            verdict(&weex.classify(&broken)),
            Some(BookBreak::Unusable { reason }),
            "{bad}"
        );
        assert!(!view.is_verified(), "{bad}");
        assert!(
            !weex.chains.holds(&depth),
            "{bad}: the resync starts afresh"
        );
    }
    // A lost connection and the end of the subscription clear it too.
    let _ = weex.classify(&snapshot);
    weex.reset();
    assert!(!view.is_verified());
    // The replayed subscription's snapshot verifies it again.
    let _ = weex.classify(&snapshot);
    assert!(view.is_verified());
    weex.forget(&depth);
    assert!(!view.is_verified());
    assert_eq!(weex.books.len(), 0);
}

#[test]
fn a_side_holds_at_most_the_cap_and_keeps_the_best_levels() {
    let mut weex = Weex::new();
    let view = weex.book_views().watch("ETHUSDT", 3);
    let depth = subscribe_depth(&mut weex, "ETHUSDT");
    let many = |from: usize| {
        let rows: Vec<String> = (from..from + MAX_LEVELS_PER_SIDE + 10)
            .map(|i| format!(r#"["{i}","1"]"#))
            .collect();
        format!("[{}]", rows.join(","))
    };
    let snapshot = push("SNAPSHOT", 1, 1, 1, &many(1), &many(5000));
    assert_eq!(verdict(&weex.classify(&snapshot)), None);
    let book = weex.books.book(&depth).expect("a book");
    assert_eq!(book.bids().len(), MAX_LEVELS_PER_SIDE);
    assert_eq!(book.asks().len(), MAX_LEVELS_PER_SIDE);
    assert_eq!(book.bids().next(), Some(("1010", "1")), "highest bids kept");
    assert_eq!(book.asks().next(), Some(("5000", "1")), "lowest asks kept");
    // More changes do not grow it either.
    let changed = push("CHANGED", 1, 2, 2, &many(20_000), "[]");
    assert_eq!(verdict(&weex.classify(&changed)), None);
    let book = weex.books.book(&depth).expect("a book");
    assert_eq!(book.bids().len(), MAX_LEVELS_PER_SIDE);
    let top = view.latest().expect("verified");
    assert_eq!(
        top.bids().len(),
        3,
        "the view copies only the watched levels"
    );
    assert_eq!(top.bids().next(), Some(("21009", "1")));
}

#[test]
fn books_exist_only_for_subscribed_streams() {
    let mut weex = Weex::new();
    let view = weex.book_views().watch("ETHUSDT", 5);
    for _ in 0..3 {
        let _ = weex.classify(&push("SNAPSHOT", 1, 1, 1, r#"[["1","1"]]"#, "[]"));
    }
    assert_eq!(weex.books.len(), 0);
    assert!(!view.is_verified());
}
