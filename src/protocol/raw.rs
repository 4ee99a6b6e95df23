//! The protocol for a plain feed with no subscriptions: every frame is data for
//! the client's inbound stream.

use super::{Inbound, Protocol, ServerId, Topic};

/// No venue format: all text and binary frames go to the client's inbound
/// stream, and subscriptions are not supported (they time out).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawProtocol;

impl Protocol for RawProtocol {
    fn name(&self) -> &'static str {
        "raw"
    }

    fn encode_subscribe(&mut self, topics: &[&Topic], _req_id: u64) -> String {
        // A raw feed has no subscribe message; send the topic names so a test
        // server can still see the intent.
        topics
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn encode_unsubscribe(
        &mut self,
        _topic: &Topic,
        _server_id: &ServerId,
        _req_id: u64,
    ) -> Option<String> {
        None
    }

    fn classify<'a>(&mut self, _text: &'a str) -> Inbound<'a> {
        Inbound::Unsolicited
    }

    fn classify_binary(&mut self, _data: &[u8]) -> Inbound<'static> {
        Inbound::Unsolicited
    }
}
