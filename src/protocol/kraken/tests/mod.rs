//! The Kraken adapter's unit tests: encoding, batching, classification of the
//! documented frames, acks and rejections per symbol, routing. Book frames and
//! checksums are in `book.rs`; the helpers here serve both.

use std::borrow::Cow;

use serde_json::json;

use super::*;
use crate::error::VenueError;

mod book;

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

fn parse(frame: &str) -> Value {
    serde_json::from_str(frame).unwrap()
}

fn key(text: &str) -> ServerId {
    ServerId::Key(text.into())
}

fn levels(levels: &[(&str, &str)]) -> String {
    let items: Vec<String> = levels
        .iter()
        .map(|(p, q)| format!(r#"{{"price":{p},"qty":{q}}}"#))
        .collect();
    format!("[{}]", items.join(","))
}

/// A book frame with the numbers' text exactly as given.
fn book_frame(
    kind: &str,
    symbol: &str,
    asks: &[(&str, &str)],
    bids: &[(&str, &str)],
    checksum: Option<u32>,
) -> String {
    let checksum = checksum
        .map(|c| format!(r#","checksum":{c}"#))
        .unwrap_or_default();
    format!(
        r#"{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}","bids":{},"asks":{}{checksum},"timestamp":"2023-10-06T17:35:55.440295Z"}}]}}"#,
        levels(bids),
        levels(asks)
    )
}

fn data(server_id: &str, book_break: Option<BookBreak>) -> Inbound<'static> {
    Inbound::Data {
        server_id: key(server_id),
        seq: None,
        book_break,
        payload: None,
    }
}

/// Checks that a data frame names its `data` as the payload (valid JSON),
/// then drops the payload so the routing can be compared with [`data`].
fn routed(inbound: Inbound<'_>) -> Inbound<'_> {
    match inbound {
        Inbound::Data {
            server_id,
            seq,
            book_break,
            payload,
        } => {
            let payload = payload.expect("kraken data names its payload");
            let parsed = serde_json::from_str::<serde::de::IgnoredAny>(payload);
            assert!(parsed.is_ok(), "{payload:.80}");
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

/// A Kraken with `symbol`'s book subscribed at `depth` and the published snapshot applied.
fn with_book(symbol: &str, depth: u64) -> Kraken {
    let mut kraken = Kraken::new();
    kraken.encode_subscribe(
        &[&Topic::new("book").symbol(symbol).param("depth", depth)],
        1,
    );
    let snapshot = book_frame("snapshot", symbol, &ASKS, &BIDS, Some(3_310_070_434));
    assert_eq!(
        routed(kraken.classify(&snapshot)),
        data(&format!("book:{symbol}"), None)
    );
    kraken
}

fn checksum_of(book: &Book) -> u32 {
    book.checksum()
}

#[test]
fn encodes_one_request_for_several_symbols() {
    let mut kraken = Kraken::new();
    let topics: Vec<Topic> = ["BTC/USD", "XBT/USD", "ETH/USD"]
        .map(|s| Topic::new("ticker").symbol(s))
        .to_vec();
    let refs: Vec<&Topic> = topics.iter().collect();
    assert!(refs.windows(2).all(|w| kraken.can_batch(w[0], w[1])));
    assert_eq!(
        parse(&kraken.encode_subscribe(&refs, 1)),
        json!({"method": "subscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD", "XBT/USD", "ETH/USD"]}, "req_id": 1})
    );
    let book = [
        Topic::new("book")
            .symbol("BTC/USD")
            .param("depth", 25)
            .param("snapshot", true),
        Topic::new("book")
            .symbol("ETH/USD")
            .param("depth", 25)
            .param("snapshot", true),
    ];
    assert_eq!(
        parse(&kraken.encode_subscribe(&[&book[0], &book[1]], 2)),
        json!({"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD", "ETH/USD"], "depth": 25, "snapshot": true}, "req_id": 2})
    );
    assert_eq!(
        (kraken.depth_of("BTC/USD"), kraken.depth_of("ETH/USD")),
        (25, 25)
    );
    assert_eq!(
        parse(&kraken.encode_subscribe(&[&Topic::new("executions").param("token", "t")], 3)),
        json!({"method": "subscribe", "params": {"channel": "executions", "token": "t"}, "req_id": 3})
    );
    // Unsubscribe: the topic's params, except "snapshot".
    assert_eq!(
        kraken
            .encode_unsubscribe(&book[0], &key("book:BTC/USD"), 4)
            .map(|f| parse(&f)),
        Some(
            json!({"method": "unsubscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 25}, "req_id": 4})
        )
    );
    assert_eq!(
        kraken
            .encode_unsubscribe(
                &Topic::new("balances").param("token", "t"),
                &key("balances"),
                5
            )
            .map(|f| parse(&f)),
        Some(
            json!({"method": "unsubscribe", "params": {"channel": "balances", "token": "t"}, "req_id": 5})
        )
    );
    assert_eq!(
        kraken.encode_ping(101).map(|f| parse(&f)),
        Some(json!({"method": "ping", "req_id": 101}))
    );
    assert_eq!(
        parse(
            &kraken
                .encode_request(&Request::new("add_order", Some(json!({"qty": 1}))), 6)
                .unwrap()
        ),
        json!({"method": "add_order", "params": {"qty": 1}, "req_id": 6})
    );
    assert_eq!(
        parse(&kraken.encode_request(&Request::new("x", None), 7).unwrap()),
        json!({"method": "x", "req_id": 7})
    );
    assert_eq!(kraken.name(), "kraken");
}

#[test]
fn batching_rules() {
    let kraken = Kraken::new();
    let t = |c: &str, s: Option<&str>| {
        let topic = Topic::new(c);
        match s {
            Some(s) => topic.symbol(s),
            None => topic,
        }
    };
    assert!(kraken.can_batch(&t("ticker", Some("A")), &t("ticker", Some("B"))));
    assert!(!kraken.can_batch(&t("ticker", Some("A")), &t("trade", Some("B"))));
    assert!(!kraken.can_batch(&t("ticker", Some("A")), &t("ticker", None)));
    assert!(!kraken.can_batch(&t("executions", None), &t("executions", None)));
    assert!(!kraken.can_batch(
        &t("book", Some("A")).param("depth", 10),
        &t("book", Some("B")).param("depth", 25)
    ));
    assert!(kraken.can_batch(
        &t("book", Some("A")).param("depth", 10),
        &t("book", Some("B")).param("depth", 10)
    ));
}

#[test]
fn depth_defaults_to_ten_and_invalid_depths_are_not_kept() {
    let mut kraken = Kraken::new();
    for (depth, kept) in [
        (json!(1000), 1000),
        (json!(7), 10),
        (json!("25"), 10),
        (json!(-1), 10),
    ] {
        kraken.encode_subscribe(&[&Topic::new("book").symbol("A").param("depth", depth)], 1);
        assert_eq!(kraken.depth_of("A"), kept);
    }
    kraken.encode_subscribe(&[&Topic::new("book").symbol("B")], 1);
    assert_eq!(kraken.depth_of("B"), 10);
}

#[test]
fn classifies_the_documented_frames() {
    let mut kraken = Kraken::new();
    assert_eq!(
        kraken.classify(r#"{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"BTC/USD"},"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z","req_id":1}"#),
        Inbound::Subscribed {
            req_id: Some(1),
            server_id: key("book:BTC/USD"),
            channel: Some(Cow::Borrowed("book")),
            symbol: Some(Cow::Borrowed("BTC/USD")),
        }
    );
    assert_eq!(
        kraken.classify(r#"{"method":"subscribe","result":{"channel":"ticker","snapshot":true,"symbol":"ETH/USD","warnings":["deprecated"]},"success":true,"req_id":42}"#),
        Inbound::Subscribed {
            req_id: Some(42),
            server_id: key("ticker:ETH/USD"),
            channel: Some(Cow::Borrowed("ticker")),
            symbol: Some(Cow::Borrowed("ETH/USD")),
        }
    );
    assert_eq!(
        kraken.classify(r#"{"error":"Currency pair not supported XBT/USD","method":"subscribe","success":false,"symbol":"XBT/USD","time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z","req_id":1}"#),
        Inbound::Rejected {
            req_id: Some(1),
            symbol: Some(Cow::Borrowed("XBT/USD")),
            error: VenueError::kraken("Currency pair not supported XBT/USD"),
        }
    );
    assert_eq!(
        kraken.classify(r#"{"error":"Rate limit for snapshot requests exceeded","method":"subscribe","success":false,"req_id":3}"#),
        Inbound::Rejected {
            req_id: Some(3),
            symbol: None,
            error: VenueError::kraken("Rate limit for snapshot requests exceeded"),
        }
    );
    assert_eq!(
        kraken.classify(r#"{"method":"unsubscribe","result":{"channel":"ticker","symbol":"BTC/USD"},"success":true,"req_id":43}"#),
        Inbound::Unsubscribed { req_id: Some(43) }
    );
    assert_eq!(
        kraken.classify(r#"{"error":"Subscription Not Found","method":"unsubscribe","success":false,"symbol":"BTC/USD","req_id":44}"#),
        Inbound::Rejected {
            req_id: Some(44),
            symbol: Some(Cow::Borrowed("BTC/USD")),
            error: VenueError::kraken("Subscription Not Found"),
        }
    );
    assert_eq!(
        kraken.classify(r#"{"method":"pong","req_id":101,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}"#),
        Inbound::Pong
    );
    assert_eq!(
        kraken.classify(r#"{"channel":"heartbeat"}"#),
        Inbound::Heartbeat
    );
    assert_eq!(
        kraken.classify(r#"{"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":13834774380200032777,"system":"online","version":"2.0.0"}]}"#),
        Inbound::Control
    );
    assert_eq!(
        routed(kraken.classify(
            r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","last":1.5}]}"#
        )),
        data("ticker:BTC/USD", None)
    );
    assert_eq!(
        routed(kraken.classify(r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":45283.5,"qty":0.1}],"asks":[],"checksum":3310070434,"timestamp":"2023-10-06T17:35:56.101010Z"}]}"#)),
        data("book:BTC/USD", None),
        "an update before any snapshot is routed, not verified"
    );
}

#[test]
fn requests_private_channels_and_edges() {
    let mut kraken = Kraken::new();
    // Other methods answer requests.
    assert_eq!(
        kraken.classify(
            r#"{"method":"add_order","result":{"order_id":"X"},"success":true,"req_id":6}"#
        ),
        Inbound::Response {
            req_id: 6,
            error: None
        }
    );
    assert_eq!(
        kraken.classify(r#"{"method":"add_order","error":"EOrder:Insufficient funds","success":false,"req_id":7}"#),
        Inbound::Response {
            req_id: 7,
            error: Some(VenueError::kraken("EOrder:Insufficient funds")),
        }
    );
    assert_eq!(
        kraken.classify(r#"{"method":"add_order","success":true}"#),
        Inbound::Control
    );
    // An error with a req_id but no method (the venue's answer to garbage).
    assert_eq!(
        kraken.classify(r#"{"error":"EGeneral:Invalid arguments","success":false,"req_id":8}"#),
        Inbound::Response {
            req_id: 8,
            error: Some(VenueError::kraken("EGeneral:Invalid arguments")),
        }
    );
    assert_eq!(
        kraken.classify(r#"{"error":"EGeneral:Invalid arguments","success":false}"#),
        Inbound::Control
    );
    // Symbol-less private channels route by channel, with the top-level sequence,
    // even though execution items name a symbol.
    kraken.encode_subscribe(&[&Topic::new("executions").param("token", "t")], 1);
    assert_eq!(
        kraken.classify(r#"{"method":"subscribe","result":{"channel":"executions","snapshot":true},"success":true,"req_id":1}"#),
        Inbound::Subscribed {
            req_id: Some(1),
            server_id: key("executions"),
            channel: Some(Cow::Borrowed("executions")),
            symbol: None,
        }
    );
    assert_eq!(
        kraken.classify(r#"{"channel":"executions","type":"update","data":[{"order_id":"O","symbol":"BTC/USD","exec_type":"new"}],"sequence":12}"#),
        Inbound::Data {
            server_id: key("executions"),
            seq: Some(12),
            book_break: None,
            payload: Some(r#"[{"order_id":"O","symbol":"BTC/USD","exec_type":"new"}]"#),
        }
    );
    assert_eq!(
        kraken.classify(r#"{"channel":"balances","type":"snapshot","data":[{"asset":"BTC","balance":1.5}],"sequence":1}"#),
        Inbound::Data {
            server_id: key("balances"),
            seq: Some(1),
            book_break: None,
            payload: Some(r#"[{"asset":"BTC","balance":1.5}]"#),
        }
    );
    // Data that is not a list, or a list of non-objects: routed by channel.
    assert_eq!(
        routed(kraken.classify(
            r#"{"channel":"instrument","type":"snapshot","data":{"assets":[],"pairs":[]}}"#
        )),
        data("instrument", None)
    );
    assert_eq!(
        routed(kraken.classify(r#"{"channel":"ticker","data":[1,2]}"#)),
        data("ticker", None)
    );
    assert_eq!(
        routed(kraken.classify(r#"{"channel":"ticker","data":[]}"#)),
        data("ticker", None)
    );
    // Escaped symbols are decoded.
    assert_eq!(
        routed(kraken.classify(r#"{"channel":"ticker","data":[{"symbol":"BTC\/USD"}]}"#)),
        data("ticker:BTC/USD", None)
    );
    // A channel frame without data is informational.
    assert_eq!(
        kraken.classify(r#"{"channel":"ticker","type":"update"}"#),
        Inbound::Control
    );
    // Acks without a channel cannot be routed.
    assert!(matches!(
        kraken.classify(r#"{"method":"subscribe","success":true,"req_id":1}"#),
        Inbound::Invalid(_)
    ));
    // req_ids that are not u64 count as absent.
    assert_eq!(
        kraken.classify(r#"{"method":"unsubscribe","success":true,"req_id":-1}"#),
        Inbound::Unsubscribed { req_id: None }
    );
}

#[test]
fn message_types_the_adapter_does_not_know_are_named() {
    let mut kraken = Kraken::new();
    // A method or a data-less channel nobody documents: unknown, by name.
    assert_eq!(
        kraken.classify(r#"{"method":"maintenance_notice","result":{}}"#),
        Inbound::Unknown {
            kind: Cow::Borrowed("maintenance_notice")
        }
    );
    assert_eq!(
        kraken.classify(r#"{"channel":"announcement","type":"update"}"#),
        Inbound::Unknown {
            kind: Cow::Borrowed("announcement")
        }
    );
    // Documented ones stay what they were.
    assert_eq!(
        kraken.classify(r#"{"channel":"trade","type":"update"}"#),
        Inbound::Control
    );
    assert_eq!(
        kraken.classify(r#"{"method":"cancel_all","success":true}"#),
        Inbound::Control
    );
    // Data of a channel is routed by key; when nothing holds that key, the
    // session asks the adapter to name the frame.
    let unknown_data = r#"{"channel":"level4","type":"update","data":[{"symbol":"BTC/USD"}]}"#;
    assert_eq!(
        routed(kraken.classify(unknown_data)),
        data("level4:BTC/USD", None)
    );
    assert_eq!(kraken.frame_kind(unknown_data), Some("level4"));
    assert_eq!(kraken.frame_kind(r#"{"method":"x","req_id":1}"#), Some("x"));
    assert_eq!(kraken.frame_kind(r#"{"channel":7}"#), None);
    assert_eq!(kraken.frame_kind("not json"), None);
}

#[test]
fn garbage_is_invalid_without_quoting_the_frame() {
    let mut kraken = Kraken::new();
    let secret = format!(
        r#"{{"channel":"ticker","data":[{{"symbol":"{}"}}]"#,
        "secret".repeat(10_000)
    );
    for frame in [
        "",
        "nope",
        "[]",
        "{",
        "{}",
        "42",
        r#"{"channel":"x"} x"#,
        r#"{"method":"a","method":"b"}"#,
        &secret,
    ] {
        match kraken.classify(frame) {
            Inbound::Invalid(ProtocolError::Unparseable(text)) => {
                assert!(text.len() < 100 && !text.contains("secret"), "{text}")
            }
            other => panic!("{frame:.40}: {other:?}"),
        }
    }
}

#[test]
fn routing_reuses_the_subscribed_server_id() {
    let mut kraken = Kraken::new();
    kraken.encode_subscribe(&[&Topic::new("ticker").symbol("BTC/USD")], 1);
    let Inbound::Data {
        server_id: ServerId::Key(a),
        ..
    } = kraken.classify(r#"{"channel":"ticker","data":[{"symbol":"BTC/USD"}]}"#)
    else {
        panic!("data")
    };
    let Inbound::Data {
        server_id: ServerId::Key(b),
        ..
    } = kraken.classify(r#"{"channel":"ticker","data":[{"symbol":"BTC/USD"}]}"#)
    else {
        panic!("data")
    };
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(
        Kraken::server_id("ticker", Some("BTC/USD")),
        ServerId::Key(a)
    );
}

#[test]
fn churn_without_server_ids_leaves_the_maps_empty() {
    let mut kraken = Kraken::new();
    for n in 0..100_000u32 {
        let symbol = format!("S{n}/USD");
        let book = Topic::new("book").symbol(&symbol).param("depth", 25);
        let ticker = Topic::new("ticker").symbol(&symbol);
        let private = Topic::new(format!("executions{}", n % 7));
        for topic in [&book, &ticker, &private] {
            kraken.encode_subscribe(&[topic], u64::from(n));
        }
        // Ended while pending: refused, timed out or dropped before any ack.
        kraken.forget_topic(&book);
        kraken.forget_topic(&ticker);
        // Ended after its ack: forgotten by server id.
        kraken.forget(&Kraken::server_id(private.channel(), None));
    }
    assert_eq!(kraken.map_entries(), 0);
}
