//! One connection attempt as a self-contained future, shared by both shells:
//! the pool's connect slot, the token source, then the connector, TLS and the
//! WebSocket handshake, each bounded by the connect timeout.
//!
//! It owns what it needs (the config and the TLS client config are `Arc`s),
//! so the spawned supervisor can await it while it serves commands and the
//! [`Feed`](crate::Feed) can keep it boxed between two polls. The fresh token
//! comes back with the result; the shell hands it to the protocol, which has
//! no place inside a future that outlives a borrow.

use std::sync::Arc;

use crate::config::Config;
use crate::connect::{open, Ws};
use crate::error::{Error, Operation};

/// What one attempt produced.
pub(crate) struct Attempted {
    /// The TLS client config, built on the first TLS attempt and kept.
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    /// A fresh token from the config's token source, for the protocol.
    pub(crate) token: Option<String>,
    /// The socket, or why there is none.
    pub(crate) result: Result<Ws, Error>,
    /// When the attempt started (after a pool's connect limiter let it go):
    /// the backoff spaces attempts from their starts.
    pub(crate) started: tokio::time::Instant,
}

/// Runs attempt number `attempt`.
pub(crate) async fn attempt(
    config: Arc<Config>,
    mut tls: Option<Arc<rustls::ClientConfig>>,
    attempt: u32,
) -> Attempted {
    if let Some(limiter) = config.connect_limiter.clone() {
        // A pool's members share one limiter: wait for this attempt's slot.
        limiter.acquire().await;
    }
    let started = tokio::time::Instant::now();
    let timeout = config.connect_timeout;
    let timed_out = || Error::Timeout {
        operation: Operation::Connect,
        timeout,
    };
    let mut token = None;
    if let Some(source) = config.token_source.clone() {
        match tokio::time::timeout(timeout, source.token()).await {
            Ok(Ok(fresh)) => token = Some(fresh),
            Ok(Err(source)) => {
                let result = Err(Error::Token {
                    attempts: attempt,
                    source: Arc::from(source),
                });
                return Attempted {
                    tls,
                    token,
                    result,
                    started,
                };
            }
            Err(_) => {
                let result = Err(timed_out());
                return Attempted {
                    tls,
                    token,
                    result,
                    started,
                };
            }
        }
    }
    // Boxed: the TLS and handshake state is large and needed only while
    // connecting; inline, it would enlarge the shell for the connection's life.
    let result =
        match tokio::time::timeout(timeout, Box::pin(open(&config, &mut tls, attempt))).await {
            Ok(result) => result,
            Err(_) => Err(timed_out()),
        };
    Attempted {
        tls,
        token,
        result,
        started,
    }
}
