//! Record and replay: the raw feed of a client kept on disk, and played back
//! through the same adapter and session core to yield the same items.
//!
//! Why: a market-data service wants yesterday's feed replayable exactly (to
//! debug a book that went wrong, to test a strategy, to prove an adapter
//! against real traffic). Keeping only the frames is not enough to reproduce
//! what a consumer saw: which subscriptions existed, when the connection
//! dropped, when timers fired and which frames were written all change what
//! the session does with the next frame. So the recorder keeps every *input*
//! of the session's drive (`supervisor/drive.rs`, the one set of rules both
//! shells follow), with its time, and replay calls the same drive methods
//! with the recorded times ([`Replay`]). Nothing of the rules is copied.
//!
//! Rules, and why:
//! - **Off the socket's path.** The drive hands each input to a [`Recorder`]
//!   by cloning the frame (reference-counted bytes) and a non-blocking
//!   `try_send` on a channel bounded in count *and* bytes. A writer thread
//!   encodes and writes. When the channel is full the record is dropped and
//!   counted, and the file marks the hole ([`RecordStats::dropped`]); a
//!   recording never slows the feed. With no recorder configured the drive
//!   pays one branch per input.
//! - **Crash-safe.** Records are framed with length and CRC32; a torn last
//!   record is detected and skipped, never misread (`format.rs`).
//! - **Rotated.** A new file when the current one passes
//!   [`RecordOptions::rotate_bytes`] or [`RecordOptions::rotate_after`]; names
//!   sort by time (`writer.rs`). Old files are never reopened.
//! - **No secrets on disk.** Outbound frames, one-off sends and request
//!   parameters may hold credentials: only their length and CRC (or a
//!   request's method) are kept. Replay verifies outbound frames by CRC. The
//!   one exception is chosen by the adapter, never the recorder: the params
//!   it names as recordable ([`Protocol::recordable_params`](crate::Protocol::recordable_params);
//!   Kalshi: the sid, action and markets of an `add_markets` /
//!   `delete_markets`) are kept with the request's method, so a replay's
//!   books cover added markets as live did.
//! - **One recorder, many connections.** A recorder can be shared by every
//!   client of a set or pool (clone it into each config); each connection is
//!   its own stream inside the files, and replay follows one stream.

pub(crate) mod format;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

pub use reader::{Recording, RecordingSummary};

use format::Entry;
use writer::{Counters, Msg};

/// How a [`Recorder`] queues, writes and rotates. `Default` is 65,536
/// records or 64 MiB in the queue, a new file every 256 MiB, no age limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordOptions {
    /// Records the queue to the writer holds at most.
    pub queue_records: usize,
    /// Bytes (frame payloads plus a fixed overhead) the queue holds at most.
    pub queue_bytes: usize,
    /// Start a new file once the current one holds this many bytes.
    pub rotate_bytes: u64,
    /// Start a new file once the current one is this old (checked per write).
    pub rotate_after: Option<Duration>,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            queue_records: 65_536,
            queue_bytes: 64 * 1024 * 1024,
            rotate_bytes: 256 * 1024 * 1024,
            rotate_after: None,
        }
    }
}

impl RecordOptions {
    /// Sets [`queue_records`](Self::queue_records) (at least 1).
    pub fn queue_records(mut self, records: usize) -> Self {
        self.queue_records = records.max(1);
        self
    }

    /// Sets [`queue_bytes`](Self::queue_bytes).
    pub fn queue_bytes(mut self, bytes: usize) -> Self {
        self.queue_bytes = bytes;
        self
    }

    /// Sets [`rotate_bytes`](Self::rotate_bytes).
    pub fn rotate_bytes(mut self, bytes: u64) -> Self {
        self.rotate_bytes = bytes;
        self
    }

    /// Sets [`rotate_after`](Self::rotate_after).
    pub fn rotate_after(mut self, age: Duration) -> Self {
        self.rotate_after = Some(age);
        self
    }
}

/// A recorder's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RecordStats {
    /// Records written to a file.
    pub written: u64,
    /// Records dropped because the queue was full, or (a book snapshot) too
    /// large to record; marked in the file.
    pub dropped: u64,
    /// Records lost to a failed write (the file may end torn there).
    pub write_errors: u64,
    /// Files opened.
    pub files: u64,
}

/// Fixed per-record overhead counted against [`RecordOptions::queue_bytes`].
const RECORD_OVERHEAD: usize = 64;

struct Inner {
    sender: SyncSender<Msg>,
    counters: Arc<Counters>,
    queue_bytes: usize,
    /// Where the monotonic offsets of every record count from.
    origin: std::time::Instant,
    next_stream: AtomicU32,
}

/// Records the inputs of every connection it is given to (through
/// [`ConfigBuilder::record`](crate::ConfigBuilder::record)) into rotating,
/// crash-safe files in one directory, written by a thread of its own.
///
/// Cheap to clone; the writer thread ends once the recorder and every
/// connection using it are gone (after writing what it holds).
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder writing into `dir` (created if missing).
    ///
    /// # Errors
    ///
    /// The directory cannot be created, or the writer thread cannot start.
    pub fn create(dir: impl Into<PathBuf>, options: RecordOptions) -> std::io::Result<Recorder> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let counters = Arc::new(Counters::default());
        let (sender, receiver) = mpsc::sync_channel(options.queue_records.max(1));
        let sink = writer::Sink {
            dir,
            rotate_bytes: options.rotate_bytes,
            rotate_after: options.rotate_after,
            counters: Arc::clone(&counters),
        };
        std::thread::Builder::new()
            .name("resilient-ws-recorder".into())
            .spawn(move || writer::run(sink, receiver))?;
        Ok(Recorder {
            inner: Arc::new(Inner {
                sender,
                counters,
                queue_bytes: options.queue_bytes,
                origin: std::time::Instant::now(),
                next_stream: AtomicU32::new(1),
            }),
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> RecordStats {
        let c = &self.inner.counters;
        RecordStats {
            written: c.written.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            write_errors: c.write_errors.load(Ordering::Relaxed),
            files: c.files.load(Ordering::Relaxed),
        }
    }

    /// Waits until every record queued before this call is in the file
    /// (handed to the OS; not `fsync`ed). Blocks the calling thread: from
    /// async code, call it in `spawn_blocking`.
    ///
    /// # Errors
    ///
    /// The write or flush failed, or the writer thread is gone.
    pub fn flush(&self) -> std::io::Result<()> {
        let (done, wait) = mpsc::channel();
        self.inner
            .sender
            .send(Msg::Flush(done))
            .map_err(|_| std::io::Error::other("recorder thread is gone"))?;
        wait.recv()
            .map_err(|_| std::io::Error::other("recorder thread is gone"))?
    }

    /// The instant the recording's offsets count from.
    pub(crate) fn origin(&self) -> std::time::Instant {
        self.inner.origin
    }

    /// The number of the next connection's stream in this recording.
    pub(crate) fn next_stream(&self) -> u32 {
        self.inner.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a record its tap could not offer at all (too large to record).
    pub(crate) fn count_dropped(&self) {
        self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Queues `entry` (after `hole`, what its stream dropped just before)
    /// if there is room in count and bytes. Never blocks. `Err(cost)`: it was
    /// dropped and counted; the caller adds it to its stream's next hole.
    pub(crate) fn offer(&self, entry: Entry, payload: usize, hole: (u64, u64)) -> Result<(), u64> {
        let inner = &*self.inner;
        let cost = payload.saturating_add(RECORD_OVERHEAD);
        let before = inner
            .counters
            .queued_bytes
            .fetch_add(cost, Ordering::AcqRel);
        let sent = before.saturating_add(cost) <= inner.queue_bytes
            && match inner.sender.try_send(Msg::Entry(entry, cost, hole)) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            };
        if sent {
            return Ok(());
        }
        inner
            .counters
            .queued_bytes
            .fetch_sub(cost, Ordering::AcqRel);
        inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
        Err(cost as u64)
    }
}
