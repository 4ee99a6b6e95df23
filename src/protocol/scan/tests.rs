//! Each fast path against the serde path on the tricky cases: where the fast
//! path answers, it must answer exactly what serde does; where serde reads a
//! frame differently from a plain scan, the fast path must not answer.

use crate::protocol::{Inbound, Kalshi, Kraken, Protocol, ServerId, Topic};

/// Kalshi: the fast answer (if any) equals serde's; returns whether it answered.
fn kalshi(text: &str) -> bool {
    let reference = Kalshi::classify_serde(text);
    let fast = Kalshi::classify_fast(text);
    if let Some(fast) = &fast {
        assert_eq!(fast, &reference, "{text}");
    }
    assert_eq!(Kalshi::new().classify(text), reference, "{text}");
    fast.is_some()
}

/// A Kraken adapter subscribed to a few topics (routing depends on them).
fn kraken_adapter() -> Kraken {
    let mut kraken = Kraken::new();
    let ticker = [
        Topic::new("ticker").symbol("BTC/USD"),
        Topic::new("ticker").symbol("ETH/USD"),
    ];
    kraken.encode_subscribe(&[&ticker[0], &ticker[1]], 1);
    kraken.encode_subscribe(&[&Topic::new("executions")], 2);
    kraken
}

/// Kraken: as [`kalshi`].
fn kraken(text: &str) -> bool {
    let reference = kraken_adapter().classify_serde(text);
    let fast = kraken_adapter().classify_fast(text);
    if let Some(fast) = &fast {
        assert_eq!(fast, &reference, "{text}");
    }
    assert_eq!(kraken_adapter().classify(text), reference, "{text}");
    fast.is_some()
}

#[test]
fn kalshi_data_frames_take_the_fast_path() {
    for text in [
        r#"{"type":"ticker","sid":7,"seq":3,"msg":{"price":1}}"#,
        r#"{"type":"ticker","sid":1,"seq":2,"msg":{"market_ticker":"KX-001","price":50,"yes_bid":49,"yes_ask":51,"ts":1700000000}}"#,
        // Keys in any order, whitespace anywhere JSON allows it.
        " \t\r\n{ \"msg\" : [ 1 , { } ] , \"seq\" : 0 , \"sid\" : 18446744073709551615 , \"type\" : \"x\" } \n",
        r#"{"sid":7}"#,
        r#"{"sid":7,"seq":1}"#,
        r#"{"sid":7,"msg":null}"#,
        r#"{"sid":7,"msg":"text with \" \\ \u00e9 \ud800 escapes"}"#,
        r#"{"id":5,"type":"orderbook_delta","sid":7,"msg":{"yes":[[1,2],[3,4]]}}"#,
        // Unknown keys (also repeated, also escaped values) are skipped.
        r#"{"extra":1,"extra":[true,false,null,-1.5e-3],"sid":7,"more":"\n"}"#,
        r#"{"type":"Subscribed","sid":7}"#,
    ] {
        assert!(kalshi(text), "no fast answer for {text}");
    }
}

#[test]
fn kalshi_frames_serde_reads_differently_fall_back() {
    let deep = format!(r#"{{"sid":7,"msg":{}1{}}}"#, "[".repeat(65), "]".repeat(65));
    for text in [
        // Acknowledgements and replies.
        r#"{"id":1,"type":"subscribed","msg":{"channel":"ticker","sid":7}}"#,
        r#"{"id":1,"type":"error","sid":7,"msg":{"code":6,"msg":"x"}}"#,
        r#"{"id":2,"sid":7,"seq":12,"type":"unsubscribed"}"#,
        r#"{"id":3,"type":"ok","sid":7}"#,
        // A sid or seq that is not a plain u64 (serde: absent, or an error).
        r#"{"type":"ticker","sid":-1}"#,
        r#"{"type":"ticker","sid":-0}"#,
        r#"{"type":"ticker","sid":1.0}"#,
        r#"{"type":"ticker","sid":1e0}"#,
        r#"{"type":"ticker","sid":"5"}"#,
        r#"{"type":"ticker","sid":null}"#,
        r#"{"type":"ticker","sid":18446744073709551616}"#,
        r#"{"type":"ticker","sid":7,"seq":-1}"#,
        r#"{"type":"ticker","sid":7,"seq":1e400}"#,
        r#"{"type":"ticker","msg":{}}"#,
        // An id serde refuses or reads as absent.
        r#"{"id":1e400,"sid":7}"#,
        r#"{"id":"\ud800","sid":7}"#,
        r#"{"id":null,"sid":7}"#,
        // A type that is not a plain string.
        r#"{"type":5,"sid":7}"#,
        r#"{"type":null,"sid":7}"#,
        r#"{"type":"tick\u0065r","sid":7}"#,
        r#"{"type":"\ud800","sid":7}"#,
        r#"{"type":"o\u006b","sid":7}"#,
        // Duplicate fields: serde refuses them.
        r#"{"sid":1,"sid":2}"#,
        r#"{"sid":1,"seq":1,"seq":2}"#,
        r#"{"sid":1,"msg":1,"msg":2}"#,
        r#"{"sid":1,"type":"a","type":"b"}"#,
        r#"{"id":1,"id":1,"sid":1}"#,
        // Escaped keys (serde matches them unescaped).
        r#"{"s\u0069d":7}"#,
        r#"{"sid":7,"s\u0069d":8}"#,
        // Not JSON, not one object, trailing text, too deep for the scanner.
        "",
        "[1]",
        r#"{"sid":7} x"#,
        r#"{"sid":7}{}"#,
        "{\"sid\":7}\u{c}",
        r#"{"sid":7,}"#,
        r#"{"sid":07}"#,
        "{\"sid\":7,\"msg\":\"a\u{1}b\"}",
        r#"{"sid":7,"msg":"\x"}"#,
        r#"{"sid":7,"msg":tru}"#,
        &deep,
    ] {
        assert!(!kalshi(text), "a fast answer for {text}");
    }
}

#[test]
fn kraken_data_frames_take_the_fast_path() {
    for text in [
        r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":45283.5,"ask":45285.2,"last":45284.0}]}"#,
        r#"{"channel":"ticker","type":"snapshot","data":[{"symbol":"ETH/USD","last":1600.1}]}"#,
        r#"{"data":[{"last":1,"symbol":"BTC/USD"},{"symbol":"ETH/USD"}],"type":"update","channel":"ticker"}"#,
        // Symbol-less subscriptions route by channel, even when items name one.
        r#"{"channel":"executions","type":"update","sequence":12,"data":[{"symbol":"BTC/USD","order_id":"O1"}]}"#,
        r#"{"channel":"executions","sequence":"12","data":[{"order_id":"O1"}]}"#,
        r#"{"channel":"executions","sequence":-1,"data":[]}"#,
        r#"{"channel":"executions","sequence":1.5,"data":[ ]}"#,
        r#"{"channel":"executions","sequence":null,"data":[{}]}"#,
        // Unknown channels and symbols route by key too (unroutable later).
        r#"{"channel":"trade","data":[{"symbol":"XBT/EUR","checksum":[1,{"a":"\u00e9"}]}],"extra":{"x":null}}"#,
        r#"{"channel":"ticker","success":true,"req_id":"x","result":[1],"data":[{"symbol":"BTC/USD","symbol2":1}]}"#,
        r#"{"channel":"ticker","symbol":"BTC/USD","error":"none","data":[{"symbol":"ETH/USD"}]}"#,
    ] {
        assert!(kraken(text), "no fast answer for {text}");
    }
}

#[test]
fn kraken_frames_serde_reads_differently_fall_back() {
    for text in [
        // Methods, control channels, book frames.
        r#"{"method":"subscribe","result":{"channel":"ticker","symbol":"BTC/USD"},"success":true,"req_id":2}"#,
        r#"{"method":5,"channel":"ticker","data":[]}"#,
        r#"{"channel":"heartbeat","data":[]}"#,
        r#"{"channel":"status","type":"update","data":[{"system":"online"}]}"#,
        r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[],"asks":[],"checksum":1}]}"#,
        // data missing, null, or not an array starting with an object.
        r#"{"channel":"ticker"}"#,
        r#"{"channel":"ticker","data":null}"#,
        r#"{"channel":"ticker","data":{"symbol":"BTC/USD"}}"#,
        r#"{"channel":"ticker","data":[["BTC/USD"]]}"#,
        r#"{"channel":"ticker","data":["BTC/USD"]}"#,
        r#"{"channel":"ticker","data":[1,{"symbol":"BTC/USD"}]}"#,
        // The first item's symbol or checksum read differently by serde.
        r#"{"channel":"ticker","data":[{"symbol":"BTC\/USD"}]}"#,
        r#"{"channel":"ticker","data":[{"symbol":"\ud800"}]}"#,
        r#"{"channel":"ticker","data":[{"symbol":1e400}]}"#,
        r#"{"channel":"ticker","data":[{"symbol":null}]}"#,
        r#"{"channel":"ticker","data":[{"symbol":"BTC/USD","symbol":"ETH/USD"}]}"#,
        r#"{"channel":"ticker","data":[{"symbol":"BTC/USD","checksum":1,"checksum":2}]}"#,
        r#"{"channel":"ticker","data":[{"sym\u0062ol":"BTC/USD"}]}"#,
        // Envelope text fields serde decodes, duplicates, escaped keys.
        r#"{"channel":"tick\u0065r","data":[]}"#,
        r#"{"channel":5,"data":[]}"#,
        r#"{"channel":"ticker","type":1e400,"data":[]}"#,
        r#"{"channel":"ticker","error":"\ud800","data":[]}"#,
        r#"{"channel":"ticker","symbol":["x"],"data":[]}"#,
        r#"{"channel":"ticker","channel":"ticker","data":[]}"#,
        r#"{"channel":"ticker","data":[],"data":[]}"#,
        r#"{"channel":"ticker","sequence":1,"sequence":2,"data":[]}"#,
        r#"{"channel":"ticker","success":true,"success":true,"data":[]}"#,
        r#"{"ch\u0061nnel":"ticker","data":[]}"#,
        // Not JSON, trailing text.
        r#"{"channel":"ticker","data":[{"symbol":"BTC/USD"},]}"#,
        r#"{"channel":"ticker","data":[{"symbol":"BTC/USD"}]} ]"#,
        r#"{"channel":"ticker","data":[{"symbol":"BTC/USD"}"#,
    ] {
        assert!(!kraken(text), "a fast answer for {text}");
    }
}

#[test]
fn fast_answers_route_like_the_serde_path() {
    let mut kraken = kraken_adapter();
    let text = r#"{"channel":"executions","data":[{"symbol":"BTC/USD"}]}"#;
    assert_eq!(
        kraken.classify_fast(text),
        Some(Inbound::Data {
            server_id: ServerId::Key("executions".into()),
            seq: None,
            book_break: None,
            payload: Some(r#"[{"symbol":"BTC/USD"}]"#),
        })
    );
    let text = r#"{"type":"t","sid":3,"seq":4,"msg": {"a":1} }"#;
    assert_eq!(
        Kalshi::classify_fast(text),
        Some(Inbound::Data {
            server_id: ServerId::Num(3),
            seq: Some(4),
            book_break: None,
            payload: Some(r#"{"a":1}"#),
        })
    );
}
