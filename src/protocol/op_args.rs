//! The `op`/`args` request style of OKX v5 (WEEX used it before its V3
//! WebSocket), and the routing fields of its replies and pushes.
//!
//! Requests are `{"op":"subscribe","args":[{"channel":..,"instId":..}]}`;
//! replies are `{"event":"subscribe"|"unsubscribe"|"error","arg":{..},
//! "code":..,"msg":..}`; pushes are `{"arg":{"channel":..,"instId":..},
//! "action":..,"data":[..]}`. A subscription is routed by the key
//! `channel:instId` (or `channel` alone), so the [`ServerId`] is a
//! [`ServerId::Key`]. Only routing fields are read, borrowed from the frame.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::json::Text;
use super::route_keys::RouteKeys;
use super::{ServerId, Topic};

/// The request field that names the instrument.
pub(crate) const INST_ID: &str = "instId";

/// The routing fields of any frame.
#[derive(Deserialize)]
pub(crate) struct Envelope<'a> {
    #[serde(default, borrow)]
    pub(crate) event: Text<'a>,
    /// OKX echoes the request's `id` as a string.
    #[serde(default, borrow)]
    pub(crate) id: Text<'a>,
    #[serde(default, borrow)]
    pub(crate) arg: Option<&'a RawValue>,
    /// A string (`"60012"`) or a number, depending on the venue.
    #[serde(default, borrow)]
    pub(crate) code: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub(crate) msg: Text<'a>,
    #[serde(default, borrow)]
    pub(crate) action: Text<'a>,
    #[serde(default, borrow)]
    pub(crate) data: Option<&'a RawValue>,
}

/// The `arg` object: which channel and instrument (or instrument family or
/// type, for OKX channels subscribed by those) a frame is about.
#[derive(Deserialize, Default)]
pub(crate) struct Arg<'a> {
    #[serde(default, borrow)]
    pub(crate) channel: Text<'a>,
    #[serde(default, borrow, rename = "instId")]
    pub(crate) inst_id: Text<'a>,
    #[serde(default, borrow, rename = "instFamily")]
    pub(crate) inst_family: Text<'a>,
    #[serde(default, borrow, rename = "instType")]
    pub(crate) inst_type: Text<'a>,
}

impl<'a> Arg<'a> {
    /// Parses the `arg` object, or an empty one when it is absent or not an object.
    pub(crate) fn of(raw: Option<&'a RawValue>) -> Self {
        raw.and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or_default()
    }
}

/// A code sent as a JSON string or number, when it is an integer.
pub(crate) fn code(raw: Option<&RawValue>) -> Option<i64> {
    let text = raw?.get();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    text.parse().ok()
}

/// A request id echoed as a string of digits (OKX) or absent.
pub(crate) fn req_id(id: &Text<'_>) -> Option<u64> {
    id.as_deref().and_then(|id| id.parse().ok())
}

/// The `args` entry for `topic`: its params, then its channel and instrument.
pub(crate) fn arg_of(topic: &Topic) -> Value {
    let mut arg = Map::new();
    arg.clone_from(topic.params());
    arg.insert("channel".to_owned(), Value::from(topic.channel()));
    if let Some(symbol) = topic.symbol_name() {
        arg.insert(INST_ID.to_owned(), Value::from(symbol));
    }
    Value::Object(arg)
}

/// `{"id":"<id>","op":"<op>","args":[..]}`; the id only when given.
pub(crate) fn encode(op: &str, id: Option<u64>, topics: &[&Topic]) -> String {
    let args = Value::Array(topics.iter().map(|t| arg_of(t)).collect());
    match id {
        Some(id) => format!(r#"{{"id":"{id}","op":"{op}","args":{args}}}"#),
        None => format!(r#"{{"op":"{op}","args":{args}}}"#),
    }
}

/// Server ids of subscribed topics by their `channel:instId` key
/// ([`RouteKeys`] with that key format).
#[derive(Debug, Default)]
pub(crate) struct Keys(RouteKeys);

impl Keys {
    /// The server id of `channel` + `symbol`.
    pub(crate) fn server_id(channel: &str, symbol: Option<&str>) -> ServerId {
        let mut key = String::new();
        write_key(&mut key, channel, symbol);
        ServerId::Key(Arc::from(key))
    }

    /// Remembers the key of a topic being subscribed.
    pub(crate) fn remember(&mut self, channel: &str, symbol: Option<&str>) {
        let mut key = String::new();
        write_key(&mut key, channel, symbol);
        self.0.remember(&key);
    }

    /// The routing id of a push: the remembered one, or a fresh key (which
    /// routes nowhere) for a topic never subscribed.
    pub(crate) fn route(&mut self, channel: &str, symbol: Option<&str>) -> ServerId {
        self.0.route(|key| write_key(key, channel, symbol))
    }

    /// Whether `server_id` is a remembered (subscribed) key's id.
    pub(crate) fn contains(&self, server_id: &ServerId) -> bool {
        self.0.contains(server_id)
    }

    /// Forgets a key (the subscription ended).
    pub(crate) fn forget(&mut self, server_id: &ServerId) {
        self.0.forget(server_id);
    }

    /// How many keys are remembered (for bound tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

fn write_key(out: &mut String, channel: &str, symbol: Option<&str>) {
    out.push_str(channel);
    if let Some(symbol) = symbol {
        out.push(':');
        out.push_str(symbol);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_ids_are_read_leniently() {
        fn raw(t: &str) -> &RawValue {
            serde_json::from_str(t).unwrap()
        }
        assert_eq!(code(Some(raw(r#""60012""#))), Some(60012));
        assert_eq!(code(Some(raw("40029"))), Some(40029));
        assert_eq!(code(Some(raw(r#""x""#))), None);
        assert_eq!(code(Some(raw("1.5"))), None);
        assert_eq!(code(None), None);
        assert_eq!(req_id(&Text(Some("17".into()))), Some(17));
        assert_eq!(req_id(&Text(Some("-1".into()))), None);
        assert_eq!(req_id(&Text(None)), None);
    }

    #[test]
    fn keys_round_trip_and_stay_bounded() {
        let mut keys = Keys::default();
        keys.remember("books", Some("BTC-USDT"));
        let id = keys.route("books", Some("BTC-USDT"));
        assert_eq!(id, Keys::server_id("books", Some("BTC-USDT")));
        for i in 0..100 {
            let _ = keys.route("books", Some(&format!("X{i}")));
        }
        assert_eq!(keys.len(), 1);
        keys.forget(&id);
        assert_eq!(keys.len(), 0);
        assert_eq!(
            Keys::server_id("status", None),
            ServerId::Key("status".into())
        );
    }

    #[test]
    fn encodes_params_then_channel_and_instrument() {
        let topic = Topic::new("books")
            .symbol("BTC-USDT")
            .param("channel", "x")
            .param("instType", "SPOT");
        let frame = encode("subscribe", Some(3), &[&topic]);
        let v: Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id": "3", "op": "subscribe", "args": [
                {"channel": "books", "instId": "BTC-USDT", "instType": "SPOT"}
            ]})
        );
        let frame = encode("unsubscribe", None, &[&Topic::new("status")]);
        assert_eq!(
            frame,
            r#"{"op":"unsubscribe","args":[{"channel":"status"}]}"#
        );
    }
}
