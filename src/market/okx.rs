//! OKX v5 `trades` and `tickers` rows (the payload is `data`, an array of rows).

use std::borrow::Cow;

use serde::Deserialize;

use super::{
    decode_first, decode_rows, optional_decimal, row_time, value_error, MarketData, Quote, Side,
    Trade,
};
use crate::protocol::venue_time;
use crate::{Decimal, DecodeError, Frame, Okx};

/// A `trades` row: `instId`, `px`, `sz`, `side` (the taker's), `ts` (Unix
/// ms, a string); `tradeId`, `count` are not kept.
#[derive(Deserialize)]
struct TradeRow<'a> {
    #[serde(rename = "instId", borrow)]
    inst_id: Cow<'a, str>,
    px: Decimal,
    sz: Decimal,
    #[serde(default, borrow)]
    side: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    ts: Option<Cow<'a, str>>,
}

/// A `tickers` row: `instId`, `bidPx`, `bidSz`, `askPx`, `askSz`, `ts`.
/// An empty side is `""`.
#[derive(Deserialize)]
struct TickerRow<'a> {
    #[serde(rename = "instId", borrow)]
    inst_id: Cow<'a, str>,
    #[serde(rename = "bidPx", default, deserialize_with = "optional_decimal")]
    bid_px: Option<Decimal>,
    #[serde(rename = "bidSz", default, deserialize_with = "optional_decimal")]
    bid_sz: Option<Decimal>,
    #[serde(rename = "askPx", default, deserialize_with = "optional_decimal")]
    ask_px: Option<Decimal>,
    #[serde(rename = "askSz", default, deserialize_with = "optional_decimal")]
    ask_sz: Option<Decimal>,
    #[serde(default, borrow)]
    ts: Option<Cow<'a, str>>,
}

const TRADE: &str = "okx trades";
const TICKER: &str = "okx tickers";

impl MarketData for Okx {
    fn trades(frame: &Frame) -> Result<Vec<Trade<'_>>, DecodeError> {
        let received = frame.received();
        decode_rows(frame, TRADE, |row: TradeRow<'_>| Trade {
            venue_time: row_time(frame, row.ts.as_deref(), venue_time::millis_text),
            side: Side::from_words(row.side.as_deref(), "buy", "sell"),
            symbol: row.inst_id,
            price: row.px,
            size: row.sz,
            received,
        })
    }

    fn quote(frame: &Frame) -> Result<Quote<'_>, DecodeError> {
        let row: TickerRow<'_> = decode_first(frame, TICKER)?
            .ok_or_else(|| value_error(frame, TICKER, "no ticker row in data"))?;
        Ok(Quote {
            venue_time: row_time(frame, row.ts.as_deref(), venue_time::millis_text),
            symbol: row.inst_id,
            bid_price: row.bid_px,
            bid_size: row.bid_sz,
            ask_price: row.ask_px,
            ask_size: row.ask_sz,
            received: frame.received(),
        })
    }
}
