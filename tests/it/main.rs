//! The integration tests, as one test binary.
//!
//! Each file here was once its own binary under `tests/`; every one of them
//! linked the whole crate, tokio, tungstenite, rustls and `tests/support`,
//! which made a first `cargo test` spend most of its time linking. As modules
//! of one crate they compile `support` once and link once. Run one file's
//! tests with `cargo test --test it connection::`, one test with its full path.
//!
//! Some suites keep binaries of their own, for process-wide state: `chaos`
//! (a counting global allocator measures the heap; the soak re-executes its
//! binary as the exchange child) and `traces` (tracing's per-callsite interest
//! cache races with other tests' threads); `nats_secrets` has its own for the
//! same cache (one process-wide log capture).

#[path = "../support/mod.rs"]
mod support;

mod access;
mod bad_input;
mod churn;
mod close_codes;
mod connection;
mod consume;
mod custom_protocol;
mod exchange_smoke;
mod faults;
mod feed;
mod flapping;
mod give_up;
mod half_open;
mod kalshi;
mod kalshi_book;
mod kalshi_spec;
mod kraken;
mod kraken_spec;
mod kraken_token;
mod market_feed_metrics;
mod metrics_facade;
mod nats;
mod okx;
mod okx_book;
mod okx_book_rest;
mod panics;
mod pool;
mod promises;
mod record;
mod set_edges;
mod silence;
mod simulation;
mod subscriptions;
mod typed_data;
mod venue_errors;
mod weex;
mod weex_book;
