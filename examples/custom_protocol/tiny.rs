//! How to add a venue: implement [`Protocol`] for it. This is the whole of a
//! working adapter for a Kalshi-like wire format; the library does the rest
//! (connection, reconnect with backoff, durable subscriptions replayed after a
//! reconnect, routing, queues, liveness).
//!
//! The four things a venue needs, in the order the library asks for them:
//!
//! 1. `name`: for logs and errors.
//! 2. `encode_subscribe`: one request for one or more topics; echo `req_id` so the
//!    ack can be matched (override `can_batch` to allow several topics per request).
//! 3. `encode_unsubscribe`: by the server id the ack assigned (`None`: the venue
//!    cannot unsubscribe; the client then only stops routing).
//! 4. `classify`: each inbound text frame into an [`Inbound`]: `Subscribed` (with
//!    the server id data frames will carry), `Rejected` (a [`VenueError`]; set its
//!    kind with `with_kind` and any documented wait with `with_retry_after`),
//!    `Data` (server id, optional sequence number for gap detection),
//!    `Unsubscribed`, `Control` or `Unsolicited`, or `Invalid` for garbage.
//!
//! Optional hooks (pings, requests, checksums, per-subscription state) have
//! defaults; see the `Protocol` docs and the bundled `Kalshi` and `Kraken`
//! adapters. This one is deliberately written with `serde_json::Value` for
//! clarity; the bundled adapters read only routing fields into borrowed structs,
//! which is faster.
//!
//! `tests/it/custom_protocol.rs` runs this same type through a reconnect.

use resilient_ws::{Inbound, Protocol, ServerId, Topic, VenueError};
use serde_json::{json, Value};

// ---- the whole protocol: keep it under 80 lines --------------------------
/// A Kalshi-like venue in one small `Protocol` impl.
pub struct Tiny;

impl Protocol for Tiny {
    fn name(&self) -> &'static str {
        "tiny"
    }

    fn encode_subscribe(&mut self, topics: &[&Topic], req_id: u64) -> String {
        let tickers: Vec<_> = topics.iter().filter_map(|t| t.symbol_name()).collect();
        let channel = topics.first().map_or("", |t| t.channel());
        json!({"id": req_id, "cmd": "subscribe", "params": {"channels": [channel], "market_tickers": tickers}})
            .to_string()
    }

    fn encode_unsubscribe(
        &mut self,
        _topic: &Topic,
        server_id: &ServerId,
        req_id: u64,
    ) -> Option<String> {
        let ServerId::Num(sid) = server_id else {
            return None;
        };
        Some(json!({"id": req_id, "cmd": "unsubscribe", "params": {"sids": [sid]}}).to_string())
    }

    fn classify<'a>(&mut self, text: &'a str) -> Inbound<'a> {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return Inbound::Invalid(resilient_ws::ProtocolError::Unparseable("not JSON".into()));
        };
        let req_id = v["id"].as_u64();
        match (v["type"].as_str(), v["sid"].as_u64()) {
            (Some("subscribed"), _) => match v["msg"]["sid"].as_u64() {
                Some(sid) => Inbound::Subscribed {
                    req_id,
                    server_id: ServerId::Num(sid),
                    channel: None,
                    symbol: None,
                },
                None => Inbound::Control,
            },
            (Some("error"), _) => {
                let error = VenueError::new(
                    v["msg"]["code"].as_i64(),
                    v["msg"]["msg"].as_str().unwrap_or(""),
                );
                Inbound::Rejected {
                    req_id,
                    symbol: None,
                    error,
                }
            }
            (Some("unsubscribed"), _) => Inbound::Unsubscribed { req_id },
            (_, Some(sid)) => Inbound::Data {
                server_id: ServerId::Num(sid),
                seq: v["seq"].as_u64(),
                book_break: None,
                payload: None,
            },
            _ => Inbound::Unsolicited,
        }
    }
}
// ---- end of the protocol ---------------------------------------------------
