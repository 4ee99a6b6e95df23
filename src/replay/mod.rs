//! Replay: a recording fed through the same adapter and the same session
//! core, yielding the same [`SetItem`]s as the live connection did.
//!
//! Honest by construction: replay is a third shell of `supervisor/drive.rs`.
//! It builds the client, core and drive exactly as the spawned supervisor
//! and the feed do (`Client::unspawned`), and calls the same [`Drive`]
//! methods, in the recorded order, with the recorded `now`s and receive
//! times, instead of reading a socket and a clock. The core cannot tell the
//! difference, so its decisions (routing, sequence checks, checksums,
//! resubscribes, timeouts) are the live ones. Subscriptions are made with
//! their recorded client ids, topics and queue settings, and read through a
//! [`SubscriptionSet`] as the feed does.
//!
//! Limits, said plainly:
//! - Items are the live ones when the live consumer kept up. Replay reads
//!   each item before handing in the next input, so it never overflows a
//!   queue: drops from a slow live consumer (and `Block` waits) are not
//!   reproduced.
//! - Errors that came from the socket or the OS (a reset, a refused write)
//!   are recorded as text and replayed as an I/O error with that text; the
//!   session reacts the same (they are all "connection lost"), the error
//!   value differs. A terminal error given at the end is replayed as
//!   [`Error::Reconnect`] carrying the recorded text, unless the session
//!   itself ended fatally in replay (then that error, as live).
//! - Outbound frames are checked by length and CRC ([`ReplayStats`]); one-off
//!   sends and request parameters were never stored, so those writes are
//!   not verifiable, and a token the adapter put into a frame makes that
//!   frame differ. A request is replayed with the params its adapter named
//!   as recordable (`Protocol::recordable_params`), if any: the adapter
//!   sees them as live (Kalshi builds books for added markets).
//! - Where the recorder dropped records (a hole), the session diverges from
//!   that point; [`ReplayStats::dropped`] says so.
//! - Book snapshots fetched from a
//!   [`SnapshotSource`](crate::SnapshotSource) (OKX over REST) are recorded
//!   and handed in at the point they came in live; no source is called, and
//!   none is needed: the recording says whether the live adapter had one, and
//!   replay makes the adapter's books wait for snapshots exactly as they did
//!   live ([`Protocol::replay_snapshot_source`]), whatever source (or none)
//!   it was given. Recordings made before that was kept need the adapter
//!   configured as live.

#[cfg(test)]
mod conformance;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::task::noop_waker_ref;
use futures::Stream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Duration, Instant, Sleep};
use tungstenite::Message;

use crate::client::{Client, Prepared, QueueOptions};
use crate::config::Config;
use crate::error::{ConnectionError, Error, RedactedUrl};
use crate::ids::ClientId;
use crate::protocol::{Protocol, Request, Topic};
use crate::record::format::{fingerprint, End, Entry, Input, NewTopic, Recorded, WriteEnd};
use crate::record::Recording;
use crate::session::{SessionEnd, Written};
use crate::set::{SetItem, Source, SubscriptionSet};
use crate::stream::Messages;
use crate::supervisor::drive::{Drive, WriteOutcome};
use crate::supervisor::Command;

/// How fast a [`Replay`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pace {
    /// Each input waits for its recorded time (relative to the first).
    Recorded,
    /// No waiting: inputs go in as fast as they are consumed. The core still
    /// sees the recorded times, so the items are the same.
    AsFastAsPossible,
}

/// What a replay checked and skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayStats {
    /// Inputs handed to the drive.
    pub inputs: u64,
    /// Inbound frames among them.
    pub frames: u64,
    /// Outbound frames whose length and CRC matched the recording.
    pub writes_matched: u64,
    /// Outbound frames that differed (or were missing).
    pub writes_mismatched: u64,
    /// Outbound frames that could not be verified (one-off sends, requests).
    pub writes_unverified: u64,
    /// Records the recorder had dropped (holes in the recording).
    pub dropped: u64,
    /// Records of other streams (connections) skipped.
    pub other_streams: u64,
}

/// Text that stands in for a one-off send (its content was never stored).
const SEND_PLACEHOLDER: &str = "[recorded send: content not stored]";

/// A recording played through the same adapter and session core: a
/// [`Stream`] of the [`SetItem`]s the live connection yielded. Made by
/// [`Replay::new`]; ends after the recording's last input (then every
/// subscription yields its terminal error, if any, and ends).
///
/// The settings that shape the session's decisions (ping, pong, idle,
/// request and close timeouts, queue capacity, stash bounds, resync on gap)
/// are taken from the recording; the rest of `config` (the outbound rate
/// limit above all) should be the live one. A recorder in it is ignored.
///
/// ```no_run
/// use futures::StreamExt;
/// use resilient_ws::{Config, Kraken, Pace, Recording, Replay};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::builder("wss://ws.kraken.com/v2").build()?;
/// let mut replay = Replay::new(Recording::open("rec")?, config, Kraken::new(), Pace::AsFastAsPossible);
/// while let Some(item) = replay.next().await {
///     println!("{}: {:?}", item.client_id, item.item);
/// }
/// println!("{:?}", replay.stats());
/// # Ok(())
/// # }
/// ```
pub struct Replay<P: Protocol> {
    recording: Recording,
    /// The stream (connection) followed: the first one met, or the one
    /// given to [`follow`](Replay::follow).
    stream: Option<u32>,
    drive: Drive<P>,
    client: Client,
    set: SubscriptionSet,
    /// Kept open so the handles' own commands (a dropped member's
    /// unsubscribe) are accepted and ignored: only recorded commands count.
    _commands: mpsc::Receiver<Command>,
    _unsolicited: Messages,
    pace: Pace,
    /// The replay's instant of the first input, and that input's offset.
    clock: Option<(Instant, Duration)>,
    sleep: Option<Pin<Box<Sleep>>>,
    /// An input waiting for its time (paced).
    waiting: Option<Entry>,
    /// The frame taken for writing, until its outcome is replayed.
    writing: Option<Written>,
    /// Placeholder sends and requests whose writes cannot be verified.
    unverifiable: u64,
    /// The live URL, redacted, for errors replayed from their text.
    url: RedactedUrl,
    /// How the last replayed step ended the session, if it did.
    last_end: Option<SessionEnd>,
    finished: bool,
    ended: bool,
    stats: ReplayStats,
}

// Nothing in a replay is pinned structurally: its futures are boxed.
impl<P: Protocol> Unpin for Replay<P> {}

impl<P: Protocol> Replay<P> {
    /// A replay of `recording` through `protocol` under `config`.
    pub fn new(mut recording: Recording, mut config: Config, protocol: P, pace: Pace) -> Self {
        config.recorder = None;
        // The first record names the first stream and its settings.
        let first = recording.next_entry();
        let mut live_source = None;
        if let Some(Entry {
            event: Input::Stream { settings, .. },
            ..
        }) = &first
        {
            crate::supervisor::recorded_settings::apply(settings, &mut config);
            live_source = crate::supervisor::recorded_settings::snapshot_source(settings);
        }
        let url = config.redacted_url.clone();
        let (client, unsolicited, supervisor, _span) = Client::unspawned(config, protocol);
        let (_config, mut drive, commands, _reconnect) = supervisor.into_parts();
        // Book snapshots come from the recording, never from a source; the
        // books wait for them as they did live.
        drive.replaying(live_source);
        let set = SubscriptionSet::new(Source::Client(client.clone()), QueueOptions::default());
        Replay {
            recording,
            stream: None,
            drive,
            client,
            set,
            _commands: commands,
            _unsolicited: unsolicited,
            pace,
            clock: None,
            sleep: None,
            waiting: first,
            writing: None,
            unverifiable: 0,
            url,
            last_end: None,
            finished: false,
            ended: false,
            stats: ReplayStats::default(),
        }
    }

    /// Follows stream (connection) `stream` of the recording instead of the
    /// first one met: a recorder shared by a pool's or set's clients holds
    /// one stream per connection ([`RecordingSummary::streams`](crate::RecordingSummary::streams)
    /// lists them). Call before the first item.
    pub fn follow(mut self, stream: u32) -> Self {
        self.stream = Some(stream);
        self
    }

    /// What was checked and skipped so far.
    pub fn stats(&self) -> ReplayStats {
        self.stats
    }

    /// Files that ended inside a record (skipped) so far.
    pub fn torn(&self) -> u64 {
        self.recording.torn()
    }

    /// The replay's instant for a recorded offset.
    fn time(&mut self, at: Duration) -> Instant {
        let (start, first) = *self.clock.get_or_insert_with(|| (Instant::now(), at));
        start + at.saturating_sub(first)
    }

    /// Hands one recorded input to the drive.
    fn apply(&mut self, entry: Entry) {
        self.stats.inputs += 1;
        let now = self.time(entry.at);
        match entry.event {
            Input::Stream { .. } => {}
            Input::Connected => {
                let wall = std::time::UNIX_EPOCH + Duration::from_nanos(entry.wall);
                self.drive.connected(now, wall);
            }
            Input::Frame { read_at, message } => {
                self.stats.frames += 1;
                let read_at = self.time(read_at);
                let step = self.drive.socket(Some(Ok(message)), read_at, now);
                self.note(step);
            }
            Input::ReadEnd { error } => {
                let read =
                    error.map(|text| Err(tungstenite::Error::Io(std::io::Error::other(text))));
                let step = self.drive.socket(read, now, now);
                self.note(step);
            }
            Input::Tick => {
                let step = self.drive.tick(now);
                self.note(step);
            }
            Input::Command { online, command } => {
                let command = self.command(command);
                if online {
                    self.drive.serve_online(command, now);
                } else {
                    // Whether this ends the shell is recorded too (Finish).
                    let _ = self.drive.serve_offline(command, now);
                }
            }
            Input::Write { len, crc } => self.take_write(len, crc, now),
            Input::Written(end) => {
                if let Some(written) = self.writing.take() {
                    let outcome = match end {
                        WriteEnd::Done => WriteOutcome::Done,
                        WriteEnd::Failed(text) => WriteOutcome::Failed(tungstenite::Error::Io(
                            std::io::Error::other(text),
                        )),
                        WriteEnd::TimedOut(timeout) => WriteOutcome::TimedOut(timeout),
                    };
                    let step = self.drive.written(written, outcome, now);
                    self.note(step);
                }
            }
            Input::BlockedEnded { made_room } => self.drive.blocked_ended(made_room, now),
            Input::Disconnected { end } => {
                let end = self.last_end.take().unwrap_or_else(|| match end {
                    End::Closed => SessionEnd::Closed,
                    End::Lost(text) => SessionEnd::Lost(recorded_error(&self.url, &text)),
                    End::Fatal(text) => SessionEnd::Fatal(recorded_error(&self.url, &text)),
                });
                self.drive.disconnected(&end, now);
                self.writing = None;
            }
            Input::Finish { error } => {
                let error = error.map(|text| match self.last_end.take() {
                    Some(SessionEnd::Fatal(error)) => error,
                    _ => Error::Reconnect {
                        attempts: 0,
                        last_error: Box::new(recorded_error(&self.url, &text)),
                    },
                });
                self.drive.finish(error.as_ref(), now);
                self.finished = true;
            }
            Input::Fetched(fetched) => self.drive.fetched(fetched, now),
            Input::Hole { records, .. } => {
                tracing::warn!(records, "replay: the recording has a hole here");
                self.stats.dropped += records;
            }
        }
    }

    fn note(&mut self, step: Result<(), SessionEnd>) {
        if let Err(end) = step {
            self.last_end = Some(end);
        }
    }

    fn take_write(&mut self, len: u64, crc: u32, now: Instant) {
        let Some((message, written, _timeout)) = self.drive.take_write(now) else {
            self.stats.writes_mismatched += 1;
            return;
        };
        let made = fingerprint(&message);
        if made == (len, crc) {
            self.stats.writes_matched += 1;
        } else if self.unverifiable > 0 {
            // A one-off send or request stood in for by a placeholder.
            self.unverifiable -= 1;
            self.stats.writes_unverified += 1;
        } else {
            self.stats.writes_mismatched += 1;
        }
        self.writing = Some(written);
    }

    /// The command a recorded one stands for (see the module docs for what
    /// is a placeholder).
    fn command(&mut self, command: Recorded) -> Option<Command> {
        Some(match command {
            Recorded::HandlesGone => return None,
            Recorded::Subscribe(topics) => Command::Subscribe(
                topics
                    .into_iter()
                    .filter_map(|t| self.subscription(t))
                    .collect(),
            ),
            Recorded::Unsubscribe { client_id } => Command::Unsubscribe {
                client_id: ClientId::new(client_id),
                reply: None,
            },
            Recorded::Send { rate_limited, .. } => {
                self.unverifiable += 1;
                Command::Send {
                    message: Message::text(SEND_PLACEHOLDER),
                    rate_limited,
                    reply: oneshot::channel().0,
                }
            }
            Recorded::Request { method, params } => {
                self.unverifiable += 1;
                // The recorded params are the adapter's recordable part of
                // the request (never a secret): handed back so the adapter
                // rebuilds what it derived from them live.
                let params = params.and_then(|text| serde_json::from_str(&text).ok());
                Command::Request {
                    request: Request { method, params },
                    reply: oneshot::channel().0,
                }
            }
            Recorded::Close => Command::Close,
        })
    }

    /// One recorded subscription, made again with its client id and queue
    /// settings; its handle joins the set.
    fn subscription(&mut self, new: NewTopic) -> Option<crate::command::NewSubscription> {
        let topic = topic_from_json(&new.topic)?;
        let options = QueueOptions {
            capacity: Some(usize::try_from(new.capacity).unwrap_or(usize::MAX)),
            overflow: Some(new.overflow),
        };
        let Prepared { pending, new: made } = self
            .client
            .prepare_as(ClientId::new(new.client_id), topic, options)
            .ok()?;
        for (subscription, _ready) in pending {
            if let Err(error) = self.set.adopt(subscription) {
                tracing::debug!(%error, "replay: subscription not adopted");
            }
        }
        made.into_iter().next()
    }
}

/// An error that stands for one recorded as text.
fn recorded_error(url: &RedactedUrl, text: &str) -> Error {
    let io = ConnectionError::Io {
        kind: std::io::ErrorKind::Other,
        message: text.to_owned(),
    };
    Error::connection(url, 0, io)
}

/// A topic back from its JSON.
fn topic_from_json(text: &str) -> Option<Topic> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let mut topic = Topic::new(value.get("channel")?.as_str()?);
    if let Some(symbol) = value.get("symbol").and_then(|s| s.as_str()) {
        topic = topic.symbol(symbol);
    }
    if let Some(params) = value.get("params").and_then(|p| p.as_object()) {
        for (key, value) in params {
            topic = topic.param(key.clone(), value.clone());
        }
    }
    Some(topic)
}

impl<P: Protocol> Stream for Replay<P> {
    type Item = SetItem;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SetItem>> {
        let this = self.get_mut();
        // Deliveries happen only inside this function (as in the feed).
        let mut quiet = Context::from_waker(noop_waker_ref());
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            if let Poll::Ready(Some(item)) = Pin::new(&mut this.set).poll_next(&mut quiet) {
                return Poll::Ready(Some(item));
            }
            if this.finished {
                this.ended = true;
                return Poll::Ready(None);
            }
            let entry = match this.waiting.take() {
                Some(entry) => entry,
                None => match this.recording.next_entry() {
                    Some(entry) => entry,
                    None => {
                        // The recording stops without an end (a crash, or
                        // still being written): end every stream cleanly.
                        let now = Instant::now();
                        this.drive.finish(None, now);
                        this.finished = true;
                        continue;
                    }
                },
            };
            let stream = *this.stream.get_or_insert(entry.stream);
            if entry.stream != stream {
                this.stats.other_streams += 1;
                continue;
            }
            if this.pace == Pace::Recorded {
                let due = this.time(entry.at);
                if due > Instant::now() {
                    let sleep = this.sleep.get_or_insert_with(|| Box::pin(sleep_until(due)));
                    sleep.as_mut().reset(due);
                    if sleep.as_mut().poll(cx).is_pending() {
                        this.waiting = Some(entry);
                        return Poll::Pending;
                    }
                }
            }
            this.apply(entry);
        }
    }
}

impl<P: Protocol> std::fmt::Debug for Replay<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("stats", &self.stats)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> Drop for Replay<P> {
    fn drop(&mut self) {
        if !self.finished {
            self.drive.finish(None, Instant::now());
        }
    }
}
