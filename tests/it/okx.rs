//! The OKX v5 adapter against the op/args test server (issue 15): acks and
//! errors by request id, the text heartbeat, and the book checksum verified
//! on the wire text, with a resync after a bad checksum or a sequence gap.

use crate::support;

use std::time::Duration;

use resilient_ws::{
    Client, ConfigBuilder, Error, Event, Messages, Okx, Topic, Update, VenueErrorKind,
};
use support::op_venue::{self, next_data, Dialect, OpVenue};
use support::{next, okx, wait_event, wait_until};

const SEED: u64 = 7;

async fn connect(
    venue: &OpVenue,
    b: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> (Client, Messages) {
    op_venue::connect(venue, SEED, Okx::new(), b).await
}

#[tokio::test]
async fn tickers_and_trades_are_acked_by_request_id_and_routed() {
    let venue = OpVenue::start(Dialect::Okx).await.unwrap();
    let (client, _messages) = connect(&venue, |b| b).await;
    let mut tickers = client
        .subscribe(Topic::new("tickers").symbol("BTC-USDT"))
        .await
        .unwrap();
    let mut trades = client
        .subscribe(Topic::new("trades").symbol("ETH-USDT"))
        .await
        .unwrap();
    let subs = venue.ops("subscribe");
    assert_eq!(subs.len(), 2);
    assert!(subs
        .iter()
        .all(|s| s["id"].as_str().is_some_and(|id| id.parse::<u64>().is_ok())));
    okx::push(&venue, "trades", "ETH-USDT", 1);
    okx::push(&venue, "tickers", "BTC-USDT", 2);
    assert_eq!(next_data(&mut trades).await["data"][0]["last"], "1");
    assert_eq!(next_data(&mut tickers).await["data"][0]["last"], "2");
    drop(trades);
    wait_until("unsubscribe sent", || venue.ops("unsubscribe").len() == 1).await;
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_refused_subscribe_ends_with_the_classified_venue_error() {
    let venue = OpVenue::start(Dialect::Okx).await.unwrap();
    venue
        .state()
        .rejects
        .insert("NOPE-USDT".into(), (60018, "channel doesn't exist".into()));
    let (client, _messages) = connect(&venue, |b| b).await;
    match client
        .subscribe(Topic::new("tickers").symbol("NOPE-USDT"))
        .await
    {
        Err(Error::Subscription { error, .. }) => {
            assert_eq!(error.code, Some(60018));
            assert_eq!(error.kind, VenueErrorKind::Permanent);
        }
        other => panic!("{other:?}"),
    }
    // The connection and other subscriptions are unaffected.
    assert!(client
        .subscribe(Topic::new("tickers").symbol("BTC-USDT"))
        .await
        .is_ok());
    assert_eq!(venue.handshakes(), 1);
}

#[tokio::test]
async fn books_verify_and_a_bad_checksum_or_a_gap_resyncs() {
    let venue = OpVenue::start(Dialect::Okx).await.unwrap();
    let (client, _messages) = connect(&venue, |b| b).await;
    let mut events = client.events();
    let mut book = client
        .subscribe(Topic::new("books").symbol("BTC-USDT"))
        .await
        .unwrap();
    assert_eq!(next_data(&mut book).await["action"], "snapshot");
    okx::update(&venue, "BTC-USDT", &[("100.45", "2")], &[("100.6", "0")]);
    okx::update(&venue, "BTC-USDT", &[("100", "7.5")], &[("100.7", "1")]);
    assert_eq!(next_data(&mut book).await["action"], "update");
    assert_eq!(next_data(&mut book).await["action"], "update");
    assert_eq!(client.stats().checksum_mismatches, 0);

    // A corrupted checksum: the signal, then a resubscribe and a new snapshot.
    venue.state().corrupt_checksum.insert("BTC-USDT".into());
    okx::update(&venue, "BTC-USDT", &[("100.1", "1")], &[]);
    let _ = next_data(&mut book).await;
    match next(&mut book).await {
        Some(Ok(Update::ChecksumMismatch { expected, computed })) => assert_ne!(expected, computed),
        other => panic!("expected a checksum signal, got {other:?}"),
    }
    wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    assert_eq!(next_data(&mut book).await["action"], "snapshot");
    assert_eq!(venue.ops("subscribe").len(), 2);

    // A skipped sequence number resyncs the same way.
    venue.state().gap.insert("BTC-USDT".into());
    okx::update(&venue, "BTC-USDT", &[("100.2", "1")], &[]);
    let _ = next_data(&mut book).await;
    assert!(matches!(
        next(&mut book).await,
        Some(Ok(Update::ChecksumMismatch { .. }))
    ));
    wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    assert_eq!(next_data(&mut book).await["action"], "snapshot");
    assert_eq!(client.stats().checksum_mismatches, 2);
    // Verified again after the new snapshot.
    okx::update(&venue, "BTC-USDT", &[("99", "1")], &[]);
    assert_eq!(next_data(&mut book).await["action"], "update");
    assert_eq!(client.stats().checksum_mismatches, 2);
}

#[tokio::test]
async fn the_text_heartbeat_keeps_the_link_and_an_unanswered_one_reconnects() {
    let venue = OpVenue::start(Dialect::Okx).await.unwrap();
    let (client, _messages) = connect(&venue, |b| {
        b.ping_interval(Duration::from_millis(50))
            .pong_timeout(Duration::from_millis(200))
    })
    .await;
    let mut events = client.events();
    wait_until("three text pings", || {
        venue
            .state()
            .received
            .iter()
            .filter(|(_, t)| t == "ping")
            .count()
            >= 3
    })
    .await;
    assert_eq!(venue.handshakes(), 1, "answered pings keep the connection");
    venue.state().answer_pings = false;
    wait_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await;
    venue.state().answer_pings = true;
    wait_event(&mut events, |e| matches!(e, Event::Connected { .. })).await;
    assert!(venue.handshakes() >= 2);
}

#[tokio::test]
async fn a_dropped_connection_resubscribes_with_a_fresh_snapshot() {
    let venue = OpVenue::start(Dialect::Okx).await.unwrap();
    let (client, _messages) = connect(&venue, |b| b).await;
    let mut events = client.events();
    let mut book = client
        .subscribe(Topic::new("books").symbol("BTC-USDT"))
        .await
        .unwrap();
    assert_eq!(next_data(&mut book).await["action"], "snapshot");
    venue.drop_all();
    wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    assert_eq!(next_data(&mut book).await["action"], "snapshot");
    okx::update(&venue, "BTC-USDT", &[("100.3", "4")], &[]);
    assert_eq!(next_data(&mut book).await["action"], "update");
    assert_eq!(client.stats().checksum_mismatches, 0);
}
