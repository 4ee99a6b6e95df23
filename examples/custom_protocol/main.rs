//! The how-to-add-a-venue example: a whole venue adapter in one small file
//! ([`tiny.rs`](tiny)), used for a durable subscription against the embedded test
//! exchange on 127.0.0.1 (Kalshi-style), through an injected connection reset.
//!
//! ```text
//! cargo run --example custom_protocol
//! ```

#[path = "../../tests/support/mod.rs"]
mod support;
mod tiny;

use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;
use resilient_ws::{Backoff, Client, Config, Event, Topic, Update};
use serde_json::json;
use support::exchange::{Exchange, Venue};
use tiny::Tiny;

/// How long each step may take before the example reports failure.
const STEP: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("custom_protocol: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let exchange = Exchange::start(Venue::Kalshi).await?;
    let config = Config::builder(exchange.url())
        .backoff(Backoff::new(
            Duration::from_millis(50),
            Duration::from_secs(1),
        ))
        .build()?;
    let (client, _messages) = Client::connect(config, Tiny).await?;
    let mut events = client.events();
    let mut sub = client.subscribe(Topic::new("ticker").symbol("T")).await?;

    exchange.publish("T", json!({"price": 51}));
    print_next(&mut sub).await?;

    // The connection drops; the client reconnects and replays the subscription
    // with the same `Tiny`, and the same `Subscription` keeps streaming.
    exchange.abort_all();
    tokio::time::timeout(STEP, async {
        while let Some(event) = events.next().await {
            if matches!(event, Event::Resubscribed { .. }) {
                break;
            }
        }
    })
    .await?;
    exchange.publish("T", json!({"price": 52}));
    print_next(&mut sub).await?;

    client.close().await?;
    exchange.shutdown().await;
    Ok(())
}

/// Prints the next data frame of `sub`, skipping lifecycle signals.
async fn print_next(
    sub: &mut resilient_ws::Subscription,
) -> Result<(), Box<dyn std::error::Error>> {
    loop {
        match tokio::time::timeout(STEP, sub.next()).await? {
            Some(Ok(Update::Data(frame))) => {
                println!("data: {}", frame.as_text().unwrap_or("<binary>"));
                return Ok(());
            }
            Some(Ok(_signal)) => continue,
            Some(Err(error)) => return Err(error.into()),
            None => return Err("the subscription ended".into()),
        }
    }
}
