//! WEEX (V3) `classify` on arbitrary frames, through the public adapter API:
//! never panics, answers heartbeats only with a V3 pong whose id no request
//! id reaches (`PONG_ID_BASE` and up, below 2^53), and acks
//! carry a request id only for a topic this client subscribed, with that
//! topic's channel and symbol.

use resilient_ws::protocol::weex::PONG_ID_BASE;
use resilient_ws::{Inbound, Protocol, Topic, Weex};

/// Fuzz entry point: see the module docs.
pub fn weex_classify(data: &[u8]) {
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
                let id = text
                    .strip_prefix(r#"{"method":"PONG","id":"#)
                    .and_then(|rest| rest.strip_suffix('}'))
                    .and_then(|id| id.parse::<u64>().ok());
                assert!(
                    id.is_some_and(|id| (PONG_ID_BASE..1 << 53).contains(&id)),
                    "{text}"
                );
            }
            Inbound::Subscribed {
                req_id: Some(id),
                channel,
                symbol,
                ..
            } => {
                assert!((1..=3).contains(&id));
                assert_eq!(symbol.as_deref(), Some("BTCUSDT"));
                assert_eq!(
                    channel.as_deref(),
                    Some(["ticker", "depth", "trade"][id as usize - 1])
                );
            }
            _ => {}
        }
    }
}
