//! The stale watch: a subscription whose channel has a user-set expectation
//! ([`stale_after`](crate::ConfigBuilder::stale_after)) and that receives no
//! data for that long is reported, once per silent period.
//!
//! Rules, and why:
//! - No per-frame cost: a tick every quarter of the shortest expectation reads
//!   each watched subscription's `routed` count (kept by its queue anyway) and
//!   compares it with the previous tick's, as the idle watch does.
//! - Silence counts from the subscription's acknowledgement on this connection
//!   (a subscription waiting for its ack is not yet expected to speak), or from
//!   its last data. A new connection starts a new watch.
//! - One report per silent period: the next comes only after data resumed and
//!   stopped again. Nothing is reconnected; this is a signal.
//! - Bounded by the user: one entry per live subscription on a watched channel.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::super::deadline::later;
use crate::config::Config;
use crate::events::Event;
use crate::subscription::{ClientId, Phase, Registry};

/// What the watch knows of one subscription.
struct Silence {
    /// Its queue's `routed` count at the last tick.
    routed: u64,
    /// When it last received data (or was acknowledged).
    since: Instant,
    /// Whether this silent period was already reported.
    reported: bool,
}

/// The watch of one connection; `None` in the link when no channel has an
/// expectation.
pub(super) struct StaleWatch {
    /// A quarter of the shortest expectation: how often it ticks
    /// ([`Timer::Stale`](super::timer_table::Timer::Stale)).
    tick: Duration,
    watched: HashMap<ClientId, Silence>,
}

impl StaleWatch {
    pub(super) fn new(config: &Config) -> Option<Self> {
        let shortest = config.stale_after.iter().map(|(_, d)| *d).min()?;
        let tick = (shortest / 4).max(Duration::from_millis(1));
        Some(StaleWatch {
            tick,
            watched: HashMap::new(),
        })
    }

    /// How long from one tick to the next.
    pub(super) fn tick(&self) -> Duration {
        self.tick
    }

    /// Moves every silence forward by a stall of `stalled` (the session did
    /// not read the socket, so the venue was not the one silent).
    pub(super) fn pause(&mut self, stalled: Duration) {
        for silence in self.watched.values_mut() {
            silence.since = later(silence.since, stalled);
        }
    }

    /// The tick at `now` (its timer expired): the stale reports due.
    pub(super) fn on_tick(
        &mut self,
        config: &Config,
        registry: &Registry,
        now: Instant,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        let mut live = 0;
        for (client_id, entry) in registry.iter() {
            let channel = entry.topic.channel();
            let Some(&(_, expected)) = config.stale_after.iter().find(|(c, _)| &**c == channel)
            else {
                continue;
            };
            live += 1;
            let routed = entry.queue.stats().routed;
            let silence = self.watched.entry(client_id).or_insert(Silence {
                routed,
                since: now,
                reported: false,
            });
            if entry.phase != Phase::Active || routed != silence.routed {
                *silence = Silence {
                    routed,
                    since: now,
                    reported: false,
                };
                continue;
            }
            let silent_for = now.saturating_duration_since(silence.since);
            if silent_for >= expected && !silence.reported {
                silence.reported = true;
                tracing::warn!(%client_id, channel, ?silent_for, "subscription is stale");
                events.push(Event::Stale {
                    client_id,
                    channel: channel.to_owned(),
                    silent_for,
                });
            }
        }
        if self.watched.len() > live {
            self.watched
                .retain(|client_id, _| registry.get(*client_id).is_some());
        }
        events
    }
}
