//! Issue 14: the main example over a pool (`--connections 3`) serves
//! Prometheus text (`--metrics-addr`) that a scraper reads while it runs.
//!
//! Runs the example binary that `cargo test` builds next to the test binaries.
#![cfg(feature = "metrics")]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;

const SOON: Duration = Duration::from_secs(30);

fn example() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/examples/market_feed
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join("examples").join("market_feed");
    assert!(
        path.exists(),
        "{} missing: run `cargo test --features metrics` (which builds the examples)",
        path.display()
    );
    path
}

async fn scrape(addr: &str) -> String {
    let mut socket = TcpStream::connect(addr).await.expect("metrics endpoint");
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    response
}

/// The value of the series `name{labels}`, if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn market_feed_over_a_pool_serves_prometheus_metrics_while_it_runs() {
    let mut child = Command::new(example())
        .args([
            "--connections",
            "3",
            "--duration",
            "4",
            "--chaos-every-ms",
            "0",
        ])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("example runs");
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(SOON, async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if let Some(addr) = line.strip_prefix("metrics: listening on ") {
                return addr.to_owned();
            }
        }
        panic!("the example exited without serving metrics");
    })
    .await
    .expect("metrics endpoint announced");
    // Keep draining stderr so the child never blocks on a full pipe.
    let drain = tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });

    // Scrape until every member of the pool has counted frames.
    let text = tokio::time::timeout(SOON, async {
        loop {
            let text = scrape(&addr).await;
            let all = (0..3).all(|c| {
                let series =
                    format!("resilient_ws_frames_in_total{{venue=\"kalshi\",connection=\"{c}\"}}");
                value(&text, &series).is_some_and(|v| v > 0.0)
            });
            if all {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("every connection publishes frames_in");
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(
        text.contains("# TYPE resilient_ws_delivered_total counter"),
        "{text}"
    );
    let state = "resilient_ws_connection_state{venue=\"kalshi\",connection=\"1\"}";
    assert_eq!(value(&text, state), Some(3.0), "connected: {text}");

    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .await
        .unwrap();
    let status = tokio::time::timeout(SOON, child.wait())
        .await
        .unwrap()
        .unwrap();
    drain.abort();
    assert!(status.success(), "{status:?} {stdout}");
    assert!(stdout.contains("subscriptions_alive=8/8"), "{stdout}");
}
