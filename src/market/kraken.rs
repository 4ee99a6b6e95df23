//! Kraken v2 `trade` and `ticker` rows (the payload is `data`, an array of rows).

use std::borrow::Cow;

use serde::Deserialize;

use super::{
    decode_first, decode_rows, optional_decimal, row_time, value_error, MarketData, Quote, Side,
    Trade,
};
use crate::protocol::venue_time;
use crate::{Decimal, DecodeError, Frame, Kraken};

/// A `trade` row: `symbol`, `side` (the taker's), `price`, `qty`,
/// `timestamp` (RFC 3339); `ord_type` and `trade_id` are not kept.
#[derive(Deserialize)]
struct TradeRow<'a> {
    #[serde(borrow)]
    symbol: Cow<'a, str>,
    #[serde(default, borrow)]
    side: Option<Cow<'a, str>>,
    price: Decimal,
    qty: Decimal,
    #[serde(default, borrow)]
    timestamp: Option<Cow<'a, str>>,
}

/// A `ticker` row: `symbol`, `bid`, `bid_qty`, `ask`, `ask_qty`, `timestamp`.
#[derive(Deserialize)]
struct TickerRow<'a> {
    #[serde(borrow)]
    symbol: Cow<'a, str>,
    #[serde(default, deserialize_with = "optional_decimal")]
    bid: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_decimal")]
    bid_qty: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_decimal")]
    ask: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_decimal")]
    ask_qty: Option<Decimal>,
    #[serde(default, borrow)]
    timestamp: Option<Cow<'a, str>>,
}

const TRADE: &str = "kraken trade";
const TICKER: &str = "kraken ticker";

impl MarketData for Kraken {
    fn trades(frame: &Frame) -> Result<Vec<Trade<'_>>, DecodeError> {
        let received = frame.received();
        decode_rows(frame, TRADE, |row: TradeRow<'_>| Trade {
            venue_time: row_time(frame, row.timestamp.as_deref(), venue_time::rfc3339),
            side: Side::from_words(row.side.as_deref(), "buy", "sell"),
            symbol: row.symbol,
            price: row.price,
            size: row.qty,
            received,
        })
    }

    fn quote(frame: &Frame) -> Result<Quote<'_>, DecodeError> {
        let row: TickerRow<'_> = decode_first(frame, TICKER)?
            .ok_or_else(|| value_error(frame, TICKER, "no ticker row in data"))?;
        Ok(Quote {
            venue_time: row_time(frame, row.timestamp.as_deref(), venue_time::rfc3339),
            symbol: row.symbol,
            bid_price: row.bid,
            bid_size: row.bid_qty,
            ask_price: row.ask,
            ask_size: row.ask_qty,
            received: frame.received(),
        })
    }
}
