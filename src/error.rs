//! One error type for everything that can go wrong, and the redaction that keeps
//! secrets out of it.
//!
//! A single failure (say, reconnecting was given up) must reach every open
//! subscription stream, so [`Error`] is `Clone`: sources are kept behind an `Arc`
//! and stay reachable through [`std::error::Error::source`].
//!
//! URLs often carry credentials (`wss://user:secret@host/?token=...`). Every URL
//! stored in an error is a [`RedactedUrl`], and every foreign error message that
//! might quote the URL (tungstenite's "Unable to connect to {url}") is scrubbed
//! before it is stored, so neither `Display` nor `Debug` can leak a secret.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::ids::ClientId;

pub use crate::venue_error::VenueError;

/// The boxed, shareable source of an [`Error`].
pub type BoxError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in a resilient-ws client.
///
/// Marked `#[non_exhaustive]`: match with a wildcard arm.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening the connection (TCP, TLS or WebSocket handshake) failed, or the
    /// connection is down when an operation needs it.
    #[error("connection to {url} failed (attempt {attempts}): {source}")]
    Connection {
        /// The endpoint, without userinfo or query string.
        url: RedactedUrl,
        /// Consecutive failed attempts so far (0 when no attempt was involved).
        attempts: u32,
        /// What went wrong underneath.
        source: BoxError,
    },
    /// The server closed the connection with a close frame (or the client was closed).
    #[error("connection closed by peer (code {code}{}{reason})", if reason.is_empty() { "" } else { ": " })]
    Closed {
        /// The close code (1005 when the frame carried none).
        code: u16,
        /// The close reason sent with the code, possibly empty.
        reason: String,
        /// Whether the code ends the session for good under the configured rule
        /// ([`ConfigBuilder::permanent_close_codes`](crate::ConfigBuilder::permanent_close_codes),
        /// by default [`default_permanent_close`](crate::default_permanent_close)):
        /// the supervisor then stops instead of reconnecting.
        permanent: bool,
    },
    /// An operation did not finish in time.
    #[error("{operation} timed out after {timeout:?}")]
    Timeout {
        /// Which operation timed out.
        operation: Operation,
        /// The limit that was exceeded.
        timeout: Duration,
    },
    /// Reconnecting was given up; `last_error` is the failure that ended the last attempt.
    #[error("gave up reconnecting after {attempts} attempts: {last_error}")]
    Reconnect {
        /// How many consecutive attempts failed.
        attempts: u32,
        /// The error of the last attempt.
        last_error: Box<Error>,
    },
    /// The peer broke the WebSocket protocol or sent a frame we cannot accept.
    #[error("protocol error: {protocol_error}")]
    Protocol {
        /// What was wrong.
        protocol_error: ProtocolError,
    },
    /// Messages were discarded because a queue with the
    /// [`Overflow::Error`](crate::Overflow::Error) policy was full. The stream goes on.
    #[error("queue full (capacity {queue_size}): {dropped_count} message(s) dropped")]
    QueueFull {
        /// The queue's capacity.
        queue_size: usize,
        /// Messages dropped since the previous `QueueFull` item.
        dropped_count: u64,
    },
    /// A consumer stayed stalled past the [`Overflow::Block`](crate::Overflow::Block)
    /// timeout. Fatal for that subscription only.
    #[error("subscription {client_id} ({channel}, server id {server_id}) blocked the connection: queue of {maxsize} stayed full")]
    Backpressure {
        /// The subscription's channel.
        channel: String,
        /// The server id the subscription had, or `-` when none.
        server_id: String,
        /// The subscription's durable client id.
        client_id: ClientId,
        /// The queue's capacity.
        maxsize: usize,
    },
    /// The venue refused a subscription operation.
    #[error("{op} of subscription {client_id} failed{}: {error}", req_id.map(|id| format!(" (request {id})")).unwrap_or_default())]
    Subscription {
        /// Which operation failed.
        op: SubscriptionOp,
        /// The subscription's durable client id.
        client_id: ClientId,
        /// The request id the operation used, when one was sent.
        req_id: Option<u64>,
        /// The venue's own error.
        error: VenueError,
    },
    /// The venue answered a [`Client::request`](crate::Client::request) with an error.
    #[error("request {req_id} failed: {error}")]
    Request {
        /// The request id.
        req_id: u64,
        /// The venue's own error.
        error: VenueError,
    },
    /// The user's token source or handshake header source failed; the attempt
    /// is retried after the backoff delay.
    #[error("token source failed (attempt {attempts}): {source}")]
    Token {
        /// Consecutive failed attempts so far.
        attempts: u32,
        /// The token source's own error.
        source: BoxError,
    },
    /// The configuration is invalid (returned by [`ConfigBuilder::build`](crate::ConfigBuilder::build)).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The client was closed with [`Client::close`](crate::Client::close).
    #[error("client closed")]
    ClientClosed,
    /// The connection task panicked (a bug, possibly in a user
    /// [`Protocol`](crate::Protocol), [`Connector`](crate::Connector) or
    /// [`TokenSource`](crate::TokenSource)). Every stream ends with this error
    /// and [`Client::closed`](crate::Client::closed) resolves with it. The
    /// panic message is left to the panic hook: it may quote user data.
    #[error("the connection task panicked")]
    Panicked,
}

impl Error {
    /// Whether retrying the same thing later may succeed.
    ///
    /// Connection failures, timeouts, non-permanent closes, queue notices and
    /// protocol glitches are retryable; a venue rejection, a permanent close code
    /// (under the configured rule, as recorded in [`Error::Closed`]), giving up,
    /// bad configuration and a closed client are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connection { .. } | Error::Timeout { .. } | Error::Protocol { .. } => true,
            Error::QueueFull { .. } | Error::Backpressure { .. } => true,
            Error::Closed { permanent, .. } => !permanent,
            Error::Subscription { error, .. } | Error::Request { error, .. } => {
                error.is_retryable()
            }
            Error::Token { .. } => true,
            Error::Reconnect { .. } | Error::Config(_) | Error::ClientClosed | Error::Panicked => {
                false
            }
        }
    }

    /// How long to wait before retrying, when the failure says: a venue lockout
    /// (Kraken `EGeneral:Temporary lockout`: about 15 minutes) or a handshake
    /// refused with 429/503 and `Retry-After`. The supervisor also honours
    /// these hints by lengthening its next backoff delay.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Connection { .. } => self.connection_error()?.retry_after(),
            Error::Subscription { error, .. } | Error::Request { error, .. } => error.retry_after(),
            Error::Reconnect { last_error, .. } => last_error.retry_after(),
            _ => None,
        }
    }

    /// The transport reason of an [`Error::Connection`] (e.g. the HTTP status
    /// of a refused handshake via [`ConnectionError::http_status`]).
    pub fn connection_error(&self) -> Option<&ConnectionError> {
        match self {
            Error::Connection { source, .. } => source.downcast_ref::<ConnectionError>(),
            Error::Reconnect { last_error, .. } => last_error.connection_error(),
            _ => None,
        }
    }

    /// The venue's error, for [`Error::Subscription`] and [`Error::Request`].
    pub fn venue_error(&self) -> Option<&VenueError> {
        match self {
            Error::Subscription { error, .. } | Error::Request { error, .. } => Some(error),
            _ => None,
        }
    }

    pub(crate) fn protocol(protocol_error: ProtocolError) -> Self {
        Error::Protocol { protocol_error }
    }

    pub(crate) fn connection(url: &RedactedUrl, attempts: u32, source: ConnectionError) -> Self {
        Error::Connection {
            url: url.clone(),
            attempts,
            source: Arc::new(source),
        }
    }
}

/// The operation a [`Error::Timeout`] refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// TCP connect, TLS and the WebSocket handshake.
    Connect,
    /// Waiting for a pong after a ping.
    Ping,
    /// Waiting for data: the idle timeout.
    Receive,
    /// Waiting for a subscribe acknowledgement.
    Subscribe,
    /// Waiting for an unsubscribe acknowledgement.
    Unsubscribe,
    /// Waiting for the answer to a request.
    Request,
    /// Writing a frame to the socket.
    Send,
    /// The close handshake.
    Close,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Connect => "connect",
            Operation::Ping => "ping",
            Operation::Receive => "receive",
            Operation::Subscribe => "subscribe",
            Operation::Unsubscribe => "unsubscribe",
            Operation::Request => "request",
            Operation::Send => "send",
            Operation::Close => "close",
        })
    }
}

/// The subscription operation a [`Error::Subscription`] refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubscriptionOp {
    /// The first subscribe.
    Subscribe,
    /// A subscribe replayed after a reconnect or for a fresh snapshot.
    Resubscribe,
    /// An unsubscribe.
    Unsubscribe,
}

impl fmt::Display for SubscriptionOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubscriptionOp::Subscribe => "subscribe",
            SubscriptionOp::Resubscribe => "resubscribe",
            SubscriptionOp::Unsubscribe => "unsubscribe",
        })
    }
}

/// What was wrong with what the peer sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A message or frame exceeded the configured size limit.
    #[error("message too large: {0}")]
    TooLarge(String),
    /// A text frame was not valid UTF-8.
    #[error("invalid UTF-8 in a text frame")]
    InvalidUtf8,
    /// The peer violated the WebSocket protocol.
    #[error("WebSocket protocol violation: {0}")]
    Violation(String),
    /// A frame could not be classified by the venue protocol.
    #[error("unparseable frame: {0}")]
    Unparseable(String),
    /// A frame of an unexpected kind (e.g. binary where text was expected).
    #[error("unexpected frame: {0}")]
    Unexpected(String),
}

/// The transport-level reason behind [`Error::Connection`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// An I/O error (refused, reset, name lookup, ...).
    #[error("I/O error: {message}")]
    Io {
        /// The kind of I/O error.
        kind: std::io::ErrorKind,
        /// The error's text, scrubbed of secrets.
        message: String,
    },
    /// The WebSocket handshake or TLS failed.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The connection dropped without a close frame.
    #[error("connection lost: {0}")]
    Lost(String),
    /// The operation needs a live connection and there is none right now.
    #[error("not connected")]
    NotConnected,
    /// The connector (user hook) failed.
    #[error("connector failed: {0}")]
    Connector(String),
    /// The server answered the WebSocket upgrade with an HTTP error status.
    #[error("handshake refused with HTTP {status}{}", retry_after.map(|d| format!(" (retry after {d:?})")).unwrap_or_default())]
    Refused {
        /// The HTTP status (401 bad credentials, 429 too many requests, ...).
        status: u16,
        /// The `Retry-After` of a 429 or 503, capped; the next attempt waits at least this.
        retry_after: Option<Duration>,
    },
    /// TLS failed: an unknown CA, a certificate for another name, ...
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The proxy refused or broke the tunnel.
    #[error("proxy failed: {0}")]
    Proxy(String),
}

impl ConnectionError {
    /// The wait a refusal asked for (429/503 with `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ConnectionError::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status of a refused handshake.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ConnectionError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A URL with its userinfo and query string removed, safe to print.
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedUrl(Arc<str>);

impl RedactedUrl {
    /// Redacts `url`: `wss://user:pw@host:443/path?token=x#f` becomes `wss://host:443/path`.
    pub fn new(url: &str) -> Self {
        RedactedUrl(redact_url(url).into())
    }

    /// The redacted text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = match authority.rfind('@') {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    format!("{scheme}{host}{path}")
}

/// Replaces every secret part of `url` (userinfo, query, fragment) found in `text`.
///
/// Used on foreign error messages before they are stored, because some of them
/// quote the URL they failed on.
pub(crate) fn scrub(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &redact_url(url));
    for secret in secrets_of(url) {
        if !secret.is_empty() {
            out = out.replace(secret, "<redacted>");
        }
    }
    out
}

fn secrets_of(url: &str) -> Vec<&str> {
    let mut secrets = Vec::new();
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if let Some(at) = rest[..authority_end].rfind('@') {
        secrets.push(&rest[..at]);
    }
    if let Some(q) = url.find(['?', '#']) {
        secrets.push(&url[q + 1..]);
    }
    secrets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_removes_userinfo_query_and_fragment() {
        assert_eq!(
            redact_url("wss://user:secret@example.com:443/v2?token=secret#x"),
            "wss://example.com:443/v2"
        );
        assert_eq!(redact_url("ws://127.0.0.1:9/"), "ws://127.0.0.1:9/");
        assert_eq!(redact_url("ws://h?token=secret"), "ws://h");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn scrub_hides_secrets_quoted_in_foreign_messages() {
        let url = "wss://user:secret@example.com/v2?token=secret";
        let text = format!("Unable to connect to {url}; token=secret");
        let out = scrub(&text, url);
        assert!(!out.contains("secret"), "{out}");
        assert!(out.contains("wss://example.com/v2"), "{out}");
    }

    #[test]
    fn errors_are_clone_and_keep_their_source() {
        let url = RedactedUrl::new("wss://a:b@h/?t=1");
        let err = Error::connection(&url, 2, ConnectionError::NotConnected);
        let clone = err.clone();
        assert!(std::error::Error::source(&clone).is_some());
        assert!(clone.is_retryable());
        assert_eq!(
            clone.to_string(),
            "connection to wss://h/ failed (attempt 2): not connected"
        );
    }
}
