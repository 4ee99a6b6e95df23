//! The OKX books of one connection, sans I/O: snapshots (from the WebSocket
//! or a [`SnapshotSource`](crate::SnapshotSource)), deltas checked by
//! `seqId`/`prevSeqId` and, while OKX still sends one, the checksum, and the
//! verified top levels published to [`BookViews`].
//!
//! Rules (facts and sources in `src/protocol/VENUES.md`), and why:
//! - A book subscription starts [`Waiting`](State::Waiting). A WebSocket
//!   `snapshot` makes it live at once. When OKX sends no snapshot (its
//!   removal was announced for 2026) and a snapshot source is set, the deltas are buffered (at most
//!   [`MAX_BUFFERED_UPDATES`] and [`MAX_BUFFERED_BYTES`]; overflow is a break)
//!   and one snapshot is requested ([`Books::take_requests`]); the shell runs
//!   the fetch and hands the result back ([`Books::fetched`]). Without a
//!   source the deltas are only chain-checked, as before.
//! - Applying a fetched snapshot follows OKX's procedure: a snapshot older than
//!   the first buffered delta's `prevSeqId` is refetched; buffered deltas with
//!   `seqId` at or below the snapshot's are dropped; the first delta after it
//!   must have `prevSeqId <= snapshot seqId < seqId` (OKX levels carry absolute
//!   sizes, so a delta spanning the snapshot applies exactly); every later one
//!   must name the previous `seqId` as its `prevSeqId`.
//! - A break (a `prevSeqId` that is not the previous `seqId`, a checksum
//!   mismatch, a frame whose levels cannot be applied, a buffer overflow, too
//!   many failed fetches) drops the book, makes its view `None` and returns a
//!   [`BookBreak`] naming it (`ChecksumMismatch`, `Discontinuity` with the
//!   previous `seqId` and the `prevSeqId`, or `Unusable` with a fixed reason)
//!   for the frame, so the session reports it in-band and
//!   resubscribes that one subscription. A break found outside a frame (while
//!   applying a fetched snapshot's buffered deltas, or after too many failed
//!   fetches) is returned by [`Books::fetched`] the same way, so the session
//!   reports it at once, not with the subscription's next frame (which may be
//!   long in coming).
//! - A checksum of 0 (or none) is not verified: OKX keeps the field but sends
//!   0 since it retired the checksum; continuity is then the verification.
//! - Fetch results carry a request number: a result for a subscription that
//!   was resubscribed, forgotten or reconnected since is ignored.
//! - Views are keyed by `instId`: subscribe one book channel per instrument
//!   (a second one would publish to the same view).

use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

use crate::book::{BookSnapshot, BookViews, Verified};
use crate::protocol::kraken::Book;
use crate::protocol::{BookBreak, ServerId};

use super::checksum::checksum;

/// Deltas buffered per subscription while its snapshot is fetched.
pub const MAX_BUFFERED_UPDATES: usize = 4096;
/// Bytes of level text buffered per subscription while its snapshot is fetched.
pub const MAX_BUFFERED_BYTES: usize = 4 * 1024 * 1024;
/// Failed or too-old snapshots in a row before the subscription is resynced.
pub const MAX_SNAPSHOT_ATTEMPTS: u32 = 3;

/// One book frame's contents, as the adapter parsed them (wire text).
pub struct BookFrame<'a> {
    /// `action: "snapshot"` (else an update).
    pub snapshot: bool,
    /// Ask levels, `(price, size)` as wire text.
    pub asks: Vec<(&'a str, &'a str)>,
    /// Bid levels, `(price, size)` as wire text.
    pub bids: Vec<(&'a str, &'a str)>,
    /// The venue's CRC32 of the book after this frame, if sent.
    pub checksum: Option<i64>,
    /// `seqId`, if sent.
    pub seq: Option<i64>,
    /// `prevSeqId`, if sent.
    pub prev: Option<i64>,
    /// The venue's timestamp of the frame, if sent.
    pub venue_time: Option<SystemTime>,
}

/// A buffered delta, owning its text.
struct Delta {
    asks: Vec<(Box<str>, Box<str>)>,
    bids: Vec<(Box<str>, Box<str>)>,
    checksum: Option<i64>,
    seq: i64,
    prev: Option<i64>,
    venue_time: Option<SystemTime>,
    bytes: usize,
}

enum State {
    /// No book yet: waiting for a WebSocket snapshot or a fetched one.
    Waiting {
        buffer: VecDeque<Delta>,
        bytes: usize,
        /// The number of the snapshot request in flight.
        request: Option<u64>,
        /// The `seqId` of the last delta seen (the chain is checked).
        last: Option<i64>,
    },
    /// A book, with the `seqId` it is at. `loose`: the first delta after a
    /// fetched snapshot only has to span it; until then `received` is the
    /// `seqId` of the last delta seen, which the next one must continue (the
    /// stream itself stays unbroken while deltas are skipped as stale).
    Live {
        book: Book,
        seq: i64,
        loose: bool,
        received: Option<i64>,
    },
}

struct Entry {
    inst: Box<str>,
    depth: usize,
    state: State,
    attempts: u32,
}

/// What to do once a frame's state change is decided.
enum Step {
    Done,
    Break(BookBreak),
    Verify,
}

/// What a frame did to its book.
pub type Verdict = Option<BookBreak>;

/// The books of one connection.
#[derive(Default)]
pub struct Books {
    entries: HashMap<ServerId, Entry>,
    views: BookViews,
    /// Whether a snapshot source is set (else deltas are not buffered).
    source: bool,
    next_request: u64,
    requests: Vec<(ServerId, Box<str>, u64)>,
}

impl std::fmt::Debug for Books {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Books")
            .field("books", &self.entries.len())
            .field("source", &self.source)
            .finish()
    }
}

fn waiting() -> State {
    State::Waiting {
        buffer: VecDeque::new(),
        bytes: 0,
        request: None,
        last: None,
    }
}

impl Books {
    /// The verified top levels of every book, as readers see them.
    pub fn views(&self) -> BookViews {
        self.views.clone()
    }

    /// Whether a snapshot source is set: without one, deltas before a
    /// snapshot are dropped rather than buffered.
    pub fn set_source(&mut self, source: bool) {
        self.source = source;
    }

    /// How many book subscriptions there are (tests of the bounds).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `id` is a subscribed book.
    pub(crate) fn contains(&self, id: &ServerId) -> bool {
        self.entries.contains_key(id)
    }

    /// The book of `id`, when live.
    pub(crate) fn book(&self, id: &ServerId) -> Option<&Book> {
        match &self.entries.get(id)?.state {
            State::Live { book, .. } => Some(book),
            State::Waiting { .. } => None,
        }
    }

    /// A book subscription (re)starts: it waits for a fresh snapshot.
    pub fn subscribe(&mut self, id: ServerId, inst: &str, depth: usize) {
        self.views.invalidate(Some(inst));
        self.entries.insert(
            id,
            Entry {
                inst: inst.into(),
                depth,
                state: waiting(),
                attempts: 0,
            },
        );
    }

    /// The subscription ended.
    pub(crate) fn forget(&mut self, id: &ServerId) {
        if let Some(entry) = self.entries.remove(id) {
            self.views.invalidate(Some(&entry.inst));
        }
        self.requests.retain(|(rid, _, _)| rid != id);
    }

    /// The connection is gone: every book waits for a fresh snapshot.
    pub(crate) fn reset(&mut self) {
        for entry in self.entries.values_mut() {
            entry.state = waiting();
            entry.attempts = 0;
        }
        self.requests.clear();
        self.views.invalidate(None);
    }

    /// The snapshot requests made since the last call: (subscription,
    /// instrument, request number), for the shell to fetch.
    pub fn take_requests(&mut self) -> Vec<(ServerId, Box<str>, u64)> {
        std::mem::take(&mut self.requests)
    }

    /// Applies one book frame of subscription `id` (a subscribed book).
    pub fn apply(&mut self, id: &ServerId, frame: &BookFrame<'_>) -> Verdict {
        let entry = self.entries.get_mut(id)?;
        if frame.snapshot {
            let mut book = Book::new(entry.depth);
            if let Err(error) = book.apply_snapshot(&frame.asks, &frame.bids) {
                let reason = error.reason();
                return Some(self.drop_book(id, BookBreak::Unusable { reason }));
            }
            let entry = self.entries.get_mut(id)?;
            entry.state = State::Live {
                book,
                seq: frame.seq.unwrap_or(-1),
                loose: false,
                received: None,
            };
            entry.attempts = 0;
            return self.verify(id, frame.checksum, true, frame.venue_time);
        }
        let source = self.source;
        let step = match &mut entry.state {
            State::Live {
                book,
                seq,
                loose,
                received,
            } => {
                // OKX's "Sequence ID" exception: after maintenance the
                // sequence may restart, shown by an update whose `seqId` is
                // below its `prevSeqId`. It chains to the last update as
                // usual (`prevSeqId` == the last `seqId`) and is never
                // stale, even when its new, smaller `seqId` is below the
                // fetched snapshot's: taking it for "already in the
                // snapshot" would drop it and every update after it until
                // the new numbering passed the snapshot's, silently. While
                // loose, a restart that does not continue exactly from the
                // snapshot cannot be placed (the snapshot may be from either
                // side of it): a break, and a fresh snapshot.
                let restart = matches!(
                    (frame.seq, frame.prev),
                    (Some(next), Some(prev)) if next < prev
                );
                // Stale deltas are skipped unapplied, so while loose a lost
                // delta shows only in the received chain: after a lost
                // restart the next delta's new, small `seqId` would look
                // like one the snapshot holds.
                let lost = match (*loose, *received, frame.prev) {
                    (true, Some(last), Some(prev)) if prev != last => Some((last, prev)),
                    _ => None,
                };
                if *loose && frame.seq.is_some() {
                    *received = frame.seq;
                }
                let stale = *loose && !restart && frame.seq.is_some_and(|next| next <= *seq);
                let chained = match frame.prev {
                    None => true,
                    Some(prev) if *loose && !restart => prev <= *seq,
                    Some(prev) => prev == *seq,
                };
                if let Some((expected, got)) = lost {
                    Step::Break(BookBreak::Discontinuity { expected, got })
                } else if stale {
                    // Already in the fetched snapshot.
                    Step::Done
                } else if !chained {
                    Step::Break(BookBreak::Discontinuity {
                        expected: *seq,
                        got: frame.prev.unwrap_or(*seq),
                    })
                } else if let Err(error) = book.apply_update(&frame.asks, &frame.bids) {
                    let reason = error.reason();
                    Step::Break(BookBreak::Unusable { reason })
                } else {
                    *seq = frame.seq.unwrap_or(*seq);
                    *loose = false;
                    Step::Verify
                }
            }
            State::Waiting {
                buffer,
                bytes,
                request,
                last,
            } => match frame.seq {
                None => Step::Done,
                Some(next) => {
                    let previous = last.replace(next);
                    let broken = match (previous, frame.prev) {
                        (Some(previous), Some(prev)) if prev != previous => Some((previous, prev)),
                        _ => None,
                    };
                    if let Some((expected, got)) = broken {
                        Step::Break(BookBreak::Discontinuity { expected, got })
                    } else if !source {
                        Step::Done
                    } else {
                        let delta = Delta::of(frame, next);
                        if buffer.len() >= MAX_BUFFERED_UPDATES
                            || bytes.saturating_add(delta.bytes) > MAX_BUFFERED_BYTES
                        {
                            tracing::warn!(
                                inst = %entry.inst,
                                "okx: too many deltas buffered while the book snapshot is fetched; resyncing"
                            );
                            Step::Break(BookBreak::Unusable {
                                reason: "too many updates buffered while the snapshot is fetched",
                            })
                        } else {
                            *bytes += delta.bytes;
                            buffer.push_back(delta);
                            if request.is_none() {
                                self.next_request += 1;
                                *request = Some(self.next_request);
                                self.requests.push((
                                    id.clone(),
                                    entry.inst.clone(),
                                    self.next_request,
                                ));
                            }
                            Step::Done
                        }
                    }
                }
            },
        };
        match step {
            Step::Done => None,
            Step::Break(kind) => Some(self.drop_book(id, kind)),
            Step::Verify => self.verify(id, frame.checksum, false, frame.venue_time),
        }
    }

    /// A fetched snapshot (or the source's failure) for request `number` of
    /// subscription `id`. `Some`: a break of that subscription, found while
    /// applying the buffered deltas or after too many failed fetches (the
    /// book is dropped, as for a frame's break; the caller reports it now).
    pub fn fetched(
        &mut self,
        id: &ServerId,
        number: u64,
        result: Result<BookSnapshot, String>,
    ) -> Verdict {
        let entry = self.entries.get_mut(id)?;
        let State::Waiting {
            buffer, request, ..
        } = &mut entry.state
        else {
            return None;
        };
        if *request != Some(number) {
            return None;
        }
        *request = None;
        let snapshot = match result {
            Ok(snapshot) => snapshot,
            Err(error) => {
                tracing::warn!(inst = %entry.inst, %error, "okx: book snapshot fetch failed");
                return self.retry(id);
            }
        };
        let first_prev = buffer.front().and_then(|d| d.prev);
        if first_prev.is_some_and(|prev| snapshot.seq < prev) {
            // Older than the first buffered delta: fetch again (OKX's rule).
            tracing::debug!(inst = %entry.inst, "okx: book snapshot older than the buffer; refetching");
            return self.retry(id);
        }
        let asks: Vec<(&str, &str)> = snapshot
            .asks
            .iter()
            .map(|(p, s)| (p.as_str(), s.as_str()))
            .collect();
        let bids: Vec<(&str, &str)> = snapshot
            .bids
            .iter()
            .map(|(p, s)| (p.as_str(), s.as_str()))
            .collect();
        let mut book = Book::new(entry.depth);
        if book.apply_snapshot(&asks, &bids).is_err() {
            tracing::warn!(inst = %entry.inst, "okx: fetched book snapshot is not valid");
            return self.retry(id);
        }
        let buffer = std::mem::take(buffer);
        entry.state = State::Live {
            book,
            seq: snapshot.seq,
            loose: true,
            received: None,
        };
        entry.attempts = 0;
        // The snapshot itself first (it restarts `BookTop::updates`); it has
        // no checksum to check, so this cannot break.
        let _ = self.verify(id, None, true, snapshot.venue_time);
        // Every buffered delta goes through `apply`, which skips the ones
        // the snapshot already holds (loose mode) but not a sequence restart.
        for delta in buffer.iter() {
            let asks: Vec<(&str, &str)> = delta.asks.iter().map(|(p, s)| (&**p, &**s)).collect();
            let bids: Vec<(&str, &str)> = delta.bids.iter().map(|(p, s)| (&**p, &**s)).collect();
            let frame = BookFrame {
                snapshot: false,
                asks,
                bids,
                checksum: delta.checksum,
                seq: Some(delta.seq),
                prev: delta.prev,
                venue_time: delta.venue_time,
            };
            if let Some(broken) = self.apply(id, &frame) {
                return Some(broken);
            }
        }
        None
    }

    /// A failed or unusable fetch: ask again, or give up (`Some`: the break
    /// that resyncs the subscription).
    fn retry(&mut self, id: &ServerId) -> Verdict {
        let entry = self.entries.get_mut(id)?;
        entry.attempts += 1;
        if entry.attempts >= MAX_SNAPSHOT_ATTEMPTS {
            entry.attempts = 0;
            let reason = "the book snapshot could not be fetched";
            return Some(self.drop_book(id, BookBreak::Unusable { reason }));
        }
        if let State::Waiting { request, .. } = &mut entry.state {
            self.next_request += 1;
            *request = Some(self.next_request);
            self.requests
                .push((id.clone(), entry.inst.clone(), self.next_request));
        }
        None
    }

    /// Verifies the live book of `id` against `expected` (0 or none: not
    /// verified by checksum) and publishes it; a mismatch drops it.
    fn verify(
        &mut self,
        id: &ServerId,
        expected: Option<i64>,
        snapshot: bool,
        venue_time: Option<SystemTime>,
    ) -> Verdict {
        let entry = self.entries.get(id)?;
        let State::Live { book, .. } = &entry.state else {
            return None;
        };
        let wanted = match expected {
            None | Some(0) => None,
            Some(sum) => match i32::try_from(sum) {
                Ok(sum) => Some(sum),
                Err(_) => {
                    let reason = "a book checksum that is not a 32-bit integer";
                    return Some(self.drop_book(id, BookBreak::Unusable { reason }));
                }
            },
        };
        let computed = checksum(book);
        if let Some(wanted) = wanted.filter(|w| *w as u32 != computed) {
            let expected = wanted as u32;
            let kind = BookBreak::ChecksumMismatch { expected, computed };
            return Some(self.drop_book(id, kind));
        }
        self.views.verified(
            &entry.inst,
            book.asks().map(|l| (l.price(), l.qty())),
            book.bids().map(|l| (l.price(), l.qty())),
            Verified {
                checksum: wanted.map(i64::from),
                snapshot,
                venue_time,
            },
        );
        None
    }

    /// Drops the book of `id` (it waits for a fresh snapshot) and returns the
    /// break to report, `kind`; the view shows `None`.
    fn drop_book(&mut self, id: &ServerId, kind: BookBreak) -> BookBreak {
        let Some(entry) = self.entries.get_mut(id) else {
            return kind;
        };
        entry.state = waiting();
        self.views.invalidate(Some(&entry.inst));
        self.requests.retain(|(rid, _, _)| rid != id);
        kind
    }
}

impl Delta {
    fn of(frame: &BookFrame<'_>, seq: i64) -> Self {
        let own = |levels: &[(&str, &str)]| -> Vec<(Box<str>, Box<str>)> {
            levels
                .iter()
                .map(|(p, s)| ((*p).into(), (*s).into()))
                .collect()
        };
        let bytes = frame
            .asks
            .iter()
            .chain(&frame.bids)
            .map(|(p, s)| p.len() + s.len() + 2 * std::mem::size_of::<Box<str>>())
            .sum::<usize>()
            + std::mem::size_of::<Delta>();
        Delta {
            asks: own(&frame.asks),
            bids: own(&frame.bids),
            checksum: frame.checksum,
            seq,
            prev: frame.prev,
            venue_time: frame.venue_time,
            bytes,
        }
    }
}

#[cfg(test)]
mod tests;
