//! Reads a few Kalshi tickers through the consumer-driven [`Feed`]: this
//! program's own task reads the socket, runs the session and yields the
//! items; another task subscribes and, after a while, drops the connection
//! on the exchange's side and then closes.
//!
//! ```text
//! cargo run --example feed
//! ```
//!
//! It starts the embedded test exchange of `tests/support/` on 127.0.0.1.
//! The drop shows the feed reconnecting and replaying the subscriptions by
//! itself: items go on under the same client ids.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use futures::StreamExt;
use resilient_ws::{Config, Feed, Kalshi, Topic, Update};
use support::exchange::{Exchange, Venue};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let exchange = Exchange::start(Venue::Kalshi).await?;
    let symbols = ["KXBTC", "KXETH", "KXSOL"];
    let _stream = exchange.start_stream(
        symbols.iter().map(|s| (*s).to_owned()).collect(),
        Duration::from_millis(20),
    );
    let (handle, mut feed) = Feed::new(Config::builder(exchange.url()).build()?, Kalshi::new());

    // Commands are answered while the feed is polled: send them from
    // another task (or `select!` them with `feed.next()`).
    let commands = tokio::spawn({
        let handle = handle.clone();
        let exchange = exchange.clone();
        async move {
            let topics = symbols
                .iter()
                .map(|s| Topic::new("ticker").symbol(*s))
                .collect();
            for result in handle.subscribe_many(topics).await? {
                println!("subscribed: {}", result?);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            println!("-- the exchange drops every connection --");
            exchange.abort_all();
            tokio::time::sleep(Duration::from_millis(300)).await;
            handle.client().close().await
        }
    });

    let mut data = 0u64;
    while let Some(item) = feed.next().await {
        match item.item {
            Ok(Update::Data(_)) => data += 1,
            Ok(signal) => println!("{} {}: {signal:?}", item.client_id, item.topic),
            Err(error) => println!("{} {}: {error}", item.client_id, item.topic),
        }
    }
    commands.await??;
    let stats = feed.stats();
    println!(
        "{data} data frames; routed {} = delivered {} + dropped {} + queued {}; reconnects {}",
        stats.routed,
        stats.delivered,
        stats.dropped,
        stats.queued,
        handle.client().stats().reconnects
    );
    Ok(())
}
