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
//! data frame as [`BookBreak::ChecksumMismatch`] (a frame the book cannot
//! apply, or a checksum that is not a `u32`, as [`BookBreak::Unusable`]), so
//! the supervisor can resubscribe for a fresh snapshot. Only symbols this adapter subscribed on the `book` channel
//! (and has not forgotten since) get a book: book frames for any other symbol
//! are routed but allocate nothing, so a peer cannot grow memory by naming
//! symbols.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{BookBreak, Inbound, Protocol, Request, ServerId, Topic};
use crate::error::ProtocolError;
use crate::token::Secret;
use frames::{first_head, parse_u32, BookItem, RawLevel};

pub mod book;
mod classify;
mod error;
mod frames;

pub use error::KRAKEN_LOCKOUT;

pub use book::{
    checksum_levels, cmp_price, Book, BookError, Level, NumberError, Side, CHECKSUM_LEVELS,
    MAX_NUMBER_LEN,
};

use crate::book::Verified;
pub use crate::book::{BookTop, BookView, BookViews};

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
    /// by `forget`), so routing a data frame does not allocate. Looked up for
    /// every data frame; Fx hashing, as the registry's routes: only the
    /// client's own subscribes add keys, so flooding resistance (SipHash) buys
    /// nothing here and cost ~200 instructions per frame.
    keys: FxHashMap<Box<str>, ServerId>,
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

    /// Entries in the per-subscription maps (for the churn tests).
    #[cfg(test)]
    fn map_entries(&self) -> usize {
        self.depths.len() + self.books.len() + self.symbolless.len() + self.keys.len()
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
            book_break: None,
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
                    book_break: verdict,
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
                let book_break = match symbol {
                    Some(symbol)
                        if self.books.contains_key(symbol)
                            || (snapshot && self.depths.contains_key(symbol)) =>
                    {
                        tracing::debug!("kraken: malformed book frame; dropping the book");
                        Some(self.drop_book(
                            symbol,
                            BookBreak::Unusable {
                                reason: "a book frame that is not a list of book items",
                            },
                        ))
                    }
                    _ => None,
                };
                Inbound::Data {
                    server_id: self.route(BOOK, symbol),
                    seq,
                    book_break,
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
    fn apply_book_item(&mut self, snapshot: bool, item: &BookItem<'_>) -> Option<BookBreak> {
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
                    return Some(self.drop_book(
                        symbol,
                        BookBreak::Unusable {
                            reason: "a book checksum that is not a 32-bit unsigned number",
                        },
                    ));
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
            (Err(error), _) => {
                tracing::debug!(%error, "kraken: book frame cannot be applied; dropping the book");
                let reason = error.reason();
                Some(self.drop_book(symbol, BookBreak::Unusable { reason }))
            }
            (Ok(computed), Some(expected)) if computed != expected => {
                // The book has diverged: drop it so that the updates still in
                // flight before the fresh snapshot are not reported again.
                self.books.remove(symbol);
                self.views.invalidate(Some(symbol));
                Some(BookBreak::ChecksumMismatch { expected, computed })
            }
            (Ok(computed), Some(_)) => {
                if let Some(book) = self.books.get(symbol) {
                    self.views.verified(
                        symbol,
                        book.asks().map(wire_level),
                        book.bids().map(wire_level),
                        Verified {
                            checksum: Some(i64::from(computed)),
                            snapshot,
                            venue_time: None,
                        },
                    );
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

    /// Drops the book of `symbol` (its view reads `None`), returning the
    /// break to report.
    fn drop_book(&mut self, symbol: &str, kind: BookBreak) -> BookBreak {
        self.views.invalidate(Some(symbol));
        self.books.remove(symbol);
        kind
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

impl Protocol for Kraken {
    fn book_views(&self) -> Option<BookViews> {
        Some(self.views.clone())
    }

    fn name(&self) -> &'static str {
        "kraken"
    }

    /// The venue time: the last data row's `timestamp` (RFC 3339).
    fn venue_time(&self, text: &str, payload: &str) -> Option<std::time::SystemTime> {
        super::venue_time::finder::kraken(text, payload)
    }

    /// The same search, run when a frame's venue time is asked.
    fn venue_time_finder(&self) -> Option<super::VenueTimeFinder> {
        Some(super::venue_time::finder::kraken)
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

    /// Non-book data frames take the single-pass scan (`protocol::scan::kraken`,
    /// not public); anything it does not answer takes the serde path, the
    /// reference.
    fn classify<'a>(&mut self, text: &'a str) -> Inbound<'a> {
        match self.classify_fast(text) {
            Some(inbound) => inbound,
            None => self.classify_serde(text),
        }
    }

    fn frame_kind<'a>(&self, text: &'a str) -> Option<&'a str> {
        classify::frame_kind(text)
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
            if !key.contains(':') {
                self.symbolless.remove(&**key);
            }
            self.keys.remove(&**key);
        }
    }

    fn forget_topic(&mut self, topic: &Topic) {
        let Some(id) = self
            .keys
            .get(topic_key_text(&mut self.scratch, topic))
            .cloned()
        else {
            return;
        };
        self.forget(&id);
    }
}

/// Writes the key text of `topic` into `scratch` and returns it.
fn topic_key_text<'s>(scratch: &'s mut String, topic: &Topic) -> &'s str {
    scratch.clear();
    write_key(scratch, topic.channel(), topic.symbol_name());
    scratch.as_str()
}

/// A level's (price, qty) wire text, for the book views.
fn wire_level(level: book::Level<'_>) -> (&str, &str) {
    (level.price(), level.qty())
}

#[cfg(test)]
mod tests;
