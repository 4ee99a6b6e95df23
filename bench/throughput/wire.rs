//! The Kalshi-style wire format the bench server sends: ticker payloads,
//! pre-encoded WebSocket text frames, and the timestamp the latency phase reads
//! back; and [`Venue`], which picks Kalshi or Kraken (`kraken.rs`) frames for
//! the throughput matrix.

use super::*;

/// The venue whose ticker frames a throughput case streams.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Venue {
    Kalshi,
    Kraken,
}

impl Venue {
    /// The name in `BENCH_VENUES` and in the `bench:` line's keys.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Venue::Kalshi => "kalshi",
            Venue::Kraken => "kraken",
        }
    }

    /// The subscription topics of a run with `n` subscriptions.
    pub(crate) fn topics(self, n: usize) -> Vec<Topic> {
        match self {
            Venue::Kalshi => topics(n),
            Venue::Kraken => (0..n)
                .map(|i| Topic::new("ticker").symbol(kraken_symbol(i)))
                .collect(),
        }
    }

    /// `frames` ticker frames spread round-robin over `subs` subscriptions.
    pub(crate) fn stream(self, frames: u64, subs: u64) -> (Arc<Vec<u8>>, f64) {
        match self {
            Venue::Kalshi => build_stream(frames, subs),
            Venue::Kraken => build_kraken_stream(frames, subs),
        }
    }
}

pub(crate) fn ticker(i: usize) -> String {
    format!("KX-{i:03}")
}

/// One Kalshi-style ticker payload (about 120 bytes); `ts` comes last.
pub(crate) fn ticker_payload(out: &mut Vec<u8>, sid: u64, seq: u64, ts: u64) {
    let price = 40 + seq % 20;
    let _ = write!(
        out,
        r#"{{"type":"ticker","sid":{sid},"seq":{seq},"msg":{{"market_ticker":"KX-{:03}","price":{price},"yes_bid":{},"yes_ask":{},"ts":{ts}}}}}"#,
        sid.saturating_sub(1),
        price - 1,
        price + 1,
    );
}

/// Appends an unmasked (server-to-client) WebSocket text frame.
pub(crate) fn push_ws_text(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(0x81);
    let len = payload.len();
    if len < 126 {
        out.push(len as u8);
    } else if len <= u16::MAX as usize {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// `frames` ticker frames round-robin over sids `1..=subs`, each sid's `seq`
/// counting from 1, as one pre-encoded buffer. Returns it and the mean payload size.
pub(crate) fn build_stream(frames: u64, subs: u64) -> (Arc<Vec<u8>>, f64) {
    let mut out = Vec::with_capacity(frames as usize * 130);
    let mut payload = Vec::with_capacity(160);
    let mut payload_bytes = 0u64;
    for n in 0..frames {
        let sid = n % subs + 1;
        let seq = n / subs + 1;
        payload.clear();
        ticker_payload(&mut payload, sid, seq, 10_000_000_000 + n);
        payload_bytes += payload.len() as u64;
        push_ws_text(&mut out, &payload);
    }
    (Arc::new(out), payload_bytes as f64 / frames as f64)
}

/// The routing fields the baseline reads, as the library's adapter does.
#[derive(Deserialize)]
pub(crate) struct Routing<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: &'a str,
    #[serde(default)]
    pub(crate) sid: Option<u64>,
    #[serde(default)]
    pub(crate) seq: Option<u64>,
}

/// The send timestamp: the digits after the last `"ts":`.
pub(crate) fn extract_ts(text: &str) -> Option<u64> {
    let at = text.rfind("\"ts\":")? + 5;
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    text[at..at + digits].parse().ok()
}
