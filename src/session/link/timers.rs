//! The connection's timers: WebSocket or venue pings with a pong deadline, the
//! idle watch (only data and venue heartbeats count as life), request and
//! subscribe deadlines, and the stale watch (`stale.rs`).
//!
//! [`Liveness`] owns the connection's
//! [`TimerTable`] and the watches that read
//! it. Rules: every deadline lives in the table; its next deadline
//! ([`next_timer`](Liveness::next_timer)) is all the driver arms, and
//! [`on_tick`](Liveness::on_tick) fires exactly the timers expired at `now`. The idle
//! watch touches no timer per frame: a tick every quarter of the timeout compares
//! a frame counter with the previous tick's. A missed pong or an idle feed ends
//! the session (it reconnects: [`Lapsed`]); what else is due ([`Due`]) the
//! core acts on: an expired request fails only that request, an expired
//! subscribe reconnects (and replays) when it was a replay.

use std::time::Duration;

use tokio::time::Instant;

use super::super::deadline::later;
use super::stale::StaleWatch;
use super::timer_table::{Timer, TimerTable};
use crate::config::Config;
use crate::events::Event;
use crate::subscription::{Registry, ReqId};

/// What a tick found due on a live connection.
#[derive(Default)]
pub(in crate::session) struct Due {
    /// Stale reports to emit.
    pub(in crate::session) stale: Vec<Event>,
    /// Requests and subscribes whose deadline passed, earliest first.
    pub(in crate::session) expired: Vec<ReqId>,
    /// Whether to ping now.
    pub(in crate::session) ping: bool,
}

/// A deadline that ends the session.
pub(in crate::session) enum Lapsed {
    /// The peer did not answer our close in time.
    Close,
    /// Our ping went unanswered past the pong timeout.
    Pong,
    /// No data or venue heartbeat for the idle timeout (given).
    Idle(Duration),
}

/// Idle detection without touching a timer per frame: a tick every quarter of
/// the timeout ([`Timer::Idle`]) compares a frame counter with the previous
/// tick's.
struct IdleWatch {
    timeout: Duration,
    seen_at_tick: u64,
    last_activity: Instant,
}

/// The deadlines of one connection and the watches that read them.
pub(in crate::session) struct Liveness {
    /// Every deadline (`timer_table.rs`): the close handshake, the pong, the
    /// next ping, the idle and stale ticks, the requests written.
    timers: TimerTable,
    /// Data frames and venue heartbeats seen (the idle watch reads it).
    data_seen: u64,
    idle: Option<IdleWatch>,
    /// Subscriptions silent past their channel's expectation (`stale.rs`).
    stale: Option<StaleWatch>,
}

impl Liveness {
    /// The timers of a connection opened at `now`: the first ping, the idle
    /// and stale ticks where configured.
    pub(super) fn new(config: &Config, now: Instant) -> Self {
        let mut timers = TimerTable::default();
        timers.set(Timer::Ping, later(now, config.ping_interval));
        let idle = config.idle_timeout.map(|timeout| {
            timers.set(Timer::Idle, later(now, timeout / 4));
            IdleWatch {
                timeout,
                seen_at_tick: 0,
                last_activity: now,
            }
        });
        let stale = StaleWatch::new(config);
        if let Some(watch) = &stale {
            timers.set(Timer::Stale, later(now, watch.tick()));
        }
        Liveness {
            timers,
            data_seen: 0,
            idle,
            stale,
        }
    }

    /// When [`on_tick`](Self::on_tick) is next due: the earliest deadline of
    /// the table.
    pub(in crate::session) fn next_timer(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Whether the close handshake has begun (its deadline is armed).
    pub(super) fn is_closing(&self) -> bool {
        self.timers.get(Timer::Close).is_some()
    }

    /// The close handshake began; the peer must answer by `deadline`.
    pub(super) fn begin_close(&mut self, deadline: Instant) {
        self.timers.set(Timer::Close, deadline);
    }

    /// A request or subscribe `req_id` was written; its answer is due by `at`.
    pub(super) fn request_written(&mut self, req_id: ReqId, at: Instant) {
        self.timers.set_request(req_id, at);
    }

    /// A ping was written; its pong is due by `at`.
    pub(super) fn ping_written(&mut self, at: Instant) {
        self.timers.set(Timer::Pong, at);
    }

    /// Moves the liveness deadlines by a stall of `stalled` (the session did
    /// not read the socket, so the peer was not the one silent).
    pub(super) fn pause(&mut self, stalled: Duration) {
        self.timers.delay(Timer::Pong, stalled);
        if let Some(idle) = &mut self.idle {
            idle.last_activity = later(idle.last_activity, stalled);
        }
        if let Some(stale) = &mut self.stale {
            stale.pause(stalled);
        }
    }

    /// Time passed: fires exactly the timers expired at `now`, in this order:
    /// the close deadline, the pong deadline, the idle watch, the stale watch
    /// (over `registry`), request deadlines, the next ping.
    pub(in crate::session) fn on_tick(
        &mut self,
        config: &Config,
        registry: &Registry,
        now: Instant,
    ) -> Result<Due, Lapsed> {
        if self.is_closing() {
            if self.timers.is_expired(Timer::Close, now) {
                tracing::debug!("close handshake timed out");
                return Err(Lapsed::Close);
            }
            // While closing only the close deadline counts: a pong or idle
            // deadline passing now must not turn the close into a reconnect.
            return Ok(Due::default());
        }
        if self.timers.is_expired(Timer::Pong, now) {
            return Err(Lapsed::Pong);
        }
        if let Some(idle) = &mut self.idle {
            if self.timers.is_expired(Timer::Idle, now) {
                if self.data_seen != idle.seen_at_tick {
                    idle.seen_at_tick = self.data_seen;
                    idle.last_activity = now;
                }
                if now.saturating_duration_since(idle.last_activity) >= idle.timeout {
                    return Err(Lapsed::Idle(idle.timeout));
                }
                self.timers.set(Timer::Idle, later(now, idle.timeout / 4));
            }
        }
        let stale = match &mut self.stale {
            Some(watch) if self.timers.is_expired(Timer::Stale, now) => {
                self.timers.set(Timer::Stale, later(now, watch.tick()));
                watch.on_tick(config, registry, now)
            }
            _ => Vec::new(),
        };
        let mut expired = Vec::new();
        while let Some(req_id) = self.timers.pop_expired_request(now) {
            expired.push(req_id);
        }
        let ping_due = self.timers.is_expired(Timer::Ping, now);
        if ping_due {
            self.timers
                .set(Timer::Ping, later(now, config.ping_interval));
        }
        Ok(Due {
            stale,
            expired,
            ping: ping_due && self.timers.get(Timer::Pong).is_none(),
        })
    }

    /// A pong (WebSocket or application-level) answered our ping.
    #[inline]
    pub(in crate::session) fn pong_received(&mut self) {
        self.timers.stop(Timer::Pong);
    }

    /// A data frame or venue heartbeat: the feed is alive.
    #[inline] // on every data frame's path
    pub(in crate::session) fn data_seen(&mut self) {
        self.data_seen += 1;
    }
}
