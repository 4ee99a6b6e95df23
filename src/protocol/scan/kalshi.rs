//! The Kalshi fast path: a data frame's `sid`, `seq` and `msg` in one pass.
//!
//! It answers only for a data frame serde would read the same way: `type` a
//! plain string that is not an acknowledgement (`subscribed`, `error`,
//! `unsubscribed`, `ok`) or absent; `sid` a `u64`; `seq` a `u64` or absent;
//! `id` a `u64` or absent (serde reads it too, and would refuse some values,
//! e.g. `1e400`); `msg` anything (`null` reads as absent, as serde reads an
//! `Option`). Each of those keys at most once: serde's derived struct refuses
//! a duplicate. Anything else returns `None` and `Kalshi::classify` takes the
//! serde path.

use super::{Cursor, Kind, Seen};

/// The routing fields of a Kalshi data frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Data<'a> {
    /// The subscription id.
    pub(crate) sid: u64,
    /// The sequence number, when present.
    pub(crate) seq: Option<u64>,
    /// The text of `msg`, when present and not `null`.
    pub(crate) msg: Option<&'a str>,
}

/// `type` values that are not data.
const ACKS: [&[u8]; 4] = [b"subscribed", b"error", b"unsubscribed", b"ok"];

/// The routing fields of `text` when it is a Kalshi data frame the fast path
/// can read exactly as serde would; `None` otherwise.
pub(crate) fn data(text: &str) -> Option<Data<'_>> {
    let mut cursor = Cursor::new(text);
    let mut members = cursor.begin_object()?;
    let mut seen = Seen::default();
    let (mut sid, mut seq, mut msg) = (None, None, None);
    while let Some(key) = cursor.next_key(&mut members)? {
        // Each value read only as far as its field needs: integers parsed
        // where they are found, unknown members skipped without their text.
        match key {
            b"sid" => {
                seen.first(2)?;
                sid = Some(cursor.uint()?);
            }
            b"seq" => {
                seen.first(3)?;
                seq = Some(cursor.uint()?);
            }
            b"msg" => {
                seen.first(4)?;
                let value = cursor.value()?;
                msg = (value.kind != Kind::Null).then_some(value.raw);
            }
            b"type" => {
                seen.first(1)?;
                if ACKS.contains(&cursor.plain_bytes()?) {
                    return None;
                }
            }
            b"id" => {
                seen.first(0)?;
                cursor.uint()?;
            }
            _ => cursor.skip_value()?,
        }
    }
    cursor.end()?;
    Some(Data {
        sid: sid?,
        seq,
        msg,
    })
}
