//! The OKX v5 WebSocket protocol, with order-book checksum verification.
//!
//! Rules, with the facts and their sources in `src/protocol/VENUES.md`:
//! - Requests are `{"id":"<req>","op":"subscribe"|"unsubscribe","args":[..]}`;
//!   OKX echoes `id` on its `subscribe`, `unsubscribe` and `error` events, so
//!   acks and errors are matched by request id (and, within a batched
//!   request, by the channel and instrument the ack names).
//! - The client's keep-alive is the text frame `ping`, answered by `pong`
//!   ([`Protocol::encode_ping`]).
//! - For the book channels (`books`, `books-l2-tbt`, `books50-l2-tbt`) the
//!   adapter keeps one [`Book`] per subscribed instrument on the exact wire
//!   text, applies each snapshot and update, and verifies the frame's
//!   `checksum`: CRC-32 of the first 25 bids and asks interleaved as
//!   `bid:size:ask:size:..`, compared as a signed 32-bit integer. A mismatch,
//!   or an update whose `prevSeqId` is not the previous `seqId`, drops the
//!   book and is reported as a [`BookBreak`] (`ChecksumMismatch`,
//!   `Discontinuity`), so the session resubscribes
//!   for a fresh snapshot, as for Kraken. A `checksum` of 0 is not verified:
//!   OKX keeps the field but sends 0 since it retired the checksum (23 June
//!   2026); `seqId` continuity is then the verification. OKX also announced
//!   (changelog of 2026-02-12; production from early August 2026) that the
//!   initial snapshot goes, to be fetched over REST (not confirmed: OKX's
//!   channel page still described it in August 2026): with a
//!   [`SnapshotSource`] ([`Okx::snapshot_source`];
//!   [`rest`] has OKX's REST format) the deltas are buffered and applied to the
//!   fetched snapshot (`book.rs` has the rules); the connection runs the
//!   fetch and hands its result in as soon as it ends
//!   ([`Protocol::snapshot_fetched`]). Without a source an update with no
//!   snapshot is only chain-checked. Both work: a WebSocket snapshot, when it
//!   comes, is used at once.
//! - Verified books are readable through [`BookViews`] keyed by `instId`
//!   ([`Okx::book_views`], or [`Client::book_views`](crate::Client::book_views)
//!   at any time), with the venue time (`ts`) of the last applied update.
//! - A `notice` with code 64008 (service upgrade: the connection closes in
//!   60 s) is [`Inbound::Reconnect`]: the session reconnects at once.
//!   `login`, `channel-conn-count` and `channel-conn-count-error` are status
//!   (this adapter never logs in, and only private channels are counted).
//! - Only instruments this adapter subscribed on a book channel get a book,
//!   so a peer cannot grow memory by naming instruments.
//! - Limits: 480 subscribe/unsubscribe/login requests per hour per connection
//!   ([`Protocol::limits`]; the session makes requests beyond it wait). No
//!   channel cap is documented, only advice (fewer than 30 deep book channels
//!   per connection), so `channels_per_connection` stays `None`.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::json;
use super::kraken::Book;
use super::op_args::{self, Arg, Envelope, Keys};
use super::{BookBreak, Inbound, Protocol, ServerId, Topic, VenueLimits};
use crate::book::{BookViews, SnapshotFetched, SnapshotRequest, SnapshotSource};
use crate::error::{ProtocolError, VenueError};
use crate::venue_error::VenueErrorKind;

pub(crate) mod book;
mod checksum;
pub mod rest;

pub(crate) use book::{BookFrame, Books};
pub use book::{MAX_BUFFERED_BYTES, MAX_BUFFERED_UPDATES, MAX_SNAPSHOT_ATTEMPTS};

pub use checksum::{checksum, checksum_levels, CHECKSUM_LEVELS};

/// The book channels and the depth each keeps.
pub const BOOK_CHANNELS: [(&str, usize); 3] = [
    ("books", 400),
    ("books-l2-tbt", 400),
    ("books50-l2-tbt", 50),
];

/// Subscribe, unsubscribe and login requests per hour per connection, per
/// the OKX v5 docs ("Connect": "limited to 480 times per hour").
pub const MAX_OPS_PER_HOUR: u32 = 480;

/// The most topics one subscribe request carries. OKX caps "the total
/// length of multiple channels" in one request at 64 KB and closes with 1009
/// ("Request message exceeds the maximum frame length") beyond it, a close
/// that a replay of the same request would repeat. 100 topics leave each
/// `args` entry about 650 bytes (a `tickers` entry is about 45): a thousand
/// topics subscribed at once go out as ten requests, well inside
/// [`MAX_OPS_PER_HOUR`].
pub const MAX_TOPICS_PER_REQUEST: usize = 100;

/// The OKX v5 WebSocket protocol (`wss://ws.okx.com/ws/v5/public`; port 8443 was retired on 2026-10-31).
///
/// ```
/// use resilient_ws::{Okx, Protocol, Topic};
/// let mut okx = Okx::new();
/// let frame = okx.encode_subscribe(&[&Topic::new("tickers").symbol("BTC-USDT")], 4);
/// assert_eq!(frame, r#"{"id":"4","op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"}]}"#);
/// assert_eq!(okx.encode_ping(5).as_deref(), Some("ping"));
/// ```
#[derive(Debug, Default)]
pub struct Okx {
    keys: Keys,
    /// The books of the subscribed book topics (`book.rs`), with their
    /// depth: added when a book subscribe is encoded, removed by `forget`,
    /// so only these may hold a book.
    books: Books,
    /// Where book snapshots come from when OKX sends none; the connection
    /// runs the fetches the books ask for (`supervisor/fetches.rs`).
    source: Option<Source>,
}

/// The snapshot source, shown in `Debug` by its presence only.
#[derive(Clone)]
struct Source(Arc<dyn SnapshotSource>);

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SnapshotSource")
    }
}

/// One book push's payload.
#[derive(Deserialize)]
struct BookData<'a> {
    /// Levels are `[price, size, "0", orders]`; only price and size are read.
    #[serde(default, borrow)]
    asks: Vec<Vec<&'a str>>,
    #[serde(default, borrow)]
    bids: Vec<Vec<&'a str>>,
    #[serde(default)]
    checksum: Option<i64>,
    #[serde(default, rename = "seqId")]
    seq_id: Option<i64>,
    #[serde(default, rename = "prevSeqId")]
    prev_seq_id: Option<i64>,
    /// Unix ms as a string.
    #[serde(default, borrow)]
    ts: Option<Cow<'a, str>>,
}

impl Okx {
    /// The OKX v5 protocol with no books yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The server id OKX data for `channel` and `symbol` (its `instId`) is
    /// routed by. A topic subscribed by `instType` or `instFamily` instead
    /// is keyed by `"instType=SPOT"` (or `"instFamily=BTC-USD"`) in place of
    /// the symbol.
    pub fn server_id(channel: &str, symbol: Option<&str>) -> ServerId {
        Keys::server_id(channel, symbol)
    }

    /// The verified book of a subscribed book topic, if it has one.
    pub fn book(&self, channel: &str, symbol: &str) -> Option<&Book> {
        self.books.book(&Keys::server_id(channel, Some(symbol)))
    }

    /// The views of the verified books, keyed by `instId`: take it before
    /// handing the adapter to the client (or later from
    /// [`Client::book_views`](crate::Client::book_views)), then
    /// [`watch`](BookViews::watch) an instrument.
    ///
    /// ```
    /// use resilient_ws::Okx;
    /// let okx = Okx::new();
    /// let view = okx.book_views().watch("BTC-USDT", 10);
    /// assert!(view.latest().is_none()); // until a book verifies
    /// ```
    pub fn book_views(&self) -> BookViews {
        self.books.views()
    }

    /// Where book snapshots come from when OKX sends deltas without one (its
    /// 2026 change): the deltas are buffered, bounded by
    /// [`MAX_BUFFERED_UPDATES`] and [`MAX_BUFFERED_BYTES`], while the
    /// connection runs the source off the frame path, on the current tokio
    /// runtime; the snapshot is applied as soon as the fetch ends.
    /// [`rest`] parses OKX's `GET /api/v5/market/books` answer. A recorder
    /// keeps each result; a [`Replay`](crate::Replay) hands them in and needs
    /// no source (the recording says the live adapter had one).
    #[must_use]
    pub fn snapshot_source(mut self, source: impl SnapshotSource) -> Self {
        self.source = Some(Source(Arc::new(source)));
        self.books.set_source(true);
        self
    }

    /// The server id of a push or ack for `channel`: by its `instId` (nearly
    /// every frame: one lookup), else by the `instFamily` or `instType` a
    /// topic without an instrument was subscribed by (OKX's `instruments`,
    /// `liquidation-orders`, `opt-summary`, ...: one subscription per type or
    /// family, so two on one connection must not share a key), else by the
    /// channel alone.
    fn route(&mut self, channel: &str, arg: &Arg<'_>) -> ServerId {
        let by_inst = self.keys.route(channel, arg.inst_id.as_deref());
        if arg.inst_family.0.is_none() && arg.inst_type.0.is_none() {
            return by_inst;
        }
        if self.keys.contains(&by_inst) {
            return by_inst;
        }
        let scopes = [
            scope(INST_FAMILY, arg.inst_family.as_deref()),
            scope(INST_TYPE, arg.inst_type.as_deref()),
        ];
        for scoped in scopes.iter().flatten() {
            let id = self.keys.route(channel, Some(scoped));
            if self.keys.contains(&id) {
                return id;
            }
        }
        by_inst
    }

    fn classify_push<'a>(
        &mut self,
        arg: &Arg<'_>,
        action: Option<&str>,
        data: &'a RawValue,
    ) -> Inbound<'a> {
        let Some(channel) = arg.channel.as_deref() else {
            return Inbound::Unsolicited;
        };
        let server_id = self.route(channel, arg);
        let book_break = match self.books.contains(&server_id) {
            true => match self.apply_book(&server_id, action, data) {
                Ok(verdict) => verdict,
                Err(error) => return Inbound::Invalid(error),
            },
            false => None,
        };
        Inbound::Data {
            server_id,
            seq: None,
            book_break,
            payload: Some(data.get()),
        }
    }

    /// Applies a book push; `Some` when the book did not verify (then it is
    /// dropped and the subscription resyncs).
    fn apply_book(
        &mut self,
        server_id: &ServerId,
        action: Option<&str>,
        data: &RawValue,
    ) -> Result<Option<BookBreak>, ProtocolError> {
        let items: Vec<BookData<'_>> = serde_json::from_str(data.get()).map_err(|_| {
            ProtocolError::Unparseable("okx: book data is not a list of books".to_owned())
        })?;
        let Some(item) = items.first() else {
            return Ok(None);
        };
        let (Some(asks), Some(bids)) = (pairs(&item.asks), pairs(&item.bids)) else {
            return Err(ProtocolError::Unparseable(
                "okx: a book level has no price or size".to_owned(),
            ));
        };
        let frame = BookFrame {
            snapshot: action == Some("snapshot"),
            asks,
            bids,
            checksum: item.checksum,
            seq: item.seq_id,
            prev: item.prev_seq_id,
            venue_time: item.ts.as_deref().and_then(rest::unix_ms),
        };
        Ok(self.books.apply(server_id, &frame))
    }
}

/// The request fields a topic without an `instId` may be subscribed by.
const INST_FAMILY: &str = "instFamily";
const INST_TYPE: &str = "instType";

/// The key part of a topic subscribed by `field` = `value` instead of an
/// instrument: `instType=SPOT` (`=` never appears in an OKX instrument id, so
/// it cannot be taken for one).
fn scope(field: &str, value: Option<&str>) -> Option<String> {
    value.map(|value| format!("{field}={value}"))
}

/// What a topic's key names besides its channel: its instrument, else the
/// family or type it is subscribed by (a string param), else nothing.
fn topic_scope(topic: &Topic) -> Option<Cow<'_, str>> {
    if let Some(symbol) = topic.symbol_name() {
        return Some(Cow::Borrowed(symbol));
    }
    [INST_FAMILY, INST_TYPE].into_iter().find_map(|field| {
        let value = topic.params().get(field)?.as_str();
        scope(field, value).map(Cow::Owned)
    })
}

/// `(price, size)` of each level, or `None` when one lacks either.
fn pairs<'a>(levels: &[Vec<&'a str>]) -> Option<Vec<(&'a str, &'a str)>> {
    levels
        .iter()
        .map(|level| Some((*level.first()?, *level.get(1)?)))
        .collect()
}

/// The code of OKX's service-upgrade notice: the connection closes soon.
pub const SERVICE_UPGRADE_NOTICE: i64 = 64008;

/// A `notice` event: the service-upgrade notice asks for a new connection
/// (OKX sends it 60 s before closing); any other notice is of an unknown kind.
fn notice<'a>(frame: &Envelope<'_>) -> Inbound<'a> {
    let code = op_args::code(frame.code);
    let message = frame.msg.as_deref().unwrap_or_default();
    if code == Some(SERVICE_UPGRADE_NOTICE) {
        return Inbound::Reconnect {
            notice: venue_error(code, message),
        };
    }
    // A notice of a kind OKX has not documented: counted and reported.
    Inbound::Unknown {
        kind: Cow::Owned(match code {
            Some(code) => format!("notice {code}"),
            None => "notice".to_owned(),
        }),
    }
}

/// The close-code rule for OKX ([`ConfigBuilder::permanent_close_codes`](crate::ConfigBuilder::permanent_close_codes)):
/// [`default_permanent_close`](crate::default_permanent_close) except the
/// closes OKX's v5 docs list as trouble with this one connection ("Error
/// Code" > "WebSocket" > "Public" > "Close Frame"): 4004 (no data received
/// in 30 s), 4005 (buffer full, cannot write data: the reader fell behind),
/// 4006 (abnormal disconnection) and 4007 (API key updated or deleted,
/// "Please reconnect"). After those the same subscriptions are welcome on a
/// new connection, so the client reconnects; the default rule (the whole
/// 4000-4999 range permanent) would end it for good on an idle close.
/// The table's other closes stay permanent: reconnecting would replay what
/// was refused (1009 a request over the frame limit, 4001 login failed,
/// 4002 invalid request, 4003 more than 100 API-key subscriptions, 4008
/// and 4009 too many channels in total or on this connection).
///
/// ```
/// use resilient_ws::protocol::okx::permanent_close;
/// assert!(!permanent_close(4004));
/// assert!(permanent_close(4008));
/// ```
pub fn permanent_close(code: u16) -> bool {
    !matches!(code, 4004..=4007) && crate::close_code::default_permanent_close(code)
}

/// Classifies an OKX WebSocket error code: every 60xxx, 63xxx and 64xxx code
/// OKX documents for its WebSocket (the table, with sources, is in
/// `src/protocol/VENUES.md`), and 50011, its rate-limit code.
///
/// - Refusals that retrying cannot change (keys, login, arguments, an
///   unknown channel or instrument, the wrong URL, a fee tier too low:
///   60029/60030 before 2026-04-07, 64003 since; 60033 a parameter error;
///   64004 a channel refused beside `books-l2-tbt` on the same instrument
///   until that one is unsubscribed) are `Permanent`.
/// - Too many requests (60014, 60023, 50011) is `RateLimited`.
/// - The venue's own trouble (60015 no data for 30 s, 60016 buffer full,
///   63999 internal error, 64007 an operation failed on an internal error,
///   "try again later", 64008 service upgrade) is `Transient`.
/// - 60022 (a batch login partly succeeded) and anything undocumented are
///   `Unknown`.
///
/// ```
/// use resilient_ws::protocol::okx::venue_error;
/// use resilient_ws::VenueErrorKind;
/// assert_eq!(venue_error(Some(60014), "Requests too frequent").kind, VenueErrorKind::RateLimited);
/// assert_eq!(venue_error(Some(64003), "fee tier").kind, VenueErrorKind::Permanent);
/// ```
pub fn venue_error(code: Option<i64>, message: &str) -> VenueError {
    let error = VenueError::new(code, message);
    let kind = match code {
        Some(60001..=60013 | 60017..=60021 | 60024..=60033 | 64000..=64004) => {
            VenueErrorKind::Permanent
        }
        Some(60014 | 60023 | 50011) => VenueErrorKind::RateLimited,
        Some(60015 | 60016 | 63999 | 64007 | SERVICE_UPGRADE_NOTICE) => VenueErrorKind::Transient,
        _ => VenueErrorKind::Unknown,
    };
    error.with_kind(kind)
}

impl Protocol for Okx {
    /// OKX names a reply or notice by its `event` and a push by its
    /// `arg.channel`: that names a frame the session could not place.
    fn frame_kind<'a>(&self, text: &'a str) -> Option<&'a str> {
        #[derive(serde::Deserialize)]
        struct Arg<'a> {
            #[serde(default, borrow)]
            channel: Option<&'a str>,
        }
        #[derive(serde::Deserialize)]
        struct Kind<'a> {
            #[serde(default, borrow)]
            event: Option<&'a str>,
            #[serde(default, borrow)]
            arg: Option<Arg<'a>>,
        }
        let kind: Kind<'_> = serde_json::from_str(text).ok()?;
        kind.event.or(kind.arg.and_then(|arg| arg.channel))
    }

    fn name(&self) -> &'static str {
        "okx"
    }

    /// OKX's idle, slow-reader, abnormal and key-change closes (4004-4007)
    /// reconnect (see [`permanent_close`]).
    fn is_permanent_close(&self, code: u16) -> bool {
        permanent_close(code)
    }

    /// The venue time: the last data row's `ts` (Unix ms, a string).
    fn venue_time(&self, text: &str, payload: &str) -> Option<std::time::SystemTime> {
        super::venue_time::finder::okx(text, payload)
    }

    /// The same search, run when a frame's venue time is asked.
    fn venue_time_finder(&self) -> Option<super::VenueTimeFinder> {
        Some(super::venue_time::finder::okx)
    }

    fn encode_subscribe(&mut self, topics: &[&Topic], req_id: u64) -> String {
        for topic in topics {
            let (channel, symbol) = (topic.channel(), topic.symbol_name());
            self.keys.remember(channel, topic_scope(topic).as_deref());
            if let Some((_, depth)) = BOOK_CHANNELS.iter().find(|(c, _)| *c == channel) {
                if let Some(symbol) = symbol {
                    let id = Keys::server_id(channel, Some(symbol));
                    // A resubscribe starts from a fresh snapshot (or chain).
                    self.books.subscribe(id, symbol, *depth);
                }
            }
        }
        op_args::encode("subscribe", Some(req_id), topics)
    }

    fn encode_unsubscribe(
        &mut self,
        topic: &Topic,
        _server_id: &ServerId,
        req_id: u64,
    ) -> Option<String> {
        Some(op_args::encode("unsubscribe", Some(req_id), &[topic]))
    }

    fn can_batch(&self, first: &Topic, next: &Topic) -> bool {
        first.channel() == next.channel()
            && first.symbol_name().is_some()
            && next.symbol_name().is_some()
            && first.params() == next.params()
    }

    /// The `instId`, else the `instFamily` or `instType` a channel without
    /// an instrument is subscribed by (`instType=SPOT`), so that one
    /// connection holds `instruments` for several types.
    fn topic_scope<'t>(&self, topic: &'t Topic) -> Option<Cow<'t, str>> {
        topic_scope(topic)
    }

    /// [`MAX_TOPICS_PER_REQUEST`]: OKX's 64 KB request limit.
    fn max_batch(&self) -> usize {
        MAX_TOPICS_PER_REQUEST
    }

    fn encode_ping(&mut self, _req_id: u64) -> Option<String> {
        Some("ping".to_owned())
    }

    fn limits(&self) -> VenueLimits {
        VenueLimits::new(
            None,
            Some((MAX_OPS_PER_HOUR, std::time::Duration::from_secs(3600))),
        )
    }

    fn classify<'a>(&mut self, text: &'a str) -> Inbound<'a> {
        if text == "pong" {
            return Inbound::Pong;
        }
        if !json::is_object(text) {
            return Inbound::Invalid(ProtocolError::Unparseable(
                "okx: frame is neither pong nor a JSON object".to_owned(),
            ));
        }
        let frame: Envelope<'a> = match serde_json::from_str(text) {
            Ok(frame) => frame,
            Err(error) => return Inbound::Invalid(json::unparseable("okx", &error)),
        };
        let req_id = op_args::req_id(&frame.id);
        let arg = Arg::of(frame.arg);
        match frame.event.as_deref() {
            Some("subscribe") => match arg.channel.0.clone() {
                Some(channel) => Inbound::Subscribed {
                    req_id,
                    server_id: self.route(&channel, &arg),
                    channel: Some(channel),
                    symbol: arg.inst_id.0,
                },
                None => Inbound::Invalid(ProtocolError::Unparseable(
                    "okx: subscribe event without arg.channel".to_owned(),
                )),
            },
            Some("unsubscribe") => Inbound::Unsubscribed { req_id },
            Some("error") => Inbound::Rejected {
                req_id,
                symbol: arg.inst_id.0,
                error: venue_error(
                    op_args::code(frame.code),
                    frame.msg.as_deref().unwrap_or_default(),
                ),
            },
            Some("notice") => notice(&frame),
            Some("channel-conn-count-error") => {
                // Only private channels (which need a login this adapter does
                // not send) are counted; should one be refused anyway, say so.
                tracing::warn!(
                    code = ?op_args::code(frame.code),
                    "okx: channel-conn-count-error: the venue ended a channel \
                     subscription over its per-channel connection limit"
                );
                Inbound::Control
            }
            // Status only.
            Some("login" | "channel-conn-count") => Inbound::Control,
            // A kind OKX added after this adapter: counted and reported.
            Some(other) => Inbound::Unknown {
                kind: Cow::Owned(other.to_owned()),
            },
            None => match frame.data {
                Some(data) => self.classify_push(&arg, frame.action.as_deref(), data),
                None => Inbound::Unsolicited,
            },
        }
    }

    fn book_views(&self) -> Option<BookViews> {
        Some(self.books.views())
    }

    fn reset(&mut self) {
        self.books.reset();
    }

    fn forget(&mut self, server_id: &ServerId) {
        self.keys.forget(server_id);
        self.books.forget(server_id);
    }

    fn book_snapshot_source(&self) -> Option<Arc<dyn SnapshotSource>> {
        self.source.as_ref().map(|source| Arc::clone(&source.0))
    }

    fn take_snapshot_requests(&mut self) -> Vec<SnapshotRequest> {
        self.books
            .take_requests()
            .into_iter()
            .map(|(server_id, symbol, number)| SnapshotRequest {
                server_id,
                symbol: symbol.into(),
                number,
            })
            .collect()
    }

    fn snapshot_fetched(&mut self, fetched: SnapshotFetched) -> Option<BookBreak> {
        self.books
            .fetched(&fetched.server_id, fetched.number, fetched.result)
    }

    fn replay_snapshot_source(&mut self, live: bool) {
        self.books.set_source(live);
    }

    fn forget_topic(&mut self, topic: &Topic) {
        // OKX's server id is the topic's own key, so a subscription that never
        // got one is forgotten by the key its subscribe remembered (and its
        // book depth); one live subscription per topic, so nothing live
        // shares it. A late ack then routes nowhere, and the session
        // unsubscribes it.
        self.forget(&Keys::server_id(
            topic.channel(),
            topic_scope(topic).as_deref(),
        ));
    }
}

#[cfg(test)]
mod tests;
