use std::borrow::Cow;

use super::*;
use crate::protocol::BookBreak;

fn key(stream: &str) -> ServerId {
    ServerId::Key(stream.into())
}

fn subscribed(weex: &mut Weex, topic: Topic, req_id: u64) -> ServerId {
    let _ = weex.encode_subscribe(&[&topic], req_id);
    Weex::server_id(&topic)
}

#[test]
fn encodes_subscribe_and_unsubscribe() {
    let mut weex = Weex::new();
    let topic = Topic::new("depth").symbol("btcusdt").param("level", 200);
    assert_eq!(
        weex.encode_subscribe(&[&topic], 1),
        r#"{"method":"SUBSCRIBE","params":["BTCUSDT@depth200"],"id":1}"#
    );
    assert_eq!(
        weex.encode_unsubscribe(&topic, &key("BTCUSDT@depth200"), 2)
            .as_deref(),
        Some(r#"{"method":"UNSUBSCRIBE","params":["BTCUSDT@depth200"],"id":2}"#)
    );
    for (topic, stream) in [
        (Topic::new("ticker").symbol("BTCUSDT"), "BTCUSDT@ticker"),
        (Topic::new("depth").symbol("BTCUSDT"), "BTCUSDT@depth15"),
        (
            Topic::new("depth").symbol("BTCUSDT").param("level", "200"),
            "BTCUSDT@depth200",
        ),
        (Topic::new("depth15").symbol("ETHUSDT"), "ETHUSDT@depth15"),
        (Topic::new("trade").symbol("BTCUSDT"), "BTCUSDT@trade"),
        (
            Topic::new("kline").symbol("BTCUSDT"),
            "BTCUSDT@kline_1m_LAST_PRICE",
        ),
        (
            Topic::new("kline")
                .symbol("BTCUSDT")
                .param("interval", "1h")
                .param("priceType", "MARK_PRICE"),
            "BTCUSDT@kline_1h_MARK_PRICE",
        ),
        (Topic::new("orders"), "orders"),
        (
            Topic::new("ticker")
                .symbol("BTCUSDT")
                .param("instType", "SPOT"),
            "BTCUSDT@ticker",
        ),
    ] {
        assert_eq!(stream_name(&topic), stream, "{topic:?}");
        assert_eq!(Weex::server_id(&topic), key(stream));
    }
    // A quote in a param cannot break the JSON.
    let odd = Topic::new("kline").symbol("A").param("interval", "\"x");
    let frame = weex.encode_subscribe(&[&odd], 3);
    let v: serde_json::Value = serde_json::from_str(&frame).unwrap();
    assert_eq!(v["params"][0], "A@kline_\"x_LAST_PRICE");
    assert_eq!(weex.encode_ping(1), None);
    assert_eq!(weex.limits().channels_per_connection, Some(100));
    let ops = weex.limits().subscribe_ops.unwrap();
    assert_eq!((ops.frames, ops.per), (240, Duration::from_secs(3600)));
}

#[test]
fn acks_match_by_request_id_alone() {
    let mut weex = Weex::new();
    let ticker = subscribed(&mut weex, Topic::new("ticker").symbol("BTCUSDT"), 7);
    let trade = subscribed(&mut weex, Topic::new("trade").symbol("ETHUSDT"), 8);
    assert_eq!(
        weex.classify(r#"{"result":null,"id":8}"#),
        Inbound::Subscribed {
            req_id: Some(8),
            server_id: trade,
            channel: Some(Cow::Borrowed("trade")),
            symbol: Some(Cow::Borrowed("ETHUSDT")),
        }
    );
    // `true` is a success too; the id may come as a string of digits.
    assert!(matches!(
        weex.classify(r#"{"id":"7","result":true}"#),
        Inbound::Subscribed { req_id: Some(7), server_id, .. } if server_id == ticker
    ));
    // A repeated reply, or one for an unsubscribe, has no pending subscribe.
    assert_eq!(weex.classify(r#"{"result":null,"id":8}"#), Inbound::Control);
    assert_eq!(weex.classify(r#"{"result":null}"#), Inbound::Control);
    let _ = weex.encode_unsubscribe(&Topic::new("trade").symbol("ETHUSDT"), &key("x"), 9);
    assert_eq!(weex.classify(r#"{"result":null,"id":9}"#), Inbound::Control);
}

#[test]
fn refusals_map_to_kinds_and_to_the_request() {
    let mut weex = Weex::new();
    let _ = subscribed(&mut weex, Topic::new("depth").symbol("ASDFS"), 3);
    // V3 refusals carry no code; the message says what is wrong.
    let frame = r#"{"result":false,"id":3,"msg":"INVALID_ARGUMENT: invalid symbol : ASDFS"}"#;
    match weex.classify(frame) {
        Inbound::Rejected {
            req_id,
            symbol,
            error,
        } => {
            assert_eq!(req_id, Some(3));
            assert_eq!(symbol.as_deref(), Some("ASDFS"));
            assert_eq!(error.kind, VenueErrorKind::Permanent);
            assert_eq!(error.code, None);
            assert_eq!(error.retry_after(), None);
        }
        other => panic!("{other:?}"),
    }
    // The request is answered: nothing pending is left.
    assert!(weex.pending.is_empty());
    // Whitespace around the value does not hide a refusal.
    let _ = subscribed(&mut weex, Topic::new("trade").symbol("BTCUSDT"), 4);
    assert!(matches!(
        weex.classify("{ \"result\" :  false ,\n \"id\" : 4 }"),
        Inbound::Rejected {
            req_id: Some(4),
            ..
        }
    ));
    // Another message without a code is unknown; an unknown id is passed on.
    match weex.classify(r#"{"result":false,"id":44,"msg":"something else"}"#) {
        Inbound::Rejected {
            req_id: Some(44),
            symbol: None,
            error,
        } => {
            assert_eq!(error.kind, VenueErrorKind::Unknown);
            assert_eq!(error.code, None);
        }
        other => panic!("{other:?}"),
    }
    // V3 codes, whether the frame carries them as numbers or strings.
    for (code, kind) in [
        (-1040, VenueErrorKind::Permanent),
        (-1044, VenueErrorKind::Permanent),
        (-1045, VenueErrorKind::Unknown),
        (-1046, VenueErrorKind::Transient),
        (-1047, VenueErrorKind::Permanent),
        (-1048, VenueErrorKind::Unknown),
        (-1049, VenueErrorKind::Permanent),
        (-1050, VenueErrorKind::Permanent),
        (-1054, VenueErrorKind::Transient),
        (-1058, VenueErrorKind::Permanent),
        (-1059, VenueErrorKind::Unknown),
        (-1121, VenueErrorKind::Permanent),
        // V2's codes are not V3's: nothing shows V3 sends them.
        (40001, VenueErrorKind::Unknown),
        (40029, VenueErrorKind::Unknown),
        (50001, VenueErrorKind::Unknown),
    ] {
        for frame in [
            format!(r#"{{"result":false,"code":{code},"msg":"m"}}"#),
            format!(r#"{{"result":false,"code":"{code}","msg":"m"}}"#),
        ] {
            match weex.classify(&frame) {
                Inbound::Rejected {
                    req_id: None,
                    error,
                    ..
                } => {
                    assert_eq!(error.kind, kind, "{frame}");
                    assert_eq!(error.retry_after(), None, "{frame}");
                }
                other => panic!("{frame}: {other:?}"),
            }
        }
    }
    assert!(!venue_error(Some(-1047), "").is_retryable());
    assert!(venue_error(Some(-1054), "").is_retryable());
}

#[test]
fn heartbeats_are_answered_with_ids_no_request_reaches() {
    let mut weex = Weex::new();
    let mut ids = Vec::new();
    for ping in [
        // Public connections.
        r#"{"event":"ping","time":"1693208170000"}"#,
        r#"{"time":1693208170000,"event":"ping"}"#,
        r#"{"event":"ping"}"#,
        // Private connections.
        r#"{"type":"ping","time":"1776078750000"}"#,
    ] {
        match weex.classify(ping) {
            Inbound::Reply { text } => {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["method"], "PONG", "{ping}");
                ids.push(v["id"].as_u64().unwrap());
            }
            other => panic!("{ping}: {other:?}"),
        }
    }
    assert_eq!(
        ids,
        (0..4).map(|n| PONG_ID_BASE + n).collect::<Vec<_>>(),
        "fresh ids from the heartbeat space"
    );
    // The venue's answer to a heartbeat answer never acks a subscribe.
    let ticker = subscribed(&mut weex, Topic::new("ticker").symbol("BTCUSDT"), 1);
    for answer in [
        format!(r#"{{"result":true,"id":{PONG_ID_BASE}}}"#),
        format!(r#"{{"id":"{}","method":"PONG"}}"#, PONG_ID_BASE + 1),
        format!(r#"{{"result":false,"id":{},"msg":"x"}}"#, PONG_ID_BASE + 2),
    ] {
        assert_eq!(weex.classify(&answer), Inbound::Control, "{answer}");
    }
    assert!(matches!(
        weex.classify(r#"{"result":true,"id":1}"#),
        Inbound::Subscribed { server_id, .. } if server_id == ticker
    ));
    // Ids stay below 2^53 (exact in any JSON parser): the space wraps.
    weex.pongs = PONG_ID_BASE - 1;
    let last = weex.pong();
    let wrapped = weex.pong();
    assert_eq!(
        last,
        Inbound::Reply {
            text: Cow::Owned(format!(r#"{{"method":"PONG","id":{}}}"#, (1u64 << 53) - 1))
        }
    );
    assert_eq!(
        wrapped,
        Inbound::Reply {
            text: Cow::Owned(format!(r#"{{"method":"PONG","id":{PONG_ID_BASE}}}"#))
        }
    );
    assert_eq!(weex.classify(r#"{"event":"pong"}"#), Inbound::Pong);
}

#[test]
fn the_greeting_is_control() {
    let mut weex = Weex::new();
    assert_eq!(
        weex.classify(r#"{"cid":"a1b2","event":"connected","time":"1775118000000"}"#),
        Inbound::Control
    );
}

fn data(server_id: ServerId, payload: Option<&str>) -> Inbound<'_> {
    Inbound::Data {
        server_id,
        seq: None,
        book_break: None,
        payload,
    }
}

#[test]
fn every_push_kind_is_routed_to_its_stream() {
    let mut weex = Weex::new();
    let ticker = subscribed(&mut weex, Topic::new("ticker").symbol("BTCUSDT"), 1);
    let depth = subscribed(
        &mut weex,
        Topic::new("depth").symbol("BTCUSDT").param("level", 200),
        2,
    );
    let trade = subscribed(&mut weex, Topic::new("trade").symbol("BTCUSDT"), 3);
    let kline = subscribed(&mut weex, Topic::new("kline").symbol("BTCUSDT"), 4);
    let orders = subscribed(&mut weex, Topic::new("orders"), 5);
    let account = subscribed(&mut weex, Topic::new("account"), 6);
    let ticker_push = r#"{"e":"ticker","E":1700000000000,"s":"BTCUSDT","d":[{"c":"1","m":"2","i":"3","h":"4","l":"0","P":"0.1","v":"9","q":"9"}]}"#;
    assert_eq!(
        weex.classify(ticker_push),
        data(
            ticker.clone(),
            Some(r#"[{"c":"1","m":"2","i":"3","h":"4","l":"0","P":"0.1","v":"9","q":"9"}]"#)
        )
    );
    // Depth: the payload is the whole frame (`d` is only the update kind).
    for frame in [
        r#"{"e":"depthSnapshot","E":1,"s":"BTCUSDT","U":5,"u":5,"l":200,"d":"SNAPSHOT","b":[["100","1"]],"a":[["101","2"]]}"#,
        r#"{"e":"depth","E":2,"s":"BTCUSDT","U":5,"u":6,"l":"200","d":"CHANGED","b":[],"a":[["101","0"]]}"#,
        r#"{"e":"depthSnapshot","E":3,"s":"BTCUSDT","l":200,"b":[],"a":[]}"#,
        // No level: the one depth stream of the symbol.
        r#"{"e":"depth","E":4,"s":"BTCUSDT","d":"CHANGED","b":[],"a":[]}"#,
    ] {
        assert_eq!(weex.classify(frame), data(depth.clone(), None), "{frame}");
    }
    // Another level is another stream (never subscribed: routes nowhere).
    assert_eq!(
        weex.classify(r#"{"e":"depth","s":"BTCUSDT","l":15,"b":[],"a":[]}"#),
        data(key("BTCUSDT@depth15"), None)
    );
    assert_eq!(
        weex.classify(r#"{"e":"trade","E":1,"s":"BTCUSDT","d":[{"p":"1","q":"2"}]}"#),
        data(trade, Some(r#"[{"p":"1","q":"2"}]"#))
    );
    assert_eq!(
        weex.classify(r#"{"e":"kline","E":1,"s":"BTCUSDT","d":[["1","2"]]}"#),
        data(kline, Some(r#"[["1","2"]]"#))
    );
    assert_eq!(
        weex.classify(r#"{"e":"orders","E":1,"d":{"orderId":"9"}}"#),
        data(orders.clone(), Some(r#"{"orderId":"9"}"#))
    );
    // Private pushes route by type even when they name a symbol.
    assert_eq!(
        weex.classify(r#"{"e":"orders","s":"BTCUSDT","d":[]}"#),
        data(orders, Some("[]"))
    );
    assert_eq!(
        weex.classify(r#"{"e":"account","d":[]}"#),
        data(account, Some("[]"))
    );
    // Another symbol's ticker is another stream.
    assert_eq!(
        weex.classify(r#"{"e":"ticker","s":"ETHUSDT","d":[]}"#),
        data(key("ETHUSDT@ticker"), Some("[]"))
    );
    // Two depth streams of one symbol: a push without a level is ambiguous.
    let _ = subscribed(&mut weex, Topic::new("depth").symbol("BTCUSDT"), 7);
    assert_eq!(
        weex.classify(r#"{"e":"depth","s":"BTCUSDT","b":[],"a":[]}"#),
        data(key("BTCUSDT@depth"), None)
    );
    let _ = ticker;
}

#[test]
fn other_frames_and_garbage_are_classified_without_panicking() {
    let mut weex = Weex::new();
    assert_eq!(weex.classify(r#"{"data":[1]}"#), Inbound::Unsolicited);
    assert_eq!(
        weex.classify(r#"{"event":"login","code":0}"#),
        Inbound::Control
    );
    for garbage in [
        "",
        "[]",
        "{",
        "nope",
        r#"{"event":"ping","event":"ping"}"#,
        r#"{"result":null,"result":null,"id":1}"#,
        r#"{"e":"ticker","s":"A","d":[}"#,
    ] {
        assert!(
            matches!(weex.classify(garbage), Inbound::Invalid(_)),
            "{garbage}"
        );
    }
    // Odd but valid values read as absent, never as a panic.
    for odd in [
        r#"{"result":false,"id":-1,"code":1.5,"msg":7}"#,
        r#"{"result":null,"id":"x"}"#,
        r#"{"result":null,"id":99999999999999999999999}"#,
        r#"{"e":7,"s":[],"d":"x"}"#,
        r#"{"e":"depth","s":null,"l":-3}"#,
        r#"{"e":"","s":"","l":"","d":null}"#,
    ] {
        let _ = weex.classify(odd);
    }
}

#[test]
fn peer_frames_cannot_grow_the_adapter_state() {
    let mut weex = Weex::new();
    let a = subscribed(&mut weex, Topic::new("ticker").symbol("A"), 1);
    for i in 0..1000 {
        let _ = weex.classify(&format!(r#"{{"result":null,"id":{i}}}"#));
        let _ = weex.classify(&format!(r#"{{"e":"ticker","s":"S{i}","d":[]}}"#));
        let _ = weex.classify(&format!(r#"{{"e":"depth","s":"S{i}","b":[]}}"#));
    }
    assert_eq!(weex.streams.len(), 1);
    assert!(weex.pending.is_empty(), "id 1 was answered");
    weex.forget(&a);
    assert_eq!(weex.streams.len(), 0);
}

#[test]
fn unanswered_requests_are_bounded_and_the_newest_kept() {
    let mut weex = Weex::new();
    for id in 0..(MAX_PENDING as u64 * 3) {
        let _ = weex.encode_subscribe(&[&Topic::new("ticker").symbol("S")], id);
    }
    assert_eq!(weex.pending.len(), MAX_PENDING);
    let newest = MAX_PENDING as u64 * 3 - 1;
    assert!(matches!(
        weex.classify(&format!(r#"{{"result":null,"id":{newest}}}"#)),
        Inbound::Subscribed { .. }
    ));
    assert_eq!(
        weex.classify(r#"{"result":null,"id":0}"#),
        Inbound::Control,
        "the oldest was dropped"
    );
    // A subscription that ended unacknowledged drops its stream name, but a
    // late ack still names its stream.
    let topic = Topic::new("trade").symbol("LATE");
    let _ = weex.encode_subscribe(&[&topic], 10_000);
    weex.forget_topic(&topic);
    assert_eq!(weex.streams.len(), 1, "only S@ticker is left");
    assert!(matches!(
        weex.classify(r#"{"result":null,"id":10000}"#),
        Inbound::Subscribed { server_id, .. } if server_id == key("LATE@trade")
    ));
    weex.reset();
    assert!(weex.pending.is_empty());
}

#[test]
fn withdrawn_requests_are_evicted_before_a_live_one() {
    // Issue 19: a live subscribe waiting for its ack must keep its slot while
    // subscribes that were withdrawn (timed out, refused, dropped) hold others.
    let mut weex = Weex::new();
    let live = Topic::new("ticker").symbol("LIVE");
    let _ = weex.encode_subscribe(&[&live], 1);
    for id in 2..=MAX_PENDING as u64 {
        let topic = Topic::new("trade").symbol(format!("GONE{id}"));
        let _ = weex.encode_subscribe(&[&topic], id);
        weex.forget_topic(&topic);
    }
    assert_eq!(weex.pending.len(), MAX_PENDING);
    // The map is full: the next subscribe must make room from a withdrawn one.
    let next = Topic::new("ticker").symbol("NEXT");
    let next_id = MAX_PENDING as u64 + 1;
    let _ = weex.encode_subscribe(&[&next], next_id);
    assert_eq!(weex.pending.len(), MAX_PENDING);
    assert!(
        matches!(
            weex.classify(r#"{"result":true,"id":1}"#),
            Inbound::Subscribed { server_id, .. } if server_id == key("LIVE@ticker")
        ),
        "the live request kept its slot"
    );
    assert!(matches!(
        weex.classify(&format!(r#"{{"result":true,"id":{next_id}}}"#)),
        Inbound::Subscribed { server_id, .. } if server_id == key("NEXT@ticker")
    ));
    // The oldest withdrawn one made room.
    assert_eq!(weex.classify(r#"{"result":true,"id":2}"#), Inbound::Control);
}

/// A WEEX wire example from `tests/data/weex` (see its README for sources).
macro_rules! example {
    ($name:literal) => {
        include_str!(concat!("../../../tests/data/weex/", $name, ".json")).trim_end()
    };
}

fn break_of(inbound: &Inbound<'_>) -> Option<BookBreak> {
    match inbound {
        Inbound::Data { book_break, .. } => *book_break,
        other => panic!("not data: {other:?}"),
    }
}

fn server_id_of(inbound: &Inbound<'_>) -> ServerId {
    match inbound {
        Inbound::Data { server_id, .. } => server_id.clone(),
        other => panic!("not data: {other:?}"),
    }
}

#[test]
fn every_documented_example_has_its_outcome() {
    let mut weex = Weex::new();
    // Requests: what the adapter sends is the documented shape.
    let depth = Topic::new("depth").symbol("ETHUSDT");
    assert_eq!(weex.encode_subscribe(&[&depth], 1), example!("subscribe"));
    assert_eq!(
        weex.encode_unsubscribe(&depth, &key("ETHUSDT@depth15"), 2)
            .as_deref(),
        Some(example!("unsubscribe"))
    );
    // Reply: the subscribe is acked by id.
    assert!(matches!(
        weex.classify(example!("subscribe_ok")),
        Inbound::Subscribed { req_id: Some(1), server_id, .. } if server_id == key("ETHUSDT@depth15")
    ));
    // Greeting, heartbeats and the heartbeat echo.
    assert_eq!(weex.classify(example!("connected")), Inbound::Control);
    for ping in [example!("ping_public"), example!("ping_private")] {
        match weex.classify(ping) {
            Inbound::Reply { text } => {
                let ours: serde_json::Value = serde_json::from_str(&text).unwrap();
                let documented: serde_json::Value = serde_json::from_str(example!("pong")).unwrap();
                assert_eq!(ours["method"], documented["method"]);
                assert!(ours["id"].as_u64().unwrap() >= PONG_ID_BASE);
            }
            other => panic!("{ping}: {other:?}"),
        }
    }
    let echo = example!("pong_echo").replace("\"7\"", &format!("\"{PONG_ID_BASE}\""));
    assert_eq!(weex.classify(&echo), Inbound::Control);
    // A refusal: no code, permanent by its message.
    let _ = weex.encode_subscribe(&[&Topic::new("ticker").symbol("NOPEUSDT")], 1);
    match weex.classify(example!("subscribe_refused")) {
        Inbound::Rejected {
            req_id: Some(1),
            symbol,
            error,
        } => {
            assert_eq!(symbol.as_deref(), Some("NOPEUSDT"));
            assert_eq!(error.kind, VenueErrorKind::Permanent);
            assert_eq!(error.code, None);
        }
        other => panic!("{other:?}"),
    }
    // Every push type reaches the stream it was subscribed as.
    let streams = [
        (Topic::new("ticker").symbol("ETHUSDT"), "ticker"),
        (Topic::new("bookTicker").symbol("ETHUSDT"), "bookTicker"),
        (Topic::new("trade").symbol("ETHUSDT"), "trade"),
        (Topic::new("trade").symbol("ETHUSDT"), "tradeSnapshot"),
        (Topic::new("kline").symbol("ETHUSDT"), "kline"),
        (
            Topic::new("kline")
                .symbol("ETHUSDT")
                .param("priceType", "MARK_PRICE"),
            "klineSnapshot",
        ),
        (Topic::new("account"), "account"),
        (Topic::new("orders"), "orders"),
        (Topic::new("fill"), "fill"),
        (Topic::new("positions"), "positions"),
    ];
    let mut id = 10;
    for (topic, _) in &streams {
        id += 1;
        let _ = subscribed(&mut weex, topic.clone(), id);
    }
    for (topic, name) in streams {
        let text = match name {
            "ticker" => example!("ticker"),
            "bookTicker" => example!("bookTicker"),
            "trade" => example!("trade"),
            "tradeSnapshot" => example!("tradeSnapshot"),
            "kline" => example!("kline"),
            "klineSnapshot" => example!("klineSnapshot"),
            "account" => example!("account"),
            "orders" => example!("orders"),
            "fill" => example!("fill"),
            _ => example!("positions"),
        };
        let inbound = weex.classify(text);
        assert_eq!(server_id_of(&inbound), Weex::server_id(&topic), "{name}");
        match inbound {
            Inbound::Data {
                payload: Some(payload),
                book_break: None,
                ..
            } => assert!(payload.starts_with('['), "{name}: rows are the payload"),
            Inbound::Data {
                payload: None,
                book_break: None,
                ..
            } => assert_eq!(name, "bookTicker", "only bookTicker has no rows"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // Depth: snapshot then a CHANGED push chained to it.
    let snapshot = weex.classify(example!("depthSnapshot"));
    assert_eq!(server_id_of(&snapshot), key("ETHUSDT@depth15"));
    assert_eq!(break_of(&snapshot), None);
    assert_eq!(break_of(&weex.classify(example!("depth"))), None);
    // A delisted symbol's empty snapshot is data for its stream, not an error.
    let _ = subscribed(&mut weex, Topic::new("depth").symbol("OLDUSDT"), 99);
    let delisted = weex.classify(example!("depthSnapshot_delisted"));
    assert_eq!(server_id_of(&delisted), key("OLDUSDT@depth15"));
    assert_eq!(break_of(&delisted), None);
}

#[test]
fn kline_pushes_route_by_interval_and_price_type() {
    let mut weex = Weex::new();
    let last_1m = subscribed(&mut weex, Topic::new("kline").symbol("ETHUSDT"), 1);
    let mark_1m = subscribed(
        &mut weex,
        Topic::new("kline")
            .symbol("ETHUSDT")
            .param("priceType", "MARK_PRICE"),
        2,
    );
    let last_1h = subscribed(
        &mut weex,
        Topic::new("kline")
            .symbol("ETHUSDT")
            .param("interval", "1h"),
        3,
    );
    assert_eq!(server_id_of(&weex.classify(example!("kline"))), last_1m);
    assert_eq!(
        server_id_of(&weex.classify(example!("klineSnapshot"))),
        mark_1m
    );
    let hourly = example!("kline").replace(r#""i":"1m""#, r#""i":"1h""#);
    assert_eq!(server_id_of(&weex.classify(&hourly)), last_1h);
    // The first row names the stream; later rows are not read.
    let two_rows = r#"{"e":"kline","s":"ETHUSDT","p":"LAST_PRICE","d":[{"i":"1h"},{"i":"1m"},7]}"#;
    assert_eq!(server_id_of(&weex.classify(two_rows)), last_1h);
    // Without `p` or `i`, three kline streams are ambiguous: routed nowhere.
    let bare = r#"{"e":"kline","s":"ETHUSDT","d":[]}"#;
    assert_eq!(server_id_of(&weex.classify(bare)), key("ETHUSDT@kline"));
}

fn depth_push(kind: &str, first: u64, last: u64) -> String {
    let e = if kind == "SNAPSHOT" {
        "depthSnapshot"
    } else {
        "depth"
    };
    format!(
        r#"{{"e":"{e}","E":1,"s":"ETHUSDT","U":{first},"u":{last},"l":15,"d":"{kind}","b":[],"a":[]}}"#
    )
}

#[test]
fn a_break_in_the_depth_update_ids_is_reported_once_and_a_snapshot_restarts_the_chain() {
    let mut weex = Weex::new();
    let depth = subscribed(&mut weex, Topic::new("depth").symbol("ETHUSDT"), 1);
    // Before any snapshot nothing is checked.
    assert_eq!(break_of(&weex.classify(&depth_push("CHANGED", 7, 9))), None);
    assert_eq!(
        break_of(&weex.classify(&depth_push("SNAPSHOT", 100, 100))),
        None
    );
    // U == previous u (not u + 1) continues the chain.
    assert_eq!(
        break_of(&weex.classify(&depth_push("CHANGED", 100, 112))),
        None
    );
    assert_eq!(
        break_of(&weex.classify(&depth_push("CHANGED", 112, 112))),
        None
    );
    assert_eq!(
        break_of(&weex.classify(&depth_push("CHANGED", 112, 130))),
        None
    );
    // A skipped push: U is not the previous u.
    let skipped = depth_push("CHANGED", 140, 150);
    let broken = weex.classify(&skipped);
    assert_eq!(server_id_of(&broken), depth);
    assert_eq!(
        break_of(&broken),
        Some(BookBreak::Discontinuity {
            expected: 130,
            got: 140
        })
    );
    // Reported once: until the next snapshot nothing is checked.
    assert_eq!(
        break_of(&weex.classify(&depth_push("CHANGED", 999, 1000))),
        None
    );
    // `u + 1`, the old assumption, is a break too.
    assert_eq!(
        break_of(&weex.classify(&depth_push("SNAPSHOT", 200, 210))),
        None
    );
    assert_eq!(
        break_of(&weex.classify(&depth_push("CHANGED", 211, 220))),
        Some(BookBreak::Discontinuity {
            expected: 210,
            got: 211
        })
    );
    // An empty snapshot (a delisted symbol) restarts at 0.
    assert_eq!(
        break_of(&weex.classify(&depth_push("SNAPSHOT", 0, 0))),
        None
    );
    assert_eq!(break_of(&weex.classify(&depth_push("CHANGED", 0, 3))), None);
    // A push without U/u cannot continue the chain: a break (the book
    // cannot apply it honestly), reported once.
    let bare = r#"{"e":"depth","s":"ETHUSDT","l":15,"d":"CHANGED","b":[],"a":[]}"#;
    assert_eq!(
        break_of(&weex.classify(bare)),
        Some(BookBreak::Unusable {
            reason: "a depth update without its update ids U and u"
        })
    );
    assert_eq!(
        break_of(&weex.classify(&depth_push("CHANGED", 50, 60))),
        None
    );
    // So is a depth push with neither marker while a chain holds.
    let _ = weex.classify(&depth_push("SNAPSHOT", 60, 60));
    let unmarked = depth_push("CHANGED", 60, 61).replace(r#","d":"CHANGED""#, "");
    assert_eq!(
        break_of(&weex.classify(&unmarked)),
        Some(BookBreak::Unusable {
            reason: "a depth push that is neither SNAPSHOT nor CHANGED"
        })
    );
    assert_eq!(break_of(&weex.classify(&unmarked)), None, "reported once");
    // Chains are per stream and only for subscribed ones; they end with it.
    for i in 0..100 {
        let other = depth_push("SNAPSHOT", 1, 1).replace("ETHUSDT", &format!("X{i}"));
        let _ = weex.classify(&other);
    }
    assert_eq!(weex.chains.len(), 0, "no snapshot since the break");
    let _ = weex.classify(&depth_push("SNAPSHOT", 5, 5));
    assert_eq!(weex.chains.len(), 1);
    weex.forget(&depth);
    assert_eq!(weex.chains.len(), 0);
    let again = subscribed(&mut weex, Topic::new("depth").symbol("ETHUSDT"), 2);
    let _ = weex.classify(&depth_push("SNAPSHOT", 5, 5));
    weex.reset();
    assert_eq!(weex.chains.len(), 0);
    let _ = again;
}

#[test]
fn an_unplaced_frame_is_named_by_its_e_event_or_type() {
    let weex = crate::Weex::new();
    let kind = |text| crate::Protocol::frame_kind(&weex, text);
    assert_eq!(
        kind(r#"{"e":"markPrice","E":1,"s":"BTCUSDT","d":[]}"#),
        Some("markPrice")
    );
    assert_eq!(
        kind(r#"{"event":"connected","cid":"x"}"#),
        Some("connected")
    );
    assert_eq!(kind(r#"{"type":"ping","time":"1"}"#), Some("ping"));
    assert_eq!(kind(r#"{"result":true,"id":1}"#), None);
}
