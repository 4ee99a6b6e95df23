//! The WEEX V3 WebSocket protocol (Binance-like `method`/`params` requests,
//! public market data and signed private connections).
//!
//! Rules, with the facts and their sources in `src/protocol/VENUES.md` (the
//! V3 shape is third-party evidence: several independent public V3 clients
//! agree; the live WEEX page could not be checked):
//! - Subscribe is `{"method":"SUBSCRIBE","params":["BTCUSDT@ticker"],"id":N}`
//!   and unsubscribe `{"method":"UNSUBSCRIBE",..}`, one topic per request, `N`
//!   the session's request id. A topic's stream name is
//!   `<SYMBOL>@<stream>` ([`stream_name`]; the symbol upper-cased) or a bare
//!   channel name for private channels (`account`, `positions`, `orders`,
//!   `fill`); its [`ServerId`] is [`ServerId::Key`] of that name.
//! - The reply to a request is `{"result":..,"id":N}`: `"result": false`
//!   (with an optional `msg` and `code`) refuses it ([`Inbound::Rejected`]),
//!   anything else (`null`, `true`) accepts it. The reply names no topic, so
//!   the adapter remembers which topic each pending subscribe id was for and
//!   acks it by id alone (unambiguous with one topic per request). A reply
//!   whose id is no pending subscribe is [`Inbound::Control`] (an unsubscribe
//!   reply, or a late one), or [`Inbound::Rejected`] by that id if refused.
//! - Pushes are `{"e":<type>,"E":<ms>,"s":<SYMBOL>,..,"d":..}`, routed by
//!   `e` and `s`: `ticker` to `S@ticker`, `depth` and `depthSnapshot` to
//!   `S@depth<l>` (without `l`, to the one depth stream of that symbol),
//!   `trade` to `S@trade`, `kline` to the one kline stream of that symbol,
//!   private types by `e` alone, any other type to `S@<e>`. The payload span
//!   ([`Frame::payload`](crate::Frame::payload)) is `d` when it is an array or
//!   object (the rows), else the whole frame (depth's `d` is only
//!   `"SNAPSHOT"`/`"CHANGED"`; its levels are `b`/`a`). Depth `U`/`u`
//!   continuity is not checked here.
//! - The server sends `{"event":"ping","time":T}` and drops clients that do
//!   not answer; the adapter answers `{"method":"PONG","id":1}`
//!   ([`Inbound::Reply`]), the form V3 clients send (the V2 docs had
//!   `{"event":"pong","time":T}`).
//! - Errors map onto [`VenueErrorKind`] by code: 40001-40005 (authentication)
//!   are permanent, 40029 is rate limited with a retry hint, 50000-50009 are
//!   transient, anything else (a `result: false` without a code) unknown.
//! - Limits: 100 channels and 240 subscribe operations per hour per
//!   connection ([`Protocol::limits`]).
//! - Private connections authenticate with signed handshake headers over
//!   the URL's path (`/v3/ws/private`); see [`sign_headers`].
//! - Memory: pending subscribe ids are capped ([`MAX_PENDING`], the oldest
//!   dropped first); stream names live only while subscribed.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use super::json;
use super::{Inbound, Protocol, ServerId, Topic, VenueLimits};
use crate::error::{ProtocolError, VenueError};
use crate::venue_error::VenueErrorKind;

mod sign;
mod wire;

pub use sign::{sign_headers, signature, WeexCredentials};
pub use wire::{stream_name, DEFAULT_DEPTH_LEVEL, DEFAULT_KLINE_INTERVAL, DEFAULT_KLINE_PRICE};

use wire::{unsigned, Frame, Streams, PRIVATE};

/// Channels per connection, per the WEEX docs.
pub const MAX_CHANNELS: usize = 100;
/// Subscribe operations per hour per connection, per the WEEX docs.
pub const MAX_OPS_PER_HOUR: u32 = 240;
/// The wait suggested after a 40029 (rate limited): one operation slot of the
/// documented 240 per hour frees every 15 s on average.
pub const RATE_LIMIT_RETRY: Duration = Duration::from_secs(3600 / MAX_OPS_PER_HOUR as u64);
/// Subscribe requests remembered while unanswered; beyond it the oldest is
/// dropped (its ack then goes unmatched, and the session times it out).
pub const MAX_PENDING: usize = MAX_CHANNELS * 4;
/// The answer to a server heartbeat.
pub const PONG: &str = r#"{"method":"PONG","id":1}"#;

/// The WEEX V3 WebSocket protocol.
///
/// ```
/// use resilient_ws::{Inbound, Protocol, ServerId, Topic, Weex};
/// let mut weex = Weex::new();
/// let frame = weex.encode_subscribe(&[&Topic::new("ticker").symbol("BTCUSDT")], 1);
/// assert_eq!(frame, r#"{"method":"SUBSCRIBE","params":["BTCUSDT@ticker"],"id":1}"#);
/// match weex.classify(r#"{"result":null,"id":1}"#) {
///     Inbound::Subscribed { req_id, server_id, .. } => {
///         assert_eq!(req_id, Some(1));
///         assert_eq!(server_id, ServerId::Key("BTCUSDT@ticker".into()));
///     }
///     other => panic!("{other:?}"),
/// }
/// match weex.classify(r#"{"event":"ping","time":"1693208170000"}"#) {
///     Inbound::Reply { text } => assert_eq!(text, r#"{"method":"PONG","id":1}"#),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Default)]
pub struct Weex {
    streams: Streams,
    /// The topic each unanswered subscribe request was for, by request id
    /// (added when encoded, removed by its reply or `reset`; at most
    /// [`MAX_PENDING`]).
    pending: BTreeMap<u64, Pending>,
}

/// What an unanswered subscribe request was for.
#[derive(Debug)]
struct Pending {
    server_id: ServerId,
    channel: String,
    symbol: Option<String>,
}

impl Weex {
    /// The WEEX protocol.
    pub fn new() -> Self {
        Self::default()
    }

    /// The server id WEEX data for `topic` is routed by: the key
    /// [`stream_name`] gives.
    pub fn server_id(topic: &Topic) -> ServerId {
        ServerId::Key(stream_name(topic).into())
    }

    fn reply<'a>(&mut self, frame: &Frame<'a>, result: &str) -> Inbound<'a> {
        let id = unsigned(frame.id);
        let pending = id.and_then(|id| self.pending.remove(&id));
        if result == "false" {
            let error = venue_error(
                super::op_args::code(frame.code),
                frame.msg.as_deref().unwrap_or("request refused"),
            );
            return Inbound::Rejected {
                req_id: id,
                symbol: pending.and_then(|p| p.symbol).map(Cow::Owned),
                error,
            };
        }
        match pending {
            Some(p) => Inbound::Subscribed {
                req_id: id,
                server_id: p.server_id,
                channel: Some(Cow::Owned(p.channel)),
                symbol: p.symbol.map(Cow::Owned),
            },
            None => Inbound::Control,
        }
    }

    fn push<'a>(&mut self, frame: &Frame<'a>, kind: &str) -> Inbound<'a> {
        let symbol = frame.s.as_deref();
        let server_id = match kind {
            _ if PRIVATE.contains(&kind) => self.streams.route(None, kind),
            "depth" | "depthSnapshot" => match unsigned(frame.l) {
                Some(level) => self.streams.route_level(symbol, "depth", Some(level)),
                None => self.streams.the_one(symbol, "depth"),
            },
            "kline" => self.streams.the_one(symbol, "kline"),
            other => self.streams.route(symbol, other),
        };
        let payload = frame
            .d
            .map(|d| d.get())
            .filter(|d| d.starts_with('[') || d.starts_with('{'));
        Inbound::Data {
            server_id,
            seq: None,
            checksum: None,
            payload,
        }
    }
}

/// Classifies a WEEX error code and message.
///
/// ```
/// use resilient_ws::protocol::weex::venue_error;
/// use resilient_ws::VenueErrorKind;
/// assert_eq!(venue_error(Some(40003), "sign error").kind, VenueErrorKind::Permanent);
/// assert!(venue_error(Some(40029), "too many").retry_after().is_some());
/// ```
pub fn venue_error(code: Option<i64>, message: &str) -> VenueError {
    let error = VenueError::new(code, message);
    match code {
        Some(40001..=40005) => error.with_kind(VenueErrorKind::Permanent),
        Some(40029) => error
            .with_kind(VenueErrorKind::RateLimited)
            .with_retry_after(RATE_LIMIT_RETRY),
        Some(50000..=50009) => error.with_kind(VenueErrorKind::Transient),
        _ => error,
    }
}

impl Protocol for Weex {
    fn name(&self) -> &'static str {
        "weex"
    }

    /// The venue time: the frame's top-level `E` (Unix ms).
    fn venue_time(&self, text: &str, _payload: &str) -> Option<std::time::SystemTime> {
        super::venue_time::weex(text)
    }

    fn encode_subscribe(&mut self, topics: &[&Topic], req_id: u64) -> String {
        let streams: Vec<String> = topics.iter().map(|t| stream_name(t)).collect();
        for stream in &streams {
            self.streams.remember(stream);
        }
        // One topic per request (no batching): the reply names the first.
        if let (Some(topic), Some(stream)) = (topics.first(), streams.first()) {
            if self.pending.len() >= MAX_PENDING && !self.pending.contains_key(&req_id) {
                self.pending.pop_first();
            }
            self.pending.insert(
                req_id,
                Pending {
                    server_id: self.streams.remember(stream),
                    channel: topic.channel().to_owned(),
                    symbol: topic.symbol_name().map(str::to_owned),
                },
            );
        }
        encode("SUBSCRIBE", &streams, req_id)
    }

    fn encode_unsubscribe(
        &mut self,
        topic: &Topic,
        _server_id: &ServerId,
        req_id: u64,
    ) -> Option<String> {
        Some(encode("UNSUBSCRIBE", &[stream_name(topic)], req_id))
    }

    fn limits(&self) -> VenueLimits {
        VenueLimits::new(
            Some(MAX_CHANNELS),
            Some((MAX_OPS_PER_HOUR, Duration::from_secs(3600))),
        )
    }

    fn classify<'a>(&mut self, text: &'a str) -> Inbound<'a> {
        if !json::is_object(text) {
            return Inbound::Invalid(ProtocolError::Unparseable(
                "weex: frame is not a JSON object".to_owned(),
            ));
        }
        let frame: Frame<'a> = match serde_json::from_str(text) {
            Ok(frame) => frame,
            Err(error) => return Inbound::Invalid(json::unparseable("weex", &error)),
        };
        if let Some(result) = frame.result {
            return self.reply(&frame, result.get());
        }
        if let Some(kind) = frame.e.as_deref() {
            return self.push(&frame, kind);
        }
        match frame.event.as_deref() {
            Some("ping") => Inbound::Reply {
                text: Cow::Borrowed(PONG),
            },
            Some("pong") => Inbound::Pong,
            Some(_) => Inbound::Control,
            None => Inbound::Unsolicited,
        }
    }

    fn reset(&mut self) {
        self.pending.clear();
    }

    fn forget(&mut self, server_id: &ServerId) {
        self.streams.forget(server_id);
    }

    fn forget_topic(&mut self, topic: &Topic) {
        // Its pending entry stays (bounded): a late ack still names the
        // stream, so the session can unsubscribe an abandoned subscription.
        self.streams.forget_name(&stream_name(topic));
    }
}

/// `{"method":"<method>","params":[..streams..],"id":<id>}`.
fn encode(method: &str, streams: &[String], id: u64) -> String {
    let params = serde_json::Value::from(streams.to_vec());
    format!(r#"{{"method":"{method}","params":{params},"id":{id}}}"#)
}

#[cfg(test)]
mod tests;
