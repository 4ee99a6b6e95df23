//! WEEX V3 `trade` and `bookTicker` pushes.
//!
//! A trade push is `{"e":"trade","E":..,"s":<SYMBOL>,"d":[rows]}`: the
//! payload span is `d`, and the symbol is the top-level `s`, taken by a key
//! scan of the frame that stops at `s`. A `bookTicker` push has no `d`, so
//! its payload is the whole push: `s`, `b`/`B` (bid price/size), `a`/`A`.

use std::borrow::Cow;

use serde::Deserialize;

use super::{decode, decode_rows, optional_decimal, value_error, MarketData, Quote, Side, Trade};
use crate::protocol::scan::Cursor;
use crate::protocol::venue_time;
use crate::{Decimal, DecodeError, Frame, Weex};

/// A trade row: `T` (trade time, Unix ms), `p`, `q`, `m` (buyer is maker);
/// `t` (id) and `v` (value) are not kept.
#[derive(Deserialize)]
struct TradeRow {
    #[serde(rename = "T", default)]
    time: Option<u64>,
    #[serde(rename = "p")]
    price: Decimal,
    #[serde(rename = "q")]
    size: Decimal,
    #[serde(rename = "m", default)]
    buyer_is_maker: Option<bool>,
}

/// A `bookTicker` push.
#[derive(Deserialize)]
struct BookTicker<'a> {
    #[serde(rename = "s", borrow)]
    symbol: Cow<'a, str>,
    #[serde(rename = "b", default, deserialize_with = "optional_decimal")]
    bid_price: Option<Decimal>,
    #[serde(rename = "B", default, deserialize_with = "optional_decimal")]
    bid_size: Option<Decimal>,
    #[serde(rename = "a", default, deserialize_with = "optional_decimal")]
    ask_price: Option<Decimal>,
    #[serde(rename = "A", default, deserialize_with = "optional_decimal")]
    ask_size: Option<Decimal>,
}

const TRADE: &str = "weex trade";
const BOOK_TICKER: &str = "weex bookTicker";

/// The push's top-level `s`, when it is a plain string.
fn symbol(frame: &Frame) -> Option<&str> {
    let text = frame.as_text()?;
    venue_time::member(&mut Cursor::new(text), b"s")?.plain_str()
}

impl MarketData for Weex {
    fn trades(frame: &Frame) -> Result<Vec<Trade<'_>>, DecodeError> {
        let symbol = symbol(frame)
            .ok_or_else(|| value_error(frame, TRADE, "no plain string `s` (symbol) in the push"))?;
        let received = frame.received();
        decode_rows(frame, TRADE, |row: TradeRow| Trade {
            symbol: Cow::Borrowed(symbol),
            price: row.price,
            size: row.size,
            side: match row.buyer_is_maker {
                Some(true) => Side::Sell,
                Some(false) => Side::Buy,
                None => Side::Unknown,
            },
            venue_time: row
                .time
                .and_then(venue_time::from_millis)
                .or(frame.venue_time()),
            received,
        })
    }

    fn quote(frame: &Frame) -> Result<Quote<'_>, DecodeError> {
        let push: BookTicker<'_> = decode(frame, BOOK_TICKER)?;
        Ok(Quote {
            symbol: push.symbol,
            bid_price: push.bid_price,
            bid_size: push.bid_size,
            ask_price: push.ask_price,
            ask_size: push.ask_size,
            venue_time: frame.venue_time(),
            received: frame.received(),
        })
    }
}
