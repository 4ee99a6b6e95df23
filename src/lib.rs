//! # resilient-ws
//!
//! WebSocket market-data streams that stay alive.
//!
//! One supervisor task owns each socket (or, with [`Feed`], the consumer's own
//! task drives it, under the same rules). It reconnects with jittered backoff,
//! detects dead connections (pings, an idle timeout), replays subscriptions on
//! every new connection and re-maps them onto the new server ids, so each
//! [`Subscription`] keeps yielding on the same stream with the same
//! [`client_id`](Subscription::client_id). Each subscription has its own
//! bounded queue with an [`Overflow`] policy, and every message is either
//! delivered or counted as dropped ([`Stats`]). Every failure is one [`Error`];
//! when the client gives up, every stream receives the terminal error as its
//! last item and then ends: nothing hangs.
//!
//! Venue formats plug in through [`Protocol`]; [`Kalshi`] and [`Kraken`]
//! (v2, with order-book checksums) ship in the crate, and [`RawProtocol`]
//! treats every frame as data.
//!
//! ```no_run
//! use futures::StreamExt;
//! use resilient_ws::{Client, Config, Kraken, Topic, Update};
//!
//! # async fn run() -> Result<(), resilient_ws::Error> {
//! let config = Config::builder("wss://ws.kraken.com/v2").build()?;
//! let (client, _unsolicited) = Client::connect(config, Kraken::new()).await?;
//! let mut ticker = client.subscribe(Topic::new("ticker").symbol("BTC/USD")).await?;
//! while let Some(item) = ticker.next().await {
//!     match item {
//!         Ok(Update::Data(frame)) => println!("{}", frame.as_text().unwrap_or_default()),
//!         Ok(signal) => eprintln!("signal: {signal:?}"),
//!         Err(error) if error.is_retryable() => eprintln!("notice: {error}"),
//!         Err(error) => return Err(error),
//!     }
//! }
//! client.close().await
//! # }
//! ```
//!
//! See the README for the architecture, the defaults and the error table.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
mod backoff;
pub mod book;
mod client;
mod close_code;
mod command;
mod config;
mod connect;
mod connect_limiter;
mod connector;
pub mod decimal;
mod duration;
mod error;
mod events;
mod feed;
mod ids;
pub mod market;
mod message;
#[cfg(feature = "metrics")]
mod metrics;
pub mod pool;
pub mod protocol;
mod proxy;
mod queue;
mod queue_group;
mod rate;
mod record;
mod replay;
mod send;
mod session;
mod set;
pub mod shard;
pub mod sink;
mod socket;
mod stats;
mod stream;
mod subscription;
mod supervisor;
pub mod tls;
mod token;
mod venue_error;

#[cfg(feature = "kraken-token")]
pub use auth::{kraken_signature, KrakenTokenSource, KRAKEN_REST_URL, MAX_TOKEN_RESPONSE};
pub use auth::{HeaderFuture, HeaderSource, Headers, KalshiAuth, WeexAuth, KALSHI_WS_PATH};
/// The rustls this crate is built with, for building a
/// [`ClientConfig`](rustls::ClientConfig) (see [`tls`]).
pub use rustls;

pub use backoff::Backoff;
pub use book::{
    BookBreak, BookSnapshot, BookTop, BookView, BookViews, SnapshotError, SnapshotFuture,
    SnapshotSource,
};
pub use client::{Client, QueueOptions};
pub use close_code::default_permanent_close;
pub use config::{Config, ConfigBuilder, DEFAULT_USER_AGENT, LONGEST_DURATION};
pub use connect::MAX_RETRY_AFTER;
pub use connector::{AsyncStream, ConnectFuture, Connector, TcpConnector, Transport};
pub use decimal::{Decimal, DecimalError};
pub use error::{
    BoxError, ConnectionError, Error, Operation, ProtocolError, RedactedUrl, SubscriptionOp,
};
pub use events::{ConnectionState, Event, Events, Unplaced};
pub use feed::{Feed, FeedHandle};
pub use ids::{ClientId, MemberKey};
pub use rate::RateLimit;
pub use record::{RecordOptions, RecordStats, Recorder, Recording, RecordingSummary};
pub use replay::{Pace, Replay, ReplayStats};

pub use message::{DecodeError, Frame, Received, Update};
pub use pool::{ConnectionStats, Pool, PoolEvent, PoolEvents, PoolOptions, PoolStats};
pub use protocol::kraken::KRAKEN_LOCKOUT;
pub use protocol::{
    Inbound, Kalshi, Kraken, Okx, Protocol, RawProtocol, Request, ServerId, Topic, VenueLimits,
    VenueTimeFinder, Weex,
};
pub use proxy::{Proxy, ProxyKind, MAX_CONNECT_RESPONSE};
pub use queue::{Overflow, QueueStats};
pub use send::SendOptions;
pub use set::{SetItem, SubscriptionSet};
pub use shard::Shard;
pub use sink::{SinkOverflow, SinkStats};
pub use stats::{Stats, UnplacedKind, MAX_KINDS, MAX_KIND_BYTES, OTHER_KINDS};
pub use stream::{Messages, Subscription};
pub use token::{Secret, TokenError, TokenFuture, TokenSource};
pub use venue_error::{Severity, VenueError, VenueErrorKind};

/// The internals the fuzz harnesses in `testkit/` reach (`--features
/// fuzzing`). Not a stable API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

// The README's code blocks are compiled as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
