//! `okx_book`: the real OKX book core (`protocol::okx::Books`, with its
//! `BookViews`) against a naive model of the venue's true book (a
//! `BTreeMap` of exact decimals per side).
//!
//! The input scripts a venue: level changes (each gets a new `seqId`, with
//! gaps in the numbering as OKX has, and now and then a restart of the
//! numbering: OKX's "Sequence ID" exception, an update whose `seqId` is below
//! its `prevSeqId`, always delivered itself), and what reaches the client: each change
//! as an update (or dropped), WebSocket snapshots, REST snapshots taken at one
//! moment and delivered later (or failing), checksums that are 0, right or
//! wrong. The harness plays the session: a reported break resubscribes.
//!
//! What must hold, after every step:
//! - Safety: a verified view is exactly (text and order) the venue's true
//!   book at some moment; after a delivered update that the book accepted
//!   while verified, at that update's moment.
//! - Detection: a dropped update, or a wrong non-zero checksum, delivered to a
//!   verified book is reported as a break, and the view is then `None`. A
//!   break names what the frame did: a checksum mismatch carries the frame's
//!   checksum and a different one, a discontinuity the frame's `prevSeqId`
//!   and a different expected id; a skipped update to a verified book is a
//!   discontinuity. A break found while applying a fetched snapshot is
//!   returned with the fetch's result (nothing is owed to the next frame) and
//!   names the buffered delta that broke (a `prevSeqId` delivered before).
//! - Liveness: with no fault (and no sequence restart) since the last restart
//!   of the book, a delivered WebSocket
//!   snapshot, or a REST snapshot of the latest state answering the request in
//!   flight, makes the view verified and equal to the true book now.

use std::collections::BTreeMap;

use resilient_ws::book::{BookBreak, BookSnapshot, BookTop};
use resilient_ws::decimal::Decimal;
use resilient_ws::fuzzing::{BookFrame, Books};
use resilient_ws::protocol::okx::checksum_levels;
use resilient_ws::protocol::ServerId;

/// Steps per run, so the fuzzer never reports a slow input as a hang.
const MAX_STEPS: usize = 400;
const INST: &str = "BTC-USDT";

type Side = BTreeMap<Decimal, (String, String)>;
type Levels = Vec<(String, String)>;

/// The venue's true book.
#[derive(Clone, Default, PartialEq)]
struct Truth {
    asks: Side,
    bids: Side,
}

impl Truth {
    fn apply(&mut self, asks: &[(String, String)], bids: &[(String, String)]) {
        for (side, changes) in [(&mut self.asks, asks), (&mut self.bids, bids)] {
            for (price, size) in changes {
                let (Some(key), Some(qty)) = (Decimal::parse(price), Decimal::parse(size)) else {
                    continue;
                };
                if qty.is_zero() {
                    side.remove(&key);
                } else {
                    side.insert(key, (price.clone(), size.clone()));
                }
            }
        }
    }

    /// (asks lowest first, bids highest first) as text.
    fn levels(&self) -> (Levels, Levels) {
        (
            self.asks.values().cloned().collect(),
            self.bids.values().rev().cloned().collect(),
        )
    }

    /// OKX's checksum by its documented rule, computed here.
    fn checksum(&self) -> i64 {
        let (asks, bids) = self.levels();
        let mut parts = Vec::new();
        for i in 0..25 {
            if let Some((p, s)) = bids.get(i) {
                parts.push(format!("{p}:{s}"));
            }
            if let Some((p, s)) = asks.get(i) {
                parts.push(format!("{p}:{s}"));
            }
        }
        let crc = crc32fast::hash(parts.join(":").as_bytes()) as i32;
        // The library's checksum of the same levels must agree with this one.
        let a: Vec<(&str, &str)> = asks.iter().map(|(p, s)| (p.as_str(), s.as_str())).collect();
        let b: Vec<(&str, &str)> = bids.iter().map(|(p, s)| (p.as_str(), s.as_str())).collect();
        assert_eq!(checksum_levels(&b, &a) as i32, crc);
        i64::from(crc)
    }
}

/// A price text: one of 24 prices, written in one of three ways.
fn price(byte: u8, form: u8) -> String {
    let cents = 10_000 + u32::from(byte % 24) * 25;
    let (int, frac) = (cents / 100, cents % 100);
    match form % 3 {
        0 => format!("{int}.{frac:02}"),
        1 if frac % 10 == 0 => format!("{int}.{}", frac / 10),
        _ => format!("{int}.{frac:02}00"),
    }
}

fn size(byte: u8) -> String {
    ["0", "1", "1.5", "1.50", "0.000", "2", "0.25", "10"][usize::from(byte % 8)].to_owned()
}

/// Runs the script in `data` (see the module docs).
///
/// # Panics
///
/// When an invariant above breaks.
pub fn okx_book(data: &[u8]) {
    let id = ServerId::Key("books:BTC-USDT".into());
    let mut books = Books::default();
    books.set_source(true);
    let views = books.views();
    let view = views.watch(INST, 400);
    books.subscribe(id.clone(), INST, 400);

    let mut bytes = data.iter().copied();
    let mut truth = Truth::default();
    let mut history: Vec<Truth> = vec![truth.clone()];
    let mut seq: i64 = 1;
    // Faults armed for the next delivery.
    let (mut drop_next, mut corrupt_next) = (false, false);
    let mut with_checksum = false;
    // A fault since the last restart: liveness is not promised.
    let mut faulted = false;
    let mut ws_snapshot_on_resubscribe = false;
    // A REST snapshot taken and not yet delivered, with the number of venue
    // changes made when it was taken (`seqId`s repeat after a restart).
    let mut taken: Option<(BookSnapshot, u64)> = None;
    let mut changes: u64 = 0;
    // The next change restarts the venue's `seqId` numbering.
    let mut restart_next = false;
    let mut request: Option<u64> = None;
    // Applying a fetched snapshot replays the buffered deltas; a break among
    // them names that buffered delta, a `prevSeqId` delivered earlier.
    let mut delivered_prevs: Vec<i64> = Vec::new();

    for _ in 0..MAX_STEPS {
        let Some(op) = bytes.next() else {
            break;
        };
        let mut restart = false;
        match op % 10 {
            0..=3 => {
                // A venue change of 1..=3 levels.
                let count = 1 + usize::from(op / 10 % 3);
                let (mut asks, mut bids) = (Vec::new(), Vec::new());
                for _ in 0..count {
                    let (a, b, c) = (
                        bytes.next().unwrap_or(0),
                        bytes.next().unwrap_or(0),
                        bytes.next().unwrap_or(0),
                    );
                    let level = (price(a, c), size(b));
                    // Asks above 103, bids below: a book that never crosses.
                    if a % 24 >= 12 {
                        asks.push(level);
                    } else {
                        bids.push(level);
                    }
                }
                truth.apply(&asks, &bids);
                history.push(truth.clone());
                changes += 1;
                let prev = seq;
                seq += 1 + i64::from(op / 40 % 3);
                // The restart update itself is always delivered: were it lost,
                // the new numbering could repeat ids the book already holds
                // (2 -> [1 -> 2 lost] -> 3 reads as 2 -> 3), which no check
                // of `seqId`s can see; drops before and after it are scripted.
                if restart_next && !drop_next && prev >= 2 {
                    restart_next = false;
                    // Below `prev`: the documented restart (15 -> 3 -> 5).
                    seq = 1 + (prev - 1) / 2;
                    // Old and new numbering overlap: a REST snapshot's
                    // `seqId` can no longer place the buffered deltas, so
                    // only safety and detection are promised until the book
                    // starts over.
                    faulted = true;
                }
                if drop_next {
                    drop_next = false;
                    continue;
                }
                let was_verified = view.is_verified();
                let checksum = if corrupt_next {
                    Some(truth.checksum().wrapping_add(1).max(1))
                } else if with_checksum {
                    Some(truth.checksum())
                } else {
                    Some(0)
                };
                let frame = BookFrame {
                    snapshot: false,
                    asks: asks.iter().map(|(p, s)| (p.as_str(), s.as_str())).collect(),
                    bids: bids.iter().map(|(p, s)| (p.as_str(), s.as_str())).collect(),
                    checksum,
                    seq: Some(seq),
                    prev: Some(prev),
                    venue_time: None,
                };
                let verdict = books.apply(&id, &frame);
                check_kind(verdict, Some(&frame), &delivered_prevs);
                delivered_prevs.extend(frame.prev);
                let expect_break = faulted_pending(&mut corrupt_next, &mut faulted);
                if was_verified && expect_break && checksum != Some(0) {
                    assert!(verdict.is_some(), "a wrong checksum was not reported");
                }
                if verdict.is_some() {
                    assert!(!view.is_verified(), "a break left the view verified");
                    restart = true;
                } else if was_verified {
                    assert!(view.is_verified(), "an accepted update unverified the view");
                    assert_view(&view, &truth, "after an accepted update");
                }
                if let Some((_, _, number)) = books.take_requests().pop() {
                    request = Some(number);
                }
            }
            4 => {
                drop_next = true;
                faulted = true;
                // The next delivered update skips a seqId: must be reported
                // when the book is verified.
                let next = bytes.next().unwrap_or(0);
                if next % 2 == 0 {
                    // Deliver an update right after the drop and check it.
                    truth.apply(&[], &[(price(0, 0), size(1))]);
                    history.push(truth.clone());
                    changes += 1;
                    seq += 1;
                    drop_next = false;
                    let prev = seq;
                    seq += 1;
                    let was_verified = view.is_verified();
                    let frame = BookFrame {
                        snapshot: false,
                        asks: Vec::new(),
                        bids: Vec::new(),
                        checksum: Some(0),
                        seq: Some(seq),
                        prev: Some(prev),
                        venue_time: None,
                    };
                    let verdict = books.apply(&id, &frame);
                    check_kind(verdict, Some(&frame), &delivered_prevs);
                    delivered_prevs.extend(frame.prev);
                    if was_verified {
                        assert!(
                            matches!(verdict, Some(BookBreak::Discontinuity { .. })),
                            "a skipped update was reported as {verdict:?}"
                        );
                    }
                    if verdict.is_some() {
                        assert!(!view.is_verified());
                        restart = true;
                    }
                }
            }
            5 => {
                // A WebSocket snapshot of the true book now.
                let (asks, bids) = truth.levels();
                let frame = BookFrame {
                    snapshot: true,
                    asks: asks.iter().map(|(p, s)| (p.as_str(), s.as_str())).collect(),
                    bids: bids.iter().map(|(p, s)| (p.as_str(), s.as_str())).collect(),
                    checksum: Some(if with_checksum { truth.checksum() } else { 0 }),
                    seq: Some(seq),
                    prev: Some(-1),
                    venue_time: None,
                };
                let verdict = books.apply(&id, &frame);
                if verdict.is_none() {
                    // A snapshot clears every fault before it.
                    faulted = false;
                    corrupt_next = false;
                    request = None;
                    assert_view(&view, &truth, "after a WebSocket snapshot");
                } else {
                    restart = true;
                }
            }
            6 => {
                // The REST endpoint takes its snapshot now.
                let (asks, bids) = truth.levels();
                taken = Some((
                    BookSnapshot {
                        seq,
                        asks,
                        bids,
                        venue_time: None,
                    },
                    changes,
                ));
            }
            7 => {
                // The fetch answers with what was taken (or fails).
                if let (Some(number), Some((snapshot, taken_at))) = (request, taken.take()) {
                    request = None;
                    let latest = taken_at == changes && !drop_next;
                    let fail = bytes.next().unwrap_or(0) % 5 == 0;
                    let was_verified = view.is_verified();
                    let result = if fail {
                        Err("down".to_owned())
                    } else {
                        Ok(snapshot)
                    };
                    let verdict = books.fetched(&id, number, result);
                    check_kind(verdict, None, &delivered_prevs);
                    if let Some((_, _, number)) = books.take_requests().pop() {
                        request = Some(number);
                    }
                    if !fail && latest && !faulted && !was_verified {
                        assert_view(&view, &truth, "after a REST snapshot of now");
                    }
                    if verdict.is_some() {
                        assert!(!view.is_verified(), "a break left the view verified");
                        restart = true;
                    }
                }
            }
            8 => corrupt_next = true,
            _ => {
                let flags = bytes.next().unwrap_or(0);
                with_checksum = flags & 1 == 1;
                ws_snapshot_on_resubscribe = flags & 2 == 2;
                restart_next = flags & 4 == 4;
            }
        }
        if restart {
            // The session resubscribes: the book starts over.
            books.subscribe(id.clone(), INST, 400);
            delivered_prevs.clear();
            faulted = false;
            corrupt_next = false;
            request = None;
            taken = None;
            assert!(!view.is_verified());
            if ws_snapshot_on_resubscribe {
                let (asks, bids) = truth.levels();
                let frame = BookFrame {
                    snapshot: true,
                    asks: asks.iter().map(|(p, s)| (p.as_str(), s.as_str())).collect(),
                    bids: bids.iter().map(|(p, s)| (p.as_str(), s.as_str())).collect(),
                    checksum: Some(0),
                    seq: Some(seq),
                    prev: Some(-1),
                    venue_time: None,
                };
                assert!(books.apply(&id, &frame).is_none());
                assert_view(&view, &truth, "after the resubscribe's snapshot");
            }
        }
        if let Some(top) = view.latest() {
            let shown = shown_levels(&top);
            assert!(
                history.iter().any(|t| t.levels() == shown),
                "the verified view is no state the venue's book ever had: {shown:?}"
            );
        }
    }
}

/// A reported break names what the frame did (see the module docs), or,
/// for a break found applying a fetched snapshot (`frame` is `None`), what
/// one of the deltas delivered before it did.
fn check_kind(verdict: Option<BookBreak>, frame: Option<&BookFrame<'_>>, earlier: &[i64]) {
    match verdict {
        None | Some(BookBreak::Unusable { .. }) => {}
        Some(BookBreak::ChecksumMismatch { expected, computed }) => {
            if let Some(frame) = frame {
                assert_eq!(Some(i64::from(expected as i32)), frame.checksum);
            }
            assert_ne!(expected, computed, "a mismatch of equal checksums");
        }
        Some(BookBreak::Discontinuity { expected, got }) => {
            match frame {
                None => assert!(
                    earlier.contains(&got),
                    "a fetch's discontinuity names a prevSeqId never delivered: {got}"
                ),
                Some(frame) => assert_eq!(
                    Some(got),
                    frame.prev,
                    "the discontinuity names another prevSeqId"
                ),
            }
            assert_ne!(expected, got, "a discontinuity of equal ids");
        }
        Some(other) => panic!("a book break the harness does not know: {other:?}"),
    }
}

/// Whether the frame just delivered carried an armed corruption (disarms it
/// and marks the run faulted).
fn faulted_pending(corrupt_next: &mut bool, faulted: &mut bool) -> bool {
    if std::mem::take(corrupt_next) {
        *faulted = true;
        return true;
    }
    false
}

/// The levels a view shows, as owned text.
fn shown_levels(top: &BookTop) -> (Levels, Levels) {
    let owned = |(p, s): (&str, &str)| (p.to_owned(), s.to_owned());
    (
        top.asks().map(owned).collect(),
        top.bids().map(owned).collect(),
    )
}

fn assert_view(view: &resilient_ws::book::BookView, truth: &Truth, when: &str) {
    let top = view
        .latest()
        .unwrap_or_else(|| panic!("the view is not verified {when}"));
    let shown = shown_levels(&top);
    assert!(
        shown == truth.levels(),
        "the view differs from the venue's book {when}"
    );
    // The exact decimals agree with the text.
    let decimals: Vec<_> = top.ask_levels().collect();
    let expected: Vec<_> = truth
        .asks
        .iter()
        .map(|(k, (_, s))| (*k, Decimal::parse(s).unwrap_or(*k)))
        .collect();
    assert!(decimals == expected, "ask decimals differ {when}");
}
