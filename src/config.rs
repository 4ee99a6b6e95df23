//! Client configuration: a builder with documented defaults, validated once at
//! build time so that a bad value is a clear [`Error::Config`] up front instead of
//! a panic or a hot loop hours later.
//!
//! Every default is listed, with its reason, in the README's defaults table.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::HeaderSource;
use crate::backoff::Backoff;
use crate::connect_limiter::ConnectLimiter;
use crate::connector::{Connector, TcpConnector};
use crate::error::{Error, RedactedUrl};
use crate::proxy::Proxy;
use crate::queue::Overflow;
use crate::rate::RateLimit;
use crate::token::TokenSource;

/// How the client connects, retries, detects dead sockets and buffers messages.
///
/// Build one with [`Config::builder`].
#[derive(Clone)]
pub struct Config {
    pub(crate) url: String,
    pub(crate) redacted_url: RedactedUrl,
    pub(crate) connector: Arc<dyn Connector>,
    pub(crate) connect_timeout: Duration,
    pub(crate) backoff: Backoff,
    pub(crate) ping_interval: Duration,
    pub(crate) pong_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    /// Per channel: how long a subscription may receive nothing before it is
    /// reported stale (`stale_after`); empty by default.
    pub(crate) stale_after: Vec<(Arc<str>, Duration)>,
    pub(crate) request_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) max_message_size: usize,
    pub(crate) max_frame_size: usize,
    pub(crate) read_buffer_size: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) overflow: Overflow,
    pub(crate) rate_limit: RateLimit,
    pub(crate) command_capacity: usize,
    pub(crate) stash_capacity: usize,
    pub(crate) stash_bytes: usize,
    pub(crate) on_connect: Vec<String>,
    /// The user's close-code rule; `None`: the protocol's
    /// ([`Protocol::is_permanent_close`](crate::Protocol::is_permanent_close)).
    pub(crate) permanent_close: Option<Arc<dyn Fn(u16) -> bool + Send + Sync>>,
    pub(crate) resync_on_gap: bool,
    pub(crate) event_capacity: usize,
    pub(crate) token_source: Option<Arc<dyn TokenSource>>,
    pub(crate) connection_name: Arc<str>,
    pub(crate) metrics_interval: Duration,
    /// Shared by the members of a [`Pool`](crate::Pool): every attempt waits its turn.
    pub(crate) connect_limiter: Option<Arc<ConnectLimiter>>,
    pub(crate) header_source: Option<Arc<dyn HeaderSource>>,
    /// Sent as `User-Agent` on every handshake that has none yet; `None` sends none.
    pub(crate) user_agent: Option<Arc<str>>,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    /// Shared by the members of a [`Pool`](crate::Pool): client ids are unique
    /// across the pool, so one [`SubscriptionSet`](crate::SubscriptionSet) can
    /// hold subscriptions of several connections.
    pub(crate) client_ids: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// Records every input of the session's drive (`record/`).
    pub(crate) recorder: Option<crate::record::Recorder>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL is shown redacted; on-connect frames may hold credentials and are not shown.
        f.debug_struct("Config")
            .field("url", &self.redacted_url)
            .field("connect_timeout", &self.connect_timeout)
            .field("backoff", &self.backoff)
            .field("ping_interval", &self.ping_interval)
            .field("pong_timeout", &self.pong_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("stale_after", &self.stale_after)
            .field("request_timeout", &self.request_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("max_message_size", &self.max_message_size)
            .field("max_frame_size", &self.max_frame_size)
            .field("read_buffer_size", &self.read_buffer_size)
            .field("queue_capacity", &self.queue_capacity)
            .field("overflow", &self.overflow)
            .field("rate_limit", &self.rate_limit)
            .field("on_connect_frames", &self.on_connect.len())
            .field("resync_on_gap", &self.resync_on_gap)
            .field("token_source", &self.token_source.is_some())
            .field("connection_name", &self.connection_name)
            .field("metrics_interval", &self.metrics_interval)
            .field("handshake_headers", &self.header_source.is_some())
            .field("user_agent", &self.user_agent)
            .field("custom_tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Starts a builder for `url` (`ws://` or `wss://`).
    pub fn builder(url: impl Into<String>) -> ConfigBuilder {
        ConfigBuilder::new(url.into())
    }

    /// The endpoint with userinfo and query string removed.
    pub fn url(&self) -> &RedactedUrl {
        &self.redacted_url
    }

    /// The default queue capacity for subscriptions and the inbound stream.
    pub fn queue_capacity(&self) -> usize {
        self.queue_capacity
    }

    /// The default overflow policy for subscriptions and the inbound stream.
    pub fn overflow(&self) -> Overflow {
        self.overflow
    }
}

pub use crate::duration::LONGEST_DURATION;

/// The `User-Agent` sent on every handshake unless set otherwise
/// ([`ConfigBuilder::user_agent`]): the crate's name and version. Some venues
/// refuse a handshake without one (WEEX's public V3 endpoints require it).
pub const DEFAULT_USER_AGENT: &str =
    concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"));

/// Builder for [`Config`]. Every setter documents its default; every duration
/// is clamped to [`LONGEST_DURATION`].
#[must_use = "call .build() to get a Config"]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    fn new(url: String) -> Self {
        let redacted_url = RedactedUrl::new(&url);
        ConfigBuilder {
            config: Config {
                url,
                redacted_url,
                connector: Arc::new(TcpConnector::default()),
                connect_timeout: Duration::from_secs(10),
                backoff: Backoff::default(),
                ping_interval: Duration::from_secs(5),
                pong_timeout: Duration::from_secs(5),
                idle_timeout: None,
                stale_after: Vec::new(),
                request_timeout: Duration::from_secs(10),
                close_timeout: Duration::from_secs(5),
                max_message_size: 16 << 20,
                max_frame_size: 4 << 20,
                read_buffer_size: 16 << 10,
                queue_capacity: 1024,
                overflow: Overflow::DropOldest,
                rate_limit: RateLimit {
                    frames: 50,
                    per: Duration::from_secs(1),
                },
                command_capacity: 256,
                stash_capacity: 256,
                stash_bytes: 1024 * 1024,
                on_connect: Vec::new(),
                permanent_close: None,
                resync_on_gap: true,
                event_capacity: 1024,
                token_source: None,
                connection_name: Arc::from("0"),
                metrics_interval: Duration::from_secs(1),
                connect_limiter: None,
                header_source: None,
                user_agent: Some(Arc::from(DEFAULT_USER_AGENT)),
                tls: None,
                client_ids: None,
                recorder: None,
            },
        }
    }

    /// Replaces the connector (default: [`TcpConnector`], plain TCP or rustls for `wss://`).
    pub fn connector(mut self, connector: impl Connector) -> Self {
        self.config.connector = Arc::new(connector);
        self
    }

    /// Bound on TCP connect + TLS + WebSocket handshake. Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// The reconnect backoff policy. Default: [`Backoff::default`].
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// How often to ping (the venue's app-level ping when the protocol has one,
    /// else a WebSocket ping). Default 5 s: with the 5 s pong timeout a
    /// half-open socket is detected within 10 s, for one small frame each way
    /// every 5 s. Only an unanswered ping ends a session, so a quiet feed
    /// whose peer answers pings is never recycled by this.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.config.ping_interval = interval;
        self
    }

    /// How long to wait for the pong before the socket is declared dead.
    /// Default 5 s (a loopback or same-region round trip is milliseconds;
    /// raise it for a link that queues seconds of data ahead of the pong).
    pub fn pong_timeout(mut self, timeout: Duration) -> Self {
        self.config.pong_timeout = timeout;
        self
    }

    /// Reconnect when no data frame (or venue heartbeat) arrives for this long;
    /// pings and pongs do not count. `None` disables it. Default `None`: a
    /// dead socket is already found by the ping deadline (`ping_interval` +
    /// `pong_timeout`, 10 s by default), and a market can be quiet for minutes
    /// while its feed is alive, so an idle timer on by default would recycle
    /// live feeds. Set it for a venue whose subscriptions can stall while the
    /// socket still answers pings. The watch looks every quarter of the
    /// timeout rather than moving a timer per frame, so the reconnect comes
    /// between the timeout and 1.25 times it after the last sign of life, and
    /// up to a further quarter later when the consumer stalled the session
    /// (a full queue under `Backpressure`) meanwhile.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Report a subscription on `channel` as stale
    /// ([`Event::Stale`](crate::Event::Stale)) when it receives no data for
    /// `silent_for`, once per silent period. Off by default for every channel:
    /// how long a quiet market may be silent is the user's knowledge, not the
    /// library's. Silence counts from the subscription's acknowledgement on
    /// the current connection (or its last data), and the watch looks every
    /// quarter of the shortest expectation, so a report comes between
    /// `silent_for` and 1.25 times it. Nothing is reconnected: a stale report
    /// is a signal for the operator (see
    /// [`idle_timeout`](Self::idle_timeout) for a connection that should be
    /// recycled). Setting a channel again replaces its expectation. Must be
    /// greater than zero; clamped to [`LONGEST_DURATION`].
    pub fn stale_after(mut self, channel: impl Into<String>, silent_for: Duration) -> Self {
        let channel: Arc<str> = Arc::from(channel.into());
        self.config.stale_after.retain(|(c, _)| *c != channel);
        self.config.stale_after.push((channel, silent_for));
        self
    }

    /// How long a subscribe, unsubscribe or request waits for its answer. Default 10 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// How long [`Client::close`](crate::Client::close) waits for the close handshake. Default 5 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.config.close_timeout = timeout;
        self
    }

    /// Largest accepted message (after reassembly). Default 16 MiB.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config.max_message_size = bytes;
        self
    }

    /// Largest accepted single frame. Default 4 MiB.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.config.max_frame_size = bytes;
        self
    }

    /// Bytes read from the socket per read call, at the start and whenever
    /// traffic is calm. Default 16 KiB.
    ///
    /// The buffer lives as long as the connection, so it is most of an idle
    /// connection's memory (tungstenite's own default of 128 KiB was). 16 KiB
    /// holds over a hundred typical market-data frames, which then cost one
    /// system call and one clock read together; a larger frame still arrives
    /// whole (it is assembled up to `max_frame_size`). The buffer doubles
    /// while reads fill it, up to 128 KiB (a busy stream then costs a system
    /// call per ~1,000 small frames), and returns to this size at the first
    /// read that brings an eighth of it or less (`ws://` and `wss://`
    /// alike; under TLS it is the buffer below rustls).
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.config.read_buffer_size = bytes;
        self
    }

    /// Default capacity of each subscription queue and of the inbound stream. Default 1024.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.config.queue_capacity = capacity;
        self
    }

    /// Default overflow policy of each queue. Default [`Overflow::DropOldest`].
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.config.overflow = overflow;
        self
    }

    /// Strict outbound limit: at most `frames` frames in any window of `per`.
    /// Default 50 per second.
    pub fn rate_limit(mut self, frames: u32, per: Duration) -> Self {
        self.config.rate_limit = RateLimit { frames, per };
        self
    }

    /// Capacity of the bounded command channel from handles to the supervisor. Default 256.
    pub fn command_capacity(mut self, capacity: usize) -> Self {
        self.config.command_capacity = capacity;
        self
    }

    /// How many frames for a not-yet-acknowledged server id are held until the ack. Default 256.
    pub fn stash_capacity(mut self, capacity: usize) -> Self {
        self.config.stash_capacity = capacity;
        self
    }

    /// How many payload bytes those early frames may hold in all; the oldest
    /// are dropped (and counted unroutable) past it. Default 1 MiB: 256 slots
    /// of frames up to `max_message_size` would otherwise let a peer park
    /// gigabytes before an ack.
    pub fn stash_bytes(mut self, bytes: usize) -> Self {
        self.config.stash_bytes = bytes;
        self
    }

    /// A text frame sent after every (re)connect, before subscriptions are
    /// replayed (e.g. authentication). May be called several times; frames go out in order.
    pub fn on_connect(mut self, frame: impl Into<String>) -> Self {
        self.config.on_connect.push(frame.into());
        self
    }

    /// Which close codes stop reconnecting. Default: the protocol's rule
    /// ([`Protocol::is_permanent_close`](crate::Protocol::is_permanent_close)),
    /// which is [`default_permanent_close`](crate::default_permanent_close) unless the venue documents
    /// otherwise (WEEX closes with 1007 after refused subscribes, and
    /// reconnecting is right there).
    pub fn permanent_close_codes(
        mut self,
        is_permanent: impl Fn(u16) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.config.permanent_close = Some(Arc::new(is_permanent));
        self
    }

    /// Whether a sequence gap or reset re-subscribes that subscription for a fresh
    /// snapshot. Default `true`.
    pub fn resync_on_gap(mut self, resync: bool) -> Self {
        self.config.resync_on_gap = resync;
        self
    }

    /// Capacity of the lifecycle event broadcast; slow event readers see
    /// [`Event::Lagged`](crate::Event::Lagged). Default 1024.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.config.event_capacity = capacity;
        self
    }

    /// A source of session tokens for a private endpoint, called before every
    /// connection attempt and again (through a reconnect) when the venue says the
    /// session is invalid. Default: none.
    pub fn token_source(mut self, source: impl TokenSource) -> Self {
        self.config.token_source = Some(Arc::new(source));
        self
    }

    /// The `connection` label on this client's metrics and its tracing span,
    /// to tell several clients to one venue apart. Default `"0"`; a
    /// [`Pool`](crate::Pool) names its connections by index.
    pub fn connection_name(mut self, name: impl Into<String>) -> Self {
        self.config.connection_name = Arc::from(name.into());
        self
    }

    /// Records this connection's inputs (every frame with its receive time,
    /// connects, disconnects, commands, timer ticks, writes) with `recorder`,
    /// for [`Replay`](crate::Replay). Give one recorder to several clients to
    /// record them into one directory (each connection is its own stream).
    /// Default: not recorded.
    pub fn record(mut self, recorder: crate::record::Recorder) -> Self {
        self.config.recorder = Some(recorder);
        self
    }

    /// How often the counters are published to the `metrics` recorder (feature
    /// `metrics`; they are also published once more when the client finishes).
    /// Default 1 s.
    pub fn metrics_interval(mut self, interval: Duration) -> Self {
        self.config.metrics_interval = interval;
        self
    }

    /// Tunnels every connection attempt through `proxy` (HTTP `CONNECT` or
    /// SOCKS5). This replaces the connector. Default: no proxy.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.config.connector = Arc::new(proxy);
        self
    }

    /// Uses the proxy the environment names for this URL (`HTTPS_PROXY`, then
    /// `ALL_PROXY`, unless `NO_PROXY` lists the host); no proxy when none is set.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the variable holds an unusable proxy URL.
    pub fn proxy_from_env(self) -> Result<Self, Error> {
        match Proxy::from_env(&self.config.url)? {
            Some(proxy) => Ok(self.proxy(proxy)),
            None => Ok(self),
        }
    }

    /// A hook that returns headers for the WebSocket handshake, called before
    /// every connection attempt (e.g. [`KalshiAuth`](crate::KalshiAuth), which
    /// signs a fresh timestamp each time). The values are never logged or shown
    /// in errors. Default: none.
    pub fn handshake_headers(mut self, source: impl HeaderSource) -> Self {
        self.config.header_source = Some(Arc::new(source));
        self
    }

    /// The `User-Agent` header of every handshake. Default
    /// [`DEFAULT_USER_AGENT`] (`resilient-ws/<version>`). A `User-Agent` from
    /// [`handshake_headers`](Self::handshake_headers) wins over this one.
    /// [`build`](Self::build) refuses a value that is not visible ASCII.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.config.user_agent = Some(Arc::from(user_agent.into()));
        self
    }

    /// Sends no `User-Agent` header (unless
    /// [`handshake_headers`](Self::handshake_headers) adds one).
    pub fn no_user_agent(mut self) -> Self {
        self.config.user_agent = None;
        self
    }

    /// The rustls client config for `wss://` (a private CA, client
    /// certificates, another provider). Default: [`tls::client_config`](crate::tls::client_config),
    /// the provider and roots chosen by cargo features, verification on.
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.config.tls = Some(config);
        self
    }

    /// Validates and returns the configuration.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first invalid value.
    pub fn build(mut self) -> Result<Config, Error> {
        self.clamp_durations();
        let c = &self.config;
        let scheme_ok = c.url.starts_with("ws://") || c.url.starts_with("wss://");
        if !scheme_ok {
            return Err(Error::Config(format!(
                "url must start with ws:// or wss://, got {}",
                c.redacted_url
            )));
        }
        let nonzero = [
            ("connect_timeout", c.connect_timeout),
            ("ping_interval", c.ping_interval),
            ("pong_timeout", c.pong_timeout),
            ("request_timeout", c.request_timeout),
            ("close_timeout", c.close_timeout),
            ("rate_limit.per", c.rate_limit.per),
            ("metrics_interval", c.metrics_interval),
        ];
        for (name, value) in nonzero {
            if value.is_zero() {
                return Err(Error::Config(format!("{name} must be greater than zero")));
            }
        }
        if c.idle_timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::Config(
                "idle_timeout must be greater than zero (or None)".into(),
            ));
        }
        if c.stale_after.iter().any(|(_, t)| t.is_zero()) {
            return Err(Error::Config(
                "stale_after must be greater than zero".into(),
            ));
        }
        let sizes = [
            ("queue_capacity", c.queue_capacity),
            ("command_capacity", c.command_capacity),
            ("stash_capacity", c.stash_capacity),
            ("stash_bytes", c.stash_bytes),
            ("event_capacity", c.event_capacity),
            ("max_message_size", c.max_message_size),
            ("max_frame_size", c.max_frame_size),
            ("read_buffer_size", c.read_buffer_size),
            ("rate_limit.frames", c.rate_limit.frames as usize),
        ];
        for (name, value) in sizes {
            if value == 0 {
                return Err(Error::Config(format!("{name} must be greater than zero")));
            }
        }
        if c.max_frame_size > c.max_message_size {
            return Err(Error::Config(
                "max_frame_size must not exceed max_message_size".into(),
            ));
        }
        if let Some(ua) = &c.user_agent {
            let printable = ua.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
            if !printable {
                return Err(Error::Config(
                    "user_agent must be visible ASCII (spaces and tabs allowed)".into(),
                ));
            }
        }
        c.overflow.validate()?;
        c.backoff.validate()?;
        Ok(self.config)
    }

    /// Clamps every duration to [`LONGEST_DURATION`] (see there why).
    fn clamp_durations(&mut self) {
        let c = &mut self.config;
        for d in [
            &mut c.connect_timeout,
            &mut c.ping_interval,
            &mut c.pong_timeout,
            &mut c.request_timeout,
            &mut c.close_timeout,
            &mut c.rate_limit.per,
            &mut c.backoff.initial,
            &mut c.backoff.cap,
            &mut c.backoff.reset_after,
            &mut c.metrics_interval,
        ] {
            *d = (*d).min(LONGEST_DURATION);
        }
        if let Some(idle) = &mut c.idle_timeout {
            *idle = (*idle).min(LONGEST_DURATION);
        }
        for (_, silent_for) in &mut c.stale_after {
            *silent_for = (*silent_for).min(LONGEST_DURATION);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let config = Config::builder("wss://example.com/v2").build();
        assert!(config.is_ok());
    }

    #[test]
    fn invalid_values_are_rejected_with_a_clear_message() {
        let cases: Vec<(ConfigBuilder, &str)> = vec![
            (Config::builder("http://x"), "ws:// or wss://"),
            (
                Config::builder("ws://x").queue_capacity(0),
                "queue_capacity",
            ),
            (
                Config::builder("ws://x").ping_interval(Duration::ZERO),
                "ping_interval",
            ),
            (
                Config::builder("ws://x").backoff(Backoff::new(
                    Duration::from_secs(10),
                    Duration::from_secs(1),
                )),
                "cap",
            ),
            (
                Config::builder("ws://x").rate_limit(0, Duration::from_secs(1)),
                "rate_limit",
            ),
        ];
        for (builder, needle) in cases {
            match builder.build() {
                Err(Error::Config(msg)) => assert!(msg.contains(needle), "{msg} lacks {needle}"),
                other => panic!("expected a config error about {needle}, got {other:?}"),
            }
        }
    }

    #[test]
    fn durations_at_duration_max_are_clamped_to_a_year() {
        let max = Duration::MAX;
        let c = Config::builder("ws://x")
            .connect_timeout(max)
            .ping_interval(max)
            .pong_timeout(max)
            .idle_timeout(Some(max))
            .request_timeout(max)
            .close_timeout(max)
            .rate_limit(1, max)
            .backoff(Backoff::new(max, max).reset_after(max))
            .build()
            .unwrap();
        for d in [
            c.connect_timeout,
            c.ping_interval,
            c.pong_timeout,
            c.idle_timeout.unwrap_or_default(),
            c.request_timeout,
            c.close_timeout,
            c.rate_limit.per,
            c.backoff.initial,
            c.backoff.cap,
            c.backoff.reset_after,
        ] {
            assert_eq!(d, LONGEST_DURATION);
        }
        // Every clamped value is safe to add to an instant and to feed the backoff.
        let now = std::time::Instant::now();
        assert!(now.checked_add(LONGEST_DURATION * 4).is_some());
        assert_eq!(c.backoff.base_delay(u32::MAX), LONGEST_DURATION);
    }

    #[test]
    fn a_bad_url_error_does_not_leak_secrets() {
        let err = Config::builder("http://user:secret@h/?token=secret").build();
        let text = format!(
            "{err:?} {}",
            err.as_ref()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        );
        assert!(!text.contains("secret"), "{text}");
    }
}
