//! Kalshi `trade` and `ticker` messages (the payload is `msg`), in the
//! fixed-point fields Kalshi sends since its 2026 migration: prices in
//! dollars (`*_dollars`), counts as `*_fp` strings. The time is the frame's
//! ([`Frame::venue_time`]: `ts_ms`, else the deprecated `ts`).

use std::borrow::Cow;

use serde::Deserialize;

use super::{decode, optional_decimal, MarketData, Quote, Side, Trade};
use crate::{Decimal, DecodeError, Frame, Kalshi};

/// A `trade` msg: `market_ticker`, `yes_price_dollars`, `count_fp` and the
/// taker's direction; `trade_id`, `no_price_dollars`, `is_block_trade` are
/// not kept. The direction fields, in the order they are read (Kalshi's
/// AsyncAPI spec, `trade`, since 2026-05-07): `taker_outcome_side`
/// (`yes`/`no`), `taker_book_side` (`bid` is `yes`, `ask` is `no`), and the
/// deprecated `taker_side` (`yes`/`no`, "will not be removed before May 14,
/// 2026"), so a trade keeps its side when Kalshi drops the old field.
#[derive(Deserialize)]
struct TradeMsg<'a> {
    #[serde(borrow)]
    market_ticker: Cow<'a, str>,
    yes_price_dollars: Decimal,
    count_fp: Decimal,
    #[serde(default, borrow)]
    taker_outcome_side: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    taker_book_side: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    taker_side: Option<Cow<'a, str>>,
}

impl TradeMsg<'_> {
    /// The taker's side of YES: buying YES is a buy, buying NO a sell.
    fn side(&self) -> Side {
        let words = [
            (self.taker_outcome_side.as_deref(), "yes", "no"),
            (self.taker_book_side.as_deref(), "bid", "ask"),
            (self.taker_side.as_deref(), "yes", "no"),
        ];
        words
            .into_iter()
            .map(|(text, buy, sell)| Side::from_words(text, buy, sell))
            .find(|side| *side != Side::Unknown)
            .unwrap_or(Side::Unknown)
    }
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
        let side = msg.side();
        Ok(vec![Trade {
            symbol: msg.market_ticker,
            price: msg.yes_price_dollars,
            size: msg.count_fp,
            side,
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
