//! What typed market data costs per message, per venue: `Frame::trades` /
//! `Frame::quote` (exact [`Decimal`]s, symbol borrowed, times) against a
//! hand-written serde struct with `f64` fields for the same payload (what
//! users wrote before, see `examples/decode_tickers.rs`), and what the
//! per-frame venue-time scan costs the session.
//!
//! ```text
//! cargo run --release --example typed_decode_cost
//! ```
//!
//! Each figure is the best of five runs of 200 000 decodes of one
//! documented message (sources in `src/protocol/VENUES.md`, "Typed data"),
//! in ns per message. Nothing touches the network. Timings on a shared
//! machine wobble by a few percent; compare columns of one run.

use std::hint::black_box;
use std::time::Instant;

use resilient_ws::{market::MarketData, Decimal, Frame, Kalshi, Kraken, Okx, Protocol, Weex};
use serde::Deserialize;

const ROUNDS: u32 = 200_000;

/// The best of five runs of `ROUNDS` calls of `f`, in ns per call.
fn ns_per_call(mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..ROUNDS {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(ROUNDS)
        })
        .fold(f64::INFINITY, f64::min)
}

// The hand-written baselines: the fields a user needs, f64 numbers.

#[derive(Deserialize)]
struct KrakenTradeF64<'a> {
    symbol: &'a str,
    side: &'a str,
    price: f64,
    qty: f64,
    timestamp: &'a str,
}

#[derive(Deserialize)]
struct KrakenTickerF64<'a> {
    symbol: &'a str,
    bid: f64,
    bid_qty: f64,
    ask: f64,
    ask_qty: f64,
}

/// OKX sends numbers as strings: the baseline parses them after serde.
#[derive(Deserialize)]
struct OkxTradeRaw<'a> {
    #[serde(rename = "instId")]
    inst_id: &'a str,
    px: &'a str,
    sz: &'a str,
    side: &'a str,
    ts: &'a str,
}

#[derive(Deserialize)]
struct OkxTickerRaw<'a> {
    #[serde(rename = "instId")]
    inst_id: &'a str,
    #[serde(rename = "bidPx")]
    bid_px: &'a str,
    #[serde(rename = "bidSz")]
    bid_sz: &'a str,
    #[serde(rename = "askPx")]
    ask_px: &'a str,
    #[serde(rename = "askSz")]
    ask_sz: &'a str,
}

#[derive(Deserialize)]
struct WeexTradeRaw<'a> {
    #[serde(rename = "T")]
    time: u64,
    p: &'a str,
    q: &'a str,
    m: bool,
}

#[derive(Deserialize)]
struct WeexBookTickerRaw<'a> {
    s: &'a str,
    b: &'a str,
    #[serde(rename = "B")]
    bid_size: &'a str,
    a: &'a str,
    #[serde(rename = "A")]
    ask_size: &'a str,
}

#[derive(Deserialize)]
struct KalshiTradeRaw<'a> {
    market_ticker: &'a str,
    yes_price_dollars: &'a str,
    count_fp: &'a str,
    taker_side: &'a str,
}

#[derive(Deserialize)]
struct KalshiTickerRaw<'a> {
    market_ticker: &'a str,
    yes_bid_dollars: &'a str,
    yes_ask_dollars: &'a str,
}

fn f(text: &str) -> f64 {
    text.parse().unwrap_or(f64::NAN)
}

struct Row {
    what: &'static str,
    typed: f64,
    serde_f64: f64,
    venue_time: f64,
}

fn measure<P: Protocol + MarketData>(
    what: &'static str,
    mut protocol: P,
    text: &str,
    trades: bool,
    baseline: impl Fn(&Frame),
) -> Row {
    let frame = Frame::classified(&mut protocol, text);
    if trades {
        frame.trades::<P>().expect("the sample decodes");
    } else {
        frame.quote::<P>().expect("the sample decodes");
    }
    baseline(&frame);
    let typed = if trades {
        ns_per_call(|| {
            black_box(black_box(&frame).trades::<P>().ok());
        })
    } else {
        ns_per_call(|| {
            black_box(black_box(&frame).quote::<P>().ok());
        })
    };
    let serde_f64 = ns_per_call(|| baseline(black_box(&frame)));
    let (whole, payload) = (
        frame.as_text().unwrap_or(""),
        frame.payload_text().unwrap_or(""),
    );
    let venue_time = ns_per_call(|| {
        black_box(protocol.venue_time(black_box(whole), black_box(payload)));
    });
    Row {
        what,
        typed,
        serde_f64,
        venue_time,
    }
}

fn main() {
    let rows = vec![
        measure(
            "kraken trade (1 row)",
            Kraken::new(),
            r#"{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"sell","price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,"timestamp":"2023-09-25T07:49:37.708706Z"}]}"#,
            true,
            |frame| {
                let rows: Vec<KrakenTradeF64<'_>> = frame.decode().unwrap();
                for r in &rows {
                    black_box((r.symbol, r.side, r.price, r.qty, r.timestamp));
                }
            },
        ),
        measure(
            "kraken ticker",
            Kraken::new(),
            r#"{"channel":"ticker","type":"snapshot","data":[{"symbol":"ALGO/USD","bid":0.10025,"bid_qty":740.0,"ask":0.10036,"ask_qty":1361.44813783,"last":0.10035,"volume":997038.98383185,"vwap":0.10148,"low":0.09979,"high":0.10285,"change":-0.00017,"change_pct":-0.17,"timestamp":"2023-09-25T09:04:31.742648Z"}]}"#,
            false,
            |frame| {
                let rows: Vec<KrakenTickerF64<'_>> = frame.decode().unwrap();
                black_box(
                    rows.first()
                        .map(|r| (r.symbol, r.bid, r.bid_qty, r.ask, r.ask_qty)),
                );
            },
        ),
        measure(
            "okx trades (1 row)",
            Okx::new(),
            r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897","count":"3"}]}"#,
            true,
            |frame| {
                let rows: Vec<OkxTradeRaw<'_>> = frame.decode().unwrap();
                for r in &rows {
                    black_box((
                        r.inst_id,
                        f(r.px),
                        f(r.sz),
                        r.side,
                        r.ts.parse::<u64>().ok(),
                    ));
                }
            },
        ),
        measure(
            "okx tickers",
            Okx::new(),
            r#"{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instType":"SPOT","instId":"BTC-USDT","last":"9999.99","lastSz":"0.1","askPx":"9999.99","askSz":"11","bidPx":"8888.88","bidSz":"5","open24h":"9000","high24h":"10000","low24h":"8888.88","volCcy24h":"2222","vol24h":"2222","sodUtc0":"2222","sodUtc8":"2222","ts":"1597026383085"}]}"#,
            false,
            |frame| {
                let rows: Vec<OkxTickerRaw<'_>> = frame.decode().unwrap();
                black_box(rows.first().map(|r| {
                    (
                        r.inst_id,
                        f(r.bid_px),
                        f(r.bid_sz),
                        f(r.ask_px),
                        f(r.ask_sz),
                    )
                }));
            },
        ),
        measure(
            "weex trade (1 row)",
            Weex::new(),
            r#"{"e":"trade","E":1775118619709,"s":"ETHUSDT","d":[{"T":1775118619691,"t":"8cd20870-d3b0-41d8-91bb-ccdfbdd6576f","p":"2050.56","q":"0.02625","v":"53.8272000","m":true}]}"#,
            true,
            |frame| {
                let rows: Vec<WeexTradeRaw<'_>> = frame.decode().unwrap();
                for r in &rows {
                    black_box((r.time, f(r.p), f(r.q), r.m));
                }
            },
        ),
        measure(
            "weex bookTicker",
            Weex::new(),
            r#"{"e":"bookTicker","E":1775117847999,"s":"ETHUSDT","u":1775117847996,"b":"2050.67","B":"0.89116","a":"2050.70","A":"2.26200"}"#,
            false,
            |frame| {
                let r: WeexBookTickerRaw<'_> = frame.decode().unwrap();
                black_box((r.s, f(r.b), f(r.bid_size), f(r.a), f(r.ask_size)));
            },
        ),
        measure(
            "kalshi trade",
            Kalshi::new(),
            r#"{"type":"trade","sid":1,"seq":42,"msg":{"trade_id":"f851595a-abcd-4321-9876-1234567890ab","market_ticker":"KXBTCD-26FEB14-T100000","yes_price":55,"no_price":45,"yes_price_dollars":"0.5500","no_price_dollars":"0.4500","count":10,"count_fp":"10.00","taker_side":"yes","ts":1707667200}}"#,
            true,
            |frame| {
                let r: KalshiTradeRaw<'_> = frame.decode().unwrap();
                black_box((
                    r.market_ticker,
                    f(r.yes_price_dollars),
                    f(r.count_fp),
                    r.taker_side,
                ));
            },
        ),
        measure(
            "kalshi trade (with ts_ms)",
            Kalshi::new(),
            r#"{"type":"trade","sid":1,"seq":42,"msg":{"trade_id":"f851595a-abcd-4321-9876-1234567890ab","market_ticker":"KXBTCD-26FEB14-T100000","yes_price_dollars":"0.5500","no_price_dollars":"0.4500","count_fp":"10.00","taker_side":"yes","ts":1707667200,"ts_ms":1707667200123}}"#,
            true,
            |frame| {
                let r: KalshiTradeRaw<'_> = frame.decode().unwrap();
                black_box((
                    r.market_ticker,
                    f(r.yes_price_dollars),
                    f(r.count_fp),
                    r.taker_side,
                ));
            },
        ),
        measure(
            "kalshi ticker",
            Kalshi::new(),
            r#"{"type":"ticker","sid":1,"msg":{"market_id":"2ee24704-7e13-4248-97f5-3b7ffabf4325","market_ticker":"KXRANKLISTGOOGLESEARCH-26JAN-BIA","price":12,"yes_bid":11,"yes_ask":12,"price_dollars":"0.1200","yes_bid_dollars":"0.1100","yes_ask_dollars":"0.1200","volume":351970,"open_interest":182646,"dollar_volume":175985,"dollar_open_interest":91323,"ts":1732579880,"Clock":6598272994}}"#,
            false,
            |frame| {
                let r: KalshiTickerRaw<'_> = frame.decode().unwrap();
                black_box((r.market_ticker, f(r.yes_bid_dollars), f(r.yes_ask_dollars)));
            },
        ),
    ];
    println!("| message | typed (Decimal) ns | hand-written serde (f64) ns | venue-time scan ns |");
    println!("|---|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} |",
            row.what, row.typed, row.serde_f64, row.venue_time
        );
    }
    black_box(Decimal::ZERO);
}
