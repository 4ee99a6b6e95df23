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

mod replies;
mod shell;

use std::sync::{Arc, OnceLock};

use futures::future::{self, Either};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::backoff::{BackoffState, Outcome};
use crate::config::Config;
use crate::connect::{open, Ws};
use crate::error::{Error, Operation};
use crate::events::{ConnectionState, Event};
use crate::message::Frame;
use crate::protocol::{Protocol, Request, Topic};
use crate::queue::Queue;
use crate::session::{SessionCore, SessionEnd};
use crate::stats::{InFlight, StatsHub};
use crate::subscription::ClientId;
use replies::{Replies, Served};

/// A message from a handle to the supervisor.
pub(crate) enum Command {
    /// Register subscriptions; each `ready` resolves at its first ack or failure.
    Subscribe(Vec<NewSubscription>),
    /// End a subscription. `reply` is `None` when sent from `Drop`.
    Unsubscribe {
        client_id: ClientId,
        reply: Option<oneshot::Sender<Result<(), Error>>>,
    },
    /// Send a one-off frame (never replayed on another connection).
    Send {
        message: tokio_tungstenite::tungstenite::Message,
        /// Whether it spends the outbound rate limit's budget.
        rate_limited: bool,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// Send a request and wait for the response with its request id.
    Request {
        request: Request,
        reply: oneshot::Sender<Result<Frame, Error>>,
    },
    /// Close the connection cleanly and end the task.
    Close,
}

pub(crate) struct NewSubscription {
    pub(crate) client_id: ClientId,
    pub(crate) topic: Topic,
    pub(crate) queue: Arc<Queue>,
    pub(crate) ready: oneshot::Sender<Result<(), Error>>,
    /// Counts it as in flight until the core has registered it.
    pub(crate) in_flight: InFlight,
}

/// What the supervisor shares with every handle.
pub(crate) struct Shared {
    /// Created by the first [`Client::events`](crate::Client::events) call: a
    /// broadcast channel allocates all its slots up front (about 160 KiB at the
    /// default capacity), which a connection nobody observes should not pay.
    pub(crate) events: OnceLock<broadcast::Sender<Event>>,
    pub(crate) event_capacity: usize,
    pub(crate) state: watch::Sender<ConnectionState>,
    /// `None` while running; the final result once the task has finished.
    pub(crate) done: watch::Sender<Option<Result<(), Error>>>,
    pub(crate) stats: Arc<StatsHub>,
    /// The handles the counters are published to (see `metrics.rs`).
    #[cfg(feature = "metrics")]
    pub(crate) metrics: crate::metrics::Publisher,
}

impl Shared {
    /// Moves to `state` (and publishes it as a gauge with the `metrics` feature).
    pub(crate) fn set_state(&self, state: ConnectionState) {
        self.state.send_replace(state);
        #[cfg(feature = "metrics")]
        self.metrics.state(state);
    }

    /// Publishes a snapshot of the counters to the metrics recorder.
    #[cfg(feature = "metrics")]
    pub(crate) fn publish_metrics(&self) {
        self.metrics
            .publish(&self.stats.snapshot(), *self.state.borrow());
    }

    pub(crate) fn emit(&self, event: Event) {
        // No receiver is fine: events are optional to observe.
        if let Some(events) = self.events.get() {
            let _ = events.send(event);
        }
    }

    /// A receiver of every event emitted from now on.
    pub(crate) fn subscribe_events(&self) -> broadcast::Receiver<Event> {
        self.events
            .get_or_init(|| broadcast::channel(self.event_capacity).0)
            .subscribe()
    }
}

/// How the supervisor's life ends.
enum Exit {
    /// `close()` was called, or every handle was dropped.
    Closed,
    /// Reconnecting was given up; every stream gets this error.
    Failed(Error),
}

pub(crate) struct Supervisor<P> {
    config: Arc<Config>,
    /// Every decision of a session, and of commands served while offline.
    core: SessionCore<P>,
    /// The callers waiting on the core's answers.
    replies: Replies,
    commands: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
    backoff: BackoffState,
    tls: Option<Arc<rustls::ClientConfig>>,
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
        let core = SessionCore::new(
            Arc::clone(&config),
            protocol,
            Arc::clone(&shared.stats),
            inbound,
        );
        Supervisor {
            backoff: BackoffState::new(config.backoff.clone()),
            config,
            core,
            replies: Replies::default(),
            commands,
            shared,
            tls: None,
        }
    }

    /// The task body.
    ///
    /// Runs inside the client's connection span (see `Client::spawn`), so
    /// every log line of this connection carries its venue, redacted URL,
    /// name and current attempt.
    pub(crate) async fn run(mut self) {
        #[cfg(feature = "metrics")]
        let (shared, interval) = (Arc::clone(&self.shared), self.config.metrics_interval);
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
            let attempt = self.backoff.failures() + 1;
            tracing::Span::current().record("attempt", attempt);
            self.set_state(ConnectionState::Connecting);
            self.shared.emit(Event::Connecting { attempt });

            let ws = match self.connect_serving_commands(attempt).await {
                Offline::Done(Ok(ws)) => ws,
                Offline::Done(Err(error)) => {
                    tracing::debug!(attempt, %error, "connection attempt failed");
                    self.shared.emit(Event::AttemptFailed {
                        attempt,
                        error: error.clone(),
                    });
                    match self.back_off(error, Outcome::AttemptFailed).await {
                        Some(exit) => return exit,
                        None => continue,
                    }
                }
                Offline::Close => return Exit::Closed,
            };

            let counters = &self.shared.stats.counters;
            if counters.connects.get() > 0 {
                counters.reconnects.bump();
            }
            counters.connects.bump();
            tracing::info!(url = %self.config.redacted_url, attempt, "connected");
            self.set_state(ConnectionState::Connected);
            self.shared.emit(Event::Connected { attempt });

            let connected_at = Instant::now();
            let (end, worked) = shell::run(self, ws).await;
            let outcome = Outcome::SessionEnded {
                healthy_for: connected_at.elapsed(),
                worked,
            };

            match end {
                SessionEnd::Closed => return Exit::Closed,
                SessionEnd::Fatal(error) => {
                    tracing::warn!(%error, "connection closed for good");
                    self.shared.emit(Event::Disconnected {
                        cause: error.clone(),
                    });
                    return Exit::Failed(error);
                }
                SessionEnd::Lost(error) => {
                    tracing::info!(%error, "connection lost");
                    self.shared.emit(Event::Disconnected {
                        cause: error.clone(),
                    });
                    if let Some(exit) = self.back_off(error, outcome).await {
                        return exit;
                    }
                }
            }
        }
    }

    /// Records how the attempt or session ended and waits out the next delay,
    /// or gives up. A retry hint (from this failure or one seen during the
    /// session) lengthens the delay.
    async fn back_off(&mut self, error: Error, outcome: Outcome) -> Option<Exit> {
        self.note_retry_hint(&error);
        let Some(delay) = self.backoff.next_delay(outcome, Instant::now()) else {
            let attempts = self.backoff.failures();
            tracing::warn!(attempts, %error, "giving up reconnecting");
            return Some(Exit::Failed(Error::Reconnect {
                attempts,
                last_error: Box::new(error),
            }));
        };
        let hinted = self.core.take_retry_wait(Instant::now());
        let delay = delay.max(hinted);
        let attempt = self.backoff.failures() + 1;
        self.set_state(ConnectionState::Backoff);
        self.shared
            .emit(Event::ReconnectScheduled { attempt, delay });
        let sleep = tokio::time::sleep(delay);
        match self.serve_offline(sleep).await {
            Offline::Done(()) => None,
            Offline::Close => Some(Exit::Closed),
        }
    }

    /// Remembers how long `error` asks us to wait before the next attempt
    /// (see [`SessionCore::note_retry_hint`]).
    fn note_retry_hint(&mut self, error: &Error) {
        self.core.note_retry_hint(error, Instant::now());
    }

    /// One connection attempt (token source, connector, TLS, WebSocket
    /// handshake) bounded by the connect timeout, while commands keep being served.
    async fn connect_serving_commands(&mut self, attempt: u32) -> Offline<Result<Ws, Error>> {
        if let Some(limiter) = self.config.connect_limiter.clone() {
            // A pool's members share one limiter: wait for this attempt's slot.
            if let Offline::Close = self.serve_offline(limiter.acquire()).await {
                return Offline::Close;
            }
        }
        // The attempt starts now: the backoff spaces the next ones from here.
        self.backoff.attempt_started(Instant::now());
        let timeout = self.config.connect_timeout;
        if let Some(source) = self.config.token_source.clone() {
            let fetched = self
                .serve_offline(tokio::time::timeout(timeout, source.token()))
                .await;
            match fetched {
                Offline::Close => return Offline::Close,
                Offline::Done(Ok(Ok(token))) => self.core.protocol_mut().set_token(&token),
                Offline::Done(Ok(Err(source))) => {
                    return Offline::Done(Err(Error::Token {
                        attempts: attempt,
                        source: Arc::from(source),
                    }))
                }
                Offline::Done(Err(_)) => {
                    return Offline::Done(Err(Error::Timeout {
                        operation: Operation::Connect,
                        timeout,
                    }))
                }
            }
        }
        // Boxed: the TLS and handshake state is large and needed only while
        // connecting; inline, it would enlarge the task for the connection's life.
        let open = Box::pin(open(&self.config, &mut self.tls, attempt));
        let bounded = async move {
            match tokio::time::timeout(timeout, open).await {
                Ok(result) => result,
                Err(_) => Err(Error::Timeout {
                    operation: Operation::Connect,
                    timeout,
                }),
            }
        };
        // `open` borrows config and tls only; commands are served on the side.
        let (core, replies, shared, commands) = (
            &mut self.core,
            &mut self.replies,
            &self.shared,
            &mut self.commands,
        );
        serve_offline_with(bounded, core, replies, shared, commands).await
    }

    /// Serves commands until `until` completes or close is requested.
    async fn serve_offline<T>(
        &mut self,
        until: impl std::future::Future<Output = T>,
    ) -> Offline<T> {
        serve_offline_with(
            until,
            &mut self.core,
            &mut self.replies,
            &self.shared,
            &mut self.commands,
        )
        .await
    }

    /// Publishes the core's actions (events, replies).
    fn apply(&mut self) {
        self.replies.apply(&mut self.core, &self.shared);
    }

    fn set_state(&self, state: ConnectionState) {
        self.shared.set_state(state);
    }

    /// Ends every stream (with the terminal error, if any) and publishes the result.
    fn finish(mut self, exit: Exit) {
        let error = match exit {
            Exit::Closed => None,
            Exit::Failed(error) => Some(error),
        };
        self.core.finish(error.as_ref(), Instant::now());
        self.apply();
        let answer = error.clone().unwrap_or(Error::ClientClosed);
        self.replies.fail_all(&answer);
        // Answer whatever is still queued so no caller waits on a dropped task.
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            refuse(command, answer.clone());
        }
        self.set_state(ConnectionState::Closed);
        self.shared.emit(Event::Closed {
            error: error.clone(),
        });
        self.shared.done.send_replace(Some(match error {
            Some(error) => Err(error),
            None => Ok(()),
        }));
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
    core: &mut SessionCore<P>,
    replies: &mut Replies,
    shared: &Shared,
    commands: &mut mpsc::Receiver<Command>,
) -> Offline<T> {
    let mut until = std::pin::pin!(until);
    loop {
        let command = std::pin::pin!(commands.recv());
        let next = future::select(until.as_mut(), command).await;
        match next {
            Either::Left((value, _)) => return Offline::Done(value),
            Either::Right((command, _)) => {
                let served = replies.serve(command, core);
                replies.apply(core, shared);
                if let Served::Close = served {
                    return Offline::Close;
                }
            }
        }
    }
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
