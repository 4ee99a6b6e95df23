//! Connecting to the real venues: Kalshi private channels, Kraken private
//! channels (feature `kraken-token`), a custom CA and a proxy.
//!
//! ```text
//! KALSHI_KEY_ID=... KALSHI_KEY_PEM=path/to/key.pem cargo run --example venue_access -- kalshi
//! KRAKEN_API_KEY=... KRAKEN_API_SECRET=... cargo run --example venue_access --features kraken-token -- kraken
//! CA_PEM=path/to/ca.pem WSS_URL=wss://host:port/path cargo run --example venue_access -- ca
//! HTTPS_PROXY=http://user:pw@proxy:3128 cargo run --example venue_access -- proxy
//! ```
//!
//! Without the credentials a mode needs, it prints this usage and exits.

use std::time::Duration;

use futures::StreamExt;
use resilient_ws::rustls::pki_types::{pem::PemObject, CertificateDer};
use resilient_ws::{Client, Config, Kalshi, KalshiAuth, Kraken, RawProtocol, Subscription, Topic};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "usage: venue_access <kalshi|kraken|ca|proxy>
  kalshi  needs KALSHI_KEY_ID and KALSHI_KEY_PEM (a PKCS#8 PEM file)
  kraken  needs KRAKEN_API_KEY and KRAKEN_API_SECRET, and --features kraken-token
  ca      needs CA_PEM and WSS_URL
  proxy   needs HTTPS_PROXY or ALL_PROXY (http:// or socks5://)";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn show(mut subscription: Subscription, n: usize) {
    for _ in 0..n {
        match tokio::time::timeout(Duration::from_secs(30), subscription.next()).await {
            Ok(Some(item)) => println!("{item:?}"),
            _ => break,
        }
    }
}

async fn kalshi(key_id: String, pem_path: String) -> Result<()> {
    let pem = std::fs::read_to_string(pem_path)?;
    let config = Config::builder("wss://external-api-ws.kalshi.com/trade-api/ws/v2")
        .handshake_headers(KalshiAuth::new(key_id, &pem)?)
        .build()?;
    let (client, _unsolicited) = Client::connect(config, Kalshi::new()).await?;
    show(client.subscribe(Topic::new("fill")).await?, 5).await;
    Ok(client.close().await?)
}

#[cfg(feature = "kraken-token")]
async fn kraken(key: String, secret: String) -> Result<()> {
    let tokens = resilient_ws::KrakenTokenSource::new(key, &secret)?;
    let config = Config::builder("wss://ws-auth.kraken.com/v2")
        .token_source(tokens)
        .build()?;
    let (client, _unsolicited) = Client::connect(config, Kraken::new()).await?;
    show(client.subscribe(Topic::new("executions")).await?, 5).await;
    Ok(client.close().await?)
}

#[cfg(not(feature = "kraken-token"))]
async fn kraken(_key: String, _secret: String) -> Result<()> {
    Err("build with --features kraken-token for the Kraken token source".into())
}

async fn custom_ca(ca_pem: String, url: String) -> Result<()> {
    let mut roots = resilient_ws::tls::root_store();
    roots.add(CertificateDer::from_pem_file(ca_pem)?)?;
    let config = Config::builder(url)
        .tls_config(resilient_ws::tls::client_config_with_roots(roots)?)
        .build()?;
    let (client, mut frames) = Client::connect(config, RawProtocol).await?;
    if let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(30), frames.next()).await {
        println!("{frame:?}");
    }
    Ok(client.close().await?)
}

async fn proxy() -> Result<()> {
    let config = Config::builder("wss://ws.kraken.com/v2")
        .proxy_from_env()?
        .build()?;
    let (client, _unsolicited) = Client::connect(config, Kraken::new()).await?;
    show(
        client
            .subscribe(Topic::new("ticker").symbol("BTC/USD"))
            .await?,
        3,
    )
    .await;
    Ok(client.close().await?)
}

#[tokio::main]
async fn main() -> Result<()> {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let result = match mode.as_str() {
        "kalshi" => match (var("KALSHI_KEY_ID"), var("KALSHI_KEY_PEM")) {
            (Some(id), Some(pem)) => kalshi(id, pem).await,
            _ => {
                println!("{USAGE}");
                return Ok(());
            }
        },
        "kraken" => match (var("KRAKEN_API_KEY"), var("KRAKEN_API_SECRET")) {
            (Some(key), Some(secret)) => kraken(key, secret).await,
            _ => {
                println!("{USAGE}");
                return Ok(());
            }
        },
        "ca" => match (var("CA_PEM"), var("WSS_URL")) {
            (Some(ca), Some(url)) => custom_ca(ca, url).await,
            _ => {
                println!("{USAGE}");
                return Ok(());
            }
        },
        "proxy" if var("HTTPS_PROXY").or(var("ALL_PROXY")).is_some() => proxy().await,
        _ => {
            println!("{USAGE}");
            return Ok(());
        }
    };
    result
}
