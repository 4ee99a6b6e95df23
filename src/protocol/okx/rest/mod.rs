//! OKX's REST order book, `GET /api/v5/market/books`, as a
//! [`BookSnapshot`]: the format, with no HTTP client (bring your own and
//! call [`parse_books`]), and the request path ([`books_path`]).
//!
//! Wire facts (sources in `src/protocol/VENUES.md`, "OKX book snapshot"):
//! - `GET /api/v5/market/books?instId=BTC-USDT&sz=400` answers
//!   `{"code":"0","msg":"","data":[{"asks":[[px,sz,"0",orders],..],
//!   "bids":[..],"ts":"<unix ms>","seqId":<n>}]}`; asks best (lowest) first,
//!   bids best (highest) first; `sz` is the depth per side (at most 400).
//! - OKX's 2026 changelog tells clients to take this snapshot's `seqId` and
//!   apply the WebSocket deltas after it (rules in `book.rs`).
//!
//! With the cargo feature `okx-rest`, `OkxRestSnapshots` is a ready
//! [`SnapshotSource`](crate::SnapshotSource) over `reqwest`.
//!
//! Rules: a body over [`MAX_BOOKS_RESPONSE`] bytes, a non-zero `code`, or an
//! answer without `seqId` is an error (a snapshot without a sequence number
//! cannot be joined to the deltas); the error quotes OKX's `code` and `msg`,
//! never the body.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::book::{BookSnapshot, SnapshotError};

/// The largest REST answer parsed (400 levels a side are about 40 KB).
pub const MAX_BOOKS_RESPONSE: usize = 1024 * 1024;

/// The path and query of the order-book request for `inst_id`, `depth`
/// levels per side (OKX allows 1 to 400).
///
/// ```
/// use resilient_ws::protocol::okx::rest::books_path;
/// assert_eq!(books_path("BTC-USDT", 400), "/api/v5/market/books?instId=BTC-USDT&sz=400");
/// ```
pub fn books_path(inst_id: &str, depth: usize) -> String {
    let inst: String = inst_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    format!(
        "/api/v5/market/books?instId={inst}&sz={}",
        depth.clamp(1, 400)
    )
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    data: Vec<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    asks: Vec<Vec<String>>,
    #[serde(default)]
    bids: Vec<Vec<String>>,
    #[serde(default)]
    ts: Option<String>,
    #[serde(default, rename = "seqId")]
    seq_id: Option<i64>,
}

/// Parses the body of a `GET /api/v5/market/books` answer.
///
/// ```
/// use resilient_ws::protocol::okx::rest::parse_books;
/// let body = br#"{"code":"0","msg":"","data":[{"asks":[["41006.8","0.6","0","1"]],
///     "bids":[["41006.3","0.3","0","2"]],"ts":"1629966436396","seqId":3}]}"#;
/// let snapshot = parse_books(body)?;
/// assert_eq!(snapshot.seq, 3);
/// assert_eq!(snapshot.asks, [("41006.8".to_owned(), "0.6".to_owned())]);
/// # Ok::<(), resilient_ws::SnapshotError>(())
/// ```
///
/// # Errors
///
/// When the body is too long, not OKX's shape, an error answer, or has no
/// `seqId`.
pub fn parse_books(body: &[u8]) -> Result<BookSnapshot, SnapshotError> {
    if body.len() > MAX_BOOKS_RESPONSE {
        return Err("okx books: answer too long".into());
    }
    let answer: Answer =
        serde_json::from_slice(body).map_err(|_| "okx books: not an order-book answer")?;
    if let Some(code) = answer.code.as_deref().filter(|c| *c != "0") {
        let msg: String = answer.msg.unwrap_or_default().chars().take(200).collect();
        return Err(format!("okx books: error {code}: {msg}").into());
    }
    let data = answer.data.into_iter().next().ok_or("okx books: no data")?;
    let seq = data.seq_id.ok_or("okx books: no seqId")?;
    let levels = |side: Vec<Vec<String>>| -> Result<Vec<(String, String)>, SnapshotError> {
        side.into_iter()
            .map(|level| {
                let mut level = level.into_iter();
                match (level.next(), level.next()) {
                    (Some(px), Some(sz)) => Ok((px, sz)),
                    _ => Err("okx books: a level has no price or size".into()),
                }
            })
            .collect()
    };
    Ok(BookSnapshot {
        seq,
        asks: levels(data.asks)?,
        bids: levels(data.bids)?,
        venue_time: data.ts.as_deref().and_then(unix_ms),
    })
}

#[cfg(feature = "okx-rest")]
mod source;
#[cfg(feature = "okx-rest")]
pub use source::{OkxRestSnapshots, OKX_REST_URL};

/// Unix milliseconds as OKX writes them (a decimal string).
pub(crate) fn unix_ms(text: &str) -> Option<SystemTime> {
    let ms: u64 = text.parse().ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_error_answers_missing_sequence_and_bad_levels() {
        let error =
            parse_books(br#"{"code":"51001","msg":"Instrument ID does not exist","data":[]}"#)
                .unwrap_err()
                .to_string();
        assert!(error.contains("51001"), "{error}");
        assert!(parse_books(br#"{"code":"0","data":[{"asks":[],"bids":[]}]}"#).is_err());
        assert!(
            parse_books(br#"{"code":"0","data":[{"asks":[["1"]],"bids":[],"seqId":1}]}"#).is_err()
        );
        assert!(parse_books(b"not json").is_err());
        let big = vec![b' '; MAX_BOOKS_RESPONSE + 1];
        assert!(parse_books(&big).is_err());
    }

    /// OKX's documented "GET / Order book" response example (its values;
    /// VENUES.md names the page): `seqId` is an integer.
    #[test]
    fn the_documented_answer_parses_with_its_integer_seq_id() {
        let body = br#"{"code":"0","msg":"","data":[{
            "asks":[["41006.8","0.60038921","0","1"]],
            "bids":[["41006.3","0.30178218","0","2"]],
            "ts":"1629966436396","seqId":3235851742}]}"#;
        let snapshot = parse_books(body).unwrap();
        assert_eq!(snapshot.seq, 3_235_851_742);
        assert_eq!(snapshot.asks, [("41006.8".into(), "0.60038921".into())]);
        assert_eq!(snapshot.bids, [("41006.3".into(), "0.30178218".into())]);
        assert_eq!(snapshot.venue_time, unix_ms("1629966436396"));
    }

    #[test]
    fn the_path_keeps_only_instrument_characters() {
        assert_eq!(
            books_path("BTC-USDT&sz=1#", 0),
            "/api/v5/market/books?instId=BTC-USDTsz1&sz=1"
        );
    }
}
