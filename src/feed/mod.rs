//! The consumer-driven feed: one connection's subscriptions as one
//! [`Stream`] whose `poll_next` does the connection's work itself.
//!
//! Why it exists: in the spawned mode every frame crosses from the
//! supervisor's task to the consumer's task through a queue and a wake-up,
//! which costs more than the library's whole per-frame work (BENCHMARKS.md,
//! "Where issue 12 item 4 stands"). Here the task that polls the feed reads
//! the socket, runs the session core, answers pings, fires timers, writes due
//! frames and reconnects, and yields the delivered items from a ready list it
//! drains itself: no per-frame hand-off between tasks, no wake-up per frame.
//!
//! Rules, and why:
//! - Same rules as the spawned supervisor, no copy: the session is driven
//!   through `supervisor/drive.rs` (`live.rs` is its `poll` form), the
//!   reconnect bookkeeping is `supervisor/reconnect.rs`, a connection attempt
//!   is `supervisor/attempt.rs`, the end is `supervisor::finish`. So every
//!   promise holds as in the spawned mode: resubscribe and re-map on
//!   reconnect, sequence checks and checksums, bounded per-subscription
//!   queues with their overflow policies and exact accounting (`routed =
//!   delivered + dropped + queued`, [`Feed::stats`]), and at the end every
//!   subscription yields its terminal error (if any) and the stream ends.
//! - Deliveries go into each subscription's own queue, which belongs to the
//!   feed's [`SubscriptionSet`]; `poll_next` yields from that set (round-robin
//!   over readable subscriptions) before it does more connection work, and
//!   does connection work only when nothing is ready. The set registers no
//!   waker: every delivery happens inside this same `poll_next`, so nobody
//!   else ever needs to wake it (and a set with nothing listed is checked
//!   with one load, no lock).
//! - A readable queue is emptied in one step: its buffer is swapped with the
//!   feed's (one lock, no per-item copy), and the items are yielded one by one
//!   from there without a lock, so a socket read's batch costs one lock per
//!   subscription instead of one per item. The counters stay exact at every
//!   moment: a message taken this way counts as queued until it is yielded
//!   (a relaxed load and store per message, the feed being the only writer of
//!   that count), and one the feed is dropped with counts as dropped. The overflow policies act on the queue as before: the
//!   feed's buffer only ever holds what one step took.
//! - One `poll_next` does a bounded amount of work (a batch of buffered
//!   frames per step, a bounded number of steps, and tokio's cooperative
//!   budget), so a busy socket cannot keep the task from yielding.
//! - A step hands in up to 256 buffered frames before any of them is
//!   yielded (the spawned mode: 64 per wake-up, its consumer running in
//!   between), so a subscription's queue must hold a step's worth of its
//!   frames: with a capacity below 256 and a dropping policy
//!   (`DropOldest`, `DropNewest`, `Error`), a burst of that many frames for
//!   one subscription drops the excess (counted, as always). The default
//!   capacity (1,024) holds a whole step; `Block` never drops (the step
//!   waits while the feed yields).
//! - Commands come from [`FeedHandle`]s in any task over the same bounded
//!   channel as the spawned mode; `poll_next` polls that channel (registering
//!   its waker), so a command wakes the feed's task. Its answers come from
//!   `poll_next` too: a handle awaited in the very task that should poll the
//!   feed waits for ever (await it elsewhere, or `select!` with the feed).
//!
//! What a consumer that stops polling costs: nothing happens on the
//! connection while the feed is not polled. The socket is not read (the
//! kernel's buffers fill, then TCP backpressure slows the venue, which may
//! disconnect a slow consumer), pings are neither sent nor answered and
//! timers do not fire, so the venue may drop the connection for silence.
//! Nothing is lost silently: on the next poll, what the socket already holds
//! is read first (a pong that came during the pause still counts), then the
//! missed deadlines fire (a pong still missing or an idle feed ends the
//! session as a [`Timeout`](crate::Error::Timeout), a socket the venue
//! closed meanwhile ends it with the disconnect cause), the session is
//! reconnected with the usual backoff and subscriptions are replayed, and
//! each subscription sees the gap as a retryable notice or sequence signal,
//! as in the spawned mode. Frames read
//! but not yet yielded stay in the bounded queues under their overflow
//! policies and are counted. Choose the spawned mode when the consumer may
//! pause; choose the feed when one task reads everything in a loop.
//!
//! Periodic metrics publishing (the `metrics` feature) is a spawned-mode
//! timer; the feed publishes the counters when it finishes.

mod handle;
mod live;
mod machine;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures::Stream;

use crate::client::{Client, QueueOptions};
use crate::config::Config;
use crate::ids::ClientId;
use crate::protocol::Protocol;
use crate::queue::QueueStats;
use crate::set::{SetItem, Source, Staged, SubscriptionSet};
use crate::stream::Messages;
use handle::Arrivals;
pub use handle::FeedHandle;
use machine::{Machine, Step};

/// Connection steps one `poll_next` may take before it yields the task (each
/// step hands in up to [`FEED_READ_BATCH`](live::FEED_READ_BATCH) frames:
/// 8 x 256, at most 2,048 frames read in one poll that yields nothing).
const STEPS_PER_POLL: usize = 8;

/// One connection's subscriptions as one [`Stream`] of [`SetItem`]s, driven
/// by the task that polls it: `poll_next` reads the socket, runs the session,
/// answers pings, fires timers, writes and reconnects. Made by
/// [`Feed::new`] with its [`FeedHandle`].
///
/// Queues: a poll reads up to 256 buffered frames before it yields the first
/// of them, so give a subscription a queue that holds that many of its
/// frames (the default, 1,024, does); a smaller queue with a dropping policy
/// drops the excess of such a burst (counted in [`Feed::stats`]).
///
/// The stream ends after the feed has finished (closed through a handle,
/// reconnecting given up, a permanent close) and every subscription has
/// yielded what it holds and its terminal error, if any. Dropping the feed
/// closes the connection; the handles then get
/// [`Error::ClientClosed`](crate::Error::ClientClosed).
///
/// ```no_run
/// use futures::StreamExt;
/// use resilient_ws::{Config, Feed, Kraken, Topic, Update};
///
/// # async fn run() -> Result<(), resilient_ws::Error> {
/// let config = Config::builder("wss://ws.kraken.com/v2").build()?;
/// let (handle, mut feed) = Feed::new(config, Kraken::new());
/// // Subscribing needs the feed polled: do it from another task.
/// tokio::spawn(async move {
///     let _ = handle.subscribe(Topic::new("ticker").symbol("BTC/USD")).await;
/// });
/// while let Some(item) = feed.next().await {
///     match item.item {
///         Ok(Update::Data(frame)) => println!("{}: {:?}", item.client_id, frame.as_text()),
///         Ok(signal) => eprintln!("signal: {signal:?}"),
///         Err(error) => eprintln!("{}: {error}", item.client_id),
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub struct Feed<P: Protocol> {
    machine: Machine<P>,
    /// The subscriptions' queues and the feed-local ready list.
    set: SubscriptionSet,
    /// Items taken from one queue under one lock, yielded one by one.
    /// Declared after `set`: dropped after it, when the queues have counted
    /// what it still holds as dropped.
    staged: Staged,
    arrivals: Arc<Arrivals>,
    unsolicited: Option<Messages>,
    /// The connection's span, entered while polled (every log line of this
    /// connection carries its venue, redacted URL, name and attempt).
    span: tracing::Span,
    /// Set once the stream has ended.
    ended: bool,
}

// Nothing in a feed is pinned structurally: its futures are boxed.
impl<P: Protocol> Unpin for Feed<P> {}

impl<P: Protocol> Feed<P> {
    /// A feed for `config` speaking `protocol`, and the handle that sends it
    /// commands. Nothing happens until the feed is polled: the first poll
    /// starts connecting.
    pub fn new(config: Config, protocol: P) -> (FeedHandle, Feed<P>) {
        let (client, unsolicited, supervisor, span) = Client::unspawned(config, protocol);
        let (config, drive, commands, reconnect) = supervisor.into_parts();
        let arrivals = Arc::new(Arrivals::default());
        let set = SubscriptionSet::unwoken(Source::Client(client.clone()), QueueOptions::default());
        let feed = Feed {
            machine: Machine::new(config, drive, commands, reconnect),
            set,
            staged: Staged::default(),
            arrivals: Arc::clone(&arrivals),
            unsolicited: Some(unsolicited),
            span,
            ended: false,
        };
        (FeedHandle::new(client, arrivals), feed)
    }

    /// The stream of frames that belong to no subscription (with
    /// [`RawProtocol`](crate::RawProtocol), every frame); `Some` once. It is
    /// filled while the feed is polled; read it in another task or drop it.
    pub fn take_unsolicited(&mut self) -> Option<Messages> {
        self.unsolicited.take()
    }

    /// The feed's counters over every subscription it has held:
    /// `routed = delivered + dropped + queued`.
    pub fn stats(&self) -> QueueStats {
        self.set.stats()
    }

    /// One subscription's counters, while it is live. (Client ids are unique
    /// within one feed: its subscriptions all come from its own client.)
    pub fn subscription_stats(&self, client_id: ClientId) -> Option<QueueStats> {
        let (key, _, _) = self.set.members().find(|(_, id, _)| *id == client_id)?;
        self.set.member_stats(key)
    }
}

/// Adopts subscriptions made by handles since the last poll.
#[inline]
fn adopt_arrivals(arrivals: &Arrivals, set: &mut SubscriptionSet) {
    if !arrivals.waiting() {
        return;
    }
    for subscription in arrivals.take() {
        if let Err(error) = set.adopt(subscription) {
            tracing::debug!(%error, "subscription not adopted by the feed");
        }
    }
}

impl<P: Protocol> Stream for Feed<P> {
    type Item = SetItem;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SetItem>> {
        let Feed {
            machine,
            set,
            staged,
            arrivals,
            span,
            ended,
            ..
        } = self.get_mut();
        if *ended {
            return Poll::Ready(None);
        }
        // The fast path: an item staged by an earlier poll (no lock, no
        // span entered: nothing here logs).
        if let Some(item) = set.pop_staged(staged) {
            return Poll::Ready(Some(item));
        }
        let _entered = span.enter();
        for _ in 0..STEPS_PER_POLL {
            adopt_arrivals(arrivals, set);
            // Deliveries happen only inside this function: nobody needs to
            // wake the set, so staging registers no waker.
            if let Poll::Ready(Some(terminal)) = set.poll_stage(staged) {
                if let Some(item) = terminal.or_else(|| set.pop_staged(staged)) {
                    return Poll::Ready(Some(item));
                }
            }
            let coop = ready!(tokio::task::coop::poll_proceed(cx));
            match machine.poll_step(cx) {
                Step::Progress => coop.made_progress(),
                Step::Pending => return Poll::Pending,
                Step::Finished => {
                    // Every queue has ended and was drained above; late
                    // subscriptions were refused.
                    *ended = true;
                    return Poll::Ready(None);
                }
            }
        }
        // A long run of steps that delivered nothing: let other tasks run.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<P: Protocol> std::fmt::Debug for Feed<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("subscriptions", &self.set.len())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> Drop for Feed<P> {
    fn drop(&mut self) {
        self.machine.abandon(std::thread::panicking());
    }
}
