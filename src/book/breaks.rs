//! [`BookBreak`]: why an adapter stopped trusting a book it builds.
//!
//! Rules, and why:
//! - One type names every break an adapter finds in a book (a checksum that
//!   does not match, an update that does not continue the venue's update-id
//!   chain, an update the book cannot use), so the adapter reports it on the
//!   frame ([`Inbound::Data`](crate::Inbound::Data)), the session hands it on
//!   unchanged ([`Update::BookBreak`](crate::Update::BookBreak),
//!   [`Event::BookBreak`](crate::Event::BookBreak)) and resyncs that one
//!   subscription, and a consumer handles every break in one match arm while
//!   still seeing which kind it was. A sequence gap the session itself sees
//!   stays [`Update::Gap`](crate::Update::Gap).
//! - Each kind says only what is true of it: a checksum mismatch carries the
//!   two checksums, a discontinuity the two update ids, anything else a fixed
//!   reason. No kind quotes the frame's text, so a peer cannot put its own
//!   words into logs or signals.

use std::fmt;

/// Why a book stopped being verified. The view reads `None` until a fresh
/// snapshot verifies again, and the subscription is resynced.
///
/// ```
/// use resilient_ws::BookBreak;
/// let kind = BookBreak::Discontinuity { expected: 41, got: 43 };
/// assert_eq!(kind.to_string(), "update-id discontinuity: expected 41, got 43");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BookBreak {
    /// The venue's book checksum does not match the book built from its
    /// messages (Kraken's CRC-32; OKX's while it sends a non-zero one).
    ChecksumMismatch {
        /// The checksum the venue sent (OKX's signed value as its 32 bits).
        expected: u32,
        /// The checksum of the book built here.
        computed: u32,
    },
    /// An update does not continue the venue's update-id chain, so one was
    /// lost (OKX `prevSeqId` against the previous `seqId`; WEEX `U` against
    /// the previous `u`).
    Discontinuity {
        /// The id the update had to continue from: the previous update's last id.
        expected: i64,
        /// The id the update named as its predecessor.
        got: i64,
    },
    /// The book cannot go on from what arrived: an update it cannot apply (a
    /// level that is not a decimal, a count below zero, a price out of range,
    /// an unreadable frame, a missing update id), or a snapshot it could not
    /// get. `reason` is a short fixed text, never the frame's content.
    Unusable {
        /// What was wrong, e.g. `"a delta takes a count below zero"`.
        reason: &'static str,
    },
}

impl fmt::Display for BookBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BookBreak::ChecksumMismatch { expected, computed } => {
                write!(f, "checksum mismatch: venue {expected}, book {computed}")
            }
            BookBreak::Discontinuity { expected, got } => {
                write!(f, "update-id discontinuity: expected {expected}, got {got}")
            }
            BookBreak::Unusable { reason } => write!(f, "unusable update: {reason}"),
        }
    }
}

/// An update id the venue sends unsigned, as a [`BookBreak::Discontinuity`]
/// id (saturating: no venue's ids come near `i64::MAX`).
pub(crate) fn signed_id(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_describes_itself_without_frame_text() {
        let checksum = BookBreak::ChecksumMismatch {
            expected: 7,
            computed: 9,
        };
        assert_eq!(checksum.to_string(), "checksum mismatch: venue 7, book 9");
        let unusable = BookBreak::Unusable {
            reason: "a delta takes a count below zero",
        };
        assert_eq!(
            unusable.to_string(),
            "unusable update: a delta takes a count below zero"
        );
        assert_eq!(signed_id(u64::MAX), i64::MAX);
        assert_eq!(signed_id(12), 12);
    }
}
