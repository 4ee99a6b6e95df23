//! The bad-input matrix: what a hostile or broken server can send, and what the
//! client does with each. Table-driven; each case gets a fresh exchange and client
//! (Kalshi-style, one acknowledged subscription), injects its bytes with
//! `send_raw_all` / `send_text_all`, checks the documented outcome, then proves
//! the client still works by routing a fresh frame to the subscription.
//!
//! Outcomes:
//! - `Reconnect`: a typed error ends the connection (`Event::Disconnected`), the
//!   client reconnects, re-subscribes and data flows again;
//! - `GiveUp`: the error is terminal and every stream ends with it;
//! - `Counted`: the frame is skipped and counted (`unroutable` or `control`),
//!   with an `Event::InvalidFrame` when the protocol could not classify it; the
//!   connection stays up.
//!
//! No case may panic, and memory stays bounded (the whole matrix is checked
//! against a generous RSS growth limit; the size limits here are 1.5 MiB per
//! frame and 2 MiB per message).

use crate::support;

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use resilient_ws::{
    Backoff, Client, Config, Error, Event, Events, Kalshi, Kraken, Messages, Protocol,
    ProtocolError, Stats, Subscription, Topic, Update,
};
use serde_json::{json, Value};
use support::exchange::{raw_frame, Exchange, Venue};
use support::vm_rss_kib;
use support::{next, wait_event};

const MAX_FRAME: usize = 1536 * 1024;
const MAX_MESSAGE: usize = 2 << 20;
const RSS_GROWTH_LIMIT_KIB: u64 = 96 * 1024;

/// What the server sends.
enum Inject {
    /// Bytes written straight onto the TCP stream (hand-built frames).
    Raw(Vec<u8>),
    /// Text frames, sent in order through the server's WebSocket.
    Texts(Vec<String>),
}

/// What the client must do.
enum Expect {
    Reconnect(fn(&Error) -> bool),
    GiveUp(fn(&Error) -> bool),
    Counted {
        unroutable: u64,
        control: u64,
        invalid_events: u64,
        /// Data frames the subscription receives from the injection.
        delivered: u64,
        /// Frames without routing fields, delivered to the `Messages` stream.
        unsolicited: u64,
    },
}

struct Case {
    name: &'static str,
    inject: Inject,
    expect: Expect,
}

fn text(opcode_fin_payload: (u8, bool, &[u8])) -> Vec<u8> {
    let (opcode, fin, payload) = opcode_fin_payload;
    raw_frame(opcode, fin, 0, payload, false)
}

fn too_large(e: &Error) -> bool {
    matches!(
        e,
        Error::Protocol {
            protocol_error: ProtocolError::TooLarge(_)
        }
    )
}

fn invalid_utf8(e: &Error) -> bool {
    matches!(
        e,
        Error::Protocol {
            protocol_error: ProtocolError::InvalidUtf8
        }
    )
}

fn violation(e: &Error) -> bool {
    matches!(
        e,
        Error::Protocol {
            protocol_error: ProtocolError::Violation(_)
        }
    )
}

/// `{"a":{"a":...1...}}`, `depth` objects deep.
fn nested_object(depth: usize) -> String {
    let mut s = String::with_capacity(depth * 6 + 1);
    for _ in 0..depth {
        s.push_str("{\"a\":");
    }
    s.push('1');
    for _ in 0..depth {
        s.push('}');
    }
    s
}

fn kalshi_cases(sub_req_id: u64, sid: u64) -> Vec<Case> {
    let one_mib = "x".repeat(1 << 20);
    let close_1_byte = vec![0x88, 0x01, 0x03];
    let mut close_bad_reason = vec![0x03, 0xE8]; // 1000
    close_bad_reason.extend_from_slice(&[0xff, 0xfe]);
    vec![
        Case {
            name: "invalid UTF-8 in a text frame",
            inject: Inject::Raw(text((0x1, true, &[0x66, 0xff, 0xfe, 0x6f]))),
            expect: Expect::Reconnect(invalid_utf8),
        },
        Case {
            name: "invalid UTF-8 split across fragments",
            inject: Inject::Raw(
                [text((0x1, false, b"ok \xc3")), text((0x0, true, b"\x28"))].concat(),
            ),
            expect: Expect::Reconnect(invalid_utf8),
        },
        Case {
            name: "oversize message (fragments each under the frame limit)",
            inject: Inject::Raw(
                [
                    text((0x1, false, &vec![b'a'; 1200 * 1024])),
                    text((0x0, true, &vec![b'a'; 1200 * 1024])),
                ]
                .concat(),
            ),
            expect: Expect::Reconnect(too_large),
        },
        Case {
            name: "oversize frame",
            inject: Inject::Raw(text((0x1, true, &vec![b'a'; MAX_FRAME + 1]))),
            expect: Expect::Reconnect(too_large),
        },
        Case {
            name: "a frame header announcing 2^63 - 1 bytes (nothing allocated)",
            inject: Inject::Raw(vec![0x81, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            expect: Expect::Reconnect(too_large),
        },
        Case {
            name: "fragmented control frame (ping without FIN)",
            inject: Inject::Raw(text((0x9, false, b"p"))),
            expect: Expect::Reconnect(violation),
        },
        Case {
            name: "control frame over 125 bytes",
            inject: Inject::Raw(text((0x9, true, &[b'p'; 200]))),
            expect: Expect::Reconnect(violation),
        },
        Case {
            name: "reserved data opcode 0x3",
            inject: Inject::Raw(text((0x3, true, b"x"))),
            expect: Expect::Reconnect(violation),
        },
        Case {
            name: "reserved control opcode 0xB",
            inject: Inject::Raw(text((0xB, true, b"x"))),
            expect: Expect::Reconnect(violation),
        },
        Case {
            name: "reserved bit RSV1 (no extension negotiated)",
            inject: Inject::Raw(raw_frame(0x1, true, 0b100, b"{}", false)),
            expect: Expect::Reconnect(violation),
        },
        Case {
            name: "reserved bits RSV2 and RSV3",
            inject: Inject::Raw(raw_frame(0x1, true, 0b011, b"{}", false)),
            expect: Expect::Reconnect(violation),
        },
        Case {
            name: "masked frame from the server",
            inject: Inject::Raw(raw_frame(0x1, true, 0, b"{\"type\":\"x\"}", true)),
            expect: Expect::Reconnect(violation),
        },
        Case {
            name: "continuation frame with nothing to continue",
            inject: Inject::Raw(text((0x0, true, b"x"))),
            expect: Expect::Reconnect(violation),
        },
        Case {
            name: "new text frame inside a fragmented message",
            inject: Inject::Raw([text((0x1, false, b"a")), text((0x1, true, b"b"))].concat()),
            expect: Expect::Reconnect(violation),
        },
        Case {
            name: "close frame with a 1-byte payload",
            inject: Inject::Raw(close_1_byte),
            expect: Expect::Reconnect(violation),
        },
        Case {
            name: "close frame with an invalid UTF-8 reason",
            inject: Inject::Raw(text((0x8, true, &close_bad_reason))),
            expect: Expect::Reconnect(invalid_utf8),
        },
        Case {
            // tungstenite answers an invalid code with 1002 and reports 1002,
            // which is a permanent code by default: the client gives up.
            name: "close frame with an invalid code (1006 on the wire)",
            inject: Inject::Raw(text((0x8, true, &[0x03, 0xEE]))),
            expect: Expect::GiveUp(|e| matches!(e, Error::Closed { code: 1002, .. })),
        },
        Case {
            name: "close frame with an unassigned code (999)",
            inject: Inject::Raw(text((0x8, true, &[0x03, 0xE7]))),
            expect: Expect::GiveUp(|e| matches!(e, Error::Closed { code: 1002, .. })),
        },
        Case {
            name: "binary frame where text is expected",
            inject: Inject::Raw(text((0x2, true, &[0, 1, 2, 0xff]))),
            expect: Expect::Counted {
                unroutable: 1,
                control: 0,
                invalid_events: 1,
                delivered: 0,
                unsolicited: 0,
            },
        },
        Case {
            name: "text that is not JSON",
            inject: Inject::Texts(vec!["}{ garbage".into()]),
            expect: Expect::Counted {
                unroutable: 1,
                control: 0,
                invalid_events: 1,
                delivered: 0,
                unsolicited: 0,
            },
        },
        Case {
            name: "data for an unknown server id",
            inject: Inject::Texts(vec![
                json!({"type": "ticker", "sid": 999, "seq": 1, "msg": {}}).to_string(),
            ]),
            expect: Expect::Counted {
                unroutable: 1,
                control: 0,
                invalid_events: 0,
                delivered: 0,
                unsolicited: 0,
            },
        },
        Case {
            name: "ack for an unknown request id (and data for its sid)",
            inject: Inject::Texts(vec![
                json!({"id": 9999, "type": "subscribed", "msg": {"channel": "ticker", "sid": 500}})
                    .to_string(),
                json!({"type": "ticker", "sid": 500, "msg": {}}).to_string(),
            ]),
            expect: Expect::Counted {
                unroutable: 1,
                control: 1,
                invalid_events: 0,
                delivered: 0,
                unsolicited: 0,
            },
        },
        Case {
            name: "duplicate ack with a new sid (the old sid keeps routing)",
            inject: Inject::Texts(vec![
                json!({"id": sub_req_id, "type": "subscribed", "msg": {"channel": "ticker", "sid": 600}})
                    .to_string(),
                json!({"type": "ticker", "sid": 600, "msg": {}}).to_string(),
                json!({"type": "ticker", "sid": sid, "msg": {"market_ticker": "A"}}).to_string(),
            ]),
            expect: Expect::Counted {
                unroutable: 1,
                control: 1,
                invalid_events: 0,
                delivered: 1,
                unsolicited: 0,
            },
        },
        Case {
            name: "error for an unknown request id",
            inject: Inject::Texts(vec![json!({"id": 9999, "type": "error", "msg": {"code": 1, "msg": "x"}}).to_string()]),
            expect: Expect::Counted {
                unroutable: 0,
                control: 1,
                invalid_events: 0,
                delivered: 0,
                unsolicited: 0,
            },
        },
        Case {
            // Only the routing fields are parsed; serde_json skips the rest
            // without recursion. No sid: it belongs to no subscription.
            name: "JSON nested 10,000 deep (no routing fields)",
            inject: Inject::Texts(vec![nested_object(10_000)]),
            expect: Expect::Counted {
                unroutable: 0,
                control: 0,
                invalid_events: 0,
                delivered: 0,
                unsolicited: 1,
            },
        },
        Case {
            // The payload is the consumer's business: routed untouched.
            name: "JSON nested 10,000 deep inside a routed data frame",
            inject: Inject::Texts(vec![format!(
                r#"{{"type":"ticker","sid":{sid},"msg":{}}}"#,
                nested_object(10_000)
            )]),
            expect: Expect::Counted {
                unroutable: 0,
                control: 0,
                invalid_events: 0,
                delivered: 1,
                unsolicited: 0,
            },
        },
        Case {
            name: "arrays nested 700,000 deep inside a routed data frame (no stack overflow)",
            inject: Inject::Texts(vec![format!(
                r#"{{"type":"ticker","sid":{sid},"msg":{}{}}}"#,
                "[".repeat(700_000),
                "]".repeat(700_000)
            )]),
            expect: Expect::Counted {
                unroutable: 0,
                control: 0,
                invalid_events: 0,
                delivered: 1,
                unsolicited: 0,
            },
        },
        Case {
            name: "a routing field nested 10,000 deep",
            inject: Inject::Texts(vec![format!(
                r#"{{"type":"ticker","sid":{}}}"#,
                nested_object(10_000)
            )]),
            expect: Expect::Counted {
                unroutable: 0,
                control: 0,
                invalid_events: 0,
                delivered: 0,
                unsolicited: 1,
            },
        },
        Case {
            name: "arrays nested 10,000 deep",
            inject: Inject::Texts(vec![format!("{}{}", "[".repeat(10_000), "]".repeat(10_000))]),
            expect: Expect::Counted {
                unroutable: 1,
                control: 0,
                invalid_events: 1,
                delivered: 0,
                unsolicited: 0,
            },
        },
        Case {
            name: "a 1 MiB string field in a data frame",
            inject: Inject::Texts(vec![
                json!({"type": "ticker", "sid": sid, "msg": {"market_ticker": "A", "blob": one_mib}})
                    .to_string(),
            ]),
            expect: Expect::Counted {
                unroutable: 0,
                control: 0,
                invalid_events: 0,
                delivered: 1,
                unsolicited: 0,
            },
        },
    ]
}

struct Rig {
    exchange: Exchange,
    client: Client,
    sub: Subscription,
    messages: Messages,
    events: Events,
}

async fn rig<P: Protocol>(venue: Venue, protocol: P, topic: Topic) -> Rig {
    let exchange = Exchange::start(venue).await.unwrap();
    let config = Config::builder(exchange.url())
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).seed(5))
        .ping_interval(Duration::from_secs(60))
        .idle_timeout(None)
        .max_frame_size(MAX_FRAME)
        .max_message_size(MAX_MESSAGE)
        .build()
        .unwrap();
    let (client, messages) = Client::connect(config, protocol).await.unwrap();
    let events = client.events();
    let sub = client.subscribe(topic).await.unwrap();
    Rig {
        exchange,
        client,
        sub,
        messages,
        events,
    }
}

/// Publishes a marked frame and waits for it on the subscription; returns the
/// data frames (and their sizes) that came before it.
async fn until_marker(rig: &mut Rig, symbol: &str, marker: u64) -> Vec<usize> {
    rig.exchange.publish(symbol, json!({ "marker": marker }));
    let mut before = Vec::new();
    loop {
        match next(&mut rig.sub).await {
            Some(Ok(Update::Data(frame))) => {
                // Injected frames may be too deep for `Value`; they are not the marker.
                let value: Value = frame
                    .as_text()
                    .and_then(|t| serde_json::from_str(t).ok())
                    .unwrap_or_default();
                let found = match rig.exchange.venue() {
                    Venue::Kraken => value["data"][0]["marker"] == marker,
                    _ => value["msg"]["marker"] == marker,
                };
                if found {
                    return before;
                }
                before.push(frame.as_bytes().len());
            }
            Some(Ok(Update::Resubscribed { .. })) => continue,
            other => panic!("expected data, got {other:?}"),
        }
    }
}

fn invalid_events(events: &mut Events) -> u64 {
    let mut n = 0;
    while let Some(Some(event)) = events.next().now_or_never() {
        if matches!(event, Event::InvalidFrame { .. }) {
            n += 1;
        }
    }
    n
}

fn delta(after: &Stats, before: &Stats) -> (u64, u64) {
    (
        after.unroutable - before.unroutable,
        after.control - before.control,
    )
}

async fn run_case(case: Case, mut rig: Rig, symbol: &str) {
    let name = case.name;
    until_marker(&mut rig, symbol, 1).await;
    invalid_events(&mut rig.events);
    let before = rig.client.stats();
    match case.inject {
        Inject::Raw(bytes) => rig.exchange.send_raw_all(bytes),
        Inject::Texts(texts) => {
            for t in texts {
                rig.exchange.send_text_all(&t);
            }
        }
    }
    match case.expect {
        Expect::Reconnect(expected) => {
            let cause = match wait_event(&mut rig.events, |e| {
                matches!(e, Event::Disconnected { .. })
            })
            .await
            {
                Event::Disconnected { cause } => cause,
                _ => unreachable!(),
            };
            assert!(expected(&cause), "{name}: disconnected with {cause:?}");
            assert!(cause.is_retryable(), "{name}");
            wait_event(&mut rig.events, |e| matches!(e, Event::Resubscribed { .. })).await;
            until_marker(&mut rig, symbol, 2).await;
            assert_eq!(rig.client.stats().reconnects, 1, "{name}");
        }
        Expect::GiveUp(expected) => {
            let last = loop {
                match next(&mut rig.sub).await {
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => break error,
                    None => panic!("{name}: the stream ended without the terminal error"),
                }
            };
            assert!(expected(&last), "{name}: terminal {last:?}");
            assert!(next(&mut rig.sub).await.is_none(), "{name}: ends after it");
            let closed = rig.client.closed().await.expect_err("terminal error");
            assert!(expected(&closed), "{name}: closed() {closed:?}");
            assert_eq!(rig.exchange.handshakes(), 1, "{name}: no reconnect");
        }
        Expect::Counted {
            unroutable,
            control,
            invalid_events: invalid,
            delivered,
            unsolicited,
        } => {
            let sizes = until_marker(&mut rig, symbol, 2).await;
            assert_eq!(sizes.len() as u64, delivered, "{name}: delivered {sizes:?}");
            let inbound = rig.messages.stats().routed;
            assert_eq!(inbound, unsolicited, "{name}: unsolicited");
            for _ in 0..inbound {
                let frame = next(&mut rig.messages).await.expect("an unsolicited frame");
                assert!(frame.is_ok(), "{name}: {frame:?}");
            }
            let after = rig.client.stats();
            assert_eq!(
                delta(&after, &before),
                (unroutable, control),
                "{name}: (unroutable, control)"
            );
            assert_eq!(invalid_events(&mut rig.events), invalid, "{name}");
            assert_eq!(after.connects, 1, "{name}: the connection stayed up");
        }
    }
    let _ = rig.client.close().await;
    let stats = rig.client.stats();
    assert!(stats.is_balanced(), "{name}: {stats:?}");
    rig.exchange.shutdown().await;
}

#[tokio::test]
async fn the_bad_input_matrix_kalshi() {
    let rss_before = vm_rss_kib();
    // On a fresh exchange and client the one subscription is request 1, sid 1
    // (checked below, so the duplicate-ack case really duplicates the ack).
    for case in kalshi_cases(1, 1) {
        let rig = rig(
            Venue::Kalshi,
            Kalshi::new(),
            Topic::new("ticker").symbol("A"),
        )
        .await;
        let subscribe = rig
            .exchange
            .received()
            .iter()
            .filter_map(|r| serde_json::from_str::<Value>(&r.text).ok())
            .find(|v| v["cmd"] == "subscribe")
            .expect("the subscribe request");
        assert_eq!(subscribe["id"], 1, "{}", case.name);
        run_case(case, rig, "A").await;
    }
    let growth = vm_rss_kib().saturating_sub(rss_before);
    assert!(growth < RSS_GROWTH_LIMIT_KIB, "RSS grew by {growth} KiB");
}

#[tokio::test]
async fn the_bad_input_matrix_kraken() {
    let one_mib = "x".repeat(1 << 20);
    let deep = nested_object(10_000);
    let cases = vec![
        Case {
            name: "kraken: JSON nested 10,000 deep",
            inject: Inject::Texts(vec![deep.clone()]),
            expect: Expect::Counted {
                unroutable: 1,
                control: 0,
                invalid_events: 1,
                delivered: 0,
                unsolicited: 0,
            },
        },
        Case {
            // Routed by channel and symbol; the payload is not inspected.
            name: "kraken: JSON nested 10,000 deep inside a ticker frame",
            inject: Inject::Texts(vec![format!(
                r#"{{"channel":"ticker","type":"update","data":[{{"symbol":"A/USD","x":{deep}}}]}}"#
            )]),
            expect: Expect::Counted {
                unroutable: 0,
                control: 0,
                invalid_events: 0,
                delivered: 1,
                unsolicited: 0,
            },
        },
        Case {
            name: "kraken: binary frame",
            inject: Inject::Raw(text((0x2, true, b"\x00bin"))),
            expect: Expect::Counted {
                unroutable: 1,
                control: 0,
                invalid_events: 1,
                delivered: 0,
                unsolicited: 0,
            },
        },
        Case {
            name: "kraken: data for a symbol never subscribed",
            inject: Inject::Texts(vec![
                json!({"channel": "ticker", "type": "update", "data": [{"symbol": "ZZZ/USD"}]})
                    .to_string(),
            ]),
            expect: Expect::Counted {
                unroutable: 1,
                control: 0,
                invalid_events: 0,
                delivered: 0,
                unsolicited: 0,
            },
        },
        Case {
            name: "kraken: ack for an unknown request id",
            inject: Inject::Texts(vec![
                json!({"method": "subscribe", "req_id": 9999, "success": true,
                "result": {"channel": "ticker", "symbol": "B/USD"}})
                .to_string(),
            ]),
            expect: Expect::Counted {
                unroutable: 0,
                control: 1,
                invalid_events: 0,
                delivered: 0,
                unsolicited: 0,
            },
        },
        Case {
            name: "kraken: a 1 MiB string field",
            inject: Inject::Texts(vec![json!({"channel": "ticker", "type": "update",
                "data": [{"symbol": "A/USD", "blob": one_mib}]})
            .to_string()]),
            expect: Expect::Counted {
                unroutable: 0,
                control: 0,
                invalid_events: 0,
                delivered: 1,
                unsolicited: 0,
            },
        },
    ];
    for case in cases {
        let rig = rig(
            Venue::Kraken,
            Kraken::new(),
            Topic::new("ticker").symbol("A/USD"),
        )
        .await;
        run_case(case, rig, "A/USD").await;
    }
}

#[tokio::test]
async fn a_flood_of_invalid_frames_is_counted_and_memory_stays_flat() {
    let mut rig = rig(
        Venue::Kalshi,
        Kalshi::new(),
        Topic::new("ticker").symbol("A"),
    )
    .await;
    until_marker(&mut rig, "A", 1).await;
    let before = rig.client.stats();
    let rss_before = vm_rss_kib();
    // 2,000 frames of 64 KiB garbage: 125 MiB through the client, sent in
    // batches the client has counted before the next, so the exchange's own
    // buffer stays small and the RSS measures the client.
    let garbage = "}".repeat(64 * 1024);
    for batch in 1..=20u64 {
        for _ in 0..100 {
            rig.exchange.send_text_all(&garbage);
        }
        let client = rig.client.clone();
        support::wait_until("a batch counted", move || {
            client.stats().unroutable >= before.unroutable + batch * 100
        })
        .await;
    }
    until_marker(&mut rig, "A", 2).await;
    let growth = vm_rss_kib().saturating_sub(rss_before);
    let (unroutable, _) = delta(&rig.client.stats(), &before);
    assert_eq!(unroutable, 2_000);
    assert!(growth < 32 * 1024, "RSS grew by {growth} KiB");
    assert_eq!(rig.client.stats().connects, 1);
    rig.client.close().await.unwrap();
    assert!(rig.client.stats().is_balanced());
    rig.exchange.shutdown().await;
}
