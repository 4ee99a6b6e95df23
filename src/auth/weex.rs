//! WEEX private connections: the `ACCESS-*` handshake headers, signed afresh
//! for every connection attempt.
//!
//! The signing itself is [`weex::sign_headers`](crate::protocol::weex::sign_headers)
//! (a pure function, next to the adapter, with the sources in
//! `src/protocol/VENUES.md`); this is the [`HeaderSource`] that calls it with
//! the current time, so a reconnect never replays a stale timestamp.

use std::time::{SystemTime, UNIX_EPOCH};

use super::headers::{HeaderFuture, HeaderSource, Headers};
use crate::protocol::weex::{sign_headers, WeexCredentials};
use crate::token::TokenError;

/// Signs WEEX's private WebSocket handshake: pass it to
/// [`ConfigBuilder::handshake_headers`](crate::ConfigBuilder::handshake_headers).
///
/// Its `Debug` shows the path only; the credentials are [`Secret`](crate::Secret)s.
#[derive(Clone)]
pub struct WeexAuth {
    credentials: WeexCredentials,
    request_path: String,
}

impl std::fmt::Debug for WeexAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeexAuth")
            .field("request_path", &self.request_path)
            .finish_non_exhaustive()
    }
}

impl WeexAuth {
    /// Signs connections to `request_path` (the URL's path, e.g. `/v3/ws/private`).
    pub fn new(credentials: WeexCredentials, request_path: impl Into<String>) -> Self {
        WeexAuth {
            credentials,
            request_path: request_path.into(),
        }
    }

    /// Signs connections to `url`'s path (WEEX signs the path, not the whole
    /// URL): `wss://ws-spot.weex.com/v3/ws/private` signs `/v3/ws/private`.
    /// The query and fragment are not part of it; a URL without a path signs `/`.
    pub fn for_url(credentials: WeexCredentials, url: &str) -> Self {
        Self::new(credentials, path_of(url))
    }

    /// The headers for an attempt at `timestamp_ms` (Unix milliseconds).
    pub fn headers_at(&self, timestamp_ms: u64) -> Headers {
        let mut headers = Headers::new();
        for (name, value) in sign_headers(&self.credentials, timestamp_ms, &self.request_path) {
            headers.insert(name, value);
        }
        headers
    }
}

/// The path of a URL: after the authority, before any query or fragment.
fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    match rest.find('/') {
        Some(at) => &rest[at..],
        None => "/",
    }
}

impl HeaderSource for WeexAuth {
    fn headers(&self) -> HeaderFuture {
        let auth = self.clone();
        Box::pin(async move {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_err(|_| TokenError::from("system clock is before 1970"))?;
            let ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
            Ok(auth.headers_at(ms))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Secret;

    fn auth() -> WeexAuth {
        WeexAuth::new(
            WeexCredentials {
                api_key: Secret::new("key-123"),
                secret: Secret::new("s3cr3t-value"),
                passphrase: Secret::new("pass-phrase"),
            },
            "/v3/ws/private",
        )
    }

    #[test]
    fn a_url_signs_its_path() {
        for (url, path) in [
            ("wss://ws-spot.weex.com/v3/ws/private", "/v3/ws/private"),
            (
                "wss://ws-spot.weex.com:443/v3/ws/private?x=1#f",
                "/v3/ws/private",
            ),
            ("wss://ws-spot.weex.com", "/"),
            ("ws://127.0.0.1:9?q=/a", "/"),
        ] {
            assert_eq!(path_of(url), path, "{url}");
        }
        let by_url = WeexAuth::for_url(auth().credentials, "wss://ws-spot.weex.com/v3/ws/private");
        assert_eq!(by_url.request_path, "/v3/ws/private");
        assert_eq!(
            by_url
                .headers_at(1_700_000_000_000)
                .iter()
                .last()
                .map(|(_, v)| v.expose().to_owned()),
            auth()
                .headers_at(1_700_000_000_000)
                .iter()
                .last()
                .map(|(_, v)| v.expose().to_owned())
        );
    }

    #[test]
    fn headers_are_the_signed_access_set_and_debug_hides_them() {
        let headers = auth().headers_at(1_700_000_000_000);
        let names: Vec<&str> = headers.iter().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            [
                "ACCESS-KEY",
                "ACCESS-PASSPHRASE",
                "ACCESS-TIMESTAMP",
                "ACCESS-SIGN"
            ]
        );
        let expected = sign_headers(&auth().credentials, 1_700_000_000_000, "/v3/ws/private");
        for ((_, value), (_, want)) in headers.iter().zip(expected.iter()) {
            assert_eq!(value.expose(), want);
        }
        let text = format!("{:?} {headers:?}", auth());
        for secret in ["key-123", "s3cr3t", "pass-phrase"] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    #[tokio::test]
    async fn every_attempt_signs_a_fresh_timestamp() {
        let first = auth().headers().await.unwrap();
        let stamp = |h: &Headers| {
            h.iter()
                .find(|(name, _)| *name == "ACCESS-TIMESTAMP")
                .map(|(_, v)| v.expose().parse::<u64>().unwrap())
                .unwrap()
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(now_ms.abs_diff(stamp(&first)) < 60_000);
    }
}
