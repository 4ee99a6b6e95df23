//! The recorder's files on their own: rotation, a torn tail, a full queue.

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;
use tungstenite::Message;

use super::format::Input;
use super::{RecordOptions, Recorder, Recording};

fn scratch(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "resilient-ws-unit-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn files(dir: &PathBuf) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn read_all(dir: &PathBuf) -> (Vec<Input>, u64) {
    let mut recording = Recording::open(dir).unwrap();
    let mut inputs = Vec::new();
    while let Some(entry) = recording.next_entry() {
        inputs.push(entry.event);
    }
    (inputs, recording.torn())
}

#[test]
fn rotates_into_sorted_files_and_skips_a_torn_tail() {
    let dir = scratch("rotate");
    let options = RecordOptions::default().rotate_bytes(200);
    let recorder = Recorder::create(&dir, options).unwrap();
    let tap = crate::supervisor::tap::Tap::start(
        &recorder,
        &crate::Config::builder("ws://127.0.0.1:9").build().unwrap(),
        "kalshi",
        false,
    );
    let now = Instant::now();
    for n in 0..20 {
        let frame = Ok(Message::text(format!("{{\"n\":{n}}}")));
        tap.socket(Some(&frame), now, now);
    }
    recorder.flush().unwrap();
    let written = files(&dir);
    assert!(written.len() > 2, "rotated: {written:?}");
    assert_eq!(recorder.stats().files, written.len() as u64);
    let (inputs, torn) = read_all(&dir);
    assert_eq!(torn, 0);
    assert_eq!(inputs.len(), 21, "stream start + 20 frames");
    for (n, input) in inputs[1..].iter().enumerate() {
        let Input::Frame { message, .. } = input else {
            panic!("{input:?}");
        };
        assert_eq!(
            message.to_text().unwrap(),
            format!("{{\"n\":{n}}}"),
            "in order"
        );
    }

    // A crash mid-record: the last file ends inside its last record.
    let last = written.last().unwrap();
    let bytes = std::fs::read(last).unwrap();
    std::fs::write(last, &bytes[..bytes.len() - 3]).unwrap();
    let (inputs, torn) = read_all(&dir);
    assert_eq!(torn, 1, "the torn record is detected");
    assert_eq!(inputs.len(), 20, "and skipped, never misread");
    drop(tap);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_queue_drops_and_the_file_marks_the_hole() {
    let dir = scratch("hole");
    // Room for the small records even if none is written yet (64 bytes of
    // overhead each), never for a 1,000-byte frame.
    let options = RecordOptions::default().queue_bytes(1000);
    let recorder = Recorder::create(&dir, options).unwrap();
    let tap = crate::supervisor::tap::Tap::start(
        &recorder,
        &crate::Config::builder("ws://127.0.0.1:9").build().unwrap(),
        "kalshi",
        false,
    );
    let now = Instant::now();
    tap.tick(now);
    let big = Ok(Message::text("x".repeat(1000)));
    tap.socket(Some(&big), now, now);
    tap.socket(Some(&big), now, now);
    tap.tick(now + Duration::from_millis(1));
    recorder.flush().unwrap();
    assert_eq!(recorder.stats().dropped, 2);
    let (inputs, _) = read_all(&dir);
    assert!(matches!(inputs[0], Input::Stream { .. }), "{inputs:?}");
    assert_eq!(inputs[1], Input::Tick);
    assert!(
        matches!(inputs[2], Input::Hole { records: 2, .. }),
        "{inputs:?}"
    );
    assert_eq!(inputs[3], Input::Tick);
    assert_eq!(inputs.len(), 4);
    let _ = std::fs::remove_dir_all(&dir);
}

fn fetched(levels: usize) -> crate::book::SnapshotFetched {
    crate::book::SnapshotFetched {
        server_id: crate::protocol::ServerId::Key("books:BTC-USDT".into()),
        number: 4,
        result: Ok(crate::book::BookSnapshot {
            seq: 1_234,
            asks: (0..levels)
                .map(|i| (format!("{}.5", 100 + i), "1.25".to_owned()))
                .collect(),
            bids: vec![("99.5".into(), "3".into())],
            venue_time: Some(std::time::UNIX_EPOCH + Duration::from_millis(1_597_026_383_085)),
        }),
    }
}

#[test]
fn a_snapshot_fetch_is_recorded_and_its_bytes_count_against_the_queue() {
    let dir = scratch("fetched");
    let options = RecordOptions::default().queue_bytes(2000);
    let recorder = Recorder::create(&dir, options).unwrap();
    let tap = crate::supervisor::tap::Tap::start(
        &recorder,
        &crate::Config::builder("ws://127.0.0.1:9").build().unwrap(),
        "okx",
        true,
    );
    let now = Instant::now();
    // Small: recorded whole. Large (200 levels, about 3,500 bytes, more than
    // the whole queue holds): dropped and marked, as a large frame is.
    tap.fetched(&fetched(3), now);
    tap.fetched(&fetched(200), now);
    tap.tick(now);
    recorder.flush().unwrap();
    assert_eq!(recorder.stats().dropped, 1);
    let (inputs, _) = read_all(&dir);
    assert_eq!(inputs[1], Input::Fetched(fetched(3)), "{inputs:?}");
    assert!(
        matches!(inputs[2], Input::Hole { records: 1, .. }),
        "{inputs:?}"
    );
    assert_eq!(inputs[3], Input::Tick);
    let summary = Recording::open(&dir).unwrap().summary();
    assert_eq!(summary.snapshots, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_version_1_file_still_reads() {
    older_version_reads(b"RWSREC1\n");
}

#[test]
fn a_version_2_file_still_reads() {
    older_version_reads(b"RWSREC2\n");
}

fn older_version_reads(magic: &[u8; 8]) {
    let dir = scratch("older");
    let mut bytes = magic.to_vec();
    for (i, event) in [Input::Connected, Input::Tick].into_iter().enumerate() {
        let entry = super::format::Entry {
            stream: 1,
            at: Duration::from_millis(i as u64),
            wall: 7,
            event,
        };
        super::format::encode(&entry, &mut bytes);
    }
    std::fs::write(dir.join("0000000000000001-000001.rwsrec"), &bytes).unwrap();
    let mut recording = Recording::open(&dir).unwrap();
    let mut inputs = Vec::new();
    while let Some(entry) = recording.next_entry() {
        inputs.push(entry.event);
    }
    assert_eq!(inputs, vec![Input::Connected, Input::Tick]);
    assert_eq!(recording.corrupt(), 0);
    // This version writes version 3.
    assert_eq!(super::format::MAGIC, b"RWSREC3\n");
    let _ = std::fs::remove_dir_all(&dir);
}
