//! Reading a recording directory back: files in name order (names sort by
//! time, `writer.rs`), records in file order, each checked by length and
//! CRC (`format.rs`).
//!
//! What cannot be trusted is skipped and counted, never misread: a file that
//! ends inside a record (a crash) is `torn`; a record whose CRC or body is
//! wrong ends that file's reading (`corrupt`: nothing after it in that file
//! can be framed with certainty); a file without the header is skipped.
//! Files are read whole, one at a time: a recording's memory is one file's.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use super::format::{decode, Decoded, Entry, Input, READABLE};

/// A recording directory opened for reading (by [`Replay`](crate::Replay)
/// or for a [`summary`](Recording::summary)).
#[derive(Debug)]
pub struct Recording {
    files: VecDeque<PathBuf>,
    /// The current file's bytes and the read position.
    current: Vec<u8>,
    at: usize,
    files_done_total: u64,
    torn: u64,
    corrupt: u64,
    unreadable: u64,
}

/// What a recording holds, counted by [`Recording::summary`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordingSummary {
    /// Files read.
    pub files: u64,
    /// Records read whole.
    pub records: u64,
    /// Inbound frames.
    pub frames: u64,
    /// Inbound frame payload bytes.
    pub frame_bytes: u64,
    /// Connections made.
    pub connects: u64,
    /// Connections lost or closed.
    pub disconnects: u64,
    /// Commands (subscribe, unsubscribe, send, request, close).
    pub commands: u64,
    /// Frames written.
    pub writes: u64,
    /// Records the recorder dropped (its queue was full), from the holes.
    pub dropped: u64,
    /// Book snapshot fetch results (a REST-built book's snapshots).
    pub snapshots: u64,
    /// Files that ended inside a record (a crash): the tail was skipped.
    pub torn: u64,
    /// Records with a bad CRC or body: the rest of that file was skipped.
    pub corrupt: u64,
    /// Files that could not be read or lack the header.
    pub unreadable: u64,
    /// The streams (connections) seen: number, name and venue.
    pub streams: BTreeMap<u32, (String, String)>,
    /// Wall clock of the first and last record (ns since the Unix epoch).
    pub wall_span: Option<(u64, u64)>,
}

impl Recording {
    /// Opens the recording in `dir` (every `*.rwsrec` file, in name order).
    ///
    /// # Errors
    ///
    /// The directory cannot be listed.
    pub fn open(dir: impl AsRef<Path>) -> std::io::Result<Recording> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "rwsrec"))
            .collect();
        files.sort();
        Ok(Recording {
            files: files.into(),
            current: Vec::new(),
            at: 0,
            files_done_total: 0,
            torn: 0,
            corrupt: 0,
            unreadable: 0,
        })
    }

    /// Files that ended inside a record so far.
    pub fn torn(&self) -> u64 {
        self.torn
    }

    /// Records with a bad CRC or body so far.
    pub fn corrupt(&self) -> u64 {
        self.corrupt
    }

    /// Reads every record and counts what the recording holds.
    pub fn summary(mut self) -> RecordingSummary {
        let mut s = RecordingSummary::default();
        while let Some(entry) = self.next_entry() {
            s.records += 1;
            let span = s.wall_span.get_or_insert((entry.wall, entry.wall));
            span.0 = span.0.min(entry.wall);
            span.1 = span.1.max(entry.wall);
            match entry.event {
                Input::Stream { name, venue, .. } => {
                    s.streams.insert(entry.stream, (name, venue));
                }
                Input::Frame { message, .. } => {
                    s.frames += 1;
                    s.frame_bytes += message.len() as u64;
                }
                Input::Connected => s.connects += 1,
                Input::Disconnected { .. } => s.disconnects += 1,
                Input::Command { .. } => s.commands += 1,
                Input::Write { .. } => s.writes += 1,
                Input::Hole { records, .. } => s.dropped += records,
                Input::Fetched(_) => s.snapshots += 1,
                _ => {}
            }
        }
        s.files = self.files_done_total;
        s.torn = self.torn;
        s.corrupt = self.corrupt;
        s.unreadable = self.unreadable;
        s
    }

    /// The next whole record, or `None` at the end of the last file.
    pub(crate) fn next_entry(&mut self) -> Option<Entry> {
        loop {
            if let Some(rest) = self.current.get(self.at..) {
                if !rest.is_empty() {
                    match decode(rest) {
                        Decoded::Entry(entry, used) => {
                            self.at += used;
                            return Some(entry);
                        }
                        Decoded::Short => {
                            tracing::warn!("recording: torn record at the end of a file skipped");
                            self.torn += 1;
                        }
                        Decoded::Corrupt => {
                            tracing::warn!("recording: corrupt record; rest of the file skipped");
                            self.corrupt += 1;
                        }
                    }
                }
            }
            self.load_next()?;
        }
    }

    /// Loads the next file with a valid header; `None` when none is left.
    fn load_next(&mut self) -> Option<()> {
        self.current.clear();
        self.at = 0;
        loop {
            let path = self.files.pop_front()?;
            match std::fs::read(&path) {
                Ok(bytes) if READABLE.iter().any(|magic| bytes.starts_with(*magic)) => {
                    self.files_done_total += 1;
                    self.current = bytes;
                    // Every version's header is 8 bytes.
                    self.at = READABLE[0].len();
                    return Some(());
                }
                _ => {
                    tracing::warn!(path = %path.display(), "recording: unreadable file skipped");
                    self.unreadable += 1;
                }
            }
        }
    }
}
