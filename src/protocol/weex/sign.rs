//! WEEX's signed handshake headers for private connections.
//!
//! The WebSocket handshake's signature is `base64(HMAC-SHA256(secret,
//! timestamp + requestPath))` (WEEX's WebSocket docs, "Header Authentication
//! for Private Channels": the message is the timestamp and the request path,
//! no method and no body), sent with the key, passphrase and timestamp in the
//! `ACCESS-*` headers. [`signature`] is the REST form (`timestamp + METHOD +
//! requestPath + body`). See `src/protocol/VENUES.md` for the sources and
//! what is not confirmed. The function is pure so it can be tested with a fixed
//! timestamp and called per connection attempt by a handshake hook or a
//! custom [`Connector`](crate::Connector). Secrets are held in [`Secret`]s,
//! whose `Debug` never shows them.

use base64::Engine as _;
use ring::hmac;

use crate::token::Secret;

/// An API key, its secret and its passphrase.
#[derive(Debug, Clone)]
pub struct WeexCredentials {
    /// The API key (sent as `ACCESS-KEY`).
    pub api_key: Secret,
    /// The secret the signature is keyed with (never sent).
    pub secret: Secret,
    /// The passphrase (sent as `ACCESS-PASSPHRASE`).
    pub passphrase: Secret,
}

/// The base64 HMAC-SHA256 of `timestamp + method + request_path + body`
/// under `secret`.
pub fn signature(
    secret: &Secret,
    timestamp_ms: u64,
    method: &str,
    request_path: &str,
    body: &str,
) -> String {
    // `ring` is already in the tree (rustls): no extra crypto crate.
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
    let mut mac = hmac::Context::with_key(&key);
    mac.update(timestamp_ms.to_string().as_bytes());
    mac.update(method.to_ascii_uppercase().as_bytes());
    mac.update(request_path.as_bytes());
    mac.update(body.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.sign().as_ref())
}

/// The handshake headers of a private WEEX connection to `request_path`
/// (for example `/v3/ws/private`), signed at `timestamp_ms`: `ACCESS-KEY`,
/// `ACCESS-PASSPHRASE`, `ACCESS-TIMESTAMP`, `ACCESS-SIGN`, the signature
/// over `timestamp + request_path` only.
///
/// The values are secrets: put them on the request, never in a log.
pub fn sign_headers(
    credentials: &WeexCredentials,
    timestamp_ms: u64,
    request_path: &str,
) -> Vec<(String, String)> {
    // The WebSocket message is the timestamp and the path: no method, no body.
    let sign = signature(&credentials.secret, timestamp_ms, "", request_path, "");
    vec![
        (
            "ACCESS-KEY".to_owned(),
            credentials.api_key.expose().to_owned(),
        ),
        (
            "ACCESS-PASSPHRASE".to_owned(),
            credentials.passphrase.expose().to_owned(),
        ),
        ("ACCESS-TIMESTAMP".to_owned(), timestamp_ms.to_string()),
        ("ACCESS-SIGN".to_owned(), sign),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> WeexCredentials {
        WeexCredentials {
            api_key: Secret::new("key-123"),
            secret: Secret::new("s3cr3t-value"),
            passphrase: Secret::new("pass-phrase"),
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_prehash_in_base64() {
        // Independent model: HMAC-SHA256 built from two SHA-256 passes
        // (RFC 2104), then base64.
        let sha256 = |parts: &[&[u8]]| {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            for part in parts {
                ctx.update(part);
            }
            ctx.finish()
        };
        let key = b"s3cr3t-value";
        let mut block = [0u8; 64];
        block[..key.len()].copy_from_slice(key);
        let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
        let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
        // WEEX's WebSocket form: timestamp + requestPath.
        let message = b"1700000000000/v3/ws/private";
        let inner = sha256(&[&ipad, message]);
        let outer = sha256(&[&opad, inner.as_ref()]);
        let expected = base64::engine::general_purpose::STANDARD.encode(outer.as_ref());
        let headers = sign_headers(&credentials(), 1_700_000_000_000, "/v3/ws/private");
        assert_eq!(
            headers,
            vec![
                ("ACCESS-KEY".to_owned(), "key-123".to_owned()),
                ("ACCESS-PASSPHRASE".to_owned(), "pass-phrase".to_owned()),
                ("ACCESS-TIMESTAMP".to_owned(), "1700000000000".to_owned()),
                ("ACCESS-SIGN".to_owned(), expected),
            ]
        );
        // The method is upper-cased; the body is part of the prehash.
        assert_eq!(
            signature(&Secret::new("k"), 1, "get", "/p", ""),
            signature(&Secret::new("k"), 1, "GET", "/p", "")
        );
        assert_ne!(
            signature(&Secret::new("k"), 1, "GET", "/p", ""),
            signature(&Secret::new("k"), 1, "GET", "/p", "{}")
        );
    }

    #[test]
    fn credentials_never_show_in_debug_output() {
        let shown = format!("{:?}", credentials());
        for secret in ["key-123", "s3cr3t-value", "pass-phrase"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
