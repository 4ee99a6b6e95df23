//! The feed's connection life, polled: connecting, connected, backing off,
//! finished. The same steps as the spawned supervisor's `run_until_exit`
//! (`supervisor/reconnect.rs` holds the bookkeeping both call), with the
//! waiting done by polling boxed futures instead of awaiting them.
//!
//! While not connected, commands are served as in the spawned mode
//! (subscriptions are recorded and replayed on the next connection; sends
//! and requests fail at once; close ends the feed).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tokio::time::{sleep, sleep_until, Duration, Instant, Sleep};

use super::live::Live;
use crate::backoff::Outcome;
use crate::config::Config;
use crate::error::Error;
use crate::events::{ConnectionState, Event};
use crate::protocol::Protocol;
use crate::session::SessionEnd;
use crate::supervisor::attempt::Attempted;
use crate::supervisor::drive::Drive;
use crate::supervisor::reconnect::{After, Reconnect};
use crate::supervisor::{finish, Command};

/// A connection attempt in flight.
type Connecting = Pin<Box<dyn Future<Output = Attempted> + Send>>;

/// Where the connection's life stands.
enum Phase {
    /// Not started yet: the first poll starts the first attempt.
    Idle,
    /// An attempt is in flight.
    Connecting(Connecting),
    /// A session is up.
    Live(Box<Live>),
    /// The peer closed: flushing our close reply (bounded) before going on.
    Flushing {
        live: Box<Live>,
        end: SessionEnd,
        deadline: Pin<Box<Sleep>>,
    },
    /// Waiting out the backoff delay.
    Backoff(Pin<Box<Sleep>>),
    /// The feed has finished; every stream has its end.
    Finished,
}

/// What one step of the machine did.
pub(super) enum Step {
    /// Progress: yield what was delivered, then step again.
    Progress,
    /// Waiting; the waker is registered.
    Pending,
    /// Finished (close, give-up, fatal close).
    Finished,
}

/// The reconnect machine around one [`Drive`].
pub(super) struct Machine<P> {
    config: Arc<Config>,
    drive: Drive<P>,
    commands: mpsc::Receiver<Command>,
    reconnect: Reconnect,
    phase: Phase,
}

impl<P: Protocol> Machine<P> {
    pub(super) fn new(
        config: Arc<Config>,
        drive: Drive<P>,
        commands: mpsc::Receiver<Command>,
        reconnect: Reconnect,
    ) -> Self {
        Machine {
            config,
            drive,
            commands,
            reconnect,
            phase: Phase::Idle,
        }
    }

    pub(super) fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished)
    }

    /// One step of whatever phase the connection is in.
    pub(super) fn poll_step(&mut self, cx: &mut Context<'_>) -> Step {
        match &mut self.phase {
            Phase::Idle => {
                self.start_attempt();
                Step::Progress
            }
            Phase::Connecting(attempt) => {
                if let Poll::Ready(attempted) = attempt.as_mut().poll(cx) {
                    self.on_attempted(attempted);
                    return Step::Progress;
                }
                self.serve_offline(cx)
            }
            Phase::Live(live) => match live.poll_step(cx, &mut self.drive, &mut self.commands) {
                Poll::Ready(Ok(())) => Step::Progress,
                Poll::Pending => Step::Pending,
                Poll::Ready(Err(end)) => {
                    self.on_session_end(end);
                    Step::Progress
                }
            },
            Phase::Flushing { live, deadline, .. } => {
                if live.poll_flush(cx).is_pending() && deadline.as_mut().poll(cx).is_pending() {
                    return Step::Pending;
                }
                // `Idle` holds the place until `after_session` sets the next phase.
                if let Phase::Flushing { live, end, .. } =
                    std::mem::replace(&mut self.phase, Phase::Idle)
                {
                    self.after_session(&live, end);
                }
                Step::Progress
            }
            Phase::Backoff(delay) => {
                if delay.as_mut().poll(cx).is_ready() {
                    self.start_attempt();
                    return Step::Progress;
                }
                self.serve_offline(cx)
            }
            Phase::Finished => Step::Finished,
        }
    }

    fn start_attempt(&mut self) {
        self.phase = Phase::Connecting(Box::pin(self.reconnect.start(&self.drive)));
    }

    fn on_attempted(&mut self, attempted: Attempted) {
        match self.reconnect.finished(&mut self.drive, attempted) {
            Ok(ws) => {
                let now = Instant::now();
                self.drive.connected(now, std::time::SystemTime::now());
                self.phase = Phase::Live(Box::new(Live::new(ws, now)));
            }
            Err(error) => {
                let after = self
                    .reconnect
                    .back_off(&mut self.drive, error, Outcome::AttemptFailed);
                self.follow(after);
            }
        }
    }

    /// The session ended: after a close by the peer, flush our reply first.
    fn on_session_end(&mut self, end: SessionEnd) {
        let Phase::Live(live) = std::mem::replace(&mut self.phase, Phase::Idle) else {
            return;
        };
        if let SessionEnd::Lost(Error::Closed { .. }) | SessionEnd::Fatal(Error::Closed { .. }) =
            &end
        {
            let bound = self.config.close_timeout.min(Duration::from_secs(1));
            self.phase = Phase::Flushing {
                live,
                end,
                deadline: Box::pin(sleep_until(Instant::now() + bound)),
            };
            return;
        }
        self.after_session(&live, end);
    }

    fn after_session(&mut self, live: &Live, end: SessionEnd) {
        let worked = self.drive.session_worked();
        self.drive.disconnected(&end, Instant::now());
        let healthy_for = live.connected_at.elapsed();
        let after = self
            .reconnect
            .session_ended(&mut self.drive, end, healthy_for, worked);
        self.follow(after);
    }

    fn follow(&mut self, after: After) {
        match after {
            After::Retry(delay) => self.phase = Phase::Backoff(Box::pin(sleep(delay))),
            After::Exit(error) => self.finish(error),
        }
    }

    /// Serves one waiting command while no connection is up.
    fn serve_offline(&mut self, cx: &mut Context<'_>) -> Step {
        match self.commands.poll_recv(cx) {
            Poll::Pending => Step::Pending,
            Poll::Ready(command) => {
                if self.drive.serve_offline(command, Instant::now()) {
                    self.finish(None);
                }
                Step::Progress
            }
        }
    }

    /// The feed is dropped: finish as after a close, or, while a panic
    /// unwinds through it, end every stream with [`Error::Panicked`] without
    /// touching the core (as the spawned mode's panic guard does).
    pub(super) fn abandon(&mut self, panicking: bool) {
        if self.is_finished() {
            return;
        }
        if !panicking {
            self.finish(None);
            return;
        }
        self.phase = Phase::Finished;
        let error = Error::Panicked;
        let shared = self.drive.shared();
        shared.stats.finish_all(&error);
        shared.set_state(ConnectionState::Closed);
        shared.emit(Event::Closed {
            error: Some(error.clone()),
        });
        shared.done.send_replace(Some(Err(error)));
    }

    /// Ends the feed: every stream ends (with `error`, if any), every caller
    /// is answered, `closed()` resolves.
    pub(super) fn finish(&mut self, error: Option<Error>) {
        if self.is_finished() {
            return;
        }
        if let Phase::Live(_) | Phase::Flushing { .. } =
            std::mem::replace(&mut self.phase, Phase::Finished)
        {
            // Dropped mid-session: the connection goes with the feed.
            self.drive.disconnected(&SessionEnd::Closed, Instant::now());
        }
        finish(&mut self.drive, &mut self.commands, error);
        #[cfg(feature = "metrics")]
        self.drive.shared().publish_metrics();
    }
}
