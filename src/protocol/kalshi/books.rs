//! The books of a Kalshi adapter's `orderbook_delta` subscriptions, verified
//! by each `sid`'s `seq` and published to [`BookViews`].
//!
//! Rules, and why:
//! - Only subscriptions this adapter encoded on `orderbook_delta` get books,
//!   and only for the markets the topic names (its symbol, or its
//!   `market_tickers` / `market_ticker` params) and those the user adds: a
//!   peer naming other markets or sids allocates nothing. A subscribe waits
//!   here by request id until its `subscribed` ack names the `sid`.
//! - Markets added to a live book subscription with `update_subscription`
//!   `add_markets` (sent through `Client::request`, which encodes it here)
//!   are covered from the moment the request is sent, because their
//!   snapshots may come before the `ok`; a refusal (an `error` with the
//!   command's `id`) takes them back. `delete_markets` takes effect with its
//!   `ok`: the market's book goes and its view reads `None` (unless another
//!   subscription holds it), and later frames for it build nothing. A gap's
//!   `get_snapshot` names every covered market, added ones included. An
//!   `ok` that lists the subscription's markets (`msg.market_tickers`) is
//!   the truth: covered markets it leaves out lose their books (unless an
//!   add still waiting covers them), listed ones get covered. A subscription
//!   subscribed again (after a reconnect, a resubscribe) names the markets
//!   the venue held (`markets.rs` reports them to the session), so its
//!   books cover those. A command sent as raw text (`Client::send`) is not
//!   seen.
//! - At most [`MAX_MARKETS`] markets per subscription get books (topic and
//!   added together; the rest are logged and get none), and at most
//!   `MAX_PENDING` subscribes and market updates wait for their answer.
//! - Book frames that come before their subscription's ack (the session
//!   stashes them) are kept here too, bounded (`early.rs`), and applied when
//!   the ack names the sid: an early snapshot verifies its market. A break
//!   among them, or frames lost to the bounds, is signalled with the sid's
//!   next data frame (the session delivers its stashed copies without
//!   asking the adapter again).
//! - The sequence is checked the way the session checks it (`seq` one more
//!   than the last is in order, at or below it a duplicate that is skipped,
//!   above it a gap; the first frame under a sid starts the count; an `ok` or
//!   `error` that names the sid takes a number only when it is the next one),
//!   so a book and the subscription's stream agree on which frames count.
//! - A gap drops every book of that sid (`seq` counts per sid, so any of its
//!   markets may have missed a delta) and their views read `None`. The
//!   session reports the gap in-band (`Update::Gap`) and resyncs the
//!   subscription with `get_snapshot`; the snapshot that follows verifies
//!   that market's book again. A snapshot is the whole book, so it is
//!   applied even when it arrives after a gap.
//! - A break the session cannot see (a delta that takes a count below zero,
//!   a price or count that is not a decimal, a price outside `[0, 1]`, a
//!   ladder over its cap, a delta without a `seq`, an unreadable book frame)
//!   drops that market's book (a delta of a market with no book, readable or
//!   not, is only skipped: that market waits for its snapshot anyway) and is
//!   reported as a [`BookBreak::Unusable`] naming what was wrong, which
//!   resyncs the subscription.
//! - Deltas for a market with no book (before its snapshot, after a break)
//!   are skipped: nothing to apply them to until the snapshot.
//! - Views: YES bids are the bids (highest first); NO bids are offers to
//!   sell YES, so they are the asks at `1 - price` (lowest first), computed
//!   exactly; with `use_yes_price: true` on the topic the venue already sends
//!   NO levels in YES-leg prices and they are the asks as sent. The venue
//!   time is the delta's `ts_ms` (a snapshot has none); only the top levels
//!   a live view asks for are formatted, and nothing when none watches.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::Value;

use super::book::{KalshiBook, Outcome};
use super::early::{self, Claimed, EarlyFrames};
use super::updates::{self, Action, MarketUpdate};
use crate::book::{BookViews, Verified};
use crate::protocol::{BookBreak, Request, Topic};

/// The channel whose subscriptions carry books.
const ORDERBOOK_CHANNEL: &str = "orderbook_delta";

/// Subscribes waiting for their ack at most; the oldest is dropped beyond it
/// (acks come within the subscribe timeout, so only a venue that never acks
/// could fill it).
const MAX_PENDING: usize = 1024;

/// Markets one subscription holds books for at most (the topic's and those
/// added with `add_markets` together); markets past it get no book. Kalshi
/// has a per-subscription market limit (error 26) but publishes no number.
pub(super) const MAX_MARKETS: usize = 512;

/// What a book subscription covers.
#[derive(Debug, Clone, PartialEq)]
struct Covers {
    markets: BTreeSet<Box<str>>,
    /// `use_yes_price: true`: NO levels arrive in YES-leg prices.
    yes_priced: bool,
}

/// One live book subscription.
#[derive(Debug, Clone)]
struct SidBooks {
    covers: Covers,
    last_seq: Option<u64>,
    books: HashMap<Box<str>, KalshiBook>,
    /// A break the session has not been told of yet (an early frame that
    /// could not be applied, or early frames lost to the bounds): the next
    /// data frame of the sid carries it.
    owed_break: Option<BookBreak>,
}

/// How a sequence number relates to the last one (the session's rule).
enum Order {
    Next,
    Duplicate,
    Gap,
}

/// The book subscriptions of one adapter.
#[derive(Debug, Clone, Default)]
pub(super) struct Books {
    pending: Vec<(u64, Covers)>,
    sids: HashMap<u64, SidBooks>,
    /// Book frames of sids no ack has named yet, while a subscribe waits.
    early: EarlyFrames,
    /// `add_markets` / `delete_markets` requests waiting for their answer.
    updates: Vec<(u64, MarketUpdate)>,
    views: BookViews,
    scratch: String,
    ends: Vec<(usize, usize)>,
}

/// The fields of a book frame the book needs.
#[derive(Deserialize)]
struct BookFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow)]
    msg: BookMsg<'a>,
}

#[derive(Deserialize)]
struct BookMsg<'a> {
    #[serde(borrow)]
    market_ticker: &'a str,
    #[serde(default, borrow)]
    yes_dollars_fp: Vec<(&'a str, &'a str)>,
    #[serde(default, borrow)]
    no_dollars_fp: Vec<(&'a str, &'a str)>,
    #[serde(default, borrow)]
    price_dollars: Option<&'a str>,
    #[serde(default, borrow)]
    delta_fp: Option<&'a str>,
    #[serde(default, borrow)]
    side: Option<&'a str>,
}

/// The break for a book frame that cannot be read.
const UNREADABLE: BookBreak = BookBreak::Unusable {
    reason: "an unreadable book frame",
};

/// The break for book frames that came before their subscription's ack and
/// were dropped by the bounds of `early.rs`.
pub(super) const EARLY_FRAMES_LOST: BookBreak = BookBreak::Unusable {
    reason: "book frames before the subscription's ack were lost to the bound",
};

/// The markets a topic names: its symbol, or its `market_tickers` /
/// `market_ticker` params.
pub(super) fn topic_markets(topic: &Topic) -> Vec<&str> {
    match topic.symbol_name() {
        Some(symbol) => vec![symbol],
        None => match topic.params().get("market_tickers") {
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => match topic.params().get("market_ticker") {
                Some(Value::String(one)) => vec![one.as_str()],
                _ => Vec::new(),
            },
        },
    }
}

fn covers(topic: &Topic) -> Option<Covers> {
    if topic.channel() != ORDERBOOK_CHANNEL {
        return None;
    }
    let named = topic_markets(topic);
    if named.len() > MAX_MARKETS {
        tracing::warn!(
            markets = named.len(),
            cap = MAX_MARKETS,
            "kalshi: a book subscription names more markets than get books"
        );
    }
    let markets: BTreeSet<Box<str>> = named.into_iter().take(MAX_MARKETS).map(Box::from).collect();
    if markets.is_empty() {
        return None;
    }
    Some(Covers {
        markets,
        yes_priced: topic.params().get("use_yes_price") == Some(&Value::Bool(true)),
    })
}

impl Books {
    /// The views consumers read.
    pub(super) fn views(&self) -> BookViews {
        self.views.clone()
    }

    /// A subscribe of `topic` under `req_id` was encoded.
    pub(super) fn subscribing(&mut self, topic: &Topic, req_id: u64) {
        if let Some(covers) = covers(topic) {
            if self.pending.len() >= MAX_PENDING {
                self.pending.remove(0);
            }
            self.pending.push((req_id, covers));
        }
    }

    /// A subscribe was acknowledged with `sid`: returns the book frames that
    /// came for `sid` before the ack, for the caller to apply in order.
    pub(super) fn subscribed(&mut self, req_id: Option<u64>, sid: u64) -> Claimed {
        let claimed = self.early.claim(sid);
        let at = req_id.and_then(|req_id| self.pending.iter().position(|(id, _)| *id == req_id));
        let Some(at) = at else {
            // Not a book subscribe: what was held for the sid is nobody's.
            return Claimed::default();
        };
        let (_, covers) = self.pending.swap_remove(at);
        if self.pending.is_empty() {
            self.early.clear();
        }
        self.sids.insert(
            sid,
            SidBooks {
                covers,
                last_seq: None,
                books: HashMap::new(),
                owed_break: None,
            },
        );
        claimed
    }

    /// A data frame of `sid`, which no ack has named: held while a book
    /// subscribe waits (it may be that subscribe's first frame).
    pub(super) fn early(&mut self, sid: u64, text: &str) {
        if !self.pending.is_empty() && early::is_book_frame(text) {
            self.early.hold(sid, text);
        }
    }

    /// The next data frame of `sid` carries the break `kind`.
    pub(super) fn owe_break(&mut self, sid: u64, kind: BookBreak) {
        if let Some(entry) = self.sids.get_mut(&sid) {
            entry.owed_break = Some(kind);
        }
    }

    /// The markets whose books `sid` holds (the topic's and those added),
    /// or `None` when `sid` is not a book subscription.
    pub(super) fn markets(&self, sid: u64) -> Option<impl Iterator<Item = &str>> {
        let entry = self.sids.get(&sid)?;
        (!entry.covers.markets.is_empty()).then(|| entry.covers.markets.iter().map(|m| &**m))
    }

    /// The user sent `request` under `req_id`: an `add_markets` on a book
    /// subscription covers its markets from now on (their snapshots may come
    /// before the `ok`), undone if the venue refuses it; a `delete_markets`
    /// waits for the `ok`.
    pub(super) fn updating(&mut self, request: &Request, req_id: u64) {
        if self.sids.is_empty() {
            return;
        }
        let Some(mut update) = updates::market_update(request) else {
            return;
        };
        let Some(entry) = self.sids.get_mut(&update.sid) else {
            return;
        };
        if update.action == Action::Add {
            let mut added = Vec::new();
            for market in update.markets {
                if entry.covers.markets.contains(&market) {
                    continue;
                }
                if entry.covers.markets.len() >= MAX_MARKETS {
                    tracing::warn!(
                        sid = update.sid,
                        cap = MAX_MARKETS,
                        "kalshi: markets added past the cap get no book"
                    );
                    break;
                }
                entry.covers.markets.insert(market.clone());
                added.push(market);
            }
            update.markets = added;
        }
        if self.updates.len() >= MAX_PENDING {
            self.updates.remove(0);
        }
        self.updates.push((req_id, update));
    }

    /// The venue answered request `req_id`: `accepted` (an `ok`) or not.
    /// An `ok` listing the subscription's markets (`venue`) is the truth:
    /// covered markets it does not list lose their books (unless an add
    /// still waiting for its answer covers them), and listed ones not
    /// covered are covered (within the cap).
    pub(super) fn answered(
        &mut self,
        req_id: u64,
        accepted: bool,
        venue: Option<&BTreeSet<Box<str>>>,
    ) {
        let Some(at) = self.updates.iter().position(|(id, _)| *id == req_id) else {
            return;
        };
        let (_, update) = self.updates.remove(at);
        match (update.action, accepted) {
            (Action::Add, true) | (Action::Delete, false) => {}
            (Action::Add, false) | (Action::Delete, true) => {
                self.drop_markets(update.sid, &update.markets)
            }
        }
        if let (true, Some(venue)) = (accepted, venue) {
            self.reconcile(update.sid, venue);
        }
    }

    /// Makes `sid`'s covered markets the venue's list `venue`.
    fn reconcile(&mut self, sid: u64, venue: &BTreeSet<Box<str>>) {
        let Some(entry) = self.sids.get_mut(&sid) else {
            return;
        };
        let waiting = |market: &str| {
            self.updates.iter().any(|(_, u)| {
                u.sid == sid && u.action == Action::Add && u.markets.iter().any(|m| &**m == market)
            })
        };
        let stale: Vec<Box<str>> = entry
            .covers
            .markets
            .iter()
            .filter(|market| !venue.contains(*market) && !waiting(market.as_ref()))
            .cloned()
            .collect();
        for market in venue {
            if entry.covers.markets.len() >= MAX_MARKETS {
                break;
            }
            entry.covers.markets.insert(market.clone());
        }
        self.drop_markets(sid, &stale);
    }

    /// `sid` no longer covers `markets`: their books go, and a market's view
    /// reads `None` unless another live subscription still holds its book.
    fn drop_markets(&mut self, sid: u64, markets: &[Box<str>]) {
        let Some(entry) = self.sids.get_mut(&sid) else {
            return;
        };
        for market in markets {
            entry.covers.markets.remove(market);
            entry.books.remove(market);
        }
        for market in markets {
            if !self.sids.values().any(|e| e.books.contains_key(market)) {
                self.views.invalidate(Some(market));
            }
        }
    }

    /// A control frame of `sid` took number `seq` (recorded only when next).
    pub(super) fn sequenced(&mut self, sid: u64, seq: u64) {
        if let Some(entry) = self.sids.get_mut(&sid) {
            if entry
                .last_seq
                .is_some_and(|last| last.checked_add(1) == Some(seq))
            {
                entry.last_seq = Some(seq);
            }
        }
    }

    /// Whether `sid` carries books (the only frames [`Books::data`] reads).
    pub(super) fn has(&self, sid: u64) -> bool {
        // No hashing at all on a connection without book subscriptions.
        !self.sids.is_empty() && self.sids.contains_key(&sid)
    }

    /// A data frame of book subscription `sid`: applies it, publishes the
    /// view, and returns the break signal when the session must resync
    /// (this frame's, or one owed since the ack).
    pub(super) fn data(
        &mut self,
        sid: u64,
        seq: Option<u64>,
        text: &str,
        payload: Option<&str>,
    ) -> Option<BookBreak> {
        let verdict = self.apply(sid, seq, text, payload);
        let owed = self
            .sids
            .get_mut(&sid)
            .and_then(|entry| entry.owed_break.take());
        verdict.or(owed)
    }

    fn apply(
        &mut self,
        sid: u64,
        seq: Option<u64>,
        text: &str,
        payload: Option<&str>,
    ) -> Option<BookBreak> {
        let entry = self.sids.get_mut(&sid)?;
        let order = match (seq, entry.last_seq) {
            (None, _) | (Some(_), None) => Order::Next,
            (Some(seq), Some(last)) if last.checked_add(1) == Some(seq) => Order::Next,
            (Some(seq), Some(last)) if seq <= last => Order::Duplicate,
            (Some(_), Some(_)) => Order::Gap,
        };
        match order {
            Order::Duplicate => return None,
            Order::Gap => {
                tracing::debug!(sid, "kalshi: seq gap; the sid's books are dropped");
                for market in entry.books.keys() {
                    self.views.invalidate(Some(market));
                }
                entry.books.clear();
            }
            Order::Next => {}
        }
        if seq.is_some() {
            entry.last_seq = seq;
        }
        let Ok(frame) = serde_json::from_str::<BookFrame<'_>>(text) else {
            return Self::unreadable(entry, &self.views, text);
        };
        let Some(market) = entry.covers.markets.get(frame.msg.market_ticker) else {
            // A market the subscription does not name: nothing allocated.
            return None;
        };
        let venue_time = payload.and_then(crate::protocol::venue_time::kalshi);
        let snapshot = match frame.kind {
            "orderbook_snapshot" => true,
            "orderbook_delta" => false,
            _ => return None,
        };
        let applied: Result<(), &'static str> = if snapshot {
            let mut book = KalshiBook::default();
            match book.apply_snapshot(&frame.msg.yes_dollars_fp, &frame.msg.no_dollars_fp) {
                Ok(()) => {
                    entry.books.insert(market.clone(), book);
                    Ok(())
                }
                Err(error) => Err(error.reason()),
            }
        } else {
            let Some(book) = entry.books.get_mut(&**market) else {
                // No snapshot yet (or dropped at a break): skipped until one.
                return None;
            };
            let side = frame.msg.side.and_then(Outcome::parse);
            match (seq, side, frame.msg.price_dollars, frame.msg.delta_fp) {
                (None, ..) => Err("a delta without a seq"),
                (Some(_), Some(side), Some(price), Some(delta)) => {
                    book.apply_delta(side, price, delta).map_err(|e| e.reason())
                }
                _ => Err("a delta without a yes/no side, a price or a delta"),
            }
        };
        if let Err(error) = applied {
            tracing::debug!(
                sid,
                error,
                "kalshi: book frame cannot be applied; dropping the book"
            );
            entry.books.remove(&**market);
            self.views.invalidate(Some(market));
            return Some(BookBreak::Unusable { reason: error });
        }
        if let (Some(book), Some(levels)) = (entry.books.get(&**market), self.views.levels(market))
        {
            publish(
                &self.views,
                &mut self.scratch,
                &mut self.ends,
                market,
                book,
                levels,
                entry.covers.yes_priced,
                Verified {
                    checksum: None,
                    snapshot,
                    venue_time,
                },
            );
        }
        None
    }

    /// A book frame serde cannot read: the market it names (or, if none can
    /// be read, every market of the sid) loses its book.
    fn unreadable(entry: &mut SidBooks, views: &BookViews, text: &str) -> Option<BookBreak> {
        #[derive(Deserialize)]
        struct Named<'a> {
            #[serde(default, borrow, rename = "type")]
            kind: Option<&'a str>,
            #[serde(default, borrow)]
            msg: Option<NamedMsg<'a>>,
        }
        #[derive(Deserialize)]
        struct NamedMsg<'a> {
            #[serde(default, borrow)]
            market_ticker: Option<&'a str>,
        }
        let named = serde_json::from_str::<Named<'_>>(text).ok();
        let kind = named.as_ref().and_then(|n| n.kind);
        if !matches!(kind, Some("orderbook_snapshot" | "orderbook_delta")) && named.is_some() {
            // Another message type on the sid: not a book frame.
            return None;
        }
        let market = named
            .and_then(|n| n.msg)
            .and_then(|m| m.market_ticker)
            .filter(|m| entry.covers.markets.contains(*m));
        tracing::debug!("kalshi: unreadable book frame; dropping the book");
        let dropped = match market {
            Some(market) => {
                views.invalidate(Some(market));
                entry.books.remove(market).is_some()
            }
            None => {
                for market in entry.books.keys() {
                    views.invalidate(Some(market));
                }
                let held = !entry.books.is_empty();
                entry.books.clear();
                held
            }
        };
        // A snapshot that cannot be read leaves a book missing: ask again. A
        // delta is a break only for a book that was held (one with no book
        // waits for its snapshot anyway).
        (dropped || kind == Some("orderbook_snapshot")).then_some(UNREADABLE)
    }

    /// The subscription `sid` ended: its books go, and a market's view reads
    /// `None` unless another live subscription still holds its book.
    pub(super) fn forget(&mut self, sid: u64) {
        self.updates.retain(|(_, update)| update.sid != sid);
        let Some(gone) = self.sids.remove(&sid) else {
            return;
        };
        for market in gone.books.keys() {
            let held = self.sids.values().any(|e| e.books.contains_key(market));
            if !held {
                self.views.invalidate(Some(market));
            }
        }
    }

    /// A subscribe of `topic` ended without a sid.
    pub(super) fn forget_topic(&mut self, topic: &Topic) {
        if let Some(covers) = covers(topic) {
            self.pending.retain(|(_, c)| *c != covers);
            if self.pending.is_empty() {
                self.early.clear();
            }
        }
    }

    /// The connection was lost: every book and waiting subscribe goes.
    pub(super) fn reset(&mut self) {
        self.pending.clear();
        self.sids.clear();
        self.early.clear();
        self.updates.clear();
        self.views.invalidate(None);
    }

    /// Entries held (tests of the bounds).
    #[cfg(test)]
    pub(super) fn entries(&self) -> (usize, usize, usize) {
        let books = self.sids.values().map(|e| e.books.len()).sum();
        (self.pending.len(), self.sids.len(), books)
    }
}

/// Formats the top `levels` of `book` once and publishes them.
#[allow(clippy::too_many_arguments)]
fn publish(
    views: &BookViews,
    scratch: &mut String,
    ends: &mut Vec<(usize, usize)>,
    market: &str,
    book: &KalshiBook,
    levels: usize,
    yes_priced: bool,
    verified: Verified,
) {
    scratch.clear();
    ends.clear();
    let mut asks = 0;
    for (price, count) in book.asks(yes_priced).take(levels) {
        let _ = write!(scratch, "{price}");
        let price_end = scratch.len();
        let _ = write!(scratch, "{count}");
        ends.push((price_end, scratch.len()));
        asks += 1;
    }
    for (price, count) in book.bids().take(levels) {
        let _ = write!(scratch, "{price}");
        let price_end = scratch.len();
        let _ = write!(scratch, "{count}");
        ends.push((price_end, scratch.len()));
    }
    let text = scratch.as_str();
    let level = |i: usize| -> (&str, &str) {
        let start = i
            .checked_sub(1)
            .and_then(|p| ends.get(p))
            .map_or(0, |e| e.1);
        let (price_end, end) = ends.get(i).copied().unwrap_or((start, start));
        (
            text.get(start..price_end).unwrap_or(""),
            text.get(price_end..end).unwrap_or(""),
        )
    };
    views.verified(
        market,
        (0..asks).map(level),
        (asks..ends.len()).map(level),
        verified,
    );
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::json;

    use super::*;
    use crate::protocol::Kalshi;
    use crate::protocol::{Inbound, Protocol, ServerId};

    const SNAPSHOT: &str = r#"{"type":"orderbook_snapshot","sid":7,"seq":1,"msg":{"market_ticker":"A","market_id":"m","yes_dollars_fp":[["0.0800","300.00"],["0.2200","333.00"]],"no_dollars_fp":[["0.5400","20.00"],["0.5600","146.00"]]}}"#;

    fn delta(seq: u64, price: &str, delta: &str, side: &str) -> String {
        json!({"type": "orderbook_delta", "sid": 7, "seq": seq, "msg": {
            "market_ticker": "A", "market_id": "m", "price_dollars": price,
            "delta_fp": delta, "side": side, "ts_ms": 1_700_000_000_000u64 + seq}})
        .to_string()
    }

    /// A Kalshi adapter with `topic` subscribed as sid 7.
    fn subscribed(topic: Topic) -> Kalshi {
        let mut kalshi = Kalshi::new();
        kalshi.encode_subscribe(&[&topic], 1);
        kalshi.classify(
            r#"{"id":1,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":7}}"#,
        );
        kalshi
    }

    fn book_break(inbound: Inbound<'_>) -> Option<BookBreak> {
        match inbound {
            Inbound::Data { book_break, .. } => book_break,
            other => panic!("{other:?}"),
        }
    }

    type Levels = Vec<(String, String)>;

    fn levels(view: &crate::book::BookView) -> (Levels, Levels) {
        let top = view.latest().expect("verified");
        let own = |(p, q): (&str, &str)| (p.to_owned(), q.to_owned());
        (top.asks().map(own).collect(), top.bids().map(own).collect())
    }

    fn pairs(levels: &[(&str, &str)]) -> Levels {
        levels
            .iter()
            .map(|(p, q)| ((*p).to_owned(), (*q).to_owned()))
            .collect()
    }

    #[test]
    fn the_view_is_the_book_after_snapshot_and_deltas() {
        let mut kalshi = subscribed(Topic::new("orderbook_delta").symbol("A"));
        let view = kalshi.book_views().watch("A", 10);
        assert_eq!(book_break(kalshi.classify(SNAPSHOT)), None);
        let top = view.latest().unwrap();
        assert_eq!(
            (top.updates(), top.venue_time(), top.checksum()),
            (1, None, None)
        );
        // YES bids are the bids; NO bids at 0.56 and 0.54 are YES asks at 0.44 and 0.46.
        assert_eq!(
            levels(&view),
            (
                pairs(&[("0.4400", "146.00"), ("0.4600", "20.00")]),
                pairs(&[("0.2200", "333.00"), ("0.0800", "300.00")])
            )
        );
        for (seq, price, d, side) in [
            (2, "0.0800", "-100.00", "yes"),
            (3, "0.2200", "-333.00", "yes"),
            (4, "0.5500", "0.50", "no"),
            (5, "0.3000", "7.25", "yes"),
        ] {
            assert_eq!(
                book_break(kalshi.classify(&delta(seq, price, d, side))),
                None
            );
        }
        let top = view.latest().unwrap();
        assert_eq!(top.updates(), 5);
        assert_eq!(
            top.venue_time(),
            UNIX_EPOCH.checked_add(Duration::from_millis(1_700_000_000_005))
        );
        assert_eq!(
            levels(&view),
            (
                pairs(&[
                    ("0.4400", "146.00"),
                    ("0.4500", "0.50"),
                    ("0.4600", "20.00")
                ]),
                pairs(&[("0.3000", "7.25"), ("0.0800", "200.00")])
            )
        );
        assert_eq!(
            top.best_bid(),
            Some((
                crate::decimal::Decimal::parse("0.3").unwrap(),
                crate::decimal::Decimal::parse("7.25").unwrap()
            ))
        );
        // Only the levels a view asks for are published.
        let narrow = subscribed(Topic::new("orderbook_delta").symbol("A"));
        let mut narrow = narrow;
        let one = narrow.book_views().watch("A", 1);
        narrow.classify(SNAPSHOT);
        assert_eq!(
            levels(&one),
            (
                pairs(&[("0.4400", "146.00")]),
                pairs(&[("0.2200", "333.00")])
            )
        );
    }

    #[test]
    fn a_gap_unverifies_until_the_next_snapshot() {
        let mut kalshi = subscribed(Topic::new("orderbook_delta").symbol("A"));
        let view = kalshi.book_views().watch("A", 10);
        kalshi.classify(SNAPSHOT);
        kalshi.classify(&delta(2, "0.0800", "-100.00", "yes"));
        assert!(view.is_verified());
        // seq 3 and 4 are lost. The session signals the gap and resyncs; the
        // adapter drops the book (no second signal).
        assert_eq!(
            book_break(kalshi.classify(&delta(5, "0.0800", "1", "yes"))),
            None
        );
        assert!(!view.is_verified());
        assert_eq!(
            book_break(kalshi.classify(&delta(6, "0.0800", "1", "yes"))),
            None
        );
        assert!(
            !view.is_verified(),
            "a delta without a book verifies nothing"
        );
        let fresh = SNAPSHOT
            .replace(r#""seq":1"#, r#""seq":7"#)
            .replace(r#"["0.0800","300.00"],"#, "");
        assert_eq!(book_break(kalshi.classify(&fresh)), None);
        let top = view.latest().unwrap();
        assert_eq!(top.updates(), 1);
        assert_eq!(levels(&view).1, pairs(&[("0.2200", "333.00")]));
        kalshi.classify(&delta(8, "0.2200", "-3.00", "yes"));
        assert_eq!(levels(&view).1, pairs(&[("0.2200", "330.00")]));
    }

    #[test]
    fn a_duplicate_is_not_applied_twice_and_an_ok_takes_its_number() {
        let mut kalshi = subscribed(Topic::new("orderbook_delta").symbol("A"));
        let view = kalshi.book_views().watch("A", 10);
        kalshi.classify(SNAPSHOT);
        kalshi.classify(&delta(2, "0.0800", "-100.00", "yes"));
        kalshi.classify(&delta(2, "0.0800", "-100.00", "yes"));
        assert_eq!(levels(&view).1[1], ("0.0800".into(), "200.00".into()));
        // An `ok` with the sid's next seq: the delta after it is in order.
        assert!(matches!(
            kalshi.classify(r#"{"id":5,"sid":7,"seq":3,"type":"ok","msg":{}}"#),
            Inbound::Sequenced { .. }
        ));
        kalshi.classify(&delta(4, "0.0800", "1.00", "yes"));
        assert_eq!(levels(&view).1[1], ("0.0800".into(), "201.00".into()));
    }

    #[test]
    fn a_count_below_zero_is_a_break_that_resyncs() {
        let mut kalshi = subscribed(Topic::new("orderbook_delta").symbol("A"));
        let view = kalshi.book_views().watch("A", 10);
        kalshi.classify(SNAPSHOT);
        assert_eq!(
            book_break(kalshi.classify(&delta(2, "0.0800", "-300.01", "yes"))),
            Some(BookBreak::Unusable {
                reason: "a delta takes a count below zero"
            })
        );
        assert!(!view.is_verified());
        // Until the snapshot, later deltas are skipped without another signal.
        assert_eq!(
            book_break(kalshi.classify(&delta(3, "0.0800", "-1", "yes"))),
            None
        );
        for (bad, reason) in [
            (
                delta(4, "1.5", "1", "yes"),
                "a price is outside [0, 1] dollars",
            ),
            (
                delta(5, "0.5", "1", "maybe"),
                "a delta without a yes/no side, a price or a delta",
            ),
            (
                delta(6, "0.5", "one", "no"),
                "a price or count is not a decimal number",
            ),
        ] {
            let mut kalshi = subscribed(Topic::new("orderbook_delta").symbol("A"));
            kalshi.classify(SNAPSHOT);
            let bad = bad
                .replace(r#""seq":4"#, r#""seq":2"#)
                .replace(r#""seq":5"#, r#""seq":2"#)
                .replace(r#""seq":6"#, r#""seq":2"#);
            assert_eq!(
                book_break(kalshi.classify(&bad)),
                Some(BookBreak::Unusable { reason }),
                "{bad}"
            );
        }
        let again = SNAPSHOT.replace(r#""seq":1"#, r#""seq":4"#);
        kalshi.classify(&again);
        assert!(view.is_verified());
        // An unreadable book frame is a break too.
        let garbled = r#"{"type":"orderbook_delta","sid":7,"seq":5,"msg":{"market_ticker":"A","price_dollars":1}}"#;
        assert_eq!(book_break(kalshi.classify(garbled)), Some(UNREADABLE));
        assert!(!view.is_verified());
    }

    #[test]
    fn an_unreadable_frame_breaks_only_a_held_book_or_a_snapshot() {
        let mut kalshi = subscribed(Topic::new("orderbook_delta").symbol("A"));
        let nameless = r#"{"type":"orderbook_delta","sid":7,"seq":1,"msg":{"price_dollars":"0.1","delta_fp":"1","side":"yes"}}"#;
        assert_eq!(book_break(kalshi.classify(nameless)), None, "no book held");
        let bad_snapshot = r#"{"type":"orderbook_snapshot","sid":7,"seq":2,"msg":{"market_ticker":"A","yes_dollars_fp":[["0.1"]]}}"#;
        assert_eq!(book_break(kalshi.classify(bad_snapshot)), Some(UNREADABLE));
        kalshi.classify(&SNAPSHOT.replace(r#""seq":1"#, r#""seq":3"#));
        let nameless = nameless.replace(r#""seq":1"#, r#""seq":4"#);
        assert_eq!(book_break(kalshi.classify(&nameless)), Some(UNREADABLE));
        // Another message type on the sid is not a book frame.
        let other = r#"{"type":"something_new","sid":7,"seq":5,"msg":{}}"#;
        assert_eq!(book_break(kalshi.classify(other)), None);
    }

    #[test]
    fn yes_priced_no_levels_are_the_asks_as_sent() {
        let topic = Topic::new("orderbook_delta")
            .symbol("A")
            .param("use_yes_price", true);
        let mut kalshi = subscribed(topic);
        let view = kalshi.book_views().watch("A", 10);
        let snapshot = SNAPSHOT.replace(
            r#"[["0.5400","20.00"],["0.5600","146.00"]]"#,
            r#"[["0.4600","20.00"],["0.4400","146.00"]]"#,
        );
        kalshi.classify(&snapshot);
        assert_eq!(
            levels(&view).0,
            pairs(&[("0.4400", "146.00"), ("0.4600", "20.00")])
        );
    }

    #[test]
    fn only_named_markets_of_book_subscriptions_hold_state() {
        let topic = Topic::new("orderbook_delta").param("market_tickers", json!(["A", "B"]));
        let mut kalshi = subscribed(topic.clone());
        kalshi.classify(SNAPSHOT);
        kalshi.classify(
            &SNAPSHOT
                .replace(r#""A""#, r#""B""#)
                .replace(r#""seq":1"#, r#""seq":2"#),
        );
        for (seq, market) in (3..).zip(["C", "D", "E"]) {
            let other = SNAPSHOT
                .replace(r#""A""#, &format!("{market:?}"))
                .replace(r#""seq":1"#, &format!(r#""seq":{seq}"#));
            assert_eq!(book_break(kalshi.classify(&other)), None);
        }
        // Another sid, and a channel without books: nothing.
        kalshi.classify(&SNAPSHOT.replace(r#""sid":7"#, r#""sid":8"#));
        kalshi.encode_subscribe(&[&Topic::new("ticker").symbol("A")], 2);
        assert_eq!(kalshi.books.entries(), (0, 1, 2));
        // Ended without a sid, forgotten, reset: nothing left.
        kalshi.encode_subscribe(&[&topic], 3);
        assert_eq!(kalshi.books.entries(), (1, 1, 2));
        kalshi.forget_topic(&topic);
        assert_eq!(kalshi.books.entries(), (0, 1, 2));
        kalshi.forget(&ServerId::Num(7));
        assert_eq!(kalshi.books.entries(), (0, 0, 0));
        let mut kalshi = subscribed(Topic::new("orderbook_delta").symbol("A"));
        let view = kalshi.book_views().watch("A", 10);
        kalshi.classify(SNAPSHOT);
        kalshi.reset();
        assert!(!view.is_verified());
        assert_eq!(kalshi.books.entries(), (0, 0, 0));
        // Waiting subscribes are bounded.
        for id in 0..(MAX_PENDING as u64 + 10) {
            kalshi.encode_subscribe(&[&Topic::new("orderbook_delta").symbol("A")], id);
        }
        assert_eq!(kalshi.books.entries().0, MAX_PENDING);
    }

    fn snapshot_of(market: &str, seq: u64) -> String {
        SNAPSHOT
            .replace(r#""A""#, &format!("{market:?}"))
            .replace(r#""seq":1"#, &format!(r#""seq":{seq}"#))
    }

    fn update(kalshi: &mut Kalshi, req_id: u64, action: &str, markets: &[&str]) {
        let request = crate::protocol::Request::new(
            "update_subscription",
            Some(json!({"sids": [7], "market_tickers": markets, "action": action})),
        );
        kalshi.encode_request(&request, req_id).unwrap();
    }

    #[test]
    fn added_markets_get_books_and_deleted_ones_drop_them() {
        let mut kalshi = subscribed(Topic::new("orderbook_delta").symbol("A"));
        let views = kalshi.book_views();
        let (a, b) = (views.watch("A", 10), views.watch("B", 10));
        kalshi.classify(SNAPSHOT);
        // Before the add, B's frames on the sid build nothing.
        assert_eq!(book_break(kalshi.classify(&snapshot_of("B", 2))), None);
        assert!(!b.is_verified());
        update(&mut kalshi, 2, "add_markets", &["B"]);
        // The venue's `ok` (the full list, the sid's next seq), then B's snapshot.
        kalshi
            .classify(r#"{"id":2,"sid":7,"seq":3,"type":"ok","msg":{"market_tickers":["A","B"]}}"#);
        assert_eq!(book_break(kalshi.classify(&snapshot_of("B", 4))), None);
        assert!(b.is_verified());
        let delta_b = delta(5, "0.0800", "-100.00", "yes").replace(r#""A""#, r#""B""#);
        assert_eq!(book_break(kalshi.classify(&delta_b)), None);
        assert_eq!(levels(&b).1[1], ("0.0800".into(), "200.00".into()));
        assert_eq!(kalshi.books.entries(), (0, 1, 2));
        // A gap's get_snapshot names the added market too.
        assert_eq!(
            kalshi
                .encode_resync(
                    &Topic::new("orderbook_delta").symbol("A"),
                    &ServerId::Num(7),
                    9
                )
                .map(
                    |f| serde_json::from_str::<Value>(&f).unwrap()["params"]["market_tickers"]
                        .clone()
                ),
            Some(json!(["A", "B"]))
        );
        // A delete takes effect with its `ok`: until then B's book stands.
        update(&mut kalshi, 3, "delete_markets", &["B"]);
        assert!(b.is_verified());
        kalshi.classify(r#"{"id":3,"sid":7,"seq":6,"type":"ok","msg":{"market_tickers":["A"]}}"#);
        assert!(!b.is_verified());
        assert!(a.is_verified(), "the other market keeps its book");
        assert_eq!(kalshi.books.entries(), (0, 1, 1));
        assert_eq!(book_break(kalshi.classify(&snapshot_of("B", 7))), None);
        assert!(!b.is_verified(), "a deleted market builds nothing");
        // A refused delete changes nothing.
        update(&mut kalshi, 4, "delete_markets", &["A"]);
        kalshi.classify(
            r#"{"id":4,"type":"error","msg":{"code":7,"msg":"Unknown subscription ID"}}"#,
        );
        assert!(a.is_verified());
    }

    #[test]
    fn the_oks_market_list_is_the_truth() {
        let mut kalshi = subscribed(Topic::new("orderbook_delta").symbol("A"));
        let views = kalshi.book_views();
        let (a, c) = (views.watch("A", 10), views.watch("C", 10));
        kalshi.classify(SNAPSHOT);
        update(&mut kalshi, 2, "add_markets", &["B"]);
        update(&mut kalshi, 3, "add_markets", &["D"]);
        // The venue holds A no more and C besides (say another client of
        // the account changed it): the `ok` says so. D's add still waits,
        // so D stays covered.
        kalshi
            .classify(r#"{"id":2,"sid":7,"seq":2,"type":"ok","msg":{"market_tickers":["B","C"]}}"#);
        assert!(
            !a.is_verified(),
            "a market the venue does not list loses its book"
        );
        assert_eq!(
            kalshi.books.markets(7).map(|m| m.collect::<Vec<_>>()),
            Some(vec!["B", "C", "D"])
        );
        assert_eq!(book_break(kalshi.classify(&snapshot_of("C", 3))), None);
        assert!(c.is_verified());
        // And the next subscribe names the venue's list (then D's).
        let changed = kalshi.take_changed_topics();
        assert_eq!(
            changed
                .iter()
                .map(|(sid, t)| (sid.clone(), t.params()["market_tickers"].clone()))
                .collect::<Vec<_>>(),
            [(ServerId::Num(7), json!(["B", "C"]))]
        );
        kalshi.classify(
            r#"{"id":3,"sid":7,"seq":4,"type":"ok","msg":{"market_tickers":["B","C","D"]}}"#,
        );
        let changed = kalshi.take_changed_topics();
        assert_eq!(
            changed[0].1.params()["market_tickers"],
            json!(["B", "C", "D"])
        );
        assert!(kalshi.take_changed_topics().is_empty());
    }

    #[test]
    fn a_refused_add_takes_its_markets_back() {
        let mut kalshi = subscribed(Topic::new("orderbook_delta").symbol("A"));
        let c = kalshi.book_views().watch("C", 10);
        kalshi.classify(SNAPSHOT);
        update(&mut kalshi, 2, "add_markets", &["C", "A"]);
        // C's snapshot may come before the answer.
        kalshi.classify(&snapshot_of("C", 2));
        assert!(c.is_verified());
        kalshi.classify(r#"{"id":2,"sid":7,"seq":3,"type":"error","msg":{"code":26,"msg":"Subscription market limit exceeded"}}"#);
        assert!(!c.is_verified());
        // A was covered before the add and stays.
        assert_eq!(kalshi.books.entries(), (0, 1, 1));
        assert_eq!(
            kalshi.books.markets(7).map(Iterator::collect::<Vec<_>>),
            Some(vec!["A"])
        );
        // Requests that are not market updates of a book sid change nothing.
        let request =
            |params: Value| crate::protocol::Request::new("update_subscription", Some(params));
        for params in [
            json!({"sids": [8], "market_tickers": ["D"], "action": "add_markets"}),
            json!({"sids": [7], "market_tickers": ["D"], "action": "get_snapshot"}),
        ] {
            kalshi.encode_request(&request(params), 5).unwrap();
        }
        kalshi.classify(r#"{"id":5,"type":"ok"}"#);
        assert_eq!(
            kalshi.books.markets(7).map(Iterator::collect::<Vec<_>>),
            Some(vec!["A"])
        );
    }

    #[test]
    fn markets_per_subscription_are_capped() {
        let mut kalshi = subscribed(Topic::new("orderbook_delta").symbol("A"));
        let many: Vec<String> = (0..MAX_MARKETS + 10).map(|n| format!("M{n}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        update(&mut kalshi, 2, "add_markets", &many);
        assert_eq!(
            kalshi.books.markets(7).map(Iterator::count),
            Some(MAX_MARKETS)
        );
        // A topic that names too many is capped the same way.
        let topic = Topic::new("orderbook_delta").param("market_tickers", json!(many));
        assert_eq!(covers(&topic).map(|c| c.markets.len()), Some(MAX_MARKETS));
        // Pending updates are bounded.
        for id in 0..(MAX_PENDING as u64 + 10) {
            update(&mut kalshi, 100 + id, "delete_markets", &["A"]);
        }
        assert_eq!(kalshi.books.updates.len(), MAX_PENDING);
    }

    #[test]
    fn a_snapshot_before_its_ack_verifies_the_market() {
        let mut kalshi = Kalshi::new();
        let view = kalshi.book_views().watch("A", 10);
        kalshi.encode_subscribe(&[&Topic::new("orderbook_delta").symbol("A")], 1);
        // The snapshot and a delta come first; the session stashes them.
        assert_eq!(book_break(kalshi.classify(SNAPSHOT)), None);
        assert_eq!(
            book_break(kalshi.classify(&delta(2, "0.0800", "-100.00", "yes"))),
            None
        );
        assert!(!view.is_verified());
        kalshi.classify(
            r#"{"id":1,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":7}}"#,
        );
        assert!(view.is_verified(), "the ack applies what came before it");
        assert_eq!(levels(&view).1[1], ("0.0800".into(), "200.00".into()));
        assert_eq!(view.latest().unwrap().updates(), 2);
        // The stream goes on from there.
        assert_eq!(
            book_break(kalshi.classify(&delta(3, "0.0800", "1.00", "yes"))),
            None
        );
        assert_eq!(levels(&view).1[1], ("0.0800".into(), "201.00".into()));
        assert_eq!(kalshi.books.early.held(), (0, 0, 0));
    }

    #[test]
    fn an_early_frame_that_breaks_the_book_is_signalled_with_the_next_one() {
        let mut kalshi = Kalshi::new();
        let view = kalshi.book_views().watch("A", 10);
        kalshi.encode_subscribe(&[&Topic::new("orderbook_delta").symbol("A")], 1);
        kalshi.classify(SNAPSHOT);
        kalshi.classify(&delta(2, "0.0800", "-300.01", "yes"));
        kalshi.classify(
            r#"{"id":1,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":7}}"#,
        );
        assert!(!view.is_verified());
        assert_eq!(
            book_break(kalshi.classify(&delta(3, "0.0800", "1.00", "yes"))),
            Some(BookBreak::Unusable {
                reason: "a delta takes a count below zero"
            }),
            "owed since the ack, as found"
        );
        assert_eq!(
            book_break(kalshi.classify(&delta(4, "0.0800", "1.00", "yes"))),
            None
        );
    }

    #[test]
    fn only_book_frames_are_held_and_only_while_a_book_subscribe_waits() {
        let mut kalshi = Kalshi::new();
        // Nothing waits: nothing is held.
        kalshi.classify(SNAPSHOT);
        assert_eq!(kalshi.books.early.held().0, 0);
        kalshi.encode_subscribe(&[&Topic::new("orderbook_delta").symbol("A")], 1);
        kalshi.classify(r#"{"type":"ticker","sid":8,"seq":1,"msg":{}}"#);
        assert_eq!(kalshi.books.early.held().0, 0, "not a book frame");
        kalshi.classify(&SNAPSHOT.replace(r#""sid":7"#, r#""sid":8"#));
        kalshi.classify(SNAPSHOT);
        assert_eq!(kalshi.books.early.held().0, 2);
        // Sid 8's ack is not a book subscribe's: its frames go.
        kalshi.classify(r#"{"id":5,"type":"subscribed","msg":{"channel":"ticker","sid":8}}"#);
        assert_eq!(kalshi.books.early.held().0, 1);
        // The book subscribe ends without a sid: nothing waits, nothing is held.
        kalshi.forget_topic(&Topic::new("orderbook_delta").symbol("A"));
        assert_eq!(kalshi.books.early.held(), (0, 0, 0));
        kalshi.encode_subscribe(&[&Topic::new("orderbook_delta").symbol("A")], 2);
        kalshi.classify(SNAPSHOT);
        kalshi.reset();
        assert_eq!(kalshi.books.early.held(), (0, 0, 0));
    }

    #[test]
    fn a_replaced_subscription_keeps_the_view_its_successor_verified() {
        let topic = Topic::new("orderbook_delta").symbol("A");
        let mut kalshi = subscribed(topic.clone());
        let view = kalshi.book_views().watch("A", 10);
        kalshi.classify(SNAPSHOT);
        // Resubscribed as sid 9, whose snapshot arrives before sid 7 is forgotten.
        kalshi.encode_subscribe(&[&topic], 2);
        kalshi.classify(
            r#"{"id":2,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":9}}"#,
        );
        kalshi.classify(&SNAPSHOT.replace(r#""sid":7"#, r#""sid":9"#));
        kalshi.forget(&ServerId::Num(7));
        assert!(view.is_verified());
        kalshi.forget(&ServerId::Num(9));
        assert!(!view.is_verified());
    }
}
