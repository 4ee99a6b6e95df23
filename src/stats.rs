//! Counters, and the snapshot that proves nothing disappears uncounted.
//!
//! Connection-level counters are relaxed atomics written only by the supervisor.
//! Per-queue counters live inside each queue (under the queue's lock). A
//! [`Stats`] snapshot sums the live queues plus the final counts of queues that
//! are gone, so these hold whenever the connection is quiet:
//!
//! - per subscription and in total: `routed = delivered + dropped + queued`;
//! - `frames_in = routed + control + unroutable + stashed`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::events::Unplaced;
use crate::queue::{Queue, QueueStats};
use crate::venue_error::VenueErrorKind;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// The supervisor's counters.
        #[derive(Default)]
        pub(crate) struct Counters {
            $(pub(crate) $name: Counter,)*
        }

        /// A snapshot of a client's counters.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct Stats {
            $($(#[$doc])* pub $name: u64,)*
            /// Data messages in all queues (subscriptions and the inbound stream), summed.
            pub queues: QueueStats,
        }

        impl Counters {
            fn snapshot(&self) -> Stats {
                Stats {
                    $($name: self.$name.get(),)*
                    queues: QueueStats::default(),
                }
            }
        }

        impl Stats {
            /// Adds `other` field by field (pool-wide totals).
            pub(crate) fn add(&mut self, other: &Stats) {
                $(self.$name += other.$name;)*
                self.queues.add(&other.queues);
            }

            /// Every counter with its name, for publishing (`queues` excluded).
            #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
            pub(crate) fn named(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [$((stringify!($name), self.$name),)*].into_iter()
            }
        }
    };
}

counters! {
    /// WebSocket messages read from the socket (data and control).
    frames_in,
    /// Payload bytes read.
    bytes_in,
    /// Messages written (including pings and subscribe requests).
    frames_out,
    /// Payload bytes written.
    bytes_out,
    /// Frames that were not data: acks, pongs, heartbeats, status, pings, close.
    control,
    /// Frames that could not be routed: unknown server id, unparseable, evicted from the stash.
    unroutable,
    /// Frames held in the stash right now, waiting for their ack.
    stashed,
    /// Successful connections (the first one included).
    connects,
    /// Reconnections (connections after the first).
    reconnects,
    /// Pongs that did not come back in time.
    ping_timeouts,
    /// Idle timeouts (no data for too long).
    idle_timeouts,
    /// Subscribe requests replayed after a reconnect or for a fresh snapshot.
    resubscribes,
    /// Sequence gaps detected.
    gaps,
    /// Sequence resets detected.
    resets,
    /// Duplicate sequence numbers dropped.
    duplicates,
    /// Book breaks (checksum mismatches, update-id discontinuities, unusable
    /// updates; see [`BookBreak`](crate::BookBreak)).
    book_breaks,
    /// Subscriptions registered right now (pending or acknowledged); a gauge.
    subscriptions,
    /// Subscribe and unsubscribe requests held back right now by the venue's
    /// operations window ([`VenueLimits::subscribe_ops`](crate::protocol::VenueLimits));
    /// a gauge. A pool places new subscriptions elsewhere while it is not 0.
    subscribe_ops_waiting,
    /// Venue errors classified [`Transient`](crate::VenueErrorKind::Transient).
    venue_errors_transient,
    /// Venue errors classified [`Lockout`](crate::VenueErrorKind::Lockout).
    venue_errors_lockout,
    /// Venue errors classified [`RateLimited`](crate::VenueErrorKind::RateLimited).
    venue_errors_rate_limited,
    /// Venue errors classified [`SessionExpired`](crate::VenueErrorKind::SessionExpired).
    venue_errors_session_expired,
    /// Venue errors classified [`Permanent`](crate::VenueErrorKind::Permanent).
    venue_errors_permanent,
    /// Venue errors classified [`Unknown`](crate::VenueErrorKind::Unknown).
    venue_errors_unknown,
}

impl Counters {
    /// Counts one venue error under its kind.
    pub(crate) fn venue_error(&self, kind: VenueErrorKind) {
        match kind {
            VenueErrorKind::Transient => &self.venue_errors_transient,
            VenueErrorKind::Lockout => &self.venue_errors_lockout,
            VenueErrorKind::RateLimited => &self.venue_errors_rate_limited,
            VenueErrorKind::SessionExpired => &self.venue_errors_session_expired,
            VenueErrorKind::Permanent => &self.venue_errors_permanent,
            VenueErrorKind::Unknown => &self.venue_errors_unknown,
        }
        .bump();
    }
}

/// One counter with a single writer, the connection task, and any number of
/// readers (handles). The writer is alone, so it adds with a plain load and
/// store instead of a read-modify-write: a `lock`-prefixed add on every frame
/// (two or three counters per frame) is pure cost when nobody else writes.
/// Readers see whole values (atomic loads), never a torn one. A counter that
/// several tasks change (`subscribes_in_flight`) is a plain `AtomicU64`.
#[derive(Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub(crate) fn bump(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub(crate) fn add(&self, n: u64) {
        let value = self.0.load(Ordering::Relaxed);
        self.0.store(value.wrapping_add(n), Ordering::Relaxed);
    }

    /// Overwrites the value (for gauges such as `stashed`).
    pub(crate) fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }

    /// The current value.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters shared between the supervisor (writer) and handles (readers).
#[derive(Default)]
pub(crate) struct StatsHub {
    pub(crate) counters: Counters,
    /// Subscriptions asked for but not yet registered by the supervisor (in
    /// the command channel): with `counters.subscriptions`, a connection's
    /// load as a pool sees it. Kept by [`InFlight`] guards.
    pub(crate) subscribes_in_flight: AtomicU64,
    /// Held while a subscription moves from in flight to registered, and
    /// while a pool reads the two: a reader in between would count it twice
    /// (a spurious "pool is full" at exact capacity) or not at all.
    handover: Mutex<()>,
    queues: Mutex<QueueSet>,
    /// Frames the adapter could not place, counted per kind (bounded).
    unplaced: Mutex<UnplacedTable>,
    /// Where the session records venue-timestamp-to-receive lags (feature
    /// `metrics`; set once when the client is spawned).
    #[cfg(feature = "metrics")]
    pub(crate) venue_lag: std::sync::OnceLock<::metrics::Histogram>,
}

/// Pruning starts once this many queues are tracked.
const PRUNE_FLOOR: usize = 64;

/// One subscription on its way to the supervisor. Counted from creation until
/// dropped: after the supervisor has registered it (or refused it), or when
/// the command is dropped unsent. RAII, so no path can leak a count.
pub(crate) struct InFlight(Arc<StatsHub>);

impl InFlight {
    /// The hub it counts in.
    pub(crate) fn hub(&self) -> &Arc<StatsHub> {
        &self.0
    }

    pub(crate) fn new(hub: &Arc<StatsHub>) -> Self {
        hub.subscribes_in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(hub))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.subscribes_in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct QueueSet {
    live: Vec<Arc<Queue>>,
    /// Final counts of queues nobody holds any more.
    retired: QueueStats,
    /// `track` prunes when `live` reaches this length, then sets it to twice
    /// what is left: amortised O(1) per queue, and `live` never holds more
    /// than twice the queues somebody still holds (plus the floor), with or
    /// without anyone calling `stats()`.
    prune_at: usize,
}

impl QueueSet {
    /// Moves the counts of queues nobody else holds into `retired`.
    fn prune(&mut self) {
        let mut retired = QueueStats::default();
        self.live.retain(|queue| {
            // Only we hold it: nobody can push or pop any more, so its counts are final.
            if Arc::strong_count(queue) == 1 {
                retired.add(&queue.stats());
                false
            } else {
                true
            }
        });
        self.retired.add(&retired);
        self.prune_at = (self.live.len() * 2).max(PRUNE_FLOOR);
    }
}

impl StatsHub {
    /// The lock of the in-flight -> registered handover (see `handover`).
    pub(crate) fn handover(&self) -> std::sync::MutexGuard<'_, ()> {
        self.handover.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts counting a queue. Called where the queue is made, so the hub
    /// knows every queue a consumer may wait on (the panic guard ends them).
    pub(crate) fn track(&self, queue: &Arc<Queue>) {
        let mut set = self.lock();
        if set.live.len() >= set.prune_at.max(PRUNE_FLOOR) {
            set.prune();
        }
        set.live.push(Arc::clone(queue));
    }

    /// Ends every queue still held by a consumer with `error` (after what
    /// it already holds): the connection task is gone.
    pub(crate) fn finish_all(&self, error: &crate::error::Error) {
        let set = self.lock();
        for queue in &set.live {
            queue.finish(Some(error.clone()));
        }
    }

    /// How many queues the hub holds (live, plus ended ones not pruned yet).
    pub(crate) fn tracked(&self) -> usize {
        self.lock().live.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueSet> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let mut stats = self.counters.snapshot();
        let mut set = self.lock();
        set.prune();
        let mut total = set.retired;
        for queue in &set.live {
            total.add(&queue.stats());
        }
        stats.queues = total;
        stats
    }
}

/// The most kinds of unplaced frames counted apart; frames of further kinds
/// are counted together under [`OTHER_KINDS`]. The peer chooses the names, so
/// the table is bounded in entries and (with [`MAX_KIND_BYTES`]) in bytes.
pub const MAX_KINDS: usize = 32;
/// The longest kind name kept, in bytes; a longer one is cut at a character
/// boundary.
pub const MAX_KIND_BYTES: usize = 64;
/// The kind under which frames past [`MAX_KINDS`] kinds are counted.
pub const OTHER_KINDS: &str = "<other>";

/// Frames of one kind the adapter could not place, from
/// [`Client::unplaced`](crate::Client::unplaced).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnplacedKind {
    /// The venue's name for the frame type (see [`Event::UnknownMessage`](crate::Event::UnknownMessage)).
    pub kind: String,
    /// Where the first frame of this kind went.
    pub fate: Unplaced,
    /// How many frames of this kind arrived.
    pub count: u64,
}

/// The per-kind counts behind [`Client::unplaced`](crate::Client::unplaced):
/// at most [`MAX_KINDS`] named entries plus [`OTHER_KINDS`].
#[derive(Default)]
struct UnplacedTable {
    kinds: Vec<UnplacedKind>,
}

impl UnplacedTable {
    /// Counts one frame of `kind`; whether it is the first of its entry.
    fn count(&mut self, kind: &str, fate: Unplaced) -> Option<&UnplacedKind> {
        let kind = cut(kind, MAX_KIND_BYTES);
        let index = match self.kinds.iter().position(|k| k.kind == kind) {
            Some(index) => index,
            None => {
                let named = self.kinds.iter().filter(|k| k.kind != OTHER_KINDS).count();
                let kind = if named < MAX_KINDS { kind } else { OTHER_KINDS };
                match self.kinds.iter().position(|k| k.kind == kind) {
                    Some(index) => index,
                    None => {
                        self.kinds.push(UnplacedKind {
                            kind: kind.to_owned(),
                            fate,
                            count: 0,
                        });
                        self.kinds.len() - 1
                    }
                }
            }
        };
        let entry = self.kinds.get_mut(index)?;
        entry.count += 1;
        (entry.count == 1).then_some(&*entry)
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or("")
}

impl StatsHub {
    /// Counts one frame the adapter could not place. Returns the kind as it
    /// is kept (cut, or [`OTHER_KINDS`]) when it is the first of that kind:
    /// the caller reports it once.
    pub(crate) fn count_unplaced(&self, kind: &str, fate: Unplaced) -> Option<String> {
        let mut table = self.unplaced.lock().unwrap_or_else(|p| p.into_inner());
        table.count(kind, fate).map(|entry| entry.kind.clone())
    }

    /// The per-kind counts of frames the adapter could not place.
    pub(crate) fn unplaced(&self) -> Vec<UnplacedKind> {
        let table = self.unplaced.lock().unwrap_or_else(|p| p.into_inner());
        table.kinds.clone()
    }
}

impl Stats {
    /// Whether the accounting invariants hold for this snapshot (take it while
    /// the connection is quiet for an exact answer).
    pub fn is_balanced(&self) -> bool {
        let q = &self.queues;
        q.routed == q.delivered + q.dropped + q.queued
            && self.frames_in == q.routed + self.control + self.unroutable + self.stashed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Overflow;

    #[test]
    fn ended_queues_are_pruned_without_anyone_calling_stats() {
        let hub = StatsHub::default();
        let kept: Vec<Arc<Queue>> = (0..10)
            .map(|_| {
                let q = Queue::new(4, Overflow::DropOldest);
                hub.track(&q);
                q
            })
            .collect();
        let mut most = 0;
        for _ in 0..100_000 {
            let q = Queue::new(4, Overflow::DropOldest);
            hub.track(&q);
            drop(q);
            most = most.max(hub.tracked());
        }
        assert!(most <= PRUNE_FLOOR.max(2 * kept.len()) + 1, "{most}");
        let stats = hub.snapshot();
        assert_eq!(hub.tracked(), kept.len());
        assert!(stats.queues.routed == 0);
    }

    #[test]
    fn unplaced_kinds_are_reported_once_and_bounded_in_count_and_bytes() {
        let hub = StatsHub::default();
        assert_eq!(
            hub.count_unplaced("level4", Unplaced::UnknownType)
                .as_deref(),
            Some("level4")
        );
        assert_eq!(hub.count_unplaced("level4", Unplaced::UnknownType), None);
        // A peer naming thousands of long kinds fills the table only so far.
        let long = "é".repeat(100);
        let first = hub.count_unplaced(&long, Unplaced::Unroutable);
        let kept = first.as_deref().unwrap_or_default();
        assert!(
            kept.len() <= MAX_KIND_BYTES && long.starts_with(kept),
            "{kept}"
        );
        let mut reported = 2;
        for n in 0..10_000 {
            let name = format!("{n}{long}");
            reported += usize::from(hub.count_unplaced(&name, Unplaced::Unroutable).is_some());
        }
        let table = hub.unplaced();
        assert_eq!(table.len(), MAX_KINDS + 1);
        assert_eq!(
            reported,
            MAX_KINDS + 1,
            "once per kind, and once for the rest"
        );
        assert!(table.iter().all(|k| k.kind.len() <= MAX_KIND_BYTES));
        let other = table.iter().find(|k| k.kind == OTHER_KINDS);
        assert_eq!(
            other.map(|k| k.count),
            Some(10_000 - (MAX_KINDS as u64 - 2))
        );
        assert_eq!(table.iter().map(|k| k.count).sum::<u64>(), 10_003);
    }
}
