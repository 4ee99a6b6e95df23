//! The handshake-header hook every signer implements: [`Headers`] (values
//! kept as [`Secret`]s) and [`HeaderSource`], called before every attempt.
//!
//! A file of its own, below the venue signers (`kalshi.rs`, `weex.rs`) that
//! implement it, so they never import the module that re-exports them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::token::{Secret, TokenError};

/// Headers for one WebSocket handshake. `Debug` shows the names, never the values.
#[derive(Clone, Default)]
pub struct Headers {
    entries: Vec<(String, Secret)>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers::default()
    }

    /// Adds `name: value` (kept in order; a repeated name is sent twice).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.entries.push((name.into(), Secret::new(value)));
        self
    }

    /// Builder form of [`insert`](Self::insert).
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(name, value);
        self
    }

    /// The headers, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Secret)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// How many headers there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(n, _)| format!("{n}: <redacted>")))
            .finish()
    }
}

/// The future a [`HeaderSource`] returns.
pub type HeaderFuture = Pin<Box<dyn Future<Output = Result<Headers, TokenError>> + Send>>;

/// Builds the handshake headers for one connection attempt (auth signatures,
/// API keys). Called before every attempt, inside the connect timeout; a
/// failure is an [`Error::Token`](crate::Error::Token) retried after the backoff
/// delay. Header values never reach an error, `Debug` output or log line.
///
/// Implemented for every `Fn() -> impl Future<Output = Result<Headers, TokenError>>`:
///
/// ```
/// use resilient_ws::{Config, Headers, TokenError};
/// let config = Config::builder("wss://example.com/ws")
///     .handshake_headers(|| async {
///         Ok::<_, TokenError>(Headers::new().with("X-API-KEY", "key-from-a-vault"))
///     })
///     .build();
/// assert!(config.is_ok());
/// ```
pub trait HeaderSource: Send + Sync + 'static {
    /// The headers for the attempt about to start.
    fn headers(&self) -> HeaderFuture;
}

impl<F, Fut> HeaderSource for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Headers, TokenError>> + Send + 'static,
{
    fn headers(&self) -> HeaderFuture {
        Box::pin(self())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_names_not_values() {
        let headers = Headers::new().with("KALSHI-ACCESS-SIGNATURE", "s3cr3t-value");
        let text = format!("{headers:?}");
        assert!(text.contains("KALSHI-ACCESS-SIGNATURE"), "{text}");
        assert!(!text.contains("s3cr3t-value"), "{text}");
    }
}
