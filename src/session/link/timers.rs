//! The connection's timers: WebSocket or venue pings with a pong deadline, the
//! idle watch (only data and venue heartbeats count as life), and request and
//! subscribe deadlines.
//!
//! Rules: one [`next_timer`](SessionCore::next_timer) is all the shell arms;
//! [`on_tick`](SessionCore::on_tick) handles everything due at `now`. The idle
//! watch touches no timer per frame: a tick every quarter of the timeout compares
//! a frame counter with the previous tick's. A missed pong or an idle feed ends
//! the session (it reconnects); an expired request fails only that request; an
//! expired subscribe reconnects (and replays) when it was a replay.

use super::*;

impl<P: Protocol> SessionCore<P> {
    /// When [`on_tick`](Self::on_tick) is next due; `None` while disconnected.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        let link = self.link.as_ref()?;
        // While closing only the close deadline counts (as in `on_tick`): a
        // ping or idle deadline already past would otherwise be "due" at
        // every turn, and the shell would tick in a busy loop until the
        // close deadline.
        if let Some(deadline) = link.closing {
            return Some(deadline);
        }
        let mut at = link.next_ping;
        let candidates = [
            link.awaiting_pong,
            link.idle.as_ref().map(|i| i.next_tick),
            link.deadlines.first().map(|(t, _)| *t),
            link.closing,
        ];
        for t in candidates.into_iter().flatten() {
            at = at.min(t);
        }
        Some(at)
    }

    /// Time passed: the close deadline, the pong deadline, the idle watch,
    /// request deadlines, the next ping.
    pub(crate) fn on_tick(&mut self, now: Instant) -> Result<(), SessionEnd> {
        let Some(link) = &mut self.link else {
            return Ok(());
        };
        if let Some(deadline) = link.closing {
            if now >= deadline {
                tracing::debug!("close handshake timed out");
                return Err(SessionEnd::Closed);
            }
            // While closing only the close deadline counts: a pong or idle
            // deadline passing now must not turn the close into a reconnect.
            return Ok(());
        }
        if link.awaiting_pong.is_some_and(|deadline| now >= deadline) {
            self.stats.counters.ping_timeouts.bump();
            return Err(SessionEnd::Lost(Error::Timeout {
                operation: Operation::Ping,
                timeout: self.config.pong_timeout,
            }));
        }
        if let Some(idle) = &mut link.idle {
            if now >= idle.next_tick {
                if link.data_seen != idle.seen_at_tick {
                    idle.seen_at_tick = link.data_seen;
                    idle.last_activity = now;
                }
                if now.saturating_duration_since(idle.last_activity) >= idle.timeout {
                    self.stats.counters.idle_timeouts.bump();
                    return Err(SessionEnd::Lost(Error::Timeout {
                        operation: Operation::Receive,
                        timeout: idle.timeout,
                    }));
                }
                idle.next_tick = later(now, idle.timeout / 4);
            }
        }
        let mut due = Vec::new();
        while let Some(&(deadline, req_id)) = link.deadlines.first() {
            if deadline > now {
                break;
            }
            link.deadlines.pop_first();
            due.push(req_id);
        }
        let ping_due = now >= link.next_ping;
        if ping_due {
            link.next_ping = later(now, self.config.ping_interval);
        }
        let ping = ping_due && link.awaiting_pong.is_none();
        for req_id in due {
            self.expire(req_id)?;
        }
        if ping {
            self.ping();
        }
        Ok(())
    }

    fn ping(&mut self) {
        let req_id = self.next_req_id();
        let outgoing = match self.protocol.encode_ping(req_id.get()) {
            // App-level pings count against the venue's rate limit; they jump the queue.
            Some(text) => Outgoing::Ping { text },
            None => Outgoing::WsPing,
        };
        if let Some(link) = &mut self.link {
            if link.closing.is_none() {
                link.outbound.push_front(outgoing);
            }
        }
    }

    /// Queues the answer to a venue heartbeat ahead of everything but earlier
    /// answers, at most [`REPLY_LIMIT`](super::REPLY_LIMIT) at a time.
    pub(in crate::session) fn push_reply(&mut self, text: String) {
        let Some(link) = &mut self.link else {
            return;
        };
        if link.closing.is_some() {
            return;
        }
        if !link.outbound.push_reply(text, super::REPLY_LIMIT) {
            tracing::debug!("heartbeat replies already waiting; not answering this one");
        }
    }

    /// A pong (WebSocket or application-level) answered our ping.
    pub(in crate::session) fn pong_received(&mut self) {
        if let Some(link) = &mut self.link {
            link.awaiting_pong = None;
        }
    }

    /// A data frame or venue heartbeat: the feed is alive.
    pub(in crate::session) fn data_seen(&mut self) {
        if let Some(link) = &mut self.link {
            link.data_seen += 1;
        }
    }

    /// Removes `req_id` from the requests in flight; whether it was one.
    pub(in crate::session) fn take_request(&mut self, req_id: ReqId) -> bool {
        self.link
            .as_mut()
            .is_some_and(|link| link.requests.remove(&req_id))
    }

    /// A request or subscribe got no answer in time.
    fn expire(&mut self, req_id: ReqId) -> Result<(), SessionEnd> {
        let timeout = self.config.request_timeout;
        if self.take_request(req_id) {
            self.actions.push(Action::RequestResult {
                req_id,
                result: Err(Error::Timeout {
                    operation: Operation::Request,
                    timeout,
                }),
            });
            return Ok(());
        }
        if self.registry.pending_op(req_id) == Some(SubscriptionOp::Resubscribe) {
            // A durable subscription the venue acknowledged before: a missing
            // ack now says more about this connection (half-open, stuck right
            // after the handshake) than about the subscription, so reconnect
            // and replay instead of ending it. Backoff bounds the retries.
            tracing::warn!(
                %req_id,
                "a replayed subscribe was not acknowledged in time; reconnecting"
            );
            return Err(SessionEnd::Lost(Error::Timeout {
                operation: Operation::Subscribe,
                timeout,
            }));
        }
        for (client_id, op, entry) in self.registry.on_timeout(req_id) {
            let operation = match op {
                SubscriptionOp::Unsubscribe => Operation::Unsubscribe,
                _ => Operation::Subscribe,
            };
            let error = Error::Timeout { operation, timeout };
            tracing::warn!(%client_id, %req_id, "subscribe was not acknowledged in time");
            if !entry.acked_once {
                self.actions.push(Action::SubscribeResult {
                    client_id,
                    result: Err(error.clone()),
                });
            }
            entry.queue.finish(Some(error.clone()));
            match &entry.server_id {
                Some(server_id) => self.protocol.forget(server_id),
                None => self.protocol.forget_topic(&entry.topic),
            }
            self.emit(Event::SubscriptionEnded {
                client_id,
                error: Some(error),
            });
        }
        if !self.registry.any_pending() {
            self.all_acknowledged();
        }
        Ok(())
    }
}
