//! A venue format is one small trait: this test plugs in the hand-written
//! protocol of the how-to-add-a-venue example (`examples/custom_protocol/tiny.rs`,
//! a Kalshi-like wire format deliberately written with `serde_json::Value`) and
//! runs a durable subscription through a reconnect with it.

use crate::support;

use std::time::Duration;

use resilient_ws::{Backoff, Client, Config, Event, Topic, Update};
use serde_json::json;
use support::exchange::{Exchange, Venue};
use support::{next, wait_event, SOON};

#[path = "../../examples/custom_protocol/tiny.rs"]
mod tiny;

use tiny::Tiny;

#[test]
fn the_example_protocol_is_under_80_lines() {
    let source = include_str!("../../examples/custom_protocol/tiny.rs");
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
