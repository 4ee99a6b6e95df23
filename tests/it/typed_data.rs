//! Typed market data through a real session (issue 23, items 3 and 4): the
//! venue's documented trade and ticker pushes, served by the op/args test
//! venue on loopback, reach the subscription as frames that carry the venue
//! time and decode to exact trades and quotes.

use crate::support;

use std::time::{Duration, UNIX_EPOCH};

use resilient_ws::market::Side;
use resilient_ws::{
    Client, Config, Decimal, Frame, Kalshi, Kraken, Okx, Subscription, Topic, Update, Weex,
};
use serde_json::json;
use support::exchange::{Exchange, Venue};
use support::next;
use support::op_venue::{self, Dialect, OpVenue};

const SEED: u64 = 23;

fn d(text: &str) -> Decimal {
    Decimal::parse(text).unwrap()
}

async fn next_frame(sub: &mut Subscription) -> Frame {
    loop {
        match next(sub).await {
            Some(Ok(Update::Data(frame))) => return frame,
            Some(Ok(Update::Resubscribed { .. })) => continue,
            other => panic!("expected data, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn okx_trades_and_tickers_decode_exactly_with_venue_time() {
    let venue = OpVenue::start(Dialect::Okx).await.unwrap();
    let (client, _messages) = op_venue::connect(&venue, SEED, Okx::new(), |b| b).await;
    let mut trades = client
        .subscribe(Topic::new("trades").symbol("BTC-USDT"))
        .await
        .unwrap();
    let mut tickers = client
        .subscribe(Topic::new("tickers").symbol("BTC-USDT"))
        .await
        .unwrap();
    // OKX v5 docs' push examples.
    venue.push(
        "trades",
        "BTC-USDT",
        &json!({"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897","count":"3"}]}),
    );
    venue.push(
        "tickers",
        "BTC-USDT",
        &json!({"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instType":"SPOT","instId":"BTC-USDT","last":"9999.99","lastSz":"0.1","askPx":"9999.99","askSz":"11","bidPx":"8888.88","bidSz":"5","ts":"1597026383085"}]}),
    );

    let frame = next_frame(&mut trades).await;
    let stamp = UNIX_EPOCH + Duration::from_millis(1_630_048_897_897);
    assert_eq!(frame.venue_time(), Some(stamp));
    let trade = &frame.trades::<Okx>().unwrap()[0];
    assert_eq!(trade.symbol, "BTC-USDT");
    assert_eq!(
        (trade.price, trade.size, trade.side),
        (d("42219.9"), d("0.12060306"), Side::Buy)
    );
    assert_eq!(trade.venue_time, Some(stamp));
    assert_eq!(trade.received, frame.received());

    let frame = next_frame(&mut tickers).await;
    let quote = frame.quote::<Okx>().unwrap();
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
    assert_eq!(
        quote.venue_time,
        Some(UNIX_EPOCH + Duration::from_millis(1_597_026_383_085))
    );
    client.close().await.unwrap();
}

#[tokio::test]
async fn weex_trades_and_book_tickers_decode_exactly_with_venue_time() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    let (client, _messages) = op_venue::connect(&venue, SEED, Weex::new(), |b| b).await;
    let mut trades = client
        .subscribe(Topic::new("trade").symbol("ETHUSDT"))
        .await
        .unwrap();
    let mut quotes = client
        .subscribe(Topic::new("bookTicker").symbol("ETHUSDT"))
        .await
        .unwrap();
    // Recorded V3 pushes (an independent V3 client's test data).
    venue.push(
        "trade",
        "ETHUSDT",
        &json!({"e":"trade","E":1775118619709u64,"s":"ETHUSDT","d":[{"T":1775118619691u64,"t":"8cd20870-d3b0-41d8-91bb-ccdfbdd6576f","p":"2050.56","q":"0.02625","v":"53.8272000","m":true}]}),
    );
    venue.push(
        "bookTicker",
        "ETHUSDT",
        &json!({"e":"bookTicker","E":1775117847999u64,"s":"ETHUSDT","u":1775117847996u64,"b":"2050.67","B":"0.89116","a":"2050.70","A":"2.26200"}),
    );

    let frame = next_frame(&mut trades).await;
    assert_eq!(
        frame.venue_time(),
        Some(UNIX_EPOCH + Duration::from_millis(1_775_118_619_709))
    );
    let trade = &frame.trades::<Weex>().unwrap()[0];
    assert_eq!(trade.symbol, "ETHUSDT");
    assert_eq!(
        (trade.price, trade.size, trade.side),
        (d("2050.56"), d("0.02625"), Side::Sell)
    );
    assert_eq!(
        trade.venue_time,
        Some(UNIX_EPOCH + Duration::from_millis(1_775_118_619_691))
    );

    let frame = next_frame(&mut quotes).await;
    let quote = frame.quote::<Weex>().unwrap();
    assert_eq!(quote.symbol, "ETHUSDT");
    assert_eq!(
        (
            quote.bid_price,
            quote.ask_price,
            quote.ask_size.map(|s| s.to_string())
        ),
        (
            Some(d("2050.67")),
            Some(d("2050.70")),
            Some("2.26200".to_owned())
        )
    );
    assert_eq!(
        quote.venue_time,
        Some(UNIX_EPOCH + Duration::from_millis(1_775_117_847_999))
    );
    client.close().await.unwrap();
}

#[tokio::test]
async fn kraken_and_kalshi_trades_and_tickers_decode_exactly_with_venue_time() {
    let kraken = Exchange::start(Venue::Kraken).await.unwrap();
    let (client, _unsolicited) = Client::spawn(
        Config::builder(kraken.url()).build().unwrap(),
        Kraken::new(),
    );
    let mut trades = client
        .subscribe(Topic::new("trade").symbol("MATIC/USD"))
        .await
        .unwrap();
    let mut ticker = client
        .subscribe(Topic::new("ticker").symbol("ALGO/USD"))
        .await
        .unwrap();
    kraken.publish(
        "MATIC/USD",
        json!({"side":"sell","price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,"timestamp":"2023-09-25T07:49:37.708706Z"}),
    );
    kraken.publish(
        "ALGO/USD",
        json!({"bid":0.10025,"bid_qty":740.0,"ask":0.10036,"ask_qty":1361.44813783,"timestamp":"2023-09-25T09:04:31.742648Z"}),
    );
    let frame = next_frame(&mut trades).await;
    let stamp = UNIX_EPOCH + Duration::from_nanos(1_695_628_177_708_706_000);
    assert_eq!(frame.venue_time(), Some(stamp));
    let trade = &frame.trades::<Kraken>().unwrap()[0];
    assert_eq!(trade.symbol, "MATIC/USD");
    assert_eq!(
        (trade.price, trade.size, trade.side),
        (d("0.5117"), d("40"), Side::Sell)
    );
    let frame = next_frame(&mut ticker).await;
    let quote = frame.quote::<Kraken>().unwrap();
    assert_eq!(
        (quote.bid_price, quote.ask_size),
        (Some(d("0.10025")), Some(d("1361.44813783")))
    );
    client.close().await.unwrap();

    let kalshi = Exchange::start(Venue::Kalshi).await.unwrap();
    let (client, _unsolicited) = Client::spawn(
        Config::builder(kalshi.url()).build().unwrap(),
        Kalshi::new(),
    );
    let mut trades = client
        .subscribe(Topic::new("trade").symbol("M"))
        .await
        .unwrap();
    kalshi.publish(
        "M",
        json!({"yes_price_dollars":"0.5500","count_fp":"10.00","taker_side":"no","ts":1707667200,"ts_ms":1707667200123u64}),
    );
    let frame = next_frame(&mut trades).await;
    let stamp = UNIX_EPOCH + Duration::from_millis(1_707_667_200_123);
    assert_eq!(frame.venue_time(), Some(stamp));
    let trade = &frame.trades::<Kalshi>().unwrap()[0];
    assert_eq!(trade.symbol, "M");
    assert_eq!(
        (trade.price, trade.size, trade.side),
        (d("0.55"), d("10"), Side::Sell)
    );
    assert_eq!(trade.venue_time, Some(stamp));
    client.close().await.unwrap();
}
