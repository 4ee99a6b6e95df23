//! Kalshi's signed WebSocket handshake.
//!
//! Wire facts (Kalshi, "Quick Start: WebSockets", sections *Authentication*,
//! *Required Headers* and *Signing the WebSocket Request*,
//! <https://docs.kalshi.com/getting_started/quick_start_websockets>):
//! - private channels (`orderbook_delta`, `fill`, `market_positions`,
//!   `communications`, `order_group_updates`) need three handshake headers:
//!   `KALSHI-ACCESS-KEY` (the API key id), `KALSHI-ACCESS-TIMESTAMP` (Unix time
//!   in milliseconds) and `KALSHI-ACCESS-SIGNATURE`;
//! - the signature covers `timestamp + "GET" + "/trade-api/ws/v2"`: the path
//!   from the API root without the query, whatever the host
//!   (<https://docs.kalshi.com/getting_started/api_environments>, *Request Signing*);
//! - it is RSA-PSS with SHA-256, MGF1-SHA-256 and salt length = digest length,
//!   base64 (standard alphabet, padded), the key a PKCS#8 PEM.
//!
//! `ring`'s `RSA_PSS_SHA256` is exactly that PSS profile. The timestamp is
//! read and the message signed on every call, so each connection attempt
//! carries a fresh signature.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PSS_SHA256};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivatePkcs8KeyDer;

use super::{HeaderFuture, HeaderSource, Headers};
use crate::error::Error;
use crate::token::TokenError;

/// The path Kalshi signs for the WebSocket handshake.
pub const KALSHI_WS_PATH: &str = "/trade-api/ws/v2";

/// Signs Kalshi WebSocket handshakes: pass it to
/// [`ConfigBuilder::handshake_headers`](crate::ConfigBuilder::handshake_headers).
///
/// `Debug` shows the key id only.
#[derive(Clone)]
pub struct KalshiAuth {
    inner: Arc<Inner>,
    path: Arc<str>,
}

struct Inner {
    key_id: String,
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl fmt::Debug for KalshiAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KalshiAuth")
            .field("key_id", &self.inner.key_id)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl KalshiAuth {
    /// From the API key id and the private key as PKCS#8 PEM
    /// (`-----BEGIN PRIVATE KEY-----`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the PEM is not a PKCS#8 RSA key; the message never
    /// quotes the key.
    pub fn new(key_id: impl Into<String>, private_key_pem: &str) -> Result<Self, Error> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(private_key_pem.as_bytes()).map_err(|_| {
            Error::Config("Kalshi private key: not a PKCS#8 PEM (BEGIN PRIVATE KEY)".into())
        })?;
        let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(|e| {
            Error::Config(format!("Kalshi private key: not a usable RSA key ({e})"))
        })?;
        Ok(KalshiAuth {
            inner: Arc::new(Inner {
                key_id: key_id.into(),
                key,
                rng: SystemRandom::new(),
            }),
            path: KALSHI_WS_PATH.into(),
        })
    }

    /// Signs another path than [`KALSHI_WS_PATH`] (only for a venue that
    /// moves the endpoint).
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into().into();
        self
    }

    /// The three headers for a handshake at `timestamp_ms`.
    ///
    /// # Errors
    ///
    /// When `ring` fails to sign (it does not for a valid key).
    pub fn headers_at(&self, timestamp_ms: u64) -> Result<Headers, TokenError> {
        let inner = &self.inner;
        let message = format!("{timestamp_ms}GET{}", self.path);
        let mut signature = vec![0; inner.key.public().modulus_len()];
        inner
            .key
            .sign(
                &RSA_PSS_SHA256,
                &inner.rng,
                message.as_bytes(),
                &mut signature,
            )
            .map_err(|_| TokenError::from("Kalshi signing failed"))?;
        let signature = base64::engine::general_purpose::STANDARD.encode(signature);
        Ok(Headers::new()
            .with("KALSHI-ACCESS-KEY", inner.key_id.clone())
            .with("KALSHI-ACCESS-TIMESTAMP", timestamp_ms.to_string())
            .with("KALSHI-ACCESS-SIGNATURE", signature))
    }
}

impl HeaderSource for KalshiAuth {
    fn headers(&self) -> HeaderFuture {
        let auth = self.clone();
        Box::pin(async move {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_err(|_| TokenError::from("system clock is before 1970"))?;
            let ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
            auth.headers_at(ms)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_key_is_a_config_error_that_does_not_quote_it() {
        let pem =
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n";
        let err = KalshiAuth::new("id", pem)
            .err()
            .map(|e| format!("{e} {e:?}"));
        let text = err.unwrap_or_default();
        assert!(text.contains("Kalshi private key"), "{text}");
        assert!(!text.contains("c2VjcmV0"), "{text}");
    }
}
