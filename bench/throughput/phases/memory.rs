//! Memory: RSS and heap per idle connection, and a stalled consumer's bounded queue.

use super::*;

pub(crate) struct IdleMemory {
    pub(crate) conns: usize,
    pub(crate) subs: usize,
    pub(crate) kib_per_conn: f64,
    pub(crate) heap_kib_per_conn: f64,
    pub(crate) rss_before: u64,
    pub(crate) rss_after: u64,
}

pub(crate) async fn idle_memory(settings: &Settings) -> std::io::Result<IdleMemory> {
    let mut conns = settings.idle_conns;
    if let Some(limit) = open_files_limit() {
        let fits = limit.saturating_sub(64) as usize;
        if fits < conns {
            println!("  note: open-files limit {limit} < {conns} + slack; measuring {fits} connections (raise with `ulimit -n 4096`)");
            conns = fits;
        }
    }
    let child = ChildServer::start()?;
    let url = format!("ws://127.0.0.1:{}/", child.port);
    let subs = settings.idle_subs;
    let topics_for = |c: usize| -> Vec<Topic> {
        (0..subs)
            .map(|j| Topic::new("ticker").symbol(format!("KX-IDLE-{c:04}-{j:02}")))
            .collect()
    };
    let open = |c: usize| {
        let url = url.clone();
        let topics = topics_for(c);
        async move {
            // The library's defaults throughout.
            let config = Config::builder(url).build().expect("valid config");
            let (client, messages) = Client::connect(config, Kalshi::new())
                .await
                .expect("connect");
            let subs: Vec<Subscription> = client
                .subscribe_many(topics)
                .await
                .expect("subscribe_many")
                .into_iter()
                .map(|s| s.expect("subscribed"))
                .collect();
            (client, messages, subs)
        }
    };
    // Warm-up: one client through its whole life, so one-time allocations
    // (runtime internals, lazy statics) are not counted per connection.
    {
        let (client, _m, _s) = open(usize::MAX / 2).await;
        let _ = client.close().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = rss_kib();
    heap_track_start();
    let clients: Vec<_> = futures::stream::iter(0..conns)
        .map(open)
        .buffer_unordered(32)
        .collect()
        .await;
    // Let every supervisor settle into its idle select loop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_kib();
    let (heap, _) = heap_track_stop();
    futures::stream::iter(clients)
        .for_each_concurrent(64, |(client, messages, subs)| async move {
            drop(subs);
            drop(messages);
            let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
        })
        .await;
    drop(child);
    Ok(IdleMemory {
        conns,
        subs,
        kib_per_conn: rss_after.saturating_sub(rss_before) as f64 / conns as f64,
        heap_kib_per_conn: heap as f64 / 1024.0 / conns as f64,
        rss_before,
        rss_after,
    })
}

pub(crate) struct Stalled {
    pub(crate) policy: &'static str,
    pub(crate) routed: u64,
    pub(crate) dropped: u64,
    pub(crate) queued: u64,
    pub(crate) rss_growth_kib: i64,
    pub(crate) peak_growth_kib: i64,
    pub(crate) heap_growth_kib: f64,
    pub(crate) heap_peak_kib: f64,
}

pub(crate) async fn stalled(
    server: &Server,
    settings: &Settings,
    bytes: &Arc<Vec<u8>>,
    policy: Overflow,
    name: &'static str,
) -> Stalled {
    let (client, _messages) = Client::connect(config(&server.url()), Kalshi::new())
        .await
        .expect("connect");
    let options = QueueOptions {
        capacity: Some(settings.stall_capacity),
        overflow: Some(policy),
    };
    let sub = subscribe_all(&client, 1, options)
        .await
        .pop()
        .expect("subscription");
    let conn = server.conn_with(1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rss_before = rss_kib();
    let peak_reset = reset_peak_rss();
    let mut peak_sampled = rss_before;
    heap_track_start();
    let done = conn.blast(Arc::clone(bytes));
    let blocking = matches!(policy, Overflow::Block { .. });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = (0u64, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        peak_sampled = peak_sampled.max(rss_kib());
        let routed = sub.stats().routed;
        if routed >= settings.stall_frames || Instant::now() > deadline {
            break;
        }
        if routed != last.0 {
            last = (routed, Instant::now());
        } else if blocking
            && routed >= settings.stall_capacity as u64
            && last.1.elapsed() > Duration::from_millis(500)
        {
            // Backpressure: the socket is no longer read and TCP has stopped the server.
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let rss_after = rss_kib();
    let (heap, heap_peak) = heap_track_stop();
    let peak = if peak_reset {
        proc_status_kib("VmHWM").max(peak_sampled)
    } else {
        peak_sampled
    };
    let stats = sub.stats();
    // Unblock and clean up: dropping the stream ends the subscription, the supervisor
    // reads on and the server's write completes.
    drop(sub);
    let _ = tokio::time::timeout(Duration::from_secs(10), done).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
    Stalled {
        policy: name,
        routed: stats.routed,
        dropped: stats.dropped,
        queued: stats.queued,
        rss_growth_kib: rss_after as i64 - rss_before as i64,
        peak_growth_kib: peak as i64 - rss_before as i64,
        heap_growth_kib: heap as f64 / 1024.0,
        heap_peak_kib: heap_peak as f64 / 1024.0,
    }
}
