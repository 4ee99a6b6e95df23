//! When each frame was received, on both clocks, without reading a clock.
//!
//! Rules, and why: the driver hands in a monotonic instant and the wall
//! clock at that instant at each connect (the anchor), and the time each
//! read completed. A frame's wall-clock receive time is the anchor's wall
//! time plus the monotonic time since: no wall-clock read per frame, and
//! none in the core, so a replay handing in the recorded wall clock gets
//! the same times. Only the receive time uses the read time: the core's
//! timers keep the loop's `now` (a clock read after a paused-clock jump
//! must not move the session's deadlines). The frames cut from one socket
//! read share its receive time, so the wall-clock arithmetic runs once per
//! read (memoised), not once per frame (~60 instructions a frame, measured).

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::message::Received;

/// The anchor of the current connection and the read time of the frame
/// being handled.
#[derive(Default)]
pub(super) struct ReceiveClock {
    /// A monotonic instant and the wall clock at it; `None` before the
    /// first connect.
    anchor: Option<(std::time::Instant, SystemTime)>,
    /// When the read of the current frame completed; `None` before the
    /// first frame (the receive time is then the handling time).
    read_at: Option<Instant>,
    /// The last receive time worked out, with the read time and anchor it
    /// came from (the frames of one read share it).
    memo: Cell<Option<Memo>>,
}

/// A receive time and what it was worked out from (see `ReceiveClock::memo`).
type Memo = (
    std::time::Instant,
    (std::time::Instant, SystemTime),
    Received,
);

impl ReceiveClock {
    /// A connection came up at `now`, when the wall clock read `wall`.
    pub(super) fn anchor(&mut self, now: Instant, wall: SystemTime) {
        self.anchor = Some((now.into_std(), wall));
    }

    /// The read of the frame about to be handled completed at `at`.
    #[inline]
    pub(super) fn read_at(&mut self, at: Instant) {
        self.read_at = Some(at);
    }

    /// The receive time of the current frame, handled at `now`. Before any
    /// connect (no wall clock handed in yet) its wall time is the epoch.
    #[inline]
    pub(super) fn received(&self, now: Instant) -> Received {
        let at = self.read_at.unwrap_or(now).into_std();
        let Some(anchored @ (anchor, wall)) = self.anchor else {
            return Received {
                at,
                wall: UNIX_EPOCH,
            };
        };
        if let Some((memo_at, memo_anchor, received)) = self.memo.get() {
            if memo_at == at && memo_anchor == anchored {
                return received;
            }
        }
        let wall = match at.checked_duration_since(anchor) {
            Some(since) => wall.checked_add(since),
            None => wall.checked_sub(anchor.saturating_duration_since(at)),
        }
        .unwrap_or(wall);
        let received = Received { at, wall };
        self.memo.set(Some((at, anchored, received)));
        received
    }
}
