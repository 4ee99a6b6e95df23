//! Book frames that arrive before their subscription's `subscribed` ack.
//!
//! The session stashes a data frame whose `sid` no ack has named yet and
//! delivers it once the ack comes, but the adapter classified it on arrival,
//! when the `sid` was nobody's book. So the adapter keeps its own copy of
//! such frames while a book subscribe waits for its ack, and the ack that
//! names the `sid` applies them, in arrival order, before anything later:
//! an `orderbook_snapshot` sent ahead of its ack still verifies the market.
//!
//! Rules, and why:
//! - Only `orderbook_snapshot` and `orderbook_delta` frames are held (no
//!   other channel carries books), and only while a book subscribe waits.
//! - Bounded in count ([`MAX_FRAMES`]) and bytes ([`MAX_BYTES`]), the
//!   session's default stash bounds. Past either, the oldest frames go and
//!   their `sid` is marked as having lost frames: when its ack comes the
//!   book is owed a resync (a snapshot may be among the lost). A frame larger
//!   than the whole byte budget is not held and marks its `sid` the same way.
//! - The marks are bounded too ([`MAX_FRAMES`] sids; the oldest mark goes).
//! - Everything held is dropped when no book subscribe waits any more
//!   (nothing could claim it) and when the connection is lost.

use std::collections::VecDeque;

/// Frames held at most.
pub(super) const MAX_FRAMES: usize = 256;

/// Bytes held at most (frame text).
pub(super) const MAX_BYTES: usize = 1024 * 1024;

/// One held frame.
#[derive(Debug, Clone)]
struct Early {
    sid: u64,
    text: Box<str>,
}

/// The early book frames of one adapter.
#[derive(Debug, Clone, Default)]
pub(super) struct EarlyFrames {
    frames: VecDeque<Early>,
    bytes: usize,
    /// Sids that lost a held frame to the bounds.
    lost: VecDeque<u64>,
}

/// What an ack claims.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Claimed {
    /// The sid's frames, in arrival order.
    pub(super) frames: Vec<Box<str>>,
    /// Whether some of its frames were dropped by the bounds.
    pub(super) lost: bool,
}

/// Whether `text` is a Kalshi book frame (`orderbook_snapshot` or
/// `orderbook_delta`).
pub(super) fn is_book_frame(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(default, borrow, rename = "type")]
        kind: Option<&'a str>,
    }
    matches!(
        serde_json::from_str::<Kind<'_>>(text).map(|k| k.kind),
        Ok(Some("orderbook_snapshot" | "orderbook_delta"))
    )
}

impl EarlyFrames {
    /// Keeps a copy of book frame `text` of the not yet acknowledged `sid`.
    pub(super) fn hold(&mut self, sid: u64, text: &str) {
        if text.len() > MAX_BYTES {
            self.mark_lost(sid);
            return;
        }
        while self.frames.len() >= MAX_FRAMES || self.bytes + text.len() > MAX_BYTES {
            let Some(oldest) = self.frames.pop_front() else {
                break;
            };
            self.bytes -= oldest.text.len();
            self.mark_lost(oldest.sid);
        }
        self.bytes += text.len();
        self.frames.push_back(Early {
            sid,
            text: text.into(),
        });
    }

    fn mark_lost(&mut self, sid: u64) {
        if self.lost.contains(&sid) {
            return;
        }
        if self.lost.len() >= MAX_FRAMES {
            self.lost.pop_front();
        }
        self.lost.push_back(sid);
    }

    /// Takes what was held for `sid` (its ack came).
    pub(super) fn claim(&mut self, sid: u64) -> Claimed {
        let mut claimed = Claimed::default();
        if let Some(at) = self.lost.iter().position(|s| *s == sid) {
            self.lost.remove(at);
            claimed.lost = true;
        }
        if self.frames.iter().any(|f| f.sid == sid) {
            let (mine, others): (VecDeque<Early>, VecDeque<Early>) =
                std::mem::take(&mut self.frames)
                    .into_iter()
                    .partition(|f| f.sid == sid);
            self.frames = others;
            for frame in mine {
                self.bytes -= frame.text.len();
                claimed.frames.push(frame.text);
            }
        }
        claimed
    }

    /// Drops everything held.
    pub(super) fn clear(&mut self) {
        self.frames.clear();
        self.lost.clear();
        self.bytes = 0;
    }

    /// Frames, bytes and lost marks held (tests of the bounds).
    #[cfg(test)]
    pub(super) fn held(&self) -> (usize, usize, usize) {
        (self.frames.len(), self.bytes, self.lost.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_book_frames_are_book_frames() {
        assert!(is_book_frame(
            r#"{"type":"orderbook_snapshot","sid":1,"msg":{}}"#
        ));
        assert!(is_book_frame(r#"{"sid":1,"type":"orderbook_delta"}"#));
        for other in [
            r#"{"type":"ticker","sid":1}"#,
            r#"{"sid":1}"#,
            r#"{"type":7,"sid":1}"#,
            "not json",
        ] {
            assert!(!is_book_frame(other), "{other}");
        }
    }

    #[test]
    fn an_ack_claims_its_frames_in_order_and_only_its_own() {
        let mut early = EarlyFrames::default();
        early.hold(7, "a");
        early.hold(8, "b");
        early.hold(7, "cc");
        assert_eq!(
            early.claim(7),
            Claimed {
                frames: vec!["a".into(), "cc".into()],
                lost: false
            }
        );
        assert_eq!(early.held(), (1, 1, 0));
        assert_eq!(early.claim(7), Claimed::default());
        early.clear();
        assert_eq!(early.held(), (0, 0, 0));
    }

    #[test]
    fn the_bounds_drop_the_oldest_and_mark_their_sid() {
        let mut early = EarlyFrames::default();
        for n in 0..MAX_FRAMES as u64 + 2 {
            early.hold(n, "x");
        }
        assert_eq!(early.held(), (MAX_FRAMES, MAX_FRAMES, 2));
        assert!(early.claim(0).lost && early.claim(1).lost);
        assert!(!early.claim(2).lost);
        // Bytes: a frame over the whole budget is not held; big ones push out old ones.
        let mut early = EarlyFrames::default();
        early.hold(1, &"x".repeat(MAX_BYTES + 1));
        assert_eq!(early.held(), (0, 0, 1));
        early.hold(2, &"x".repeat(MAX_BYTES / 2 + 1));
        early.hold(3, &"x".repeat(MAX_BYTES / 2 + 1));
        assert_eq!(early.held(), (1, MAX_BYTES / 2 + 1, 2));
        let claimed = early.claim(2);
        assert!(claimed.lost && claimed.frames.is_empty());
        assert_eq!(early.claim(3).frames.len(), 1);
        // Marks are bounded.
        for sid in 0..MAX_FRAMES as u64 * 2 {
            early.mark_lost(sid);
        }
        assert_eq!(early.held().2, MAX_FRAMES);
    }
}
