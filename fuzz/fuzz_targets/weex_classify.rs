#![no_main]
//! WEEX (V3) `classify` on arbitrary frames, through the public adapter API:
//! never panics, answers heartbeats only with the fixed V3 pong, and acks
//! carry a request id only for a topic this client subscribed, with that
//! topic's channel and symbol.

use libfuzzer_sys::fuzz_target;
use resilient_ws::{Inbound, Protocol, Topic, Weex};

fuzz_target!(|data: &[u8]| {
    let mut weex = Weex::new();
    let topics = ["ticker", "depth", "trade"].map(|c| Topic::new(c).symbol("BTCUSDT"));
    for (i, topic) in topics.iter().enumerate() {
        let _ = weex.encode_subscribe(&[topic], i as u64 + 1);
    }
    for frame in data.split(|b| *b == 0xff) {
        let Ok(text) = std::str::from_utf8(frame) else {
            continue;
        };
        match weex.classify(text) {
            Inbound::Reply { text } => {
                assert_eq!(text, r#"{"method":"PONG","id":1}"#);
            }
            Inbound::Subscribed {
                req_id: Some(id),
                channel,
                symbol,
                ..
            } => {
                assert!((1..=3).contains(&id));
                assert_eq!(symbol.as_deref(), Some("BTCUSDT"));
                assert_eq!(channel.as_deref(), Some(["ticker", "depth", "trade"][id as usize - 1]));
            }
            _ => {}
        }
    }
});
