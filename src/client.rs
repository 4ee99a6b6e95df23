//! The [`Client`] handle: a cheap `Clone + Send + Sync` front for the supervisor task.
//!
//! Every method turns into a [`Command`] on a bounded channel; answers come
//! back on oneshot channels. If the supervisor has finished, methods return its
//! terminal error instead of waiting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;
use tungstenite::Message;

use crate::book::BookViews;
use crate::command::{Command, NewSubscription};
use crate::config::Config;
use crate::error::Error;
use crate::events::{ConnectionState, Event, Events};
use crate::message::Frame;
use crate::protocol::{Protocol, Request, Topic};
use crate::queue::{Overflow, Queue};
use crate::send::SendOptions;
use crate::stats::{InFlight, Stats, StatsHub};
use crate::stream::{Messages, Subscription};
use crate::subscription::ClientId;
use crate::supervisor::{Shared, Supervisor};

/// A handle to one supervised WebSocket connection.
///
/// Cloning is cheap; all clones drive the same connection. The connection
/// closes when [`close`](Client::close) is called or when every handle and
/// every [`Subscription`] has been dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    done: watch::Receiver<Option<Result<(), Error>>>,
    /// Where client ids come from: this client's own counter, or the one its
    /// pool shares between members.
    next_client_id: Arc<AtomicU64>,
    queue_capacity: usize,
    overflow: Overflow,
    task: Mutex<Option<JoinHandle<()>>>,
    /// The adapter's book views, taken before it moved into the supervisor.
    books: Option<BookViews>,
}

/// One prepared subscription as the caller keeps it: the handle (made before
/// the first `.await`) and the supervisor's answer.
pub(crate) type Pending = (Subscription, oneshot::Receiver<Result<(), Error>>);

/// One topic's outcome with the client id it was given: a refused topic
/// keeps its id, so a [`SubscriptionSet`](crate::SubscriptionSet) can name it.
pub(crate) type Answer = (ClientId, Result<Subscription, Error>);

/// Subscriptions prepared but not yet handed to the supervisor.
pub(crate) struct Prepared {
    pub(crate) pending: Vec<Pending>,
    pub(crate) new: Vec<NewSubscription>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.state_now())
            .finish_non_exhaustive()
    }
}

/// Per-subscription queue settings, overriding the [`Config`] defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueOptions {
    /// Queue capacity; `None` uses the config's.
    pub capacity: Option<usize>,
    /// Overflow policy; `None` uses the config's.
    pub overflow: Option<Overflow>,
}

impl Client {
    /// Starts the supervisor task and waits until the first connection is up
    /// (or reconnecting is given up, which returns the terminal error).
    ///
    /// Must be called within a tokio runtime.
    ///
    /// # Errors
    ///
    /// The terminal error if the client finished before connecting, e.g.
    /// [`Error::Reconnect`] after the attempt limit.
    pub async fn connect<P: Protocol>(
        config: Config,
        protocol: P,
    ) -> Result<(Client, Messages), Error> {
        let (client, messages) = Client::spawn(config, protocol);
        let mut state = client.state();
        let mut done = client.inner.done.clone();
        loop {
            if *state.borrow_and_update() == ConnectionState::Connected {
                return Ok((client, messages));
            }
            if let Some(result) = done.borrow_and_update().clone() {
                return match result {
                    Ok(()) => Err(Error::ClientClosed),
                    Err(error) => Err(error),
                };
            }
            tokio::select! {
                changed = state.changed() => if changed.is_err() { return Err(Error::ClientClosed) },
                changed = done.changed() => if changed.is_err() { return Err(Error::ClientClosed) },
            }
        }
    }

    /// Starts the supervisor task and returns at once; connecting happens in
    /// the background. Subscriptions made before the connection is up are sent
    /// as soon as it is.
    ///
    /// Also returns the [`Messages`] stream of frames that belong to no
    /// subscription (with [`RawProtocol`](crate::RawProtocol), every frame).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (like `tokio::spawn`).
    pub fn spawn<P: Protocol>(config: Config, protocol: P) -> (Client, Messages) {
        let (client, messages, supervisor, span) = Client::unspawned(config, protocol);
        let shared = Arc::clone(&client.inner.shared);
        let task = tokio::spawn(run_guarded(supervisor, shared).instrument(span));
        *client.inner.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        (client, messages)
    }

    /// A client and the supervisor that would drive it, not started: the
    /// spawned mode runs the supervisor as a task, the
    /// [`Feed`](crate::Feed) drives its parts in the consumer's task. Also
    /// returns the connection's span.
    pub(crate) fn unspawned<P: Protocol>(
        config: Config,
        protocol: P,
    ) -> (Client, Messages, Supervisor<P>, tracing::Span) {
        let (commands_tx, commands_rx) = mpsc::channel(config.command_capacity);
        let (state, _) = watch::channel(ConnectionState::Connecting);
        let (done_tx, done_rx) = watch::channel(None);
        // One span per connection: every log line of its supervisor is inside it.
        let span = tracing::info_span!(
            "connection",
            venue = protocol.name(),
            connection = %config.connection_name,
            url = %config.redacted_url,
            attempt = tracing::field::Empty,
        );
        let shared = Arc::new(Shared {
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::Publisher::new(protocol.name(), &config.connection_name),
            events: OnceLock::new(),
            event_capacity: config.event_capacity,
            state,
            done: done_tx,
            stats: Arc::new(StatsHub::default()),
        });
        let inbound = Queue::new(config.queue_capacity, config.overflow);
        #[cfg(feature = "metrics")]
        {
            inbound.measure_wait(shared.metrics.delivery_wait());
            let _ = shared.stats.venue_lag.set(shared.metrics.venue_lag());
        }
        shared.stats.track(&inbound);
        let messages = Messages::new(Arc::clone(&inbound));
        let queue_capacity = config.queue_capacity;
        let overflow = config.overflow;
        let next_client_id = config
            .client_ids
            .clone()
            .unwrap_or_else(|| Arc::new(AtomicU64::new(1)));
        let books = protocol.book_views();
        let supervisor =
            Supervisor::new(config, protocol, commands_rx, Arc::clone(&shared), inbound);
        let client = Client {
            inner: Arc::new(Inner {
                commands: commands_tx,
                shared,
                done: done_rx,
                next_client_id,
                queue_capacity,
                overflow,
                task: Mutex::new(None),
                books,
            }),
        };
        (client, messages, supervisor, span)
    }

    /// The views of the books the adapter verifies (Kraken, WEEX), readable
    /// at any time while the client lives: `client.book_views()?.watch(symbol,
    /// levels)`. `None` for an adapter that keeps no books. See
    /// [`BookViews`](crate::BookViews).
    pub fn book_views(&self) -> Option<BookViews> {
        self.inner.books.clone()
    }

    /// Subscribes to `topic` with the default queue settings and waits for the
    /// venue's acknowledgement.
    ///
    /// While disconnected, the subscription waits and is sent (after the
    /// replay of existing ones) on the next connection.
    ///
    /// # Errors
    ///
    /// [`Error::Subscription`] if the venue refuses, [`Error::Timeout`] with
    /// [`Operation::Subscribe`](crate::Operation::Subscribe) without an ack, or
    /// the terminal error if the client finished first.
    pub async fn subscribe(&self, topic: Topic) -> Result<Subscription, Error> {
        self.subscribe_with(topic, QueueOptions::default()).await
    }

    /// Like [`subscribe`](Client::subscribe) with per-subscription queue settings.
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Client::subscribe), plus [`Error::Config`] for a zero capacity.
    pub async fn subscribe_with(
        &self,
        topic: Topic,
        options: QueueOptions,
    ) -> Result<Subscription, Error> {
        let mut results = self.subscribe_many_with(vec![topic], options).await?;
        results.pop().unwrap_or(Err(Error::ClientClosed))
    }

    /// Subscribes to several topics at once. Where the protocol allows it
    /// (Kraken: same channel and parameters), they share one request, and each
    /// topic still becomes its own durable subscription with its own result.
    ///
    /// # Errors
    ///
    /// The outer error when the request could not be made at all (bad options,
    /// client finished); the inner ones per topic as for [`subscribe`](Client::subscribe).
    pub async fn subscribe_many(
        &self,
        topics: Vec<Topic>,
    ) -> Result<Vec<Result<Subscription, Error>>, Error> {
        self.subscribe_many_with(topics, QueueOptions::default())
            .await
    }

    pub(crate) async fn subscribe_many_with(
        &self,
        topics: Vec<Topic>,
        options: QueueOptions,
    ) -> Result<Vec<Result<Subscription, Error>>, Error> {
        let answers = self.subscribe_answers(topics, options).await?;
        Ok(answers.into_iter().map(|(_, result)| result).collect())
    }

    /// As [`subscribe_many_with`](Client::subscribe_many_with), each result
    /// with the client id its topic was given (in the order of `topics`).
    pub(crate) async fn subscribe_answers(
        &self,
        topics: Vec<Topic>,
        options: QueueOptions,
    ) -> Result<Vec<Answer>, Error> {
        let prepared = self.prepare(topics, options)?;
        self.submit(prepared).await
    }

    /// The synchronous half of a subscribe: validates, makes the queues and
    /// counts the subscriptions as in flight.
    pub(crate) fn prepare(
        &self,
        topics: Vec<Topic>,
        options: QueueOptions,
    ) -> Result<Prepared, Error> {
        let capacity = options.capacity.unwrap_or(self.inner.queue_capacity);
        let overflow = options.overflow.unwrap_or(self.inner.overflow);
        if capacity == 0 {
            return Err(Error::Config(
                "queue capacity must be greater than zero".into(),
            ));
        }
        overflow.validate()?;
        // Every handle exists before the first `.await`: if this future is
        // dropped midway, each handle's `Drop` unsubscribes its topic, so no
        // queue is left that nobody can read or end.
        let mut pending = Vec::with_capacity(topics.len());
        let mut new = Vec::with_capacity(topics.len());
        for topic in topics {
            let client_id =
                ClientId::new(self.inner.next_client_id.fetch_add(1, Ordering::Relaxed));
            let queue = Queue::new(capacity, overflow);
            // Known to the stats hub (and so to the panic guard) from creation.
            self.inner.shared.stats.track(&queue);
            #[cfg(feature = "metrics")]
            queue.measure_wait(self.inner.shared.metrics.delivery_wait());
            let (ready, ready_rx) = oneshot::channel();
            let subscription = Subscription::new(
                client_id,
                topic.clone(),
                Arc::clone(&queue),
                self.inner.commands.clone(),
            );
            pending.push((subscription, ready_rx));
            new.push(NewSubscription {
                client_id,
                topic,
                queue,
                ready,
                in_flight: InFlight::new(&self.inner.shared.stats),
            });
        }
        Ok(Prepared { pending, new })
    }

    /// [`prepare`](Self::prepare) of one topic under a given client id
    /// (replay makes each subscription again with its recorded id).
    pub(crate) fn prepare_as(
        &self,
        client_id: ClientId,
        topic: Topic,
        options: QueueOptions,
    ) -> Result<Prepared, Error> {
        self.inner
            .next_client_id
            .store(client_id.get(), Ordering::Relaxed);
        self.prepare(vec![topic], options)
    }

    /// The asynchronous half: hands the subscriptions to the supervisor and
    /// waits for each one's answer.
    async fn submit(&self, prepared: Prepared) -> Result<Vec<Answer>, Error> {
        let Prepared { pending, new } = prepared;
        self.command(Command::Subscribe(new)).await?;
        let mut results = Vec::with_capacity(pending.len());
        for (subscription, ready_rx) in pending {
            let client_id = subscription.client_id();
            let result = match ready_rx.await {
                Ok(Ok(())) => Ok(subscription),
                Ok(Err(error)) => Err(error),
                Err(_) => Err(self.terminal_error()),
            };
            results.push((client_id, result));
        }
        Ok(results)
    }

    /// Sends a one-off text frame on the current connection.
    ///
    /// It is never replayed on a later connection: while disconnected this
    /// fails at once. The adapter never sees the text: a command that changes
    /// a subscription (Kalshi `update_subscription` `add_markets`) sent this
    /// way builds no books and is not kept for the subscription's replay
    /// after a reconnect; send those with [`request`](Self::request).
    ///
    /// # Errors
    ///
    /// [`Error::Connection`] while disconnected, the write error if the socket
    /// fails, or the terminal error.
    pub async fn send(&self, text: impl Into<String>) -> Result<(), Error> {
        self.send_text_with(text, SendOptions::default()).await
    }

    /// Sends a one-off binary frame, with the same rules as [`send`](Self::send).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_binary(&self, data: impl Into<Vec<u8>>) -> Result<(), Error> {
        self.send_binary_with(data, SendOptions::default()).await
    }

    /// A [`Sink`](futures::Sink) of one-off binary frames, for code written
    /// against the `Sink` API (`forward`, `send_all`). Each item is sent as by
    /// [`send_binary_with`](Self::send_binary_with) with `options`, one at a
    /// time, in order; `poll_ready` waits until the previous frame is written.
    ///
    /// The `Sink` contract makes the first error final for the sink (not for
    /// the client): while disconnected the sink fails at once, as `send` does,
    /// and is done. Call `send_binary` directly to handle each frame's result
    /// and go on.
    ///
    /// ```no_run
    /// # async fn run(client: resilient_ws::Client) -> Result<(), resilient_ws::Error> {
    /// use futures::SinkExt;
    /// let mut sink = client.binary_sink(resilient_ws::SendOptions::new());
    /// sink.send(vec![0x01, 0x02]).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn binary_sink(
        &self,
        options: SendOptions,
    ) -> std::pin::Pin<Box<dyn futures::Sink<Vec<u8>, Error = Error> + Send>> {
        Box::pin(futures::sink::unfold(
            self.clone(),
            move |client, data: Vec<u8>| async move {
                client.send_binary_with(data, options).await?;
                Ok(client)
            },
        ))
    }

    /// [`send`](Self::send) with [`SendOptions`] (e.g. outside the rate limit's budget).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_text_with(
        &self,
        text: impl Into<String>,
        options: SendOptions,
    ) -> Result<(), Error> {
        self.send_message(Message::text(text.into()), options).await
    }

    /// [`send_binary`](Self::send_binary) with [`SendOptions`].
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_binary_with(
        &self,
        data: impl Into<Vec<u8>>,
        options: SendOptions,
    ) -> Result<(), Error> {
        self.send_message(Message::binary(data.into()), options)
            .await
    }

    async fn send_message(&self, message: Message, options: SendOptions) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Send {
            message,
            rate_limited: options.rate_limited,
            reply,
        })
        .await?;
        rx.await.unwrap_or_else(|_| Err(self.terminal_error()))
    }

    /// Sends a request (the protocol adds the request id) and waits for the
    /// response with that id, up to the request timeout.
    ///
    /// Requests in flight when the connection drops fail at once and are never
    /// replayed. What an accepted request changed on a live subscription is
    /// kept for its replay where the adapter tracks it (Kalshi `add_markets` /
    /// `delete_markets`: the replayed subscribe names the markets the venue
    /// held).
    ///
    /// # Errors
    ///
    /// [`Error::Request`] if the venue answers with an error,
    /// [`Error::Timeout`] with [`Operation::Request`](crate::Operation::Request),
    /// the disconnect cause, or the terminal error.
    pub async fn request(&self, request: Request) -> Result<Frame, Error> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Request { request, reply }).await?;
        rx.await.unwrap_or_else(|_| Err(self.terminal_error()))
    }

    /// A stream of lifecycle events from now on.
    pub fn events(&self) -> Events {
        Events::new(self.inner.shared.subscribe_events())
    }

    /// A watch of the connection state.
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.inner.shared.state.subscribe()
    }

    fn state_now(&self) -> ConnectionState {
        *self.inner.shared.state.borrow()
    }

    /// Subscriptions registered with the supervisor or on their way to it
    /// (two atomic reads: the pool places by it on every subscribe). The
    /// in-flight count drops only after the registered one has risen, so a
    /// subscription is never missed; it may be seen twice for an instant.
    pub(crate) fn subscription_count(&self) -> usize {
        let stats = &self.inner.shared.stats;
        let _handover = stats.handover();
        let in_flight = stats
            .subscribes_in_flight
            .load(std::sync::atomic::Ordering::Relaxed);
        let registered = stats.counters.subscriptions.get();
        usize::try_from(registered.saturating_add(in_flight)).unwrap_or(usize::MAX)
    }

    /// Whether the supervisor has finished or is closing (one watch read
    /// each): a pool places nothing more on such a member and lets it go.
    pub(crate) fn has_ended(&self) -> bool {
        self.inner.done.borrow().is_some()
            || matches!(
                *self.inner.shared.state.borrow(),
                ConnectionState::Closing | ConnectionState::Closed
            )
    }

    /// Whether subscribe/unsubscribe requests of this connection wait for the
    /// venue's operations window right now (one atomic read; the pool places
    /// elsewhere while they do).
    pub(crate) fn subscribe_ops_waiting(&self) -> bool {
        self.inner.shared.stats.counters.subscribe_ops_waiting.get() > 0
    }

    /// Starts subscribing `topic` with default queue settings: the
    /// subscription counts in [`subscription_count`](Client::subscription_count)
    /// before this returns (the pool relies on that to place the next one).
    pub(crate) fn start_subscribe(
        &self,
        topic: Topic,
        options: QueueOptions,
    ) -> impl std::future::Future<Output = Result<Subscription, Error>> + Send + 'static {
        let started = self.start_subscribe_answer(topic, options);
        async move { started?.await.1 }
    }

    /// Like [`start_subscribe`](Client::start_subscribe), but bad options
    /// fail at once and the answer keeps the client id (also when the
    /// supervisor is gone before it takes the subscription).
    pub(crate) fn start_subscribe_answer(
        &self,
        topic: Topic,
        options: QueueOptions,
    ) -> Result<impl std::future::Future<Output = Answer> + Send + 'static, Error> {
        let client = self.clone();
        let prepared = self.prepare(vec![topic], options)?;
        let client_id = prepared
            .new
            .first()
            .map(|new| new.client_id)
            .ok_or(Error::ClientClosed)?;
        Ok(async move {
            match client.submit(prepared).await {
                Ok(mut answers) => answers
                    .pop()
                    .unwrap_or((client_id, Err(Error::ClientClosed))),
                Err(error) => (client_id, Err(error)),
            }
        })
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.inner.shared.stats.snapshot()
    }

    /// Frames the adapter could not place, counted per kind since the client
    /// started (see [`Event::UnknownMessage`](crate::Event::UnknownMessage)).
    pub fn unplaced(&self) -> Vec<crate::stats::UnplacedKind> {
        self.inner.shared.stats.unplaced()
    }

    /// Closes the connection: sends Close 1000, waits up to the close timeout
    /// for the peer, lets every stream drain what was already received and then
    /// end, and waits until the supervisor task has exited.
    ///
    /// # Errors
    ///
    /// The terminal error if the client had already failed before `close`.
    pub async fn close(&self) -> Result<(), Error> {
        // A full or closed channel both mean the task is busy finishing or done.
        let _ = self.inner.commands.send(Command::Close).await;
        let result = self.closed().await;
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        result
    }

    /// Resolves when the client has finished: `Ok(())` after [`close`](Client::close),
    /// otherwise the terminal error (e.g. [`Error::Reconnect`]).
    ///
    /// # Errors
    ///
    /// The terminal error.
    pub async fn closed(&self) -> Result<(), Error> {
        let mut done = self.inner.done.clone();
        let result = match done.wait_for(Option::is_some).await {
            Ok(result) => result.clone().unwrap_or(Err(Error::ClientClosed)),
            Err(_) => Err(Error::ClientClosed),
        };
        result
    }

    pub(crate) async fn command(&self, command: Command) -> Result<(), Error> {
        self.inner
            .commands
            .send(command)
            .await
            .map_err(|_| self.terminal_error())
    }

    /// The error to report once the supervisor is gone.
    pub(crate) fn terminal_error(&self) -> Error {
        match self.inner.done.borrow().as_ref() {
            Some(Err(error)) => error.clone(),
            _ => Error::ClientClosed,
        }
    }

    /// How many queues the stats hub holds right now (live ones, plus ended
    /// ones not pruned yet). For the churn tests; not a stable API.
    #[doc(hidden)]
    pub fn tracked_queues(&self) -> usize {
        self.inner.shared.stats.tracked()
    }
}

/// Runs the supervisor; if it panics (a bug, possibly in user protocol,
/// connector or token code), ends every stream with [`Error::Panicked`],
/// publishes the state and resolves `closed()`, so no consumer hangs.
///
/// The result is published *before* the panicked future is dropped: callers
/// whose answer channel closes with it then read `Panicked`, not a generic
/// closed client.
async fn run_guarded<P: Protocol>(supervisor: Supervisor<P>, shared: Arc<Shared>) {
    use futures::FutureExt;
    let mut run = std::pin::pin!(std::panic::AssertUnwindSafe(supervisor.run()).catch_unwind());
    if run.as_mut().await.is_err() {
        tracing::error!("the connection task panicked; ending every stream");
        let error = Error::Panicked;
        shared.stats.finish_all(&error);
        shared.state.send_replace(ConnectionState::Closed);
        shared.emit(Event::Closed {
            error: Some(error.clone()),
        });
        shared.done.send_replace(Some(Err(error)));
    }
}
