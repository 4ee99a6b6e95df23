//! How each connection attempt gets its byte stream.
//!
//! The supervisor calls [`Connector::connect`] once per attempt and runs TLS
//! (for `wss://`) and the WebSocket handshake on whatever stream comes back.
//! That makes the connector the one place to plug in rotating auth tokens (build
//! a fresh request URL or headers each time), proxies, or fault injection in
//! tests, without the supervisor knowing.
//!
//! For `wss://` the supervisor builds a rustls `ClientConfig` with an explicit
//! `ring` provider and the webpki roots, once per client. It never installs a
//! process-wide default provider: a library must not touch global state.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;

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
            let stream = TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(Transport {
                stream: Box::new(stream),
                request,
            })
        })
    }
}

/// The TLS client configuration used for `wss://`: rustls with the `ring`
/// provider and the Mozilla root store from `webpki-roots`.
pub(crate) fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_config_builds_without_a_process_default_provider() {
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
        assert!(tls_config().is_ok());
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    }
}
