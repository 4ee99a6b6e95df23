//! The one set of rules for driving a [`SessionCore`], shared by every
//! driver: the spawned supervisor's `select!` loop (`shell.rs`), the
//! consumer-driven [`Feed`](crate::Feed)'s `poll_next` (`feed/`), replay
//! (`replay/`), the `session_script` fuzz harness and the core's unit tests
//! (`session/tests.rs`). None of them calls the core's inputs directly.
//!
//! The core decides; a shell only does I/O. The rules a driver of the core
//! must follow (its inputs, the *apply* step after each, the outputs to ask
//! before waiting and what each obliges the driver to do, how a session
//! ends) are written once, on the type: [`SessionCore`]'s calling contract.
//! `Drive` is the one driver that follows them, as small synchronous steps
//! that an `async` loop and a hand-written `poll` can both call, so no driver
//! holds a copy of them. A driver without a socket (replay, the fuzz harness,
//! the unit tests) hands in the frames, times and write outcomes a socket and
//! a clock would have given: every method takes values, never the socket.
//!
//! 1. Every input goes through a method of [`Drive`] (a frame or the socket's
//!    end, a command, a tick, a write's outcome, room in a full queue,
//!    connected, disconnected, a book snapshot fetch's result). Each method
//!    applies the core's actions before it returns, so no shell can forget
//!    to; it also maps the transport's errors
//!    (tungstenite's) to the core's [`SocketFailure`](crate::session::SocketFailure) (`socket_failure.rs`).
//!    The questions ([`Drive::next_turn`], [`Drive::may_read`]) change nothing.
//! 2. [`Drive::next_turn`] asks the core's outputs in the contract's order
//!    and says what to wait for:
//!    - [`Turn::Blocked`]: read nothing from the socket; wait for room in
//!      that queue or the timeout, then call [`Drive::blocked_ended`].
//!    - [`Turn::Write`]: take the due frame with [`Drive::take_write`],
//!      write it within the timeout given with it, report with
//!      [`Drive::written`]. Due frames go out without arming a timer (tokio
//!      rounds timers up to the next millisecond).
//!    - [`Turn::Wait`]: wait for whichever comes first: a frame from the
//!      socket ([`Drive::socket`]), a command if `commands` is true
//!      ([`Drive::serve_online`]), the write slot at `write_at` (then ask
//!      again), the timer at `timer_at` ([`Drive::tick`]), and, only while
//!      [`Drive::fetching`] is true, the result of a book snapshot fetch
//!      ([`Drive::poll_fetched`], then [`Drive::fetched`]): a fetched
//!      snapshot is applied when it arrives, not when the next frame does
//!      (`fetches.rs`; a connection without a snapshot source never polls it).
//! 3. After an input, while [`Drive::may_read`] is true, frames already
//!    buffered by the socket may be handed in without waiting, up to
//!    [`READ_BATCH`] per wake-up; then ask again.
//! 4. Any step that returns `Err(SessionEnd)` ends the session: read
//!    [`Drive::session_worked`], call [`Drive::disconnected`] and run the
//!    reconnect machine (`reconnect/`).
//!
//! While no connection is up, commands go to [`Drive::serve_offline`]
//! (subscriptions are recorded for the next connection; what needs a socket
//! fails at once).
//!
//! Because every input passes here, this is where a recorder taps them
//! (`record/`): with [`ConfigBuilder::record`](crate::ConfigBuilder::record)
//! each method hands its input to the recorder before applying it, and
//! replay is a third shell calling these same methods with the recorded
//! inputs. Without a recorder the tap costs one branch per input.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::{Duration, Instant};
use tungstenite::{self, Message};

use super::fetches::Fetches;
use super::replies::{Replies, Served};
use super::shared::Shared;
use super::socket_failure;
use super::tap::Tap;
use crate::book::SnapshotFetched;
use crate::command::Command;
use crate::connect::Ws;
use crate::error::Error;
use crate::protocol::Protocol;
use crate::queue::Queue;
use crate::session::{SessionCore, SessionEnd, WriteFailure, Written};

/// Frames handled per wake-up before waiting again, so a busy socket
/// amortises the cost of a wake-up without starving commands and timers.
pub const READ_BATCH: usize = 64;

/// What a shell waits for next (see the module docs for the order).
pub enum Turn {
    /// Wait up to `timeout` for room in `queue`; read nothing meanwhile.
    Blocked {
        /// The full `Block` queue.
        queue: Arc<Queue>,
        /// How long the consumer has to make room.
        timeout: Duration,
    },
    /// A frame is due now: [`Drive::take_write`] and write it.
    Write,
    /// Wait for the socket, commands (if `commands`), `write_at`, `timer_at`.
    Wait {
        /// When the next queued frame may go out; `None` when none waits.
        write_at: Option<Instant>,
        /// When [`Drive::tick`] is due.
        timer_at: Instant,
        /// Whether to take commands now (not while closing or while the
        /// outbound queue is long: the bounded channel pushes back).
        commands: bool,
    },
}

pub use super::write_outcome::WriteOutcome;

/// A `SessionCore` with the callers waiting on it: every input goes in
/// here and its actions are applied before the call returns.
pub struct Drive<P> {
    /// Every decision of a session, and of commands served while offline.
    pub(crate) core: SessionCore<P>,
    /// The callers waiting on the core's answers.
    replies: Replies,
    /// Where events, state and stats go.
    shared: Arc<Shared>,
    /// The recorder's tap, when recording (`record/`).
    tap: Option<Tap>,
    /// The adapter's book snapshot fetches, when it has a source (`fetches.rs`).
    fetches: Option<Fetches>,
}

impl<P: Protocol> Drive<P> {
    pub(crate) fn new(core: SessionCore<P>, shared: Arc<Shared>, tap: Option<Tap>) -> Self {
        let fetches = core.snapshot_source().map(Fetches::new);
        Drive {
            core,
            replies: Replies::default(),
            shared,
            tap,
            fetches,
        }
    }

    /// Publishes the core's actions (events, state, replies) and starts the
    /// book snapshot fetches the adapter asked for: the last step of every
    /// input. (The core publishes its own gauges inside each input.)
    fn apply(&mut self) {
        self.replies.apply(&mut self.core, &self.shared);
        if let Some(fetches) = &mut self.fetches {
            fetches.start(self.core.poll_snapshot_requests());
        }
    }

    /// Whether a book snapshot fetch is in flight: only then does a shell
    /// wait on [`poll_fetched`](Self::poll_fetched).
    pub(crate) fn fetching(&self) -> bool {
        self.fetches.as_ref().is_some_and(Fetches::in_flight)
    }

    /// The next finished book snapshot fetch, registering the waker when
    /// none is there yet; pending for ever without a snapshot source.
    pub(crate) fn poll_fetched(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<SnapshotFetched> {
        match &mut self.fetches {
            Some(fetches) => fetches.poll_fetched(cx),
            None => std::task::Poll::Pending,
        }
    }

    /// A book snapshot fetch ended: the adapter applies it now (its book may
    /// become verified, or break and resync, without another frame).
    pub(crate) fn fetched(&mut self, fetched: SnapshotFetched, now: Instant) {
        if let Some(tap) = &self.tap {
            tap.fetched(&fetched, now);
        }
        self.core.on_snapshot_fetched(fetched, now);
        self.apply();
    }

    /// Replay: the adapter's snapshot requests are never fetched; the
    /// recorded results are handed to [`fetched`](Self::fetched) instead.
    /// `live_source`: whether the live adapter had a snapshot source (from
    /// the recording; `None` if it does not say): the adapter's books then
    /// wait for snapshots as they did live, whatever source it was given.
    pub(crate) fn replaying(&mut self, live_source: Option<bool>) {
        let source = live_source.unwrap_or(self.fetches.is_some());
        if live_source.is_some() {
            self.core.replaying_with_snapshot_source(source);
        }
        self.fetches = source.then(Fetches::replaying);
    }

    /// A connection is up at `now`, when the wall clock read `wall` (the
    /// shell reads both clocks; the core reads none, so a replay handing in
    /// the recorded `wall` gets the same receive times).
    pub fn connected(&mut self, now: Instant, wall: SystemTime) {
        if let Some(tap) = &self.tap {
            tap.connected(now, wall);
        }
        self.core.on_connected(now, wall);
        self.apply();
    }

    /// The connection is gone (`end` says how).
    pub fn disconnected(&mut self, end: &SessionEnd, now: Instant) {
        if let Some(tap) = &self.tap {
            tap.disconnected(end, now);
        }
        self.core.on_disconnected(end, now);
        self.apply();
    }

    /// What to wait for next.
    pub fn next_turn(&self, now: Instant) -> Turn {
        if let Some((queue, timeout)) = self.core.blocked_on() {
            return Turn::Blocked { queue, timeout };
        }
        let write_at = self.core.next_write_at(now);
        if write_at.is_some_and(|at| at <= now) {
            return Turn::Write;
        }
        Turn::Wait {
            write_at,
            timer_at: self.core.poll_timeout().unwrap_or(now),
            commands: self.core.accepts_commands(now),
        }
    }

    /// The consumer made room in the blocked queue (`made_room`), or the
    /// timeout passed.
    pub fn blocked_ended(&mut self, made_room: bool, now: Instant) {
        if let Some(tap) = &self.tap {
            tap.blocked_ended(made_room, now);
        }
        if made_room {
            self.core.on_space(now);
        } else {
            self.core.on_block_timeout(now);
        }
        self.apply();
    }

    /// The frame due now, and how long its write may take.
    pub fn take_write(&mut self, now: Instant) -> Option<(Message, Written, Duration)> {
        let (message, written, timeout) = self.core.poll_transmit(now)?;
        if let Some(tap) = &self.tap {
            tap.write(&message, now);
        }
        Some((message, written, timeout))
    }

    /// How writing `written` ended.
    pub fn written(
        &mut self,
        written: Written,
        outcome: WriteOutcome,
        now: Instant,
    ) -> Result<(), SessionEnd> {
        if let Some(tap) = &self.tap {
            tap.written(&outcome, now);
        }
        let step = match outcome {
            WriteOutcome::Done => {
                self.core.on_written(written, now);
                Ok(())
            }
            WriteOutcome::Failed(error) => Err(self
                .core
                .on_write_failed(written, WriteFailure::Socket(socket_failure::of(error)))),
            WriteOutcome::TimedOut(timeout) => Err(self
                .core
                .on_write_failed(written, WriteFailure::TimedOut(timeout))),
        };
        self.apply();
        step
    }

    /// One read from the socket: a frame (received at `read_at`), an error,
    /// or the end of the stream (`None`).
    pub fn socket(
        &mut self,
        message: Option<Result<Message, tungstenite::Error>>,
        read_at: Instant,
        now: Instant,
    ) -> Result<(), SessionEnd> {
        if let Some(tap) = &self.tap {
            tap.socket(message.as_ref(), read_at, now);
        }
        let step = match message {
            Some(Ok(message)) => self.core.on_message(message, read_at, now),
            Some(Err(error)) => Err(self.core.on_read_error(socket_failure::of(error))),
            None => Err(self.core.on_stream_end()),
        };
        self.apply();
        step
    }

    /// The timer fired at `now`.
    pub fn tick(&mut self, now: Instant) -> Result<(), SessionEnd> {
        if let Some(tap) = &self.tap {
            tap.tick(now);
        }
        let step = self.core.handle_timeout(now);
        self.apply();
        step
    }

    /// Whether frames already buffered may be handed in now.
    pub fn may_read(&self) -> bool {
        self.core.accepts_reads()
    }

    /// A command while connected (`None`: every handle is gone). Close starts
    /// the close handshake; the session goes on until the peer answers.
    pub fn serve_online(&mut self, command: Option<Command>, now: Instant) {
        if let Some(tap) = &self.tap {
            let params = recordable_params(&self.core, command.as_ref());
            tap.command(command.as_ref(), params, true, now);
        }
        let served = self.replies.serve(command, &mut self.core, now);
        if let Served::Close = served {
            self.core.begin_close(now);
        }
        self.apply();
    }

    /// A command while no connection is up. Returns true when close was
    /// requested (or every handle is gone): then stop at once.
    pub fn serve_offline(&mut self, command: Option<Command>, now: Instant) -> bool {
        if let Some(tap) = &self.tap {
            let params = recordable_params(&self.core, command.as_ref());
            tap.command(command.as_ref(), params, false, now);
        }
        let served = self.replies.serve(command, &mut self.core, now);
        self.apply();
        matches!(served, Served::Close)
    }

    /// Whether the last session answered every subscription it replayed.
    pub(crate) fn session_worked(&self) -> bool {
        self.core.session_worked()
    }

    /// The wait a retry hint still asks for, once.
    pub(crate) fn take_retry_wait(&mut self, now: Instant) -> Duration {
        self.core.take_retry_wait(now)
    }

    /// The shell is ending: every stream ends (with `error` if any) and every
    /// caller still waiting gets the answer.
    pub fn finish(&mut self, error: Option<&Error>, now: Instant) {
        if let Some(tap) = &self.tap {
            tap.finish(error, now);
        }
        self.core.finish(error, now);
        self.apply();
        let answer = error.cloned().unwrap_or(Error::ClientClosed);
        self.replies.fail_all(&answer);
    }

    /// The shared state (events, connection state, stats).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

/// The receive time of the frames cut from the socket's latest read: the
/// clock is read once per read from the OS, not once per frame
/// (`socket/transport.rs` says why).
#[derive(Default)]
pub(crate) struct ReadStamp {
    /// The socket's read count and the time taken for it; `None` before the
    /// first frame.
    last: Option<(u64, Instant)>,
}

impl ReadStamp {
    /// The receive time of a frame that just came out of `ws`.
    pub(crate) fn of(&mut self, ws: &Ws) -> Instant {
        let reads = ws.reads();
        match self.last {
            Some((stamped, at)) if stamped == reads => at,
            _ => {
                let now = Instant::now();
                self.last = Some((reads, now));
                now
            }
        }
    }
}

/// The params of a request command its adapter names as recordable (asked
/// only while a recorder taps the drive).
fn recordable_params<P: Protocol>(
    core: &SessionCore<P>,
    command: Option<&Command>,
) -> Option<serde_json::Value> {
    match command? {
        Command::Request { request, .. } => core.recordable_params(request),
        _ => None,
    }
}
