//! The reconnect machine's bookkeeping as synchronous steps, shared by both
//! shells: what starting an attempt, its result, the end of a session and a
//! backoff publish (state, events, counters, logs). What they decide (the
//! attempt number, the next delay, a retry hint, giving up) is the sans-I/O
//! [`ReconnectMachine`] (`machine.rs`), which the fuzzer drives too.
//!
//! The waiting (the attempt future, the backoff sleep, serving commands
//! meanwhile) is the shell's: the supervisor awaits, the feed polls.

pub(crate) mod machine;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::attempt::{attempt, Attempted};
use super::drive::Drive;
use crate::backoff::Outcome;
use crate::config::Config;
use crate::connect::Ws;
use crate::error::Error;
use crate::events::{ConnectionState, Event};
use crate::protocol::Protocol;
use crate::session::SessionEnd;

pub(crate) use machine::After;
use machine::ReconnectMachine;

/// The reconnect machine with what publishing its steps needs, and the TLS
/// config kept across attempts.
pub(crate) struct Reconnect {
    config: Arc<Config>,
    machine: ReconnectMachine,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Reconnect {
    pub(crate) fn new(config: Arc<Config>) -> Self {
        Reconnect {
            machine: ReconnectMachine::new(config.backoff.clone()),
            config,
            tls: None,
        }
    }

    /// The number of the next attempt.
    pub(crate) fn attempt(&self) -> u32 {
        self.machine.attempt()
    }

    /// Announces the next attempt and returns it as a future that owns
    /// what it needs.
    pub(crate) fn start<P: Protocol>(
        &self,
        drive: &Drive<P>,
    ) -> impl Future<Output = Attempted> + Send + 'static {
        let attempt_no = self.attempt();
        tracing::Span::current().record("attempt", attempt_no);
        let shared = drive.shared();
        shared.set_state(ConnectionState::Connecting);
        shared.emit(Event::Connecting {
            attempt: attempt_no,
        });
        attempt(Arc::clone(&self.config), self.tls.clone(), attempt_no)
    }

    /// Takes an attempt's result: the socket (announced as connected), or
    /// the error (announced as a failed attempt).
    pub(crate) fn finished<P: Protocol>(
        &mut self,
        drive: &mut Drive<P>,
        attempted: Attempted,
    ) -> Result<Ws, Error> {
        let attempt = self.attempt();
        self.machine.attempt_started(attempted.started);
        self.tls = attempted.tls;
        if let Some(token) = attempted.token {
            drive.core.on_token(&token);
        }
        let shared = drive.shared();
        match attempted.result {
            Ok(ws) => {
                let counters = &shared.stats.counters;
                if counters.connects.get() > 0 {
                    counters.reconnects.bump();
                }
                counters.connects.bump();
                tracing::info!(url = %self.config.redacted_url, attempt, "connected");
                shared.set_state(ConnectionState::Connected);
                shared.emit(Event::Connected { attempt });
                Ok(ws)
            }
            Err(error) => {
                tracing::debug!(attempt, %error, "connection attempt failed");
                shared.emit(Event::AttemptFailed {
                    attempt,
                    error: error.clone(),
                });
                Err(error)
            }
        }
    }

    /// A session ended (`healthy_for` after it connected; `worked` if it
    /// answered every replayed subscription): what next.
    pub(crate) fn session_ended<P: Protocol>(
        &mut self,
        drive: &mut Drive<P>,
        end: SessionEnd,
        healthy_for: Duration,
        worked: bool,
    ) -> After {
        match &end {
            SessionEnd::Closed => {}
            SessionEnd::Fatal(error) => {
                tracing::warn!(%error, "connection closed for good");
                drive.shared().emit(Event::Disconnected {
                    cause: error.clone(),
                });
            }
            SessionEnd::Lost(error) => {
                tracing::info!(%error, "connection lost");
                drive.shared().emit(Event::Disconnected {
                    cause: error.clone(),
                });
            }
        }
        let now = self.take_session_hint(drive);
        let after = self.machine.session_ended(end, healthy_for, worked, now);
        self.publish(drive, after)
    }

    /// Records how the attempt ended and returns the next delay, or gives up.
    pub(crate) fn back_off<P: Protocol>(
        &mut self,
        drive: &mut Drive<P>,
        error: Error,
        outcome: Outcome,
    ) -> After {
        let now = self.take_session_hint(drive);
        let after = match outcome {
            Outcome::AttemptFailed => self.machine.attempt_failed(error, now),
            Outcome::SessionEnded {
                healthy_for,
                worked,
            } => self
                .machine
                .session_ended(SessionEnd::Lost(error), healthy_for, worked, now),
        };
        self.publish(drive, after)
    }

    /// Hands the machine the wait a hint seen during the session asks for
    /// (a venue lockout); returns the time of this step.
    fn take_session_hint<P: Protocol>(&mut self, drive: &mut Drive<P>) -> Instant {
        let now = Instant::now();
        let wait = drive.take_retry_wait(now);
        if !wait.is_zero() {
            self.machine
                .asked_to_wait(now.checked_add(wait).unwrap_or(now));
        }
        now
    }

    /// Publishes what comes next: the backoff, or giving up.
    fn publish<P: Protocol>(&self, drive: &Drive<P>, after: After) -> After {
        match &after {
            After::Retry(delay) => {
                let shared = drive.shared();
                shared.set_state(ConnectionState::Backoff);
                shared.emit(Event::ReconnectScheduled {
                    attempt: self.attempt(),
                    delay: *delay,
                });
            }
            After::Exit(Some(Error::Reconnect {
                attempts,
                last_error,
            })) => {
                tracing::warn!(attempts, error = %last_error, "giving up reconnecting");
            }
            After::Exit(_) => {}
        }
        after
    }
}
