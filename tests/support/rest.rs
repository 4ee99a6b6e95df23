//! A local HTTPS endpoint that plays Kraken's `POST /0/private/GetWebSocketsToken`
//! for the `kraken-token` tests (TLS from a test CA, HTTP/1.1 via httparse).
//!
//! It checks `API-Key` and `API-Sign` with its own computation of Kraken's
//! published rule (HMAC-SHA512 keyed with the decoded secret over
//! path + SHA256(nonce + body)) and that nonces increase; it answers
//! `tok-1`, `tok-2`, ... or Kraken's `EAPI:Invalid key` / `EAPI:Invalid nonce`.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use ring::{digest, hmac};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::tls::TestCa;

/// What the endpoint saw.
#[derive(Default, Debug)]
pub struct RestLog {
    pub calls: u32,
    pub nonces: Vec<u64>,
    pub bad_signatures: u32,
}

pub struct TokenEndpoint {
    pub port: u16,
    pub log: Arc<Mutex<RestLog>>,
}

impl TokenEndpoint {
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    pub async fn start(ca: &TestCa, api_key: &'static str, secret_b64: &'static str) -> Self {
        let acceptor = TlsAcceptor::from(ca.server_config());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let log = Arc::new(Mutex::new(RestLog::default()));
        let shared = Arc::clone(&log);
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret_b64)
            .expect("test secret");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, log, secret) =
                    (acceptor.clone(), Arc::clone(&shared), secret.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        // One request: head, then Content-Length bytes of body.
                        let (head_len, key, sign, length) = loop {
                            let mut headers = [httparse::EMPTY_HEADER; 32];
                            let mut req = httparse::Request::new(&mut headers);
                            if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
                                let get = |name: &str| {
                                    req.headers
                                        .iter()
                                        .find(|h| h.name.eq_ignore_ascii_case(name))
                                        .map(|h| String::from_utf8_lossy(h.value).into_owned())
                                };
                                let length = get("content-length")
                                    .and_then(|l| l.parse::<usize>().ok())
                                    .unwrap_or(0);
                                let path_ok = req.path == Some("/0/private/GetWebSocketsToken");
                                assert!(path_ok && req.method == Some("POST"), "{:?}", req.path);
                                break (n, get("api-key"), get("api-sign"), length);
                            }
                            let Ok(read) = tls.read(&mut chunk).await else {
                                return;
                            };
                            if read == 0 || buf.len() > 64 * 1024 {
                                return;
                            }
                            buf.extend_from_slice(&chunk[..read]);
                        };
                        while buf.len() < head_len + length {
                            let Ok(read) = tls.read(&mut chunk).await else {
                                return;
                            };
                            if read == 0 {
                                return;
                            }
                            buf.extend_from_slice(&chunk[..read]);
                        }
                        let body =
                            String::from_utf8_lossy(&buf[head_len..head_len + length]).into_owned();
                        buf.drain(..head_len + length);
                        let reply = answer(&log, &secret, api_key, key, sign, &body);
                        let response = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
                            reply.len()
                        );
                        if tls.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        TokenEndpoint { port, log }
    }
}

fn answer(
    log: &Mutex<RestLog>,
    secret: &[u8],
    api_key: &str,
    key: Option<String>,
    sign: Option<String>,
    body: &str,
) -> String {
    let mut log = log.lock().expect("rest log");
    log.calls += 1;
    let nonce = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("nonce="))
        .and_then(|n| n.parse::<u64>().ok());
    let Some(nonce) = nonce else {
        return r#"{"error":["EGeneral:Invalid arguments"]}"#.to_owned();
    };
    // The model: SHA256(nonce + body), prefixed with the path, HMAC-SHA512.
    let mut message = b"/0/private/GetWebSocketsToken".to_vec();
    message.extend_from_slice(
        digest::digest(&digest::SHA256, format!("{nonce}{body}").as_bytes()).as_ref(),
    );
    let expected = base64::engine::general_purpose::STANDARD
        .encode(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA512, secret), &message).as_ref());
    if key.as_deref() != Some(api_key) || sign.as_deref() != Some(expected.as_str()) {
        log.bad_signatures += 1;
        return r#"{"error":["EAPI:Invalid key"]}"#.to_owned();
    }
    if log.nonces.last().is_some_and(|last| nonce <= *last) {
        return r#"{"error":["EAPI:Invalid nonce"]}"#.to_owned();
    }
    log.nonces.push(nonce);
    format!(
        r#"{{"error":[],"result":{{"token":"tok-{}","expires":900}}}}"#,
        log.nonces.len()
    )
}
