//! One connection attempt: the connector's stream, the per-attempt handshake
//! headers, TLS for `wss://`, then the WebSocket handshake.
//!
//! Rules, and why:
//! - Handshake headers come from the [`HeaderSource`](crate::HeaderSource)
//!   right before the handshake, so a signed timestamp is as fresh as it can be.
//!   They are marked sensitive and never logged; a bad one is named, not quoted.
//! - Every handshake carries a `User-Agent` (the configured one, default
//!   [`DEFAULT_USER_AGENT`](crate::DEFAULT_USER_AGENT)) unless the header
//!   source already set one: some venues refuse a handshake without it.
//! - A refused handshake keeps its HTTP status
//!   ([`ConnectionError::Refused`]). For 429 and 503 a `Retry-After` (seconds
//!   or an HTTP date, RFC 9110 section 10.2.3) is kept too, capped at
//!   [`MAX_RETRY_AFTER`] because the peer chooses it; the supervisor then
//!   waits at least that long before the next attempt, as for close 1013.
//! - A TLS failure (unknown CA, wrong name) is [`ConnectionError::Tls`] with
//!   rustls's reason, not a bare I/O error.
//! - Every foreign message is scrubbed of the URL's secrets before it is stored.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::ServerName;
use tungstenite::client::uri_mode;
use tungstenite::error::UrlError;
use tungstenite::handshake::client::Request;
use tungstenite::http::header::{HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use tungstenite::http::HeaderMap;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::stream::Mode;

use crate::config::Config;
use crate::connector::AsyncStream;
use crate::error::{scrub, ConnectionError, Error};
use crate::proxy::ProxyError;
use crate::socket::{handshake, Bridge, Transport, WsStream, GROWN_BLOCK};

/// The WebSocket the supervisor runs a session on.
pub(crate) type Ws = WsStream;

/// tungstenite's own read buffer: frames are cut from it and then shared
/// with the queues, so it only ever gets a few KiB per read anyway; the
/// block-sized reads from the OS happen in the bridge
/// (`socket/bridge.rs`, `read_buffer_size`).
const FRAME_BUFFER: usize = 4 << 10;

/// The longest `Retry-After` honoured (15 minutes, Kraken's lockout length):
/// a peer must not be able to park the client for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// Opens one connection. `tls` caches the default client config across attempts.
pub(crate) async fn open(
    config: &Config,
    tls: &mut Option<Arc<rustls::ClientConfig>>,
    attempt: u32,
) -> Result<Ws, Error> {
    let url = &config.redacted_url;
    let transport = config.connector.connect(&config.url).await.map_err(|e| {
        let message = scrub(&e.to_string(), &config.url);
        let proxy = e.get_ref().is_some_and(|inner| inner.is::<ProxyError>());
        let source = if proxy {
            ConnectionError::Proxy(message)
        } else {
            ConnectionError::Io {
                kind: e.kind(),
                message,
            }
        };
        Error::connection(url, attempt, source)
    })?;
    let mut request = transport.request;
    if let Some(source) = &config.header_source {
        add_headers(&mut request, source.as_ref(), attempt).await?;
    }
    if let Some(user_agent) = &config.user_agent {
        // Checked by `ConfigBuilder::build`; a header source's own one wins.
        if let Ok(value) = HeaderValue::from_str(user_agent) {
            request.headers_mut().entry(USER_AGENT).or_insert(value);
        }
    }
    let transport = secure(transport.stream, &request, config, tls)
        .await
        .map_err(|e| Error::connection(url, attempt, e))?;
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_frame_size))
        .read_buffer_size(FRAME_BUFFER.min(config.read_buffer_size));
    // The OS is read into a block that grows while the traffic fills it
    // (up to 128 KiB, as tungstenite reads) and returns to
    // `read_buffer_size` when it calms, so idle connections stay small
    // (`socket/block.rs`): on a plain connection that is the bridge's block;
    // under TLS it sits below rustls (`socket/transport.rs`), and rustls
    // keeps the plaintext of a record, so the bridge's block above it only
    // saves polls: a small fixed one refills from memory.
    let (block, cap) = if transport.is_tls() {
        let block = FRAME_BUFFER.min(config.read_buffer_size);
        (block, block)
    } else {
        (config.read_buffer_size, GROWN_BLOCK)
    };
    let bridge = Bridge::new(transport, block, cap);
    handshake(request, bridge, ws_config)
        .await
        .map_err(|e| Error::connection(url, attempt, classify(e, &config.url)))
}

/// The transport for `request`: TLS over `stream` for `wss://` (the
/// configured `ClientConfig`, else the default one, built once and cached
/// in `tls`), `stream` as it is for `ws://`. The server name is the URL's
/// host, an IP address too.
async fn secure(
    stream: Box<dyn AsyncStream>,
    request: &Request,
    config: &Config,
    tls: &mut Option<Arc<rustls::ClientConfig>>,
) -> Result<Transport, ConnectionError> {
    let raw_url = &config.url;
    let host = request
        .uri()
        .host()
        .ok_or_else(|| classify(UrlError::NoHostName.into(), raw_url))?;
    let mode = uri_mode(request.uri()).map_err(|e| classify(e, raw_url))?;
    if matches!(mode, Mode::Plain) {
        return Ok(Transport::plain(stream));
    }
    let tls_config = match (&config.tls, &tls) {
        (Some(user), _) => Arc::clone(user),
        (None, Some(cached)) => Arc::clone(cached),
        (None, None) => {
            let built = crate::tls::client_config()
                .map_err(|e| ConnectionError::Tls(format!("setup: {e}")))?;
            *tls = Some(Arc::clone(&built));
            built
        }
    };
    // rustls wants an IPv6 address without its brackets.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let server_name = ServerName::try_from(host.to_owned())
        .map_err(|_| ConnectionError::Tls("Invalid DNS name".into()))?;
    Transport::tls(
        stream,
        config.read_buffer_size,
        GROWN_BLOCK,
        server_name,
        tls_config,
    )
    .await
    .map_err(|e| classify(tungstenite::Error::Io(e), raw_url))
}

/// Asks the header source and puts its headers on `request`.
async fn add_headers(
    request: &mut Request,
    source: &dyn crate::auth::HeaderSource,
    attempt: u32,
) -> Result<(), Error> {
    let token_error = |message: String| Error::Token {
        attempts: attempt,
        source: Arc::new(ConnectionError::Handshake(message)),
    };
    let headers = source.headers().await.map_err(|e| Error::Token {
        attempts: attempt,
        source: Arc::from(e),
    })?;
    for (name, value) in headers.iter() {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| token_error(format!("invalid handshake header name {name:?}")))?;
        let mut value = HeaderValue::from_str(value.expose())
            .map_err(|_| token_error(format!("invalid value for handshake header {name}")))?;
        value.set_sensitive(true);
        request.headers_mut().append(header, value);
    }
    Ok(())
}

/// Turns a handshake failure into a readable [`ConnectionError`].
fn classify(error: tungstenite::Error, raw_url: &str) -> ConnectionError {
    use tungstenite::Error as WsError;
    match error {
        WsError::Http(response) => {
            let status = response.status().as_u16();
            let retry_after = match status {
                429 | 503 => retry_after(response.headers(), SystemTime::now()),
                _ => None,
            };
            ConnectionError::Refused {
                status,
                retry_after,
            }
        }
        WsError::Io(io) => {
            let tls = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .map(ToString::to_string);
            match tls {
                Some(reason) => ConnectionError::Tls(scrub(&reason, raw_url)),
                None => ConnectionError::Io {
                    kind: io.kind(),
                    message: scrub(&io.to_string(), raw_url),
                },
            }
        }
        WsError::Tls(tls) => ConnectionError::Tls(scrub(&tls.to_string(), raw_url)),
        other => ConnectionError::Handshake(scrub(&other.to_string(), raw_url)),
    }
}

/// A `Retry-After` value as a wait from `now`: delta-seconds or an HTTP date,
/// capped at [`MAX_RETRY_AFTER`]. `None` when absent or unreadable.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(text).ok()?;
            at.duration_since(now).unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(RETRY_AFTER, v);
        }
        headers
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_caps_both() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(retry_after(&with("7"), now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&with("99999999"), now), Some(MAX_RETRY_AFTER));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(120));
        assert_eq!(
            retry_after(&with(&later), now),
            Some(Duration::from_secs(120))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(120));
        assert_eq!(retry_after(&with(&past), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&with("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
