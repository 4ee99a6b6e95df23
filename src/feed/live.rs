//! One connected session, polled: the rules of `supervisor/drive.rs` written
//! as a `poll` instead of a `select!` loop.
//!
//! One [`Live::poll_step`] does what one wake-up of the spawned shell does:
//! finish a write in flight, or wait for room in a full `Block` queue, or
//! take the first of socket / commands / snapshot fetch (only while one is in
//! flight) / write slot / timer that is ready and then the frames already
//! buffered (up to [`FEED_READ_BATCH`]; after a wait, the frame that woke the task
//! is yielded before those are read). It returns `Ready` after any progress so
//! the feed can yield what was delivered, and `Pending` only once every
//! source it waits on has registered the waker.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Sink, Stream};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Duration, Instant, Sleep};
use tungstenite::Message;

use crate::connect::Ws;
use crate::protocol::Protocol;
use crate::queue::Queue;
use crate::session::{SessionEnd, Written};
use crate::supervisor::drive::{Drive, ReadStamp, Turn, WriteOutcome};
use crate::supervisor::Command;

/// Frames the feed hands in per step before it yields what they delivered
/// (the spawned shell's [`READ_BATCH`](crate::supervisor::drive::READ_BATCH)
/// is 64). Larger because the feed empties each subscription's queue under
/// one lock per step: with 100 subscriptions through one feed, 64 frames
/// per step put about one item in each queue (a queue lock and a ready-list
/// listing per item), 256 put 2-3 (Kalshi, 100 subscriptions: +5-7 %
/// frames per second; 1 subscription unchanged). The bound on the work
/// before the first item is yielded: 256 frames, about 80 us at full rate,
/// and only when the socket already holds that many (a frame that wakes a
/// waiting feed is yielded before anything else is read).
pub(super) const FEED_READ_BATCH: usize = 256;

/// A boxed wait for room in a full queue.
type SpaceWait = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A frame handed to the socket and not yet flushed.
struct Writing {
    /// `Some` until the sink accepted it.
    message: Option<Message>,
    written: Written,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    /// The `now` of the turn that took it (the core's view of "written at").
    now: Instant,
}

/// The wait for room in a full `Block` queue, with its deadline.
struct Blocked {
    space: SpaceWait,
    deadline: Pin<Box<Sleep>>,
}

/// A connected session as the feed polls it.
pub(super) struct Live {
    pub(super) ws: Ws,
    pub(super) connected_at: Instant,
    read_at: ReadStamp,
    writing: Option<Writing>,
    blocked: Option<Blocked>,
    /// The one timer: the earlier of the write slot and the core's timer.
    timer: Pin<Box<Sleep>>,
    /// Where `timer` is armed.
    timer_at: Instant,
    /// Set when a step found nothing and the task waits: the frame that
    /// wakes it is yielded before the socket is read again (see
    /// `poll_wait`), so its latency does not include a read that usually
    /// finds nothing (one frame per wake-up at a moderate rate). A busy
    /// socket never waits and keeps reading in batches.
    woken: bool,
}

impl Live {
    pub(super) fn new(ws: Ws, now: Instant) -> Self {
        Live {
            ws,
            connected_at: now,
            read_at: ReadStamp::default(),
            writing: None,
            blocked: None,
            timer: Box::pin(sleep_until(now)),
            timer_at: now,
            woken: false,
        }
    }

    /// One wake-up's worth of work. `Ready(Ok(()))`: progress was made (the
    /// caller yields what was delivered and calls again); `Ready(Err(end))`:
    /// the session ended; `Pending`: waiting, with the waker registered.
    pub(super) fn poll_step<P: Protocol>(
        &mut self,
        cx: &mut Context<'_>,
        drive: &mut Drive<P>,
        commands: &mut mpsc::Receiver<Command>,
    ) -> Poll<Result<(), SessionEnd>> {
        if self.writing.is_some() {
            return self.poll_write(cx, drive);
        }
        let now = Instant::now();
        match drive.next_turn(now) {
            Turn::Blocked { queue, timeout } => self.poll_blocked(cx, drive, queue, timeout),
            Turn::Write => {
                if let Some((message, written, timeout)) = drive.take_write(now) {
                    self.writing = Some(Writing {
                        message: Some(message),
                        written,
                        timeout,
                        deadline: Box::pin(sleep_until(now + timeout)),
                        now,
                    });
                }
                Poll::Ready(Ok(()))
            }
            Turn::Wait {
                write_at,
                timer_at,
                commands: take_commands,
            } => self.poll_wait(cx, drive, commands, now, write_at, timer_at, take_commands),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn poll_wait<P: Protocol>(
        &mut self,
        cx: &mut Context<'_>,
        drive: &mut Drive<P>,
        commands: &mut mpsc::Receiver<Command>,
        now: Instant,
        write_at: Option<Instant>,
        timer_at: Instant,
        take_commands: bool,
    ) -> Poll<Result<(), SessionEnd>> {
        // Due timers and waiting commands before the socket: a socket that
        // is always readable must not starve pings, deadlines or close. A
        // due timer first takes one batch of what the socket already holds:
        // after the consumer paused, the pong or data that came meanwhile
        // counts before a deadline is judged.
        if timer_at <= now {
            if drive.may_read() {
                if let Poll::Ready(message) = Pin::new(&mut self.ws).poll_next(cx) {
                    let read_at = self.read_at.of(&self.ws);
                    drive.socket(message, read_at, now)?;
                    self.drain_buffered(cx, drive, now)?;
                }
            }
            drive.tick(Instant::now())?;
            return Poll::Ready(Ok(()));
        }
        // A look first (a few loads): polling the channel registers the
        // waker, which a wake-up that brought a frame does not need before
        // the frame is yielded. The poll below registers it before waiting.
        if take_commands && commands_waiting(commands) {
            if let Poll::Ready(command) = commands.poll_recv(cx) {
                drive.serve_online(command, now);
                return Poll::Ready(Ok(()));
            }
        }
        // Only a connection with a book snapshot fetch in flight polls it.
        if drive.fetching() {
            if let Poll::Ready(fetched) = drive.poll_fetched(cx) {
                drive.fetched(fetched, Instant::now());
                return Poll::Ready(Ok(()));
            }
        }
        if let Poll::Ready(message) = Pin::new(&mut self.ws).poll_next(cx) {
            let read_at = self.read_at.of(&self.ws);
            drive.socket(message, read_at, now)?;
            if std::mem::take(&mut self.woken) {
                // The first frame after a wait goes out before any further
                // read: the next step reads what the socket holds behind it.
                return Poll::Ready(Ok(()));
            }
            return Poll::Ready(self.drain_buffered(cx, drive, now));
        }
        // Nothing came: register for commands before waiting.
        if take_commands {
            if let Poll::Ready(command) = commands.poll_recv(cx) {
                drive.serve_online(command, now);
                return Poll::Ready(Ok(()));
            }
        }
        let at = write_at.map_or(timer_at, |w| w.min(timer_at));
        if at != self.timer_at {
            self.timer.as_mut().reset(at);
            self.timer_at = at;
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            // Due: the next step ticks or writes.
            return Poll::Ready(Ok(()));
        }
        self.woken = true;
        Poll::Pending
    }

    /// Hands in frames the socket already holds, while the core takes them.
    fn drain_buffered<P: Protocol>(
        &mut self,
        cx: &mut Context<'_>,
        drive: &mut Drive<P>,
        now: Instant,
    ) -> Result<(), SessionEnd> {
        for _ in 0..FEED_READ_BATCH {
            if !drive.may_read() {
                break;
            }
            let Poll::Ready(message) = Pin::new(&mut self.ws).poll_next(cx) else {
                break;
            };
            let read_at = self.read_at.of(&self.ws);
            drive.socket(message, read_at, now)?;
        }
        Ok(())
    }

    /// Writes the frame in flight, bounded by its timeout.
    fn poll_write<P: Protocol>(
        &mut self,
        cx: &mut Context<'_>,
        drive: &mut Drive<P>,
    ) -> Poll<Result<(), SessionEnd>> {
        let Some(writing) = &mut self.writing else {
            return Poll::Ready(Ok(()));
        };
        let outcome = match poll_send(&mut self.ws, &mut writing.message, cx) {
            Poll::Ready(Ok(())) => WriteOutcome::Done,
            Poll::Ready(Err(error)) => WriteOutcome::Failed(error),
            Poll::Pending => {
                if writing.deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                WriteOutcome::TimedOut(writing.timeout)
            }
        };
        let Some(writing) = self.writing.take() else {
            return Poll::Ready(Ok(()));
        };
        Poll::Ready(drive.written(writing.written, outcome, writing.now))
    }

    /// Waits for room in `queue` (the feed yields items meanwhile) or the
    /// timeout; reads nothing from the socket meanwhile.
    fn poll_blocked<P: Protocol>(
        &mut self,
        cx: &mut Context<'_>,
        drive: &mut Drive<P>,
        queue: Arc<Queue>,
        timeout: Duration,
    ) -> Poll<Result<(), SessionEnd>> {
        let blocked = self.blocked.get_or_insert_with(|| Blocked {
            space: Box::pin(async move { queue.wait_space().await }),
            deadline: Box::pin(sleep_until(Instant::now() + timeout)),
        });
        let made_room = if blocked.space.as_mut().poll(cx).is_ready() {
            true
        } else if blocked.deadline.as_mut().poll(cx).is_ready() {
            false
        } else {
            return Poll::Pending;
        };
        self.blocked = None;
        drive.blocked_ended(made_room, Instant::now());
        Poll::Ready(Ok(()))
    }

    /// The polite end after a close: flush the close reply tungstenite queued.
    pub(super) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.ws).poll_flush(cx).map(|_| ())
    }
}

/// Whether a command (or the end of every handle) is waiting, without
/// registering a waker.
fn commands_waiting(commands: &mpsc::Receiver<Command>) -> bool {
    !commands.is_empty() || commands.is_closed()
}

/// `SinkExt::send` as a poll: ready, hand over (once), flush.
fn poll_send(
    ws: &mut Ws,
    message: &mut Option<Message>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), tungstenite::Error>> {
    let mut ws = Pin::new(ws);
    if message.is_some() {
        match ws.as_mut().poll_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => return Poll::Pending,
        }
        if let Some(message) = message.take() {
            ws.as_mut().start_send(message)?;
        }
    }
    ws.poll_flush(cx)
}
