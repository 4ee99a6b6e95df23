#![no_main]
//! WEEX `classify` on arbitrary frames, through the public adapter API:
//! never panics, answers only heartbeats (with a pong that echoes no more than
//! a timestamp), and acks carry a request id only for a topic
//! this client subscribed.

use libfuzzer_sys::fuzz_target;
use resilient_ws::{Inbound, Protocol, Topic, Weex};

fuzz_target!(|data: &[u8]| {
    let mut weex = Weex::new();
    let topics = ["ticker", "depth", "trades"].map(|c| Topic::new(c).symbol("BTCUSDT"));
    for (i, topic) in topics.iter().enumerate() {
        let _ = weex.encode_subscribe(&[topic], i as u64 + 1);
    }
    for frame in data.split(|b| *b == 0xff) {
        let Ok(text) = std::str::from_utf8(frame) else {
            continue;
        };
        match weex.classify(text) {
            Inbound::Reply { text } => {
                assert!(text.starts_with(r#"{"event":"pong""#) && text.ends_with('}'), "{text}");
                assert!(text.len() <= 64, "{text}");
            }
            Inbound::Subscribed {
                req_id: Some(id),
                channel,
                symbol,
                ..
            } => {
                assert!((1..=3).contains(&id));
                assert_eq!(symbol.as_deref(), Some("BTCUSDT"));
                assert_eq!(channel.as_deref(), Some(["ticker", "depth", "trades"][id as usize - 1]));
            }
            _ => {}
        }
    }
});
