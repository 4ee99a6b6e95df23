//! The raw tokio-tungstenite loops the library is measured against:
//! (a) the routing loop, one per venue, doing the per-frame work a
//! hand-written client needs to route a frame (deserialize the routing fields
//! borrowed with serde, one `HashMap` lookup, count; Kalshi also checks `seq`
//! as the library does) and nothing else; (b) the framing limit, which only
//! reads frames and is the same for both venues.

use super::*;

/// Baseline (a) for `venue`.
pub(crate) async fn throughput_raw(
    server: &Server,
    venue: Venue,
    subs: usize,
    bytes: &Arc<Vec<u8>>,
    frames: u64,
) -> Run {
    match venue {
        Venue::Kalshi => raw_kalshi(server, subs, bytes, frames).await,
        Venue::Kraken => raw_kraken(server, subs, bytes, frames).await,
    }
}

/// Kalshi: `type`, `sid` and `seq` into a borrowed struct, the sid looked up,
/// the sequence checked for gaps.
async fn raw_kalshi(server: &Server, subs: usize, bytes: &Arc<Vec<u8>>, frames: u64) -> Run {
    let (mut ws, sids) = raw_connect(&server.url(), subs).await;
    let conn = server.conn_with(subs).await;
    let mut counts = vec![0u64; subs];
    let mut last_seq = vec![0u64; subs];
    let mut gaps = 0u64;
    let mut total = 0u64;
    let cpu0 = cpu_time();
    let start = Instant::now();
    let done = conn.blast(Arc::clone(bytes));
    while total < frames {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let Ok(routing) = serde_json::from_str::<Routing<'_>>(text.as_str()) else {
                    continue;
                };
                if routing.kind == "subscribed" {
                    continue;
                }
                if let Some(&idx) = routing.sid.and_then(|sid| sids.get(&sid)) {
                    counts[idx] += 1;
                    let seq = routing.seq.unwrap_or(0);
                    if seq != last_seq[idx] + 1 {
                        gaps += 1;
                    }
                    last_seq[idx] = seq;
                    total += 1;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("raw: stream ended early: {other:?}"),
        }
    }
    let elapsed = start.elapsed();
    let cpu = cpu_time() - cpu0;
    let _ = done.await;
    assert_eq!(gaps, 0, "raw baseline saw sequence gaps");
    assert_eq!(counts.iter().sum::<u64>(), frames);
    let _ = ws.close(None).await;
    Run::lossless(frames, elapsed, cpu)
}

/// Kraken v2: `channel`, `type` and `data[0].symbol` into a borrowed struct
/// (the rest of `data` skipped without allocating), the symbol looked up.
/// Kraken tickers carry no sequence number, so there is nothing to check.
async fn raw_kraken(server: &Server, subs: usize, bytes: &Arc<Vec<u8>>, frames: u64) -> Run {
    let (mut ws, symbols) = raw_connect_kraken(&server.url(), subs).await;
    let conn = server.conn_with(subs).await;
    let mut counts = vec![0u64; subs];
    let mut total = 0u64;
    let cpu0 = cpu_time();
    let start = Instant::now();
    let done = conn.blast(Arc::clone(bytes));
    while total < frames {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let Ok(routing) = serde_json::from_str::<KrakenRouting<'_>>(text.as_str()) else {
                    continue;
                };
                if routing.channel != Some("ticker")
                    || !matches!(routing.kind, Some("update" | "snapshot"))
                {
                    continue;
                }
                let symbol = routing.data.and_then(|d| d.symbol);
                if let Some(&idx) = symbol.and_then(|s| symbols.get(s)) {
                    counts[idx] += 1;
                    total += 1;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("raw kraken: stream ended early: {other:?}"),
        }
    }
    let elapsed = start.elapsed();
    let cpu = cpu_time() - cpu0;
    let _ = done.await;
    assert_eq!(counts.iter().sum::<u64>(), frames);
    let _ = ws.close(None).await;
    Run::lossless(frames, elapsed, cpu)
}

/// The framing limit (b): a raw tokio-tungstenite loop that only reads and
/// counts text frames, no parsing at all. What no WebSocket client can beat.
/// The venue only decides how it subscribes.
pub(crate) async fn throughput_framing(
    server: &Server,
    venue: Venue,
    subs: usize,
    bytes: &Arc<Vec<u8>>,
    frames: u64,
) -> Run {
    let mut ws = match venue {
        Venue::Kalshi => raw_connect(&server.url(), subs).await.0,
        Venue::Kraken => raw_connect_kraken(&server.url(), subs).await.0,
    };
    let conn = server.conn_with(subs).await;
    let mut total = 0u64;
    let cpu0 = cpu_time();
    let start = Instant::now();
    let done = conn.blast(Arc::clone(bytes));
    while total < frames {
        match ws.next().await {
            Some(Ok(Message::Text(_))) => total += 1,
            Some(Ok(_)) => {}
            other => panic!("framing: stream ended early: {other:?}"),
        }
    }
    let elapsed = start.elapsed();
    let cpu = cpu_time() - cpu0;
    let _ = done.await;
    let _ = ws.close(None).await;
    Run::lossless(frames, elapsed, cpu)
}
