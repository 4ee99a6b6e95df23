//! The connection's timers: WebSocket or venue pings with a pong deadline, the
//! idle watch (only data and venue heartbeats count as life), request and
//! subscribe deadlines, and the stale watch (`stale.rs`).
//!
//! Rules: every deadline lives in the connection's
//! [`TimerTable`](super::timer_table::TimerTable); its next deadline
//! ([`next_timer`](Link::next_timer)) is all the driver arms, and
//! [`on_tick`](Link::on_tick) fires exactly the timers expired at `now`. The idle
//! watch touches no timer per frame: a tick every quarter of the timeout compares
//! a frame counter with the previous tick's. A missed pong or an idle feed ends
//! the session (it reconnects: [`Lapsed`]); what else is due ([`Due`]) the
//! core acts on: an expired request fails only that request, an expired
//! subscribe reconnects (and replays) when it was a replay.

use std::time::Duration;

use tokio::time::Instant;

use super::super::deadline::later;
use super::timer_table::Timer;
use super::{Link, Outgoing, REPLY_LIMIT};
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

impl Link {
    /// When [`on_tick`](Self::on_tick) is next due: the earliest deadline of
    /// the connection's [`TimerTable`](super::timer_table::TimerTable).
    pub(in crate::session) fn next_timer(&self) -> Option<Instant> {
        self.timers.next_deadline()
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

    /// Queues a ping ahead of everything else (not once closing).
    pub(in crate::session) fn push_ping(&mut self, ping: Outgoing) {
        if !self.is_closing() {
            self.outbound.push_front(ping);
        }
    }

    /// Queues the answer to a venue heartbeat ahead of everything but earlier
    /// answers, at most [`REPLY_LIMIT`] at a time.
    pub(in crate::session) fn push_reply(&mut self, text: String) {
        if self.is_closing() {
            return;
        }
        if !self.outbound.push_reply(text, REPLY_LIMIT) {
            tracing::debug!("heartbeat replies already waiting; not answering this one");
        }
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

    /// Removes `req_id` from the requests in flight; whether it was one.
    pub(in crate::session) fn take_request(&mut self, req_id: ReqId) -> bool {
        self.requests.remove(&req_id)
    }
}
