//! What a connection's shell shares with every handle: the events channel,
//! the connection state, the final result and the counters.
//!
//! A file of its own, below everything in the supervisor that publishes
//! (`drive.rs`, `replies.rs`, `reconnect/`, `tap.rs`), so none of them
//! imports the supervisor's task for it.

use std::sync::{Arc, OnceLock};

use tokio::sync::{broadcast, watch};

use crate::error::Error;
use crate::events::{ConnectionState, Event};
use crate::stats::StatsHub;

/// What the supervisor shares with every handle.
pub(crate) struct Shared {
    /// Created by the first [`Client::events`](crate::Client::events) call: a
    /// broadcast channel allocates all its slots up front (about 160 KiB at the
    /// default capacity), which a connection nobody observes should not pay.
    pub(crate) events: OnceLock<broadcast::Sender<Event>>,
    pub(crate) event_capacity: usize,
    pub(crate) state: watch::Sender<ConnectionState>,
    /// `None` while running; the final result once the task has finished.
    pub(crate) done: watch::Sender<Option<Result<(), Error>>>,
    pub(crate) stats: Arc<StatsHub>,
    /// The handles the counters are published to (see `metrics.rs`).
    #[cfg(feature = "metrics")]
    pub(crate) metrics: crate::metrics::Publisher,
}

impl Shared {
    /// Moves to `state` (and publishes it as a gauge with the `metrics` feature).
    pub(crate) fn set_state(&self, state: ConnectionState) {
        self.state.send_replace(state);
        #[cfg(feature = "metrics")]
        self.metrics.state(state);
    }

    /// Publishes a snapshot of the counters to the metrics recorder.
    #[cfg(feature = "metrics")]
    pub(crate) fn publish_metrics(&self) {
        self.metrics
            .publish(&self.stats.snapshot(), *self.state.borrow());
        self.metrics.publish_unplaced(&self.stats.unplaced());
    }

    pub(crate) fn emit(&self, event: Event) {
        // No receiver is fine: events are optional to observe.
        if let Some(events) = self.events.get() {
            let _ = events.send(event);
        }
    }

    /// A receiver of every event emitted from now on.
    pub(crate) fn subscribe_events(&self) -> broadcast::Receiver<Event> {
        self.events
            .get_or_init(|| broadcast::channel(self.event_capacity).0)
            .subscribe()
    }
}
