//! [`OkxRestSnapshots`]: OKX's REST order book as a snapshot source (cargo
//! feature `okx-rest`).
//!
//! Rules, and why:
//! - HTTP goes through `reqwest` with rustls and the config from
//!   [`crate::tls`] (same provider and roots as the WebSocket, passed
//!   explicitly; nothing process-wide).
//! - The answer is read up to [`MAX_BOOKS_RESPONSE`] bytes; errors name the
//!   request's failure without its URL.
//! - No credentials: the order book is public.

use std::sync::Arc;

use super::{books_path, parse_books, MAX_BOOKS_RESPONSE};
use crate::book::{SnapshotError, SnapshotFuture, SnapshotSource};
use crate::error::Error;

/// OKX's REST API root.
pub const OKX_REST_URL: &str = "https://www.okx.com";

/// A [`SnapshotSource`] that fetches `GET /api/v5/market/books` for each
/// requested instrument, `depth` levels per side (OKX allows up to 400).
///
/// ```no_run
/// use resilient_ws::protocol::okx::rest::OkxRestSnapshots;
/// use resilient_ws::Okx;
/// let okx = Okx::new().snapshot_source(OkxRestSnapshots::new(400)?);
/// # Ok::<(), resilient_ws::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct OkxRestSnapshots {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base_url: String,
    depth: usize,
    http: reqwest::Client,
}

impl OkxRestSnapshots {
    /// Against [`OKX_REST_URL`] with the default TLS config.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when TLS cannot be set up.
    pub fn new(depth: usize) -> Result<Self, Error> {
        let tls = crate::tls::client_config()
            .map_err(|e| Error::Config(format!("OKX snapshot source TLS: {e}")))?;
        Self::with_options(OKX_REST_URL, depth, tls)
    }

    /// With another REST root (`https://host:port`, or `http://` for a
    /// local endpoint) and rustls config.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the HTTP client cannot be built.
    pub fn with_options(
        base_url: &str,
        depth: usize,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .build()
            .map_err(|e| Error::Config(format!("OKX snapshot source HTTP client: {e}")))?;
        Ok(OkxRestSnapshots {
            inner: Arc::new(Inner {
                base_url: base_url.trim_end_matches('/').to_owned(),
                depth,
                http,
            }),
        })
    }

    async fn fetch(
        inner: Arc<Inner>,
        inst: String,
    ) -> Result<crate::book::BookSnapshot, SnapshotError> {
        let url = format!("{}{}", inner.base_url, books_path(&inst, inner.depth));
        let mut response = inner.http.get(url).send().await.map_err(|e| {
            SnapshotError::from(format!("okx books request failed: {}", e.without_url()))
        })?;
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            SnapshotError::from(format!("okx books read failed: {}", e.without_url()))
        })? {
            if bytes.len() + chunk.len() > MAX_BOOKS_RESPONSE {
                return Err("okx books: answer too long".into());
            }
            bytes.extend_from_slice(&chunk);
        }
        parse_books(&bytes)
    }
}

impl SnapshotSource for OkxRestSnapshots {
    fn snapshot(&self, symbol: &str) -> SnapshotFuture {
        Box::pin(Self::fetch(Arc::clone(&self.inner), symbol.to_owned()))
    }
}
