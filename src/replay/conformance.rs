//! Conformance recordings: small recordings built from each venue's
//! documented wire samples (`tests/data/<venue>/conformance.txt`), replayed
//! through the venue's adapter and the session core, with the items the
//! venue's documented rules call for.
//!
//! A fixture is a script, one step a line (`#` starts a comment):
//! - `sub ID CHANNEL SYMBOL [KEY=JSON]...`: subscribe, with client id `ID`
//!   (the core writes the subscribe; its write is recorded as done);
//! - `in JSON`: a frame from the venue;
//! - `write`: the next frame the core has queued goes out (a resubscribe);
//! - `expect ID data|gap|reset|checksum|break|resubscribed|error`: the items,
//!   in order per subscription, that replay must yield (`checksum` is a book
//!   break that is a checksum mismatch, `break` any other book break).
//!
//! The script becomes a recording (stream, connected, commands, frames,
//! writes, finish) in a scratch directory, written by the recorder's own
//! encoder, and is replayed with [`Replay`].

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;

use super::{Pace, Replay};
use crate::book::BookBreak;
use crate::config::Config;
use crate::message::Update;
use crate::protocol::{Protocol, Topic};
use crate::queue::Overflow;
use crate::record::format::{
    encode, topic_json, Entry, Input, NewTopic, Recorded, WriteEnd, MAGIC,
};
use crate::record::Recording;

/// The recording a script stands for, and the expected items per client id.
fn build(script: &str, step: Duration) -> (Vec<Entry>, BTreeMap<u64, Vec<String>>) {
    let mut inputs = vec![
        Input::Stream {
            name: "conformance".into(),
            venue: "fixture".into(),
            settings: String::new(),
        },
        Input::Connected,
    ];
    let mut expected: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for line in script.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (step, rest) = line.split_once(' ').unwrap_or((line, ""));
        match step {
            "sub" => {
                let mut words = rest.split_whitespace();
                let id: u64 = words.next().unwrap().parse().unwrap();
                let mut topic = Topic::new(words.next().unwrap()).symbol(words.next().unwrap());
                for param in words {
                    let (key, value) = param.split_once('=').unwrap();
                    topic = topic.param(
                        key,
                        serde_json::from_str::<serde_json::Value>(value).unwrap(),
                    );
                }
                inputs.push(Input::Command {
                    online: true,
                    command: Recorded::Subscribe(vec![NewTopic {
                        client_id: id,
                        topic: topic_json(&topic),
                        capacity: 1024,
                        overflow: Overflow::DropOldest,
                    }]),
                });
                inputs.push(Input::Write { len: 0, crc: 0 });
                inputs.push(Input::Written(WriteEnd::Done));
            }
            "write" => {
                inputs.push(Input::Write { len: 0, crc: 0 });
                inputs.push(Input::Written(WriteEnd::Done));
            }
            "in" => inputs.push(Input::Frame {
                read_at: Duration::ZERO,
                message: tungstenite::Message::text(rest),
            }),
            "expect" => {
                let (id, kind) = rest.split_once(' ').unwrap();
                expected
                    .entry(id.parse().unwrap())
                    .or_default()
                    .push(kind.trim().to_owned());
            }
            other => panic!("unknown step {other:?}"),
        }
    }
    inputs.push(Input::Finish { error: None });
    let entries = inputs
        .into_iter()
        .enumerate()
        .map(|(i, event)| Entry {
            stream: 1,
            at: step * i as u32,
            wall: 1_760_000_000_000_000_000,
            event,
        })
        .collect();
    (entries, expected)
}

/// Replays the venue's fixture through `protocol`; asserts the expected items.
async fn conform<P: Protocol>(venue: &str, protocol: P) {
    let dir = write_fixture(venue, Duration::from_micros(1));
    let expected = fixture(venue, Duration::from_micros(1)).1;
    replay_and_check(venue, &dir, protocol, Pace::AsFastAsPossible, &expected).await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn fixture(venue: &str, step: Duration) -> (Vec<Entry>, BTreeMap<u64, Vec<String>>) {
    let path = format!(
        "{}/tests/data/{venue}/conformance.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    build(&std::fs::read_to_string(&path).unwrap(), step)
}

/// The venue's fixture as a recording in a scratch directory, inputs `step` apart.
fn write_fixture(venue: &str, step: Duration) -> std::path::PathBuf {
    let (entries, _) = fixture(venue, step);
    let dir = std::env::temp_dir().join(format!(
        "resilient-ws-conformance-{venue}-{}-{}",
        std::process::id(),
        step.as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut bytes = MAGIC.to_vec();
    for entry in &entries {
        encode(entry, &mut bytes);
    }
    std::fs::write(dir.join("0000000000000000-000001.rwsrec"), bytes).unwrap();
    dir
}

async fn replay_and_check<P: Protocol>(
    venue: &str,
    dir: &std::path::Path,
    protocol: P,
    pace: Pace,
    expected: &BTreeMap<u64, Vec<String>>,
) {
    let config = Config::builder("wss://conformance.invalid/")
        .resync_on_gap(true)
        .build()
        .unwrap();
    let replay = Replay::new(Recording::open(dir).unwrap(), config, protocol, pace);
    let items: Vec<_> = replay.collect().await;
    let mut got: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for item in &items {
        let kind = match &item.item {
            Ok(Update::Data(_)) => "data",
            Ok(Update::Gap { .. }) => "gap",
            Ok(Update::Reset { .. }) => "reset",
            Ok(Update::BookBreak(BookBreak::ChecksumMismatch { .. })) => "checksum",
            Ok(Update::BookBreak(_)) => "break",
            Ok(Update::Resubscribed { .. }) => "resubscribed",
            Err(_) => "error",
        };
        got.entry(item.client_id.get())
            .or_default()
            .push(kind.to_owned());
    }
    assert_eq!(
        &got, expected,
        "{venue}: items per subscription: {items:#?}"
    );
}

/// At recorded pace each input waits for its time; as fast as possible none
/// does; the items are the same either way (the clock is tokio's, paused).
#[tokio::test(start_paused = true)]
async fn paced_replay_keeps_the_recorded_times_and_the_same_items() {
    let step = Duration::from_secs(1);
    let (entries, expected) = fixture("kalshi", step);
    let dir = write_fixture("kalshi", step);
    let span = step * (entries.len() as u32 - 1);
    let start = tokio::time::Instant::now();
    let kalshi = crate::protocol::kalshi::Kalshi::new;
    replay_and_check("kalshi", &dir, kalshi(), Pace::Recorded, &expected).await;
    assert_eq!(start.elapsed(), span, "paced: the recording's span");
    let start = tokio::time::Instant::now();
    replay_and_check("kalshi", &dir, kalshi(), Pace::AsFastAsPossible, &expected).await;
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "as fast as possible: no waiting"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn kalshi_conformance_recording() {
    conform("kalshi", crate::protocol::kalshi::Kalshi::new()).await;
}

#[tokio::test]
async fn kraken_conformance_recording() {
    conform("kraken", crate::protocol::kraken::Kraken::new()).await;
}

#[tokio::test]
async fn okx_conformance_recording() {
    conform("okx", crate::protocol::okx::Okx::new()).await;
}

#[tokio::test]
async fn weex_conformance_recording() {
    conform("weex", crate::protocol::weex::Weex::new()).await;
}
