//! A NATS JetStream sink (cargo feature `nats`).
//!
//! Rules, and why:
//! - Each item of the set goes to `{prefix}.{venue}.{channel}.{instrument}`
//!   ([`subject`](super::subject)); signals go to the same subject as the data
//!   they are about, marked with the `Rws-Signal` header, so a book builder
//!   reading one instrument sees them in order with the data.
//! - Headers: `Nats-Msg-Id` ([`identity`](super::identity) for data; a
//!   per-sink random nonce and counter for signals, which are one replica's
//!   observation and must never be merged with another's), `Rws-Received`
//!   (receive wall time, ns since the Unix epoch), `Rws-Venue-Time` (the
//!   venue's time as the adapter read it, ns since the Unix epoch, when the
//!   frame has one), `Rws-Seq` (the
//!   sequence the protocol reported; per connection for Kalshi),
//!   `Rws-Client-Id`, `Rws-Id-Source`, and `Rws-Replica` when set.
//! - The payload is the venue frame as received ([`Frame::as_bytes`]); a
//!   signal's payload is a small JSON object describing it. A book break is
//!   the signal `book_break` with its `kind` (`checksum_mismatch` with
//!   `expected`/`computed`, `discontinuity` with `expected`/`got`, `unusable`
//!   with `reason`), as [`BookBreak`] names it.
//! - Publishing keeps at most `max_in_flight` messages awaiting JetStream's
//!   acknowledgement. A failed or unacknowledged publish is sent again with
//!   the same message id, after everything in flight settled and in the
//!   original order, so one replica's messages reach the stream in order and
//!   a retry of a message that was stored is only de-duplicated.
//! - Messages not yet acknowledged are buffered, bounded in count and bytes;
//!   at the bound [`SinkOverflow`] applies. Every item is counted
//!   ([`SinkStats`]).
//! - Reconnecting is the NATS client's job; its connects and disconnects are
//!   counted and logged.
//! - Secrets (password, token, credentials) live in [`Secret`] or in a file;
//!   a URL with userinfo is refused, so no secret reaches a `Debug`, an error
//!   or a log line (the NATS client logs the server URL). Caveat: async-nats
//!   0.46 itself logs its CONNECT command, credentials included, at TRACE
//!   under the target `async_nats::connection`: keep that target at DEBUG or
//!   below.
//! - TLS always goes through a rustls config this crate builds with an
//!   explicit provider ([`crate::tls`]): nothing is installed process-wide and
//!   certificates are always verified.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::HeaderMap;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::time::Instant;
use tungstenite::Bytes;

use super::identity::{message_id, venue_time_nanos, IdSource};
use super::subject::subject;
use super::{SinkOverflow, SinkStats};
use crate::book::BookBreak;
use crate::error::RedactedUrl;
use crate::message::{Frame, Update};
use crate::set::{SetItem, SubscriptionSet};
use crate::token::Secret;

/// The NATS client this sink is built on, for readers and custom setups.
pub use async_nats;

/// Header marking an in-band signal; its value is the signal's kind.
pub const SIGNAL_HEADER: &str = "Rws-Signal";
/// Header: receive wall time, nanoseconds since the Unix epoch.
pub const RECEIVED_HEADER: &str = "Rws-Received";
/// Header: the venue's timestamp of the payload, as the venue wrote it.
pub const VENUE_TIME_HEADER: &str = "Rws-Venue-Time";
/// Header: the sequence number the protocol reported for the frame.
pub const SEQ_HEADER: &str = "Rws-Seq";
/// Header: the client id of the subscription.
pub const CLIENT_ID_HEADER: &str = "Rws-Client-Id";
/// Header: the replica name, when configured.
pub const REPLICA_HEADER: &str = "Rws-Replica";
/// Header: how the message id was made (`seq`, `crc`, `hash`, `signal`).
pub const ID_SOURCE_HEADER: &str = "Rws-Id-Source";

/// A sink that cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NatsSinkError {
    /// The options are unusable (the message names the option, never a secret).
    #[error("NATS sink configuration: {0}")]
    Config(String),
    /// Connecting failed (the error kind only; NATS error texts may quote input).
    #[error("cannot connect to NATS at {url}: {kind}")]
    Connect {
        /// The server URL (never holds userinfo: those URLs are refused).
        url: RedactedUrl,
        /// What failed, e.g. `AuthorizationViolation`, `Tls`, `Io`, `TimedOut`.
        kind: String,
    },
    /// Creating or reading the JetStream stream failed.
    #[error("JetStream stream {stream}: {reason}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// The server's reason.
        reason: String,
    },
}

/// How the sink authenticates to NATS.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum NatsAuth {
    /// No credentials.
    #[default]
    None,
    /// User and password.
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: Secret,
    },
    /// A token.
    Token(Secret),
    /// A `.creds` file (JWT and NKey seed), read when connecting.
    CredentialsFile(PathBuf),
}

/// Where the sink connects, how, and its bounds.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    url: String,
    auth: NatsAuth,
    require_tls: bool,
    tls_roots: Option<rustls::RootCertStore>,
    tls_ca_file: Option<PathBuf>,
    prefix: String,
    venue: String,
    replica: Option<String>,
    max_in_flight: usize,
    buffer_messages: usize,
    buffer_bytes: usize,
    overflow: SinkOverflow,
    ack_timeout: Duration,
    retry_delay: Duration,
    drain_timeout: Duration,
    reconnect_delay_max: Duration,
    connect_timeout: Duration,
    duplicate_window: Duration,
}

impl NatsOptions {
    /// Publishes `venue`'s data (the protocol's name, e.g. `"kraken"`) to the
    /// server at `url` (`nats://host:port` or `tls://host:port`).
    pub fn new(url: impl Into<String>, venue: impl Into<String>) -> Self {
        NatsOptions {
            url: url.into(),
            auth: NatsAuth::None,
            require_tls: false,
            tls_roots: None,
            tls_ca_file: None,
            prefix: "md".to_owned(),
            venue: venue.into(),
            replica: None,
            max_in_flight: 256,
            buffer_messages: 100_000,
            buffer_bytes: 64 << 20,
            overflow: SinkOverflow::Backpressure,
            ack_timeout: Duration::from_secs(5),
            retry_delay: Duration::from_millis(200),
            drain_timeout: Duration::from_secs(5),
            reconnect_delay_max: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(5),
            duplicate_window: Duration::from_secs(120),
        }
    }

    /// Credentials (default none).
    pub fn auth(mut self, auth: NatsAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Requires TLS even if the server does not ask for it (default: TLS when
    /// the URL is `tls://` or the server requires it).
    pub fn require_tls(mut self, on: bool) -> Self {
        self.require_tls = on;
        self
    }

    /// Trust exactly these roots (a private CA) instead of the crate's default roots.
    pub fn tls_roots(mut self, roots: rustls::RootCertStore) -> Self {
        self.tls_roots = Some(roots);
        self
    }

    /// Trust the CA certificates of this PEM file instead of the default roots.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// Subject prefix (default `md`); may contain dots, no wildcards.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// This replica's name, sent in `Rws-Replica` and as the client name.
    pub fn replica(mut self, name: impl Into<String>) -> Self {
        self.replica = Some(name.into());
        self
    }

    /// Messages awaiting acknowledgement at most (default 256, at least 1).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// The buffer's bounds: messages (default 100 000) and bytes (default
    /// 64 MiB), in flight included. At least one message.
    pub fn buffer(mut self, messages: usize, bytes: usize) -> Self {
        self.buffer_messages = messages.max(1);
        self.buffer_bytes = bytes.max(1);
        self
    }

    /// What happens at the buffer's bound (default [`SinkOverflow::Backpressure`]).
    pub fn overflow(mut self, overflow: SinkOverflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// How long to wait for JetStream's acknowledgement before sending again
    /// (default 5 s).
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The pause before failed publishes are sent again (default 200 ms).
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// How long [`NatsSink::run`] keeps publishing what it buffered after the
    /// set ended or it was told to stop (default 5 s).
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The longest pause between reconnect attempts (default 2 s).
    pub fn reconnect_delay_max(mut self, delay: Duration) -> Self {
        self.reconnect_delay_max = delay;
        self
    }

    /// The JetStream de-duplication window of a stream made by
    /// [`NatsSink::ensure_stream`] (default 2 min). Replicas must publish an
    /// update within this window of each other for it to be stored once.
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    fn validate(&self) -> Result<(), NatsSinkError> {
        let authority = self.url.split("://").nth(1).unwrap_or(&self.url);
        let authority = authority.split('/').next().unwrap_or(authority);
        if authority.contains('@') {
            return Err(NatsSinkError::Config(
                "the NATS URL must not carry credentials; use NatsOptions::auth".to_owned(),
            ));
        }
        let bad_prefix = self.prefix.split('.').any(|t| {
            t.is_empty()
                || t.bytes()
                    .any(|b| !b.is_ascii_graphic() || b == b'*' || b == b'>')
        });
        if !self.prefix.is_empty() && bad_prefix {
            return Err(NatsSinkError::Config(format!(
                "subject prefix {:?} is not a valid literal subject",
                self.prefix
            )));
        }
        Ok(())
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig, NatsSinkError> {
        let bad = |what: &str| NatsSinkError::Config(format!("TLS: {what}"));
        let roots = match (&self.tls_roots, &self.tls_ca_file) {
            (Some(roots), _) => Some(roots.clone()),
            (None, Some(path)) => {
                use rustls::pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                    .map_err(|_| bad("cannot read the CA file"))?;
                for cert in certs {
                    let cert = cert.map_err(|_| bad("the CA file is not PEM"))?;
                    roots
                        .add(cert)
                        .map_err(|_| bad("a CA certificate is invalid"))?;
                }
                Some(roots)
            }
            (None, None) => None,
        };
        let config = match roots {
            Some(roots) => crate::tls::client_config_with_roots(roots),
            None => crate::tls::client_config(),
        }
        .map_err(|_| bad("cannot build a client config"))?;
        Ok((*config).clone())
    }
}

/// A NATS JetStream publisher for subscription sets. See the module docs.
#[derive(Debug)]
pub struct NatsSink {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    options: NatsOptions,
    stats: Arc<Mutex<SinkStats>>,
    /// Whether the client is connected, from its events: nothing is sent
    /// while it is not, so a message dropped from the buffer meanwhile is
    /// not sitting in the client's own outbound queue, to be sent later.
    connected: tokio::sync::watch::Receiver<bool>,
    /// Random per sink: signal ids of two sinks (or of one replica before
    /// and after a restart) never collide.
    nonce: u64,
}

fn lock(stats: &Mutex<SinkStats>) -> MutexGuard<'_, SinkStats> {
    stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl NatsSink {
    /// Connects to NATS. After the first connection the client reconnects by
    /// itself, without limit, pausing at most
    /// [`reconnect_delay_max`](NatsOptions::reconnect_delay_max).
    ///
    /// # Errors
    ///
    /// [`NatsSinkError::Config`] for unusable options,
    /// [`NatsSinkError::Connect`] when the first connection fails.
    pub async fn connect(options: NatsOptions) -> Result<NatsSink, NatsSinkError> {
        options.validate()?;
        let stats = Arc::new(Mutex::new(SinkStats::default()));
        let url = RedactedUrl::new(&options.url);
        let connect_error = |kind: String| NatsSinkError::Connect {
            url: url.clone(),
            kind,
        };
        let events = Arc::clone(&stats);
        let (connected_tx, connected) = tokio::sync::watch::channel(true);
        let max_delay = options.reconnect_delay_max;
        let mut connect = async_nats::ConnectOptions::new()
            .connection_timeout(options.connect_timeout)
            .max_reconnects(None)
            .reconnect_delay_callback(move |attempts| {
                let factor = u32::try_from(attempts).unwrap_or(u32::MAX);
                Duration::from_millis(50)
                    .saturating_mul(factor)
                    .min(max_delay)
            })
            .tls_client_config(options.tls_config()?)
            .require_tls(options.require_tls)
            .event_callback(move |event| {
                let events = Arc::clone(&events);
                let connected = connected_tx.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            lock(&events).connects += 1;
                            connected.send_replace(true);
                        }
                        async_nats::Event::Disconnected => {
                            lock(&events).disconnects += 1;
                            connected.send_replace(false);
                        }
                        _ => {}
                    }
                    tracing::info!(%event, "NATS connection event");
                }
            });
        if let Some(replica) = &options.replica {
            connect = connect.name(replica.clone());
        }
        connect = match &options.auth {
            NatsAuth::None => connect,
            NatsAuth::UserPassword { user, password } => {
                connect.user_and_password(user.clone(), password.expose().to_owned())
            }
            NatsAuth::Token(token) => connect.token(token.expose().to_owned()),
            NatsAuth::CredentialsFile(path) => {
                connect.credentials_file(path).await.map_err(|_| {
                    NatsSinkError::Config("cannot read the credentials file".to_owned())
                })?
            }
        };
        let client = connect
            .connect(options.url.as_str())
            .await
            .map_err(|error| {
                // I/O and TLS errors say why (e.g. "invalid peer certificate:
                // UnknownIssuer") and hold no input; other kinds are named only.
                let kind = error.kind();
                let detail = match kind {
                    async_nats::ConnectErrorKind::Io | async_nats::ConnectErrorKind::Tls => {
                        std::error::Error::source(&error)
                            .map(|source| format!("{kind:?} ({source})"))
                            .unwrap_or_else(|| format!("{kind:?}"))
                    }
                    _ => format!("{kind:?}"),
                };
                connect_error(detail)
            })?;
        // The first Connected event may race the callback's registration.
        {
            let mut s = lock(&stats);
            s.connects = s.connects.max(1);
        }
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(options.ack_timeout)
            .max_ack_inflight(options.max_in_flight.saturating_add(1))
            .build(client.clone());
        Ok(NatsSink {
            client,
            jetstream,
            options,
            stats,
            connected,
            nonce: rand::random(),
        })
    }

    /// Makes sure a stream named `name` captures `{prefix}.>` with the
    /// configured de-duplication window (file storage); an existing stream is
    /// used as it is.
    ///
    /// # Errors
    ///
    /// [`NatsSinkError::Stream`] when the server refuses.
    pub async fn ensure_stream(&self, name: &str) -> Result<(), NatsSinkError> {
        let config = jetstream::stream::Config {
            name: name.to_owned(),
            subjects: vec![format!("{}.>", self.options.prefix)],
            duplicate_window: self.options.duplicate_window,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        self.jetstream
            .get_or_create_stream(config)
            .await
            .map(|_| ())
            .map_err(|error| NatsSinkError::Stream {
                stream: name.to_owned(),
                reason: error.to_string(),
            })
    }

    /// The counters so far (see [`SinkStats`]).
    pub fn stats(&self) -> SinkStats {
        *lock(&self.stats)
    }

    /// A handle to read the counters from another task while [`run`](Self::run) runs.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(Arc::clone(&self.stats))
    }

    /// The NATS client (its connection state, server info).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Publishes every item of `set` until the set ends or `stop` completes,
    /// then keeps publishing what it buffered for at most the drain timeout;
    /// what is left then is counted as dropped at close. Returns the counters.
    pub async fn run<F>(&self, set: &mut SubscriptionSet, stop: F) -> SinkStats
    where
        F: Future<Output = ()>,
    {
        let mut run = Run::new(self);
        run.drive(set, stop).await;
        self.stats()
    }

    fn outgoing(&self, item: SetItem, signal_counter: &mut u64) -> Option<Outgoing> {
        let channel = item.topic.channel();
        let instrument = item.topic.symbol_name().unwrap_or("");
        let subject = subject(
            &self.options.prefix,
            &self.options.venue,
            channel,
            instrument,
        );
        let mut headers = HeaderMap::new();
        let (payload, signal) = match item.item {
            Ok(Update::Data(frame)) => {
                let id = message_id(&self.options.venue, channel, instrument, &frame);
                headers.insert("Nats-Msg-Id", id.id.as_str());
                headers.insert(ID_SOURCE_HEADER, id_source(id.source));
                stamp(&mut headers, &frame);
                (Bytes::copy_from_slice(frame.as_bytes()), false)
            }
            Ok(signal) => {
                let (kind, body) = describe(&signal)?;
                *signal_counter += 1;
                let id = format!(
                    "{}.{channel}.{instrument}:signal:{:016x}:{}",
                    self.options.venue, self.nonce, signal_counter
                );
                headers.insert("Nats-Msg-Id", id.as_str());
                headers.insert(ID_SOURCE_HEADER, "signal");
                headers.insert(SIGNAL_HEADER, kind);
                (Bytes::from(body), true)
            }
            Err(error) => {
                lock(&self.stats).errors += 1;
                tracing::warn!(client_id = %item.client_id, %error, "set member error (not published)");
                return None;
            }
        };
        headers.insert(CLIENT_ID_HEADER, item.client_id.get().to_string().as_str());
        if let Some(replica) = &self.options.replica {
            headers.insert(REPLICA_HEADER, replica.as_str());
        }
        let header_bytes: usize = headers
            .iter()
            .map(|(name, values)| {
                let name: &str = name.as_ref();
                name.len() + values.iter().map(|v| v.as_str().len() + 4).sum::<usize>()
            })
            .sum();
        let size = payload.len() + subject.len() + header_bytes + 16;
        Some(Outgoing {
            order: 0,
            subject,
            headers,
            payload,
            size,
            signal,
        })
    }
}

/// Reads a running sink's counters from another task.
#[derive(Debug, Clone)]
pub struct StatsHandle(Arc<Mutex<SinkStats>>);

impl StatsHandle {
    /// The counters now.
    pub fn get(&self) -> SinkStats {
        *lock(&self.0)
    }
}

fn id_source(source: IdSource) -> &'static str {
    match source {
        IdSource::VenueSequence => "seq",
        IdSource::ChecksumAndTime => "crc",
        _ => "hash",
    }
}

fn stamp(headers: &mut HeaderMap, frame: &Frame) {
    let received = frame
        .received()
        .wall
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    headers.insert(RECEIVED_HEADER, received.to_string().as_str());
    if let Some(time) = venue_time_nanos(frame) {
        headers.insert(VENUE_TIME_HEADER, time.as_str());
    }
    if let Some(seq) = frame.seq() {
        headers.insert(SEQ_HEADER, seq.to_string().as_str());
    }
}

/// A signal's kind and JSON body; `None` for an update kind this sink does
/// not know (the enum is non-exhaustive), which is then not published.
fn describe(update: &Update) -> Option<(&'static str, String)> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let (kind, body) = match update {
        Update::Gap { last_seq, next_seq } => (
            "gap",
            format!(
                r#"{{"signal":"gap","last_seq":{last_seq},"next_seq":{next_seq},"at_ns":{now}}}"#
            ),
        ),
        Update::Reset { last_seq, next_seq } => (
            "reset",
            format!(
                r#"{{"signal":"reset","last_seq":{last_seq},"next_seq":{next_seq},"at_ns":{now}}}"#
            ),
        ),
        Update::BookBreak(kind) => ("book_break", describe_break(kind, now)?),
        Update::Resubscribed { .. } => (
            "resubscribed",
            format!(r#"{{"signal":"resubscribed","at_ns":{now}}}"#),
        ),
        _ => return None,
    };
    Some((kind, body))
}

/// The JSON body of a book-break signal (`None` only if the reason could not
/// be written as JSON, which a `&str` always can).
fn describe_break(kind: &BookBreak, now: u128) -> Option<String> {
    let detail = match kind {
        BookBreak::ChecksumMismatch { expected, computed } => {
            format!(r#""kind":"checksum_mismatch","expected":{expected},"computed":{computed}"#)
        }
        BookBreak::Discontinuity { expected, got } => {
            format!(r#""kind":"discontinuity","expected":{expected},"got":{got}"#)
        }
        BookBreak::Unusable { reason } => {
            // Fixed text from the adapters, escaped all the same.
            let reason = serde_json::to_string(reason).ok()?;
            format!(r#""kind":"unusable","reason":{reason}"#)
        }
    };
    Some(format!(
        r#"{{"signal":"book_break",{detail},"at_ns":{now}}}"#
    ))
}

/// One message to publish, kept until JetStream acknowledged it.
struct Outgoing {
    /// Arrival order, to resend failed messages in order.
    order: u64,
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
    size: usize,
    signal: bool,
}

type Settled = (Outgoing, Result<PublishAck, PublishError>);

/// The state of one [`NatsSink::run`].
struct Run<'a> {
    sink: &'a NatsSink,
    unsent: VecDeque<Outgoing>,
    failed: Vec<Outgoing>,
    in_flight: FuturesUnordered<BoxFuture<'static, Settled>>,
    buffered: usize,
    buffered_bytes: usize,
    next_order: u64,
    signals: u64,
    retry_at: Option<Instant>,
}

impl<'a> Run<'a> {
    fn new(sink: &'a NatsSink) -> Self {
        Run {
            sink,
            unsent: VecDeque::new(),
            failed: Vec::new(),
            in_flight: FuturesUnordered::new(),
            buffered: 0,
            buffered_bytes: 0,
            next_order: 0,
            signals: 0,
            retry_at: None,
        }
    }

    fn options(&self) -> &NatsOptions {
        &self.sink.options
    }

    fn has_room(&self) -> bool {
        self.buffered < self.options().buffer_messages
            && self.buffered_bytes < self.options().buffer_bytes
    }

    /// Writes the buffer gauges into the shared counters.
    fn publish_gauges(&self, stats: &mut SinkStats) {
        stats.buffered = self.buffered as u64;
        stats.buffered_bytes = self.buffered_bytes as u64;
        stats.in_flight = self.in_flight.len() as u64;
    }

    fn forget(&mut self, message: &Outgoing) {
        self.buffered -= 1;
        self.buffered_bytes -= message.size;
    }

    async fn drive<F: Future<Output = ()>>(&mut self, set: &mut SubscriptionSet, stop: F) {
        let stop = stop.fuse();
        futures::pin_mut!(stop);
        let mut stopping = false;
        let mut drain_deadline = None::<Instant>;
        let mut connected = self.sink.connected.clone();
        loop {
            let is_connected = *connected.borrow_and_update();
            if self.in_flight.is_empty() && !self.failed.is_empty() {
                if self.retry_at.is_none() {
                    self.retry_at = Some(Instant::now() + self.options().retry_delay);
                }
                if self.retry_at.is_some_and(|at| at <= Instant::now()) {
                    self.requeue_failed();
                }
            }
            if is_connected
                && self.failed.is_empty()
                && self.in_flight.len() < self.options().max_in_flight
            {
                if let Some(message) = self.unsent.pop_front() {
                    let send = self.sink.jetstream.send_publish(
                        message.subject.clone(),
                        PublishMessage::build()
                            .payload(message.payload.clone())
                            .headers(message.headers.clone()),
                    );
                    // Sending waits only for room in the client's outbound
                    // queue; a stop request is noticed meanwhile.
                    tokio::select! {
                        biased;
                        () = &mut stop, if !stopping => {
                            stopping = true;
                            drain_deadline = Some(Instant::now() + self.options().drain_timeout);
                            self.unsent.push_front(message);
                        }
                        sent = send => match sent {
                            Ok(ack) => {
                                self.in_flight.push(async move { (message, ack.await) }.boxed());
                            }
                            Err(error) => self.on_failure(message, &error),
                        },
                    }
                    self.sync_gauges();
                    continue;
                }
            }
            if stopping && self.buffered == 0 {
                break;
            }
            let retry_at = self.retry_at;
            let can_read = !stopping
                && (self.has_room() || self.options().overflow != SinkOverflow::Backpressure);
            tokio::select! {
                biased;
                () = &mut stop, if !stopping => {
                    stopping = true;
                    drain_deadline = Some(Instant::now() + self.options().drain_timeout);
                }
                Some((message, result)) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    self.settle(message, result);
                }
                () = sleep_until_opt(drain_deadline), if drain_deadline.is_some() => break,
                () = sleep_until_opt(retry_at), if retry_at.is_some() && self.in_flight.is_empty() => {}
                Ok(()) = connected.changed(), if !is_connected => {}
                item = set.next(), if can_read => match item {
                    Some(item) => self.accept(item),
                    None => {
                        stopping = true;
                        drain_deadline = Some(Instant::now() + self.options().drain_timeout);
                    }
                },
            }
            self.sync_gauges();
        }
        let left = self.buffered as u64;
        self.unsent.clear();
        self.failed.clear();
        self.in_flight = FuturesUnordered::new();
        self.buffered = 0;
        self.buffered_bytes = 0;
        let mut stats = lock(&self.sink.stats);
        stats.dropped_at_close += left;
        self.publish_gauges(&mut stats);
        if left > 0 {
            tracing::warn!(
                left,
                "NATS sink stopped with unacknowledged messages (counted as dropped at close)"
            );
        }
    }

    fn sync_gauges(&self) {
        let mut stats = lock(&self.sink.stats);
        self.publish_gauges(&mut stats);
    }

    /// Takes one item from the set into the buffer, applying the overflow policy.
    fn accept(&mut self, item: SetItem) {
        let Some(mut message) = self.sink.outgoing(item, &mut self.signals) else {
            return;
        };
        let max_payload = self.sink.client.server_info().max_payload;
        let mut stats = lock(&self.sink.stats);
        stats.received += 1;
        stats.signals += u64::from(message.signal);
        if message.size > self.options().buffer_bytes
            || (max_payload > 0 && message.payload.len() > max_payload)
        {
            stats.dropped_too_large += 1;
            tracing::warn!(subject = %message.subject, bytes = message.payload.len(), "message too large for NATS; dropped");
            return;
        }
        drop(stats);
        // Under backpressure the set is not read while the buffer is full;
        // the one message read while there was room is kept even if it
        // passes the byte bound (by at most its own size).
        let policy_applies = self.options().overflow != SinkOverflow::Backpressure;
        while policy_applies && !self.fits(&message) {
            let victim = match self.options().overflow {
                SinkOverflow::DropOldest => self.oldest_waiting(),
                _ => None,
            };
            let mut stats = lock(&self.sink.stats);
            stats.dropped_overflow += 1;
            match victim {
                Some(victim) => {
                    drop(stats);
                    self.forget(&victim);
                }
                None => return,
            }
        }
        message.order = self.next_order;
        self.next_order += 1;
        self.buffered += 1;
        self.buffered_bytes += message.size;
        self.unsent.push_back(message);
    }

    fn fits(&self, message: &Outgoing) -> bool {
        self.buffered < self.options().buffer_messages
            && self.buffered_bytes + message.size <= self.options().buffer_bytes
    }

    /// The oldest buffered message that is not awaiting an acknowledgement.
    fn oldest_waiting(&mut self) -> Option<Outgoing> {
        if !self.failed.is_empty() {
            let oldest = self
                .failed
                .iter()
                .enumerate()
                .min_by_key(|(_, m)| m.order)
                .map(|(i, _)| i)?;
            return Some(self.failed.swap_remove(oldest));
        }
        self.unsent.pop_front()
    }

    fn settle(&mut self, message: Outgoing, result: Result<PublishAck, PublishError>) {
        match result {
            Ok(ack) => {
                self.forget(&message);
                let mut stats = lock(&self.sink.stats);
                if ack.duplicate {
                    stats.deduplicated += 1;
                } else {
                    stats.published += 1;
                }
            }
            Err(error) => self.on_failure(message, &error),
        }
    }

    fn on_failure(&mut self, message: Outgoing, error: &PublishError) {
        tracing::debug!(kind = ?error.kind(), subject = %message.subject, "publish not acknowledged; will retry");
        lock(&self.sink.stats).retries += 1;
        self.failed.push(message);
    }

    /// Puts failed messages back at the front of the queue, oldest first.
    fn requeue_failed(&mut self) {
        self.retry_at = None;
        self.failed.sort_by_key(|m| std::cmp::Reverse(m.order));
        for message in self.failed.drain(..) {
            self.unsent.push_front(message);
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_book_break_is_published_with_its_kind() {
        let body = |kind| {
            let (signal, body) = describe(&Update::BookBreak(kind)).expect("described");
            assert_eq!(signal, "book_break");
            let mut json: serde_json::Value = serde_json::from_str(&body).expect(&body);
            assert!(json["at_ns"].as_u64().is_some(), "{body}");
            json.as_object_mut().map(|o| o.remove("at_ns"));
            json
        };
        assert_eq!(
            body(BookBreak::ChecksumMismatch {
                expected: 1,
                computed: 2
            }),
            serde_json::json!({"signal": "book_break", "kind": "checksum_mismatch", "expected": 1, "computed": 2})
        );
        assert_eq!(
            body(BookBreak::Discontinuity {
                expected: -1,
                got: 7
            }),
            serde_json::json!({"signal": "book_break", "kind": "discontinuity", "expected": -1, "got": 7})
        );
        assert_eq!(
            body(BookBreak::Unusable {
                reason: "a \"quoted\" reason"
            }),
            serde_json::json!({"signal": "book_break", "kind": "unusable", "reason": "a \"quoted\" reason"})
        );
    }

    #[test]
    fn debug_and_errors_never_show_secrets() {
        let options =
            NatsOptions::new("nats://127.0.0.1:4222", "kraken").auth(NatsAuth::UserPassword {
                user: "feed".into(),
                password: Secret::new("hunter2-password"),
            });
        let shown = format!("{options:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let token = NatsOptions::new("nats://127.0.0.1:4222", "k")
            .auth(NatsAuth::Token(Secret::new("tok-s3cret")));
        assert!(!format!("{token:?}").contains("s3cret"));
        let with_userinfo = NatsOptions::new("nats://feed:hunter2@127.0.0.1:4222", "k");
        let error = with_userinfo
            .validate()
            .err()
            .map(|e| format!("{e} {e:?}"))
            .unwrap_or_default();
        assert!(error.contains("must not carry credentials"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        assert!(NatsOptions::new("nats://h:1", "k")
            .prefix("a.*")
            .validate()
            .is_err());
        assert!(NatsOptions::new("nats://h:1", "k")
            .prefix("md.prod")
            .validate()
            .is_ok());
    }
}
