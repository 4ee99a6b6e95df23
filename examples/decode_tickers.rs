//! Decodes Kalshi and Kraken tickers into structs, read through one merged
//! stream per venue, with each frame's age.
//!
//! ```text
//! cargo run --example decode_tickers
//! ```
//!
//! It starts an embedded exchange per venue on 127.0.0.1 (the test exchange
//! of `tests/support/`), subscribes a few tickers on each as one
//! [`SubscriptionSet`](resilient_ws::SubscriptionSet), and decodes the first
//! frames with [`Frame::decode`](resilient_ws::Frame::decode): the payload
//! span the library found while routing (Kalshi `msg`, Kraken `data`), with
//! `&str` fields borrowed from the frame. Output goes to stdout.
//!
//! Field names follow the venues' docs: Kalshi's `ticker` message (`msg` with
//! `market_ticker`, `price_dollars`, `yes_bid_dollars`, `yes_ask_dollars`,
//! `volume_fp`, `ts_ms`: since its fixed-point migration prices and sizes are
//! decimal strings, and the integer fields are gone since 12 Mar 2026;
//! <https://docs.kalshi.com/asyncapi.yaml>, channel `ticker`) and Kraken v2's
//! ticker snapshot/update (`data`, a list of objects with `symbol`, `bid`,
//! `ask`, `last`, `volume`;
//! <https://docs.kraken.com/exchange/api-reference/spot-websocket-v2/ticker>,
//! section "Snapshot / Update").

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use futures::StreamExt;
use resilient_ws::{Client, Config, Kalshi, Kraken, Protocol, SubscriptionSet, Topic, Update};
use serde::Deserialize;
use support::exchange::{Exchange, Venue};

/// A Kalshi `ticker` message (`msg`). Prices are dollars and sizes
/// contracts, as fixed-point strings (`"0.4800"`, `"33896.00"`): borrowed as
/// text here, to be parsed into the decimal type of your choice (never a
/// float if the exact value matters).
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // the fields are shown through `Debug`
struct KalshiTicker<'a> {
    market_ticker: &'a str,
    price_dollars: &'a str,
    yes_bid_dollars: &'a str,
    yes_ask_dollars: &'a str,
    volume_fp: &'a str,
    /// When the venue made the update, Unix milliseconds.
    ts_ms: u64,
}

/// One item of a Kraken v2 `ticker` message (`data` is a list of them).
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // the fields are shown through `Debug`
struct KrakenTicker<'a> {
    symbol: &'a str,
    bid: f64,
    ask: f64,
    last: f64,
    volume: f64,
}

const SYMBOLS: [&str; 3] = ["AAA", "BBB", "CCC"];
const FRAMES: usize = 6;

async fn open<P: Protocol>(
    venue: Venue,
    protocol: P,
) -> Result<(Exchange, Client, SubscriptionSet), Box<dyn std::error::Error>> {
    let exchange = Exchange::start(venue).await?;
    let config = Config::builder(exchange.url()).build()?;
    let (client, _unsolicited) = Client::connect(config, protocol).await?;
    let topics = SYMBOLS
        .iter()
        .map(|s| Topic::new("ticker").symbol(*s))
        .collect();
    let set = client.subscribe_set(topics).await?;
    let symbols = SYMBOLS.iter().map(|s| (*s).to_owned()).collect();
    exchange.start_stream(symbols, Duration::from_millis(20));
    Ok((exchange, client, set))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (kalshi_exchange, kalshi, mut set) = open(Venue::Kalshi, Kalshi::new()).await?;
    for _ in 0..FRAMES {
        let Some(item) = set.next().await else { break };
        if let Ok(Update::Data(frame)) = item.item {
            let tick: KalshiTicker<'_> = frame.decode()?;
            println!(
                "kalshi sub={} seq={:?} age={:?} {tick:?}",
                item.client_id,
                frame.seq(),
                frame.age()
            );
        }
    }
    kalshi.close().await?;
    kalshi_exchange.shutdown().await;

    let (kraken_exchange, kraken, mut set) = open(Venue::Kraken, Kraken::new()).await?;
    for _ in 0..FRAMES {
        let Some(item) = set.next().await else { break };
        if let Ok(Update::Data(frame)) = item.item {
            let ticks: Vec<KrakenTicker<'_>> = frame.decode()?;
            for tick in ticks {
                println!(
                    "kraken sub={} topic={} {tick:?}",
                    item.client_id, item.topic
                );
            }
        }
    }
    kraken.close().await?;
    kraken_exchange.shutdown().await;
    Ok(())
}
