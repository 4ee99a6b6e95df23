//! The writer thread: takes records from the bounded channel, encodes them
//! and appends them to the current file, rotating by size or age.
//!
//! Why a thread: file writes (and an occasional `fsync`-free flush) can
//! block for milliseconds on a busy disk; the socket task must never wait on
//! them. The socket side only clones the frame (reference-counted bytes) and
//! tries to enqueue; everything else happens here.
//!
//! Rules:
//! - A record is written whole, or the file ends before it (a crash mid-write
//!   leaves a torn tail the reader detects by length and CRC).
//! - When the queue was full, the socket side drops records and counts them;
//!   the next record written is preceded by a `Hole` record with the counts,
//!   so a reader knows exactly where data is missing.
//! - Rotation opens a new file (never appends to or overwrites an old one):
//!   names are `{unix millis, 16 digits}-{sequence, 6 digits}.rwsrec`, so a
//!   plain sort orders them.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::format::{encode, Entry, Input, MAGIC};

/// Counters shared by the senders and the writer thread.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) written: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) write_errors: AtomicU64,
    pub(super) files: AtomicU64,
    /// Bytes in the queue now.
    pub(super) queued_bytes: AtomicUsize,
}

/// What goes to the writer thread.
pub(super) enum Msg {
    /// A record, the bytes it counts against the queue, and the records
    /// (and bytes) of its stream dropped just before it: the hole to mark.
    Entry(Entry, usize, (u64, u64)),
    /// Flush the file, then answer.
    Flush(mpsc::Sender<std::io::Result<()>>),
}

/// Where the thread writes and when it rotates.
pub(super) struct Sink {
    pub(super) dir: PathBuf,
    pub(super) rotate_bytes: u64,
    pub(super) rotate_after: Option<Duration>,
    pub(super) counters: Arc<Counters>,
}

struct Current {
    file: BufWriter<File>,
    written: u64,
    opened: Instant,
}

/// The thread body: runs until every sender is gone.
pub(super) fn run(sink: Sink, messages: Receiver<Msg>) {
    let mut current: Option<Current> = None;
    let mut sequence = 0u32;
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Ok(message) = messages.recv() {
        match message {
            Msg::Entry(entry, cost, holes) => {
                buf.clear();
                if holes.0 > 0 {
                    let hole = Entry {
                        stream: entry.stream,
                        at: entry.at,
                        wall: entry.wall,
                        event: Input::Hole {
                            records: holes.0,
                            bytes: holes.1,
                        },
                    };
                    encode(&hole, &mut buf);
                }
                encode(&entry, &mut buf);
                sink.counters.queued_bytes.fetch_sub(cost, Ordering::AcqRel);
                if let Err(error) = sink.append(&mut current, &mut sequence, &buf) {
                    sink.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "recording: write failed; record lost");
                    // Start afresh: the failed file may end torn, which the reader skips.
                    current = None;
                } else {
                    sink.counters.written.fetch_add(1, Ordering::Relaxed);
                }
            }
            Msg::Flush(done) => {
                let result = match &mut current {
                    Some(c) => c.file.flush(),
                    None => Ok(()),
                };
                let _ = done.send(result);
            }
        }
    }
    if let Some(mut c) = current {
        let _ = c.file.flush();
    }
}

impl Sink {
    fn append(
        &self,
        current: &mut Option<Current>,
        sequence: &mut u32,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        let due = current.as_ref().is_some_and(|c| {
            c.written >= self.rotate_bytes
                || self
                    .rotate_after
                    .is_some_and(|age| c.opened.elapsed() >= age)
        });
        if due {
            if let Some(mut old) = current.take() {
                old.file.flush()?;
            }
        }
        let c = match current {
            Some(c) => c,
            None => {
                let file = open_next(&self.dir, sequence)?;
                self.counters.files.fetch_add(1, Ordering::Relaxed);
                current.insert(file)
            }
        };
        c.file.write_all(bytes)?;
        c.written += bytes.len() as u64;
        Ok(())
    }
}

/// Opens the next file of the recording (never an existing one).
fn open_next(dir: &Path, sequence: &mut u32) -> std::io::Result<Current> {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    loop {
        *sequence = sequence.wrapping_add(1);
        let path = dir.join(format!("{millis:016}-{:06}.rwsrec", *sequence));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => {
                let mut file = BufWriter::with_capacity(64 * 1024, file);
                file.write_all(MAGIC)?;
                return Ok(Current {
                    file,
                    written: MAGIC.len() as u64,
                    opened: Instant::now(),
                });
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error),
        }
    }
}
