use std::borrow::Cow;

use super::*;

fn subscribed(weex: &mut Weex, channel: &str, symbol: &str, req_id: u64) {
    let topic = Topic::new(channel).symbol(symbol);
    let _ = weex.encode_subscribe(&[&topic], req_id);
}

#[test]
fn encodes_subscribe_and_unsubscribe() {
    let mut weex = Weex::new();
    let topic = Topic::new("depth")
        .symbol("BTCUSDT")
        .param("instType", "SPOT");
    assert_eq!(
        weex.encode_subscribe(&[&topic], 1),
        r#"{"op":"subscribe","args":[{"channel":"depth","instId":"BTCUSDT","instType":"SPOT"}]}"#
    );
    assert_eq!(
        weex.encode_unsubscribe(&topic, &Weex::server_id("depth", Some("BTCUSDT")), 2)
            .as_deref(),
        Some(
            r#"{"op":"unsubscribe","args":[{"channel":"depth","instId":"BTCUSDT","instType":"SPOT"}]}"#
        )
    );
    assert_eq!(weex.encode_ping(1), None);
    assert_eq!(weex.limits().channels_per_connection, Some(100));
    let ops = weex.limits().subscribe_ops.unwrap();
    assert_eq!((ops.frames, ops.per), (240, Duration::from_secs(3600)));
}

#[test]
fn acks_carry_the_request_that_named_the_topic() {
    let mut weex = Weex::new();
    subscribed(&mut weex, "ticker", "BTCUSDT", 7);
    subscribed(&mut weex, "trades", "ETHUSDT", 8);
    let ack = r#"{"event":"subscribe","arg":{"channel":"trades","instId":"ETHUSDT"}}"#;
    assert_eq!(
        weex.classify(ack),
        Inbound::Subscribed {
            req_id: Some(8),
            server_id: Weex::server_id("trades", Some("ETHUSDT")),
            channel: Some(Cow::Borrowed("trades")),
            symbol: Some(Cow::Borrowed("ETHUSDT")),
        }
    );
    // A repeated ack has no pending request left: it names the topic only.
    assert!(matches!(
        weex.classify(ack),
        Inbound::Subscribed { req_id: None, .. }
    ));
    // An ack naming no channel matches nobody.
    assert!(matches!(
        weex.classify(r#"{"event":"subscribe","arg":{}}"#),
        Inbound::Invalid(_)
    ));
    assert_eq!(
        weex.classify(r#"{"event":"unsubscribe","arg":{"channel":"ticker","instId":"BTCUSDT"}}"#),
        Inbound::Unsubscribed { req_id: None }
    );
}

#[test]
fn errors_map_to_kinds_and_to_the_request() {
    let mut weex = Weex::new();
    subscribed(&mut weex, "depth", "BTCUSDT", 3);
    let frame = r#"{"event":"error","arg":{"channel":"depth","instId":"BTCUSDT"},"code":"40029","msg":"too many requests"}"#;
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
    for (code, kind) in [
        (40001, VenueErrorKind::Permanent),
        (40005, VenueErrorKind::Permanent),
        (40006, VenueErrorKind::Unknown),
        (50000, VenueErrorKind::Transient),
        (50009, VenueErrorKind::Transient),
        (50010, VenueErrorKind::Unknown),
    ] {
        let frame = format!(r#"{{"event":"error","code":{code},"msg":"m"}}"#);
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
fn heartbeats_are_answered_with_the_same_time() {
    let mut weex = Weex::new();
    for (ping, pong) in [
        (
            r#"{"event":"ping","time":1693208170000}"#,
            r#"{"event":"pong","time":1693208170000}"#,
        ),
        (
            r#"{"time":"1693208170000","event":"ping"}"#,
            r#"{"event":"pong","time":"1693208170000"}"#,
        ),
        (r#"{"event":"ping"}"#, r#"{"event":"pong"}"#),
    ] {
        assert_eq!(
            weex.classify(ping),
            Inbound::Reply {
                text: Cow::Owned(pong.to_owned())
            }
        );
    }
    let long = format!(r#"{{"event":"ping","time":"{}"}}"#, "9".repeat(1000));
    assert!(matches!(weex.classify(&long), Inbound::Invalid(_)));
    assert_eq!(weex.classify(r#"{"event":"pong"}"#), Inbound::Pong);
}

#[test]
fn pushes_route_by_channel_and_instrument() {
    let mut weex = Weex::new();
    subscribed(&mut weex, "trades", "BTCUSDT", 1);
    let push =
        r#"{"action":"update","arg":{"channel":"trades","instId":"BTCUSDT"},"data":[{"p":"1"}]}"#;
    assert_eq!(
        weex.classify(push),
        Inbound::Data {
            server_id: Weex::server_id("trades", Some("BTCUSDT")),
            seq: None,
            checksum: None,
            payload: Some(r#"[{"p":"1"}]"#),
        }
    );
    assert_eq!(weex.classify(r#"{"data":[1]}"#), Inbound::Unsolicited);
    assert_eq!(
        weex.classify(r#"{"event":"login","code":0}"#),
        Inbound::Control
    );
    for garbage in ["", "[]", "{", "nope", r#"{"event":"ping","event":"ping"}"#] {
        assert!(
            matches!(weex.classify(garbage), Inbound::Invalid(_)),
            "{garbage}"
        );
    }
}

#[test]
fn peer_frames_cannot_grow_the_adapter_state() {
    let mut weex = Weex::new();
    subscribed(&mut weex, "ticker", "A", 1);
    for i in 0..1000 {
        let ack =
            format!(r#"{{"event":"subscribe","arg":{{"channel":"ticker","instId":"S{i}"}}}}"#);
        let _ = weex.classify(&ack);
        let push = format!(r#"{{"arg":{{"channel":"ticker","instId":"S{i}"}},"data":[]}}"#);
        let _ = weex.classify(&push);
    }
    assert_eq!(weex.keys.len(), 1);
    assert_eq!(weex.pending.len(), 1);
    weex.forget(&Weex::server_id("ticker", Some("A")));
    assert_eq!((weex.keys.len(), weex.pending.len()), (0, 0));
}
