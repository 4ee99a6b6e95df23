//! Real venue access (issue 13): per-attempt handshake headers (never leaked),
//! Kalshi's signed handshake verified by the emulator, readable refusals with
//! `Retry-After`, and TLS against a local `wss://` server with a test CA.

use crate::support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilient_ws::{
    Backoff, Client, Config, Error, Event, Headers, Kalshi, KalshiAuth, Proxy, RawProtocol,
    TokenError, Topic, Update,
};
use support::exchange::{Exchange, Gate, Venue};
use support::kalshi_auth::{self, TEST_KEY_PEM, TEST_PUBLIC_DER};
use support::tls::{TestCa, TlsServer};
use support::tunnel::TunnelProxy;
use support::{next, wait_event};

fn config(url: &str) -> resilient_ws::ConfigBuilder {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(10), Duration::from_millis(200)).jitter(0.0))
        .idle_timeout(None)
        .rate_limit(1000, Duration::from_secs(1))
}

/// Every log line, at every level, into a buffer.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
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

/// Captures every log line of this (current-thread) test.
fn capture_logs() -> (LogBuffer, tracing::subscriber::DefaultGuard) {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn handshake_headers_reach_the_server_each_attempt_and_never_leak() {
    const SECRET: &str = "hdr-SECRET-7f3a";
    let (logs, _guard) = capture_logs();

    let ex = Exchange::start(Venue::Raw).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = Arc::clone(&seen);
    // Refuse the first two upgrades with 401, then accept.
    ex.set_handshake_check(Some(Arc::new(move |request| {
        let mut log = log.lock().unwrap();
        let value = request
            .headers()
            .get("X-Api-Secret")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        log.push(value);
        if log.len() <= 2 {
            Gate::Refuse {
                status: 401,
                retry_after: None,
            }
        } else {
            Gate::Accept {
                authenticated: true,
            }
        }
    })));
    let calls = Arc::new(Mutex::new(0u32));
    let counter = Arc::clone(&calls);
    let config = config(&ex.url())
        .handshake_headers(move || {
            let n = {
                let mut c = counter.lock().unwrap();
                *c += 1;
                *c
            };
            async move {
                Ok::<_, TokenError>(Headers::new().with("X-Api-Secret", format!("{SECRET}-{n}")))
            }
        })
        .build()
        .unwrap();
    let config_debug = format!("{config:?}");
    let (client, _inbound) = Client::spawn(config, RawProtocol);
    let mut events = client.events();
    let mut failures = Vec::new();
    while let Event::AttemptFailed { error, .. } = wait_event(&mut events, |e| {
        matches!(e, Event::AttemptFailed { .. } | Event::Connected { .. })
    })
    .await
    {
        failures.push(error);
    }
    client.close().await.unwrap();

    // Fresh headers per attempt, all on the wire.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for (i, value) in seen.iter().enumerate() {
        assert_eq!(value, &format!("{SECRET}-{}", i + 1));
    }
    // The refusals say 401 and nothing else.
    assert!(!failures.is_empty());
    let mut shown = config_debug;
    for error in &failures {
        assert_eq!(
            error.connection_error().and_then(|c| c.http_status()),
            Some(401),
            "{error}"
        );
        shown.push_str(&format!("{error} {error:?}"));
    }
    shown.push_str(&logs.text());
    assert!(
        logs.text().contains("connection attempt failed"),
        "logs were captured"
    );
    assert!(!shown.contains(SECRET), "a header value leaked: {shown}");
}

#[tokio::test]
async fn kalshi_private_channels_need_a_valid_signature_fresh_on_every_connection() {
    let ex = Exchange::start(Venue::Kalshi).await.unwrap();
    let (check, seen) = kalshi_auth::check(TEST_PUBLIC_DER, "key-1");
    ex.set_handshake_check(Some(check));

    // Without credentials: public channels work, private ones are refused (code 9).
    let (client, _inbound) = Client::connect(config(&ex.url()).build().unwrap(), Kalshi::new())
        .await
        .unwrap();
    let public = client.subscribe(Topic::new("ticker").symbol("KX-1")).await;
    assert!(public.is_ok(), "{public:?}");
    let private = client
        .subscribe(Topic::new("orderbook_delta").symbol("KX-1"))
        .await;
    let code = private
        .as_ref()
        .err()
        .and_then(Error::venue_error)
        .and_then(|v| v.code);
    assert_eq!(code, Some(9), "{private:?}");
    client.close().await.unwrap();

    // Signed: private channels work, and a reconnect signs again.
    let auth = KalshiAuth::new("key-1", TEST_KEY_PEM).unwrap();
    let config = config(&ex.url()).handshake_headers(auth).build().unwrap();
    let (client, _inbound) = Client::connect(config, Kalshi::new()).await.unwrap();
    let mut events = client.events();
    let mut book = client
        .subscribe(Topic::new("orderbook_delta").symbol("KX-1"))
        .await
        .unwrap();
    ex.abort_all();
    wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    ex.publish("KX-1", serde_json::json!({"yes": 1}));
    loop {
        match next(&mut book).await {
            Some(Ok(Update::Data(_))) => break,
            Some(Ok(_)) => continue,
            other => panic!("expected data after the reconnect, got {other:?}"),
        }
    }
    client.close().await.unwrap();

    let seen = seen.lock().unwrap().clone();
    let signed: Vec<_> = seen.iter().filter(|s| s.signature.is_some()).collect();
    assert_eq!(signed.len(), 2, "{seen:?}");
    assert!(signed
        .iter()
        .all(|s| s.verified && s.key.as_deref() == Some("key-1")));
    assert_ne!(signed[0].signature, signed[1].signature);
    let ts = |i: usize| {
        signed[i]
            .timestamp
            .as_deref()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(ts(1) >= ts(0));
}

#[tokio::test]
async fn a_wrong_kalshi_key_is_a_401_refusal() {
    let ex = Exchange::start(Venue::Kalshi).await.unwrap();
    let (check, _seen) = kalshi_auth::check(TEST_PUBLIC_DER, "key-1");
    ex.set_handshake_check(Some(check));
    // The right key under the wrong id: the emulator refuses the upgrade.
    let auth = KalshiAuth::new("key-2", TEST_KEY_PEM).unwrap();
    let config = config(&ex.url())
        .handshake_headers(auth)
        .backoff(
            Backoff::new(Duration::from_millis(1), Duration::from_millis(1)).max_attempts(Some(1)),
        )
        .build()
        .unwrap();
    let Err(error) = Client::connect(config, Kalshi::new()).await else {
        panic!("the client should give up");
    };
    let status = error.connection_error().and_then(|c| c.http_status());
    assert_eq!(status, Some(401), "{error}");
    assert!(error.to_string().contains("HTTP 401"), "{error}");
}

#[tokio::test]
async fn a_429_with_retry_after_lengthens_the_next_backoff_delay() {
    let ex = Exchange::start(Venue::Raw).await.unwrap();
    ex.set_handshake_check(Some(Arc::new(|_| Gate::Refuse {
        status: 429,
        retry_after: Some("3".into()),
    })));
    let (client, _inbound) = Client::spawn(config(&ex.url()).build().unwrap(), RawProtocol);
    let mut events = client.events();
    let failed = wait_event(&mut events, |e| matches!(e, Event::AttemptFailed { .. })).await;
    if let Event::AttemptFailed { error, .. } = &failed {
        assert_eq!(error.retry_after(), Some(Duration::from_secs(3)), "{error}");
        assert!(error.to_string().contains("HTTP 429"), "{error}");
    }
    let scheduled = wait_event(&mut events, |e| {
        matches!(e, Event::ReconnectScheduled { .. })
    })
    .await;
    match scheduled {
        // The backoff alone would be at most 200 ms.
        Event::ReconnectScheduled { delay, .. } => {
            assert!(delay >= Duration::from_millis(2900), "{delay:?}")
        }
        other => panic!("{other:?}"),
    }
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_503_without_retry_after_is_readable_and_keeps_the_plain_backoff() {
    let ex = Exchange::start(Venue::Raw).await.unwrap();
    ex.set_handshake_check(Some(Arc::new(|_| Gate::Refuse {
        status: 503,
        retry_after: None,
    })));
    let (client, _inbound) = Client::spawn(config(&ex.url()).build().unwrap(), RawProtocol);
    let mut events = client.events();
    let scheduled = wait_event(&mut events, |e| {
        matches!(e, Event::ReconnectScheduled { .. })
    })
    .await;
    match scheduled {
        Event::ReconnectScheduled { delay, .. } => {
            assert!(delay <= Duration::from_millis(200), "{delay:?}")
        }
        other => panic!("{other:?}"),
    }
    client.close().await.unwrap();
}

fn tls_client_config(ca: &TestCa) -> Arc<rustls::ClientConfig> {
    resilient_ws::tls::client_config_with_roots(ca.roots()).unwrap()
}

async fn first_text(inbound: &mut resilient_ws::Messages) -> String {
    match next(inbound).await {
        Some(Ok(frame)) => frame.as_text().unwrap_or_default().to_owned(),
        other => panic!("expected hello, got {other:?}"),
    }
}

#[tokio::test]
async fn wss_with_a_custom_ca_works_and_sends_sni() {
    let ca = TestCa::new();
    let server = TlsServer::start(&ca).await;
    let url = format!("wss://localhost:{}/", server.port);
    let config = config(&url)
        .tls_config(tls_client_config(&ca))
        .build()
        .unwrap();
    let (client, mut inbound) = Client::connect(config, RawProtocol).await.unwrap();
    assert_eq!(first_text(&mut inbound).await, "hello");
    client.close().await.unwrap();
    let sni = server.sni.lock().unwrap().clone();
    assert_eq!(sni, vec![Some("localhost".to_owned())]);
}

#[tokio::test]
async fn an_unknown_ca_is_a_clear_tls_connection_error() {
    let ca = TestCa::new();
    let server = TlsServer::start(&ca).await;
    let url = format!("wss://localhost:{}/", server.port);
    // Default config: verification on, the test CA is not a known root.
    let config = config(&url)
        .backoff(
            Backoff::new(Duration::from_millis(1), Duration::from_millis(1)).max_attempts(Some(1)),
        )
        .build()
        .unwrap();
    let Err(error) = Client::connect(config, RawProtocol).await else {
        panic!("the client should give up");
    };
    let reason = error
        .connection_error()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(reason.starts_with("TLS failed"), "{error}");
    assert!(reason.contains("UnknownIssuer"), "{error}");
    assert_eq!(*server.upgrades.lock().unwrap(), 0);
}

#[tokio::test]
async fn send_binary_reaches_the_venue_and_fails_fast_while_disconnected() {
    let ex = Exchange::start(Venue::Raw).await.unwrap();
    // One frame per minute: only sends outside the budget can pass at once.
    let config = config(&ex.url())
        .rate_limit(1, Duration::from_secs(60))
        .build()
        .unwrap();
    let (client, _inbound) = Client::connect(config, RawProtocol).await.unwrap();
    client.send("spends-the-budget").await.unwrap();
    let unlimited = resilient_ws::SendOptions::new().unlimited();
    client
        .send_binary_with(vec![0xde, 0xad], unlimited)
        .await
        .unwrap();
    client.send_text_with("also-free", unlimited).await.unwrap();
    assert!(
        ex.wait_received(
            |r| r.iter().map(|r| r.text.as_str()).collect::<Vec<_>>()
                == ["spends-the-budget", "binary:dead", "also-free"],
            support::SOON
        )
        .await,
        "{:?}",
        ex.received()
    );

    // Disconnected: fails at once, never queued for later.
    let mut events = client.events();
    ex.set_refuse(true);
    ex.abort_all();
    wait_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await;
    let error = client.send_binary(vec![1u8]).await.unwrap_err();
    assert!(
        matches!(error, Error::Connection { .. } | Error::Closed { .. }),
        "{error:?}"
    );
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_binary_sink_sends_in_order_and_fails_fast_while_disconnected() {
    use futures::SinkExt;
    let ex = Exchange::start(Venue::Raw).await.unwrap();
    let config = config(&ex.url()).build().unwrap();
    let (client, _inbound) = Client::connect(config, RawProtocol).await.unwrap();
    let mut sink = client.binary_sink(resilient_ws::SendOptions::new());
    let mut frames = futures::StreamExt::map(
        futures::stream::iter([vec![0x01], vec![0x02, 0x03], vec![0x04]]),
        Ok,
    );
    sink.send_all(&mut frames).await.unwrap();
    assert!(
        ex.wait_received(
            |r| r.iter().map(|r| r.text.as_str()).collect::<Vec<_>>()
                == ["binary:01", "binary:0203", "binary:04"],
            support::SOON
        )
        .await,
        "{:?}",
        ex.received()
    );
    // Disconnected: the sink fails at once instead of holding frames for later.
    let mut events = client.events();
    ex.set_refuse(true);
    ex.abort_all();
    wait_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await;
    let error = tokio::time::timeout(support::SOON, sink.send(vec![0x05]))
        .await
        .expect("fails fast")
        .unwrap_err();
    assert!(
        matches!(error, Error::Connection { .. } | Error::Closed { .. }),
        "{error:?}"
    );
    client.close().await.unwrap();
}

#[tokio::test]
async fn an_http_connect_proxy_with_basic_auth_carries_the_connection() {
    let ex = Exchange::start(Venue::Raw).await.unwrap();
    let proxy = TunnelProxy::http(Some(("trader", "pr0xy-pw"))).await;
    let config = config(&ex.url())
        .proxy(Proxy::parse(&proxy.url("http", Some("trader:pr0xy-pw"))).unwrap())
        .build()
        .unwrap();
    let (client, _inbound) = Client::connect(config, RawProtocol).await.unwrap();
    client.send("through-the-proxy").await.unwrap();
    assert!(
        ex.wait_received(
            |r| r.iter().any(|r| r.text == "through-the-proxy"),
            support::SOON
        )
        .await
    );
    client.close().await.unwrap();
    let target = format!("127.0.0.1:{}", ex.addr().port());
    assert_eq!(*proxy.targets.lock().unwrap(), vec![target]);
}

#[tokio::test]
async fn a_proxy_refusal_is_readable_and_never_shows_the_credentials() {
    let (logs, _guard) = capture_logs();
    let ex = Exchange::start(Venue::Raw).await.unwrap();
    let proxy = TunnelProxy::http(Some(("trader", "right-pw"))).await;
    let proxy_config = Proxy::parse(&proxy.url("http", Some("trader:WRONG-pw-9"))).unwrap();
    let config = config(&ex.url())
        .proxy(proxy_config)
        .backoff(
            Backoff::new(Duration::from_millis(1), Duration::from_millis(1)).max_attempts(Some(1)),
        )
        .build()
        .unwrap();
    let shown_config = format!("{config:?}");
    let Err(error) = Client::connect(config, RawProtocol).await else {
        panic!("the client should give up");
    };
    let reason = error
        .connection_error()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(reason.starts_with("proxy failed"), "{error}");
    assert!(reason.contains("407"), "{error}");
    let shown = format!("{shown_config} {error} {error:?} {}", logs.text());
    assert!(
        logs.text().contains("connection attempt failed"),
        "logs were captured"
    );
    assert!(!shown.contains("WRONG-pw-9"), "{shown}");
    assert_eq!(ex.handshakes(), 0);
}

#[tokio::test]
async fn a_socks5_proxy_carries_wss_end_to_end_with_the_name_unresolved() {
    let ca = TestCa::new();
    let server = TlsServer::start(&ca).await;
    let proxy = TunnelProxy::socks5(Some(("trader", "s0cks-pw"))).await;
    let url = format!("wss://localhost:{}/", server.port);
    let config = config(&url)
        .tls_config(tls_client_config(&ca))
        .proxy(Proxy::parse(&proxy.url("socks5h", Some("trader:s0cks-pw"))).unwrap())
        .build()
        .unwrap();
    let (client, mut inbound) = Client::connect(config, RawProtocol).await.unwrap();
    assert_eq!(first_text(&mut inbound).await, "hello");
    client.close().await.unwrap();
    assert_eq!(
        *proxy.targets.lock().unwrap(),
        vec![format!("localhost:{}", server.port)]
    );
    assert_eq!(
        *server.sni.lock().unwrap(),
        vec![Some("localhost".to_owned())]
    );
}

/// Records the `User-Agent` headers of every handshake (all of them, in order).
fn record_user_agents(ex: &Exchange) -> Arc<Mutex<Vec<Vec<String>>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    ex.set_handshake_check(Some(Arc::new(move |request| {
        let agents = request
            .headers()
            .get_all("user-agent")
            .iter()
            .map(|v| v.to_str().unwrap_or("<not text>").to_owned())
            .collect();
        log.lock().unwrap().push(agents);
        Gate::Accept {
            authenticated: true,
        }
    })));
    seen
}

#[tokio::test]
async fn every_handshake_names_the_crate_unless_the_user_says_otherwise() {
    let ex = Exchange::start(Venue::Raw).await.unwrap();
    let seen = record_user_agents(&ex);
    let default = concat!("resilient-ws/", env!("CARGO_PKG_VERSION"));
    assert_eq!(resilient_ws::DEFAULT_USER_AGENT, default);
    let setups: [fn(resilient_ws::ConfigBuilder) -> resilient_ws::ConfigBuilder; 4] = [
        |b| b,
        |b| b.user_agent("desk-7 (ops@example.com)"),
        |b| b.no_user_agent(),
        // A header source's own User-Agent wins; it is never sent twice.
        |b| {
            b.handshake_headers(|| async {
                Ok::<_, TokenError>(Headers::new().with("User-Agent", "signed-agent/1"))
            })
        },
    ];
    for setup in setups {
        let config = setup(config(&ex.url())).build().unwrap();
        let (client, _inbound) = Client::connect(config, RawProtocol).await.unwrap();
        client.close().await.unwrap();
    }
    assert_eq!(
        *seen.lock().unwrap(),
        [
            vec![default.to_owned()],
            vec!["desk-7 (ops@example.com)".to_owned()],
            vec![],
            vec!["signed-agent/1".to_owned()],
        ]
    );
    // A value that cannot be a header is refused when the config is built.
    let bad = config(&ex.url()).user_agent("line\nbreak").build();
    assert!(matches!(bad, Err(Error::Config(_))), "{bad:?}");
}
