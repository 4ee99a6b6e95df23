use std::borrow::Cow;

use super::*;

fn levels(levels: &[(&str, &str)]) -> String {
    let items: Vec<String> = levels
        .iter()
        .map(|(p, s)| format!(r#"["{p}","{s}","0","1"]"#))
        .collect();
    format!("[{}]", items.join(","))
}

/// A `books` push for BTC-USDT as OKX sends it.
fn book_frame(
    action: &str,
    bids: &[(&str, &str)],
    asks: &[(&str, &str)],
    checksum: i32,
    prev: i64,
    seq: i64,
) -> String {
    format!(
        r#"{{"arg":{{"channel":"books","instId":"BTC-USDT"}},"action":"{action}","data":[{{"asks":{},"bids":{},"ts":"1597026383085","checksum":{checksum},"prevSeqId":{prev},"seqId":{seq}}}]}}"#,
        levels(asks),
        levels(bids)
    )
}

fn subscribed_books() -> Okx {
    let mut okx = Okx::new();
    let _ = okx.encode_subscribe(&[&Topic::new("books").symbol("BTC-USDT")], 1);
    okx
}

fn data(book_break: Option<BookBreak>) -> Inbound<'static> {
    Inbound::Data {
        server_id: Okx::server_id("books", Some("BTC-USDT")),
        seq: None,
        book_break,
        payload: None,
    }
}

/// Checks that a data frame names its `data` array as the payload, then drops
/// the payload so the routing can be compared with [`data`].
fn routed(inbound: Inbound<'_>) -> Inbound<'_> {
    match inbound {
        Inbound::Data {
            server_id,
            seq,
            book_break,
            payload,
        } => {
            let payload = payload.expect("okx data names its payload");
            assert!(
                payload.starts_with('[') && payload.ends_with(']'),
                "{payload:.80}"
            );
            Inbound::Data {
                server_id,
                seq,
                book_break,
                payload: None,
            }
        }
        other => other,
    }
}

#[test]
fn encodes_requests_with_the_request_id() {
    let mut okx = Okx::new();
    let a = Topic::new("tickers").symbol("BTC-USDT");
    let b = Topic::new("tickers").symbol("ETH-USDT");
    assert!(okx.can_batch(&a, &b));
    assert!(!okx.can_batch(&a, &Topic::new("trades").symbol("ETH-USDT")));
    assert_eq!(
        okx.encode_subscribe(&[&a, &b], 9),
        r#"{"id":"9","op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"},{"channel":"tickers","instId":"ETH-USDT"}]}"#
    );
    assert_eq!(
        okx.encode_unsubscribe(&a, &Okx::server_id("tickers", Some("BTC-USDT")), 10)
            .as_deref(),
        Some(
            r#"{"id":"10","op":"unsubscribe","args":[{"channel":"tickers","instId":"BTC-USDT"}]}"#
        )
    );
    assert_eq!(okx.classify("pong"), Inbound::Pong);
    assert!(matches!(okx.classify("ping"), Inbound::Invalid(_)));
}

#[test]
fn classifies_the_documented_events() {
    let mut okx = Okx::new();
    // OKX v5 docs, "Order book channel": response and failure examples.
    assert_eq!(
        okx.classify(
            r#"{"id":"1512","event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4d3ae55"}"#
        ),
        Inbound::Subscribed {
            req_id: Some(1512),
            server_id: Okx::server_id("books", Some("BTC-USDT")),
            channel: Some(Cow::Borrowed("books")),
            symbol: Some(Cow::Borrowed("BTC-USDT")),
        }
    );
    match okx.classify(
        r#"{"id":"1512","event":"error","code":"60012","msg":"Invalid request: {\"op\": \"subscribe\"}","connId":"a4d3ae55"}"#,
    ) {
        Inbound::Rejected {
            req_id: Some(1512),
            symbol: None,
            error,
        } => {
            assert_eq!(error.code, Some(60012));
            assert_eq!(error.kind, VenueErrorKind::Permanent);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        okx.classify(r#"{"id":"3","event":"unsubscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"x"}"#),
        Inbound::Unsubscribed { req_id: Some(3) }
    );
    // The service-upgrade notice asks for a new connection; another notice
    // is status.
    assert!(matches!(
        okx.classify(r#"{"event":"notice","code":"64008","msg":"upgrade","connId":"x"}"#),
        Inbound::Reconnect { notice } if notice.code == Some(64008)
    ));
    assert_eq!(
        okx.classify(r#"{"event":"notice","code":"64999","msg":"?","connId":"x"}"#),
        Inbound::Unknown {
            kind: Cow::Borrowed("notice 64999")
        }
    );
    assert_eq!(
        okx.classify(r#"{"event":"brand-new","connId":"x"}"#),
        Inbound::Unknown {
            kind: Cow::Borrowed("brand-new")
        }
    );
    for (code, kind) in [
        (60014, VenueErrorKind::RateLimited),
        (60007, VenueErrorKind::Permanent),
        (60018, VenueErrorKind::Permanent),
        (63999, VenueErrorKind::Transient),
        (12345, VenueErrorKind::Unknown),
    ] {
        assert_eq!(venue_error(Some(code), "").kind, kind, "{code}");
    }
    assert_eq!(
        okx.classify(r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"px":"1"}]}"#),
        Inbound::Data {
            server_id: Okx::server_id("trades", Some("BTC-USDT")),
            seq: None,
            book_break: None,
            payload: Some(r#"[{"px":"1"}]"#),
        }
    );
}

#[test]
fn the_documented_snapshot_and_a_verified_update() {
    let mut okx = subscribed_books();
    // Example 2 of the docs: less than 25 levels on one side.
    let bids = [("3366.1", "7")];
    let asks = [("3366.8", "9"), ("3368", "8"), ("3372", "8")];
    let frame = book_frame("snapshot", &bids, &asks, 831_078_360, -1, 10);
    assert_eq!(routed(okx.classify(&frame)), data(None));
    // An update that removes 3368 and adds a bid, with the right checksum.
    let after = crc32fast::hash(b"3366.1:7:3366.8:9:3366:6:3372:8") as i32;
    let frame = book_frame("update", &[("3366", "6")], &[("3368", "0")], after, 10, 15);
    assert_eq!(routed(okx.classify(&frame)), data(None));
    let book = okx.book("books", "BTC-USDT").unwrap();
    assert_eq!(book.bids().count(), 2);
    assert_eq!(checksum(book) as i32, after);
    // An unchanged update (empty, prevSeqId == seqId) keeps the book.
    let frame = book_frame("update", &[], &[], after, 15, 15);
    assert_eq!(routed(okx.classify(&frame)), data(None));
}

#[test]
fn a_bad_checksum_or_a_sequence_break_drops_the_book() {
    let mut okx = subscribed_books();
    let bids = [("3366.1", "7"), ("3366", "6")];
    let asks = [("3366.8", "9"), ("3368", "8")];
    // Example 1 of the docs, with the value OKEx documented for it.
    let frame = book_frame("snapshot", &bids, &asks, -1_881_014_294, -1, 1);
    assert_eq!(routed(okx.classify(&frame)), data(None));
    let frame = book_frame("update", &[("3366", "5")], &[], 12345, 1, 2);
    match okx.classify(&frame) {
        Inbound::Data {
            book_break: Some(BookBreak::ChecksumMismatch { expected, computed }),
            ..
        } => {
            assert_eq!(expected, 12345);
            assert_eq!(
                computed,
                crc32fast::hash(b"3366.1:7:3366.8:9:3366:5:3368:8")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(okx.book("books", "BTC-USDT").is_none());
    // Without a book, updates are routed but not verified.
    assert_eq!(routed(okx.classify(&frame)), data(None));
    // A fresh snapshot starts again; an update skipping a sequence breaks it.
    let frame = book_frame("snapshot", &bids, &asks, -1_881_014_294, -1, 5);
    assert_eq!(routed(okx.classify(&frame)), data(None));
    let frame = book_frame("update", &[], &[], -1_881_014_294, 6, 7);
    assert_eq!(
        routed(okx.classify(&frame)),
        data(Some(BookBreak::Discontinuity {
            expected: 5,
            got: 6
        }))
    );
    assert!(okx.book("books", "BTC-USDT").is_none());
    // A zero checksum (the retired field) is not verified.
    let frame = book_frame("snapshot", &bids, &asks, 0, -1, 8);
    assert_eq!(routed(okx.classify(&frame)), data(None));
}

#[test]
fn books_exist_only_for_subscribed_instruments() {
    let mut okx = subscribed_books();
    for i in 0..200 {
        let frame = format!(
            r#"{{"arg":{{"channel":"books","instId":"X{i}"}},"action":"snapshot","data":[{{"asks":[["1","1","0","1"]],"bids":[],"checksum":1,"seqId":1,"prevSeqId":-1}}]}}"#
        );
        assert!(matches!(
            okx.classify(&frame),
            Inbound::Data {
                book_break: None,
                ..
            }
        ));
    }
    assert_eq!(okx.books.len(), 1, "only the subscribed instrument");
    okx.forget(&Okx::server_id("books", Some("BTC-USDT")));
    assert!(okx.books.is_empty());
}

#[test]
fn garbage_is_invalid() {
    let mut okx = subscribed_books();
    for frame in [
        "",
        "[]",
        "{",
        "PONG",
        r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["1"]],"bids":[]}]}"#,
        r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":{"asks":[]}}"#,
    ] {
        assert!(
            matches!(okx.classify(frame), Inbound::Invalid(_)),
            "{frame}"
        );
    }
    // Levels that cannot be applied, or a checksum that is not 32 bits, leave
    // the book unknown: the frame is the subscription's and it resyncs.
    for (frame, reason) in [
        (
            r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["-1","1"]],"bids":[]}]}"#,
            "a level's price is not a plain non-negative decimal",
        ),
        (
            r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[],"bids":[],"checksum":99999999999}]}"#,
            "a book checksum that is not a 32-bit integer",
        ),
    ] {
        assert_eq!(
            routed(okx.classify(frame)),
            data(Some(BookBreak::Unusable { reason })),
            "{frame}"
        );
    }
}

#[test]
fn the_documented_request_budget_is_declared_and_no_channel_cap() {
    let limits = Okx::new().limits();
    assert_eq!(limits.channels_per_connection, None);
    let ops = limits.subscribe_ops.unwrap();
    assert_eq!((ops.frames, ops.per.as_secs()), (480, 3600));
}

/// Issue 19: a subscription that ended without a server id (refused, timed
/// out, dropped while pending) left its key and book depth behind, so churn
/// grew the adapter without bound.
#[test]
fn a_topic_that_never_got_a_server_id_is_forgotten() {
    let mut okx = Okx::new();
    for i in 0..100 {
        let book = Topic::new("books").symbol(format!("X{i}-USDT"));
        let ticker = Topic::new("tickers").symbol(format!("X{i}-USDT"));
        let _ = okx.encode_subscribe(&[&book], 2 * i);
        let _ = okx.encode_subscribe(&[&ticker], 2 * i + 1);
        okx.forget_topic(&book);
        okx.forget_topic(&ticker);
    }
    assert_eq!(okx.keys.len(), 0);
    assert!(okx.books.is_empty());
    // A live subscription of another topic is untouched.
    let live = Topic::new("books").symbol("BTC-USDT");
    let _ = okx.encode_subscribe(&[&live], 1000);
    okx.forget_topic(&Topic::new("books").symbol("ETH-USDT"));
    assert_eq!(okx.keys.len(), 1);
    assert_eq!(okx.books.len(), 1);
    // A late ack for a forgotten topic routes by a fresh key (nowhere).
    let _ = okx.encode_subscribe(&[&Topic::new("trades").symbol("LATE")], 1001);
    okx.forget_topic(&Topic::new("trades").symbol("LATE"));
    assert!(matches!(
        okx.classify(r#"{"id":"1001","event":"subscribe","arg":{"channel":"trades","instId":"LATE"},"connId":"a"}"#),
        Inbound::Subscribed { req_id: Some(1001), .. }
    ));
    assert_eq!(okx.keys.len(), 1);
}

/// OKX stopped sending the books' initial snapshot (changelog 2026-02-12,
/// production from early August 2026): updates without a book were not
/// checked at all, so a skipped update went unnoticed. The `seqId` chain is
/// checked without a book.
#[test]
fn without_a_snapshot_the_seq_id_chain_is_still_checked() {
    let mut okx = subscribed_books();
    let update = |prev: i64, seq: i64| book_frame("update", &[("3366", "5")], &[], 0, prev, seq);
    assert_eq!(routed(okx.classify(&update(10, 11))), data(None));
    assert_eq!(routed(okx.classify(&update(11, 12))), data(None));
    // An unchanged update repeats its seqId.
    assert_eq!(routed(okx.classify(&update(12, 12))), data(None));
    // 13 never arrived.
    assert_eq!(
        routed(okx.classify(&update(13, 14))),
        data(Some(BookBreak::Discontinuity {
            expected: 12,
            got: 13
        }))
    );
    // The chain starts again from the next update; a resubscribe forgets it.
    assert_eq!(routed(okx.classify(&update(20, 21))), data(None));
    let _ = okx.encode_subscribe(&[&Topic::new("books").symbol("BTC-USDT")], 9);
    assert_eq!(routed(okx.classify(&update(40, 41))), data(None));
    okx.forget(&Okx::server_id("books", Some("BTC-USDT")));
    assert!(okx.books.is_empty());
}

#[test]
fn an_unplaced_frame_is_named_by_its_event_or_channel() {
    let okx = crate::Okx::new();
    let kind = |text| crate::Protocol::frame_kind(&okx, text);
    assert_eq!(
        kind(r#"{"event":"notice","code":"64009","msg":"x"}"#),
        Some("notice")
    );
    assert_eq!(
        kind(r#"{"arg":{"channel":"mark-price","instId":"BTC-USDT"},"data":[]}"#),
        Some("mark-price")
    );
    assert_eq!(kind(r#"{"data":[]}"#), None);
}
