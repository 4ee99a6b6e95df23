//! Measurement helpers (RSS, CPU time, percentiles) and the client-side plumbing
//! every phase shares (config, subscribe-all, the raw tokio-tungstenite baseline
//! connection).

use super::*;

/// A field of /proc/self/status in KiB (VmRSS, VmHWM).
pub(crate) fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

pub(crate) fn rss_kib() -> u64 {
    proc_status_kib("VmRSS")
}

/// Resets VmHWM to the current RSS; false when the kernel refuses.
pub(crate) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// User + system CPU time of the whole process (all threads, server included).
pub(crate) fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is field 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // rest starts at field 3 (state), so field n is index n - 3.
    let total = ticks(14 - 3) + ticks(15 - 3);
    Duration::from_millis(total * 10) // USER_HZ is 100 on Linux
}

pub(crate) fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

pub(crate) fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub(crate) fn median_f64(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

pub(crate) fn config(url: &str) -> Config {
    Config::builder(url)
        .backoff(Backoff::immediate().max_attempts(None))
        // 100 subscribes at once instead of 2 s of pacing at the default 50/s.
        .rate_limit(1000, Duration::from_secs(1))
        // The server blasts megabytes ahead of its pong; under callgrind (~50x
        // slower) the default 5 s pong deadline would fire and the bench server
        // only blasts the first connection. Liveness is not what is measured.
        .pong_timeout(Duration::from_secs(120))
        .build()
        .expect("valid config")
}

pub(crate) fn topics(n: usize) -> Vec<Topic> {
    (0..n)
        .map(|i| Topic::new("ticker").symbol(ticker(i)))
        .collect()
}

/// Subscribes `topics` in one `subscribe_many` call, with the default queue options.
pub(crate) async fn subscribe_topics(client: &Client, topics: Vec<Topic>) -> Vec<Subscription> {
    client
        .subscribe_many(topics)
        .await
        .expect("subscribe_many")
        .into_iter()
        .map(|sub| sub.expect("subscribed"))
        .collect()
}

pub(crate) async fn subscribe_all(
    client: &Client,
    n: usize,
    options: QueueOptions,
) -> Vec<Subscription> {
    let mut subs = Vec::with_capacity(n);
    if options == QueueOptions::default() {
        for sub in client
            .subscribe_many(topics(n))
            .await
            .expect("subscribe_many")
        {
            subs.push(sub.expect("subscribed"));
        }
    } else {
        for topic in topics(n) {
            subs.push(
                client
                    .subscribe_with(topic, options)
                    .await
                    .expect("subscribed"),
            );
        }
    }
    subs
}

/// The next data frame of a subscription, skipping signals.
pub(crate) async fn next_data(sub: &mut Subscription) -> Option<resilient_ws::Frame> {
    loop {
        match sub.next().await? {
            Ok(Update::Data(frame)) => return Some(frame),
            Ok(_) => continue,
            Err(error) if error.is_retryable() => continue,
            Err(error) => panic!("subscription ended: {error}"),
        }
    }
}

pub(crate) type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// The baseline's connection: subscribes like the Kalshi adapter and returns
/// the socket with the sid -> index map built from the acks.
pub(crate) async fn raw_connect(url: &str, n: usize) -> (RawWs, HashMap<u64, usize>) {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true)
        .await
        .expect("raw connect");
    for i in 0..n {
        let text = format!(
            r#"{{"id":{},"cmd":"subscribe","params":{{"channels":["ticker"],"market_tickers":["{}"]}}}}"#,
            i + 1,
            ticker(i)
        );
        ws.send(Message::text(text)).await.expect("raw subscribe");
    }
    let mut sids = HashMap::with_capacity(n);
    while sids.len() < n {
        let Some(Ok(Message::Text(text))) = ws.next().await else {
            panic!("raw: connection ended before the acks");
        };
        let ack: serde_json::Value = serde_json::from_str(text.as_str()).expect("ack json");
        if ack["type"] == "subscribed" {
            let idx = ack["id"].as_u64().expect("ack id") as usize - 1;
            sids.insert(ack["msg"]["sid"].as_u64().expect("ack sid"), idx);
        }
    }
    (ws, sids)
}
