//! The WEEX V3 WebSocket protocol (Binance-like `method`/`params` requests,
//! public market data and signed private connections).
//!
//! Rules, with the facts, their sources and a coverage table of every
//! documented message type and error code in `src/protocol/VENUES.md` (the
//! V3 shape is third-party evidence: WEEX's V3 overview page and
//! independent V3 clients, one with recorded wire samples, agree):
//! - Subscribe is `{"method":"SUBSCRIBE","params":["BTCUSDT@ticker"],"id":N}`
//!   and unsubscribe `{"method":"UNSUBSCRIBE",..}`, one topic per request, `N`
//!   the session's request id. A topic's stream name is
//!   `<SYMBOL>@<stream>` ([`stream_name`]; the symbol upper-cased) or a bare
//!   channel name for private channels (`account`, `positions`, `orders`,
//!   `fill`); its [`ServerId`] is [`ServerId::Key`] of that name.
//! - The reply to a request is `{"result":..,"id":N}`: `"result": false`
//!   (with a `msg`, and no code in V3) refuses it ([`Inbound::Rejected`]),
//!   anything else (`null`, `true`) accepts it. The reply names no topic, so
//!   the adapter remembers which topic each pending subscribe id was for and
//!   acks it by id alone (unambiguous with one topic per request). A reply
//!   whose id is no pending subscribe is [`Inbound::Control`] (an unsubscribe
//!   reply, a late one, or the answer to a heartbeat reply), or
//!   [`Inbound::Rejected`] by that id if refused.
//! - Pushes are `{"e":<type>,"E":<ms>,"s":<SYMBOL>,..,"d":..}`, routed by
//!   `e` and `s`: `ticker` to `S@ticker`, `depth` and `depthSnapshot` to
//!   `S@depth<l>` (without `l`, to the one depth stream of that symbol),
//!   `trade` and `tradeSnapshot` to `S@trade`, `kline` and `klineSnapshot`
//!   to `S@kline_<i>_<p>` (interval `i` from the first row of `d`, price type
//!   from the top-level `p`; without them, to the one kline stream of that
//!   symbol), private types by `e` alone, any other type (`bookTicker`) to
//!   `S@<e>`. The payload span ([`Frame::payload`](crate::Frame::payload))
//!   is `d` when it is an array or object (the rows), else the whole frame
//!   (depth's `d` is only `"SNAPSHOT"`/`"CHANGED"`; its levels are `b`/`a`).
//! - Depth continuity: each `CHANGED` push's `U` must equal the previous
//!   push's `u`; a break is reported in-band as a
//!   [`BookBreak`] (`Discontinuity`) and the session resyncs
//!   that one subscription (see `chain.rs` for the rules).
//! - Depth book: while a stream's chain holds, its snapshot and `CHANGED`
//!   levels (`b`/`a`, `[price, qty]`, quantity 0 deletes) are kept as exact
//!   decimals and published to [`Weex::book_views`] (also
//!   [`Client::book_views`](crate::Client::book_views)) after every push,
//!   with the push's `E` as the venue time; a break, a push whose levels
//!   cannot be applied, a lost connection or the end of the subscription
//!   clears the view until the next snapshot (see `book.rs`).
//! - Heartbeats: public connections get `{"event":"ping","time":T}`, private
//!   ones `{"type":"ping","time":T}`; both are answered
//!   `{"method":"PONG","id":N}` ([`Inbound::Reply`]) with `N` from the
//!   heartbeat id space ([`PONG_ID_BASE`] and up, cycling below 2^53), which
//!   the session's request ids (counting up from 1) never reach: the venue's
//!   answer to a PONG can never acknowledge a subscribe. That answer
//!   (`{"result":true,"id":N}` or `{"id":N,"method":"PONG"}`) is
//!   [`Inbound::Control`].
//! - Every socket is greeted with `{"cid":..,"event":"connected",..}`:
//!   [`Inbound::Control`].
//! - Errors map onto [`VenueErrorKind`] by V3's negative codes (see
//!   [`venue_error`]); a refusal without a code whose `msg` starts with
//!   `INVALID_ARGUMENT` is permanent. WEEX closes a socket with 1007 after
//!   six refused subscribes; [`permanent_close`] is the close-code rule that
//!   reconnects then (the refused topics have ended, the rest is replayed).
//! - Limits: 100 channels and 240 subscribe operations per hour per
//!   connection ([`Protocol::limits`]).
//! - Private connections authenticate with signed handshake headers over
//!   the URL's path (`/v3/ws/private`); see [`sign_headers`]. Public ones
//!   need a `User-Agent`, which every connection sends by default
//!   ([`DEFAULT_USER_AGENT`](crate::DEFAULT_USER_AGENT)).
//! - Memory: pending subscribe ids are capped ([`MAX_PENDING`]); when full,
//!   the oldest withdrawn one (its subscription ended before the ack) is
//!   dropped first, and a live one only when none is withdrawn. Stream names
//!   and depth chains live only while subscribed.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use super::json;
use super::{BookBreak, Inbound, Protocol, ServerId, Topic, VenueLimits};
use crate::book::BookViews;
use crate::error::{ProtocolError, VenueError};
use crate::venue_error::VenueErrorKind;

pub(crate) mod book;
mod chain;
mod sign;
mod wire;

pub use book::MAX_LEVELS_PER_SIDE;
pub use sign::{sign_headers, signature, WeexCredentials};
pub use wire::{stream_name, DEFAULT_DEPTH_LEVEL, DEFAULT_KLINE_INTERVAL, DEFAULT_KLINE_PRICE};

use book::DepthBooks;
use chain::{DepthChains, DepthKind};
use wire::{kline_interval, unsigned, Frame, Streams, PRIVATE};

/// Channels per connection, per the WEEX docs.
pub const MAX_CHANNELS: usize = 100;
/// Subscribe operations per hour per connection, per the WEEX docs.
pub const MAX_OPS_PER_HOUR: u32 = 240;
/// Subscribe requests remembered while unanswered; beyond it a withdrawn one
/// (else the oldest) is dropped (its ack then goes unmatched, and the
/// session times it out).
pub const MAX_PENDING: usize = MAX_CHANNELS * 4;
/// The first id of a heartbeat answer (2^52). Answers count up from here and
/// wrap back to it below 2^53, so every id is exact in any JSON parser. The
/// session's request ids count up from 1 per client: reaching 2^52 takes
/// over a century at a million requests per second, so a venue reply to a
/// heartbeat answer can never be taken for a subscribe's ack.
pub const PONG_ID_BASE: u64 = 1 << 52;
/// How many refused subscribes make WEEX close the socket (with 1007).
pub const REFUSALS_BEFORE_CLOSE: u32 = 6;

/// The close-code rule for WEEX ([`ConfigBuilder::permanent_close_codes`](crate::ConfigBuilder::permanent_close_codes)):
/// [`default_permanent_close`](crate::default_permanent_close) except 1007,
/// which WEEX sends after [`REFUSALS_BEFORE_CLOSE`] refused subscribes. The
/// refused subscriptions have ended by then, so reconnecting replays only
/// the accepted ones.
///
/// ```
/// use resilient_ws::protocol::weex::permanent_close;
/// assert!(!permanent_close(1007));
/// assert!(permanent_close(1008));
/// ```
pub fn permanent_close(code: u16) -> bool {
    code != 1007 && crate::close_code::default_permanent_close(code)
}

/// The WEEX V3 WebSocket protocol.
///
/// ```
/// use resilient_ws::{Inbound, Protocol, ServerId, Topic, Weex};
/// use resilient_ws::protocol::weex::PONG_ID_BASE;
/// let mut weex = Weex::new();
/// let frame = weex.encode_subscribe(&[&Topic::new("ticker").symbol("BTCUSDT")], 1);
/// assert_eq!(frame, r#"{"method":"SUBSCRIBE","params":["BTCUSDT@ticker"],"id":1}"#);
/// match weex.classify(r#"{"result":true,"id":1}"#) {
///     Inbound::Subscribed { req_id, server_id, .. } => {
///         assert_eq!(req_id, Some(1));
///         assert_eq!(server_id, ServerId::Key("BTCUSDT@ticker".into()));
///     }
///     other => panic!("{other:?}"),
/// }
/// match weex.classify(r#"{"event":"ping","time":"1693208170000"}"#) {
///     Inbound::Reply { text } => {
///         assert_eq!(text, format!(r#"{{"method":"PONG","id":{PONG_ID_BASE}}}"#))
///     }
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
    /// The depth update-id chain of each subscribed depth stream.
    chains: DepthChains,
    /// The depth book of each subscribed depth stream whose chain holds,
    /// and the views they publish to.
    books: DepthBooks,
    /// Heartbeat answers sent (the next one's id is [`PONG_ID_BASE`] + this,
    /// modulo [`PONG_ID_BASE`]).
    pongs: u64,
}

/// What an unanswered subscribe request was for.
#[derive(Debug)]
struct Pending {
    server_id: ServerId,
    channel: String,
    symbol: Option<String>,
    /// The subscription ended before the ack (timed out, dropped): its slot
    /// is the first to go when the map is full.
    withdrawn: bool,
}

impl Weex {
    /// The WEEX protocol.
    pub fn new() -> Self {
        Self::default()
    }

    /// The views of the depth books, for consumers: take it before handing
    /// the adapter to the client (or later from
    /// [`Client::book_views`](crate::Client::book_views)), then
    /// [`watch`](BookViews::watch) a symbol as WEEX spells it (`BTCUSDT`).
    ///
    /// ```
    /// use resilient_ws::Weex;
    /// let weex = Weex::new();
    /// let view = weex.book_views().watch("BTCUSDT", 10);
    /// assert!(view.latest().is_none()); // until a snapshot arrives
    /// ```
    pub fn book_views(&self) -> BookViews {
        self.books.views()
    }

    /// The server id WEEX data for `topic` is routed by: the key
    /// [`stream_name`] gives.
    pub fn server_id(topic: &Topic) -> ServerId {
        ServerId::Key(stream_name(topic).into())
    }

    /// The answer to a heartbeat, with the next id of the heartbeat id space.
    fn pong(&mut self) -> Inbound<'static> {
        let id = PONG_ID_BASE + self.pongs % PONG_ID_BASE;
        self.pongs = self.pongs.wrapping_add(1);
        Inbound::Reply {
            text: Cow::Owned(format!(r#"{{"method":"PONG","id":{id}}}"#)),
        }
    }

    fn reply<'a>(&mut self, frame: &Frame<'a>, result: &str) -> Inbound<'a> {
        let id = unsigned(frame.id);
        let pending = id.and_then(|id| self.pending.remove(&id));
        if pending.is_none() && id.is_some_and(|id| id >= PONG_ID_BASE) {
            // The venue's answer to a heartbeat answer: nothing waits for it.
            if result == "false" {
                tracing::debug!(msg = ?frame.msg.as_deref(), "weex: heartbeat answer refused");
            }
            return Inbound::Control;
        }
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

    /// Keeps the depth book of a subscribed stream after the chain's
    /// verdict: applied while the chain holds, dropped otherwise. A push the
    /// book cannot apply is a break (reported like one).
    fn on_depth(
        &mut self,
        server_id: &ServerId,
        frame: &Frame<'_>,
        text: &str,
        kind: DepthKind,
        verdict: Option<BookBreak>,
    ) -> Option<BookBreak> {
        if verdict.is_some() || !self.chains.holds(server_id) {
            self.books.drop_book(server_id);
            return verdict;
        }
        let push = book::Push {
            symbol: frame.s.as_deref(),
            snapshot: kind == DepthKind::Snapshot,
            asks: frame.a,
            bids: frame.b,
            venue_time: super::venue_time::weex(text),
        };
        match self.books.apply(server_id, &push) {
            Ok(()) => None,
            Err(error) => {
                self.chains.forget(server_id);
                let reason = error.reason();
                Some(BookBreak::Unusable { reason })
            }
        }
    }

    fn push<'a>(&mut self, frame: &Frame<'a>, kind: &str, text: &str) -> Inbound<'a> {
        let symbol = frame.s.as_deref();
        let mut book_break = None;
        let server_id = match kind {
            _ if PRIVATE.contains(&kind) => self.streams.route(None, kind),
            "depth" | "depthSnapshot" => {
                let server_id = match unsigned(frame.l) {
                    Some(level) => self.streams.route_level(symbol, "depth", Some(level)),
                    None => self.streams.the_one(symbol, "depth"),
                };
                if self.streams.contains(&server_id) {
                    let marker = frame.d.map(|d| d.get());
                    let depth_kind = match (kind, marker) {
                        ("depthSnapshot", _) | (_, Some(r#""SNAPSHOT""#)) => DepthKind::Snapshot,
                        (_, Some(r#""CHANGED""#)) => DepthKind::Changed,
                        _ => DepthKind::Unknown,
                    };
                    book_break = self.chains.on_push(
                        &server_id,
                        depth_kind,
                        unsigned(frame.first_id),
                        unsigned(frame.last_id),
                    );
                    book_break = self.on_depth(&server_id, frame, text, depth_kind, book_break);
                }
                server_id
            }
            "trade" | "tradeSnapshot" => self.streams.route(symbol, "trade"),
            "kline" | "klineSnapshot" => match (kline_interval(frame.d), frame.p.as_deref()) {
                (Some(interval), Some(price)) => self.streams.route_kline(symbol, &interval, price),
                _ => self.streams.the_one(symbol, "kline"),
            },
            other => self.streams.route(symbol, other),
        };
        let payload = frame
            .d
            .map(|d| d.get())
            .filter(|d| d.starts_with('[') || d.starts_with('{'));
        Inbound::Data {
            server_id,
            seq: None,
            book_break,
            payload,
        }
    }

    /// Makes room for one more pending request: the oldest withdrawn one
    /// goes first, a live one only when none is withdrawn.
    fn make_room(&mut self) {
        let withdrawn = self
            .pending
            .iter()
            .find_map(|(id, p)| p.withdrawn.then_some(*id));
        match withdrawn {
            Some(id) => {
                self.pending.remove(&id);
            }
            None => {
                self.pending.pop_first();
            }
        }
    }
}

/// Classifies a WEEX V3 error code and message. V3 codes are negative,
/// Binance-style; no code (V3 refusals carry none) is judged by the message.
/// No V3 code documents a wait, so none sets
/// [`retry_after`](VenueError::retry_after).
///
/// | Code | Meaning | Kind |
/// |---|---|---|
/// | -1054 | system error | `Transient` |
/// | -1046 | request timestamp expired (every attempt signs a fresh one) | `Transient` |
/// | -1040..=-1044, -1047, -1049 | authentication (key, signature, passphrase, timestamp) | `Permanent` |
/// | -1050..=-1058 except -1054 | permissions (unauthorised, IP, symbol not allowed) | `Permanent` |
/// | -1121 | invalid symbol | `Permanent` |
/// | none, `msg` starting `INVALID_ARGUMENT` | the request is malformed or names an unknown symbol | `Permanent` |
/// | anything else | | `Unknown` |
///
/// ```
/// use resilient_ws::protocol::weex::venue_error;
/// use resilient_ws::VenueErrorKind;
/// assert_eq!(venue_error(Some(-1121), "Invalid symbol").kind, VenueErrorKind::Permanent);
/// assert_eq!(venue_error(Some(-1054), "System error").kind, VenueErrorKind::Transient);
/// assert_eq!(
///     venue_error(None, "INVALID_ARGUMENT: invalid symbol : X").kind,
///     VenueErrorKind::Permanent
/// );
/// ```
pub fn venue_error(code: Option<i64>, message: &str) -> VenueError {
    let error = VenueError::new(code, message);
    match code {
        Some(-1054 | -1046) => error.with_kind(VenueErrorKind::Transient),
        Some(-1044..=-1040 | -1047 | -1049 | -1058..=-1050 | -1121) => {
            error.with_kind(VenueErrorKind::Permanent)
        }
        None if message.starts_with("INVALID_ARGUMENT") => {
            error.with_kind(VenueErrorKind::Permanent)
        }
        _ => error,
    }
}

impl Protocol for Weex {
    /// WEEX V3 names a push by its `e`, a greeting or public heartbeat by its
    /// `event` and a private heartbeat by its `type`: that names a frame the
    /// session could not place.
    fn frame_kind<'a>(&self, text: &'a str) -> Option<&'a str> {
        #[derive(serde::Deserialize)]
        struct Kind<'a> {
            #[serde(default, borrow)]
            e: Option<&'a str>,
            #[serde(default, borrow)]
            event: Option<&'a str>,
            #[serde(default, borrow, rename = "type")]
            kind: Option<&'a str>,
        }
        let kind: Kind<'_> = serde_json::from_str(text).ok()?;
        kind.e.or(kind.event).or(kind.kind)
    }

    /// WEEX closes with 1007 after six refused subscribes; the connection
    /// itself is fine, so that code reconnects (see [`permanent_close`]).
    fn is_permanent_close(&self, code: u16) -> bool {
        permanent_close(code)
    }

    fn name(&self) -> &'static str {
        "weex"
    }

    /// The venue time: the frame's top-level `E` (Unix ms).
    fn venue_time(&self, text: &str, payload: &str) -> Option<std::time::SystemTime> {
        super::venue_time::finder::weex(text, payload)
    }

    /// The same search, run when a frame's venue time is asked.
    fn venue_time_finder(&self) -> Option<super::VenueTimeFinder> {
        Some(super::venue_time::finder::weex)
    }

    fn encode_subscribe(&mut self, topics: &[&Topic], req_id: u64) -> String {
        let streams: Vec<String> = topics.iter().map(|t| stream_name(t)).collect();
        for stream in &streams {
            self.streams.remember(stream);
        }
        // One topic per request (no batching): the reply names the first.
        if let (Some(topic), Some(stream)) = (topics.first(), streams.first()) {
            if self.pending.len() >= MAX_PENDING && !self.pending.contains_key(&req_id) {
                self.make_room();
            }
            self.pending.insert(
                req_id,
                Pending {
                    server_id: self.streams.remember(stream),
                    channel: topic.channel().to_owned(),
                    symbol: topic.symbol_name().map(str::to_owned),
                    withdrawn: false,
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
            return self.push(&frame, kind, text);
        }
        if frame.event.as_deref() == Some("ping") || frame.kind.as_deref() == Some("ping") {
            return self.pong();
        }
        match (frame.event.as_deref(), frame.method.as_deref()) {
            (Some("pong"), _) => Inbound::Pong,
            // The greeting every socket gets, and any other status event.
            (Some(_), _) => Inbound::Control,
            // The venue's echo of a heartbeat answer.
            (None, Some("PONG")) => Inbound::Control,
            (None, _) => Inbound::Unsolicited,
        }
    }

    fn reset(&mut self) {
        self.pending.clear();
        self.chains.clear();
        self.books.clear();
    }

    fn forget(&mut self, server_id: &ServerId) {
        self.streams.forget(server_id);
        self.chains.forget(server_id);
        self.books.drop_book(server_id);
    }

    fn book_views(&self) -> Option<BookViews> {
        Some(self.books.views())
    }

    fn forget_topic(&mut self, topic: &Topic) {
        // Its pending entry stays (bounded, first to go when full): a late
        // ack still names the stream, so the session can unsubscribe an
        // abandoned subscription.
        let stream = stream_name(topic);
        for pending in self.pending.values_mut() {
            if matches!(&pending.server_id, ServerId::Key(key) if **key == *stream) {
                pending.withdrawn = true;
            }
        }
        self.books.drop_stream(&stream);
        self.streams.forget_name(&stream);
    }
}

/// `{"method":"<method>","params":[..streams..],"id":<id>}`.
fn encode(method: &str, streams: &[String], id: u64) -> String {
    let params = serde_json::Value::from(streams.to_vec());
    format!(r#"{{"method":"{method}","params":{params},"id":{id}}}"#)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod book_tests;
