//! How each connection attempt gets its byte stream.
//!
//! The supervisor calls [`Connector::connect`] once per attempt and runs TLS
//! (for `wss://`) and the WebSocket handshake on whatever stream comes back.
//! That makes the connector the one place to plug in rotating auth tokens (build
//! a fresh request URL or headers each time), proxies, or fault injection in
//! tests, without the supervisor knowing.
//!
//! TLS for `wss://` is layered on top by the supervisor (see [`crate::tls`]).

use std::future::Future;
use std::io;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Request;

/// A byte stream the WebSocket runs over.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncStream for T {}

/// The boxed future a [`Connector`] returns.
pub type ConnectFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Transport>> + Send + 'a>>;

/// What a connector produces for one attempt: the stream and the HTTP upgrade
/// request to send over it.
pub struct Transport {
    /// The connected byte stream (plain TCP; TLS is layered on top for `wss://`).
    pub stream: Box<dyn AsyncStream>,
    /// The handshake request (URL, headers such as auth tokens).
    pub request: Request,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The request may carry credentials; show nothing of it.
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

/// Produces a fresh stream and request for every connection attempt.
pub trait Connector: Send + Sync + 'static {
    /// Connects to `url`. Called once per attempt; the supervisor bounds it with
    /// the connect timeout. Errors should not quote `url` (the supervisor scrubs
    /// it anyway).
    fn connect<'a>(&'a self, url: &'a str) -> ConnectFuture<'a>;
}

/// The default connector: TCP (with `TCP_NODELAY`) to the URL's host and port.
#[derive(Debug, Clone, Default)]
pub struct TcpConnector {
    _private: (),
}

impl Connector for TcpConnector {
    fn connect<'a>(&'a self, url: &'a str) -> ConnectFuture<'a> {
        Box::pin(async move {
            let (request, host, port) = target_of(url)?;
            let stream = TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(Transport {
                stream: Box::new(stream),
                request,
            })
        })
    }
}

/// The handshake request for `url` and the host and port to reach: the
/// host without IPv6 brackets, the port from the URL or the scheme's
/// default (443 for `wss`, else 80). Shared by every connector that opens
/// its own TCP stream (direct or through a proxy), so they agree on where
/// a URL points.
///
/// The error never quotes the URL (it may carry credentials).
pub(crate) fn target_of(url: &str) -> io::Result<(Request, String, u16)> {
    let request = url
        .into_client_request()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let uri = request.uri();
    let host = uri
        .host()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "URL has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("wss") {
            443
        } else {
            80
        });
    Ok((request, host, port))
}

#[cfg(test)]
mod tests {
    use super::target_of;

    #[test]
    fn a_url_names_its_host_and_port_or_the_schemes_default() {
        let of = |url: &str| target_of(url).map(|(_, host, port)| (host, port)).unwrap();
        assert_eq!(of("ws://127.0.0.1:9001/feed"), ("127.0.0.1".into(), 9001));
        assert_eq!(of("ws://[::1]:9/x?token=t"), ("::1".into(), 9));
        assert_eq!(
            of("wss://ws.example.com/v3"),
            ("ws.example.com".into(), 443)
        );
        assert_eq!(of("ws://ws.example.com"), ("ws.example.com".into(), 80));
        let error = target_of("http://user:s3cret@[bad").unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }
}
