//! The supervisor: the one task that owns the socket.
//!
//! Handles ([`Client`](crate::Client), [`Subscription`](crate::Subscription))
//! never touch the socket; they send [`Command`]s over a bounded channel and get
//! answers on oneshot channels (the actor pattern). Reconnecting therefore never
//! happens inside a reader that it would have to cancel.
//!
//! The state machine, top to bottom:
//!
//! ```text
//!            +-------------------------------------------------+
//!            v                                                 |
//!   Connecting --ok--> Session (shell.rs) ----lost--> Backoff --+
//!       |                 |        |                    |
//!       | failed          | close  | permanent close,   | attempts exhausted
//!       +---> Backoff     v        v fatal error        v
//!                       Closed   Failed(error)        Failed(Reconnect { .. })
//! ```
//!
//! Every decision inside a session (and about commands served while offline)
//! is made by the sans-I/O [`SessionCore`](crate::session::SessionCore); this
//! module owns the task's life around it and `shell.rs` the I/O of one session.
//!
//! While not connected, commands are still served: subscriptions are recorded
//! (and replayed once connected), one-off sends and requests fail fast, and
//! `close()` ends the task at once. When the task ends, every stream receives
//! the terminal error (if any) as its last item and ends, and
//! `Client::closed()` resolves: nothing is left waiting.

pub(crate) mod attempt;
pub(crate) mod drive;
mod fetches;
pub(crate) mod reconnect;
pub(crate) mod recorded_settings;
mod replies;
mod shared;
mod shell;
mod socket_failure;
pub(crate) mod tap;
mod write_outcome;

use std::sync::Arc;

use futures::future::{self, Either};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backoff::Outcome;
use crate::config::Config;
use crate::error::Error;
use crate::events::{ConnectionState, Event};
use crate::protocol::Protocol;
use crate::queue::Queue;
use crate::session::SessionCore;
use drive::Drive;
use reconnect::{After, Reconnect};

// The shells name it here; it lives below the handles (`command.rs`) so a
// stream can send one without importing the supervisor.
pub(crate) use crate::command::Command;
pub(crate) use shared::Shared;

/// How the supervisor's life ends.
enum Exit {
    /// `close()` was called, or every handle was dropped.
    Closed,
    /// Reconnecting was given up; every stream gets this error.
    Failed(Error),
}

pub(crate) struct Supervisor<P> {
    config: Arc<Config>,
    /// The session core and the callers waiting on it (`drive.rs`: the rules
    /// this task shares with the feed).
    drive: Drive<P>,
    commands: mpsc::Receiver<Command>,
    /// Attempts, backoff and the TLS config (`reconnect.rs`, shared with the feed).
    reconnect: Reconnect,
}

impl<P: Protocol> Supervisor<P> {
    pub(crate) fn new(
        config: Config,
        protocol: P,
        commands: mpsc::Receiver<Command>,
        shared: Arc<Shared>,
        inbound: Arc<Queue>,
    ) -> Self {
        let config = Arc::new(config);
        let tap = config.recorder.as_ref().map(|recorder| {
            let snapshot_source = protocol.book_snapshot_source().is_some();
            tap::Tap::start(recorder, &config, protocol.name(), snapshot_source)
        });
        let core = SessionCore::new(
            Arc::clone(&config),
            protocol,
            Arc::clone(&shared.stats),
            inbound,
        );
        Supervisor {
            reconnect: Reconnect::new(Arc::clone(&config)),
            config,
            drive: Drive::new(core, shared, tap),
            commands,
        }
    }

    /// The parts the [`Feed`](crate::Feed) drives in the consumer's task
    /// instead of this task: the config, the core with its callers, the
    /// command channel and the reconnect machine.
    pub(crate) fn into_parts(self) -> (Arc<Config>, Drive<P>, mpsc::Receiver<Command>, Reconnect) {
        (self.config, self.drive, self.commands, self.reconnect)
    }

    /// The task body.
    ///
    /// Runs inside the client's connection span (see `Client::spawn`), so
    /// every log line of this connection carries its venue, redacted URL,
    /// name and current attempt.
    pub(crate) async fn run(mut self) {
        #[cfg(feature = "metrics")]
        let (shared, interval) = (
            Arc::clone(self.drive.shared()),
            self.config.metrics_interval,
        );
        #[cfg(feature = "metrics")]
        let exit = crate::metrics::publish_while(
            interval,
            || shared.publish_metrics(),
            self.run_until_exit(),
        )
        .await;
        #[cfg(not(feature = "metrics"))]
        let exit = self.run_until_exit().await;
        self.finish(exit);
        #[cfg(feature = "metrics")]
        shared.publish_metrics();
    }

    async fn run_until_exit(&mut self) -> Exit {
        loop {
            let attempted = self.reconnect.start(&self.drive);
            let attempted = match self.serve_offline(attempted).await {
                Offline::Done(attempted) => attempted,
                Offline::Close => return Exit::Closed,
            };
            let after = match self.reconnect.finished(&mut self.drive, attempted) {
                Ok(ws) => {
                    let connected_at = Instant::now();
                    let close_timeout = self.config.close_timeout;
                    let (end, worked) =
                        shell::run(&mut self.drive, &mut self.commands, close_timeout, ws).await;
                    let healthy_for = connected_at.elapsed();
                    self.reconnect
                        .session_ended(&mut self.drive, end, healthy_for, worked)
                }
                Err(error) => {
                    self.reconnect
                        .back_off(&mut self.drive, error, Outcome::AttemptFailed)
                }
            };
            match after {
                After::Exit(None) => return Exit::Closed,
                After::Exit(Some(error)) => return Exit::Failed(error),
                After::Retry(delay) => {
                    if let Offline::Close = self.serve_offline(tokio::time::sleep(delay)).await {
                        return Exit::Closed;
                    }
                }
            }
        }
    }

    /// Serves commands until `until` completes or close is requested.
    async fn serve_offline<T>(
        &mut self,
        until: impl std::future::Future<Output = T>,
    ) -> Offline<T> {
        serve_offline_with(until, &mut self.drive, &mut self.commands).await
    }

    /// Ends every stream (with the terminal error, if any) and publishes the result.
    fn finish(mut self, exit: Exit) {
        let error = match exit {
            Exit::Closed => None,
            Exit::Failed(error) => Some(error),
        };
        finish(&mut self.drive, &mut self.commands, error);
    }
}

/// What happened while serving commands offline.
enum Offline<T> {
    /// The awaited future finished.
    Done(T),
    /// Close was requested (or every handle is gone).
    Close,
}

/// Waits for `until` while handing every command to the core, which records
/// subscriptions and fails what needs a socket.
async fn serve_offline_with<T, P: Protocol>(
    until: impl std::future::Future<Output = T>,
    drive: &mut Drive<P>,
    commands: &mut mpsc::Receiver<Command>,
) -> Offline<T> {
    let mut until = std::pin::pin!(until);
    loop {
        let command = std::pin::pin!(commands.recv());
        let next = future::select(until.as_mut(), command).await;
        match next {
            Either::Left((value, _)) => return Offline::Done(value),
            Either::Right((command, _)) => {
                if drive.serve_offline(command, Instant::now()) {
                    return Offline::Close;
                }
            }
        }
    }
}

/// Ends a shell's life (both shells end this way): every stream ends (with
/// the terminal error, if any), every waiting caller and every command still
/// queued is answered, and the result is published.
pub(crate) fn finish<P: Protocol>(
    drive: &mut Drive<P>,
    commands: &mut mpsc::Receiver<Command>,
    error: Option<Error>,
) {
    drive.finish(error.as_ref(), Instant::now());
    let answer = error.clone().unwrap_or(Error::ClientClosed);
    // Answer whatever is still queued so no caller waits on a dropped task.
    commands.close();
    while let Ok(command) = commands.try_recv() {
        refuse(command, answer.clone());
    }
    let shared = drive.shared();
    shared.set_state(ConnectionState::Closed);
    shared.emit(Event::Closed {
        error: error.clone(),
    });
    shared.done.send_replace(Some(match error {
        Some(error) => Err(error),
        None => Ok(()),
    }));
}

/// Answers a command with `error` without running it.
fn refuse(command: Command, error: Error) {
    match command {
        Command::Subscribe(subs) => {
            for sub in subs {
                sub.queue.finish(Some(error.clone()));
                let _ = sub.ready.send(Err(error.clone()));
            }
        }
        Command::Unsubscribe { reply, .. } => {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
        }
        Command::Send { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        Command::Request { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        Command::Close => {}
    }
}
