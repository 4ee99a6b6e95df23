//! Per-attempt handshake credentials: the [`HeaderSource`] hook and the
//! built-in venue signers.
//!
//! Rules, and why:
//! - The hook runs before **every** connection attempt, inside the connect
//!   timeout. Venues sign a timestamp (Kalshi) so a header built once would be
//!   stale on the first reconnect.
//! - Header values are [`Secret`](crate::Secret)s: they reach the wire and
//!   nothing else. No error, `Debug` output or log line shows them; an invalid
//!   value is reported by header *name* only.
//! - A failing hook is an [`Error::Token`](crate::Error::Token): retried after
//!   the backoff delay, never in a hot loop.

mod headers;
mod kalshi;
#[cfg(feature = "kraken-token")]
mod kraken;
mod weex;

pub use headers::{HeaderFuture, HeaderSource, Headers};
pub use kalshi::{KalshiAuth, KALSHI_WS_PATH};
#[cfg(feature = "kraken-token")]
pub use kraken::{kraken_signature, KrakenTokenSource, KRAKEN_REST_URL, MAX_TOKEN_RESPONSE};
pub use weex::WeexAuth;
