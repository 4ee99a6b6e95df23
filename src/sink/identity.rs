//! The message id of an update: what lets two replicas publish the same venue
//! update and the bus store it once.
//!
//! Rules, and why:
//! - The id must be the same in every replica that received the update, so it
//!   is built only from what the venue put in the payload
//!   ([`Frame::payload`](crate::Frame::payload)): never from the receive time,
//!   the client id or [`Frame::seq`](crate::Frame::seq) when that number is
//!   per connection (Kalshi's `seq` counts per subscription id, which each
//!   connection gets anew).
//! - Where the venue numbers its updates per instrument, that number is the
//!   id ([`IdSource::VenueSequence`]): de-duplication is exact.
//! - Elsewhere the id is a 64-bit hash of the payload bytes
//!   ([`IdSource::ContentHash`]); payloads carry the venue's timestamp where
//!   the venue sends one, so two updates differ unless they are byte-identical
//!   (same prices, same timestamp). It de-duplicates the same frame seen by two
//!   replicas; it also merges two genuinely different updates that are
//!   byte-identical within the bus's duplicate window (a ticker repeated
//!   within the venue's timestamp resolution), and it cannot match frames the
//!   venue batched differently on two connections.
//! - The id always starts with venue, channel and instrument, because a
//!   JetStream de-duplication window spans the whole stream.

use std::time::UNIX_EPOCH;

use crate::message::Frame;
use crate::shard::stable_hash;

/// Where a message id came from; what it can de-duplicate is in the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdSource {
    /// The venue's own per-instrument sequence or update id (OKX `seqId`,
    /// WEEX `u`, trade ids): exact.
    VenueSequence,
    /// Kraken book: the book `checksum` with the update's `timestamp`.
    ChecksumAndTime,
    /// A hash of the payload bytes (which include the venue time when sent).
    ContentHash,
}

/// A message id and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageId {
    /// The `Nats-Msg-Id` value.
    pub id: String,
    /// How it was made.
    pub source: IdSource,
}

/// The fields an id can come from, borrowed from the payload.
#[derive(serde::Deserialize, Default)]
struct Fields<'a> {
    #[serde(borrow, rename = "seqId")]
    seq_id: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    u: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, rename = "tradeId")]
    okx_trade_id: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    trade_id: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    checksum: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a serde_json::value::RawValue>,
}

/// The first object of the payload (the payload itself, or its first element).
fn fields(payload: &[u8]) -> Fields<'_> {
    if let Ok(one) = serde_json::from_slice::<Fields<'_>>(payload) {
        return one;
    }
    serde_json::from_slice::<Vec<Fields<'_>>>(payload)
        .ok()
        .and_then(|mut many| (!many.is_empty()).then(|| many.swap_remove(0)))
        .unwrap_or_default()
}

fn text(raw: Option<&serde_json::value::RawValue>) -> Option<&str> {
    let raw = raw?.get().trim();
    let raw = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    (!raw.is_empty() && raw.len() <= 64).then_some(raw)
}

/// The `Rws-Venue-Time` header's value: the venue's time of the frame as its
/// adapter read it ([`Frame::venue_time`]: Kalshi `ts_ms`, OKX `ts`, Kraken
/// `timestamp`, WEEX's event time), in nanoseconds since the Unix epoch like
/// `Rws-Received`, so a reader compares the two without knowing the venue's
/// format. `None` when the frame carries no venue time.
pub fn venue_time_nanos(frame: &Frame) -> Option<String> {
    let since_epoch = frame.venue_time()?.duration_since(UNIX_EPOCH).ok()?;
    Some(since_epoch.as_nanos().to_string())
}

/// The message id of `frame`, routed to (`venue`, `channel`, `instrument`).
/// `venue` is the protocol's name (`kalshi`, `kraken`, `okx`, `weex`).
pub fn message_id(venue: &str, channel: &str, instrument: &str, frame: &Frame) -> MessageId {
    let payload = frame.payload();
    let f = fields(payload);
    let venue_id = match venue {
        "okx" => text(f.seq_id)
            .map(|s| format!("seq:{s}"))
            .or_else(|| text(f.okx_trade_id).map(|t| format!("trade:{t}"))),
        "weex" => text(f.u).map(|u| format!("u:{u}")),
        "kraken" | "kalshi" => text(f.trade_id).map(|t| format!("trade:{t}")),
        _ => None,
    };
    let (tail, source) = match venue_id {
        Some(tail) => (tail, IdSource::VenueSequence),
        None => match (venue, text(f.checksum), text(f.timestamp)) {
            ("kraken", Some(sum), Some(time)) => {
                (format!("crc:{sum}@{time}"), IdSource::ChecksumAndTime)
            }
            _ => (
                format!("h:{:016x}:{}", stable_hash(payload), payload.len()),
                IdSource::ContentHash,
            ),
        },
    };
    MessageId {
        id: format!("{venue}.{channel}.{instrument}:{tail}"),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(venue: &str, channel: &str, payload: &str) -> MessageId {
        message_id(venue, channel, "X", &Frame::text(payload, None))
    }

    #[test]
    fn venue_sequences_win_and_the_rest_is_hashed() {
        let okx = id(
            "okx",
            "books",
            r#"[{"asks":[],"bids":[],"ts":"1","checksum":0,"prevSeqId":4,"seqId":5}]"#,
        );
        assert_eq!(
            okx,
            MessageId {
                id: "okx.books.X:seq:5".into(),
                source: IdSource::VenueSequence
            }
        );
        let okx_trade = id("okx", "trades", r#"[{"tradeId":"130639474","px":"1"}]"#);
        assert_eq!(okx_trade.id, "okx.trades.X:trade:130639474");
        let weex = id("weex", "depth", r#"{"e":"depthUpdate","U":10,"u":12}"#);
        assert_eq!(weex.id, "weex.depth.X:u:12");
        let kraken_book = id(
            "kraken",
            "book",
            r#"[{"symbol":"X","bids":[],"asks":[],"checksum":3310070434,"timestamp":"2026-01-01T00:00:00.000001Z"}]"#,
        );
        assert_eq!(kraken_book.source, IdSource::ChecksumAndTime);
        assert_eq!(
            kraken_book.id,
            "kraken.book.X:crc:3310070434@2026-01-01T00:00:00.000001Z"
        );
        let kalshi = id(
            "kalshi",
            "ticker",
            r#"{"market_ticker":"X","price":50,"ts":1700000001}"#,
        );
        assert_eq!(kalshi.source, IdSource::ContentHash);
        // Same bytes, same id (two replicas); one byte more, another id.
        assert_eq!(
            kalshi,
            id(
                "kalshi",
                "ticker",
                r#"{"market_ticker":"X","price":50,"ts":1700000001}"#
            )
        );
        assert_ne!(
            kalshi,
            id(
                "kalshi",
                "ticker",
                r#"{"market_ticker":"X","price":50,"ts":1700000002}"#
            )
        );
        // Garbage never panics and is hashed.
        assert_eq!(
            id("okx", "books", "\u{0}not json").source,
            IdSource::ContentHash
        );
        assert_eq!(id("okx", "books", "[]").source, IdSource::ContentHash);
    }

    /// The README's id table, row by row, for the rows not above.
    #[test]
    fn trade_ids_and_untimed_tickers() {
        // OKX trades: the first trade's `seqId` wins over its `tradeId`.
        let okx = id(
            "okx",
            "trades",
            r#"[{"tradeId":"130639474","seqId":77,"px":"1"}]"#,
        );
        assert_eq!(okx.id, "okx.trades.X:seq:77");
        assert_eq!(okx.source, IdSource::VenueSequence);
        // Kraken `trade`: the first trade's `trade_id` of the data array.
        let kraken = id(
            "kraken",
            "trade",
            r#"[{"symbol":"X","trade_id":4665906,"price":1},{"symbol":"X","trade_id":4665907}]"#,
        );
        assert_eq!(kraken.id, "kraken.trade.X:trade:4665906");
        assert_eq!(kraken.source, IdSource::VenueSequence);
        // Kalshi `trade`: the message's `trade_id`, never its per-sid `seq`.
        let kalshi = id(
            "kalshi",
            "trade",
            r#"{"trade_id":"d91bc706-ee49-470d-82d8-11418bda6fed","market_ticker":"X","ts":1}"#,
        );
        assert_eq!(
            kalshi.id,
            "kalshi.trade.X:trade:d91bc706-ee49-470d-82d8-11418bda6fed"
        );
        // Kraken `ticker` has no id and no timestamp: hashed.
        let ticker = id(
            "kraken",
            "ticker",
            r#"[{"symbol":"X","bid":1.5,"ask":1.6}]"#,
        );
        assert_eq!(ticker.source, IdSource::ContentHash);
        // A Kraken book update without a timestamp is hashed too.
        let book = id("kraken", "book", r#"[{"symbol":"X","checksum":7}]"#);
        assert_eq!(book.source, IdSource::ContentHash);
    }

    #[test]
    fn venue_time_is_the_adapters_in_nanoseconds_since_the_epoch() {
        // Kalshi: `ts_ms` wins over the deprecated `ts` (seconds); the header
        // once carried `ts` as written, a second's precision.
        let kalshi = r#"{"type":"ticker","sid":1,"seq":1,"msg":{"market_ticker":"X","ts":1700000001,"ts_ms":1700000001234}}"#;
        let frame = Frame::classified(&mut crate::Kalshi::new(), kalshi);
        assert_eq!(
            venue_time_nanos(&frame).as_deref(),
            Some("1700000001234000000")
        );
        let kraken = r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","timestamp":"2026-01-01T00:00:00.5Z"}]}"#;
        let frame = Frame::classified(&mut crate::Kraken::new(), kraken);
        assert_eq!(
            venue_time_nanos(&frame).as_deref(),
            Some("1767225600500000000")
        );
        assert_eq!(venue_time_nanos(&Frame::text("{}", None)), None);
    }
}
