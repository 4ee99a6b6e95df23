use std::borrow::Cow;

use super::*;

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
    let _ = subscribed(&mut weex, Topic::new("depth").symbol("BTCUSDT"), 3);
    let frame = r#"{"result":false,"id":3,"code":"40029","msg":"too many requests"}"#;
    match weex.classify(frame) {
        Inbound::Rejected {
            req_id,
            symbol,
            error,
        } => {
            assert_eq!(req_id, Some(3));
            assert_eq!(symbol.as_deref(), Some("BTCUSDT"));
            assert_eq!(error.kind, VenueErrorKind::RateLimited);
            assert_eq!(error.retry_after(), Some(RATE_LIMIT_RETRY));
            assert_eq!(error.code, Some(40029));
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
    // Without a code the kind is unknown; an unknown id is still passed on.
    match weex.classify(r#"{"result":false,"id":44,"msg":"invalid topic"}"#) {
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
    for (code, kind) in [
        (40001, VenueErrorKind::Permanent),
        (40005, VenueErrorKind::Permanent),
        (40006, VenueErrorKind::Unknown),
        (50000, VenueErrorKind::Transient),
        (50009, VenueErrorKind::Transient),
        (50010, VenueErrorKind::Unknown),
    ] {
        let frame = format!(r#"{{"result":false,"code":{code},"msg":"m"}}"#);
        match weex.classify(&frame) {
            Inbound::Rejected {
                req_id: None,
                error,
                ..
            } => assert_eq!(error.kind, kind, "{code}"),
            other => panic!("{code}: {other:?}"),
        }
    }
    assert!(!venue_error(Some(40002), "").is_retryable());
    assert!(venue_error(Some(50001), "").is_retryable());
}

#[test]
fn heartbeats_are_answered_with_the_v3_pong() {
    let mut weex = Weex::new();
    for ping in [
        r#"{"event":"ping","time":"1693208170000"}"#,
        r#"{"time":1693208170000,"event":"ping"}"#,
        r#"{"event":"ping"}"#,
    ] {
        assert_eq!(
            weex.classify(ping),
            Inbound::Reply {
                text: Cow::Borrowed(r#"{"method":"PONG","id":1}"#)
            }
        );
    }
    // Whatever the time, the answer is the same few bytes.
    let long = format!(r#"{{"event":"ping","time":"{}"}}"#, "9".repeat(1000));
    assert_eq!(
        weex.classify(&long),
        Inbound::Reply {
            text: Cow::Borrowed(PONG)
        }
    );
    assert_eq!(weex.classify(r#"{"event":"pong"}"#), Inbound::Pong);
}

fn data(server_id: ServerId, payload: Option<&str>) -> Inbound<'_> {
    Inbound::Data {
        server_id,
        seq: None,
        checksum: None,
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
        r#"{"e":"depth","E":1,"s":"BTCUSDT","U":1,"u":5,"l":200,"d":"SNAPSHOT","b":[["100","1"]],"a":[["101","2"]]}"#,
        r#"{"e":"depth","E":2,"s":"BTCUSDT","U":6,"u":6,"l":"200","d":"CHANGED","b":[],"a":[["101","0"]]}"#,
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
