//! The `update_subscription` requests that change a book subscription's
//! markets: `add_markets` and `delete_markets`, sent by the user through
//! [`Client::request`](crate::Client::request).
//!
//! The spec's command: `{"id":N,"cmd":"update_subscription","params":{..}}`
//! with exactly one sid (`sid`, or `sids` with one element), the markets as
//! `market_tickers` (a list) or `market_ticker` (one), and `action`. It is
//! answered by an `ok` naming the sid (with the sid's next `seq`) or by an
//! `error` carrying the command's `id`. Anything else (no action of these
//! two, no single sid, no market) changes no book.

use serde_json::Value;

use crate::protocol::Request;

/// The two actions that change the markets of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// `add_markets`.
    Add,
    /// `delete_markets`.
    Delete,
}

/// An `add_markets` or `delete_markets` request.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MarketUpdate {
    pub(super) sid: u64,
    pub(super) action: Action,
    pub(super) markets: Vec<Box<str>>,
}

/// Reads `request` as a market update, or `None` when it is not one.
pub(super) fn market_update(request: &Request) -> Option<MarketUpdate> {
    if request.method != "update_subscription" {
        return None;
    }
    let params = request.params.as_ref()?;
    let action = match params.get("action")?.as_str()? {
        "add_markets" => Action::Add,
        "delete_markets" => Action::Delete,
        _ => return None,
    };
    let sid = match (params.get("sids"), params.get("sid")) {
        (Some(Value::Array(sids)), None) => match &sids[..] {
            [one] => one.as_u64()?,
            _ => return None,
        },
        (None, Some(one)) => one.as_u64()?,
        _ => return None,
    };
    let markets: Vec<Box<str>> = match params.get("market_tickers") {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(Box::from)
            .collect(),
        _ => match params.get("market_ticker") {
            Some(Value::String(one)) => vec![one.as_str().into()],
            _ => Vec::new(),
        },
    };
    if markets.is_empty() {
        return None;
    }
    Some(MarketUpdate {
        sid,
        action,
        markets,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(method: &str, params: Value) -> Option<MarketUpdate> {
        market_update(&Request::new(method, Some(params)))
    }

    #[test]
    fn the_documented_forms_are_read() {
        // The spec's examples: `sids` with one element, and a single `sid`.
        assert_eq!(
            read(
                "update_subscription",
                json!({"sids": [456], "market_tickers": ["NEW-MARKET-1", "NEW-MARKET-2"], "action": "add_markets"})
            ),
            Some(MarketUpdate {
                sid: 456,
                action: Action::Add,
                markets: vec!["NEW-MARKET-1".into(), "NEW-MARKET-2".into()],
            })
        );
        assert_eq!(
            read(
                "update_subscription",
                json!({"sid": 456, "market_ticker": "M", "action": "delete_markets"})
            ),
            Some(MarketUpdate {
                sid: 456,
                action: Action::Delete,
                markets: vec!["M".into()],
            })
        );
    }

    #[test]
    fn anything_else_is_not_a_market_update() {
        let add = |params: Value| read("update_subscription", params);
        for params in [
            json!({"sids": [1], "market_tickers": ["A"], "action": "get_snapshot"}),
            json!({"sids": [1], "market_tickers": ["A"]}),
            json!({"sids": [1, 2], "market_tickers": ["A"], "action": "add_markets"}),
            json!({"sids": [], "market_tickers": ["A"], "action": "add_markets"}),
            json!({"sids": [1], "sid": 1, "market_tickers": ["A"], "action": "add_markets"}),
            json!({"sid": "1", "market_tickers": ["A"], "action": "add_markets"}),
            json!({"market_tickers": ["A"], "action": "add_markets"}),
            json!({"sid": 1, "market_tickers": [], "action": "add_markets"}),
            json!({"sid": 1, "market_tickers": [7], "action": "add_markets"}),
            json!({"sid": 1, "action": "add_markets"}),
            json!("add_markets"),
        ] {
            assert_eq!(add(params.clone()), None, "{params}");
        }
        assert_eq!(
            read(
                "subscribe",
                json!({"sid": 1, "market_tickers": ["A"], "action": "add_markets"})
            ),
            None
        );
        assert_eq!(
            market_update(&Request::new("update_subscription", None)),
            None
        );
    }
}
