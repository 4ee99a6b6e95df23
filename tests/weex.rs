//! The WEEX adapter against the op/args test server (issue 15): acks matched
//! without request ids, documented error codes, and the server heartbeat
//! answered so the venue keeps the connection.

mod support;

use std::time::Duration;

use resilient_ws::{
    Backoff, Client, Config, ConfigBuilder, Error, Event, Messages, Subscription, Topic, Update,
    VenueErrorKind, Weex,
};
use serde_json::Value;
use support::op_venue::{Dialect, OpVenue};
use support::{next, wait_event, wait_until, weex};

fn fast(url: &str) -> ConfigBuilder {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).seed(5))
        .idle_timeout(None)
        .rate_limit(1000, Duration::from_secs(1))
}

async fn connect(
    venue: &OpVenue,
    b: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> (Client, Messages) {
    Client::connect(b(fast(&venue.url())).build().unwrap(), Weex::new())
        .await
        .unwrap()
}

async fn next_data(sub: &mut Subscription) -> Value {
    loop {
        match next(sub).await {
            Some(Ok(Update::Data(frame))) => {
                return serde_json::from_str(frame.as_text().unwrap()).unwrap()
            }
            Some(Ok(Update::Resubscribed { .. })) => continue,
            other => panic!("expected data, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn ticker_depth_and_trades_are_acked_and_routed() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    let (client, _messages) = connect(&venue, |b| b).await;
    let mut subs = Vec::new();
    for channel in ["ticker", "depth", "trades"] {
        subs.push(
            client
                .subscribe(Topic::new(channel).symbol("BTCUSDT"))
                .await
                .unwrap(),
        );
    }
    let requests = venue.ops("subscribe");
    assert_eq!(requests.len(), 3);
    assert!(
        requests.iter().all(|r| r.get("id").is_none()),
        "{requests:?}"
    );
    for (n, channel) in ["trades", "ticker", "depth"].into_iter().enumerate() {
        weex::push(&venue, channel, "BTCUSDT", n as u64);
    }
    for (sub, channel) in subs.iter_mut().zip(["ticker", "depth", "trades"]) {
        assert_eq!(next_data(sub).await["arg"]["channel"], channel);
    }
    subs.pop();
    wait_until("unsubscribe sent", || venue.ops("unsubscribe").len() == 1).await;
    assert_eq!(venue.ops("unsubscribe")[0]["args"][0]["channel"], "trades");
}

#[tokio::test]
async fn documented_error_codes_are_classified() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    {
        let mut state = venue.state();
        state
            .rejects
            .insert("AUTH".into(), (40002, "invalid sign".into()));
        state
            .rejects
            .insert("BUSY".into(), (40029, "too many requests".into()));
        state
            .rejects
            .insert("DOWN".into(), (50001, "system busy".into()));
    }
    let (client, _messages) = connect(&venue, |b| b).await;
    for (symbol, kind, retry) in [
        ("AUTH", VenueErrorKind::Permanent, false),
        ("BUSY", VenueErrorKind::RateLimited, true),
        ("DOWN", VenueErrorKind::Transient, false),
    ] {
        match client.subscribe(Topic::new("ticker").symbol(symbol)).await {
            Err(Error::Subscription { error, .. }) => {
                assert_eq!(error.kind, kind, "{symbol}");
                assert_eq!(error.retry_after().is_some(), retry, "{symbol}");
            }
            other => panic!("{symbol}: {other:?}"),
        }
    }
    assert!(client
        .subscribe(Topic::new("ticker").symbol("OK"))
        .await
        .is_ok());
}

#[tokio::test]
async fn server_heartbeats_are_answered_and_the_venue_keeps_the_connection() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    weex::heartbeats(&venue, Duration::from_millis(20), true);
    let (client, _messages) = connect(&venue, |b| b).await;
    let mut sub = client
        .subscribe(Topic::new("ticker").symbol("BTCUSDT"))
        .await
        .unwrap();
    wait_until("ten answered pings", || venue.state().pongs.len() >= 10).await;
    assert_eq!(venue.handshakes(), 1, "every ping was answered in time");
    // Each pong echoes its ping's time.
    let pongs = venue.state().pongs.clone();
    for (i, time) in pongs.iter().enumerate() {
        assert_eq!(time, &Value::from((i + 1).to_string()));
    }
    weex::push(&venue, "ticker", "BTCUSDT", 1);
    assert_eq!(next_data(&mut sub).await["data"][0]["n"], 1);
}

#[tokio::test]
async fn swallowed_subscribes_time_out_and_a_drop_resubscribes() {
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    let (client, _messages) =
        connect(&venue, |b| b.request_timeout(Duration::from_millis(300))).await;
    let mut events = client.events();
    let mut sub = client
        .subscribe(Topic::new("depth").symbol("ETHUSDT"))
        .await
        .unwrap();
    venue.state().drop_subscribes = true;
    assert!(client
        .subscribe(Topic::new("depth").symbol("LOST"))
        .await
        .is_err());
    venue.state().drop_subscribes = false;
    venue.drop_all();
    wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    weex::push(&venue, "depth", "ETHUSDT", 9);
    assert_eq!(next_data(&mut sub).await["data"][0]["n"], 9);
}

#[tokio::test]
async fn a_client_that_does_not_answer_heartbeats_is_dropped() {
    // The fault knob proves the answers matter: a raw client never replies.
    let venue = OpVenue::start(Dialect::Weex).await.unwrap();
    weex::heartbeats(&venue, Duration::from_millis(10), true);
    let config = fast(&venue.url()).build().unwrap();
    let (client, _messages) = Client::connect(config, resilient_ws::RawProtocol)
        .await
        .unwrap();
    let mut events = client.events();
    wait_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await;
    assert!(venue.state().pongs.is_empty());
}
