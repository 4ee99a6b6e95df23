//! Throughput through the consumer-driven [`Feed`]: the same frames, config
//! and counting as the library cells (`throughput.rs`), but the socket is
//! read, the session run and the items yielded in the one task that counts
//! them, as the raw loop (a) does.

use super::*;
use resilient_ws::{Feed, FeedHandle, Protocol};

pub(crate) async fn throughput_feed(
    server: &Server,
    venue: Venue,
    subs: usize,
    bytes: &Arc<Vec<u8>>,
    frames: u64,
) -> Run {
    let config = lossless_config(server);
    match venue {
        Venue::Kalshi => {
            let (handle, feed) = Feed::new(config, Kalshi::new());
            run_feed(server, venue, subs, bytes, frames, handle, feed).await
        }
        Venue::Kraken => {
            let (handle, feed) = Feed::new(config, Kraken::new());
            run_feed(server, venue, subs, bytes, frames, handle, feed).await
        }
    }
}

async fn run_feed<P: Protocol>(
    server: &Server,
    venue: Venue,
    subs: usize,
    bytes: &Arc<Vec<u8>>,
    frames: u64,
    handle: FeedHandle,
    mut feed: Feed<P>,
) -> Run {
    // Subscribing needs the feed polled: subscribe from another task and
    // poll the feed here until the acks are in.
    let mut subscribing = tokio::spawn({
        let handle = handle.clone();
        let topics = venue.topics(subs);
        async move { handle.subscribe_many(topics).await }
    });
    loop {
        tokio::select! {
            done = &mut subscribing => {
                for result in done.expect("subscribe task").expect("subscribe_many") {
                    result.expect("subscribed");
                }
                break;
            }
            item = feed.next() => assert!(item.is_some(), "feed ended while subscribing"),
        }
    }
    let conn = server.conn_with(subs).await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let watchdog = tokio::spawn({
        let client = handle.client().clone();
        async move {
            while client.stats().queues.routed < frames {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = stop_tx.send(true);
        }
    });
    let cpu0 = cpu_time();
    let start = Instant::now();
    let done = conn.blast(Arc::clone(bytes));
    let (end, delivered, items) = count_data(feed.map(|item| item.item), frames, stop_rx).await;
    let cpu = cpu_time() - cpu0;
    watchdog.abort();
    let _ = done.await;
    let stats = handle.client().stats();
    assert_eq!(stats.gaps, 0, "feed saw sequence gaps: {stats:?}");
    // Close: the feed must be polled until it ends.
    let mut feed = items.into_inner();
    let closing = tokio::spawn({
        let handle = handle.clone();
        async move { handle.close().await }
    });
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while feed.next().await.is_some() {}
    })
    .await;
    let _ = closing.await;
    Run {
        msgs_per_sec: delivered as f64 / (end - start).as_secs_f64(),
        cpu_ns_per_msg: cpu.as_nanos() as f64 / frames as f64,
        dropped: stats.queues.dropped,
    }
}
