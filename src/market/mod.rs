//! Typed market data, opt-in: trades and best bid/ask quotes with exact
//! decimal prices and sizes.
//!
//! Frames stay raw by default; nothing here runs unless asked. A consumer
//! that wants numbers calls [`Frame::trades`] or [`Frame::quote`] with the
//! venue's adapter type ([`Kraken`](crate::Kraken), [`Okx`](crate::Okx),
//! [`Weex`](crate::Weex), [`Kalshi`](crate::Kalshi)), on frames of the
//! subscription it made for that channel:
//!
//! ```
//! use resilient_ws::market::Side;
//! use resilient_ws::{Decimal, Frame, Kraken};
//!
//! let text = r#"{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"buy","price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,"timestamp":"2023-09-25T07:49:37.708706Z"}]}"#;
//! let frame = Frame::classified(&mut Kraken::new(), text); // a session hands these out
//! let trades = frame.trades::<Kraken>().unwrap();
//! assert_eq!(trades[0].symbol, "MATIC/USD");
//! assert_eq!(trades[0].price, Decimal::parse("0.5117").unwrap());
//! assert_eq!(trades[0].size.to_string(), "40.0"); // the wire's digits, kept
//! assert_eq!(trades[0].side, Side::Buy);
//! assert!(trades[0].venue_time.is_some());
//! ```
//!
//! Rules, and why:
//! - **No second envelope parse.** Decoders read the payload span the adapter
//!   found while routing ([`Frame::payload`]: Kraken and OKX `data`, WEEX
//!   `d` or the whole push, Kalshi `msg`), with serde into borrowed structs.
//!   WEEX names the symbol at the top level (`s`): it is taken by a key scan
//!   that stops at `s`, not a parse.
//! - **Exact numbers.** Prices and sizes are [`Decimal`]s parsed from the wire
//!   text (strings or JSON numbers alike), never through `f64`; the wire's
//!   digits are kept (`40.0` stays `40.0`).
//! - **Borrowed where possible.** [`Trade`] and [`Quote`] borrow the symbol
//!   from the frame ([`Cow`]); [`Trade::into_owned`] and [`Quote::into_owned`]
//!   detach them.
//! - **Times.** `venue_time` is the row's own stamp where the venue sends one
//!   per row (a Kraken or OKX row, a WEEX trade's `T`), else the frame's
//!   ([`Frame::venue_time`]); `received` is when the frame was read.
//! - **The side of a trade is the taker's**: Kraken and OKX `side`; WEEX `m`
//!   (buyer is maker) means the taker sold; Kalshi's `taker_side` `yes` is a
//!   buy and `no` a sell of the YES contract whose price the trade carries.
//!   Anything else is [`Side::Unknown`], never an error.
//! - **Errors** are [`DecodeError`]s naming the venue and channel, e.g. a
//!   ticker frame asked for trades, or a price that is not a decimal.
//!
//! Channels: Kraken v2 `trade` and `ticker`; OKX v5 `trades` and `tickers`;
//! WEEX V3 `trade` and `bookTicker`; Kalshi `trade` and `ticker`. The field
//! names and their sources are in `src/protocol/VENUES.md`, "Typed data".

use std::borrow::Cow;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::ids::ClientId;
use crate::{Decimal, DecodeError, Frame, Received};

mod kalshi;
mod kraken;
mod okx;
mod rows;
mod weex;

#[cfg(test)]
mod tests;

/// Which side of a trade took liquidity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The taker bought.
    Buy,
    /// The taker sold.
    Sell,
    /// The venue did not say (or said something this version does not know).
    Unknown,
}

impl Side {
    /// The taker's side from the venue's words for buying and selling
    /// (`buy`/`sell`; Kalshi's `yes`/`no`); anything else is `Unknown`.
    fn from_words(text: Option<&str>, buy: &str, sell: &str) -> Side {
        match text {
            Some(word) if word == buy => Side::Buy,
            Some(word) if word == sell => Side::Sell,
            _ => Side::Unknown,
        }
    }
}

/// A row's own time where it has a readable one, else the frame's venue time.
fn row_time(
    frame: &Frame,
    text: Option<&str>,
    parse: fn(&str) -> Option<SystemTime>,
) -> Option<SystemTime> {
    text.and_then(parse).or(frame.venue_time())
}

/// One trade, with exact price and size.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Trade<'a> {
    /// The venue's symbol (`BTC/USD`, `BTC-USDT`, `BTCUSDT`, a Kalshi market ticker).
    pub symbol: Cow<'a, str>,
    /// The price, as the venue wrote it.
    pub price: Decimal,
    /// The size (quantity, contracts), as the venue wrote it.
    pub size: Decimal,
    /// The taker's side.
    pub side: Side,
    /// The venue's time of the trade (or of its message), when it sends one.
    pub venue_time: Option<SystemTime>,
    /// When the frame carrying it was read from the socket.
    pub received: Received,
}

impl Trade<'_> {
    /// The trade with its symbol copied out of the frame.
    pub fn into_owned(self) -> Trade<'static> {
        Trade {
            symbol: Cow::Owned(self.symbol.into_owned()),
            ..self
        }
    }
}

/// The best bid and ask of one market. A side the venue reports empty (or
/// leaves out) is `None`; so is a size the venue does not send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Quote<'a> {
    /// The venue's symbol.
    pub symbol: Cow<'a, str>,
    /// The best bid price.
    pub bid_price: Option<Decimal>,
    /// The size at the best bid.
    pub bid_size: Option<Decimal>,
    /// The best ask price.
    pub ask_price: Option<Decimal>,
    /// The size at the best ask.
    pub ask_size: Option<Decimal>,
    /// The venue's time of the quote (or of its message), when it sends one.
    pub venue_time: Option<SystemTime>,
    /// When the frame carrying it was read from the socket.
    pub received: Received,
}

impl Quote<'_> {
    /// The quote with its symbol copied out of the frame.
    pub fn into_owned(self) -> Quote<'static> {
        Quote {
            symbol: Cow::Owned(self.symbol.into_owned()),
            ..self
        }
    }
}

/// A venue whose public trade and ticker frames decode into [`Trade`]s and
/// [`Quote`]s. Implemented by the bundled adapters; call it through
/// [`Frame::trades`] and [`Frame::quote`].
pub trait MarketData {
    /// The trades of a frame of the venue's public trade channel (one or more).
    ///
    /// # Errors
    ///
    /// [`DecodeError`] when the payload is not a trade message of this venue.
    fn trades(frame: &Frame) -> Result<Vec<Trade<'_>>, DecodeError>;

    /// The best bid and ask of a frame of the venue's ticker (or best
    /// bid/offer) channel.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] when the payload is not a ticker message of this venue.
    fn quote(frame: &Frame) -> Result<Quote<'_>, DecodeError>;
}

impl Frame {
    /// The trades in this frame, decoded as venue `V` writes them (see
    /// [`market`](crate::market)). Costs nothing unless called.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] when the payload is not `V`'s trade message.
    pub fn trades<V: MarketData>(&self) -> Result<Vec<Trade<'_>>, DecodeError> {
        V::trades(self)
    }

    /// The best bid and ask in this frame, decoded as venue `V` writes them
    /// (see [`market`](crate::market)). Costs nothing unless called.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] when the payload is not `V`'s ticker message.
    pub fn quote<V: MarketData>(&self) -> Result<Quote<'_>, DecodeError> {
        V::quote(self)
    }
}

/// Deserializes the frame's payload as `T`, naming `target` in the error
/// instead of an internal type name.
fn decode<'a, T: Deserialize<'a>>(
    frame: &'a Frame,
    target: &'static str,
) -> Result<T, DecodeError> {
    frame
        .decode::<T>()
        .map_err(|error| DecodeError { target, ..error })
}

/// Decodes the payload, an array of rows, into one item per row with `each`,
/// without collecting the rows first.
fn decode_rows<'a, R: Deserialize<'a>, T>(
    frame: &'a Frame,
    target: &'static str,
    each: impl FnMut(R) -> T,
) -> Result<Vec<T>, DecodeError> {
    run(frame, target, rows::EachRow::new(each))
}

/// Decodes the first row of the payload (an array of rows), skipping the
/// rest without collecting them; `None` for an empty array.
fn decode_first<'a, R: Deserialize<'a>>(
    frame: &'a Frame,
    target: &'static str,
) -> Result<Option<R>, DecodeError> {
    run(frame, target, rows::FirstRow::new())
}

/// Runs `seed` over the whole payload (trailing text is an error).
fn run<'a, S: serde::de::DeserializeSeed<'a>>(
    frame: &'a Frame,
    target: &'static str,
    seed: S,
) -> Result<S::Value, DecodeError> {
    let mut deserializer = serde_json::Deserializer::from_slice(frame.payload());
    let value = seed
        .deserialize(&mut deserializer)
        .map_err(|error| serde_error(frame, target, &error))?;
    deserializer
        .end()
        .map_err(|error| serde_error(frame, target, &error))?;
    Ok(value)
}

/// A serde error as a [`DecodeError`], as [`Frame::decode`] reports it.
fn serde_error(frame: &Frame, target: &'static str, error: &serde_json::Error) -> DecodeError {
    use serde_json::error::Category;
    DecodeError {
        client_id: frame.client_id().unwrap_or(ClientId::new(0)),
        target,
        category: match error.classify() {
            Category::Io => "io",
            Category::Syntax => "syntax",
            Category::Data => "data",
            Category::Eof => "eof",
        },
        line: error.line(),
        column: error.column(),
        message: error.to_string(),
    }
}

/// A decode error about a value rather than a place in the text.
fn value_error(frame: &Frame, target: &'static str, message: &str) -> DecodeError {
    DecodeError {
        client_id: frame.client_id().unwrap_or(ClientId::new(0)),
        target,
        category: "data",
        line: 0,
        column: 0,
        message: message.to_owned(),
    }
}

/// An optional decimal that a venue may also send as `""` or `null` (an
/// empty side): those are `None`; any other text must be a decimal.
fn optional_decimal<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Decimal>, D::Error> {
    use serde::de::Error;
    let Some(raw) = Option::<&'de RawValue>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let text = raw.get();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    if text.is_empty() || text == "null" {
        return Ok(None);
    }
    Decimal::parse(text)
        .map(Some)
        .ok_or_else(|| D::Error::custom("expected a decimal number"))
}
