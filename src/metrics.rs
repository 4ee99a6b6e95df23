//! Publishing the counters through the [`metrics`] facade (cargo feature `metrics`).
//!
//! Rules, and why:
//!
//! - **One source of truth.** Every published number is read from the same
//!   [`StatsHub`](crate::stats::StatsHub) snapshot that
//!   [`Client::stats`](crate::Client::stats) returns, so the two cannot
//!   disagree: counters are set with `absolute`, gauges with `set`. Nothing is
//!   counted twice on the hot path; a frame costs what it cost before.
//! - **When.** The supervisor task publishes every
//!   [`metrics_interval`](crate::ConfigBuilder::metrics_interval), at every
//!   connection-state change (the state gauge only), and once more after it
//!   has finished, so after [`Client::close`](crate::Client::close) returns the
//!   recorder holds the final counts.
//! - **No global state.** The library never installs a recorder. Handles are
//!   registered when the client is spawned, with whatever recorder is current
//!   there: the global one an application installed, or a scoped one
//!   (`metrics::with_local_recorder`) around `Client::spawn` in a test.
//!   The one exception is `resilient_ws_unplaced_total{kind}`: a kind is known
//!   only when its first frame arrives, so its series is registered then, by
//!   the connection task, with the recorder current in that task (the global
//!   one; a scoped recorder must be current where the runtime polls the task).
//! - **Labels.** `venue` (the protocol's name) and `connection` (the
//!   [`connection_name`](crate::ConfigBuilder::connection_name); a pool's
//!   members are `0`, `1`, ...). Venue errors also carry `kind`. There is no
//!   per-subscription label: with thousands of subscriptions that would be
//!   thousands of series, so queue depth is published summed per connection.
//!
//! Names (counters end in `_total`):
//!
//! | metric | type | from |
//! |---|---|---|
//! | `resilient_ws_<counter>_total` | counter | each [`Stats`] connection counter, e.g. `frames_in`, `reconnects`, `gaps`, `book_breaks`, `unroutable` |
//! | `resilient_ws_routed_total`, `_delivered_total`, `_dropped_total` | counter | [`Stats::queues`] summed over every queue |
//! | `resilient_ws_venue_errors_total{kind}` | counter | venue errors by [`VenueErrorKind`](crate::VenueErrorKind) |
//! | `resilient_ws_unplaced_total{kind}` | counter | frames the adapter could not place, by the venue's name for their type ([`Client::unplaced`](crate::Client::unplaced); at most [`MAX_KINDS`](crate::MAX_KINDS) + 1 series per connection, since a peer chooses the names) |
//! | `resilient_ws_queued` | gauge | messages waiting in all queues of the connection |
//! | `resilient_ws_stashed`, `resilient_ws_subscriptions`, `resilient_ws_subscribe_ops_waiting` | gauge | the stash, live subscriptions, subscribe/unsubscribe requests waiting for the venue's operations window |
//! | `resilient_ws_connection_state` | gauge | 0 closed, 1 connecting, 2 backoff, 3 connected, 4 closing |
//! | `resilient_ws_delivery_wait_seconds` | histogram | per data message: queued by the supervisor -> taken by the consumer |
//! | `resilient_ws_venue_lag_seconds` | histogram | per data message whose venue sends a timestamp ([`Protocol::venue_time`](crate::Protocol::venue_time)): venue timestamp -> read from the socket (0 when the venue's clock is ahead) |
//!
//! The delivery wait is the one number recorded per message (on the consumer's
//! side, under the queue lock it already takes): it cannot come from a snapshot.

use std::future::Future;
use std::time::Duration;

use ::metrics::{Counter, Gauge, Histogram, Label};

use crate::events::ConnectionState;
use crate::stats::{Stats, UnplacedKind};

/// The registered handles of one client.
pub(crate) struct Publisher {
    /// One per connection counter of [`Stats`], in [`Stats::named`] order.
    counters: Vec<Series>,
    routed: Counter,
    delivered: Counter,
    dropped: Counter,
    queued: Gauge,
    state: Gauge,
    wait: Histogram,
    lag: Histogram,
    /// The labels every series carries (for the per-kind series, registered
    /// when a kind first appears).
    labels: Vec<Label>,
}

enum Series {
    Counter(Counter),
    Gauge(Gauge),
}

const PREFIX: &str = "resilient_ws_";
/// Counters of [`Stats`] that are levels, not running totals.
const GAUGES: [&str; 3] = ["stashed", "subscriptions", "subscribe_ops_waiting"];
const VENUE_ERRORS: &str = "venue_errors_";

impl Publisher {
    /// Registers every series with the current recorder.
    pub(crate) fn new(venue: &'static str, connection: &str) -> Self {
        let labels = vec![
            Label::new("venue", venue),
            Label::new("connection", connection.to_owned()),
        ];
        let counter =
            |name: &str| ::metrics::counter!(format!("{PREFIX}{name}_total"), labels.clone());
        let counters = Stats::default()
            .named()
            .map(|(name, _)| {
                if GAUGES.contains(&name) {
                    Series::Gauge(::metrics::gauge!(format!("{PREFIX}{name}"), labels.clone()))
                } else if let Some(kind) = name.strip_prefix(VENUE_ERRORS) {
                    let mut labels = labels.clone();
                    labels.push(Label::new("kind", kind));
                    Series::Counter(::metrics::counter!(
                        format!("{PREFIX}venue_errors_total"),
                        labels
                    ))
                } else {
                    Series::Counter(counter(name))
                }
            })
            .collect();
        Publisher {
            counters,
            routed: counter("routed"),
            delivered: counter("delivered"),
            dropped: counter("dropped"),
            queued: ::metrics::gauge!(format!("{PREFIX}queued"), labels.clone()),
            state: ::metrics::gauge!(format!("{PREFIX}connection_state"), labels.clone()),
            wait: ::metrics::histogram!(format!("{PREFIX}delivery_wait_seconds"), labels.clone()),
            lag: ::metrics::histogram!(format!("{PREFIX}venue_lag_seconds"), labels.clone()),
            labels,
        }
    }

    /// Publishes one snapshot.
    pub(crate) fn publish(&self, stats: &Stats, state: ConnectionState) {
        for (series, (_, value)) in self.counters.iter().zip(stats.named()) {
            match series {
                Series::Counter(counter) => counter.absolute(value),
                Series::Gauge(gauge) => gauge.set(value as f64),
            }
        }
        self.routed.absolute(stats.queues.routed);
        self.delivered.absolute(stats.queues.delivered);
        self.dropped.absolute(stats.queues.dropped);
        self.queued.set(stats.queues.queued as f64);
        self.state(state);
    }

    /// Publishes the per-kind counts of unplaced frames. The table is bounded
    /// (see [`MAX_KINDS`](crate::MAX_KINDS)), so this registers a bounded
    /// number of series; a kind's series appears with its first frame.
    pub(crate) fn publish_unplaced(&self, kinds: &[UnplacedKind]) {
        for kind in kinds {
            let mut labels = self.labels.clone();
            labels.push(Label::new("kind", kind.kind.clone()));
            ::metrics::counter!(format!("{PREFIX}unplaced_total"), labels).absolute(kind.count);
        }
    }

    /// The histogram the session records venue-timestamp-to-receive lags in.
    pub(crate) fn venue_lag(&self) -> Histogram {
        self.lag.clone()
    }

    /// The histogram every queue of this client records its delivery waits in.
    pub(crate) fn delivery_wait(&self) -> Histogram {
        self.wait.clone()
    }

    /// Publishes the connection state alone.
    pub(crate) fn state(&self, state: ConnectionState) {
        self.state.set(state_code(state));
    }
}

/// The documented numeric value of each state.
fn state_code(state: ConnectionState) -> f64 {
    match state {
        ConnectionState::Closed => 0.0,
        ConnectionState::Connecting => 1.0,
        ConnectionState::Backoff => 2.0,
        ConnectionState::Connected => 3.0,
        ConnectionState::Closing => 4.0,
    }
}

/// Runs `work`, calling `publish` every `interval` until it completes.
pub(crate) async fn publish_while<T>(
    interval: Duration,
    publish: impl Fn(),
    work: impl Future<Output = T>,
) -> T {
    let mut work = std::pin::pin!(work);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return out,
            _ = ticker.tick() => publish(),
        }
    }
}
