//! The Kraken WebSocket v2 protocol, with order-book checksum verification.
//!
//! Kraken assigns no subscription ids: a subscription is identified by its
//! channel and symbol, so the [`ServerId`] is the key `channel:symbol` (or just
//! `channel` for symbol-less channels such as the private `executions` and
//! `balances`). One subscribe request may carry several symbols of one channel;
//! the venue acknowledges each symbol separately, all echoing the request id.
//!
//! For the `book` channel the adapter keeps one [`Book`] per symbol on the exact
//! wire text of prices and quantities, applies every snapshot and update, and
//! verifies the frame's `checksum` against it. A mismatch is reported on the
//! data frame as [`ChecksumMismatch`], so the supervisor can resubscribe for a
//! fresh snapshot. Only symbols this adapter subscribed on the `book` channel
//! (and has not forgotten since) get a book: book frames for any other symbol
//! are routed but allocate nothing, so a peer cannot grow memory by naming
//! symbols.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{opt_u64, ChecksumMismatch, Inbound, Protocol, Request, ServerId, Topic};
use crate::error::{ProtocolError, VenueError};
use crate::token::Secret;

pub mod book;
pub(crate) mod json;
mod view;

pub use book::{
    checksum_levels, cmp_price, Book, BookError, Level, NumberError, Side, CHECKSUM_LEVELS,
    MAX_NUMBER_LEN,
};

pub use view::{BookTop, BookView, BookViews};

use json::Text;

/// The channel whose frames are verified against a local order book.
const BOOK: &str = "book";
/// Channels that need the session token (`params.token`) on the private endpoint.
pub const PRIVATE_CHANNELS: [&str; 3] = ["executions", "balances", "level3"];
/// The book depths Kraken accepts.
pub const BOOK_DEPTHS: [usize; 5] = [10, 25, 100, 500, 1000];
/// The book depth when a subscription does not name one (Kraken's default).
pub const DEFAULT_BOOK_DEPTH: usize = 10;

/// The Kraken WebSocket v2 protocol (`wss://ws.kraken.com/v2`).
///
/// ```
/// use resilient_ws::{Kraken, Protocol, Topic};
/// let mut kraken = Kraken::new();
/// let topics = [Topic::new("ticker").symbol("BTC/USD"), Topic::new("ticker").symbol("ETH/USD")];
/// assert!(kraken.can_batch(&topics[0], &topics[1]));
/// let frame = kraken.encode_subscribe(&[&topics[0], &topics[1]], 7);
/// assert!(frame.contains(r#""symbol":["BTC/USD","ETH/USD"]"#));
/// ```
#[derive(Debug, Default)]
pub struct Kraken {
    /// Subscribed book depth per symbol: the symbols currently subscribed on
    /// the book channel (added when a book subscribe is encoded, removed by
    /// `forget`). Only these may hold a book, so `books` never has more
    /// entries than the client subscribed, whatever the peer sends.
    depths: HashMap<Box<str>, usize>,
    /// The book of each subscribed symbol, from its latest snapshot. No entry:
    /// no snapshot yet (or the book was dropped), so nothing is verified.
    /// Always a subset of the keys of `depths`.
    books: HashMap<Box<str>, Book>,
    /// Channels subscribed without a symbol: routed by channel alone, even when
    /// their data items carry a `symbol` (private `executions` do).
    symbolless: HashSet<Box<str>>,
    /// Server ids of subscribed topics by key text (added on subscribe, removed
    /// by `forget`), so routing a data frame does not allocate.
    keys: HashMap<Box<str>, ServerId>,
    /// Reused buffer for key text.
    scratch: String,
    /// The session token from the client's token source, for private channels
    /// and requests.
    token: Option<Secret>,
    /// Where verified books are published for consumers.
    views: BookViews,
}

impl Kraken {
    /// A Kraken v2 protocol with no books yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The server id of the subscription to `channel` (and `symbol`): the key
    /// `channel:symbol`, or `channel` when there is no symbol.
    ///
    /// ```
    /// use resilient_ws::{protocol::kraken::Kraken, ServerId};
    /// assert_eq!(Kraken::server_id("book", Some("BTC/USD")), ServerId::Key("book:BTC/USD".into()));
    /// assert_eq!(Kraken::server_id("executions", None), ServerId::Key("executions".into()));
    /// ```
    pub fn server_id(channel: &str, symbol: Option<&str>) -> ServerId {
        let mut text = String::new();
        write_key(&mut text, channel, symbol);
        ServerId::Key(Arc::from(text))
    }

    /// The locally maintained book of `symbol`, when `symbol` is subscribed on
    /// the book channel, a snapshot has been applied and the book has not been
    /// dropped since.
    pub fn book(&self, symbol: &str) -> Option<&Book> {
        self.books.get(symbol)
    }

    /// The views of the verified books, for consumers: take it before handing
    /// the adapter to the client, then [`watch`](BookViews::watch) a symbol.
    ///
    /// ```
    /// use resilient_ws::protocol::kraken::Kraken;
    /// let kraken = Kraken::new();
    /// let view = kraken.book_views().watch("BTC/USD", 10);
    /// assert!(view.latest().is_none()); // until a snapshot verifies
    /// ```
    pub fn book_views(&self) -> BookViews {
        self.views.clone()
    }

    /// Like [`Kraken::server_id`], reusing the cached id of a subscribed topic.
    fn key(&mut self, channel: &str, symbol: Option<&str>) -> ServerId {
        self.scratch.clear();
        write_key(&mut self.scratch, channel, symbol);
        match self.keys.get(self.scratch.as_str()) {
            Some(id) => id.clone(),
            None => ServerId::Key(Arc::from(self.scratch.as_str())),
        }
    }

    /// The server id a data frame is routed by. Data items of a channel that was
    /// subscribed without a symbol may still name one (private `executions`
    /// do): unless that channel and symbol were also subscribed together, such
    /// a frame belongs to the symbol-less subscription.
    fn route(&mut self, channel: &str, symbol: Option<&str>) -> ServerId {
        if symbol.is_some() && self.symbolless.contains(channel) {
            self.scratch.clear();
            write_key(&mut self.scratch, channel, symbol);
            if !self.keys.contains_key(self.scratch.as_str()) {
                return self.key(channel, None);
            }
        }
        self.key(channel, symbol)
    }

    /// Caches the server id of a topic being subscribed.
    fn remember_key(&mut self, channel: &str, symbol: Option<&str>) {
        self.scratch.clear();
        write_key(&mut self.scratch, channel, symbol);
        if !self.keys.contains_key(self.scratch.as_str()) {
            let text: Arc<str> = Arc::from(self.scratch.as_str());
            self.keys.insert(Box::from(&*text), ServerId::Key(text));
        }
    }

    /// Adds the session token to a private channel's params (unless given).
    fn add_token(&self, channel: &str, params: &mut Map<String, Value>) {
        if let Some(token) = &self.token {
            if PRIVATE_CHANNELS.contains(&channel) && !params.contains_key("token") {
                params.insert("token".to_owned(), Value::from(token.expose()));
            }
        }
    }

    /// The number of books held (for tests of the bound on peer-driven state).
    #[cfg(test)]
    fn book_count(&self) -> usize {
        self.books.len()
    }

    /// The subscribed depth of `symbol` (tests only: the book code reads `depths`).
    #[cfg(test)]
    fn depth_of(&self, symbol: &str) -> usize {
        self.depths
            .get(symbol)
            .copied()
            .unwrap_or(DEFAULT_BOOK_DEPTH)
    }

    fn classify_data<'a>(
        &mut self,
        channel: &str,
        snapshot: bool,
        data: &'a RawValue,
        seq: Option<u64>,
    ) -> Inbound<'a> {
        if channel == BOOK {
            return self.classify_book(snapshot, data, seq);
        }
        let head = first_head(data);
        Inbound::Data {
            server_id: self.route(channel, head.symbol.as_deref()),
            seq,
            checksum: None,
            payload: Some(data.get()),
        }
    }

    fn classify_book<'a>(
        &mut self,
        snapshot: bool,
        data: &'a RawValue,
        seq: Option<u64>,
    ) -> Inbound<'a> {
        match serde_json::from_str::<Vec<BookItem<'_>>>(data.get()) {
            Ok(items) => {
                let mut verdict = None;
                for item in &items {
                    let result = self.apply_book_item(snapshot, item);
                    verdict = verdict.or(result);
                }
                let symbol = items.first().and_then(|item| item.symbol.as_deref());
                Inbound::Data {
                    server_id: self.route(BOOK, symbol),
                    seq,
                    checksum: verdict,
                    payload: Some(data.get()),
                }
            }
            Err(_) => {
                // Not a list of well-formed book items: route it by what can be
                // read, and have the book (if any) rebuilt from a fresh snapshot.
                // Only a subscribed symbol gets that verdict (`books` is a
                // subset of `depths`); for any other the frame is only routed.
                let head = first_head(data);
                let symbol = head.symbol.as_deref();
                let checksum = match symbol {
                    Some(symbol)
                        if self.books.contains_key(symbol)
                            || (snapshot && self.depths.contains_key(symbol)) =>
                    {
                        tracing::debug!("kraken: malformed book frame; dropping the book");
                        let expected = head.checksum.and_then(parse_u32).unwrap_or(0);
                        Some(self.drop_book(symbol, expected))
                    }
                    _ => None,
                };
                Inbound::Data {
                    server_id: self.route(BOOK, symbol),
                    seq,
                    checksum,
                    payload: Some(data.get()),
                }
            }
        }
    }

    /// Applies one book item to its symbol's book and verifies the checksum.
    ///
    /// A symbol that is not subscribed on the book channel gets no book and no
    /// verdict: its frame is still classified as data routed by its key
    /// (`book:SYMBOL`), exactly like data of any other channel for a
    /// subscription the adapter does not know, and the supervisor, finding no
    /// route, counts it unroutable. Reporting it as `Inbound::Invalid` instead
    /// would differ from those frames for no gain, and a stray frame of a
    /// subscription just forgotten (still in flight) is not garbage. Either way,
    /// nothing is allocated for it, so a peer naming millions of symbols
    /// cannot grow the adapter's memory.
    fn apply_book_item(&mut self, snapshot: bool, item: &BookItem<'_>) -> Option<ChecksumMismatch> {
        let symbol = item.symbol.as_deref()?;
        let depth = *self.depths.get(symbol)?;
        if !snapshot && !self.books.contains_key(symbol) {
            // An update before the snapshot (e.g. while resubscribing): nothing
            // to verify against.
            return None;
        }
        let expected = match item.checksum {
            None => None,
            Some(raw) => match parse_u32(raw) {
                Some(expected) => Some(expected),
                None => {
                    tracing::debug!("kraken: book checksum is not a u32; dropping the book");
                    return Some(self.drop_book(symbol, 0));
                }
            },
        };
        let asks: Vec<(&str, &str)> = item.asks.iter().map(RawLevel::text).collect();
        let bids: Vec<(&str, &str)> = item.bids.iter().map(RawLevel::text).collect();
        let applied = if snapshot {
            let mut book = Book::new(depth);
            book.apply_snapshot(&asks, &bids).map(|()| {
                let computed = book.checksum();
                match self.books.get_mut(symbol) {
                    Some(slot) => *slot = book,
                    None => {
                        self.books.insert(symbol.into(), book);
                    }
                }
                computed
            })
        } else {
            match self.books.get_mut(symbol) {
                Some(book) => book.apply_update(&asks, &bids).map(|()| book.checksum()),
                None => return None,
            }
        };
        match (applied, expected) {
            (Err(error), expected) => {
                tracing::debug!(%error, "kraken: book frame cannot be applied; dropping the book");
                Some(self.drop_book(symbol, expected.unwrap_or(0)))
            }
            (Ok(computed), Some(expected)) if computed != expected => {
                // The book has diverged: drop it so that the updates still in
                // flight before the fresh snapshot are not reported again.
                self.books.remove(symbol);
                self.views.invalidate(Some(symbol));
                Some(ChecksumMismatch { expected, computed })
            }
            (Ok(computed), Some(_)) => {
                if let Some(book) = self.books.get(symbol) {
                    self.views.verified(symbol, book, computed, snapshot);
                }
                None
            }
            (Ok(_), None) => {
                // Applied but not verifiable: not shown as verified.
                self.views.invalidate(Some(symbol));
                None
            }
        }
    }

    /// Drops the book of `symbol`, reporting its last checksum (0 for no book).
    fn drop_book(&mut self, symbol: &str, expected: u32) -> ChecksumMismatch {
        self.views.invalidate(Some(symbol));
        let computed = self.books.remove(symbol).map_or(0, |book| book.checksum());
        ChecksumMismatch { expected, computed }
    }
}

/// Writes the key text of a channel and optional symbol: the one place that
/// defines the Kraken [`ServerId`] format.
fn write_key(out: &mut String, channel: &str, symbol: Option<&str>) {
    out.push_str(channel);
    if let Some(symbol) = symbol {
        out.push(':');
        out.push_str(symbol);
    }
}

/// The book depth requested by subscription params (Kraken's default when
/// absent or not one of [`BOOK_DEPTHS`]; the venue refuses those anyway).
fn requested_depth(params: &Map<String, Value>) -> usize {
    params
        .get("depth")
        .and_then(Value::as_u64)
        .and_then(|d| BOOK_DEPTHS.iter().copied().find(|&v| v as u64 == d))
        .unwrap_or(DEFAULT_BOOK_DEPTH)
}

/// A JSON number's text, also accepting a number sent as a plain JSON string.
fn number_text(raw: &RawValue) -> &str {
    let text = raw.get();
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
}

fn parse_u32(raw: &RawValue) -> Option<u32> {
    number_text(raw).parse().ok()
}

/// The routing fields of a Kraken frame.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow)]
    method: Text<'a>,
    #[serde(default, borrow)]
    channel: Text<'a>,
    #[serde(default, borrow, rename = "type")]
    kind: Text<'a>,
    #[serde(default, borrow)]
    success: Option<&'a RawValue>,
    #[serde(default, borrow)]
    req_id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    result: Option<&'a RawValue>,
    #[serde(default, borrow)]
    error: Text<'a>,
    #[serde(default, borrow)]
    symbol: Text<'a>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(default, borrow)]
    sequence: Option<&'a RawValue>,
}

impl Envelope<'_> {
    /// Whether a method response reports failure: `success` false, or no
    /// `success` but an `error`.
    fn failed(&self) -> bool {
        match json::flag(self.success) {
            Some(success) => !success,
            None => self.error.0.is_some(),
        }
    }

    fn venue_error(&self) -> VenueError {
        VenueError::kraken(self.error.as_deref().unwrap_or("request failed"))
    }
}

/// The `result` of a subscribe acknowledgement.
#[derive(Deserialize, Default)]
struct AckResult<'a> {
    #[serde(default, borrow)]
    channel: Text<'a>,
    #[serde(default, borrow)]
    symbol: Text<'a>,
}

/// The routing fields of a data item, read leniently.
#[derive(Deserialize, Default)]
struct Head<'a> {
    #[serde(default, borrow)]
    symbol: Text<'a>,
    #[serde(default, borrow)]
    checksum: Option<&'a RawValue>,
}

/// The [`Head`] of the first item of `data`, or an empty one when `data` is
/// not a list starting with an object.
fn first_head(data: &RawValue) -> Head<'_> {
    struct FirstVisitor;
    impl<'de> Visitor<'de> for FirstVisitor {
        type Value = Head<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Head<'de>, A::Error> {
            let head = seq.next_element::<Head<'de>>()?.unwrap_or_default();
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(head)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(data.get());
    deserializer
        .deserialize_seq(FirstVisitor)
        .unwrap_or_default()
}

/// One item of a book frame's `data`.
#[derive(Deserialize)]
struct BookItem<'a> {
    #[serde(default, borrow)]
    symbol: Text<'a>,
    #[serde(default, borrow)]
    bids: Vec<RawLevel<'a>>,
    #[serde(default, borrow)]
    asks: Vec<RawLevel<'a>>,
    #[serde(default, borrow)]
    checksum: Option<&'a RawValue>,
}

/// A price level with its numbers' wire text.
#[derive(Deserialize)]
struct RawLevel<'a> {
    #[serde(borrow)]
    price: &'a RawValue,
    #[serde(borrow)]
    qty: &'a RawValue,
}

impl<'a> RawLevel<'a> {
    fn text(&self) -> (&'a str, &'a str) {
        (number_text(self.price), number_text(self.qty))
    }
}

impl Protocol for Kraken {
    fn name(&self) -> &'static str {
        "kraken"
    }

    fn encode_subscribe(&mut self, topics: &[&Topic], req_id: u64) -> String {
        let (channel, mut params) = match topics.first() {
            Some(first) => (first.channel(), first.params().clone()),
            None => ("", Map::new()),
        };
        let symbols: Vec<&str> = topics.iter().filter_map(|t| t.symbol_name()).collect();
        if channel == BOOK {
            let depth = requested_depth(&params);
            for &symbol in &symbols {
                self.depths.insert(symbol.into(), depth);
                // A fresh book starts with the next snapshot.
                self.books.remove(symbol);
            }
        }
        if symbols.is_empty() {
            self.symbolless.insert(channel.into());
            self.remember_key(channel, None);
        }
        for &symbol in &symbols {
            self.remember_key(channel, Some(symbol));
        }
        params.insert("channel".to_owned(), Value::from(channel));
        if symbols.is_empty() {
            params.remove("symbol");
        } else {
            params.insert("symbol".to_owned(), Value::from(symbols));
        }
        self.add_token(channel, &mut params);
        format!(
            r#"{{"method":"subscribe","params":{},"req_id":{req_id}}}"#,
            Value::Object(params)
        )
    }

    fn encode_unsubscribe(
        &mut self,
        topic: &Topic,
        _server_id: &ServerId,
        req_id: u64,
    ) -> Option<String> {
        let mut params = topic.params().clone();
        params.remove("snapshot");
        params.insert("channel".to_owned(), Value::from(topic.channel()));
        match topic.symbol_name() {
            Some(symbol) => params.insert("symbol".to_owned(), Value::from(vec![symbol])),
            None => params.remove("symbol"),
        };
        self.add_token(topic.channel(), &mut params);
        Some(format!(
            r#"{{"method":"unsubscribe","params":{},"req_id":{req_id}}}"#,
            Value::Object(params)
        ))
    }

    fn can_batch(&self, first: &Topic, next: &Topic) -> bool {
        first.channel() == next.channel()
            && first.symbol_name().is_some()
            && next.symbol_name().is_some()
            && first.params() == next.params()
    }

    fn encode_ping(&mut self, req_id: u64) -> Option<String> {
        Some(format!(r#"{{"method":"ping","req_id":{req_id}}}"#))
    }

    fn encode_request(&mut self, request: &Request, req_id: u64) -> Result<String, ProtocolError> {
        let method = Value::from(request.method.as_str());
        // Requests on the private endpoint (add_order, ...) carry the token too.
        let with_token = match (&request.params, &self.token) {
            (Some(Value::Object(params)), Some(token)) if !params.contains_key("token") => {
                let mut params = params.clone();
                params.insert("token".to_owned(), Value::from(token.expose()));
                Some(Value::Object(params))
            }
            _ => None,
        };
        Ok(match with_token.as_ref().or(request.params.as_ref()) {
            Some(params) => format!(r#"{{"method":{method},"params":{params},"req_id":{req_id}}}"#),
            None => format!(r#"{{"method":{method},"req_id":{req_id}}}"#),
        })
    }

    fn classify<'a>(&mut self, text: &'a str) -> Inbound<'a> {
        if !json::is_object(text) {
            return Inbound::Invalid(ProtocolError::Unparseable(
                "kraken: frame is not a JSON object".to_owned(),
            ));
        }
        let frame: Envelope<'a> = match serde_json::from_str(text) {
            Ok(frame) => frame,
            Err(error) => return Inbound::Invalid(json::unparseable("kraken", &error)),
        };
        let req_id = opt_u64(frame.req_id);
        if let Some(method) = frame.method.as_deref() {
            let failed = frame.failed();
            return match method {
                "subscribe" if failed => Inbound::Rejected {
                    req_id,
                    error: frame.venue_error(),
                    symbol: frame.symbol.0,
                },
                "subscribe" => {
                    let result = frame
                        .result
                        .and_then(|raw| serde_json::from_str::<AckResult<'a>>(raw.get()).ok())
                        .unwrap_or_default();
                    let Some(channel) = result.channel.as_deref() else {
                        return Inbound::Invalid(ProtocolError::Unparseable(
                            "kraken: subscribe acknowledgement without result.channel".to_owned(),
                        ));
                    };
                    let server_id = self.key(channel, result.symbol.as_deref());
                    Inbound::Subscribed {
                        req_id,
                        server_id,
                        channel: result.channel.0,
                        symbol: result.symbol.0,
                    }
                }
                "unsubscribe" if failed => Inbound::Rejected {
                    req_id,
                    error: frame.venue_error(),
                    symbol: frame.symbol.0,
                },
                "unsubscribe" => Inbound::Unsubscribed { req_id },
                "pong" => Inbound::Pong,
                _ => match req_id {
                    Some(req_id) => Inbound::Response {
                        req_id,
                        error: failed.then(|| frame.venue_error()),
                    },
                    None => Inbound::Control,
                },
            };
        }
        if let Some(channel) = frame.channel.as_deref() {
            return match (channel, frame.data) {
                ("heartbeat", _) => Inbound::Heartbeat,
                ("status", _) | (_, None) => Inbound::Control,
                (channel, Some(data)) => {
                    let snapshot = frame.kind.as_deref() == Some("snapshot");
                    let seq = opt_u64(frame.sequence);
                    self.classify_data(channel, snapshot, data, seq)
                }
            };
        }
        match req_id {
            Some(req_id) => Inbound::Response {
                req_id,
                error: frame.failed().then(|| frame.venue_error()),
            },
            // A venue error that answers nothing identifiable.
            None if frame.error.0.is_some() => Inbound::Control,
            None => Inbound::Invalid(ProtocolError::Unparseable(
                "kraken: frame has neither method nor channel".to_owned(),
            )),
        }
    }

    fn set_token(&mut self, token: &str) {
        self.token = Some(Secret::new(token));
    }

    fn reset(&mut self) {
        self.books.clear();
        self.views.invalidate(None);
    }

    fn forget(&mut self, server_id: &ServerId) {
        if let ServerId::Key(key) = server_id {
            if let Some(symbol) = key
                .strip_prefix(BOOK)
                .and_then(|rest| rest.strip_prefix(':'))
            {
                // No longer subscribed: drop the book, and stop building one
                // from stray frames (a resubscribe encodes the depth again).
                self.books.remove(symbol);
                self.depths.remove(symbol);
                self.views.invalidate(Some(symbol));
            }
            self.keys.remove(&**key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use serde_json::json;

    use super::*;

    const ASKS: [(&str, &str); 10] = [
        ("45285.2", "0.00100000"),
        ("45286.4", "1.54571953"),
        ("45286.6", "1.54571109"),
        ("45289.6", "1.54560911"),
        ("45290.2", "0.15890660"),
        ("45291.8", "1.54553491"),
        ("45294.7", "0.04454749"),
        ("45296.1", "0.35380000"),
        ("45297.5", "0.09945542"),
        ("45299.5", "0.18772827"),
    ];
    const BIDS: [(&str, &str); 10] = [
        ("45283.5", "0.10000000"),
        ("45283.4", "1.54582015"),
        ("45282.1", "0.10000000"),
        ("45281.0", "0.10000000"),
        ("45280.3", "1.54592586"),
        ("45279.0", "0.07990000"),
        ("45277.6", "0.03310103"),
        ("45277.5", "0.30000000"),
        ("45277.3", "1.54602737"),
        ("45276.6", "0.15445238"),
    ];

    fn parse(frame: &str) -> Value {
        serde_json::from_str(frame).unwrap()
    }

    fn key(text: &str) -> ServerId {
        ServerId::Key(text.into())
    }

    fn levels(levels: &[(&str, &str)]) -> String {
        let items: Vec<String> = levels
            .iter()
            .map(|(p, q)| format!(r#"{{"price":{p},"qty":{q}}}"#))
            .collect();
        format!("[{}]", items.join(","))
    }

    /// A book frame with the numbers' text exactly as given.
    fn book_frame(
        kind: &str,
        symbol: &str,
        asks: &[(&str, &str)],
        bids: &[(&str, &str)],
        checksum: Option<u32>,
    ) -> String {
        let checksum = checksum
            .map(|c| format!(r#","checksum":{c}"#))
            .unwrap_or_default();
        format!(
            r#"{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}","bids":{},"asks":{}{checksum},"timestamp":"2023-10-06T17:35:55.440295Z"}}]}}"#,
            levels(bids),
            levels(asks)
        )
    }

    fn data(server_id: &str, checksum: Option<ChecksumMismatch>) -> Inbound<'static> {
        Inbound::Data {
            server_id: key(server_id),
            seq: None,
            checksum,
            payload: None,
        }
    }

    /// Checks that a data frame names its `data` as the payload (valid JSON),
    /// then drops the payload so the routing can be compared with [`data`].
    fn routed(inbound: Inbound<'_>) -> Inbound<'_> {
        match inbound {
            Inbound::Data {
                server_id,
                seq,
                checksum,
                payload,
            } => {
                let payload = payload.expect("kraken data names its payload");
                let parsed = serde_json::from_str::<IgnoredAny>(payload);
                assert!(parsed.is_ok(), "{payload:.80}");
                Inbound::Data {
                    server_id,
                    seq,
                    checksum,
                    payload: None,
                }
            }
            other => other,
        }
    }

    /// A Kraken with `symbol`'s book subscribed at `depth` and the published snapshot applied.
    fn with_book(symbol: &str, depth: u64) -> Kraken {
        let mut kraken = Kraken::new();
        kraken.encode_subscribe(
            &[&Topic::new("book").symbol(symbol).param("depth", depth)],
            1,
        );
        let snapshot = book_frame("snapshot", symbol, &ASKS, &BIDS, Some(3_310_070_434));
        assert_eq!(
            routed(kraken.classify(&snapshot)),
            data(&format!("book:{symbol}"), None)
        );
        kraken
    }

    fn checksum_of(book: &Book) -> u32 {
        book.checksum()
    }

    #[test]
    fn published_example_via_a_snapshot_frame() {
        assert_eq!(checksum_levels(&ASKS, &BIDS), 3_310_070_434);
        let kraken = with_book("BTC/USD", 10);
        let book = kraken.book("BTC/USD").unwrap();
        assert_eq!(book.checksum(), 3_310_070_434);
        assert_eq!(book.depth(), 10);
        assert_eq!(
            book.asks().next().map(|l| (l.price(), l.qty())),
            Some(("45285.2", "0.00100000"))
        );
        assert_eq!(
            book.bids().next().map(|l| (l.price(), l.qty())),
            Some(("45283.5", "0.10000000"))
        );
    }

    #[test]
    fn encodes_one_request_for_several_symbols() {
        let mut kraken = Kraken::new();
        let topics: Vec<Topic> = ["BTC/USD", "XBT/USD", "ETH/USD"]
            .map(|s| Topic::new("ticker").symbol(s))
            .to_vec();
        let refs: Vec<&Topic> = topics.iter().collect();
        assert!(refs.windows(2).all(|w| kraken.can_batch(w[0], w[1])));
        assert_eq!(
            parse(&kraken.encode_subscribe(&refs, 1)),
            json!({"method": "subscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD", "XBT/USD", "ETH/USD"]}, "req_id": 1})
        );
        let book = [
            Topic::new("book")
                .symbol("BTC/USD")
                .param("depth", 25)
                .param("snapshot", true),
            Topic::new("book")
                .symbol("ETH/USD")
                .param("depth", 25)
                .param("snapshot", true),
        ];
        assert_eq!(
            parse(&kraken.encode_subscribe(&[&book[0], &book[1]], 2)),
            json!({"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD", "ETH/USD"], "depth": 25, "snapshot": true}, "req_id": 2})
        );
        assert_eq!(
            (kraken.depth_of("BTC/USD"), kraken.depth_of("ETH/USD")),
            (25, 25)
        );
        assert_eq!(
            parse(&kraken.encode_subscribe(&[&Topic::new("executions").param("token", "t")], 3)),
            json!({"method": "subscribe", "params": {"channel": "executions", "token": "t"}, "req_id": 3})
        );
        // Unsubscribe: the topic's params, except "snapshot".
        assert_eq!(
            kraken
                .encode_unsubscribe(&book[0], &key("book:BTC/USD"), 4)
                .map(|f| parse(&f)),
            Some(
                json!({"method": "unsubscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 25}, "req_id": 4})
            )
        );
        assert_eq!(
            kraken
                .encode_unsubscribe(
                    &Topic::new("balances").param("token", "t"),
                    &key("balances"),
                    5
                )
                .map(|f| parse(&f)),
            Some(
                json!({"method": "unsubscribe", "params": {"channel": "balances", "token": "t"}, "req_id": 5})
            )
        );
        assert_eq!(
            kraken.encode_ping(101).map(|f| parse(&f)),
            Some(json!({"method": "ping", "req_id": 101}))
        );
        assert_eq!(
            parse(
                &kraken
                    .encode_request(&Request::new("add_order", Some(json!({"qty": 1}))), 6)
                    .unwrap()
            ),
            json!({"method": "add_order", "params": {"qty": 1}, "req_id": 6})
        );
        assert_eq!(
            parse(&kraken.encode_request(&Request::new("x", None), 7).unwrap()),
            json!({"method": "x", "req_id": 7})
        );
        assert_eq!(kraken.name(), "kraken");
    }

    #[test]
    fn batching_rules() {
        let kraken = Kraken::new();
        let t = |c: &str, s: Option<&str>| {
            let topic = Topic::new(c);
            match s {
                Some(s) => topic.symbol(s),
                None => topic,
            }
        };
        assert!(kraken.can_batch(&t("ticker", Some("A")), &t("ticker", Some("B"))));
        assert!(!kraken.can_batch(&t("ticker", Some("A")), &t("trade", Some("B"))));
        assert!(!kraken.can_batch(&t("ticker", Some("A")), &t("ticker", None)));
        assert!(!kraken.can_batch(&t("executions", None), &t("executions", None)));
        assert!(!kraken.can_batch(
            &t("book", Some("A")).param("depth", 10),
            &t("book", Some("B")).param("depth", 25)
        ));
        assert!(kraken.can_batch(
            &t("book", Some("A")).param("depth", 10),
            &t("book", Some("B")).param("depth", 10)
        ));
    }

    #[test]
    fn depth_defaults_to_ten_and_invalid_depths_are_not_kept() {
        let mut kraken = Kraken::new();
        for (depth, kept) in [
            (json!(1000), 1000),
            (json!(7), 10),
            (json!("25"), 10),
            (json!(-1), 10),
        ] {
            kraken.encode_subscribe(&[&Topic::new("book").symbol("A").param("depth", depth)], 1);
            assert_eq!(kraken.depth_of("A"), kept);
        }
        kraken.encode_subscribe(&[&Topic::new("book").symbol("B")], 1);
        assert_eq!(kraken.depth_of("B"), 10);
    }

    #[test]
    fn classifies_the_documented_frames() {
        let mut kraken = Kraken::new();
        assert_eq!(
            kraken.classify(r#"{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"BTC/USD"},"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z","req_id":1}"#),
            Inbound::Subscribed {
                req_id: Some(1),
                server_id: key("book:BTC/USD"),
                channel: Some(Cow::Borrowed("book")),
                symbol: Some(Cow::Borrowed("BTC/USD")),
            }
        );
        assert_eq!(
            kraken.classify(r#"{"method":"subscribe","result":{"channel":"ticker","snapshot":true,"symbol":"ETH/USD","warnings":["deprecated"]},"success":true,"req_id":42}"#),
            Inbound::Subscribed {
                req_id: Some(42),
                server_id: key("ticker:ETH/USD"),
                channel: Some(Cow::Borrowed("ticker")),
                symbol: Some(Cow::Borrowed("ETH/USD")),
            }
        );
        assert_eq!(
            kraken.classify(r#"{"error":"Currency pair not supported XBT/USD","method":"subscribe","success":false,"symbol":"XBT/USD","time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z","req_id":1}"#),
            Inbound::Rejected {
                req_id: Some(1),
                symbol: Some(Cow::Borrowed("XBT/USD")),
                error: VenueError::kraken("Currency pair not supported XBT/USD"),
            }
        );
        assert_eq!(
            kraken.classify(r#"{"error":"Rate limit for snapshot requests exceeded","method":"subscribe","success":false,"req_id":3}"#),
            Inbound::Rejected {
                req_id: Some(3),
                symbol: None,
                error: VenueError::kraken("Rate limit for snapshot requests exceeded"),
            }
        );
        assert_eq!(
            kraken.classify(r#"{"method":"unsubscribe","result":{"channel":"ticker","symbol":"BTC/USD"},"success":true,"req_id":43}"#),
            Inbound::Unsubscribed { req_id: Some(43) }
        );
        assert_eq!(
            kraken.classify(r#"{"error":"Subscription Not Found","method":"unsubscribe","success":false,"symbol":"BTC/USD","req_id":44}"#),
            Inbound::Rejected {
                req_id: Some(44),
                symbol: Some(Cow::Borrowed("BTC/USD")),
                error: VenueError::kraken("Subscription Not Found"),
            }
        );
        assert_eq!(
            kraken.classify(r#"{"method":"pong","req_id":101,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}"#),
            Inbound::Pong
        );
        assert_eq!(
            kraken.classify(r#"{"channel":"heartbeat"}"#),
            Inbound::Heartbeat
        );
        assert_eq!(
            kraken.classify(r#"{"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":13834774380200032777,"system":"online","version":"2.0.0"}]}"#),
            Inbound::Control
        );
        assert_eq!(
            routed(kraken.classify(
                r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","last":1.5}]}"#
            )),
            data("ticker:BTC/USD", None)
        );
        assert_eq!(
            routed(kraken.classify(r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":45283.5,"qty":0.1}],"asks":[],"checksum":3310070434,"timestamp":"2023-10-06T17:35:56.101010Z"}]}"#)),
            data("book:BTC/USD", None),
            "an update before any snapshot is routed, not verified"
        );
    }

    #[test]
    fn requests_private_channels_and_edges() {
        let mut kraken = Kraken::new();
        // Other methods answer requests.
        assert_eq!(
            kraken.classify(
                r#"{"method":"add_order","result":{"order_id":"X"},"success":true,"req_id":6}"#
            ),
            Inbound::Response {
                req_id: 6,
                error: None
            }
        );
        assert_eq!(
            kraken.classify(r#"{"method":"add_order","error":"EOrder:Insufficient funds","success":false,"req_id":7}"#),
            Inbound::Response {
                req_id: 7,
                error: Some(VenueError::kraken("EOrder:Insufficient funds")),
            }
        );
        assert_eq!(
            kraken.classify(r#"{"method":"add_order","success":true}"#),
            Inbound::Control
        );
        // An error with a req_id but no method (the venue's answer to garbage).
        assert_eq!(
            kraken.classify(r#"{"error":"EGeneral:Invalid arguments","success":false,"req_id":8}"#),
            Inbound::Response {
                req_id: 8,
                error: Some(VenueError::kraken("EGeneral:Invalid arguments")),
            }
        );
        assert_eq!(
            kraken.classify(r#"{"error":"EGeneral:Invalid arguments","success":false}"#),
            Inbound::Control
        );
        // Symbol-less private channels route by channel, with the top-level sequence,
        // even though execution items name a symbol.
        kraken.encode_subscribe(&[&Topic::new("executions").param("token", "t")], 1);
        assert_eq!(
            kraken.classify(r#"{"method":"subscribe","result":{"channel":"executions","snapshot":true},"success":true,"req_id":1}"#),
            Inbound::Subscribed {
                req_id: Some(1),
                server_id: key("executions"),
                channel: Some(Cow::Borrowed("executions")),
                symbol: None,
            }
        );
        assert_eq!(
            kraken.classify(r#"{"channel":"executions","type":"update","data":[{"order_id":"O","symbol":"BTC/USD","exec_type":"new"}],"sequence":12}"#),
            Inbound::Data {
                server_id: key("executions"),
                seq: Some(12),
                checksum: None,
                payload: Some(r#"[{"order_id":"O","symbol":"BTC/USD","exec_type":"new"}]"#),
            }
        );
        assert_eq!(
            kraken.classify(r#"{"channel":"balances","type":"snapshot","data":[{"asset":"BTC","balance":1.5}],"sequence":1}"#),
            Inbound::Data {
                server_id: key("balances"),
                seq: Some(1),
                checksum: None,
                payload: Some(r#"[{"asset":"BTC","balance":1.5}]"#),
            }
        );
        // Data that is not a list, or a list of non-objects: routed by channel.
        assert_eq!(
            routed(kraken.classify(
                r#"{"channel":"instrument","type":"snapshot","data":{"assets":[],"pairs":[]}}"#
            )),
            data("instrument", None)
        );
        assert_eq!(
            routed(kraken.classify(r#"{"channel":"ticker","data":[1,2]}"#)),
            data("ticker", None)
        );
        assert_eq!(
            routed(kraken.classify(r#"{"channel":"ticker","data":[]}"#)),
            data("ticker", None)
        );
        // Escaped symbols are decoded.
        assert_eq!(
            routed(kraken.classify(r#"{"channel":"ticker","data":[{"symbol":"BTC\/USD"}]}"#)),
            data("ticker:BTC/USD", None)
        );
        // A channel frame without data is informational.
        assert_eq!(
            kraken.classify(r#"{"channel":"ticker","type":"update"}"#),
            Inbound::Control
        );
        // Acks without a channel cannot be routed.
        assert!(matches!(
            kraken.classify(r#"{"method":"subscribe","success":true,"req_id":1}"#),
            Inbound::Invalid(_)
        ));
        // req_ids that are not u64 count as absent.
        assert_eq!(
            kraken.classify(r#"{"method":"unsubscribe","success":true,"req_id":-1}"#),
            Inbound::Unsubscribed { req_id: None }
        );
    }

    #[test]
    fn garbage_is_invalid_without_quoting_the_frame() {
        let mut kraken = Kraken::new();
        let secret = format!(
            r#"{{"channel":"ticker","data":[{{"symbol":"{}"}}]"#,
            "secret".repeat(10_000)
        );
        for frame in [
            "",
            "nope",
            "[]",
            "{",
            "{}",
            "42",
            r#"{"channel":"x"} x"#,
            r#"{"method":"a","method":"b"}"#,
            &secret,
        ] {
            match kraken.classify(frame) {
                Inbound::Invalid(ProtocolError::Unparseable(text)) => {
                    assert!(text.len() < 100 && !text.contains("secret"), "{text}")
                }
                other => panic!("{frame:.40}: {other:?}"),
            }
        }
    }

    #[test]
    fn updates_verify_and_a_mismatch_is_reported_once() {
        let mut kraken = with_book("BTC/USD", 10);
        let mut shadow = Book::new(10);
        shadow.apply_snapshot(&ASKS, &BIDS).unwrap();
        // Delete (qty 0, other text of the same price), replace, insert.
        type Levels<'a> = &'a [(&'a str, &'a str)];
        let updates: [(Levels<'_>, Levels<'_>); 3] = [
            (&[("45285.20", "0.00000000")], &[]),
            (&[], &[("45283.4", "2.00000000"), ("45283.45", "0.5")]),
            (&[("45285.0", "0.25000000")], &[("45276.6", "0")]),
        ];
        for (asks, bids) in updates {
            shadow.apply_update(asks, bids).unwrap();
            let frame = book_frame("update", "BTC/USD", asks, bids, Some(checksum_of(&shadow)));
            assert_eq!(routed(kraken.classify(&frame)), data("book:BTC/USD", None));
        }
        let book = kraken.book("BTC/USD").unwrap();
        assert_eq!(book.checksum(), shadow.checksum());
        assert_eq!(book.asks().next().map(|l| l.price()), Some("45285.0"));
        assert_eq!(
            book.bids().take(3).map(|l| l.price()).collect::<Vec<_>>(),
            ["45283.5", "45283.45", "45283.4"]
        );
        assert_eq!(book.bids().len(), 10);

        // A wrong checksum is reported, and the book is dropped...
        let expected = shadow.checksum().wrapping_add(1);
        let frame = book_frame(
            "update",
            "BTC/USD",
            &[("45300.0", "1.0")],
            &[],
            Some(expected),
        );
        shadow.apply_update(&[("45300.0", "1.0")], &[]).unwrap();
        assert_eq!(
            routed(kraken.classify(&frame)),
            data(
                "book:BTC/USD",
                Some(ChecksumMismatch {
                    expected,
                    computed: shadow.checksum()
                })
            )
        );
        assert!(kraken.book("BTC/USD").is_none());
        // ...so later updates go unverified until the fresh snapshot.
        let frame = book_frame("update", "BTC/USD", &[("45301.0", "1.0")], &[], Some(1));
        assert_eq!(routed(kraken.classify(&frame)), data("book:BTC/USD", None));
        let snapshot = book_frame("snapshot", "BTC/USD", &ASKS, &BIDS, Some(3_310_070_434));
        assert_eq!(
            routed(kraken.classify(&snapshot)),
            data("book:BTC/USD", None)
        );
        assert_eq!(
            kraken.book("BTC/USD").map(Book::checksum),
            Some(3_310_070_434)
        );
        // A snapshot with a wrong checksum is a mismatch too.
        let snapshot = book_frame("snapshot", "BTC/USD", &ASKS, &BIDS, Some(5));
        assert_eq!(
            routed(kraken.classify(&snapshot)),
            data(
                "book:BTC/USD",
                Some(ChecksumMismatch {
                    expected: 5,
                    computed: 3_310_070_434
                })
            )
        );
    }

    #[test]
    fn books_are_truncated_to_the_subscribed_depth() {
        let mut kraken = with_book("BTC/USD", 10);
        // A better ask pushes the tenth one out; the venue sends no delete for it.
        let mut asks = ASKS.to_vec();
        asks.insert(0, ("45285.1", "1.0"));
        asks.truncate(10);
        let frame = book_frame(
            "update",
            "BTC/USD",
            &[("45285.1", "1.0")],
            &[],
            Some(checksum_levels(&asks, &BIDS)),
        );
        assert_eq!(routed(kraken.classify(&frame)), data("book:BTC/USD", None));
        assert_eq!(kraken.book("BTC/USD").map(|b| b.asks().len()), Some(10));
        // Deleting the best ask does not bring the truncated one back.
        asks.remove(0);
        let frame = book_frame(
            "update",
            "BTC/USD",
            &[("45285.1", "0")],
            &[],
            Some(checksum_levels(&asks, &BIDS)),
        );
        assert_eq!(routed(kraken.classify(&frame)), data("book:BTC/USD", None));
        assert_eq!(kraken.book("BTC/USD").map(|b| b.asks().len()), Some(9));

        // Depth 25 keeps more than the ten levels the checksum covers.
        let mut kraken = with_book("ETH/USD", 25);
        let frame = book_frame(
            "update",
            "ETH/USD",
            &[("45400.0", "1.0")],
            &[],
            Some(3_310_070_434),
        );
        assert_eq!(routed(kraken.classify(&frame)), data("book:ETH/USD", None));
        assert_eq!(
            kraken.book("ETH/USD").map(|b| (b.depth(), b.asks().len())),
            Some((25, 11))
        );
    }

    #[test]
    fn unapplicable_book_frames_are_mismatches_and_drop_the_book() {
        let bad_updates = [
            book_frame("update", "BTC/USD", &[("1e5", "1")], &[], Some(7)),
            book_frame("update", "BTC/USD", &[("-1", "1")], &[], Some(7)),
            book_frame("update", "BTC/USD", &[], &[("45283.5", "\"abc\"")], Some(7)),
            book_frame("update", "BTC/USD", &[("\"\"", "1")], &[], Some(7)),
            book_frame("update", "BTC/USD", &[(&"9".repeat(10_000), "1")], &[], Some(7)),
            r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","asks":[{"price":1}],"bids":[],"checksum":7}]}"#.to_owned(),
            r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","asks":null,"checksum":7}]}"#.to_owned(),
            r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","asks":[1],"bids":[],"checksum":7}]}"#.to_owned(),
        ];
        for frame in &bad_updates {
            let mut kraken = with_book("BTC/USD", 10);
            assert_eq!(
                routed(kraken.classify(frame)),
                data(
                    "book:BTC/USD",
                    Some(ChecksumMismatch {
                        expected: 7,
                        computed: 3_310_070_434
                    })
                ),
                "{frame:.120}"
            );
            assert!(kraken.book("BTC/USD").is_none());
            // Without a book the same frame is only routed.
            assert_eq!(routed(kraken.classify(frame)), data("book:BTC/USD", None));
        }
        // A checksum that is not a u32.
        for checksum in ["-1", "4294967296", "1.5", "\"x\"", "null"] {
            let mut kraken = with_book("BTC/USD", 10);
            let frame = format!(
                r#"{{"channel":"book","type":"update","data":[{{"symbol":"BTC/USD","asks":[],"bids":[],"checksum":{checksum}}}]}}"#
            );
            let expected = if checksum == "null" {
                None
            } else {
                Some(ChecksumMismatch {
                    expected: 0,
                    computed: 3_310_070_434,
                })
            };
            assert_eq!(
                routed(kraken.classify(&frame)),
                data("book:BTC/USD", expected),
                "{checksum}"
            );
        }
        // A bad snapshot of an unsubscribed symbol is only routed...
        let mut kraken = Kraken::new();
        let frame = book_frame("snapshot", "BTC/USD", &[("\"abc\"", "1")], &[], Some(9));
        assert_eq!(routed(kraken.classify(&frame)), data("book:BTC/USD", None));
        // ...but once subscribed it is reported even without a book, so a fresh
        // one is requested.
        kraken.encode_subscribe(&[&Topic::new("book").symbol("BTC/USD")], 1);
        assert_eq!(
            routed(kraken.classify(&frame)),
            data(
                "book:BTC/USD",
                Some(ChecksumMismatch {
                    expected: 9,
                    computed: 0
                })
            )
        );
        assert!(kraken.book("BTC/USD").is_none());
        // Book data that is no list of items is routed by what can be read.
        assert_eq!(
            routed(kraken.classify(r#"{"channel":"book","type":"snapshot","data":{"x":1}}"#)),
            data("book", None)
        );
    }

    #[test]
    fn numbers_sent_as_strings_keep_their_text() {
        let mut kraken = Kraken::new();
        kraken.encode_subscribe(&[&Topic::new("book").symbol("A")], 1);
        let frame = r#"{"channel":"book","type":"snapshot","data":[{"symbol":"A","asks":[{"price":"0.0500","qty":"10.0"}],"bids":[{"price":0.04,"qty":0.5}],"checksum":"5001004"}]}"#;
        let expected = checksum_levels(&[("0.0500", "10.0")], &[("0.04", "0.5")]);
        assert_eq!(expected, crc32fast::hash(b"50010045"));
        let frame = frame.replace("\"5001004\"", &expected.to_string());
        assert_eq!(routed(kraken.classify(&frame)), data("book:A", None));
    }

    #[test]
    fn reset_and_forget_drop_books() {
        let mut kraken = with_book("BTC/USD", 10);
        kraken.encode_subscribe(&[&Topic::new("book").symbol("ETH/USD")], 2);
        let snapshot = book_frame("snapshot", "ETH/USD", &ASKS, &BIDS, Some(3_310_070_434));
        assert_eq!(
            routed(kraken.classify(&snapshot)),
            data("book:ETH/USD", None)
        );
        kraken.forget(&key("ticker:BTC/USD"));
        kraken.forget(&ServerId::Num(1));
        assert!(kraken.book("BTC/USD").is_some());
        kraken.forget(&key("book:BTC/USD"));
        assert!(kraken.book("BTC/USD").is_none());
        assert!(kraken.book("ETH/USD").is_some());
        // Unsubscribed: a stray snapshot still in flight builds no book again.
        let stray = book_frame("snapshot", "BTC/USD", &ASKS, &BIDS, Some(3_310_070_434));
        assert_eq!(routed(kraken.classify(&stray)), data("book:BTC/USD", None));
        assert!(kraken.book("BTC/USD").is_none());
        assert_eq!(kraken.book_count(), 1);
        kraken.reset();
        assert!(kraken.book("ETH/USD").is_none());
        // The depth survives: a snapshot after the replayed subscribe uses it.
        let mut kraken = with_book("BTC/USD", 25);
        kraken.reset();
        let snapshot = book_frame("snapshot", "BTC/USD", &ASKS, &BIDS, Some(3_310_070_434));
        kraken.classify(&snapshot);
        assert_eq!(kraken.book("BTC/USD").map(Book::depth), Some(25));
        // Subscribing again starts a fresh book with the next snapshot.
        kraken.encode_subscribe(
            &[&Topic::new("book").symbol("BTC/USD").param("depth", 100)],
            2,
        );
        assert!(kraken.book("BTC/USD").is_none());
        kraken.classify(&snapshot);
        assert_eq!(kraken.book("BTC/USD").map(Book::depth), Some(100));
    }

    #[test]
    fn routing_reuses_the_subscribed_server_id() {
        let mut kraken = Kraken::new();
        kraken.encode_subscribe(&[&Topic::new("ticker").symbol("BTC/USD")], 1);
        let Inbound::Data {
            server_id: ServerId::Key(a),
            ..
        } = kraken.classify(r#"{"channel":"ticker","data":[{"symbol":"BTC/USD"}]}"#)
        else {
            panic!("data")
        };
        let Inbound::Data {
            server_id: ServerId::Key(b),
            ..
        } = kraken.classify(r#"{"channel":"ticker","data":[{"symbol":"BTC/USD"}]}"#)
        else {
            panic!("data")
        };
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(
            Kraken::server_id("ticker", Some("BTC/USD")),
            ServerId::Key(a)
        );
    }

    #[test]
    fn snapshots_for_unsubscribed_symbols_allocate_no_book() {
        let mut kraken = with_book("BTC/USD", 10);
        kraken.encode_subscribe(&[&Topic::new("ticker").symbol("SOL/USD")], 2);
        assert_eq!(kraken.book_count(), 1);
        // 10,000 distinct symbols the client never subscribed on the book channel
        // (one of them subscribed on another channel): each frame is routed by
        // its key as before, but no book is built, verified or kept.
        let snapshots = (0..10_000)
            .map(|n| format!("S{n}/USD"))
            .chain(["SOL/USD".into()]);
        for symbol in snapshots {
            let snapshot = book_frame("snapshot", &symbol, &ASKS, &BIDS, Some(3_310_070_434));
            assert_eq!(
                routed(kraken.classify(&snapshot)),
                data(&format!("book:{symbol}"), None)
            );
            // A wrong checksum is not even looked at.
            let snapshot = book_frame("snapshot", &symbol, &ASKS, &BIDS, Some(1));
            assert_eq!(
                routed(kraken.classify(&snapshot)),
                data(&format!("book:{symbol}"), None)
            );
            let update = book_frame("update", &symbol, &[("1.0", "1.0")], &[], Some(1));
            assert_eq!(
                routed(kraken.classify(&update)),
                data(&format!("book:{symbol}"), None)
            );
            assert!(kraken.book(&symbol).is_none());
        }
        // Many unsubscribed symbols in one frame: none of them gets a book.
        let many: Vec<String> = (0..100)
            .map(|n| {
                format!(
                    r#"{{"symbol":"M{n}/USD","bids":{},"asks":{},"checksum":3310070434}}"#,
                    levels(&BIDS),
                    levels(&ASKS)
                )
            })
            .collect();
        let frame = format!(
            r#"{{"channel":"book","type":"snapshot","data":[{}]}}"#,
            many.join(",")
        );
        assert_eq!(routed(kraken.classify(&frame)), data("book:M0/USD", None));
        // Malformed snapshots of unsubscribed symbols report nothing either.
        let bad = book_frame("snapshot", "X/USD", &[("\"abc\"", "1")], &[], Some(9));
        assert_eq!(routed(kraken.classify(&bad)), data("book:X/USD", None));
        let bad = r#"{"channel":"book","type":"snapshot","data":[{"symbol":"X/USD","asks":null}]}"#;
        assert_eq!(routed(kraken.classify(bad)), data("book:X/USD", None));
        assert_eq!(kraken.book_count(), 1);

        // The subscribed symbol still has its book, verified as before.
        assert_eq!(
            kraken.book("BTC/USD").map(Book::checksum),
            Some(3_310_070_434)
        );
        let mut shadow = Book::new(10);
        shadow.apply_snapshot(&ASKS, &BIDS).unwrap();
        shadow.apply_update(&[("45285.0", "0.5")], &[]).unwrap();
        let update = book_frame(
            "update",
            "BTC/USD",
            &[("45285.0", "0.5")],
            &[],
            Some(shadow.checksum()),
        );
        assert_eq!(routed(kraken.classify(&update)), data("book:BTC/USD", None));
        let bad = book_frame("update", "BTC/USD", &[("45300.0", "1.0")], &[], Some(7));
        shadow.apply_update(&[("45300.0", "1.0")], &[]).unwrap();
        assert_eq!(
            routed(kraken.classify(&bad)),
            data(
                "book:BTC/USD",
                Some(ChecksumMismatch {
                    expected: 7,
                    computed: shadow.checksum()
                })
            )
        );
        assert_eq!(kraken.book_count(), 0);
        // A subscribe made later (one of the symbols above) gets its book.
        kraken.encode_subscribe(&[&Topic::new("book").symbol("S7/USD")], 3);
        let snapshot = book_frame("snapshot", "S7/USD", &ASKS, &BIDS, Some(3_310_070_434));
        assert_eq!(
            routed(kraken.classify(&snapshot)),
            data("book:S7/USD", None)
        );
        assert_eq!(kraken.book_count(), 1);
        assert_eq!(
            kraken.book("S7/USD").map(Book::checksum),
            Some(3_310_070_434)
        );
    }
}
