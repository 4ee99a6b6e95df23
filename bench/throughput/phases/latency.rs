//! Added latency: send-to-consumer delay at a fixed rate, resilient-ws vs raw.

use super::*;

pub(crate) struct Latency {
    pub(crate) p50: u64,
    pub(crate) p99: u64,
    pub(crate) p999: u64,
    pub(crate) max: u64,
    pub(crate) samples: usize,
    pub(crate) rate: f64,
}

impl Latency {
    pub(crate) fn from_samples(mut samples: Vec<u64>, warmup: usize, elapsed: Duration) -> Latency {
        let sent = samples.len();
        let mut kept = samples.split_off(warmup.min(samples.len()));
        kept.sort_unstable();
        Latency {
            p50: percentile(&kept, 0.50),
            p99: percentile(&kept, 0.99),
            p999: percentile(&kept, 0.999),
            max: kept.last().copied().unwrap_or(0),
            samples: kept.len(),
            rate: sent as f64 / elapsed.as_secs_f64(),
        }
    }
}

pub(crate) async fn latency_raw(server: &Server, count: u64, interval: Duration) -> Latency {
    let (mut ws, sids) = raw_connect(&server.url(), 1).await;
    let conn = server.conn_with(1).await;
    let mut samples = Vec::with_capacity(count as usize);
    let mut counts = [0u64; 1];
    let start = Instant::now();
    let done = conn.paced(count, interval, 1);
    while (samples.len() as u64) < count {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let Ok(routing) = serde_json::from_str::<Routing<'_>>(text.as_str()) else {
                    continue;
                };
                if let Some(&idx) = routing.sid.and_then(|sid| sids.get(&sid)) {
                    counts[idx] += 1;
                    if let Some(ts) = extract_ts(text.as_str()) {
                        samples.push(now_ns().saturating_sub(ts));
                    }
                }
            }
            Some(Ok(_)) => {}
            other => panic!("raw: stream ended early: {other:?}"),
        }
    }
    let elapsed = start.elapsed();
    let _ = done.await;
    let _ = ws.close(None).await;
    Latency::from_samples(samples, (count / 10) as usize, elapsed)
}

pub(crate) async fn latency_lib(server: &Server, count: u64, interval: Duration) -> Latency {
    let (client, _messages) = Client::connect(config(&server.url()), Kalshi::new())
        .await
        .expect("connect");
    let mut sub = subscribe_all(&client, 1, QueueOptions::default())
        .await
        .pop()
        .expect("one subscription");
    let conn = server.conn_with(1).await;
    let consumer = tokio::spawn(async move {
        let mut samples = Vec::with_capacity(count as usize);
        while (samples.len() as u64) < count {
            let frame = next_data(&mut sub).await.expect("data");
            if let Some(ts) = frame.as_text().and_then(extract_ts) {
                samples.push(now_ns().saturating_sub(ts));
            }
        }
        samples
    });
    let start = Instant::now();
    let done = conn.paced(count, interval, 1);
    let samples = consumer.await.expect("consumer");
    let elapsed = start.elapsed();
    let _ = done.await;
    let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
    Latency::from_samples(samples, (count / 10) as usize, elapsed)
}

/// The same measure through the consumer-driven [`Feed`](resilient_ws::Feed):
/// the task that reads the socket is the one that takes the sample.
pub(crate) async fn latency_feed(server: &Server, count: u64, interval: Duration) -> Latency {
    let (handle, mut feed) = resilient_ws::Feed::new(config(&server.url()), Kalshi::new());
    // Subscribing needs the feed polled: subscribe from another task.
    let mut subscribing = tokio::spawn({
        let handle = handle.clone();
        async move { handle.subscribe_many(topics(1)).await }
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
    let conn = server.conn_with(1).await;
    let mut samples = Vec::with_capacity(count as usize);
    let start = Instant::now();
    let done = conn.paced(count, interval, 1);
    while (samples.len() as u64) < count {
        match feed.next().await.expect("feed ended").item {
            Ok(Update::Data(frame)) => {
                if let Some(ts) = frame.as_text().and_then(extract_ts) {
                    samples.push(now_ns().saturating_sub(ts));
                }
            }
            Ok(_) => {}
            Err(error) if error.is_retryable() => {}
            Err(error) => panic!("feed: subscription ended: {error}"),
        }
    }
    let elapsed = start.elapsed();
    let _ = done.await;
    // Close: the feed must be polled until it ends.
    let closing = tokio::spawn(async move { handle.close().await });
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while feed.next().await.is_some() {}
    })
    .await;
    let _ = closing.await;
    Latency::from_samples(samples, (count / 10) as usize, elapsed)
}
