//! The Kraken fast path: a non-book data frame's `channel`, `sequence`, the
//! span of `data` and the first item's `symbol`, all in one pass (the serde
//! path reads `data` as a raw value, then scans it again for the symbol).
//!
//! It answers only for a frame serde would read the same way: no `method` key;
//! `channel` a plain string other than `heartbeat`, `status` and `book` (book
//! frames are verified against the local book on the serde path); `data` an
//! array that is empty or starts with an object whose `symbol` is a plain
//! string or absent; the envelope's other text fields (`type`, `error`,
//! `symbol`) plain strings or absent (serde decodes them, and refuses some
//! values); no known key twice, neither in the envelope nor in the first item
//! (serde's derived structs refuse a duplicate). Anything else returns `None`
//! and `Kraken::classify` takes the serde path.

use super::{Cursor, Seen};

/// Channels the fast path leaves to the serde path.
const NOT_HERE: [&str; 3] = ["heartbeat", "status", "book"];

/// The routing fields of a Kraken data frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Data<'a> {
    /// The channel.
    pub(crate) channel: &'a str,
    /// The first data item's symbol, when it has one.
    pub(crate) symbol: Option<&'a str>,
    /// The text of `data` (an array).
    pub(crate) data: &'a str,
    /// The sequence number, when `sequence` is a `u64`.
    pub(crate) seq: Option<u64>,
}

/// The routing fields of `text` when it is a Kraken non-book data frame the
/// fast path can read exactly as serde would; `None` otherwise.
pub(crate) fn data(text: &str) -> Option<Data<'_>> {
    let mut cursor = Cursor::new(text);
    let mut members = cursor.begin_object()?;
    let mut seen = Seen::default();
    let (mut channel, mut items, mut seq) = (None, None, None);
    while let Some(key) = cursor.next_key(&mut members)? {
        // Each value read only as far as its field needs; unknown members
        // skipped without their text.
        match key {
            b"method" => return None,
            b"data" => {
                seen.first(0)?;
                items = Some(data_items(&mut cursor)?);
            }
            b"channel" => {
                seen.first(1)?;
                channel = Some(cursor.plain_str()?);
            }
            b"type" | b"error" | b"symbol" => {
                seen.first(match key {
                    b"type" => 2,
                    b"error" => 3,
                    _ => 4,
                })?;
                cursor.plain_str()?;
            }
            b"success" => {
                seen.first(5)?;
                cursor.skip_value()?;
            }
            b"req_id" => {
                seen.first(6)?;
                cursor.skip_value()?;
            }
            b"result" => {
                seen.first(7)?;
                cursor.skip_value()?;
            }
            b"sequence" => {
                seen.first(8)?;
                // As the serde path reads it: the raw text as a u64.
                seq = cursor.value()?.raw.parse().ok();
            }
            _ => cursor.skip_value()?,
        }
    }
    cursor.end()?;
    let channel = channel?;
    if NOT_HERE.contains(&channel) {
        return None;
    }
    let (data, symbol) = items?;
    Some(Data {
        channel,
        symbol,
        data,
        seq,
    })
}

/// `data`'s text and its first item's symbol: `data` must be an array, empty
/// or starting with an object.
fn data_items<'a>(cursor: &mut Cursor<'a>) -> Option<(&'a str, Option<&'a str>)> {
    if !cursor.at(b'[') {
        return None;
    }
    let start = cursor.offset();
    let mut symbol = None;
    if !cursor.begin_array()? {
        symbol = first_symbol(cursor)?;
        cursor.finish_array()?;
    }
    Some((cursor.since(start)?, symbol))
}

/// The `symbol` of the object at the cursor (read like the serde path's `Head`:
/// `symbol` and `checksum` at most once each).
fn first_symbol<'a>(cursor: &mut Cursor<'a>) -> Option<Option<&'a str>> {
    if !cursor.at(b'{') {
        return None;
    }
    let mut members = cursor.begin_object()?;
    let mut seen = Seen::default();
    let mut symbol = None;
    while let Some(key) = cursor.next_key(&mut members)? {
        match key {
            b"symbol" => {
                seen.first(0)?;
                symbol = Some(cursor.plain_str()?);
            }
            b"checksum" => {
                seen.first(1)?;
                cursor.skip_value()?;
            }
            _ => cursor.skip_value()?,
        }
    }
    Some(symbol)
}
