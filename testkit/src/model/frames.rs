//! The session model, continued: what a frame from the socket does, and
//! delivery under the queues' overflow policies (parking on a full `Block`
//! queue, the frames that wait behind it).

use super::queue::MPushed;
use super::registry::MFrame;
use super::session::{Expect, MEnd, MParked, SessionModel};
use resilient_ws::fuzzing::{Route, SeqCheck};
use resilient_ws::{ClientId, ServerId};

impl SessionModel {
    // ---- frames from the socket -------------------------------------------

    pub(crate) fn on_control(&mut self) {
        self.counters.frames_in += 1;
        self.counters.control += 1;
    }

    pub(crate) fn on_pong(&mut self) {
        self.on_control();
        self.awaiting_pong = None;
    }

    pub(crate) fn on_invalid(&mut self) {
        self.counters.frames_in += 1;
        self.counters.unroutable += 1;
    }

    /// A close frame from the peer.
    pub(crate) fn on_close(&mut self, permanent: bool) -> MEnd {
        self.on_control();
        if self.closing.is_some() {
            MEnd::Closed
        } else if permanent {
            MEnd::Fatal
        } else {
            MEnd::Lost
        }
    }

    pub(crate) fn on_unsolicited(&mut self, frame: MFrame, now: u64) {
        self.counters.frames_in += 1;
        self.deliver(None, frame, now);
    }

    pub(crate) fn on_data(&mut self, server_id: ServerId, frame: MFrame, now: u64) {
        self.counters.frames_in += 1;
        match self.reg.route(&server_id) {
            Route::To(id) => self.deliver(Some(id), frame, now),
            Route::Stash => self.counters.unroutable += self.reg.stash(server_id, frame) as u64,
            Route::Unroutable => self.counters.unroutable += 1,
        }
    }

    pub(crate) fn on_response(&mut self, req_id: u64, ok: bool) {
        self.on_control();
        if self.requests.remove(&req_id) {
            self.expected.push(Expect::RequestResult(req_id, ok));
        }
    }

    pub(crate) fn on_ack(
        &mut self,
        req_id: Option<u64>,
        server_id: &ServerId,
        channel: Option<&str>,
        symbol: Option<&str>,
        now: u64,
    ) {
        self.on_control();
        let Some(acked) = self.reg.on_subscribed(req_id, server_id, channel, symbol) else {
            self.unmatched_ack(req_id, symbol);
            return;
        };
        let id = acked.client_id;
        if acked.resubscribed {
            self.expected.push(Expect::Resubscribed(id));
        } else {
            self.expected.push(Expect::SubscribeResult(id, true));
            self.expected.push(Expect::Subscribed(id));
        }
        for frame in acked.released {
            self.deliver(Some(id), frame, now);
        }
        if self.reg.requests.is_empty() {
            self.counters.unroutable += self.reg.stash.len() as u64;
            self.reg.stash.clear();
        }
    }

    pub(super) fn unmatched_ack(&mut self, req_id: Option<u64>, symbol: Option<&str>) {
        if !self.connected {
            return;
        }
        let position = req_id.and_then(|req_id| {
            self.abandoned.iter().position(|(abandoned, topic)| {
                *abandoned == req_id
                    && symbol.is_none_or(|s| topic.symbol_name().is_none_or(|t| t == s))
            })
        });
        if let Some(at) = position {
            self.abandoned.remove(at);
            self.req_id();
        }
    }

    /// A refusal; `Some` when it ends the session.
    pub(crate) fn on_reject(
        &mut self,
        req_id: Option<u64>,
        symbol: Option<&str>,
        expired: bool,
    ) -> Option<MEnd> {
        self.on_control();
        if expired && self.settings.token_source {
            // Naming no member, it replays every member still waiting.
            let mut requeued = false;
            while self.reg.requeue_rejected(req_id, symbol).is_some() {
                requeued = true;
                if symbol.is_some() {
                    break;
                }
            }
            if requeued {
                return Some(MEnd::Lost);
            }
        }
        // Naming none of several waiting members, it ends each of them.
        let unnamed = req_id
            .filter(|_| symbol.is_none())
            .and_then(|r| self.reg.requests.get(&r))
            .map(|request| request.members.clone())
            .filter(|members| members.len() > 1);
        if let Some(members) = unnamed {
            for id in members {
                self.end_subscription(id, true);
            }
            return None;
        }
        if let Some((id, _, sub)) = self.reg.on_rejected(req_id, symbol) {
            if !sub.acked_once {
                self.expected.push(Expect::SubscribeResult(id, false));
            }
            self.queue(Some(id)).finished = true;
            self.expected.push(Expect::Ended(id));
            return None;
        }
        if let Some(req_id) = req_id.filter(|r| self.requests.remove(r)) {
            self.expected.push(Expect::RequestResult(req_id, false));
        }
        None
    }

    // ---- delivery -------------------------------------------------------------

    pub(super) fn deliver(&mut self, id: Option<ClientId>, frame: MFrame, now: u64) {
        if self.parked.is_some() {
            self.backlog.push_back((id, frame));
            return;
        }
        let Some(client_id) = id else {
            if self.queue(None).push(frame.number) == MPushed::Full {
                self.park(None, frame, false, now);
            }
            return;
        };
        if !self.reg.subs.contains_key(&client_id) {
            self.counters.unroutable += 1;
            return;
        }
        let mut resync = false;
        if let Some(seq) = frame.seq {
            match self.reg.check_seq(client_id, seq) {
                SeqCheck::InOrder => {}
                SeqCheck::Duplicate => {
                    self.counters.duplicates += 1;
                    self.queue(id).discard();
                    return;
                }
                SeqCheck::Gap { .. } => {
                    self.counters.gaps += 1;
                    resync = self.settings.resync_on_gap;
                }
            }
        }
        match self.queue(id).push(frame.number) {
            MPushed::Alive => self.after_push(client_id, true, frame.bad_checksum, resync),
            MPushed::Gone => self.after_push(client_id, false, frame.bad_checksum, resync),
            MPushed::Full => self.park(id, frame, resync, now),
        }
    }

    pub(super) fn after_push(
        &mut self,
        id: ClientId,
        alive: bool,
        bad_checksum: bool,
        mut resync: bool,
    ) {
        if !alive {
            self.end_subscription(id, true);
            return;
        }
        if bad_checksum {
            self.counters.book_breaks += 1;
            resync = true;
        }
        if resync {
            self.resync(id);
        }
    }

    pub(super) fn park(&mut self, id: Option<ClientId>, frame: MFrame, resync: bool, now: u64) {
        self.parked = Some(MParked {
            id,
            frame,
            resync,
            since: now,
        });
    }

    /// The parked queue has room (the harness only says so when it has).
    pub(crate) fn on_space(&mut self, now: u64) {
        let Some(parked) = self.parked.take() else {
            return;
        };
        match self.queue(parked.id).push(parked.frame.number) {
            MPushed::Full => {
                self.parked = Some(parked);
                return;
            }
            pushed => {
                if let Some(id) = parked.id {
                    let alive = pushed == MPushed::Alive;
                    self.after_push(id, alive, parked.frame.bad_checksum, parked.resync);
                }
            }
        }
        self.resume(parked.since, now);
    }

    /// The consumer did not make room in time: its subscription ends.
    pub(crate) fn on_block_timeout(&mut self, now: u64) {
        let Some(parked) = self.parked.take() else {
            return;
        };
        let queue = self.queue(parked.id);
        queue.finished = true;
        queue.push(parked.frame.number);
        if let Some(id) = parked.id {
            self.end_subscription(id, true);
        }
        self.resume(parked.since, now);
    }

    pub(super) fn resume(&mut self, since: u64, now: u64) {
        if self.connected {
            if let Some(deadline) = &mut self.awaiting_pong {
                *deadline += now - since;
            }
        }
        while self.parked.is_none() {
            let Some((id, frame)) = self.backlog.pop_front() else {
                break;
            };
            self.deliver(id, frame, now);
        }
    }
}
