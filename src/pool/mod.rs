//! [`Pool`]: many connections to one venue, each subscription placed on one.
//!
//! Rules, and why:
//!
//! - **A cap per connection.** Venues limit subscriptions per socket, and one
//!   socket carrying everything is one point of failure. Each member holds at
//!   most [`PoolOptions::max_per_connection`] subscriptions (default: the
//!   protocol's documented channels per connection, [`limits()`](crate::Protocol::limits),
//!   else [`DEFAULT_MAX_PER_CONNECTION`]).
//! - **Least-loaded first, lazily.** A subscription goes to the member with the
//!   fewest subscriptions (live ones plus those being placed) that has room; a
//!   new member is spawned only when every member is full, up to
//!   [`PoolOptions::max_connections`]. Spawning does not wait for the socket:
//!   the subscription is queued and sent once the member is connected.
//! - **Operation budget.** A venue that caps subscribe operations per window
//!   per connection ([`limits()`](crate::Protocol::limits); WEEX: 240 an hour)
//!   makes a member's subscribes wait once its window is spent. A member
//!   whose requests are waiting for its window right now is passed over while
//!   another member with room has none waiting; if none has, a new member
//!   (with a fresh window) is opened, and only when that is not allowed does
//!   the subscription go to a waiting member and wait there. This is best
//!   effort: a member whose window is spent but holds nothing back yet still
//!   takes the next subscription (which then waits and marks it). With the
//!   default cap a window is spent only by churn: 100 channels fill with 100
//!   operations, and each unsubscribe spends one more.
//! - **The same subscription.** A member is an ordinary [`Client`]; a
//!   subscription made through the pool is the same [`Subscription`] with the
//!   same guarantees. Failure stays local: when one member's socket drops,
//!   only its subscriptions are replayed (and see `Resubscribed`).
//! - **One connect limiter.** Every attempt of every member (first connects and
//!   reconnects) waits for a slot of one shared limiter, so a venue restart
//!   does not trigger N simultaneous reconnects (see `limiter.rs`).
//! - **A finished member leaves.** A member whose supervisor ended (it gave
//!   up reconnecting, the venue closed it for good, it panicked, or it was
//!   closed through [`Pool::connection`]) can carry nothing more, yet it holds
//!   no subscriptions and would win every placement. So the pool drops it
//!   whenever it looks at its members (placing, [`Pool::connections`],
//!   [`Pool::stats`]), and the next subscription that needs a connection opens
//!   a fresh one. Its subscriptions already ended with its terminal error.
//!   Only live members count towards [`PoolOptions::max_connections`] and in
//!   the pool's stats.
//! - **Which connection.** [`Pool::stats`] and [`Pool::events`] name the member
//!   by its number (also the `connection` label of its metrics and its tracing
//!   span). Numbers are given in spawn order and never reused: a replacement
//!   gets a new one, so its metric series start from zero instead of sharing
//!   counters (and a late final publish) with the member it replaces.
//! - **One merged stream.** Members draw client ids from one counter, so a
//!   client id names one subscription across the whole pool, and
//!   [`Pool::subscribe_set`] (or [`SubscriptionSet::adopt`](crate::SubscriptionSet::adopt) of pool
//!   subscriptions) reads subscriptions of every connection through one stream.
//! - **Nothing outlives it.** [`Pool::close`] closes every member and waits for
//!   their tasks and the event forwarders to end.
//!
//! Frames that belong to no subscription are not exposed by a pool (they are
//! counted as dropped); use a [`Client`] with [`RawProtocol`](crate::RawProtocol)
//! for an unsolicited stream. A topic is not checked for duplicates across
//! members: subscribe each topic once.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use crate::client::{Client, QueueOptions};
use crate::config::{Config, LONGEST_DURATION};
use crate::error::Error;
use crate::events::{ConnectionState, Event};
use crate::ids::ClientId;
use crate::protocol::{Protocol, Topic};
use crate::stats::Stats;
use crate::stream::{Messages, Subscription};

pub(crate) use crate::connect_limiter::ConnectLimiter;

/// The per-connection cap when neither the options nor the protocol give one.
///
/// Neither bundled venue documents a per-connection subscription limit (see
/// [`Kraken`](crate::Kraken) and [`Kalshi`](crate::Kalshi)); 200 keeps a
/// reconnect's replay short (4 s at the default 50 frames/s outbound limit)
/// and the blast radius of one dropped socket small.
pub const DEFAULT_MAX_PER_CONNECTION: usize = 200;

/// How a [`Pool`] spreads subscriptions over connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolOptions {
    /// Subscriptions per connection; `None` takes the protocol's documented
    /// limit, else [`DEFAULT_MAX_PER_CONNECTION`].
    pub max_per_connection: Option<usize>,
    /// Connections at most. Default 64.
    pub max_connections: usize,
    /// Minimum time between two connection attempts across the pool. Default
    /// 100 ms; clamped to [`LONGEST_DURATION`] like every [`Config`] duration.
    pub connect_spacing: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_per_connection: None,
            max_connections: 64,
            connect_spacing: Duration::from_millis(100),
        }
    }
}

impl PoolOptions {
    /// Sets [`max_per_connection`](PoolOptions::max_per_connection).
    #[must_use]
    pub fn max_per_connection(mut self, cap: usize) -> Self {
        self.max_per_connection = Some(cap);
        self
    }

    /// Sets [`max_connections`](PoolOptions::max_connections).
    #[must_use]
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    /// Sets [`connect_spacing`](PoolOptions::connect_spacing) (clamped to
    /// [`LONGEST_DURATION`]).
    #[must_use]
    pub fn connect_spacing(mut self, spacing: Duration) -> Self {
        self.connect_spacing = spacing.min(LONGEST_DURATION);
        self
    }

    /// Clamps every duration to [`LONGEST_DURATION`], as
    /// [`ConfigBuilder::build`](crate::ConfigBuilder::build) does: the fields
    /// are public, so the setters alone cannot guarantee it.
    fn clamped(mut self) -> Self {
        self.connect_spacing = self.connect_spacing.min(LONGEST_DURATION);
        self
    }
}

type Spawn = dyn Fn(Config) -> (Client, Messages) + Send + Sync;

/// Many supervised connections to one venue; see the module docs.
///
/// Cloning is cheap; clones share the pool.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    spawn: Box<Spawn>,
    cap: usize,
    max_connections: usize,
    members: Mutex<Members>,
    events: broadcast::Sender<PoolEvent>,
    forwarders: Mutex<Vec<JoinHandle<()>>>,
    closed: AtomicBool,
    /// The client id counter every member draws from (also in `config`).
    client_ids: Arc<AtomicU64>,
}

/// The live members, and the number the next one gets.
#[derive(Default)]
struct Members {
    live: Vec<Member>,
    next_number: usize,
    /// The final counters of members that finished and left the pool, so the
    /// pool's totals never go backwards (gauges zeroed: they hold nothing now).
    retired: Stats,
}

struct Member {
    /// Its `connection` label; never reused within the pool.
    number: usize,
    client: Client,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("connections", &self.connections())
            .field("max_per_connection", &self.inner.cap)
            .finish_non_exhaustive()
    }
}

/// One member's share of [`Pool::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// The member's number (its `connection` label).
    pub connection: usize,
    /// Its state when the snapshot was taken.
    pub state: ConnectionState,
    /// Its counters.
    pub stats: Stats,
}

/// A snapshot of every member's counters and their sum.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Per live member, in number order.
    pub connections: Vec<ConnectionStats>,
    /// Every live member summed.
    pub total: Stats,
}

/// An [`Event`] of one member of a pool.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PoolEvent {
    /// The member's number; `None` for a [`Event::Lagged`] of the pool's own stream.
    pub connection: Option<usize>,
    /// What happened.
    pub event: Event,
}

impl Pool {
    /// A pool of connections built from `config`, each speaking a protocol
    /// made by `protocol` (called once per member). Nothing connects until the
    /// first subscription.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a zero cap, connection count or spacing.
    pub fn new<P: Protocol>(
        config: Config,
        protocol: impl Fn() -> P + Send + Sync + 'static,
        options: PoolOptions,
    ) -> Result<Pool, Error> {
        let options = options.clamped();
        let cap = options
            .max_per_connection
            .or_else(|| protocol().limits().channels_per_connection)
            .unwrap_or(DEFAULT_MAX_PER_CONNECTION);
        if cap == 0 || options.max_connections == 0 || options.connect_spacing.is_zero() {
            return Err(Error::Config(
                "pool max_per_connection, max_connections and connect_spacing must be greater than zero"
                    .into(),
            ));
        }
        let mut config = config;
        config.connect_limiter = Some(Arc::new(ConnectLimiter::new(options.connect_spacing)));
        // One id space for every member: a client id names one subscription
        // across the pool, whichever connection carries it.
        let client_ids = Arc::new(AtomicU64::new(1));
        config.client_ids = Some(Arc::clone(&client_ids));
        let spawn = move |config: Config| Client::spawn(config, protocol());
        Ok(Pool {
            inner: Arc::new(Inner {
                events: broadcast::channel(config.event_capacity).0,
                config,
                spawn: Box::new(spawn),
                cap,
                max_connections: options.max_connections,
                members: Mutex::new(Members::default()),
                forwarders: Mutex::new(Vec::new()),
                closed: AtomicBool::new(false),
                client_ids,
            }),
        })
    }

    /// The per-connection subscription cap in force.
    pub fn max_per_connection(&self) -> usize {
        self.inner.cap
    }

    /// How many live connections the pool has (finished ones have left).
    pub fn connections(&self) -> usize {
        self.members().live.len()
    }

    /// Subscribes to `topic` on the least-loaded connection with room
    /// (opening one if all are full), as [`Client::subscribe`].
    ///
    /// # Errors
    ///
    /// As [`Client::subscribe`], plus [`Error::Config`] when every allowed
    /// connection is full and [`Error::ClientClosed`] after [`close`](Pool::close).
    pub async fn subscribe(&self, topic: Topic) -> Result<Subscription, Error> {
        self.subscribe_with(topic, QueueOptions::default()).await
    }

    /// Like [`subscribe`](Pool::subscribe) with per-subscription queue settings.
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Pool::subscribe).
    pub async fn subscribe_with(
        &self,
        topic: Topic,
        options: QueueOptions,
    ) -> Result<Subscription, Error> {
        // Placed under the pool's lock, and counted on its member before the
        // lock is released: the next placement already sees it.
        let subscribe = self.place(|client| client.start_subscribe(topic, options))?;
        subscribe.await
    }

    /// A stream of every member's events from now on, each naming its member.
    pub fn events(&self) -> PoolEvents {
        PoolEvents {
            inner: BroadcastStream::new(self.inner.events.subscribe()),
        }
    }

    /// Every live member's counters, and their sum.
    pub fn stats(&self) -> PoolStats {
        let (clients, mut total): (Vec<(usize, Client)>, Stats) = {
            let members = self.members();
            let clients = members
                .live
                .iter()
                .map(|m| (m.number, m.client.clone()))
                .collect();
            (clients, members.retired)
        };
        let connections = clients
            .iter()
            .map(|(connection, client)| {
                let stats = client.stats();
                total.add(&stats);
                ConnectionStats {
                    connection: *connection,
                    state: *client.state().borrow(),
                    stats,
                }
            })
            .collect();
        PoolStats { connections, total }
    }

    /// The live member numbered `index` (its `connection` label), e.g. to
    /// send a request on it; `None` once it has finished.
    pub fn connection(&self, index: usize) -> Option<Client> {
        self.members()
            .live
            .iter()
            .find(|m| m.number == index)
            .map(|m| m.client.clone())
    }

    /// Closes every connection (as [`Client::close`]) and waits until every
    /// task of the pool has ended. Later subscribes fail with
    /// [`Error::ClientClosed`].
    ///
    /// # Errors
    ///
    /// The terminal error of the first member that had failed before `close`
    /// and had not yet left the pool (see the module docs).
    pub async fn close(&self) -> Result<(), Error> {
        self.inner.closed.store(true, Ordering::SeqCst);
        let clients: Vec<Client> = self
            .inner
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .live
            .iter()
            .map(|m| m.client.clone())
            .collect();
        let results = futures::future::join_all(clients.iter().map(Client::close)).await;
        let forwarders: Vec<JoinHandle<()>> = std::mem::take(
            &mut *self
                .inner
                .forwarders
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for forwarder in forwarders {
            // Each ends after forwarding its member's `Closed`.
            let _ = forwarder.await;
        }
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    }

    /// The members, after dropping those that finished (see the module docs).
    fn members(&self) -> std::sync::MutexGuard<'_, Members> {
        let mut members = self.inner.members.lock().unwrap_or_else(|p| p.into_inner());
        let Members { live, retired, .. } = &mut *members;
        live.retain(|member| {
            let ended = member.client.has_ended();
            if ended {
                tracing::debug!(
                    connection = member.number,
                    "a pool member finished; it leaves the pool"
                );
                let mut last = member.client.stats();
                last.subscriptions = 0;
                last.subscribe_ops_waiting = 0;
                retired.add(&last);
            }
            !ended
        });
        members
    }

    /// A fresh client id from the counter the members share, for a topic that
    /// no member took (a set still names it by a unique id).
    pub(crate) fn next_client_id(&self) -> ClientId {
        ClientId::new(self.inner.client_ids.fetch_add(1, Ordering::Relaxed))
    }

    /// Picks the member for one subscription and starts it there with
    /// `start`, all under the lock (`start` counts it on the member at once).
    pub(crate) fn place<T>(&self, start: impl FnOnce(&Client) -> T) -> Result<T, Error> {
        let mut members = self.members();
        // Checked under the lock `close` does not need: a member spawned after
        // `close` took its list would otherwise outlive the pool.
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(Error::ClientClosed);
        }
        let cap = self.inner.cap;
        let with_room: Vec<(usize, usize, bool)> = members
            .live
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let client = &m.client;
                (
                    i,
                    client.subscription_count(),
                    client.subscribe_ops_waiting(),
                )
            })
            .filter(|&(_, load, _)| load < cap)
            .collect();
        let least_loaded = |ops_waiting: Option<bool>| {
            with_room
                .iter()
                .filter(|(_, _, waiting)| ops_waiting.is_none_or(|w| *waiting == w))
                .min_by_key(|&&(i, load, _)| (load, i))
                .map(|&(i, _, _)| i)
        };
        let can_spawn = members.live.len() < self.inner.max_connections;
        // A member whose operations window holds requests back would make
        // this subscribe wait too: prefer one with budget, then a new member
        // (a fresh window), and only then the least-loaded one anyway.
        let chosen =
            least_loaded(Some(false)).or_else(|| if can_spawn { None } else { least_loaded(None) });
        let index = match chosen {
            Some(index) => index,
            None if can_spawn => {
                let number = members.next_number;
                members.next_number = number.saturating_add(1);
                members.live.push(self.spawn_member(number));
                members.live.len() - 1
            }
            None => {
                return Err(Error::Config(format!(
                    "pool is full: {} connections x {} subscriptions",
                    members.live.len(),
                    cap
                )))
            }
        };
        members
            .live
            .get(index)
            .map(|member| start(&member.client))
            .ok_or(Error::ClientClosed)
    }

    fn spawn_member(&self, number: usize) -> Member {
        let config = Config {
            connection_name: Arc::from(number.to_string()),
            ..self.inner.config.clone()
        };
        // Dropped at once: unsolicited frames are then counted as dropped
        // instead of filling a queue nobody reads.
        let (client, _) = (self.inner.spawn)(config);
        let mut events = client.events();
        let sink = self.inner.events.clone();
        let forwarder = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                let last = matches!(event, Event::Closed { .. });
                let _ = sink.send(PoolEvent {
                    connection: Some(number),
                    event,
                });
                if last {
                    break;
                }
            }
        });
        let mut forwarders = self
            .inner
            .forwarders
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Those of members that left have ended: keep the list as long as
        // the live members, not as long as the pool's history.
        forwarders.retain(|forwarder| !forwarder.is_finished());
        forwarders.push(forwarder);
        Member { number, client }
    }
}

/// The stream of [`PoolEvent`]s, from [`Pool::events`].
pub struct PoolEvents {
    inner: BroadcastStream<PoolEvent>,
}

impl Stream for PoolEvents {
    type Item = PoolEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PoolEvent>> {
        Pin::new(&mut self.inner).poll_next(cx).map(|item| {
            item.map(|result| match result {
                Ok(event) => event,
                Err(BroadcastStreamRecvError::Lagged(missed)) => PoolEvent {
                    connection: None,
                    event: Event::Lagged { missed },
                },
            })
        })
    }
}

impl std::fmt::Debug for PoolEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolEvents").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Kalshi, Weex};

    #[tokio::test]
    async fn the_default_cap_is_the_venues_documented_channels_per_connection() {
        let config = || Config::builder("ws://127.0.0.1:9").build().unwrap();
        // WEEX documents 100 channels per connection; Kalshi documents none.
        let weex = Pool::new(config(), Weex::new, PoolOptions::default()).unwrap();
        assert_eq!(weex.max_per_connection(), 100);
        let kalshi = Pool::new(config(), Kalshi::new, PoolOptions::default()).unwrap();
        assert_eq!(kalshi.max_per_connection(), DEFAULT_MAX_PER_CONNECTION);
        let explicit = Pool::new(
            config(),
            Weex::new,
            PoolOptions::default().max_per_connection(7),
        );
        assert_eq!(explicit.unwrap().max_per_connection(), 7);
    }
}
