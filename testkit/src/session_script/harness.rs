//! The harness: it plays a shell of `supervisor/drive.rs` and the world
//! around it, one script step at a time, feeding the model the same inputs.
//!
//! It holds no rule of its own about driving the core: every input goes
//! through [`Drive`], and what may happen next is what [`Drive::next_turn`]
//! says, as for the spawned shell and the feed. The script only chooses among
//! what a shell could see next: which frame the peer sends, which command a
//! handle sends, how long the machine takes, whether a write fails.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Bytes, Message, Utf8Bytes};

use super::wire::{sid_word, ScriptProtocol};
use super::{
    other, policy_of, Script, SeqPick, SidPick, Step, CHANNELS, CLOSE_CODES, MAX_STEPS, SYMBOLS,
};
use resilient_ws::fuzzing::{
    self, Command, Drive, Queue, SessionEnd, Turn, Unspawned, WriteOutcome, READ_BATCH,
};
use resilient_ws::{
    default_permanent_close, ClientId, Config, Error, Event, Frame, Messages, Operation, Overflow,
    Request, ServerId, Topic,
};

use crate::model::queue::MQueue;
use crate::model::registry::MFrame;
use crate::model::session::{MEnd, SessionModel, Settings, INBOUND};

pub(super) struct Harness {
    /// The core with its callers, driven as the shells drive it.
    pub(super) drive: Drive<ScriptProtocol>,
    /// Every event the drive publishes, as `Client::events` would see it.
    pub(super) events: broadcast::Receiver<Event>,
    pub(super) model: SessionModel,
    /// The queue of every subscription handed to the core.
    pub(super) queues: BTreeMap<ClientId, Arc<Queue>>,
    /// The client's inbound stream (`INBOUND`) while its consumer holds it,
    /// and that queue's policy.
    pub(super) inbound: Option<Messages>,
    pub(super) inbound_policy: Overflow,
    /// The callers waiting for an answer: subscribe, request (by the model's
    /// request id) and send.
    pub(super) subscribes: BTreeMap<ClientId, oneshot::Receiver<Result<(), Error>>>,
    pub(super) requests: BTreeMap<u64, oneshot::Receiver<Result<Frame, Error>>>,
    pub(super) sends: BTreeMap<u64, oneshot::Receiver<Result<(), Error>>>,
    /// Whether the shell has a connection up.
    pub(super) connected: bool,
    /// Frames the shell may still hand in from the socket's buffer before it
    /// asks for the next turn (`drive.rs` rule 3).
    batch: usize,
    /// Consumers that still hold their stream.
    pub(super) alive: BTreeSet<ClientId>,
    /// Unsubscribe commands of dropped streams, waiting for the shell.
    pub(super) deferred: Vec<ClientId>,
    /// Callers of `subscribe` answered so far.
    pub(super) answered: BTreeSet<ClientId>,
    pub(super) base: Instant,
    pub(super) now: u64,
    pub(super) next_client_id: u64,
    pub(super) next_send_id: u64,
    pub(super) next_frame: u64,
    pub(super) one_off: Vec<u64>,
    pub(super) seen: BTreeSet<ServerId>,
    /// The session ended for good (closed or a permanent close).
    pub(super) over: bool,
}

impl Harness {
    pub(super) fn new(script: &Script) -> Self {
        let stash_capacity = usize::from(script.stash_capacity % 4) + 1;
        let stash_bytes = match script.stash_bytes {
            0 => usize::MAX,
            n => usize::from(n % 8) * 16 + 8,
        };
        let settings = Settings {
            batch: script.batch,
            resync_on_gap: script.resync_on_gap,
            token_source: script.token_source,
            request_timeout: u64::from(script.request_timeout % 4 + 1) * 1000,
            pong_timeout: 1000,
            ping_interval: if script.pings { 2000 } else { 1 << 40 },
            close_timeout: 1000,
            idle_timeout: match script.idle {
                0 => None,
                n => Some(u64::from(n % 4 + 1) * 1000),
            },
        };
        let (frames, per) = match script.rate {
            0 => (10_000, 1),
            n => (u32::from(n % 4) + 1, 1),
        };
        let mut builder = Config::builder("wss://127.0.0.1:9/ws")
            .stash_capacity(stash_capacity)
            .stash_bytes(stash_bytes)
            .resync_on_gap(script.resync_on_gap)
            .request_timeout(Duration::from_millis(settings.request_timeout))
            .pong_timeout(Duration::from_millis(settings.pong_timeout))
            .ping_interval(Duration::from_millis(settings.ping_interval))
            .close_timeout(Duration::from_millis(settings.close_timeout))
            .idle_timeout(settings.idle_timeout.map(Duration::from_millis))
            .rate_limit(frames, Duration::from_secs(per))
            .on_connect("HELLO");
        if script.token_source {
            builder =
                builder.token_source(|| async { Ok::<_, resilient_ws::TokenError>("t".into()) });
        }
        let capacity = usize::from(script.inbound_capacity % 3) + 1;
        let policy = policy_of(script.inbound_policy);
        // Room for every event one step can cause (each subscription ending).
        let events = MAX_STEPS * 3 + 64;
        let config = builder
            .queue_capacity(capacity)
            .overflow(policy)
            .event_capacity(events)
            .build()
            .expect("a valid script config");
        let protocol = ScriptProtocol {
            batch: script.batch,
            app_ping: script.app_ping,
        };
        // Built as every shell builds it: the client's shared state, the
        // core and its callers, the inbound stream.
        let Unspawned {
            drive,
            inbound,
            events,
        } = fuzzing::unspawned(config, protocol);
        let mut model = SessionModel::new(settings, stash_capacity, stash_bytes);
        model.queues.insert(INBOUND, MQueue::new(capacity, policy));
        Harness {
            drive,
            events,
            model,
            queues: BTreeMap::new(),
            inbound: Some(inbound),
            inbound_policy: policy,
            subscribes: BTreeMap::new(),
            requests: BTreeMap::new(),
            sends: BTreeMap::new(),
            connected: false,
            batch: 0,
            alive: BTreeSet::from([INBOUND]),
            deferred: Vec::new(),
            answered: BTreeSet::new(),
            base: Instant::now(),
            now: 0,
            next_client_id: 1,
            next_send_id: 1,
            next_frame: 0,
            one_off: Vec::new(),
            seen: BTreeSet::new(),
            over: false,
        }
    }

    pub(super) fn at(&self) -> Instant {
        self.base + Duration::from_millis(self.now)
    }

    /// What the drive says a shell does next; `None` while no connection is up.
    pub(super) fn turn(&self) -> Option<Turn> {
        self.connected.then(|| self.drive.next_turn(self.at()))
    }

    pub(super) fn parked(&self) -> bool {
        matches!(self.turn(), Some(Turn::Blocked { .. }))
    }

    /// A new turn that is not blocked: frames due go out first, as a shell
    /// writes them before it waits for anything else. Then `true` when the
    /// shell waits (and so may take the next input).
    fn wake(&mut self) -> bool {
        loop {
            match self.turn() {
                Some(Turn::Write) => self.write(),
                Some(Turn::Wait { .. }) => {
                    self.batch = READ_BATCH;
                    return true;
                }
                Some(Turn::Blocked { .. }) | None => return false,
            }
        }
    }

    /// Whether the shell hands in a frame from the socket now: on a turn
    /// that waits, or from the buffer after the last input (up to
    /// [`READ_BATCH`], while the drive may read).
    fn reads(&mut self) -> bool {
        if !self.connected || self.parked() {
            return false;
        }
        if self.batch > 0 && self.drive.may_read() {
            self.batch -= 1;
            return true;
        }
        self.wake()
    }

    /// Whether the shell takes a command now; offline it always does.
    fn takes_commands(&mut self) -> bool {
        if !self.connected {
            return true;
        }
        self.wake()
            && matches!(self.turn(), Some(Turn::Wait { commands: true, .. }))
            && !self.model.is_closing()
    }

    /// Hands `command` to the drive, online or offline as a shell does.
    fn command(&mut self, command: Command) {
        if self.connected {
            self.drive.serve_online(Some(command), self.at());
        } else {
            let close = self.drive.serve_offline(Some(command), self.at());
            assert!(!close, "only close ends the shell offline");
        }
    }

    /// One step; `false` once the client is finished.
    pub(super) fn step(&mut self, step: &Step) -> bool {
        if !self.deferred.is_empty() && self.takes_commands() {
            for id in std::mem::take(&mut self.deferred) {
                self.command(Command::Unsubscribe {
                    client_id: id,
                    reply: None,
                });
                self.model.unsubscribe(id);
            }
        }
        match *step {
            Step::Connect if !self.parked() => {
                if self.connected {
                    // The old connection's end is read first.
                    if !self.reads() {
                        return true;
                    }
                    let expected = self.stream_end();
                    if !self.read(None, Some(expected)) {
                        return false;
                    }
                }
                self.drive.connected(self.at(), std::time::UNIX_EPOCH);
                self.connected = true;
                self.batch = 0;
                self.model.on_connected(self.now);
            }
            Step::Drop if self.reads() => {
                let expected = self.stream_end();
                return self.read(None, Some(expected));
            }
            Step::Subscribe {
                channel,
                symbol,
                count,
                capacity,
                policy,
            } if self.takes_commands() => self.subscribe(channel, symbol, count, capacity, policy),
            Step::Unsubscribe { pick } if self.takes_commands() => {
                if let Some(id) = self.pick_consumer(pick, false) {
                    // `Subscription::unsubscribe` consumes the handle.
                    let (reply, mut answer) = oneshot::channel();
                    self.command(Command::Unsubscribe {
                        client_id: id,
                        reply: Some(reply),
                    });
                    assert!(
                        matches!(answer.try_recv(), Ok(Ok(()))),
                        "unsubscribe answered at once"
                    );
                    self.model.unsubscribe(id);
                    self.drop_consumer(id, true);
                }
            }
            Step::Send if self.takes_commands() => {
                let send_id = self.next_send_id;
                self.next_send_id += 1;
                let (reply, answer) = oneshot::channel();
                self.command(Command::Send {
                    message: Message::text(format!("X {send_id}")),
                    rate_limited: true,
                    reply,
                });
                self.sends.insert(send_id, answer);
                self.model.send(send_id);
            }
            Step::Request if self.takes_commands() => {
                let (reply, mut answer) = oneshot::channel();
                self.command(Command::Request {
                    request: Request::new("m", None),
                    reply,
                });
                match self.model.request() {
                    Some(req_id) => {
                        self.requests.insert(req_id, answer);
                        self.one_off.push(req_id);
                    }
                    None => assert!(
                        matches!(answer.try_recv(), Ok(Err(_))),
                        "a request without a connection fails at once"
                    ),
                }
            }
            Step::Close if self.connected && self.takes_commands() => {
                self.drive.serve_online(Some(Command::Close), self.at());
                self.model.begin_close(self.now);
            }
            Step::Ack {
                req,
                member,
                sid,
                channel,
                symbol,
                echo,
            } if self.reads() => return self.ack(req, member, sid, (channel, symbol, echo)),
            Step::Reject {
                req,
                symbol,
                expired,
            } if self.reads() => {
                let req_id = self.pick_subscribe(req);
                let symbol = symbol.map(|s| SYMBOLS[usize::from(s) % SYMBOLS.len()]);
                let text = format!(
                    "R {} {} {}",
                    req_id.map_or("-".to_owned(), |r| r.to_string()),
                    symbol.unwrap_or("-"),
                    u8::from(expired)
                );
                let expected = self.model.on_reject(req_id, symbol, expired);
                return self.read(Some(Message::text(text)), expected);
            }
            Step::Response { req, error } if self.reads() => {
                let req_id = match self.one_off.len() {
                    0 => u64::from(req),
                    n => self.one_off[n - 1 - usize::from(req) % n.min(4)],
                };
                self.model.on_response(req_id, !error);
                let text = format!("P {req_id} {}", u8::from(error));
                return self.read(Some(Message::text(text)), None);
            }
            Step::Data {
                sid,
                seq,
                bad_checksum,
            } if self.reads() => return self.data(sid, seq, bad_checksum),
            Step::Unsolicited if self.reads() => {
                let text = format!("N {}", self.next_frame);
                let frame = self.frame(&text, None, false);
                self.model.on_unsolicited(frame, self.now);
                return self.read(Some(Message::text(text)), None);
            }
            Step::Other { kind } if self.reads() => return self.other(kind),
            Step::ServerClose { code } if self.reads() => {
                let code = CLOSE_CODES[usize::from(code) % CLOSE_CODES.len()];
                let expected = self.model.on_close(default_permanent_close(code));
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: Utf8Bytes::from_static("bye"),
                };
                return self.read(Some(Message::Close(Some(frame))), Some(expected));
            }
            Step::Write { count } => {
                for _ in 0..=(count % 4) {
                    if !matches!(self.turn(), Some(Turn::Write)) {
                        break;
                    }
                    self.write();
                }
            }
            Step::WriteFail if matches!(self.turn(), Some(Turn::Write)) => {
                let now = self.at();
                if let Some((message, written, _timeout)) = self.drive.take_write(now) {
                    let expected = self
                        .model
                        .write_failed(matches!(message, Message::Close(_)));
                    self.written(&message, false);
                    let outcome = WriteOutcome::TimedOut(Duration::from_secs(1));
                    let result = self.drive.written(written, outcome, now);
                    return self.outcome(result, Some(expected));
                }
            }
            Step::Tick { ms } if !self.parked() => return self.wait(ms),
            Step::Read { pick, max } => {
                if let Some(id) = self.pick_consumer(pick, true) {
                    for _ in 0..=(max % 8) {
                        if !self.pop_one(id) {
                            break;
                        }
                    }
                }
            }
            Step::DropConsumer { pick, lost } => {
                if let Some(id) = self.pick_consumer(pick, true) {
                    self.drop_consumer(id, lost);
                }
            }
            Step::Unblock { timeout, ms } if self.parked() => {
                self.now += u64::from(ms);
                let room = self
                    .model
                    .parked_on()
                    .and_then(|id| self.model.queues.get(&id))
                    .is_some_and(MQueue::has_room);
                if timeout {
                    self.drive.blocked_ended(false, self.at());
                    self.model.on_block_timeout(self.now);
                } else if room {
                    self.drive.blocked_ended(true, self.at());
                    self.model.on_space(self.now);
                }
            }
            // Not now: the shell would not do it in this state.
            _ => {}
        }
        true
    }

    /// The shell waits for up to `ms` with nothing arriving: it sleeps until
    /// the earliest instant the drive gave it (`timer_at`, `write_at`) or
    /// until `ms` have passed, whichever is first, never past either (time
    /// is scripted, so a wake-up is exactly on time). Before time moves, the
    /// model's earliest deadline must not lie before that wake-up: a driver
    /// woken late would answer a timed-out request, miss a pong or skip a
    /// ping late, and nothing else in the harness would notice.
    fn wait(&mut self, ms: u16) -> bool {
        if !self.connected {
            self.now += u64::from(ms);
            return true;
        }
        if !self.wake() {
            return true;
        }
        let Some(Turn::Wait {
            write_at, timer_at, ..
        }) = self.turn()
        else {
            return true;
        };
        let ms_of = |at: Instant| at.saturating_duration_since(self.base).as_millis() as u64;
        let timer_ms = ms_of(timer_at).max(self.now);
        let write_ms = write_at.map(|at| ms_of(at).max(self.now));
        let wake_ms = [Some(self.now + u64::from(ms)), Some(timer_ms), write_ms]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.now);
        self.check_woken_in_time(wake_ms);
        self.now = wake_ms;
        if timer_ms <= self.now {
            let result = self.drive.tick(self.at());
            let core_idle = matches!(
                &result,
                Err(SessionEnd::Lost(Error::Timeout {
                    operation: Operation::Receive,
                    ..
                }))
            );
            let expected = self.model.on_tick(self.now, core_idle);
            return self.outcome(result, expected);
        }
        if write_ms.is_some_and(|at| at <= self.now) {
            self.wake();
        }
        true
    }

    /// The driver is about to sleep until `wake_ms`: nothing the model says
    /// must happen may fall before it (a deadline already past when the wait
    /// began must be handled at once, `wake_ms == now`).
    fn check_woken_in_time(&self, wake_ms: u64) {
        let Some(deadline) = self.model.next_deadline() else {
            return;
        };
        assert!(
            wake_ms <= deadline.max(self.now),
            "woken late: the model's next deadline is at {deadline} ms, the drive \
             lets the shell sleep from {} ms until {wake_ms} ms",
            self.now
        );
    }

    /// Writes the frame due now.
    fn write(&mut self) {
        let now = self.at();
        let Some((message, written, _timeout)) = self.drive.take_write(now) else {
            panic!("the drive said a frame is due, and handed none");
        };
        self.written(&message, true);
        let result = self.drive.written(written, WriteOutcome::Done, now);
        assert!(result.is_ok(), "a frame written ends no session");
        self.batch = READ_BATCH;
    }

    /// One read from the socket: a frame, or the stream's end (`None`).
    fn read(&mut self, message: Option<Message>, expected: Option<MEnd>) -> bool {
        let now = self.at();
        let result = self.drive.socket(message.map(Ok), now, now);
        self.outcome(result, expected)
    }

    /// How the session ends when the peer ends the stream.
    fn stream_end(&self) -> MEnd {
        if self.model.is_closing() {
            MEnd::Closed
        } else {
            MEnd::Lost
        }
    }

    /// A step's result against the model's prediction; `false` when the
    /// client is finished.
    fn outcome(&mut self, result: Result<(), SessionEnd>, expected: Option<MEnd>) -> bool {
        match (result, expected) {
            (Ok(()), None) => true,
            (Err(end), Some(expected)) => self.ended(end, expected),
            (result, expected) => panic!("core said {result:?}, the model expected {expected:?}"),
        }
    }

    /// The session ended: check how, then tell both sides as a shell does;
    /// `false` when the client is finished.
    fn ended(&mut self, end: SessionEnd, expected: MEnd) -> bool {
        let kind = match end {
            SessionEnd::Closed => MEnd::Closed,
            SessionEnd::Lost(_) => MEnd::Lost,
            SessionEnd::Fatal(_) => MEnd::Fatal,
        };
        assert_eq!(kind, expected, "how the session ended: {end:?}");
        self.drive.disconnected(&end, self.at());
        self.connected = false;
        self.batch = 0;
        self.model.on_disconnected(self.now);
        if kind == MEnd::Lost {
            return true;
        }
        self.over = true;
        self.drive
            .finish(Some(&fuzzing::end_error(&end)), self.at());
        self.model.finish(self.now);
        false
    }

    fn subscribe(&mut self, channel: u8, symbol: u8, count: u8, capacity: u8, policy: u8) {
        let channel = CHANNELS[usize::from(channel) % CHANNELS.len()];
        let mut new = Vec::new();
        let mut model_subs = Vec::new();
        for i in 0..=(count % 3) {
            let topic = match (usize::from(symbol) + usize::from(i)) % (SYMBOLS.len() + 1) {
                n if n < SYMBOLS.len() => Topic::new(channel).symbol(SYMBOLS[n]),
                _ => Topic::new(channel),
            };
            let (capacity, policy) = (usize::from(capacity % 3) + 1, policy_of(policy));
            let id = fuzzing::client_id(self.next_client_id);
            self.next_client_id += 1;
            // Made as `Client::prepare` makes it (its queue known to the
            // stats hub from creation).
            let (subscription, queue, answer) =
                fuzzing::new_subscription(&self.drive, id, topic.clone(), capacity, policy);
            self.queues.insert(id, queue);
            self.alive.insert(id);
            self.subscribes.insert(id, answer);
            new.push(subscription);
            model_subs.push((id, topic, MQueue::new(capacity, policy)));
        }
        self.command(Command::Subscribe(new));
        self.model.subscribe(model_subs);
    }

    fn pick_consumer(&self, pick: u8, with_inbound: bool) -> Option<ClientId> {
        let alive: Vec<ClientId> = self
            .alive
            .iter()
            .copied()
            .filter(|id| with_inbound || *id != INBOUND)
            .collect();
        (!alive.is_empty()).then(|| alive[usize::from(pick) % alive.len()])
    }

    /// A subscribe request id: mostly recent ones, sometimes finished ones.
    fn pick_subscribe(&self, req: u8) -> Option<u64> {
        let sent: Vec<u64> = self.model.subscribes.keys().copied().collect();
        if req == u8::MAX || sent.is_empty() {
            return None;
        }
        let back = usize::from(req) % sent.len().min(8);
        Some(sent[sent.len() - 1 - back])
    }

    fn frame(&mut self, text: &str, seq: Option<u64>, bad_checksum: bool) -> MFrame {
        self.next_frame += 1;
        MFrame {
            number: self.next_frame - 1,
            seq,
            bad_checksum,
            bytes: text.len(),
        }
    }

    fn key_of(topic: &Topic) -> ServerId {
        ServerId::Key(topic.to_string().into())
    }

    fn seen_pick(&self, i: u8) -> ServerId {
        let n = self.seen.len().max(1);
        self.seen
            .iter()
            .nth(usize::from(i) % n)
            .cloned()
            .unwrap_or(ServerId::Num(0))
    }

    fn ack(&mut self, req: u8, member: u8, sid: SidPick, naming: (u8, u8, bool)) -> bool {
        let picked = self.pick_subscribe(req);
        let target = picked
            .and_then(|r| self.model.reg.requests.get(&r))
            .map(|r| r.members[usize::from(member) % r.members.len()])
            .and_then(|id| self.model.reg.subs.get(&id))
            .map(|s| s.topic.clone())
            .unwrap_or_else(|| Topic::new(CHANNELS[usize::from(member) % CHANNELS.len()]));
        let server_id = match sid {
            SidPick::Num(n) => ServerId::Num(u64::from(n % 6)),
            SidPick::Key(_) => Self::key_of(&target),
            SidPick::Seen(i) => self.seen_pick(i),
        };
        self.seen.insert(server_id.clone());
        let (channel, symbol, echo) = naming;
        let req_id = if echo { picked } else { None };
        let channel = match channel % 3 {
            0 => None,
            1 => Some(target.channel()),
            _ => Some(other(&CHANNELS, target.channel())),
        };
        let symbol = match symbol % 3 {
            0 => None,
            1 => target.symbol_name(),
            _ => Some(other(&SYMBOLS, target.symbol_name().unwrap_or_default())),
        };
        let text = format!(
            "A {} {} {} {}",
            req_id.map_or("-".to_owned(), |r| r.to_string()),
            sid_word(&server_id),
            channel.unwrap_or("-"),
            symbol.unwrap_or("-")
        );
        self.model
            .on_ack(req_id, &server_id, channel, symbol, self.now);
        self.read(Some(Message::text(text)), None)
    }

    fn data(&mut self, sid: SidPick, seq: SeqPick, bad_checksum: bool) -> bool {
        let server_id = match sid {
            SidPick::Num(n) => ServerId::Num(u64::from(n % 6)),
            SidPick::Key(i) => {
                let topics: Vec<&Topic> = self.model.reg.subs.values().map(|s| &s.topic).collect();
                match topics.len() {
                    0 => ServerId::Num(0),
                    n => Self::key_of(topics[usize::from(i) % n]),
                }
            }
            SidPick::Seen(i) => self.seen_pick(i),
        };
        self.seen.insert(server_id.clone());
        let last = self
            .model
            .reg
            .valid
            .get(&server_id)
            .and_then(|id| self.model.reg.subs.get(id))
            .and_then(|s| s.last_seq);
        let seq = match seq {
            SeqPick::None => None,
            SeqPick::Next => Some(last.map_or(1, |l| l.wrapping_add(1))),
            SeqPick::Repeat => Some(last.unwrap_or(1)),
            SeqPick::Jump(k) => Some(last.unwrap_or(0).wrapping_add(2 + u64::from(k))),
            SeqPick::Abs(u8::MAX) => Some(u64::MAX),
            SeqPick::Abs(v) => Some(u64::from(v)),
        };
        let text = format!(
            "D {} {} {} {}",
            sid_word(&server_id),
            seq.map_or("-".to_owned(), |s| s.to_string()),
            u8::from(bad_checksum),
            self.next_frame
        );
        let frame = self.frame(&text, seq, bad_checksum);
        self.model.on_data(server_id, frame, self.now);
        self.read(Some(Message::text(text)), None)
    }

    fn other(&mut self, kind: u8) -> bool {
        let message = match kind % 8 {
            0 => Message::text("H"),
            1 => Message::text("G"),
            2 => Message::text("C"),
            3 => Message::text("E 1"),
            4 => Message::text("garbage"),
            5 => Message::Ping(Bytes::new()),
            6 => Message::Pong(Bytes::new()),
            _ => Message::Binary(Bytes::from_static(b"\x01\x02")),
        };
        match kind % 8 {
            0 => self.model.on_heartbeat(self.now),
            1 | 6 => self.model.on_pong(),
            4 | 7 => self.model.on_invalid(),
            _ => self.model.on_control(),
        }
        self.read(Some(message), None)
    }

    /// A frame the core handed out for writing (`ok`: it went out).
    fn written(&mut self, message: &Message, ok: bool) {
        let text = match message {
            Message::Ping(_) => {
                if ok {
                    self.model.written_ping(self.now);
                }
                return;
            }
            Message::Text(text) => text.as_str(),
            _ => return,
        };
        let mut words = text.split(' ');
        let kind = words.next().unwrap_or_default();
        let req_id = words.next().and_then(|w| w.parse::<u64>().ok());
        match (kind, req_id) {
            ("S", Some(req_id)) => {
                let topics: Vec<String> = words.map(str::to_owned).collect();
                assert_eq!(
                    self.model.subscribes.get(&req_id),
                    Some(&topics),
                    "subscribe frame {text}"
                );
                if ok {
                    self.model.written_deadline(req_id, self.now);
                }
            }
            ("Q", Some(req_id)) => {
                // The core numbers requests as the model does.
                assert!(self.one_off.contains(&req_id), "request frame {text}");
                if ok {
                    self.model.written_deadline(req_id, self.now);
                }
            }
            ("X", Some(send_id)) => self.model.written_send(send_id, ok),
            ("PING", _) if ok => self.model.written_ping(self.now),
            _ => {}
        }
    }
}
