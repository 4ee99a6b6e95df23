//! The built-in Kraken token source (feature `kraken-token`) against a local
//! HTTPS `GetWebSocketsToken` endpoint: signed calls, one token per
//! connection, and `ESession:Invalid session` fetches a fresh one.
#![cfg(feature = "kraken-token")]

use crate::support;

use std::time::Duration;

use resilient_ws::{
    Backoff, Client, Config, Error, Event, Kraken, KrakenTokenSource, Topic, VenueErrorKind,
};
use serde_json::Value;
use support::exchange::{Exchange, Venue};
use support::rest::TokenEndpoint;
use support::tls::TestCa;
use support::wait_event;

const KEY: &str = "api-key-1";
/// The secret of Kraken's published example (not a live key).
const SECRET: &str =
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

fn tokens_sent(exchange: &Exchange) -> Vec<String> {
    exchange
        .received()
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.text).ok())
        .filter_map(|v| v["params"]["token"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn tokens_come_from_get_websockets_token_and_an_invalid_session_fetches_a_new_one() {
    let ca = TestCa::new();
    let rest = TokenEndpoint::start(&ca, KEY, SECRET).await;
    let tls = resilient_ws::tls::client_config_with_roots(ca.roots()).unwrap();
    let source = KrakenTokenSource::with_options(KEY, SECRET, &rest.url(), tls).unwrap();
    assert!(!format!("{source:?}").contains(SECRET));

    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    exchange.require_token(Some("tok-1"));
    let config = Config::builder(exchange.url())
        .backoff(Backoff::new(Duration::from_millis(10), Duration::from_millis(100)).jitter(0.0))
        .idle_timeout(None)
        .token_source(source)
        .build()
        .unwrap();
    let (client, _messages) = Client::connect(config, Kraken::new()).await.unwrap();
    let mut events = client.events();
    let _executions = client.subscribe(Topic::new("executions")).await.unwrap();
    assert_eq!(tokens_sent(&exchange), vec!["tok-1"]);

    exchange.require_token(Some("tok-2"));
    let _balances = client
        .subscribe(Topic::new("balances"))
        .await
        .expect("resolves after the refresh");
    match wait_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await {
        Event::Disconnected { cause } => assert_eq!(
            cause.venue_error().map(|v| v.kind),
            Some(VenueErrorKind::SessionExpired)
        ),
        _ => unreachable!(),
    }
    {
        let log = rest.log.lock().unwrap();
        assert_eq!((log.calls, log.bad_signatures), (2, 0), "{log:?}");
        assert!(log.nonces.windows(2).all(|w| w[0] < w[1]));
    }
    // executions and balances on connection 1 with tok-1 (balances refused),
    // both replayed on connection 2 with the fresh tok-2.
    assert_eq!(tokens_sent(&exchange), ["tok-1", "tok-1", "tok-2", "tok-2"]);
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_refused_token_call_is_a_token_error_with_krakens_text_only() {
    let ca = TestCa::new();
    let rest = TokenEndpoint::start(&ca, KEY, SECRET).await;
    let tls = resilient_ws::tls::client_config_with_roots(ca.roots()).unwrap();
    // A valid base64 secret that is not the endpoint's: the signature fails.
    let wrong = "d3Jvbmctc2VjcmV0LWJ5dGVz";
    let source = KrakenTokenSource::with_options(KEY, wrong, &rest.url(), tls).unwrap();
    let exchange = Exchange::start(Venue::Kraken).await.unwrap();
    let config = Config::builder(exchange.url())
        .backoff(
            Backoff::new(Duration::from_millis(1), Duration::from_millis(1)).max_attempts(Some(1)),
        )
        .token_source(source)
        .build()
        .unwrap();
    let Err(error) = Client::connect(config, Kraken::new()).await else {
        panic!("the client should give up");
    };
    let text = format!("{error} {error:?}");
    assert!(text.contains("EAPI:Invalid key"), "{text}");
    assert!(!text.contains(wrong), "{text}");
    assert!(
        matches!(error, Error::Reconnect { ref last_error, .. } if matches!(**last_error, Error::Token { .. }))
    );
    assert_eq!(rest.log.lock().unwrap().bad_signatures, 1);
}
