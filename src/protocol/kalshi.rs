//! The Kalshi-style protocol: the server assigns each subscription a numeric
//! `sid`, and data frames carry it (with a per-sid `seq` on sequenced channels).
//!
//! Each topic is subscribed with its own request, so each acknowledgement maps
//! one request id to one sid. There is no application-level ping: the supervisor
//! uses WebSocket pings (Kalshi pings every 10 s with body `heartbeat`).
//!
//! Rules, from Kalshi's AsyncAPI spec for WebSocket v2 (see
//! `src/protocol/VENUES.md`, "Kalshi"):
//! - an `error` that names a `sid` with code 10 (channel error) or 25
//!   (subscription buffer overflow) is terminal for that subscription: it is
//!   [`Inbound::Ended`], and the session subscribes it again. Any other error
//!   answers a command (its `id`) and stays a rejection;
//! - `ok` and `error` frames that carry a `sid` and `seq` took a number of that
//!   subscription's sequence ([`Inbound::Sequenced`]), so the delta after them
//!   is not a gap;
//! - a gap on `orderbook_delta` resyncs with `update_subscription`
//!   `get_snapshot` on the live `sid` (the only channel the spec allows it on);
//!   other channels subscribe again;
//! - the venue time is `ts_ms` (Unix milliseconds); `ts` is deprecated;
//! - `orderbook_delta` subscriptions get a book per market, built from
//!   `orderbook_snapshot` and `orderbook_delta`, verified by the sid's `seq`
//!   and readable through [`BookViews`] (`books.rs` has the rules: YES bids
//!   are the bids, NO bids the asks at `1 - price`; markets added with
//!   `update_subscription` `add_markets` get books too, and a snapshot that
//!   comes before its `subscribed` ack still verifies its market);
//! - markets added or deleted with `update_subscription` (through
//!   [`Client::request`](crate::Client::request)) and accepted by the venue's
//!   `ok` change what the subscription is subscribed with from then on
//!   ([`Protocol::take_changed_topics`], `markets.rs`): a reconnect or a
//!   resubscribe names the markets the venue held, its `ok`'s
//!   `msg.market_tickers` when it lists them.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::json::{self, Num, Text};
use super::scan;
use super::{Inbound, Protocol, Request, ServerId, Topic};
use crate::book::BookViews;
use crate::error::{ProtocolError, VenueError};
use crate::venue_error::VenueErrorKind;

pub(crate) mod book;
mod books;
mod early;
mod markets;
mod updates;

/// The channel whose gaps resync with `get_snapshot`.
const ORDERBOOK_CHANNEL: &str = "orderbook_delta";

/// Error codes after which Kalshi has ended the subscription the error names
/// (the spec's "Terminal Errors": channel error, subscription buffer overflow).
const TERMINAL_CODES: [i64; 2] = [10, 25];

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
///
/// The books of its `orderbook_delta` subscriptions are readable through
/// [`Kalshi::book_views`] (or [`Client::book_views`](crate::Client::book_views)
/// once connected). A clone shares the views with the original.
#[derive(Debug, Clone, Default)]
pub struct Kalshi {
    books: books::Books,
    markets: markets::Markets,
}

impl Kalshi {
    /// The Kalshi protocol.
    pub fn new() -> Self {
        Self::default()
    }

    /// The views of the verified books of `orderbook_delta` subscriptions,
    /// one per market ticker: take it before handing the adapter to the
    /// client, then [`watch`](BookViews::watch) a market.
    ///
    /// ```
    /// use resilient_ws::Kalshi;
    /// let kalshi = Kalshi::new();
    /// let view = kalshi.book_views().watch("KXBTC-25", 10);
    /// assert!(view.latest().is_none()); // until a snapshot verifies
    /// ```
    pub fn book_views(&self) -> BookViews {
        self.books.views()
    }

    /// Keeps the book state in step with a classified frame: an ack names a
    /// book subscription's sid (and applies its book frames that came before
    /// it), a control frame takes a number of its sequence, an answer to an
    /// `add_markets` / `delete_markets` request settles it, a data frame of
    /// a book subscription is applied (and, on a break the session cannot
    /// see, flagged so the session resyncs), and a book frame of a sid no ack
    /// has named yet is kept for that ack.
    fn observe<'a>(&mut self, text: &'a str, inbound: &mut Inbound<'a>) {
        match inbound {
            Inbound::Data {
                server_id: ServerId::Num(sid),
                seq,
                book_break,
                payload,
            } => {
                if self.books.has(*sid) {
                    *book_break = self.books.data(*sid, *seq, text, *payload);
                } else {
                    self.books.early(*sid, text);
                }
            }
            Inbound::Subscribed {
                req_id,
                server_id: ServerId::Num(sid),
                ..
            } => {
                self.markets.subscribed(*req_id, *sid);
                self.subscribed(*req_id, *sid);
            }
            Inbound::Sequenced {
                server_id: ServerId::Num(sid),
                seq,
                then,
            } => {
                self.books.sequenced(*sid, *seq);
                self.answered(text, then);
            }
            other => self.answered(text, other),
        }
    }

    /// An answer to a request settles a pending market update: an `ok`
    /// changes the subscription's markets (to the `ok`'s own list when it
    /// has one) for its books and for its next subscribe.
    fn answered(&mut self, text: &str, inbound: &Inbound<'_>) {
        let (req_id, accepted) = match inbound {
            Inbound::Response { req_id, error } => (*req_id, error.is_none()),
            Inbound::Rejected {
                req_id: Some(req_id),
                ..
            } => (*req_id, false),
            _ => return,
        };
        // Parsed only for the answer of a market update (rare).
        let venue = (accepted && self.markets.waits_for(req_id))
            .then(|| markets::venue_markets(text))
            .flatten();
        self.books.answered(req_id, accepted, venue.as_ref());
        self.markets.answered(req_id, accepted, venue);
    }

    /// The ack of `req_id` named `sid`: a book subscription's frames that
    /// came before it are applied now, in arrival order (the session delivers
    /// its own copies of them after the ack). A break among them, or frames
    /// lost to the bounds, is signalled with the sid's next data frame.
    fn subscribed(&mut self, req_id: Option<u64>, sid: u64) {
        let claimed = self.books.subscribed(req_id, sid);
        let mut owed = None;
        for text in &claimed.frames {
            let inbound = Self::classify_fast(text).unwrap_or_else(|| Self::classify_serde(text));
            if let Inbound::Data { seq, payload, .. } = inbound {
                let found = self.books.data(sid, seq, text, payload);
                owed = owed.or(found);
            }
        }
        // The first break among the frames names more than the lost ones.
        if let Some(kind) = owed.or(claimed.lost.then_some(books::EARLY_FRAMES_LOST)) {
            self.books.owe_break(sid, kind);
        }
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
    /// Kalshi names every message by its `type` (`ticker`, `orderbook_delta`,
    /// `error`, ...): that names a frame the session could not place.
    fn frame_kind<'a>(&self, text: &'a str) -> Option<&'a str> {
        #[derive(serde::Deserialize)]
        struct Kind<'a> {
            #[serde(default, borrow, rename = "type")]
            kind: Option<&'a str>,
        }
        serde_json::from_str::<Kind<'_>>(text).ok()?.kind
    }

    fn name(&self) -> &'static str {
        "kalshi"
    }

    fn book_views(&self) -> Option<BookViews> {
        Some(self.books.views())
    }

    fn reset(&mut self) {
        self.books.reset();
        self.markets.reset();
    }

    fn forget(&mut self, server_id: &ServerId) {
        if let ServerId::Num(sid) = server_id {
            self.books.forget(*sid);
            self.markets.forget(*sid);
        }
    }

    fn forget_topic(&mut self, topic: &Topic) {
        self.books.forget_topic(topic);
        self.markets.forget_topic(topic);
    }

    /// An `update_subscription` that adds or deletes markets keeps its sid,
    /// action and markets (a replay's books need them); nothing else of any
    /// request is recorded.
    fn recordable_params(&self, request: &Request) -> Option<Value> {
        let update = updates::market_update(request)?;
        let action = match update.action {
            updates::Action::Add => "add_markets",
            updates::Action::Delete => "delete_markets",
        };
        let markets: Vec<&str> = update.markets.iter().map(|m| &**m).collect();
        Some(serde_json::json!({"sid": update.sid, "action": action, "market_tickers": markets}))
    }

    /// A subscription whose markets an accepted `add_markets` /
    /// `delete_markets` changed is subscribed from then on with
    /// `market_tickers` naming its markets now (`kalshi/markets.rs`).
    fn take_changed_topics(&mut self) -> Vec<(ServerId, Topic)> {
        self.markets
            .take_changed()
            .into_iter()
            .map(|(sid, topic)| (ServerId::Num(sid), topic))
            .collect()
    }

    /// Kalshi stamps market-data messages with `msg.ts_ms` (Unix ms); the
    /// deprecated `msg.ts` (Unix seconds) is read when `ts_ms` is absent.
    fn venue_time(&self, text: &str, payload: &str) -> Option<std::time::SystemTime> {
        super::venue_time::finder::kalshi(text, payload)
    }

    /// The same search, run when a frame's venue time is asked.
    fn venue_time_finder(&self) -> Option<super::VenueTimeFinder> {
        Some(super::venue_time::finder::kalshi)
    }

    /// `orderbook_delta` only (the spec allows `get_snapshot` on no other
    /// channel), and only with markets named: the venue re-sends the snapshot
    /// of each market it is given. The markets are those the sid's books
    /// cover (the topic's and any added with `add_markets`), else the topic's.
    fn encode_resync(
        &mut self,
        topic: &Topic,
        server_id: &ServerId,
        req_id: u64,
    ) -> Option<String> {
        if topic.channel() != ORDERBOOK_CHANNEL {
            return None;
        }
        let ServerId::Num(sid) = server_id else {
            return None;
        };
        let by_topic = || match topic.symbol_name() {
            Some(symbol) => Some(Value::from(vec![symbol])),
            None => match topic.params().get("market_tickers") {
                Some(Value::Array(list)) if !list.is_empty() => Some(Value::Array(list.clone())),
                _ => match topic.params().get("market_ticker") {
                    Some(Value::String(one)) => Some(Value::from(vec![one.as_str()])),
                    _ => None,
                },
            },
        };
        let markets = match self.books.markets(*sid) {
            Some(covered) => Value::from(covered.collect::<Vec<_>>()),
            None => by_topic()?,
        };
        Some(format!(
            r#"{{"id":{req_id},"cmd":"update_subscription","params":{{"sids":[{sid}],"market_tickers":{markets},"action":"get_snapshot"}}}}"#
        ))
    }

    fn encode_subscribe(&mut self, topics: &[&Topic], req_id: u64) -> String {
        // `can_batch` is false, so there is one topic.
        let mut params = Map::new();
        if let Some(topic) = topics.first() {
            self.books.subscribing(topic, req_id);
            self.markets.subscribing(topic, req_id);
            params.clone_from(topic.params());
            params.insert("channels".to_owned(), Value::from(vec![topic.channel()]));
            if topic.channel() == ORDERBOOK_CHANNEL {
                // The books verify only from a snapshot. PROTOCOLS.md reads
                // `send_initial_snapshot: true` as the way to ask for one on
                // book channels; Kalshi's AsyncAPI spec describes the flag
                // for `ticker` and starts `orderbook_delta` with a snapshot
                // anyway. Asking costs nothing and holds under either
                // reading; a topic that sets the flag itself keeps its value.
                params
                    .entry("send_initial_snapshot")
                    .or_insert(Value::Bool(true));
            }
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

    /// Any command, as sent. An `update_subscription` that adds or deletes
    /// markets of a book subscription also changes which markets get books
    /// (`books.rs`).
    fn encode_request(&mut self, request: &Request, req_id: u64) -> Result<String, ProtocolError> {
        self.books.updating(request, req_id);
        self.markets.updating(request, req_id);
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
        let mut inbound = match Self::classify_fast(text) {
            Some(inbound) => inbound,
            None => Self::classify_serde(text),
        };
        self.observe(text, &mut inbound);
        inbound
    }
}

impl Kalshi {
    /// The fast path: a data frame read by the single-pass scanner, or `None`.
    pub(crate) fn classify_fast(text: &str) -> Option<Inbound<'_>> {
        scan::kalshi::data(text).map(|data| Inbound::Data {
            server_id: ServerId::Num(data.sid),
            seq: data.seq,
            book_break: None,
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
                let error = VenueError::kalshi(code, error.msg.0.unwrap_or_default());
                let inbound = match (frame.sid.0, code) {
                    (Some(sid), Some(code)) if TERMINAL_CODES.contains(&code) => {
                        return Inbound::Ended {
                            server_id: ServerId::Num(sid),
                            error,
                        }
                    }
                    _ => Inbound::Rejected {
                        req_id,
                        symbol: None,
                        error,
                    },
                };
                sequenced(frame.sid.0, frame.seq.0, inbound)
            }
            Some("unsubscribed") => Inbound::Unsubscribed { req_id },
            Some("ok") => {
                let inbound = match req_id {
                    Some(req_id) => Inbound::Response {
                        req_id,
                        error: None,
                    },
                    None => Inbound::Control,
                };
                sequenced(frame.sid.0, frame.seq.0, inbound)
            }
            _ => match frame.sid.0 {
                Some(sid) => Inbound::Data {
                    server_id: ServerId::Num(sid),
                    seq: frame.seq.0,
                    book_break: None,
                    payload: frame.msg.map(RawValue::get),
                },
                None => Inbound::Unsolicited,
            },
        }
    }
}

/// A control frame that names a `sid` and a `seq` took that number of the
/// subscription's sequence: the spec gives `ok`, `unsubscribed` and
/// sid-scoped `error` frames the same `sequenceNumber` as data, and an error
/// carries one only "on sequenced channels".
fn sequenced(sid: Option<u64>, seq: Option<u64>, inbound: Inbound<'_>) -> Inbound<'_> {
    match (sid, seq) {
        (Some(sid), Some(seq)) => Inbound::Sequenced {
            server_id: ServerId::Num(sid),
            seq,
            then: Box::new(inbound),
        },
        _ => inbound,
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

/// Kalshi: codes with an unambiguous meaning first (the spec's table, checked
/// 2026-12-05; codes 6, 16 and 17 are retired and never sent), then the
/// message's words for codes the table does not have yet.
fn kalshi_kind(code: Option<i64>, message: &str) -> VenueErrorKind {
    match code {
        // Too many requests (the subscription's command rate limit).
        Some(27) => return VenueErrorKind::RateLimited,
        // Command timeout; channel error and buffer overflow (terminal for
        // the subscription, which is subscribed again).
        Some(10 | 18 | 25) => return VenueErrorKind::Transient,
        // Malformed or refused commands: asking again changes nothing.
        Some(1..=5 | 7..=9 | 11..=15 | 19..=24 | 26 | 28) => return VenueErrorKind::Permanent,
        _ => {}
    }
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
    } else if has("auth")
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
        // A book topic asks for its snapshot unless it says otherwise.
        let topic = Topic::new("orderbook_delta").symbol("B");
        assert_eq!(
            parse(&kalshi.encode_subscribe(&[&topic], 10)),
            json!({"id": 10, "cmd": "subscribe", "params": {
                "channels": ["orderbook_delta"], "market_tickers": ["B"], "send_initial_snapshot": true
            }})
        );
        let topic = topic.param("send_initial_snapshot", false);
        assert_eq!(
            parse(&kalshi.encode_subscribe(&[&topic], 11))["params"]["send_initial_snapshot"],
            json!(false)
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
    fn only_a_market_updates_sid_action_and_markets_are_recordable() {
        let kalshi = Kalshi::new();
        let request = Request::new(
            "update_subscription",
            Some(
                json!({"sids": [7], "action": "add_markets", "market_tickers": ["B", "C"],
                        "api_token": "hunter2"}),
            ),
        );
        assert_eq!(
            kalshi.recordable_params(&request),
            Some(json!({"sid": 7, "action": "add_markets", "market_tickers": ["B", "C"]}))
        );
        // What is recorded reads back as the same update.
        let replayed = Request::new("update_subscription", kalshi.recordable_params(&request));
        assert_eq!(
            updates::market_update(&replayed),
            updates::market_update(&request)
        );
        for other in [
            Request::new("login", Some(json!({"token": "hunter2"}))),
            Request::new(
                "update_subscription",
                Some(json!({"sids": [7], "action": "get_snapshot", "market_tickers": ["B"]})),
            ),
            Request::new("list_subscriptions", None),
        ] {
            assert_eq!(kalshi.recordable_params(&other), None, "{other:?}");
        }
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
                r#"{"id": 1, "type": "error", "msg": {"code": 8, "msg": "Unknown channel name"}}"#
            ),
            Inbound::Rejected {
                req_id: Some(1),
                symbol: None,
                error: VenueError::kalshi(Some(8), "Unknown channel name"),
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
            classify(
                r#"{"type": "ticker", "sid": 7, "seq": 3, "msg": {"price_dollars": "0.4800"}}"#
            ),
            Inbound::Data {
                server_id: ServerId::Num(7),
                seq: Some(3),
                book_break: None,
                payload: Some(r#"{"price_dollars": "0.4800"}"#),
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
                book_break: None,
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
                book_break: None,
                payload: None,
            }
        );
        assert_eq!(
            classify(r#"{"sid":7,"seq":1}"#),
            Inbound::Data {
                server_id: ServerId::Num(7),
                seq: Some(1),
                book_break: None,
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
                book_break: None,
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
    fn sid_scoped_terminal_errors_end_that_subscription() {
        for code in [25, 10] {
            let frame =
                format!(r#"{{"type":"error","sid":4,"seq":9,"msg":{{"code":{code},"msg":"x"}}}}"#);
            match classify(&frame) {
                Inbound::Ended { server_id, error } => {
                    assert_eq!(server_id, ServerId::Num(4));
                    assert_eq!(error.code, Some(code));
                    assert_eq!(error.kind, VenueErrorKind::Transient);
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        // Without a sid, or with a code that is not terminal, it answers a
        // command: a rejection (sequenced when it names sid and seq).
        assert!(matches!(
            classify(r#"{"id":3,"type":"error","msg":{"code":25,"msg":"x"}}"#),
            Inbound::Rejected {
                req_id: Some(3),
                ..
            }
        ));
        match classify(r#"{"id":3,"type":"error","sid":4,"seq":9,"msg":{"code":13,"msg":"x"}}"#) {
            Inbound::Sequenced {
                server_id,
                seq,
                then,
            } => {
                assert_eq!((server_id, seq), (ServerId::Num(4), 9));
                assert!(matches!(
                    *then,
                    Inbound::Rejected {
                        req_id: Some(3),
                        ..
                    }
                ));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ok_frames_that_name_a_sid_and_seq_are_sequenced() {
        assert_eq!(
            classify(
                r#"{"id":123,"sid":456,"seq":222,"type":"ok","msg":{"market_tickers":["M"]}}"#
            ),
            Inbound::Sequenced {
                server_id: ServerId::Num(456),
                seq: 222,
                then: Box::new(Inbound::Response {
                    req_id: 123,
                    error: None
                }),
            }
        );
        // A sid without a seq took no number.
        assert_eq!(
            classify(r#"{"id":1,"sid":456,"type":"ok"}"#),
            Inbound::Response {
                req_id: 1,
                error: None
            }
        );
        assert!(matches!(
            classify(r#"{"sid":456,"seq":3,"type":"ok"}"#),
            Inbound::Sequenced { then, .. } if *then == Inbound::Control
        ));
    }

    #[test]
    fn venue_time_is_ts_ms_and_the_deprecated_ts_only_without_it() {
        let kalshi = Kalshi::new();
        let at = |ms: u64| std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_millis(ms));
        assert_eq!(
            kalshi.venue_time("", r#"{"ts":1669149841,"ts_ms":1669149841123}"#),
            at(1_669_149_841_123)
        );
        // The deprecated `ts` (seconds) only when `ts_ms` is missing.
        assert_eq!(
            kalshi.venue_time("", r#"{"ts":1669149841}"#),
            at(1_669_149_841_000)
        );
        assert_eq!(kalshi.venue_time("", r#"{"market_ticker":"A"}"#), None);
        assert_eq!(kalshi.venue_time("", r#"{"ts_ms":-1}"#), None);
    }

    #[test]
    fn book_gaps_resync_with_get_snapshot_and_other_channels_do_not() {
        let mut kalshi = Kalshi::new();
        let sid = ServerId::Num(7);
        let book = Topic::new("orderbook_delta").symbol("A");
        assert_eq!(
            kalshi.encode_resync(&book, &sid, 9).map(|f| parse(&f)),
            Some(json!({"id": 9, "cmd": "update_subscription",
                        "params": {"sids": [7], "market_tickers": ["A"], "action": "get_snapshot"}}))
        );
        let listed = Topic::new("orderbook_delta").param("market_tickers", json!(["A", "B"]));
        assert_eq!(
            kalshi
                .encode_resync(&listed, &sid, 9)
                .map(|f| parse(&f)["params"]["market_tickers"].clone()),
            Some(json!(["A", "B"]))
        );
        let single = Topic::new("orderbook_delta").param("market_ticker", "C");
        assert_eq!(
            kalshi
                .encode_resync(&single, &sid, 9)
                .map(|f| parse(&f)["params"]["market_tickers"].clone()),
            Some(json!(["C"]))
        );
        for topic in [
            Topic::new("orderbook_delta"),
            Topic::new("ticker").symbol("A"),
            Topic::new("trade").symbol("A"),
        ] {
            assert_eq!(kalshi.encode_resync(&topic, &sid, 9), None, "{topic}");
        }
        assert_eq!(
            kalshi.encode_resync(&book, &ServerId::Key("k".into()), 9),
            None
        );
    }

    #[test]
    fn kalshi_codes_and_messages_map_the_same_way() {
        // The spec's table: codes decide, whatever the message says.
        for (code, kind) in [
            (27, VenueErrorKind::RateLimited),
            (18, VenueErrorKind::Transient),
            (25, VenueErrorKind::Transient),
            (10, VenueErrorKind::Transient),
            (7, VenueErrorKind::Permanent),
            (26, VenueErrorKind::Permanent),
            (28, VenueErrorKind::Permanent),
        ] {
            assert_eq!(VenueError::kalshi(Some(code), "").kind, kind, "{code}");
        }
        // Retired codes (6, 16, 17) and unknown ones fall to the words.
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

    #[test]
    fn an_unplaced_frame_is_named_by_its_type() {
        let kalshi = Kalshi::new();
        let kind = |text| crate::protocol::Protocol::frame_kind(&kalshi, text);
        assert_eq!(
            kind(r#"{"type":"market_lifecycle_v3","sid":9,"msg":{}}"#),
            Some("market_lifecycle_v3")
        );
        assert_eq!(kind(r#"{"sid":9,"msg":{}}"#), None);
        assert_eq!(kind("not json"), None);
    }
}
