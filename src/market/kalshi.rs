//! Kalshi `trade` and `ticker` messages (the payload is `msg`), in the
//! fixed-point fields Kalshi sends since its 2026 migration: prices in
//! dollars (`*_dollars`), counts as `*_fp` strings. The time is the frame's
//! ([`Frame::venue_time`]: `ts_ms`, else the deprecated `ts`).

use std::borrow::Cow;

use serde::Deserialize;

use super::{decode, optional_decimal, MarketData, Quote, Side, Trade};
use crate::{Decimal, DecodeError, Frame, Kalshi};

/// A `trade` msg: `market_ticker`, `yes_price_dollars`, `count_fp`,
/// `taker_side` (`yes`/`no`); `trade_id`, `no_price_dollars` are not kept.
#[derive(Deserialize)]
struct TradeMsg<'a> {
    #[serde(borrow)]
    market_ticker: Cow<'a, str>,
    yes_price_dollars: Decimal,
    count_fp: Decimal,
    #[serde(default, borrow)]
    taker_side: Option<Cow<'a, str>>,
}

/// A `ticker` msg: `market_ticker`, `yes_bid_dollars`, `yes_ask_dollars`,
/// and the sizes `yes_bid_size_fp`/`yes_ask_size_fp` when sent.
#[derive(Deserialize)]
struct TickerMsg<'a> {
    #[serde(borrow)]
    market_ticker: Cow<'a, str>,
    #[serde(default, deserialize_with = "optional_decimal")]
    yes_bid_dollars: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_decimal")]
    yes_ask_dollars: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_decimal")]
    yes_bid_size_fp: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_decimal")]
    yes_ask_size_fp: Option<Decimal>,
}

impl MarketData for Kalshi {
    fn trades(frame: &Frame) -> Result<Vec<Trade<'_>>, DecodeError> {
        let msg: TradeMsg<'_> = decode(frame, "kalshi trade")?;
        Ok(vec![Trade {
            symbol: msg.market_ticker,
            price: msg.yes_price_dollars,
            size: msg.count_fp,
            side: Side::from_words(msg.taker_side.as_deref(), "yes", "no"),
            venue_time: frame.venue_time(),
            received: frame.received(),
        }])
    }

    fn quote(frame: &Frame) -> Result<Quote<'_>, DecodeError> {
        let msg: TickerMsg<'_> = decode(frame, "kalshi ticker")?;
        Ok(Quote {
            symbol: msg.market_ticker,
            bid_price: msg.yes_bid_dollars,
            bid_size: msg.yes_bid_size_fp,
            ask_price: msg.yes_ask_dollars,
            ask_size: msg.yes_ask_size_fp,
            venue_time: frame.venue_time(),
            received: frame.received(),
        })
    }
}
