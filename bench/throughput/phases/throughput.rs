//! Throughput: frames per second through resilient-ws vs the raw loops of
//! `baselines.rs`, for one venue's ticker frames on the current runtime, with 1
//! and 100 subscriptions.

use super::*;

pub(crate) struct Run {
    /// Frames delivered to the consumers per second.
    pub(crate) msgs_per_sec: f64,
    pub(crate) cpu_ns_per_msg: f64,
    /// Frames the library's queues dropped (overflow).
    pub(crate) dropped: u64,
}

impl Run {
    /// A raw loop's run: `frames` read in `elapsed` for `cpu` of process time,
    /// nothing dropped (the loops have no queue).
    pub(crate) fn lossless(frames: u64, elapsed: Duration, cpu: Duration) -> Run {
        Run {
            msgs_per_sec: frames as f64 / elapsed.as_secs_f64(),
            cpu_ns_per_msg: cpu.as_nanos() as f64 / frames as f64,
            dropped: 0,
        }
    }
}

/// How the library side consumes its subscriptions.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Consumers {
    /// One task reading every subscription through `futures::stream::select_all`,
    /// as the baseline's one loop reads every sid.
    Merged,
    /// One task per subscription.
    TaskEach,
    /// One task reading a `SubscriptionSet` (the library's merged stream).
    Set,
}

/// Counts data messages from `stream` until `expected` arrived or `stop` is
/// raised. No timer per wait (a timeout armed on every empty queue cost the
/// library side ~100 ns a message that the baseline's plain loop never pays);
/// `stop` only ends a consumer whose queue dropped frames, which never arrive.
pub(crate) async fn count_data<S>(
    stream: S,
    expected: u64,
    stop: watch::Receiver<bool>,
) -> (Instant, u64, S)
where
    S: futures::Stream<Item = Result<Update, resilient_ws::Error>> + Unpin,
{
    let mut stopped = Box::pin(async move {
        let mut stop = stop;
        let _ = stop.wait_for(|stop| *stop).await;
    });
    let mut stream = stream;
    let mut count = 0u64;
    while count < expected {
        let item = tokio::select! {
            biased;
            item = stream.next() => item,
            () = &mut stopped => break,
        };
        match item {
            Some(Ok(Update::Data(_))) => count += 1,
            Some(Ok(_)) => {}
            Some(Err(error)) if error.is_retryable() => {}
            Some(Err(error)) => panic!("subscription ended: {error}"),
            None => panic!("stream ended after {count} frames"),
        }
    }
    (Instant::now(), count, stream)
}

/// The library side's config (the feed's too).
pub(crate) fn lossless_config(server: &Server) -> Config {
    // Lossless like the raw loop: a full queue stops the socket (TCP
    // backpressure) instead of dropping, so a consumer that falls behind for a
    // moment slows the stream down rather than voiding the run.
    Config::builder(server.url())
        .backoff(Backoff::immediate().max_attempts(None))
        .rate_limit(1000, Duration::from_secs(1))
        // The server blasts megabytes ahead of its pong; under callgrind (~50x
        // slower) the default 5 s pong deadline would fire and the bench server
        // only blasts the first connection. Liveness is not what is measured.
        .pong_timeout(Duration::from_secs(120))
        .overflow(Overflow::Block {
            timeout: Duration::from_secs(30),
        })
        .build()
        .expect("valid config")
}

pub(crate) async fn throughput_lib(
    server: &Server,
    venue: Venue,
    subs: usize,
    bytes: &Arc<Vec<u8>>,
    frames: u64,
    consumers: Consumers,
) -> Run {
    let config = lossless_config(server);
    let connected = match venue {
        Venue::Kalshi => Client::connect(config, Kalshi::new()).await,
        Venue::Kraken => Client::connect(config, Kraken::new()).await,
    };
    let (client, _messages) = connected.expect("connect");
    let subscriptions = subscribe_topics(&client, venue.topics(subs)).await;
    let conn = server.conn_with(subs).await;
    let per_sub = frames / subs as u64;
    let extra = (frames % subs as u64) as usize;
    let (stop_tx, stop_rx) = watch::channel(false);
    // Raises `stop` a second after every frame was routed, in case a queue
    // dropped some; normally the consumers finish long before.
    let watchdog = tokio::spawn({
        let client = client.clone();
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
    let mut tasks = Vec::with_capacity(subs);
    let mut merged = None;
    match consumers {
        Consumers::Set => {
            let mut set = client.subscribe_set(Vec::new()).await.expect("empty set");
            for sub in subscriptions {
                set.adopt(sub).expect("adopt");
            }
            merged = Some(tokio::spawn(async move {
                let (end, count, stream) =
                    count_data(set.map(|item| item.item), frames, stop_rx).await;
                drop(stream);
                (end, count, ())
            }));
        }
        Consumers::Merged => {
            merged = Some(tokio::spawn(async move {
                let (end, count, stream) =
                    count_data(futures::stream::select_all(subscriptions), frames, stop_rx).await;
                drop(stream);
                (end, count, ())
            }));
        }
        Consumers::TaskEach => {
            for (i, sub) in subscriptions.into_iter().enumerate() {
                let expected = per_sub + u64::from(i < extra);
                tasks.push(tokio::spawn(count_data(sub, expected, stop_rx.clone())));
            }
        }
    }
    let done = conn.blast(Arc::clone(bytes));
    let mut end = start;
    let mut delivered = 0u64;
    if let Some(task) = merged {
        let (finished, count, ()) = task.await.expect("consumer task");
        end = finished;
        delivered = count;
    }
    let mut keep = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (finished, count, sub) = task.await.expect("consumer task");
        end = end.max(finished);
        delivered += count;
        keep.push(sub);
    }
    let cpu = cpu_time() - cpu0;
    watchdog.abort();
    let _ = done.await;
    let stats = client.stats();
    assert_eq!(stats.gaps, 0, "library saw sequence gaps: {stats:?}");
    drop(keep);
    let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
    Run {
        msgs_per_sec: delivered as f64 / (end - start).as_secs_f64(),
        cpu_ns_per_msg: cpu.as_nanos() as f64 / frames as f64,
        dropped: stats.queues.dropped,
    }
}

pub(crate) struct ThroughputResult {
    pub(crate) raw: Vec<f64>,
    pub(crate) lib: Vec<f64>,
    pub(crate) framing: Vec<f64>,
    /// The consumer-driven feed's runs (judged cells only).
    pub(crate) feed: Vec<f64>,
    pub(crate) raw_cpu: Vec<f64>,
    pub(crate) lib_cpu: Vec<f64>,
    pub(crate) dropped: u64,
}

impl ThroughputResult {
    pub(crate) fn ratio(&self) -> f64 {
        median_f64(&self.lib) / median_f64(&self.raw)
    }

    /// The feed over the routing loop (a); `None` when it was not measured.
    pub(crate) fn feed_ratio(&self) -> Option<f64> {
        (!self.feed.is_empty()).then(|| median_f64(&self.feed) / median_f64(&self.raw))
    }

    /// Library over the framing limit (b); `None` when it was not measured.
    pub(crate) fn vs_framing(&self) -> Option<f64> {
        (!self.framing.is_empty()).then(|| median_f64(&self.lib) / median_f64(&self.framing))
    }
}

pub(crate) async fn throughput(
    server: &Server,
    settings: &Settings,
    venue: Venue,
    subs: usize,
    consumers: Consumers,
) -> ThroughputResult {
    let (bytes, payload) = venue.stream(settings.frames, subs as u64);
    println!(
        "  {} frames on {subs} subscription(s), mean payload {payload:.1} bytes, {:.1} MB on the wire",
        settings.frames,
        bytes.len() as f64 / 1e6
    );
    let mut result = ThroughputResult {
        raw: vec![],
        lib: vec![],
        framing: vec![],
        feed: vec![],
        raw_cpu: vec![],
        lib_cpu: vec![],
        dropped: 0,
    };
    // For profiling one side: BENCH_CONSUMER=raw, framing, lib or feed.
    let only = std::env::var("BENCH_CONSUMER").unwrap_or_default();
    if !only.is_empty() {
        for _ in 0..settings.repeats {
            let run = if only == "raw" {
                throughput_raw(server, venue, subs, &bytes, settings.frames).await
            } else if only == "framing" {
                throughput_framing(server, venue, subs, &bytes, settings.frames).await
            } else if only == "feed" {
                throughput_feed(server, venue, subs, &bytes, settings.frames).await
            } else {
                throughput_lib(server, venue, subs, &bytes, settings.frames, consumers).await
            };
            println!(
                "  {only}: {:.0} msg/s, {} dropped",
                run.msgs_per_sec, run.dropped
            );
        }
        return result;
    }
    // Warm-up (not reported): page in the buffer, grow socket buffers.
    let warm_frames = settings.frames.min(100_000);
    let warm = venue.stream(warm_frames, subs as u64).0;
    let _ = throughput_raw(server, venue, subs, &warm, warm_frames).await;
    let _ = throughput_lib(server, venue, subs, &warm, warm_frames, consumers).await;
    // The feed is one stream over every subscription: measured where the
    // library side reads one subscription or one set (the judged cells).
    let measure_feed = subs == 1 || consumers == Consumers::Set;
    if measure_feed {
        let _ = throughput_feed(server, venue, subs, &warm, warm_frames).await;
    }
    for rep in 0..settings.repeats {
        // Alternate the order so drift in background load hits both.
        let (raw, lib) = if rep % 2 == 0 {
            let raw = throughput_raw(server, venue, subs, &bytes, settings.frames).await;
            let lib = throughput_lib(server, venue, subs, &bytes, settings.frames, consumers).await;
            (raw, lib)
        } else {
            let lib = throughput_lib(server, venue, subs, &bytes, settings.frames, consumers).await;
            let raw = throughput_raw(server, venue, subs, &bytes, settings.frames).await;
            (raw, lib)
        };
        println!(
            "  run {}: raw {:>9.0} msg/s ({:>4.0} ns CPU/msg)   resilient-ws {:>9.0} msg/s ({:>4.0} ns CPU/msg, {} dropped)   ratio {:.3}",
            rep + 1,
            raw.msgs_per_sec,
            raw.cpu_ns_per_msg,
            lib.msgs_per_sec,
            lib.cpu_ns_per_msg,
            lib.dropped,
            lib.msgs_per_sec / raw.msgs_per_sec
        );
        let framing = throughput_framing(server, venue, subs, &bytes, settings.frames).await;
        println!(
            "         framing limit (read only) {:>9.0} msg/s ({:>4.0} ns CPU/msg)   lib/framing {:.3}",
            framing.msgs_per_sec,
            framing.cpu_ns_per_msg,
            lib.msgs_per_sec / framing.msgs_per_sec
        );
        if measure_feed {
            let feed = throughput_feed(server, venue, subs, &bytes, settings.frames).await;
            println!(
                "         feed (consumer-driven) {:>9.0} msg/s ({:>4.0} ns CPU/msg, {} dropped)   feed/raw {:.3}",
                feed.msgs_per_sec,
                feed.cpu_ns_per_msg,
                feed.dropped,
                feed.msgs_per_sec / raw.msgs_per_sec
            );
            result.feed.push(feed.msgs_per_sec);
        }
        result.framing.push(framing.msgs_per_sec);
        result.dropped += lib.dropped;
        result.raw.push(raw.msgs_per_sec);
        result.lib.push(lib.msgs_per_sec);
        result.raw_cpu.push(raw.cpu_ns_per_msg);
        result.lib_cpu.push(lib.cpu_ns_per_msg);
    }
    result
}
