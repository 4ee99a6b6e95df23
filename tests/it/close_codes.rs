//! Close codes under a configured rule: `Error::Closed` records whether the code
//! was permanent under `permanent_close_codes` (not the default rule), and
//! `is_retryable()` agrees with what the supervisor did with it.
//!
//! Before this rule, `is_retryable()` used `default_permanent_close` whatever the
//! configuration said: both tests below failed on it.

use crate::support;

use std::time::Duration;

use resilient_ws::{
    default_permanent_close, Backoff, Client, Config, Error, Event, Messages, RawProtocol,
};
use support::exchange::{Exchange, Venue};
use support::{wait_event, SOON};

/// A Raw client whose only permanent close code is 1011 (not permanent by default;
/// 4001, permanent by default, is not permanent here).
async fn client_where_only_1011_is_permanent(exchange: &Exchange) -> (Client, Messages) {
    let config = Config::builder(exchange.url())
        .backoff(Backoff::new(Duration::from_millis(10), Duration::from_millis(50)).seed(3))
        .permanent_close_codes(|code| code == 1011)
        .build()
        .expect("valid config");
    Client::connect(config, RawProtocol)
        .await
        .expect("connects")
}

#[tokio::test]
async fn a_configured_permanent_code_is_not_retryable_and_stops_the_client() {
    assert!(
        !default_permanent_close(1011),
        "the test needs a default-retryable code"
    );
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let (client, _messages) = client_where_only_1011_is_permanent(&exchange).await;
    exchange.close_all(1011, "permanent under this config");
    let terminal = tokio::time::timeout(SOON, client.closed())
        .await
        .expect("the client stops")
        .expect_err("a permanent close ends the client with an error");
    assert!(
        matches!(
            terminal,
            Error::Closed {
                code: 1011,
                permanent: true,
                ..
            }
        ),
        "{terminal:?}"
    );
    assert!(!terminal.is_retryable(), "{terminal:?}");
    assert_eq!(exchange.handshakes(), 1, "the supervisor never reconnected");
    exchange.shutdown().await;
}

#[tokio::test]
async fn a_default_permanent_code_removed_from_the_config_is_retryable() {
    assert!(
        default_permanent_close(4001),
        "the test needs a default-permanent code"
    );
    let exchange = Exchange::start(Venue::Raw).await.unwrap();
    let (client, _messages) = client_where_only_1011_is_permanent(&exchange).await;
    let mut events = client.events();
    exchange.close_all(4001, "retried under this config");
    let cause = match wait_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await {
        Event::Disconnected { cause } => cause,
        other => panic!("{other:?}"),
    };
    assert!(
        matches!(
            cause,
            Error::Closed {
                code: 4001,
                permanent: false,
                ..
            }
        ),
        "{cause:?}"
    );
    assert!(cause.is_retryable(), "{cause:?}");
    // And the supervisor did retry: a second handshake.
    wait_event(&mut events, |e| matches!(e, Event::Connected { .. })).await;
    assert!(exchange.wait_handshakes(2, SOON).await);
    client.close().await.unwrap();
    exchange.shutdown().await;
}
