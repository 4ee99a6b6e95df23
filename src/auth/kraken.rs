//! Kraken's WebSocket token, fetched over REST (cargo feature `kraken-token`).
//!
//! Wire facts:
//! - `POST https://api.kraken.com/0/private/GetWebSocketsToken` returns
//!   `{"error":[],"result":{"token":"...","expires":900}}`; the token is to be
//!   used within 15 minutes and stays valid while a private subscription lives
//!   (Kraken API reference, *Get Websockets Token*,
//!   <https://docs.kraken.com/api-reference/trading/get-websockets-token>).
//! - Private REST calls carry `API-Key` (the public key), `API-Sign` and a
//!   `nonce` form field, "always increasing, unsigned 64-bit integer";
//!   `API-Sign` = base64(HMAC-SHA512(key = base64-decoded secret,
//!   msg = URI path + SHA256(nonce + POST data))), the path starting at
//!   `/0/private` (Kraken, *Spot REST Authentication*, section *Setting the
//!   API-Sign Parameter*, <https://docs.kraken.com/api/docs/guides/spot-rest-auth>).
//!
//! Rules, and why:
//! - HTTP goes through `reqwest` with rustls and the config from
//!   [`crate::tls`] (same provider and roots as the WebSocket, passed
//!   explicitly; nothing process-wide).
//! - The nonce is the Unix time in milliseconds, bumped past the last one
//!   used by this source, so two calls in one millisecond still increase.
//! - The secret, the signature and the token never reach `Debug`, an error
//!   or a log line; Kraken's own error strings (`EAPI:Invalid key`) do.
//! - The response body is read up to [`MAX_TOKEN_RESPONSE`] bytes.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::{digest, hmac};

use crate::error::Error;
use crate::token::{Secret, TokenError, TokenFuture, TokenSource};

/// Kraken's REST API root.
pub const KRAKEN_REST_URL: &str = "https://api.kraken.com";
/// The signed path of the token call.
const TOKEN_PATH: &str = "/0/private/GetWebSocketsToken";
/// The largest token response read.
pub const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// `API-Sign` for `path` and the form body `post_data` carrying `nonce`.
///
/// # Errors
///
/// When `secret_base64` is not base64 (the message does not quote it).
pub fn kraken_signature(
    secret_base64: &str,
    path: &str,
    nonce: u64,
    post_data: &str,
) -> Result<String, Error> {
    let secret = base64::engine::general_purpose::STANDARD
        .decode(secret_base64.trim())
        .map_err(|_| Error::Config("Kraken API secret: not base64".into()))?;
    Ok(sign(&secret, path, nonce, post_data))
}

fn sign(secret: &[u8], path: &str, nonce: u64, post_data: &str) -> String {
    let inner = digest::digest(&digest::SHA256, format!("{nonce}{post_data}").as_bytes());
    let key = hmac::Key::new(hmac::HMAC_SHA512, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(path.as_bytes());
    ctx.update(inner.as_ref());
    base64::engine::general_purpose::STANDARD.encode(ctx.sign().as_ref())
}

/// A [`TokenSource`] that calls Kraken's `GetWebSocketsToken` before each
/// connection attempt. `Debug` shows the key, never the secret.
#[derive(Clone)]
pub struct KrakenTokenSource {
    inner: Arc<Inner>,
}

struct Inner {
    api_key: String,
    secret: Vec<u8>,
    base_url: String,
    http: reqwest::Client,
    last_nonce: AtomicU64,
}

impl fmt::Debug for KrakenTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KrakenTokenSource")
            .field("api_key", &self.inner.api_key)
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

impl KrakenTokenSource {
    /// From the API key and its base64 secret, against [`KRAKEN_REST_URL`]
    /// with the default TLS config.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the secret is not base64 or TLS cannot be set up.
    pub fn new(api_key: impl Into<String>, api_secret: &str) -> Result<Self, Error> {
        let tls = crate::tls::client_config()
            .map_err(|e| Error::Config(format!("Kraken token source TLS: {e}")))?;
        Self::with_options(api_key, api_secret, KRAKEN_REST_URL, tls)
    }

    /// With another REST root (`https://host:port`) and rustls config (a
    /// private CA, a proxy-terminating gateway, a test server).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn with_options(
        api_key: impl Into<String>,
        api_secret: &str,
        base_url: &str,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Self, Error> {
        let secret = base64::engine::general_purpose::STANDARD
            .decode(api_secret.trim())
            .map_err(|_| Error::Config("Kraken API secret: not base64".into()))?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .build()
            .map_err(|e| Error::Config(format!("Kraken token source HTTP client: {e}")))?;
        Ok(KrakenTokenSource {
            inner: Arc::new(Inner {
                api_key: api_key.into(),
                secret,
                base_url: base_url.trim_end_matches('/').to_owned(),
                http,
                last_nonce: AtomicU64::new(0),
            }),
        })
    }

    fn next_nonce(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let previous = self
            .inner
            .last_nonce
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now.max(last.saturating_add(1)))
            })
            .unwrap_or(now);
        now.max(previous.saturating_add(1))
    }

    async fn fetch(&self) -> Result<String, TokenError> {
        let inner = &self.inner;
        let nonce = self.next_nonce();
        let body = format!("nonce={nonce}");
        let signature = sign(&inner.secret, TOKEN_PATH, nonce, &body);
        let mut response = inner
            .http
            .post(format!("{}{TOKEN_PATH}", inner.base_url))
            .header("API-Key", &inner.api_key)
            .header("API-Sign", signature)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                TokenError::from(format!(
                    "GetWebSocketsToken request failed: {}",
                    e.without_url()
                ))
            })?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            TokenError::from(format!(
                "GetWebSocketsToken read failed: {}",
                e.without_url()
            ))
        })? {
            if bytes.len() + chunk.len() > MAX_TOKEN_RESPONSE {
                return Err("GetWebSocketsToken response too large".into());
            }
            bytes.extend_from_slice(&chunk);
        }
        parse_token(status.as_u16(), &bytes)
    }
}

/// Reads `{"error":[...],"result":{"token":...}}`.
fn parse_token(status: u16, body: &[u8]) -> Result<String, TokenError> {
    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(default)]
        error: Vec<String>,
        result: Option<ReplyResult>,
    }
    #[derive(serde::Deserialize)]
    struct ReplyResult {
        token: String,
    }
    let reply: Reply = serde_json::from_slice(body).map_err(|_| {
        TokenError::from(format!(
            "GetWebSocketsToken: unreadable answer (HTTP {status})"
        ))
    })?;
    if !reply.error.is_empty() {
        return Err(format!("GetWebSocketsToken refused: {}", reply.error.join(", ")).into());
    }
    match reply.result {
        Some(result) if !result.token.is_empty() => Ok(result.token),
        _ => Err(format!("GetWebSocketsToken: no token in the answer (HTTP {status})").into()),
    }
}

impl TokenSource for KrakenTokenSource {
    fn token(&self) -> TokenFuture {
        let source = self.clone();
        Box::pin(async move {
            let token = source.fetch().await?;
            // Wrapped so a stray `{:?}` on the way out cannot show it.
            let token = Secret::new(token);
            tracing::debug!("fetched a Kraken WebSocket token");
            Ok(token.expose().to_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published example (Spot REST Authentication, *Examples*).
    #[test]
    fn the_published_api_sign_vector() {
        let signature = kraken_signature(
            "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==",
            "/0/private/AddOrder",
            1_616_492_376_594,
            "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25",
        )
        .unwrap();
        assert_eq!(
            signature,
            "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
        );
    }

    #[test]
    fn answers_are_read_and_errors_carry_krakens_text_only() {
        let ok = br#"{"error":[],"result":{"token":"tok-1","expires":900}}"#;
        assert_eq!(parse_token(200, ok).unwrap(), "tok-1");
        let refused = br#"{"error":["EAPI:Invalid key"]}"#;
        let err = parse_token(200, refused).unwrap_err().to_string();
        assert!(err.contains("EAPI:Invalid key"), "{err}");
        assert!(parse_token(502, b"<html>").is_err());
    }

    #[test]
    fn nonces_always_increase() {
        let tls = crate::tls::client_config().unwrap();
        let source =
            KrakenTokenSource::with_options("k", "c2VjcmV0", "https://127.0.0.1:9", tls).unwrap();
        let mut last = 0;
        for _ in 0..1000 {
            let n = source.next_nonce();
            assert!(n > last);
            last = n;
        }
        assert!(!format!("{source:?}").contains("c2VjcmV0"));
    }
}
