//! The Kalshi-style protocol: the server assigns each subscription a numeric
//! `sid`, and data frames carry it (with a per-sid `seq` on sequenced channels).
//!
//! Each topic is subscribed with its own request, so each acknowledgement maps
//! one request id to one sid. There is no application-level ping: the supervisor
//! uses WebSocket pings.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::json::{self, Num, Text};
use super::scan;
use super::{Inbound, Protocol, Request, ServerId, Topic};
use crate::error::{ProtocolError, VenueError};
use crate::venue_error::VenueErrorKind;

/// The Kalshi WebSocket protocol (server-assigned subscription ids).
///
/// ```
/// use resilient_ws::{Kalshi, Protocol, Topic};
/// let mut kalshi = Kalshi::new();
/// let frame = kalshi.encode_subscribe(&[&Topic::new("ticker").symbol("KXBTC-25")], 1);
/// assert_eq!(
///     frame,
///     r#"{"id":1,"cmd":"subscribe","params":{"channels":["ticker"],"market_tickers":["KXBTC-25"]}}"#
/// );
/// ```
#[derive(Debug, Clone, Default)]
pub struct Kalshi {
    _private: (),
}

impl Kalshi {
    /// The Kalshi protocol.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The routing fields of a Kalshi frame.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    id: Num,
    #[serde(default, borrow, rename = "type")]
    kind: Text<'a>,
    #[serde(default)]
    sid: Num,
    #[serde(default)]
    seq: Num,
    #[serde(default, borrow)]
    msg: Option<&'a RawValue>,
}

/// The `msg` of a `subscribed` acknowledgement.
#[derive(Deserialize, Default)]
struct AckMsg<'a> {
    #[serde(default, borrow)]
    channel: Text<'a>,
    #[serde(default)]
    sid: Num,
}

/// The `msg` of an `error` frame.
#[derive(Deserialize, Default)]
struct ErrorMsg<'a> {
    #[serde(default, borrow)]
    code: Option<&'a RawValue>,
    #[serde(default, borrow)]
    msg: Text<'a>,
}

/// Parses a nested `msg` object, or an empty one when it is absent or not an object.
fn nested<'a, T: Deserialize<'a> + Default>(msg: Option<&'a RawValue>) -> T {
    msg.and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or_default()
}

impl Protocol for Kalshi {
    fn name(&self) -> &'static str {
        "kalshi"
    }

    /// Kalshi stamps market-data messages with `msg.ts_ms` (Unix ms); the
    /// deprecated `msg.ts` (Unix seconds) is read when `ts_ms` is absent.
    fn venue_time(&self, _text: &str, payload: &str) -> Option<std::time::SystemTime> {
        super::venue_time::kalshi(payload)
    }

    fn encode_subscribe(&mut self, topics: &[&Topic], req_id: u64) -> String {
        // `can_batch` is false, so there is one topic.
        let mut params = Map::new();
        if let Some(topic) = topics.first() {
            params.clone_from(topic.params());
            params.insert("channels".to_owned(), Value::from(vec![topic.channel()]));
            match topic.symbol_name() {
                Some(symbol) => {
                    params.insert("market_tickers".to_owned(), Value::from(vec![symbol]))
                }
                None => None,
            };
        }
        format!(
            r#"{{"id":{req_id},"cmd":"subscribe","params":{}}}"#,
            Value::Object(params)
        )
    }

    fn encode_unsubscribe(
        &mut self,
        _topic: &Topic,
        server_id: &ServerId,
        req_id: u64,
    ) -> Option<String> {
        match server_id {
            ServerId::Num(sid) => Some(format!(
                r#"{{"id":{req_id},"cmd":"unsubscribe","params":{{"sids":[{sid}]}}}}"#
            )),
            ServerId::Key(_) => None,
        }
    }

    fn encode_request(&mut self, request: &Request, req_id: u64) -> Result<String, ProtocolError> {
        let cmd = Value::from(request.method.as_str());
        Ok(match &request.params {
            Some(params) => format!(r#"{{"id":{req_id},"cmd":{cmd},"params":{params}}}"#),
            None => format!(r#"{{"id":{req_id},"cmd":{cmd}}}"#),
        })
    }

    /// Data frames take the single-pass scan (`protocol::scan::kalshi`, not
    /// public); anything it does not answer takes the serde path, which stays
    /// the reference.
    fn classify<'a>(&mut self, text: &'a str) -> Inbound<'a> {
        match Self::classify_fast(text) {
            Some(inbound) => inbound,
            None => Self::classify_serde(text),
        }
    }
}

impl Kalshi {
    /// The fast path: a data frame read by the single-pass scanner, or `None`.
    pub(crate) fn classify_fast(text: &str) -> Option<Inbound<'_>> {
        scan::kalshi::data(text).map(|data| Inbound::Data {
            server_id: ServerId::Num(data.sid),
            seq: data.seq,
            checksum: None,
            payload: data.msg,
        })
    }

    /// The reference path: every frame read through serde.
    pub(crate) fn classify_serde<'a>(text: &'a str) -> Inbound<'a> {
        if !json::is_object(text) {
            return Inbound::Invalid(ProtocolError::Unparseable(
                "kalshi: frame is not a JSON object".to_owned(),
            ));
        }
        let frame: Envelope<'a> = match serde_json::from_str(text) {
            Ok(frame) => frame,
            Err(error) => return Inbound::Invalid(json::unparseable("kalshi", &error)),
        };
        let req_id = frame.id.0;
        match frame.kind.as_deref() {
            Some("subscribed") => {
                let ack: AckMsg<'a> = nested(frame.msg);
                match ack.sid.0.or(frame.sid.0) {
                    Some(sid) => Inbound::Subscribed {
                        req_id,
                        server_id: ServerId::Num(sid),
                        channel: ack.channel.0,
                        symbol: None,
                    },
                    None => Inbound::Invalid(ProtocolError::Unparseable(
                        "kalshi: subscribed acknowledgement without a numeric msg.sid".to_owned(),
                    )),
                }
            }
            Some("error") => {
                let error: ErrorMsg<'a> = nested(frame.msg);
                let code = error.code.and_then(|raw| raw.get().parse::<i64>().ok());
                Inbound::Rejected {
                    req_id,
                    symbol: None,
                    error: VenueError::kalshi(code, error.msg.0.unwrap_or_default()),
                }
            }
            Some("unsubscribed") => Inbound::Unsubscribed { req_id },
            Some("ok") => match req_id {
                Some(req_id) => Inbound::Response {
                    req_id,
                    error: None,
                },
                None => Inbound::Control,
            },
            _ => match frame.sid.0 {
                Some(sid) => Inbound::Data {
                    server_id: ServerId::Num(sid),
                    seq: frame.seq.0,
                    checksum: None,
                    payload: frame.msg.map(RawValue::get),
                },
                None => Inbound::Unsolicited,
            },
        }
    }
}

/// Kalshi's error codes and messages, mapped onto [`VenueErrorKind`].
impl VenueError {
    /// Classifies a Kalshi error code and message.
    pub fn kalshi(code: Option<i64>, message: impl Into<String>) -> Self {
        let error = VenueError::new(code, message);
        let kind = kalshi_kind(code, &error.message);
        error.with_kind(kind)
    }
}

/// Kalshi: codes with an unambiguous meaning first, then the message's words.
fn kalshi_kind(code: Option<i64>, message: &str) -> VenueErrorKind {
    let lower = message.to_ascii_lowercase();
    let has = |word: &str| lower.contains(word);
    if has("rate limit") || has("too many") {
        VenueErrorKind::RateLimited
    } else if has("internal")
        || has("timeout")
        || has("timed out")
        || has("unavailable")
        || has("busy")
    {
        VenueErrorKind::Transient
    } else if has("session") && (has("expired") || has("invalid")) {
        VenueErrorKind::SessionExpired
    } else if code == Some(6)
        || has("auth")
        || has("permission")
        || has("required")
        || has("unknown")
        || has("invalid")
        || has("already")
        || has("not found")
        || has("unsupported")
    {
        VenueErrorKind::Permanent
    } else {
        VenueErrorKind::Unknown
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use serde_json::json;

    use super::*;

    fn classify(text: &str) -> Inbound<'_> {
        Kalshi::new().classify(text)
    }

    fn parse(frame: &str) -> Value {
        serde_json::from_str(frame).unwrap()
    }

    #[test]
    fn encodes_subscribe_with_merged_params() {
        let mut kalshi = Kalshi::new();
        let topic = Topic::new("ticker").symbol("KXBTC-25");
        assert_eq!(
            parse(&kalshi.encode_subscribe(&[&topic], 1)),
            json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["ticker"], "market_tickers": ["KXBTC-25"]}})
        );
        let topic = Topic::new("orderbook_delta")
            .symbol("A")
            .param("send_initial_snapshot", true);
        assert_eq!(
            parse(&kalshi.encode_subscribe(&[&topic], 9)),
            json!({"id": 9, "cmd": "subscribe", "params": {
                "channels": ["orderbook_delta"], "market_tickers": ["A"], "send_initial_snapshot": true
            }})
        );
        // No symbol: no market_tickers (unless the params carry them).
        let topic = Topic::new("fill");
        assert_eq!(
            parse(&kalshi.encode_subscribe(&[&topic], 2)),
            json!({"id": 2, "cmd": "subscribe", "params": {"channels": ["fill"]}})
        );
        let topic = Topic::new("ticker").param("market_tickers", json!(["A", "B"]));
        assert_eq!(
            parse(&kalshi.encode_subscribe(&[&topic], 3))["params"]["market_tickers"],
            json!(["A", "B"])
        );
        // The topic's own channel and symbol win over params of the same name.
        let topic = Topic::new("ticker")
            .symbol("A")
            .param("channels", json!(["x"]))
            .param("market_tickers", json!(["y"]));
        assert_eq!(
            parse(&kalshi.encode_subscribe(&[&topic], 4))["params"],
            json!({"channels": ["ticker"], "market_tickers": ["A"]})
        );
        assert!(!kalshi.can_batch(&Topic::new("a").symbol("x"), &Topic::new("a").symbol("y")));
        assert_eq!(kalshi.encode_ping(1), None);
        assert_eq!(kalshi.name(), "kalshi");
    }

    #[test]
    fn encodes_unsubscribe_and_requests() {
        let mut kalshi = Kalshi::new();
        let topic = Topic::new("ticker").symbol("A");
        assert_eq!(
            kalshi
                .encode_unsubscribe(&topic, &ServerId::Num(7), 2)
                .map(|f| parse(&f)),
            Some(json!({"id": 2, "cmd": "unsubscribe", "params": {"sids": [7]}}))
        );
        assert_eq!(
            kalshi.encode_unsubscribe(&topic, &ServerId::Key("k".into()), 2),
            None
        );
        let request = Request::new(
            "update_subscription",
            Some(json!({"sids": [7], "action": "add_markets", "market_tickers": ["B"]})),
        );
        assert_eq!(
            parse(&kalshi.encode_request(&request, 3).unwrap()),
            json!({"id": 3, "cmd": "update_subscription", "params": {"sids": [7], "action": "add_markets", "market_tickers": ["B"]}})
        );
        let request = Request::new("list_\"subscriptions", None);
        assert_eq!(
            parse(&kalshi.encode_request(&request, 4).unwrap()),
            json!({"id": 4, "cmd": "list_\"subscriptions"})
        );
    }

    #[test]
    fn classifies_the_documented_frames() {
        assert_eq!(
            classify(r#"{"id": 1, "type": "subscribed", "msg": {"channel": "ticker", "sid": 7}}"#),
            Inbound::Subscribed {
                req_id: Some(1),
                server_id: ServerId::Num(7),
                channel: Some(Cow::Borrowed("ticker")),
                symbol: None,
            }
        );
        assert_eq!(
            classify(
                r#"{"id": 1, "type": "error", "msg": {"code": 6, "msg": "Already subscribed"}}"#
            ),
            Inbound::Rejected {
                req_id: Some(1),
                symbol: None,
                error: VenueError::kalshi(Some(6), "Already subscribed"),
            }
        );
        assert_eq!(
            classify(r#"{"id": 2, "sid": 7, "seq": 12, "type": "unsubscribed"}"#),
            Inbound::Unsubscribed { req_id: Some(2) }
        );
        assert_eq!(
            classify(r#"{"id": 3, "type": "ok"}"#),
            Inbound::Response {
                req_id: 3,
                error: None
            }
        );
        assert_eq!(
            classify(r#"{"type": "ticker", "sid": 7, "seq": 3, "msg": {"price": 1}}"#),
            Inbound::Data {
                server_id: ServerId::Num(7),
                seq: Some(3),
                checksum: None,
                payload: Some(r#"{"price": 1}"#),
            }
        );
    }

    #[test]
    fn classifies_the_edges() {
        // Without id.
        assert_eq!(classify(r#"{"type":"ok"}"#), Inbound::Control);
        assert!(matches!(
            classify(r#"{"type":"error","msg":{"code":1,"msg":"Unable to process message"}}"#),
            Inbound::Rejected { req_id: None, error, .. } if error.code == Some(1)
        ));
        // Ids that are not u64 count as absent.
        for id in [r#""1""#, "-1", "1.5", "18446744073709551616", "null", "[1]"] {
            let frame = format!(r#"{{"id":{id},"type":"unsubscribed"}}"#);
            assert_eq!(
                classify(&frame),
                Inbound::Unsubscribed { req_id: None },
                "{id}"
            );
        }
        // No seq; sequenced and unsequenced channels alike.
        assert_eq!(
            classify(r#"{"type":"orderbook_delta","sid":18446744073709551615,"msg":{}}"#),
            Inbound::Data {
                server_id: ServerId::Num(u64::MAX),
                seq: None,
                checksum: None,
                payload: Some("{}"),
            }
        );
        // No usable sid: unsolicited.
        assert_eq!(
            classify(r#"{"type":"ticker","msg":{}}"#),
            Inbound::Unsolicited
        );
        assert_eq!(
            classify(r#"{"type":"ticker","sid":"7"}"#),
            Inbound::Unsolicited
        );
        // Only a non-negative integer that fits a u64 is a sid or a seq.
        let deep = format!(
            r#"{{"type":"ticker","sid":{}7{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        for frame in [
            r#"{"type":"ticker","sid":-7}"#,
            r#"{"type":"ticker","sid":7.0}"#,
            r#"{"type":"ticker","sid":7e0}"#,
            r#"{"type":"ticker","sid":18446744073709551616}"#,
            r#"{"type":"ticker","sid":null}"#,
            r#"{"type":"ticker","sid":{"n":7}}"#,
            &deep,
        ] {
            assert_eq!(classify(frame), Inbound::Unsolicited, "{frame:.60}");
        }
        assert_eq!(
            classify(r#"{"type":"ticker","sid":7,"seq":-1}"#),
            Inbound::Data {
                server_id: ServerId::Num(7),
                seq: None,
                checksum: None,
                payload: None,
            }
        );
        assert_eq!(
            classify(r#"{"sid":7,"seq":1}"#),
            Inbound::Data {
                server_id: ServerId::Num(7),
                seq: Some(1),
                checksum: None,
                payload: None,
            }
        );
        // Unknown fields and odd types are tolerated; escapes are decoded.
        assert_eq!(
            classify(
                r#"{"extra":[1,{"a":null}],"type":"subscribed","id":5,"msg":{"channel":"tick\u0065r","sid":8,"more":true}}"#
            ),
            Inbound::Subscribed {
                req_id: Some(5),
                server_id: ServerId::Num(8),
                channel: Some(Cow::Owned("ticker".to_owned())),
                symbol: None,
            }
        );
        assert_eq!(
            classify(r#"{"type":42,"sid":7}"#),
            Inbound::Data {
                server_id: ServerId::Num(7),
                seq: None,
                checksum: None,
                payload: None,
            }
        );
        assert!(matches!(
            classify(r#"{"type":"error","msg":"nope"}"#),
            Inbound::Rejected { error, .. } if error == VenueError::new(None, "")
        ));
        // An ack without a sid cannot be routed.
        assert!(matches!(
            classify(r#"{"id":1,"type":"subscribed","msg":{"channel":"x"}}"#),
            Inbound::Invalid(_)
        ));
    }

    #[test]
    fn garbage_is_invalid_without_quoting_the_frame() {
        let secret = format!(
            r#"{{"type":"ticker","sid":7,"msg":"{}"#,
            "secret".repeat(10_000)
        );
        for frame in [
            "",
            " ",
            "nope",
            "[1,2]",
            "{",
            "1",
            "null",
            r#"{"type":"x"} trailing"#,
            r#"{"sid":1,"sid":2}"#,
            &secret,
        ] {
            match classify(frame) {
                Inbound::Invalid(ProtocolError::Unparseable(text)) => {
                    assert!(text.len() < 100 && !text.contains("secret"), "{text}")
                }
                other => panic!("{frame:.40}: {other:?}"),
            }
        }
    }

    #[test]
    fn kalshi_codes_and_messages_map_the_same_way() {
        assert_eq!(
            VenueError::kalshi(Some(17), "Internal error").kind,
            VenueErrorKind::Transient
        );
        assert_eq!(
            VenueError::kalshi(Some(6), "Already subscribed").kind,
            VenueErrorKind::Permanent
        );
        assert_eq!(
            VenueError::kalshi(Some(9), "Authentication required").kind,
            VenueErrorKind::Permanent
        );
        assert_eq!(
            VenueError::kalshi(Some(8), "Unknown channel name").kind,
            VenueErrorKind::Permanent
        );
        assert_eq!(
            VenueError::kalshi(None, "Rate limit exceeded").kind,
            VenueErrorKind::RateLimited
        );
        assert_eq!(
            VenueError::kalshi(Some(99), "Something new").kind,
            VenueErrorKind::Unknown
        );
    }
}
