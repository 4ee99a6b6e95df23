//! The JetStream sink's secrets (issue 24): a password, a token or a
//! credentials file never reaches an error, its `Debug` or a log line up to
//! DEBUG, refused or accepted, against a real `nats-server`.
//!
//! Its own test binary with one process-wide subscriber, set before any
//! test logs: a subscriber scoped to a test thread (`set_default`) misses
//! lines in a binary whose other tests hit the same callsites without one
//! (tracing caches each callsite's interest), and a log check that missed
//! lines would pass without proving anything. Every test checks its secrets
//! against everything captured.
//!
//! DEBUG, not TRACE: async-nats 0.46 writes its CONNECT command (password,
//! token, a credentials file's user JWT; never the seed, which is not sent)
//! at TRACE under the target `async_nats::connection`; see docs/SCALING.md.
//!
//! Credentials files: everything is made here: an operator, a system
//! account and an account (JetStream enabled) and users as nkeys, their JWTs
//! signed as the NATS JWT v2 format has them (header
//! `{"typ":"JWT","alg":"ed25519-nkey"}`, base64url without padding, an
//! Ed25519 signature by the issuer's nkey), and the server's config with
//! `resolver: MEMORY` and the accounts preloaded.
#![cfg(feature = "nats")]

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use nkeys::KeyPair;

use resilient_ws::sink::nats::{NatsAuth, NatsOptions, NatsSink, NatsSinkError};
use resilient_ws::Secret;
use serde_json::{json, Value};
use support::nats::NatsServer;

/// Every log line up to DEBUG, of every test of this binary.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log")).into_owned()
    }
}

/// The process-wide capture; every test calls it before anything logs.
fn capture() -> &'static LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = LogBuffer::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("the only subscriber of this binary");
        logs
    })
}

#[tokio::test]
async fn a_refused_password_or_token_never_reaches_an_error_debug_or_log() {
    let logs = capture();
    let nats = NatsServer::start_with(vec![
        "--user".into(),
        "feed".into(),
        "--pass".into(),
        "right-pass-7Q".into(),
    ])
    .await;
    let wrong = NatsOptions::new(nats.url(), "kalshi").auth(NatsAuth::UserPassword {
        user: "feed".into(),
        password: Secret::new("wrong-pass-9Z"),
    });
    let shown = format!("{wrong:?}");
    assert!(!shown.contains("wrong-pass-9Z"), "{shown}");
    let error = NatsSink::connect(wrong).await.expect_err("refused");
    let text = format!("{error} {error:?}");
    assert!(text.contains("Authorization"), "says why: {text}");
    assert!(!text.contains("wrong-pass-9Z"), "{text}");

    let token = NatsOptions::new(nats.url(), "kalshi").auth(NatsAuth::Token(Secret::new("tok-3X")));
    let error = NatsSink::connect(token).await.expect_err("refused");
    assert!(!format!("{error} {error:?}").contains("tok-3X"));

    let right = NatsOptions::new(nats.url(), "kalshi").auth(NatsAuth::UserPassword {
        user: "feed".into(),
        password: Secret::new("right-pass-7Q"),
    });
    let sink = NatsSink::connect(right).await.expect("accepted");
    assert!(!format!("{sink:?}").contains("right-pass-7Q"));
    drop(sink);
    let text = logs.text();
    assert!(
        text.contains("authorization violation") && text.contains("establishing connection"),
        "the client's logs are captured, DEBUG included: {text}"
    );
    for secret in ["wrong-pass-9Z", "tok-3X", "right-pass-7Q"] {
        assert!(!text.contains(secret), "{secret} in the logs:\n{text}");
    }
}

/// A NATS JWT: `claims` completed with the issuer, subject and name, signed
/// by `issuer`.
fn jwt(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = json!({
        "jti": format!("{}{name}{iat}", subject.get(..16).unwrap_or(subject)),
        "iat": iat,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = issuer.sign(signed.as_bytes()).expect("sign");
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// A user of `account`, as a `.creds` file's text, with its JWT and seed.
fn user_creds(account: &KeyPair, name: &str) -> (String, String, String) {
    let user = KeyPair::new_user();
    let token = jwt(
        account,
        &user.public_key(),
        name,
        json!({"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
               "type": "user", "version": 2}),
    );
    let seed = user.seed().expect("seed");
    let text = format!(
        "-----BEGIN NATS USER JWT-----\n{token}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    );
    (text, token, seed)
}

/// An operator-mode config trusting one operator, with a system account and
/// `account` preloaded (JetStream enabled for it).
fn operator_config(dir: &Path, operator: &KeyPair, account: &KeyPair) -> PathBuf {
    let operator_jwt = jwt(
        operator,
        &operator.public_key(),
        "rws-test-operator",
        json!({"type": "operator", "version": 2}),
    );
    let account_jwt = jwt(
        operator,
        &account.public_key(),
        "FEED",
        json!({
            "limits": {
                "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                "wildcards": true, "conn": -1, "leaf": -1,
                "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1
            },
            "default_permissions": {"pub": {}, "sub": {}},
            "type": "account",
            "version": 2
        }),
    );
    // JetStream in operator mode needs a system account.
    let system = KeyPair::new_account();
    let system_jwt = jwt(
        operator,
        &system.public_key(),
        "SYS",
        json!({"limits": {"subs": -1, "data": -1, "payload": -1, "conn": -1},
               "type": "account", "version": 2}),
    );
    let config = format!(
        "operator: {operator_jwt}\nsystem_account: {sys}\nresolver: MEMORY\n\
         resolver_preload: {{\n  {sys}: {system_jwt}\n  {}: {account_jwt}\n}}\n",
        account.public_key(),
        sys = system.public_key(),
    );
    let path = dir.join("operator.conf");
    std::fs::write(&path, config).expect("write the server config");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credentials_file_connects_and_publishes_and_a_refused_one_leaks_nothing() {
    let logs = capture();

    let dir = std::env::temp_dir().join(format!("rws-nats-creds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creds dir");
    let (operator, account) = (KeyPair::new_operator(), KeyPair::new_account());
    let config = operator_config(&dir, &operator, &account);
    let nats =
        NatsServer::start_with(vec!["-c".into(), config.to_string_lossy().into_owned()]).await;

    // The right user: connects, makes the stream, publishes.
    let (text, good_jwt, good_seed) = user_creds(&account, "feed");
    let good = dir.join("feed.creds");
    std::fs::write(&good, text).expect("write creds");
    let options =
        NatsOptions::new(nats.url(), "kalshi").auth(NatsAuth::CredentialsFile(good.clone()));
    let sink = NatsSink::connect(options)
        .await
        .expect("the credentials are accepted");
    sink.ensure_stream("MD")
        .await
        .expect("stream (JetStream enabled for the account)");
    let js = resilient_ws::sink::nats::async_nats::jetstream::new(sink.client().clone());
    let ack = js
        .publish("md.kalshi.ticker.KXA", "{}".into())
        .await
        .expect("publish")
        .await
        .expect("stored");
    assert_eq!(ack.stream, "MD");
    assert!(!format!("{sink:?}").contains(&good_seed));
    drop(sink);

    // A user of an account the server does not know: refused.
    let (text, stranger_jwt, stranger_seed) = user_creds(&KeyPair::new_account(), "stranger");
    let stranger = dir.join("stranger.creds");
    std::fs::write(&stranger, text).expect("write creds");
    // A known user's JWT with another user's seed: the nonce signature fails.
    let (_, _, other_seed) = user_creds(&account, "other");
    let swapped = dir.join("swapped.creds");
    std::fs::write(
        &swapped,
        std::fs::read_to_string(&good)
            .expect("read creds")
            .replace(&good_seed, &other_seed),
    )
    .expect("write creds");
    // Not a creds file at all: refused before connecting.
    let garbled = dir.join("garbled.creds");
    std::fs::write(&garbled, format!("{good_seed} {good_jwt}")).expect("write creds");

    let secrets = [
        good_jwt.as_str(),
        good_seed.as_str(),
        stranger_jwt.as_str(),
        stranger_seed.as_str(),
        other_seed.as_str(),
    ];
    for (path, says) in [
        (&stranger, "Authorization"),
        (&swapped, "Authorization"),
        (&garbled, "credentials file"),
    ] {
        let options =
            NatsOptions::new(nats.url(), "kalshi").auth(NatsAuth::CredentialsFile(path.clone()));
        assert!(!secrets.iter().any(|s| format!("{options:?}").contains(s)));
        let error = NatsSink::connect(options).await.expect_err("refused");
        let text = format!("{error} {error:?}");
        assert!(text.contains(says), "{}: says why: {text}", path.display());
        if says == "Authorization" {
            assert!(matches!(error, NatsSinkError::Connect { .. }), "{error:?}");
        }
        for secret in secrets {
            assert!(!text.contains(secret), "a secret in the error: {text}");
        }
    }

    let text = logs.text();
    assert!(
        text.contains("authorization violation") && text.contains("establishing connection"),
        "the client's logs are captured, DEBUG included: {text}"
    );
    for secret in secrets {
        assert!(!text.contains(secret), "a secret in the logs:\n{text}");
    }
    drop(nats);
    let _ = std::fs::remove_dir_all(&dir);
}
