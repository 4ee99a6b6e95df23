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
//!   base64 (standard alphabet, padded).
//!
//! The key is accepted as PKCS#8 PEM (`BEGIN PRIVATE KEY`) or PKCS#1 PEM
//! (`BEGIN RSA PRIVATE KEY`, the form many Kalshi users hold their key in);
//! anything else is an [`Error::Config`] that never quotes the key.
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
use rustls::pki_types::PrivateKeyDer;

use super::headers::{HeaderFuture, HeaderSource, Headers};
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
    /// From the API key id and the RSA private key as PEM: PKCS#8
    /// (`-----BEGIN PRIVATE KEY-----`) or PKCS#1
    /// (`-----BEGIN RSA PRIVATE KEY-----`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the PEM holds neither form of an RSA key; the
    /// message names the forms accepted and never quotes the key.
    pub fn new(key_id: impl Into<String>, private_key_pem: &str) -> Result<Self, Error> {
        const FORMS: &str = "expected an RSA key as PKCS#8 PEM (BEGIN PRIVATE KEY) \
                             or PKCS#1 PEM (BEGIN RSA PRIVATE KEY)";
        let der = PrivateKeyDer::from_pem_slice(private_key_pem.as_bytes()).map_err(|_| {
            Error::Config(format!("Kalshi private key: no private key PEM; {FORMS}"))
        })?;
        let key = match &der {
            PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
            _ => {
                return Err(Error::Config(format!(
                    "Kalshi private key: not an RSA key (an EC key?); {FORMS}"
                )))
            }
        }
        .map_err(|e| {
            // `ring`'s reason names the defect, never the key's bytes.
            Error::Config(format!(
                "Kalshi private key: not a usable RSA key ({e}); {FORMS}"
            ))
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
    use ring::signature::{UnparsedPublicKey, RSA_PSS_2048_8192_SHA256};

    use super::*;

    const PKCS8: &str = include_str!("../../tests/data/kalshi_test_key.pem");
    const PKCS1: &str = include_str!("../../tests/data/kalshi_test_key_pkcs1.pem");
    const PUBLIC_DER: &[u8] = include_bytes!("../../tests/data/kalshi_test_key.pub.der");

    /// The error text and Debug of a refused key.
    fn refusal(pem: &str) -> String {
        let error = KalshiAuth::new("id", pem).expect_err("refused");
        assert!(matches!(error, Error::Config(_)), "{error:?}");
        format!("{error} {error:?}")
    }

    #[test]
    fn pkcs1_and_pkcs8_pem_give_the_same_verifiable_signature_scheme() {
        assert!(PKCS1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        assert!(PKCS8.starts_with("-----BEGIN PRIVATE KEY-----"));
        let public = UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, PUBLIC_DER);
        for pem in [PKCS1, PKCS8] {
            let auth = KalshiAuth::new("key-id", pem).expect("accepted");
            let headers = auth.headers_at(1_700_000_000_000).unwrap();
            let get = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.expose().to_owned())
                    .unwrap()
            };
            let signature = base64::engine::general_purpose::STANDARD
                .decode(get("KALSHI-ACCESS-SIGNATURE"))
                .unwrap();
            public
                .verify(b"1700000000000GET/trade-api/ws/v2", &signature)
                .expect("verifies with the public key");
            assert_eq!(get("KALSHI-ACCESS-KEY"), "key-id");
        }
    }

    #[test]
    fn a_key_in_neither_form_is_a_config_error_that_never_quotes_it() {
        // Base64 of "secret-key-bytes": shows up if the message quotes the body.
        let body = "c2VjcmV0LWtleS1ieXRlcw==";
        let pkcs1_body: String = PKCS1
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let cases = [
            format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"),
            format!("-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\n"),
            format!("-----BEGIN EC PRIVATE KEY-----\n{body}\n-----END EC PRIVATE KEY-----\n"),
            // A real key without its PEM armour, and garbage.
            pkcs1_body.clone(),
            format!("not a key {body}"),
            String::new(),
        ];
        for pem in &cases {
            let text = refusal(pem);
            assert!(text.contains("Kalshi private key"), "{text}");
            assert!(text.contains("PKCS#1") && text.contains("PKCS#8"), "{text}");
            assert!(!text.contains(body), "{text}");
            assert!(!text.contains(&pkcs1_body[..40]), "{text}");
        }
    }
}
