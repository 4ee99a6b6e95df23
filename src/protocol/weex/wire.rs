//! WEEX V3 frames: the routing fields of replies, pushes and heartbeats, the
//! stream name a [`Topic`] subscribes, and the map from stream names to
//! [`ServerId`]s that routes a push without allocating.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::super::json::Text;
use super::super::route_keys::RouteKeys;
use super::super::{ServerId, Topic};

/// The depth level subscribed when a `depth` topic names none.
pub const DEFAULT_DEPTH_LEVEL: u32 = 15;
/// The kline interval subscribed when a `kline` topic names none.
pub const DEFAULT_KLINE_INTERVAL: &str = "1m";
/// The kline price type subscribed when a `kline` topic names none.
pub const DEFAULT_KLINE_PRICE: &str = "LAST_PRICE";
/// Private channels: subscribed by bare name, their pushes routed by `e` alone.
pub(super) const PRIVATE: [&str; 4] = ["account", "positions", "orders", "fill"];

/// The routing fields of any V3 frame. Strings are [`Text`] (any other JSON
/// value reads as absent); the rest are raw slices of the frame.
#[derive(Deserialize)]
pub(super) struct Frame<'a> {
    /// `"ping"` on a public connection's heartbeat, `"connected"` on the
    /// greeting.
    #[serde(default, borrow)]
    pub(super) event: Text<'a>,
    /// `"ping"` on a private connection's heartbeat.
    #[serde(default, borrow, rename = "type")]
    pub(super) kind: Text<'a>,
    /// `"PONG"` on the venue's echo of a heartbeat answer.
    #[serde(default, borrow)]
    pub(super) method: Text<'a>,
    /// Present (even `null`) on the reply to a request.
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) result: Option<&'a RawValue>,
    /// The request id a reply answers (a number, or a string of digits).
    #[serde(default, borrow)]
    pub(super) id: Option<&'a RawValue>,
    /// An error code, a string or a number (not confirmed to exist).
    #[serde(default, borrow)]
    pub(super) code: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub(super) msg: Text<'a>,
    /// The push's event type (`ticker`, `depth`, ...).
    #[serde(default, borrow)]
    pub(super) e: Text<'a>,
    /// The push's symbol.
    #[serde(default, borrow)]
    pub(super) s: Text<'a>,
    /// The depth push's level.
    #[serde(default, borrow)]
    pub(super) l: Option<&'a RawValue>,
    /// The depth push's first update id (`U`).
    #[serde(default, borrow, rename = "U")]
    pub(super) first_id: Option<&'a RawValue>,
    /// The depth push's last update id (`u`).
    #[serde(default, borrow, rename = "u")]
    pub(super) last_id: Option<&'a RawValue>,
    /// The kline push's price type (`LAST_PRICE`, `MARK_PRICE`, ...).
    #[serde(default, borrow)]
    pub(super) p: Text<'a>,
    /// The depth push's bids, `[[price, qty], ..]`.
    #[serde(default, borrow)]
    pub(super) b: Option<&'a RawValue>,
    /// The depth push's asks, `[[price, qty], ..]`.
    #[serde(default, borrow)]
    pub(super) a: Option<&'a RawValue>,
    /// The push's rows (or, on depth, `"SNAPSHOT"`/`"CHANGED"`).
    #[serde(default, borrow)]
    pub(super) d: Option<&'a RawValue>,
}

/// The routing field of a kline row: its interval (`i`, e.g. `1m`).
#[derive(Deserialize)]
struct KlineRow<'a> {
    #[serde(default, borrow)]
    i: Text<'a>,
}

/// The first row of a kline push; the other rows are skipped without being
/// kept, so a long push costs no memory here.
struct FirstRow<'a>(Option<KlineRow<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstRow<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Rows<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Rows<'a> {
            type Value = FirstRow<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of kline rows")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut rows: A) -> Result<Self::Value, A::Error> {
                let first = rows.next_element::<KlineRow<'a>>()?;
                while rows.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstRow(first))
            }
        }
        deserializer.deserialize_seq(Rows(PhantomData))
    }
}

/// The interval a kline push's first row names, when it names one.
pub(super) fn kline_interval<'a>(rows: Option<&'a RawValue>) -> Option<Cow<'a, str>> {
    let FirstRow(first) = serde_json::from_str(rows?.get()).ok()?;
    first?.i.0
}

/// Keeps a field that is present, `null` included (`Option` alone reads
/// `null` as absent, and `{"result":null}` is a success).
fn present<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<&'a RawValue>, D::Error> {
    <&'a RawValue>::deserialize(d).map(Some)
}

/// A JSON number or string of digits as a `u64`.
pub(super) fn unsigned(raw: Option<&RawValue>) -> Option<u64> {
    let text = raw?.get();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A topic parameter as text: a string verbatim, a number written out.
fn param_text(topic: &Topic, name: &str) -> Option<String> {
    match topic.params().get(name)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The stream a topic subscribes: `<SYMBOL>@<stream>` with the symbol in
/// upper case, or the bare channel for a topic without a symbol (private
/// channels). `depth` becomes `depth<level>` (param `level`, default
/// [`DEFAULT_DEPTH_LEVEL`]); `kline` becomes `kline_<interval>_<priceType>`
/// (params `interval`, `priceType`, defaults [`DEFAULT_KLINE_INTERVAL`],
/// [`DEFAULT_KLINE_PRICE`]); any other channel is used verbatim (so
/// `Topic::new("depth200")` works too). Other params are not sent.
pub fn stream_name(topic: &Topic) -> String {
    let stream = match topic.channel() {
        "depth" => {
            let level = param_text(topic, "level");
            format!(
                "depth{}",
                level.unwrap_or_else(|| DEFAULT_DEPTH_LEVEL.to_string())
            )
        }
        "kline" => format!(
            "kline_{}_{}",
            param_text(topic, "interval").unwrap_or_else(|| DEFAULT_KLINE_INTERVAL.into()),
            param_text(topic, "priceType").unwrap_or_else(|| DEFAULT_KLINE_PRICE.into()),
        ),
        other => other.to_owned(),
    };
    match topic.symbol_name() {
        Some(symbol) => format!("{}@{stream}", symbol.to_ascii_uppercase()),
        None => stream,
    }
}

/// Server ids of subscribed streams by name ([`RouteKeys`] with WEEX's
/// `SYMBOL@stream` names, plus the lookup of a symbol's one depth or kline
/// stream).
#[derive(Debug, Default)]
pub(super) struct Streams(RouteKeys);

impl Streams {
    /// Remembers a stream being subscribed; returns its server id.
    pub(super) fn remember(&mut self, stream: &str) -> ServerId {
        self.0.remember(stream)
    }

    /// The server id of `symbol@stream` (or bare `stream`): the remembered
    /// one, or a fresh key (which routes nowhere) for a stream never subscribed.
    pub(super) fn route(&mut self, symbol: Option<&str>, stream: &str) -> ServerId {
        self.route_level(symbol, stream, None)
    }

    /// [`route`](Self::route) of `stream` followed by `level` (`depth` + 200),
    /// without allocating for a subscribed stream.
    pub(super) fn route_level(
        &mut self,
        symbol: Option<&str>,
        stream: &str,
        level: Option<u64>,
    ) -> ServerId {
        use std::fmt::Write as _;
        self.0.route(|key| {
            if let Some(symbol) = symbol {
                key.push_str(symbol);
                key.push('@');
            }
            key.push_str(stream);
            if let Some(level) = level {
                // Writing to a String cannot fail.
                let _ = write!(key, "{level}");
            }
        })
    }

    /// [`route`](Self::route) of `symbol@kline_<interval>_<price>`.
    pub(super) fn route_kline(
        &mut self,
        symbol: Option<&str>,
        interval: &str,
        price: &str,
    ) -> ServerId {
        self.0.route(|key| {
            if let Some(symbol) = symbol {
                key.push_str(symbol);
                key.push('@');
            }
            key.push_str("kline_");
            key.push_str(interval);
            key.push('_');
            key.push_str(price);
        })
    }

    /// Whether `server_id` is a subscribed stream's.
    pub(super) fn contains(&self, server_id: &ServerId) -> bool {
        self.0.contains(server_id)
    }

    /// The one subscribed stream of `symbol` whose name starts with `stream`
    /// (`depth`, `kline`), or the bare key `symbol@stream` (which routes
    /// nowhere) when there is none or more than one.
    pub(super) fn the_one(&mut self, symbol: Option<&str>, stream: &str) -> ServerId {
        let mut found = None;
        for (name, id) in self.0.iter() {
            let matches = match symbol {
                Some(symbol) => name
                    .strip_prefix(symbol)
                    .and_then(|rest| rest.strip_prefix('@'))
                    .is_some_and(|rest| rest.starts_with(stream)),
                None => !name.contains('@') && name.starts_with(stream),
            };
            if matches {
                if found.is_some() {
                    found = None;
                    break;
                }
                found = Some(id);
            }
        }
        match found {
            Some(id) => id.clone(),
            None => self.route(symbol, stream),
        }
    }

    /// Forgets a stream (the subscription ended).
    pub(super) fn forget(&mut self, server_id: &ServerId) {
        self.0.forget(server_id);
    }

    /// Forgets a stream by name.
    pub(super) fn forget_name(&mut self, stream: &str) {
        self.0.forget_key(stream);
    }

    /// How many streams are remembered (for bound tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}
