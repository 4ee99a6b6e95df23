//! What a venue documents about one connection's capacity, and bounded
//! decompression for venues that send compressed binary frames.
//!
//! Rules and reasons:
//! - Limits are facts from the venue's docs (WEEX: 100 channels and 240
//!   subscribe operations per hour per connection; OKX: 480 requests per
//!   hour per connection), exposed per adapter so a caller spreading topics
//!   over connections can size each one; `None` means "not documented",
//!   never "unlimited".
//! - `subscribe_ops` is enforced by the session (one subscribe or
//!   unsubscribe request frame is one operation; requests over the window
//!   wait, per connection; see `session/link/outbound.rs`), and a pool
//!   places new subscriptions around a connection whose requests wait.
//! - A compressed frame is untrusted: a few kilobytes of deflate can expand
//!   to gigabytes. [`inflate_bounded`] stops at a byte budget and reports the
//!   frame as too large instead of allocating past it.

use std::io::Read;
use std::time::Duration;

use crate::error::ProtocolError;
use crate::rate::RateLimit;

/// The default budget for one decompressed frame, in bytes (16 MiB, the
/// library's default maximum message size).
pub const MAX_DECODED_BYTES: usize = 16 << 20;

/// A venue's documented per-connection limits.
///
/// ```
/// use resilient_ws::{Protocol, Weex};
/// let limits = Weex::new().limits();
/// assert_eq!(limits.channels_per_connection, Some(100));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VenueLimits {
    /// How many channels (subscriptions) one connection may hold.
    pub channels_per_connection: Option<usize>,
    /// How many subscribe/unsubscribe request frames one connection may send
    /// per window; the session holds further requests back until the window
    /// allows them.
    pub subscribe_ops: Option<RateLimit>,
}

impl VenueLimits {
    /// Limits with `channels` per connection and `ops` operations per `per`.
    pub fn new(channels: Option<usize>, ops: Option<(u32, Duration)>) -> Self {
        VenueLimits {
            channels_per_connection: channels,
            subscribe_ops: ops.map(|(frames, per)| RateLimit { frames, per }),
        }
    }
}

/// Which compressed format a frame is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// gzip (RFC 1952).
    Gzip,
    /// raw deflate (RFC 1951), as sent by venues without a zlib header.
    Deflate,
    /// zlib-wrapped deflate (RFC 1950).
    Zlib,
}

/// Decompresses `data` into UTF-8 text of at most `max` bytes.
///
/// # Errors
///
/// [`ProtocolError::TooLarge`] when the output would exceed `max` (nothing
/// beyond `max + 1` bytes is ever allocated), [`ProtocolError::Unparseable`]
/// when the data is not valid compressed data, [`ProtocolError::InvalidUtf8`]
/// when the output is not UTF-8.
///
/// ```
/// use resilient_ws::protocol::{inflate_bounded, Compression};
/// use std::io::Write;
/// let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
/// enc.write_all(b"{\"event\":\"ping\"}").unwrap();
/// let gz = enc.finish().unwrap();
/// assert_eq!(inflate_bounded(&gz, Compression::Gzip, 1024).unwrap(), "{\"event\":\"ping\"}");
/// assert!(inflate_bounded(&gz, Compression::Gzip, 4).is_err());
/// ```
pub fn inflate_bounded(
    data: &[u8],
    format: Compression,
    max: usize,
) -> Result<String, ProtocolError> {
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    let read = match format {
        Compression::Gzip => flate2::read::GzDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out),
        Compression::Deflate => flate2::read::DeflateDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out),
        Compression::Zlib => flate2::read::ZlibDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out),
    };
    if let Err(error) = read {
        return Err(ProtocolError::Unparseable(format!(
            "compressed frame of {} bytes: {}",
            data.len(),
            error.kind()
        )));
    }
    if out.len() > max {
        return Err(ProtocolError::TooLarge(format!(
            "decompressed frame exceeds {max} bytes"
        )));
    }
    String::from_utf8(out).map_err(|_| ProtocolError::InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn a_zip_bomb_stops_at_the_budget() {
        // 64 MiB of zeros compress to ~64 KiB; the budget is 1 MiB.
        let bomb = gzip(&vec![b'0'; 64 << 20]);
        assert!(bomb.len() < 200_000, "{}", bomb.len());
        match inflate_bounded(&bomb, Compression::Gzip, 1 << 20) {
            Err(ProtocolError::TooLarge(_)) => {}
            other => panic!("{other:?}"),
        }
        // Exactly at the budget is fine.
        let exact = gzip(&[b'a'; 1000]);
        assert_eq!(
            inflate_bounded(&exact, Compression::Gzip, 1000)
                .unwrap()
                .len(),
            1000
        );
        assert!(inflate_bounded(&exact, Compression::Gzip, 999).is_err());
    }

    #[test]
    fn garbage_and_non_utf8_are_errors() {
        assert!(matches!(
            inflate_bounded(b"not gzip", Compression::Gzip, 100),
            Err(ProtocolError::Unparseable(_))
        ));
        assert!(matches!(
            inflate_bounded(&gzip(&[0xff, 0xfe]), Compression::Gzip, 100),
            Err(ProtocolError::InvalidUtf8)
        ));
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"pong").unwrap();
        let raw = enc.finish().unwrap();
        assert_eq!(
            inflate_bounded(&raw, Compression::Deflate, 10).unwrap(),
            "pong"
        );
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"pong").unwrap();
        let z = enc.finish().unwrap();
        assert_eq!(inflate_bounded(&z, Compression::Zlib, 10).unwrap(), "pong");
    }
}
