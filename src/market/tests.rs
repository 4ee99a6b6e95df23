//! Each venue's documented (or independently recorded) trade and ticker
//! messages decode to exact values; sources in `src/protocol/VENUES.md`,
//! "Typed data".

use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::{Kalshi, Kraken, Okx, Protocol, Weex};

fn d(text: &str) -> Decimal {
    Decimal::parse(text).unwrap()
}

fn at_ms(ms: u64) -> Option<SystemTime> {
    Some(UNIX_EPOCH + Duration::from_millis(ms))
}

fn classify(protocol: &mut impl Protocol, text: &str) -> Frame {
    Frame::classified(protocol, text)
}

#[test]
fn kraken_trade_and_ticker() {
    let text = r#"{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"sell","price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,"timestamp":"2023-09-25T07:49:37.708706Z"},{"symbol":"MATIC/USD","side":"buy","price":0.5118,"qty":0.00100000,"ord_type":"limit","trade_id":4665907,"timestamp":"2023-09-25T07:49:38Z"}]}"#;
    let frame = classify(&mut Kraken::new(), text);
    let trades = frame.trades::<Kraken>().unwrap();
    assert_eq!(trades.len(), 2);
    let first = &trades[0];
    assert_eq!(first.symbol, "MATIC/USD");
    assert_eq!(
        (first.price, first.size, first.side),
        (d("0.5117"), d("40"), Side::Sell)
    );
    assert_eq!(first.size.to_string(), "40.0");
    assert_eq!(
        first.venue_time,
        Some(UNIX_EPOCH + Duration::from_nanos(1_695_628_177_708_706_000))
    );
    assert_eq!(first.received, frame.received());
    // Each row keeps its own stamp and its wire digits.
    assert_eq!(trades[1].size.to_string(), "0.00100000");
    assert_eq!(trades[1].side, Side::Buy);
    assert_eq!(trades[1].venue_time, at_ms(1_695_628_178_000));
    assert_eq!(
        frame.venue_time(),
        trades[1].venue_time,
        "the frame's is the last (newest) row's"
    );

    // docs.kraken.com, trade channel snapshot example.
    let text = r#"{"channel":"trade","type":"snapshot","data":[{"symbol":"MATIC/USD","side":"buy","price":0.5147,"qty":6423.46326,"ord_type":"limit","trade_id":4665846,"timestamp":"2023-09-25T07:48:36.925533Z"},{"symbol":"MATIC/USD","side":"buy","price":0.5147,"qty":1136.19677815,"ord_type":"limit","trade_id":4665847,"timestamp":"2023-09-25T07:49:36.925603Z"}]}"#;
    let frame = classify(&mut Kraken::new(), text);
    let trades = frame.trades::<Kraken>().unwrap();
    let exact: Vec<_> = trades
        .iter()
        .map(|t| (t.symbol.as_ref(), t.price, t.size, t.side, t.venue_time))
        .collect();
    assert_eq!(
        exact,
        [
            (
                "MATIC/USD",
                d("0.5147"),
                d("6423.46326"),
                Side::Buy,
                Some(UNIX_EPOCH + Duration::from_nanos(1_695_628_116_925_533_000))
            ),
            (
                "MATIC/USD",
                d("0.5147"),
                d("1136.19677815"),
                Side::Buy,
                Some(UNIX_EPOCH + Duration::from_nanos(1_695_628_176_925_603_000))
            ),
        ]
    );

    // docs.kraken.com, ticker channel example.
    let text = r#"{"channel":"ticker","type":"snapshot","data":[{"symbol":"ALGO/USD","bid":0.10025,"bid_qty":740.0,"ask":0.10036,"ask_qty":1361.44813783,"last":0.10035,"volume":997038.98383185,"vwap":0.10148,"low":0.09979,"high":0.10285,"change":-0.00017,"change_pct":-0.17,"timestamp":"2023-09-25T09:04:31.742648Z"}]}"#;
    let frame = classify(&mut Kraken::new(), text);
    let quote = frame.quote::<Kraken>().unwrap();
    assert_eq!(quote.symbol, "ALGO/USD");
    assert_eq!(quote.bid_price, Some(d("0.10025")));
    assert_eq!(quote.bid_size, Some(d("740")));
    assert_eq!(quote.ask_price, Some(d("0.10036")));
    assert_eq!(quote.ask_size, Some(d("1361.44813783")));
    assert_eq!(
        quote.venue_time,
        Some(UNIX_EPOCH + Duration::from_nanos(1_695_632_671_742_648_000))
    );
    // The wrong channel is an error naming the venue and channel, not a panic.
    let error = frame.trades::<Kraken>().unwrap_err();
    assert_eq!(error.target, "kraken trade");
}

#[test]
fn okx_trades_and_tickers() {
    // OKX v5 docs, trades channel push example.
    let text = r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897","count":"3"}]}"#;
    let frame = classify(&mut Okx::new(), text);
    let trades = frame.trades::<Okx>().unwrap();
    assert_eq!(trades.len(), 1);
    assert_eq!(trades[0].symbol, "BTC-USDT");
    assert_eq!(trades[0].price, d("42219.9"));
    assert_eq!(trades[0].size.to_string(), "0.12060306");
    assert_eq!(trades[0].side, Side::Buy);
    assert_eq!(trades[0].venue_time, at_ms(1_630_048_897_897));
    assert_eq!(frame.venue_time(), at_ms(1_630_048_897_897));

    // OKX v5 docs, tickers channel push example.
    let text = r#"{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instType":"SPOT","instId":"BTC-USDT","last":"9999.99","lastSz":"0.1","askPx":"9999.99","askSz":"11","bidPx":"8888.88","bidSz":"5","open24h":"9000","high24h":"10000","low24h":"8888.88","volCcy24h":"2222","vol24h":"2222","sodUtc0":"2222","sodUtc8":"2222","ts":"1597026383085"}]}"#;
    let quote = frame_quote::<Okx>(&mut Okx::new(), text);
    assert_eq!(quote.symbol, "BTC-USDT");
    assert_eq!(
        (
            quote.bid_price,
            quote.bid_size,
            quote.ask_price,
            quote.ask_size
        ),
        (
            Some(d("8888.88")),
            Some(d("5")),
            Some(d("9999.99")),
            Some(d("11"))
        )
    );
    assert_eq!(quote.venue_time, at_ms(1_597_026_383_085));

    // An empty side is "" on the wire: None, not an error.
    let text = r#"{"arg":{"channel":"tickers","instId":"X-Y"},"data":[{"instId":"X-Y","askPx":"","askSz":"0","bidPx":"1.5","bidSz":"2","ts":"1"}]}"#;
    let quote = frame_quote::<Okx>(&mut Okx::new(), text);
    assert_eq!((quote.ask_price, quote.bid_price), (None, Some(d("1.5"))));
}

fn frame_quote<V: MarketData>(protocol: &mut impl Protocol, text: &str) -> Quote<'static> {
    let frame = classify(protocol, text);
    let quote = frame.quote::<V>().unwrap();
    quote.into_owned()
}

#[test]
fn weex_trade_and_book_ticker() {
    // Recorded V3 spot push (an independent V3 client's test data).
    let text = r#"{"e":"trade","E":1775118619709,"s":"ETHUSDT","d":[{"T":1775118619691,"t":"8cd20870-d3b0-41d8-91bb-ccdfbdd6576f","p":"2050.56","q":"0.02625","v":"53.8272000","m":true}]}"#;
    let mut weex = Weex::new();
    let frame = classify(&mut weex, text);
    let trades = frame.trades::<Weex>().unwrap();
    assert_eq!(trades.len(), 1);
    assert_eq!(trades[0].symbol, "ETHUSDT");
    assert_eq!(
        (trades[0].price, trades[0].size.to_string()),
        (d("2050.56"), "0.02625".to_owned())
    );
    assert_eq!(trades[0].side, Side::Sell, "buyer is maker: the taker sold");
    assert_eq!(
        trades[0].venue_time,
        at_ms(1_775_118_619_691),
        "the trade's own T"
    );
    assert_eq!(frame.venue_time(), at_ms(1_775_118_619_709), "the push's E");

    let text = r#"{"e":"bookTicker","E":1775117847999,"s":"ETHUSDT","u":1775117847996,"b":"2050.67","B":"0.89116","a":"2050.70","A":"2.26200"}"#;
    let quote = frame_quote::<Weex>(&mut Weex::new(), text);
    assert_eq!(quote.symbol, "ETHUSDT");
    assert_eq!(
        (
            quote.bid_price,
            quote.bid_size,
            quote.ask_price,
            quote.ask_size
        ),
        (
            Some(d("2050.67")),
            Some(d("0.89116")),
            Some(d("2050.70")),
            Some(d("2.262"))
        )
    );
    assert_eq!(quote.ask_size.unwrap().to_string(), "2.26200");
    assert_eq!(quote.venue_time, at_ms(1_775_117_847_999));
}

#[test]
fn kalshi_trade_and_ticker() {
    // The trade example of Kalshi's AsyncAPI spec (fixed-point fields).
    let text = r#"{"type":"trade","sid":1,"seq":42,"msg":{"trade_id":"f851595a-abcd-4321-9876-1234567890ab","market_ticker":"KXBTCD-26FEB14-T100000","yes_price":55,"no_price":45,"yes_price_dollars":"0.5500","no_price_dollars":"0.4500","count":10,"count_fp":"10.00","taker_side":"yes","ts":1707667200}}"#;
    let frame = classify(&mut Kalshi::new(), text);
    let trades = frame.trades::<Kalshi>().unwrap();
    assert_eq!(trades.len(), 1);
    assert_eq!(trades[0].symbol, "KXBTCD-26FEB14-T100000");
    assert_eq!(
        (trades[0].price.to_string(), trades[0].size.to_string()),
        ("0.5500".to_owned(), "10.00".to_owned())
    );
    assert_eq!(trades[0].side, Side::Buy);
    assert_eq!(trades[0].venue_time, at_ms(1_707_667_200_000));
    // taker_side no: a sell of YES; ts_ms wins over ts.
    let text = r#"{"type":"trade","sid":1,"seq":43,"msg":{"market_ticker":"M","yes_price_dollars":"0.0015","count_fp":"2.50","taker_side":"no","ts":1707667200,"ts_ms":1707667200123}}"#;
    let frame = classify(&mut Kalshi::new(), text);
    let trade = &frame.trades::<Kalshi>().unwrap()[0];
    assert_eq!(
        (trade.side, trade.price, trade.size),
        (Side::Sell, d("0.0015"), d("2.5"))
    );
    assert_eq!(trade.venue_time, at_ms(1_707_667_200_123));
    // Since 2026-05-07 the spec's trade carries `taker_outcome_side` and
    // `taker_book_side` beside the deprecated `taker_side`: the canonical
    // field decides, and a trade without `taker_side` keeps its side.
    for (fields, side) in [
        (
            r#""taker_outcome_side":"no","taker_book_side":"ask""#,
            Side::Sell,
        ),
        (
            r#""taker_outcome_side":"yes","taker_book_side":"bid""#,
            Side::Buy,
        ),
        (r#""taker_book_side":"ask""#, Side::Sell),
        (r#""taker_book_side":"bid""#, Side::Buy),
        (
            r#""taker_outcome_side":"no","taker_side":"yes""#,
            Side::Sell,
        ),
        (
            r#""taker_outcome_side":"maybe","taker_side":"no""#,
            Side::Sell,
        ),
        (r#""is_block_trade":false"#, Side::Unknown),
    ] {
        let text = format!(
            r#"{{"type":"trade","sid":1,"seq":44,"msg":{{"market_ticker":"M","yes_price_dollars":"0.42","count_fp":"5.00",{fields},"ts_ms":1}}}}"#
        );
        let frame = classify(&mut Kalshi::new(), &text);
        assert_eq!(frame.trades::<Kalshi>().unwrap()[0].side, side, "{fields}");
    }

    // A recorded production ticker (third-party capture): no sizes sent.
    let text = r#"{"type":"ticker","sid":1,"msg":{"market_id":"2ee24704-7e13-4248-97f5-3b7ffabf4325","market_ticker":"KXRANKLISTGOOGLESEARCH-26JAN-BIA","price":12,"yes_bid":11,"yes_ask":12,"price_dollars":"0.1200","yes_bid_dollars":"0.1100","yes_ask_dollars":"0.1200","volume":351970,"open_interest":182646,"dollar_volume":175985,"dollar_open_interest":91323,"ts":1732579880,"Clock":6598272994}}"#;
    let quote = frame_quote::<Kalshi>(&mut Kalshi::new(), text);
    assert_eq!(quote.symbol, "KXRANKLISTGOOGLESEARCH-26JAN-BIA");
    assert_eq!(
        (quote.bid_price, quote.ask_price),
        (Some(d("0.11")), Some(d("0.12")))
    );
    assert_eq!((quote.bid_size, quote.ask_size), (None, None));
    assert_eq!(quote.venue_time, at_ms(1_732_579_880_000));
    let text = r#"{"type":"ticker","sid":1,"msg":{"market_ticker":"M","yes_bid_dollars":"0.4125","yes_ask_dollars":"","yes_bid_size_fp":"12.00","ts_ms":1}}"#;
    let quote = frame_quote::<Kalshi>(&mut Kalshi::new(), text);
    assert_eq!((quote.bid_size, quote.ask_price), (Some(d("12")), None));
}

#[test]
fn bad_values_are_errors_that_quote_no_frame() {
    let text = r#"{"type":"trade","sid":1,"msg":{"market_ticker":"M","yes_price_dollars":"0.5x","count_fp":"1","taker_side":"yes"}}"#;
    let frame = classify(&mut Kalshi::new(), text);
    let error = frame.trades::<Kalshi>().unwrap_err();
    assert_eq!((error.target, error.category), ("kalshi trade", "data"));
    // An unknown side is Unknown, not an error.
    let text = r#"{"e":"trade","E":1,"s":"X","d":[{"p":"1","q":"2"}]}"#;
    let frame = classify(&mut Weex::new(), text);
    assert_eq!(frame.trades::<Weex>().unwrap()[0].side, Side::Unknown);
    // A WEEX trade without a symbol says so.
    let text = r#"{"e":"trade","E":1,"d":[{"p":"1","q":"2"}]}"#;
    let frame = Frame::classified(&mut Weex::new(), text);
    let error = frame.trades::<Weex>().unwrap_err();
    assert_eq!((error.line, error.column), (0, 0));
    assert!(error.to_string().contains("symbol"), "{error}");
    // An empty Kraken ticker.
    let frame = Frame::classified(
        &mut Kraken::new(),
        r#"{"channel":"ticker","type":"update","data":[]}"#,
    );
    assert!(frame.quote::<Kraken>().is_err());
}
