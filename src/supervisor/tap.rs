//! The drive's side of a recorder: turns each drive input into a record and
//! offers it to the recorder without blocking (`record/mod.rs` says why).
//!
//! Called from `supervisor/drive.rs` only, before the input is applied, so
//! the recording holds the inputs in the order the core saw them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use tungstenite::Message;

use super::recorded_settings;
use super::write_outcome::WriteOutcome;
use crate::book::SnapshotFetched;
use crate::command::Command;
use crate::config::Config;
use crate::record::format::{
    fetched_bytes, fingerprint, topic_json, End, Entry, Input, NewTopic, Recorded, WriteEnd,
    MAX_BODY, MAX_REQUEST_PARAMS,
};
use crate::record::Recorder;
use crate::session::SessionEnd;

/// One connection's stream in a recording.
pub(crate) struct Tap {
    recorder: Recorder,
    stream: u32,
    /// Records (and bytes) of this stream dropped since the last one queued:
    /// the hole the next queued record carries, so the file marks it exactly
    /// where it is in this stream.
    hole_records: AtomicU64,
    hole_bytes: AtomicU64,
}

impl Tap {
    /// A tap for one new connection of `recorder` (its own stream number),
    /// opened with the settings of `config` that shape the session's
    /// decisions, and whether the adapter has a book `snapshot_source`.
    pub(crate) fn start(
        recorder: &Recorder,
        config: &Config,
        venue: &str,
        snapshot_source: bool,
    ) -> Self {
        let tap = Tap::new(recorder.clone(), recorder.next_stream());
        tap.stream_start(
            &config.connection_name,
            venue,
            recorded_settings::of(config, snapshot_source),
        );
        tap
    }

    fn new(recorder: Recorder, stream: u32) -> Self {
        Tap {
            recorder,
            stream,
            hole_records: AtomicU64::new(0),
            hole_bytes: AtomicU64::new(0),
        }
    }

    fn offset(&self, at: Instant) -> std::time::Duration {
        at.into_std()
            .saturating_duration_since(self.recorder.origin())
    }

    fn record(&self, now: Instant, event: Input, payload: usize) {
        self.record_at(now, SystemTime::now(), event, payload);
    }

    /// Records `event` with the wall clock `wall` (the one the core was
    /// handed, where it was handed one, so a replay hands in the same).
    fn record_at(&self, now: Instant, wall: SystemTime, event: Input, payload: usize) {
        let wall = wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let entry = Entry {
            stream: self.stream,
            at: self.offset(now),
            wall,
            event,
        };
        let hole = (
            self.hole_records.load(Ordering::Relaxed),
            self.hole_bytes.load(Ordering::Relaxed),
        );
        match self.recorder.offer(entry, payload, hole) {
            Ok(()) if hole.0 > 0 => {
                self.hole_records.store(0, Ordering::Relaxed);
                self.hole_bytes.store(0, Ordering::Relaxed);
            }
            Ok(()) => {}
            Err(cost) => {
                self.hole_records.fetch_add(1, Ordering::Relaxed);
                self.hole_bytes.fetch_add(cost, Ordering::Relaxed);
            }
        }
    }

    pub(super) fn stream_start(&self, name: &str, venue: &str, settings: String) {
        let size = name.len() + venue.len() + settings.len();
        let event = Input::Stream {
            name: name.to_owned(),
            venue: venue.to_owned(),
            settings,
        };
        self.record(Instant::now(), event, size);
    }

    pub(crate) fn connected(&self, now: Instant, wall: SystemTime) {
        self.record_at(now, wall, Input::Connected, 0);
    }

    pub(crate) fn disconnected(&self, end: &SessionEnd, now: Instant) {
        let end = match end {
            SessionEnd::Closed => End::Closed,
            SessionEnd::Lost(e) => End::Lost(e.to_string()),
            SessionEnd::Fatal(e) => End::Fatal(e.to_string()),
        };
        self.record(now, Input::Disconnected { end }, 0);
    }

    pub(crate) fn socket(
        &self,
        message: Option<&Result<Message, tungstenite::Error>>,
        read_at: Instant,
        now: Instant,
    ) {
        let (event, payload) = match message {
            Some(Ok(message)) => (
                Input::Frame {
                    read_at: self.offset(read_at),
                    message: message.clone(),
                },
                message.len(),
            ),
            Some(Err(error)) => (
                Input::ReadEnd {
                    error: Some(error.to_string()),
                },
                0,
            ),
            None => (Input::ReadEnd { error: None }, 0),
        };
        self.record(now, event, payload);
    }

    pub(crate) fn tick(&self, now: Instant) {
        self.record(now, Input::Tick, 0);
    }

    /// Records a command; a request keeps `request_params` (its adapter's
    /// recordable params, [`Protocol::recordable_params`](crate::Protocol::recordable_params))
    /// besides its method, unless they are longer than `MAX_REQUEST_PARAMS`.
    pub(crate) fn command(
        &self,
        command: Option<&Command>,
        request_params: Option<serde_json::Value>,
        online: bool,
        now: Instant,
    ) {
        let command = match command {
            None => Recorded::HandlesGone,
            Some(Command::Subscribe(new)) => Recorded::Subscribe(
                new.iter()
                    .map(|n| NewTopic {
                        client_id: n.client_id.get(),
                        topic: topic_json(&n.topic),
                        capacity: n.queue.capacity() as u64,
                        overflow: n.queue.policy(),
                    })
                    .collect(),
            ),
            Some(Command::Unsubscribe { client_id, .. }) => Recorded::Unsubscribe {
                client_id: client_id.get(),
            },
            Some(Command::Send {
                message,
                rate_limited,
                ..
            }) => {
                let (len, crc) = fingerprint(message);
                Recorded::Send {
                    rate_limited: *rate_limited,
                    len,
                    crc,
                }
            }
            Some(Command::Request { request, .. }) => Recorded::Request {
                method: request.method.clone(),
                params: request_params
                    .map(|params| params.to_string())
                    .filter(|text| {
                        let fits = text.len() <= MAX_REQUEST_PARAMS;
                        if !fits {
                            tracing::warn!(
                                bytes = text.len(),
                                "recording: a request's params too long to keep; method only"
                            );
                        }
                        fits
                    }),
            },
            Some(Command::Close) => Recorded::Close,
        };
        self.record(now, Input::Command { online, command }, 0);
    }

    pub(crate) fn write(&self, message: &Message, now: Instant) {
        let (len, crc) = fingerprint(message);
        self.record(now, Input::Write { len, crc }, 0);
    }

    pub(crate) fn written(&self, outcome: &WriteOutcome, now: Instant) {
        let outcome = match outcome {
            WriteOutcome::Done => WriteEnd::Done,
            WriteOutcome::Failed(error) => WriteEnd::Failed(error.to_string()),
            WriteOutcome::TimedOut(timeout) => WriteEnd::TimedOut(*timeout),
        };
        self.record(now, Input::Written(outcome), 0);
    }

    pub(crate) fn blocked_ended(&self, made_room: bool, now: Instant) {
        self.record(now, Input::BlockedEnded { made_room }, 0);
    }

    /// A book snapshot fetch's result. One whose record would pass the
    /// largest body a reader accepts is dropped and marked as a hole, as a
    /// record refused by a full queue is (replay then says it diverged).
    pub(crate) fn fetched(&self, fetched: &SnapshotFetched, now: Instant) {
        let size = fetched_bytes(fetched);
        if size > (MAX_BODY / 2) as usize {
            tracing::warn!(
                bytes = size,
                "recording: a book snapshot too large to record; marked as a hole"
            );
            self.recorder.count_dropped();
            self.hole_records.fetch_add(1, Ordering::Relaxed);
            self.hole_bytes.fetch_add(size as u64, Ordering::Relaxed);
            return;
        }
        self.record(now, Input::Fetched(fetched.clone()), size);
    }

    pub(crate) fn finish(&self, error: Option<&crate::error::Error>, now: Instant) {
        let error = error.map(ToString::to_string);
        self.record(now, Input::Finish { error }, 0);
    }
}
