//! The emulator's side of Kalshi's signed handshake: a [`HandshakeCheck`]
//! that verifies `KALSHI-ACCESS-SIGNATURE` (RSA-PSS-SHA256, salt = digest
//! length) over `{timestamp}GET/trade-api/ws/v2` with the public key, and the
//! timestamp's freshness, like Kalshi (Quick Start: WebSockets,
//! <https://docs.kalshi.com/getting_started/quick_start_websockets>).
//!
//! No headers: accepted, but private channels are refused (code 9). Headers
//! present but wrong or stale: the upgrade is refused with 401. Every
//! request's headers are recorded for the tests.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, RSA_PSS_2048_8192_SHA256};

use super::exchange::{Gate, HandshakeCheck};

/// The test key pair, generated once with
/// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048` (test-only).
pub const TEST_KEY_PEM: &str = include_str!("../data/kalshi_test_key.pem");
/// Its public key (PKCS#1 RSAPublicKey DER), from `openssl rsa -RSAPublicKey_out`.
pub const TEST_PUBLIC_DER: &[u8] = include_bytes!("../data/kalshi_test_key.pub.der");
/// How far a timestamp may be from the server's clock.
pub const FRESHNESS: Duration = Duration::from_secs(30);

/// The headers of one upgrade request, as the server saw them.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub key: Option<String>,
    pub timestamp: Option<String>,
    pub signature: Option<String>,
    pub verified: bool,
}

/// A check that verifies with `public_der` and records what it saw.
pub fn check(
    public_der: &'static [u8],
    key_id: &'static str,
) -> (HandshakeCheck, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let check: HandshakeCheck = Arc::new(move |request| {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let mut entry = Seen {
            key: header("KALSHI-ACCESS-KEY"),
            timestamp: header("KALSHI-ACCESS-TIMESTAMP"),
            signature: header("KALSHI-ACCESS-SIGNATURE"),
            verified: false,
        };
        let gate = match (&entry.key, &entry.timestamp, &entry.signature) {
            (None, None, None) => Gate::Accept {
                authenticated: false,
            },
            (Some(key), Some(ts), Some(sig)) if key == key_id && verify(public_der, ts, sig) => {
                entry.verified = true;
                Gate::Accept {
                    authenticated: true,
                }
            }
            _ => Gate::Refuse {
                status: 401,
                retry_after: None,
            },
        };
        log.lock().expect("seen lock").push(entry);
        gate
    });
    (check, seen)
}

fn verify(public_der: &[u8], timestamp: &str, signature: &str) -> bool {
    let Ok(ms) = timestamp.parse::<u64>() else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    if now.abs_diff(ms) > FRESHNESS.as_millis() as u64 {
        return false;
    }
    let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature) else {
        return false;
    };
    let message = format!("{timestamp}GET/trade-api/ws/v2");
    UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, public_der)
        .verify(message.as_bytes(), &signature)
        .is_ok()
}
