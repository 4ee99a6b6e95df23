//! The reconnect machine's decisions, sans-I/O: which attempt comes next,
//! how long to wait before it, and when to give up.
//!
//! Its calling contract (the inputs, each with the time it happened at, and
//! the one output, [`After`]) is written on [`ReconnectMachine`]. Publishing
//! (state, events, counters, logs) and waiting are the shells'
//! (`reconnect/mod.rs`), so the rules run the same under a fuzzer and on a
//! paused clock.
//!
//! The rules:
//! - The attempt number is the count of consecutive failed attempts plus one
//!   (see [`BackoffState`] for which outcomes count as failed).
//! - A session closed on request ends the machine; so does a permanent close
//!   (decided where the close frame was read, `SessionEnd::Fatal`).
//! - `max_attempts` consecutive failures give up with
//!   [`Error::Reconnect`], carrying the last error.
//! - Otherwise the delay is the backoff's (growth, the quick first retry,
//!   spacing), lengthened to the latest "not before" any hint asked for: the
//!   failure's own Retry-After, the backoff cap for a close 1013, or a hint
//!   the session saw ([`retry_hint`]). A hint is used once.

use std::time::Duration;

use tokio::time::Instant;

use crate::backoff::{retry_hint, Backoff, BackoffState, Outcome};
use crate::error::Error;
use crate::session::SessionEnd;

/// What comes after a session or a failed attempt: the machine's one
/// output, returned by the input that decides it, so there is nothing to
/// poll and nothing to forget but this value.
#[derive(Debug)]
#[must_use = "the driver must wait and attempt again, or stop"]
pub enum After {
    /// Wait this long, then attempt again.
    Retry(Duration),
    /// Stop: `None` after a close, else the terminal error.
    Exit(Option<Error>),
}

/// Attempt counting, the backoff and the pending retry hint.
///
/// # Calling contract
///
/// Written in the style of `SessionCore`'s (`session/core.rs`):
/// the machine takes inputs with the time they happened at and hands back
/// what the driver must do; it reads no clock, sleeps on nothing and
/// publishes nothing. Its driver is `Reconnect` (`reconnect/mod.rs`), which
/// both shells (the supervisor's `run_until_exit`, the feed's state machine)
/// call, and which adds the publishing (state, events, counters, logs); the
/// `reconnect_script` fuzz target drives the machine directly.
///
/// **Inputs**, once per attempt, in this order:
/// 1. [`attempt_started(at)`](Self::attempt_started): the attempt began at
///    `at` (the backoff spaces attempts from their starts). It may be handed
///    in when the attempt has finished, with the time it began; it must come
///    before that attempt's outcome.
/// 2. [`asked_to_wait(at)`](Self::asked_to_wait), any number of times,
///    before the outcome it should lengthen: something asked that the next
///    attempt start no earlier than `at`. The driver hands in the retry hint
///    the session saw (`SessionCore::take_retry_wait`, a venue
///    lockout); the latest `at` wins and is used by the next delay
///    only.
/// 3. The outcome, exactly one:
///    [`attempt_failed(error, now)`](Self::attempt_failed) (the token fetch,
///    connect, TLS or handshake failed), or
///    [`session_ended(end, healthy_for, worked, now)`](Self::session_ended)
///    (a connected session ended: its [`SessionEnd`], how long it was
///    connected, and `SessionCore::session_worked`,
///    read before the session core was told it is disconnected).
///
/// **Output.** Each outcome returns an [`After`], and it is the only
/// output:
/// - [`After::Retry(delay)`](After::Retry): wait `delay` (serving commands
///   offline meanwhile; a close requested during the wait stops at once),
///   then start the next attempt, numbered [`attempt`](Self::attempt).
/// - [`After::Exit(None)`](After::Exit): the session was closed on request;
///   stop.
/// - [`After::Exit(Some(error))`](After::Exit): stop, and end every stream
///   with `error` (a permanent close, or [`Error::Reconnect`] after
///   `max_attempts` consecutive failures, carrying the last error).
///
/// **Questions** change nothing: [`attempt`](Self::attempt) (the number of
/// the next attempt, for events and logs).
///
/// **No timers.** The machine stores no deadline; its one wake-up is the
/// delay it returns, which the driver turns into a sleep. So the session's
/// timer table and this machine never wait on each other: while a session
/// is up the machine is idle, and while the machine waits no session exists.
#[derive(Debug)]
pub struct ReconnectMachine {
    backoff: BackoffState,
    /// The backoff cap: what a close 1013 asks for (it names no duration).
    cap: Duration,
    /// The latest "not before" a hint asked for, until the next delay uses it.
    not_before: Option<Instant>,
}

impl ReconnectMachine {
    /// A machine under the `policy`.
    pub fn new(policy: Backoff) -> Self {
        ReconnectMachine {
            cap: policy.cap,
            backoff: BackoffState::new(policy),
            not_before: None,
        }
    }

    /// The number of the next attempt (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.backoff.failures().saturating_add(1)
    }

    /// An attempt started at `at`.
    pub fn attempt_started(&mut self, at: Instant) {
        self.backoff.attempt_started(at);
    }

    /// Something asked that the next attempt start no earlier than `at`.
    pub fn asked_to_wait(&mut self, at: Instant) {
        self.not_before = self.not_before.max(Some(at));
    }

    /// An attempt failed with `error` at `now`.
    pub fn attempt_failed(&mut self, error: Error, now: Instant) -> After {
        self.back_off(error, Outcome::AttemptFailed, now)
    }

    /// A session ended at `now` after `healthy_for` connected; `worked` if it
    /// answered every subscription it replayed.
    pub fn session_ended(
        &mut self,
        end: SessionEnd,
        healthy_for: Duration,
        worked: bool,
        now: Instant,
    ) -> After {
        match end {
            SessionEnd::Closed => After::Exit(None),
            SessionEnd::Fatal(error) => After::Exit(Some(error)),
            SessionEnd::Lost(error) => {
                let outcome = Outcome::SessionEnded {
                    healthy_for,
                    worked,
                };
                self.back_off(error, outcome, now)
            }
        }
    }

    /// Records the outcome; the next delay, or giving up.
    fn back_off(&mut self, error: Error, outcome: Outcome, now: Instant) -> After {
        if let Some(hint) = retry_hint(&error, self.cap) {
            tracing::info!(
                ?hint,
                "the venue asked to wait; lengthening the next backoff delay"
            );
            // Retry-After is capped where it is parsed and the cap by the
            // config; a year stands in for an instant past the clock's end.
            let year = Duration::from_secs(365 * 24 * 3600);
            let at = now.checked_add(hint).or_else(|| now.checked_add(year));
            self.asked_to_wait(at.unwrap_or(now));
        }
        let Some(delay) = self.backoff.next_delay(outcome, now) else {
            return After::Exit(Some(Error::Reconnect {
                attempts: self.backoff.failures(),
                last_error: Box::new(error),
            }));
        };
        let asked = self
            .not_before
            .take()
            .map(|at| at.saturating_duration_since(now))
            .unwrap_or_default();
        After::Retry(delay.max(asked))
    }
}
