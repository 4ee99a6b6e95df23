//! The reconnect machine's bookkeeping as synchronous steps, shared by both
//! shells: what starting an attempt, its result, the end of a session and a
//! backoff publish (state, events, counters, logs) and decide (the next
//! delay from [`BackoffState`], a retry hint, giving up).
//!
//! The waiting (the attempt future, the backoff sleep, serving commands
//! meanwhile) is the shell's: the supervisor awaits, the feed polls.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::attempt::{attempt, Attempted};
use super::drive::Drive;
use crate::backoff::{BackoffState, Outcome};
use crate::config::Config;
use crate::connect::Ws;
use crate::error::Error;
use crate::events::{ConnectionState, Event};
use crate::protocol::Protocol;
use crate::session::SessionEnd;

/// What comes after a session or a failed attempt.
pub(crate) enum After {
    /// Wait this long, then attempt again.
    Retry(Duration),
    /// Stop: `None` after a close, else the terminal error.
    Exit(Option<Error>),
}

/// Attempt counting, the backoff and the TLS config kept across attempts.
pub(crate) struct Reconnect {
    config: Arc<Config>,
    backoff: BackoffState,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Reconnect {
    pub(crate) fn new(config: Arc<Config>) -> Self {
        Reconnect {
            backoff: BackoffState::new(config.backoff.clone()),
            config,
            tls: None,
        }
    }

    /// The number of the next attempt.
    pub(crate) fn attempt(&self) -> u32 {
        self.backoff.failures() + 1
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
        self.backoff.attempt_started(attempted.started);
        self.tls = attempted.tls;
        if let Some(token) = attempted.token {
            drive.core.protocol_mut().set_token(&token);
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
        match end {
            SessionEnd::Closed => After::Exit(None),
            SessionEnd::Fatal(error) => {
                tracing::warn!(%error, "connection closed for good");
                drive.shared().emit(Event::Disconnected {
                    cause: error.clone(),
                });
                After::Exit(Some(error))
            }
            SessionEnd::Lost(error) => {
                tracing::info!(%error, "connection lost");
                drive.shared().emit(Event::Disconnected {
                    cause: error.clone(),
                });
                let outcome = Outcome::SessionEnded {
                    healthy_for,
                    worked,
                };
                self.back_off(drive, error, outcome)
            }
        }
    }

    /// Records how the attempt or session ended and returns the next delay,
    /// or gives up. A retry hint (from this failure or one seen during the
    /// session) lengthens the delay.
    pub(crate) fn back_off<P: Protocol>(
        &mut self,
        drive: &mut Drive<P>,
        error: Error,
        outcome: Outcome,
    ) -> After {
        let now = Instant::now();
        drive.note_retry_hint(&error, now);
        let Some(delay) = self.backoff.next_delay(outcome, now) else {
            let attempts = self.backoff.failures();
            tracing::warn!(attempts, %error, "giving up reconnecting");
            return After::Exit(Some(Error::Reconnect {
                attempts,
                last_error: Box::new(error),
            }));
        };
        let delay = delay.max(drive.take_retry_wait(now));
        let attempt = self.attempt();
        let shared = drive.shared();
        shared.set_state(ConnectionState::Backoff);
        shared.emit(Event::ReconnectScheduled { attempt, delay });
        After::Retry(delay)
    }
}
