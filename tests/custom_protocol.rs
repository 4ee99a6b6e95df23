//! A venue format is one small trait: this test plugs in a hand-written protocol
//! (a Kalshi-like wire format, deliberately written with `serde_json::Value`)
//! and runs a durable subscription through a reconnect with it.

mod support;

use std::time::Duration;

use resilient_ws::{
    Backoff, Client, Config, Event, Inbound, Protocol, ServerId, Topic, Update, VenueError,
};
use serde_json::{json, Value};
use support::exchange::{Exchange, Venue};
use support::{next, wait_event, SOON};

// ---- the whole protocol: keep it under 80 lines --------------------------
struct Tiny;

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
                checksum: None,
                payload: None,
            },
            _ => Inbound::Unsolicited,
        }
    }
}
// ---- end of the protocol ---------------------------------------------------

#[test]
fn the_protocol_above_is_under_80_lines() {
    let source = include_str!("custom_protocol.rs");
    let start = source
        .find("// ---- the whole protocol")
        .expect("start marker");
    let end = source
        .find("// ---- end of the protocol")
        .expect("end marker");
    let lines = source[start..end].lines().count();
    assert!(lines < 80, "{lines} lines");
}

#[tokio::test]
async fn a_custom_protocol_gets_durable_subscriptions() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let config = Config::builder(exchange.url())
        .backoff(Backoff::new(
            Duration::from_millis(5),
            Duration::from_millis(10),
        ))
        .build()
        .unwrap();
    let (client, _messages) = Client::connect(config, Tiny).await.unwrap();
    let mut events = client.events();
    let mut sub = client
        .subscribe(Topic::new("ticker").symbol("T"))
        .await
        .unwrap();
    exchange.publish("T", json!({"v": 1}));
    assert!(matches!(next(&mut sub).await, Some(Ok(Update::Data(_)))));

    exchange.abort_all();
    assert!(exchange.wait_handshakes(2, SOON).await);
    wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    exchange.publish("T", json!({"v": 2}));
    loop {
        match next(&mut sub).await {
            Some(Ok(Update::Data(frame))) => {
                assert!(frame.as_text().unwrap().contains("\"v\":2"));
                break;
            }
            Some(Ok(Update::Resubscribed { .. })) => continue,
            other => panic!("{other:?}"),
        }
    }
    client.close().await.unwrap();
}
