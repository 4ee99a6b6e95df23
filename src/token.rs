//! The token source hook: how a client gets a fresh session token for a
//! private endpoint.
//!
//! Venues such as Kraken authenticate private WebSocket subscriptions with a
//! short-lived token fetched over REST. The client calls the user's
//! [`TokenSource`] before every connection attempt (a fresh token per
//! connection, so an expired one never outlives a reconnect) and reconnects to
//! get a new one when the venue says the session is invalid; private
//! subscriptions are then replayed with the fresh token. A failing source is an
//! [`Error::Token`](crate::Error::Token) and the attempt is retried after the
//! backoff delay, never in a hot loop. The token itself is never logged and
//! never appears in an error.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// The error a token source may return.
pub type TokenError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The future a [`TokenSource`] returns.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, TokenError>> + Send>>;

/// Produces a session token, e.g. by calling the venue's REST token endpoint.
///
/// Implemented for every `Fn() -> impl Future<Output = Result<String, TokenError>>`:
///
/// ```
/// use resilient_ws::{Config, TokenError};
/// let config = Config::builder("wss://ws-auth.kraken.com/v2")
///     .token_source(|| async { Ok::<_, TokenError>("token-from-rest-call".to_owned()) })
///     .build();
/// assert!(config.is_ok());
/// ```
pub trait TokenSource: Send + Sync + 'static {
    /// Fetches a fresh token.
    fn token(&self) -> TokenFuture;
}

impl<F, Fut> TokenSource for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, TokenError>> + Send + 'static,
{
    fn token(&self) -> TokenFuture {
        Box::pin(self())
    }
}

/// A token held by a protocol adapter: its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret, for putting on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
