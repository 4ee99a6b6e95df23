//! The markets each live Kalshi subscription holds on the venue, so a
//! subscribe sent again (the replay after a reconnect, a resubscribe, the
//! venue ending the subscription) names the markets the user added with
//! `update_subscription` `add_markets` and not those removed with
//! `delete_markets` (both sent through [`Client::request`](crate::Client::request)).
//!
//! Rules, and why:
//! - Only subscriptions whose topic names markets (its symbol, or its
//!   `market_tickers` / `market_ticker` params) are tracked: a topic naming
//!   none covers every market, and there is nothing to add to it.
//! - An update changes the set only once the venue accepts it (its `ok`): a
//!   refused add must not be subscribed on the next connection. The `ok`'s
//!   `msg.market_tickers`, "Full list of market tickers after update", is the
//!   truth when present; without it (`skip_ticker_ack`) the set is the old one
//!   plus the added, minus the deleted markets.
//! - A changed set is reported as a topic
//!   ([`Protocol::take_changed_topics`](crate::Protocol::take_changed_topics)):
//!   the subscribed topic's channel and params, its markets as
//!   `market_tickers` (sorted), no symbol (Kalshi's `encode_subscribe` would
//!   put a symbol over `market_tickers`). The session subscribes that topic
//!   from then on. A set emptied by deletes is reported as such: what the
//!   venue answers to a subscribe naming no market decides then.
//! - Only requests are seen: a command sent as raw text (`Client::send`)
//!   never reaches the adapter, so markets it adds are neither tracked here
//!   nor given books, and a reconnect drops them.
//! - An update answered while its subscription is being replaced (a resync
//!   by resubscribe in flight) names a sid the session no longer routes:
//!   the session ignores the change, and the new subscription has the
//!   markets it was subscribed with.
//! - Bounds: at most `MAX_PENDING` subscribes and updates wait for their
//!   answer (the oldest go first), one entry per live sid, at most
//!   [`MAX_TRACKED`] markets per subscription (more is logged and cut: the
//!   list comes from the venue, and a frame is all it takes to send one).

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::books::topic_markets;
use super::updates::{self, Action, MarketUpdate};
use crate::protocol::{Request, Topic};

/// Subscribes and updates waiting for their answer at most (as `books.rs`).
const MAX_PENDING: usize = 1024;

/// Markets tracked per subscription at most. Kalshi publishes no
/// per-subscription limit (error 26 has no number); this only bounds what a
/// peer's `ok` can make us keep.
pub(super) const MAX_TRACKED: usize = 10_000;

/// One live subscription that names markets.
#[derive(Debug, Clone)]
struct Live {
    /// The topic its subscribe was encoded from.
    topic: Topic,
    markets: BTreeSet<Box<str>>,
}

/// The market sets of an adapter's live subscriptions.
#[derive(Debug, Clone, Default)]
pub(super) struct Markets {
    pending: Vec<(u64, Topic)>,
    live: HashMap<u64, Live>,
    updates: Vec<(u64, MarketUpdate)>,
    changed: Vec<(u64, Topic)>,
}

/// The `ok`'s `msg.market_tickers`, if it carries a list of strings.
pub(super) fn venue_markets(text: &str) -> Option<BTreeSet<Box<str>>> {
    #[derive(Deserialize)]
    struct Frame<'a> {
        #[serde(default, borrow)]
        msg: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Msg {
        market_tickers: Vec<Value>,
    }
    let frame: Frame<'_> = serde_json::from_str(text).ok()?;
    let msg: Msg = serde_json::from_str(frame.msg?.get()).ok()?;
    if msg.market_tickers.len() > MAX_TRACKED {
        tracing::warn!(
            markets = msg.market_tickers.len(),
            cap = MAX_TRACKED,
            "kalshi: an ok lists more markets than are kept"
        );
    }
    msg.market_tickers
        .iter()
        .take(MAX_TRACKED)
        .map(|m| m.as_str().map(Box::from))
        .collect()
}

/// `topic` naming `markets` instead of its own.
fn topic_with(topic: &Topic, markets: &BTreeSet<Box<str>>) -> Topic {
    let mut out = Topic::new(topic.channel());
    for (key, value) in topic.params() {
        if key != "market_ticker" && key != "market_tickers" {
            out = out.param(key.clone(), value.clone());
        }
    }
    let list: Vec<&str> = markets.iter().map(|m| &**m).collect();
    out.param("market_tickers", list)
}

fn push_bounded<T>(list: &mut Vec<T>, item: T) {
    if list.len() >= MAX_PENDING {
        list.remove(0);
    }
    list.push(item);
}

impl Markets {
    /// A subscribe of `topic` under `req_id` was encoded.
    pub(super) fn subscribing(&mut self, topic: &Topic, req_id: u64) {
        if !topic_markets(topic).is_empty() {
            push_bounded(&mut self.pending, (req_id, topic.clone()));
        }
    }

    /// The ack of `req_id` named `sid`.
    pub(super) fn subscribed(&mut self, req_id: Option<u64>, sid: u64) {
        let at = req_id.and_then(|req_id| self.pending.iter().position(|(id, _)| *id == req_id));
        let Some(at) = at else {
            return;
        };
        let (_, topic) = self.pending.swap_remove(at);
        let markets = topic_markets(&topic)
            .into_iter()
            .take(MAX_TRACKED)
            .map(Box::from)
            .collect();
        self.live.insert(sid, Live { topic, markets });
    }

    /// The user sent `request` under `req_id`: an `add_markets` or
    /// `delete_markets` on a tracked subscription waits for its answer.
    pub(super) fn updating(&mut self, request: &Request, req_id: u64) {
        if self.live.is_empty() {
            return;
        }
        if let Some(update) = updates::market_update(request) {
            if self.live.contains_key(&update.sid) {
                push_bounded(&mut self.updates, (req_id, update));
            }
        }
    }

    /// Whether request `req_id` is an update waiting for its answer.
    pub(super) fn waits_for(&self, req_id: u64) -> bool {
        self.updates.iter().any(|(id, _)| *id == req_id)
    }

    /// The venue answered request `req_id`: an accepted update changes the
    /// subscription's markets to `venue` (the `ok`'s list) when given, else
    /// to the old ones with the update applied.
    pub(super) fn answered(
        &mut self,
        req_id: u64,
        accepted: bool,
        venue: Option<BTreeSet<Box<str>>>,
    ) {
        let Some(at) = self.updates.iter().position(|(id, _)| *id == req_id) else {
            return;
        };
        let (_, update) = self.updates.remove(at);
        let Some(live) = self.live.get_mut(&update.sid).filter(|_| accepted) else {
            return;
        };
        let markets = venue.unwrap_or_else(|| {
            let mut markets = live.markets.clone();
            match update.action {
                Action::Add => markets.extend(update.markets),
                Action::Delete => {
                    for market in &update.markets {
                        markets.remove(market);
                    }
                }
            }
            markets
        });
        if markets == live.markets {
            return;
        }
        live.markets = markets.into_iter().take(MAX_TRACKED).collect();
        let topic = topic_with(&live.topic, &live.markets);
        self.changed.retain(|(sid, _)| *sid != update.sid);
        push_bounded(&mut self.changed, (update.sid, topic));
    }

    /// The subscriptions whose markets changed since the last call, with
    /// the topic each must be subscribed with from now on.
    pub(super) fn take_changed(&mut self) -> Vec<(u64, Topic)> {
        std::mem::take(&mut self.changed)
    }

    /// `sid` ended or is being replaced (its successor's subscribe brings
    /// the topic again).
    pub(super) fn forget(&mut self, sid: u64) {
        self.live.remove(&sid);
        self.updates.retain(|(_, update)| update.sid != sid);
    }

    /// The subscribe of `topic` ended without an ack.
    pub(super) fn forget_topic(&mut self, topic: &Topic) {
        self.pending.retain(|(_, pending)| pending != topic);
    }

    /// The connection was lost: every sid is gone.
    pub(super) fn reset(&mut self) {
        self.pending.clear();
        self.live.clear();
        self.updates.clear();
        self.changed.clear();
    }

    /// Entries held (pending subscribes, live sids, pending updates), for
    /// the bound tests.
    #[cfg(test)]
    pub(super) fn entries(&self) -> (usize, usize, usize) {
        (self.pending.len(), self.live.len(), self.updates.len())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn update(markets: &mut Markets, req_id: u64, sid: u64, action: &str, list: &[&str]) {
        let request = Request::new(
            "update_subscription",
            Some(json!({"sid": sid, "market_tickers": list, "action": action})),
        );
        markets.updating(&request, req_id);
    }

    fn tickers(topic: &Topic) -> Value {
        topic.params()["market_tickers"].clone()
    }

    fn set(list: &[&str]) -> Option<BTreeSet<Box<str>>> {
        Some(list.iter().map(|m| Box::from(*m)).collect())
    }

    #[test]
    fn an_accepted_update_changes_the_topic_and_a_refused_one_does_not() {
        let mut markets = Markets::default();
        let topic = Topic::new("orderbook_delta")
            .symbol("A")
            .param("use_yes_price", true);
        markets.subscribing(&topic, 1);
        markets.subscribed(Some(1), 7);
        // Refused: nothing changes.
        update(&mut markets, 2, 7, "add_markets", &["X"]);
        markets.answered(2, false, None);
        assert!(markets.take_changed().is_empty());
        // Accepted without the venue's list: topic's + added.
        update(&mut markets, 3, 7, "add_markets", &["C", "B"]);
        markets.answered(3, true, None);
        let changed = markets.take_changed();
        let [(7, topic)] = &changed[..] else {
            panic!("{changed:?}")
        };
        assert_eq!(
            (topic.channel(), topic.symbol_name(), tickers(topic)),
            ("orderbook_delta", None, json!(["A", "B", "C"]))
        );
        assert_eq!(topic.params()["use_yes_price"], json!(true));
        // The venue's list wins over our arithmetic.
        update(&mut markets, 4, 7, "delete_markets", &["B"]);
        markets.answered(4, true, set(&["A", "C", "Z"]));
        let changed = markets.take_changed();
        assert_eq!(tickers(&changed[0].1), json!(["A", "C", "Z"]));
        // Nothing new: nothing reported.
        update(&mut markets, 5, 7, "add_markets", &["A"]);
        markets.answered(5, true, None);
        assert!(markets.take_changed().is_empty());
        // A replay of the changed topic is tracked with its markets.
        markets.reset();
        let replayed = changed[0].1.clone();
        markets.subscribing(&replayed, 9);
        markets.subscribed(Some(9), 8);
        update(&mut markets, 10, 8, "delete_markets", &["Z"]);
        markets.answered(10, true, None);
        assert_eq!(tickers(&markets.take_changed()[0].1), json!(["A", "C"]));
    }

    #[test]
    fn only_subscriptions_naming_markets_are_tracked_and_state_is_bounded() {
        let mut markets = Markets::default();
        markets.subscribing(&Topic::new("fill"), 1);
        markets.subscribed(Some(1), 1);
        update(&mut markets, 2, 1, "add_markets", &["A"]);
        assert_eq!(markets.entries(), (0, 0, 0));
        // Unknown sids and unanswered acks hold nothing.
        markets.subscribing(&Topic::new("ticker").symbol("A"), 3);
        markets.subscribed(Some(3), 2);
        update(&mut markets, 4, 99, "add_markets", &["B"]);
        assert_eq!(markets.entries(), (0, 1, 0));
        for req_id in 0..(MAX_PENDING as u64 + 10) {
            update(&mut markets, 100 + req_id, 2, "add_markets", &["B"]);
            markets.subscribing(&Topic::new("ticker").symbol("Q"), 5000 + req_id);
        }
        assert_eq!(markets.entries(), (MAX_PENDING, 1, MAX_PENDING));
        markets.forget_topic(&Topic::new("ticker").symbol("Q"));
        markets.forget(2);
        assert_eq!(markets.entries(), (0, 0, 0));
    }

    #[test]
    fn the_oks_list_is_read_only_when_it_is_a_list_of_strings() {
        assert_eq!(
            venue_markets(
                r#"{"id":1,"sid":2,"seq":3,"type":"ok","msg":{"market_tickers":["B","A"]}}"#
            ),
            set(&["A", "B"])
        );
        for text in [
            r#"{"id":1,"type":"ok"}"#,
            r#"{"id":1,"type":"ok","msg":[{"channel":"ticker","sid":1}]}"#,
            r#"{"id":1,"type":"ok","msg":{"market_tickers":[1]}}"#,
            r#"{"id":1,"type":"ok","msg":{}}"#,
            "not json",
        ] {
            assert_eq!(venue_markets(text), None, "{text}");
        }
    }
}
