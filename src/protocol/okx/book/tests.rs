use super::*;

fn id() -> ServerId {
    ServerId::Key("books:BTC-USDT".into())
}

fn frame<'a>(
    snapshot: bool,
    asks: &[(&'a str, &'a str)],
    bids: &[(&'a str, &'a str)],
    prev: i64,
    seq: i64,
) -> BookFrame<'a> {
    BookFrame {
        snapshot,
        asks: asks.to_vec(),
        bids: bids.to_vec(),
        checksum: Some(0),
        seq: Some(seq),
        prev: Some(prev),
        venue_time: None,
    }
}

fn snapshot(seq: i64, asks: &[(&str, &str)], bids: &[(&str, &str)]) -> BookSnapshot {
    let own = |l: &[(&str, &str)]| {
        l.iter()
            .map(|(p, s)| ((*p).to_owned(), (*s).to_owned()))
            .collect()
    };
    BookSnapshot {
        seq,
        asks: own(asks),
        bids: own(bids),
        venue_time: None,
    }
}

type Levels = Vec<(String, String)>;

fn levels(books: &Books) -> (Levels, Levels) {
    let book = books.book(&id()).expect("live");
    (
        book.asks()
            .map(|l| (l.price().to_owned(), l.qty().to_owned()))
            .collect(),
        book.bids()
            .map(|l| (l.price().to_owned(), l.qty().to_owned()))
            .collect(),
    )
}

fn with_source() -> Books {
    let mut books = Books::default();
    books.set_source(true);
    books.subscribe(id(), "BTC-USDT", 400);
    books
}

#[test]
fn deltas_before_the_fetched_snapshot_are_buffered_and_only_later_ones_apply() {
    let mut books = with_source();
    let view = books.views().watch("BTC-USDT", 5);
    // Deltas 10 -> 11 -> 12 arrive before any snapshot.
    assert_eq!(
        books.apply(&id(), &frame(false, &[("101", "1")], &[], 10, 11)),
        None
    );
    let requests = books.take_requests();
    assert_eq!(requests.len(), 1, "one fetch asked for");
    assert_eq!(
        books.apply(&id(), &frame(false, &[("102", "2")], &[], 11, 12)),
        None
    );
    assert!(
        books.take_requests().is_empty(),
        "still one fetch in flight"
    );
    assert!(!view.is_verified());
    // The snapshot was taken at 11: delta 11 is in it, delta 12 is not.
    let (_, _, number) = requests[0].clone();
    let verdict = books.fetched(
        &id(),
        number,
        Ok(snapshot(11, &[("101", "1"), ("103", "3")], &[("99", "9")])),
    );
    assert_eq!(verdict, None);
    let (asks, bids) = levels(&books);
    assert_eq!(
        asks,
        [
            ("101".into(), "1".into()),
            ("102".into(), "2".into()),
            ("103".into(), "3".into())
        ]
    );
    assert_eq!(bids, [("99".into(), "9".into())]);
    assert!(view.is_verified());
    assert_eq!(
        view.latest().unwrap().updates(),
        2,
        "the snapshot and delta 12"
    );
    // After: strict chaining from 12.
    assert_eq!(
        books.apply(&id(), &frame(false, &[("103", "0")], &[], 12, 13)),
        None
    );
    assert_eq!(levels(&books).0.len(), 2);
    assert!(books
        .apply(&id(), &frame(false, &[], &[], 14, 15))
        .is_some());
    assert!(!view.is_verified(), "a gap makes the view unverified");
}

#[test]
fn a_snapshot_older_than_the_buffer_is_fetched_again_then_gives_up() {
    let mut books = with_source();
    assert_eq!(books.apply(&id(), &frame(false, &[], &[], 10, 11)), None);
    let mut requests = books.take_requests();
    for attempt in 1..MAX_SNAPSHOT_ATTEMPTS {
        let (_, _, number) = requests[0].clone();
        let verdict = books.fetched(&id(), number, Ok(snapshot(9, &[], &[])));
        assert_eq!(verdict, None, "attempt {attempt} is no break yet");
        requests = books.take_requests();
        assert_eq!(requests.len(), 1, "attempt {attempt} refetches");
        // A stale result for the old request is ignored.
        let verdict = books.fetched(&id(), number, Ok(snapshot(11, &[], &[])));
        assert_eq!(verdict, None);
        assert!(books.book(&id()).is_none());
    }
    let (_, _, number) = requests[0].clone();
    // The last failure is the break itself, reported now (not on the next
    // frame), and no further fetch is asked for: the session resyncs.
    assert!(matches!(
        books.fetched(&id(), number, Err("down".into())),
        Some(BookBreak::Unusable { .. })
    ));
    assert!(books.take_requests().is_empty());
    assert_eq!(
        books.apply(&id(), &frame(false, &[], &[], 11, 12)),
        None,
        "nothing owed to the next frame"
    );
}

#[test]
fn a_buffered_delta_that_does_not_verify_breaks_when_the_snapshot_is_applied() {
    let mut books = with_source();
    let view = books.views().watch("BTC-USDT", 5);
    assert_eq!(books.apply(&id(), &frame(false, &[], &[], 10, 11)), None);
    let (_, _, number) = books.take_requests()[0].clone();
    // Delta 12 is after the snapshot (taken at 11) and carries a wrong checksum.
    let mut wrong = frame(false, &[("101", "1")], &[], 11, 12);
    wrong.checksum = Some(7);
    assert_eq!(
        books.apply(&id(), &wrong),
        None,
        "buffered, not checked yet"
    );
    let verdict = books.fetched(&id(), number, Ok(snapshot(11, &[], &[("99", "9")])));
    assert!(
        matches!(
            verdict,
            Some(BookBreak::ChecksumMismatch { expected: 7, .. })
        ),
        "{verdict:?}"
    );
    assert!(!view.is_verified());
    assert!(books.book(&id()).is_none(), "the book is dropped");
    assert_eq!(
        books.apply(&id(), &frame(false, &[], &[], 12, 13)),
        None,
        "nothing owed to the next frame"
    );
}

#[test]
fn the_buffer_is_bounded_in_count() {
    let mut books = with_source();
    for seq in 0..MAX_BUFFERED_UPDATES as i64 {
        assert_eq!(
            books.apply(&id(), &frame(false, &[], &[], seq, seq + 1)),
            None
        );
    }
    let last = MAX_BUFFERED_UPDATES as i64;
    assert!(books
        .apply(&id(), &frame(false, &[], &[], last, last + 1))
        .is_some());
}

#[test]
fn the_buffer_is_bounded_in_bytes() {
    let mut books = with_source();
    let prices: Vec<String> = (0..400).map(|i| format!("{i:060}")).collect();
    let level: Vec<(&str, &str)> = prices.iter().map(|p| (p.as_str(), "1")).collect();
    let per = Delta::of(&frame(false, &level, &[], 0, 1), 1).bytes;
    let fits = (MAX_BUFFERED_BYTES / per) as i64;
    assert!(fits < MAX_BUFFERED_UPDATES as i64, "bytes bind first");
    let mut broke = false;
    for seq in 0..=fits {
        broke |= books
            .apply(&id(), &frame(false, &level, &[], seq, seq + 1))
            .is_some();
    }
    assert!(broke);
}

#[test]
fn a_websocket_snapshot_is_used_at_once_and_a_checksum_of_zero_is_not_checked() {
    let mut books = with_source();
    let view = books.views().watch("BTC-USDT", 5);
    assert_eq!(
        books.apply(&id(), &frame(true, &[("2", "1")], &[("1", "1")], -1, 5)),
        None
    );
    assert!(books.take_requests().is_empty());
    assert!(view.is_verified());
    let mut bad = frame(false, &[("2", "3")], &[], 5, 6);
    bad.checksum = Some(12345);
    assert!(
        books.apply(&id(), &bad).is_some(),
        "a non-zero checksum is checked"
    );
    assert!(!view.is_verified());
}

#[test]
fn without_a_source_deltas_are_chain_checked_only() {
    let mut books = Books::default();
    books.subscribe(id(), "BTC-USDT", 400);
    assert_eq!(books.apply(&id(), &frame(false, &[], &[], 1, 2)), None);
    assert!(books.take_requests().is_empty());
    assert_eq!(books.apply(&id(), &frame(false, &[], &[], 2, 3)), None);
    assert!(books.apply(&id(), &frame(false, &[], &[], 4, 5)).is_some());
}

/// OKX's "Sequence ID" exception 2: after maintenance the sequence restarts
/// with an update whose `seqId` is below its `prevSeqId` (15 -> 3 -> 5 in the
/// docs). Right after a fetched snapshot (loose chaining), the old rule took
/// the restart and every update after it for "already in the snapshot" (a
/// `seqId` at or below the snapshot's) and dropped them without a break.
#[test]
fn a_sequence_restart_after_a_fetched_snapshot_is_applied_not_taken_as_stale() {
    let mut books = with_source();
    assert_eq!(books.apply(&id(), &frame(false, &[], &[], 19, 20)), None);
    let (_, _, number) = books.take_requests()[0].clone();
    let verdict = books.fetched(&id(), number, Ok(snapshot(20, &[("101", "1")], &[])));
    assert_eq!(verdict, None);
    // The restart continues from the snapshot's 20; then 3 -> 5.
    assert_eq!(
        books.apply(&id(), &frame(false, &[("102", "2")], &[], 20, 3)),
        None
    );
    assert_eq!(
        books.apply(&id(), &frame(false, &[("103", "3")], &[], 3, 5)),
        None
    );
    assert_eq!(
        levels(&books).0,
        [
            ("101".into(), "1".into()),
            ("102".into(), "2".into()),
            ("103".into(), "3".into())
        ]
    );
    // Strict chaining in the new numbering from here.
    assert!(books.apply(&id(), &frame(false, &[], &[], 6, 7)).is_some());
}

#[test]
fn a_sequence_restart_that_cannot_be_placed_against_the_snapshot_breaks() {
    let mut books = with_source();
    assert_eq!(books.apply(&id(), &frame(false, &[], &[], 19, 20)), None);
    let (_, _, number) = books.take_requests()[0].clone();
    assert_eq!(
        books.fetched(&id(), number, Ok(snapshot(20, &[("101", "1")], &[]))),
        None
    );
    // A restart from 25: the updates 21..=25 of the old numbering never came.
    assert!(matches!(
        books.apply(&id(), &frame(false, &[("102", "2")], &[], 25, 3)),
        Some(BookBreak::Discontinuity {
            expected: 20,
            got: 25
        })
    ));
}

#[test]
fn a_sequence_restart_in_the_buffer_is_applied_with_the_snapshot() {
    let mut books = with_source();
    let view = books.views().watch("BTC-USDT", 5);
    assert_eq!(
        books.apply(&id(), &frame(false, &[("101", "1")], &[], 10, 11)),
        None
    );
    let (_, _, number) = books.take_requests()[0].clone();
    // Buffered: the restart (11 -> 2), then 2 -> 4.
    assert_eq!(
        books.apply(&id(), &frame(false, &[("102", "2")], &[], 11, 2)),
        None
    );
    assert_eq!(
        books.apply(&id(), &frame(false, &[("103", "3")], &[], 2, 4)),
        None
    );
    // The snapshot was taken at 11 (before the restart).
    let verdict = books.fetched(&id(), number, Ok(snapshot(11, &[("101", "1")], &[])));
    assert_eq!(verdict, None);
    assert_eq!(
        levels(&books).0,
        [
            ("101".into(), "1".into()),
            ("102".into(), "2".into()),
            ("103".into(), "3".into())
        ]
    );
    assert!(view.is_verified());
    assert_eq!(
        books.apply(&id(), &frame(false, &[("103", "0")], &[], 4, 5)),
        None
    );
    assert_eq!(levels(&books).0.len(), 2);
}

/// A restart that is lost on the way (and so never seen) leaves the next
/// delta with a new, small `seqId` that looks like one the fetched snapshot
/// already holds; the received chain (each `prevSeqId` the last `seqId`
/// seen) catches it, as it catches any delta lost while the book is loose.
#[test]
fn a_lost_delta_while_loose_breaks_even_when_the_next_looks_stale() {
    let mut books = with_source();
    assert_eq!(books.apply(&id(), &frame(false, &[], &[], 19, 20)), None);
    let (_, _, number) = books.take_requests()[0].clone();
    assert_eq!(
        books.fetched(&id(), number, Ok(snapshot(25, &[("101", "1")], &[]))),
        None
    );
    // 20 -> 22 is in the snapshot (taken at 25): skipped, the chain goes on.
    assert_eq!(books.apply(&id(), &frame(false, &[], &[], 20, 22)), None);
    // The restart 22 -> 3 is lost; 3 -> 5 arrives.
    assert!(matches!(
        books.apply(&id(), &frame(false, &[("102", "2")], &[], 3, 5)),
        Some(BookBreak::Discontinuity {
            expected: 22,
            got: 3
        })
    ));
}
