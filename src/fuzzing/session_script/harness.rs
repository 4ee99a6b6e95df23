//! The harness: it plays the shell and the world around the core, one
//! script step at a time, feeding the model the same inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use super::wire::{sid_word, ScriptProtocol};
use super::{other, policy_of, Script, SeqPick, SidPick, Step, CHANNELS, CLOSE_CODES, SYMBOLS};
use crate::close_code::default_permanent_close;
use crate::config::Config;
use crate::fuzzing::model::queue::MQueue;
use crate::fuzzing::model::registry::MFrame;
use crate::fuzzing::model::session::{MEnd, SessionModel, Settings, INBOUND};
use crate::protocol::{Request, ServerId, Topic};
use crate::queue::Queue;
use crate::session::{SessionCore, SessionEnd, WriteFailure};
use crate::stats::StatsHub;
use crate::subscription::{ClientId, ReqId};

pub(super) struct Harness {
    pub(super) core: SessionCore<ScriptProtocol>,
    pub(super) stats: Arc<StatsHub>,
    pub(super) model: SessionModel,
    /// Every queue handed to the core (`INBOUND`: the inbound stream).
    pub(super) queues: BTreeMap<ClientId, Arc<Queue>>,
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
            .idle_timeout(None)
            .rate_limit(frames, Duration::from_secs(per))
            .on_connect("HELLO");
        if script.token_source {
            builder = builder.token_source(|| async { Ok::<_, crate::TokenError>("t".into()) });
        }
        let config = builder.build().expect("a valid script config");
        let stats = Arc::new(StatsHub::default());
        let capacity = usize::from(script.inbound_capacity % 3) + 1;
        let policy = policy_of(script.inbound_policy);
        let inbound = Queue::new(capacity, policy);
        let protocol = ScriptProtocol {
            batch: script.batch,
            app_ping: script.app_ping,
        };
        let core = SessionCore::new(
            Arc::new(config),
            protocol,
            Arc::clone(&stats),
            Arc::clone(&inbound),
        );
        let mut model = SessionModel::new(settings, stash_capacity, stash_bytes);
        model.queues.insert(INBOUND, MQueue::new(capacity, policy));
        Harness {
            core,
            stats,
            model,
            queues: BTreeMap::from([(INBOUND, inbound)]),
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

    pub(super) fn parked(&self) -> bool {
        self.core.blocked_on().is_some()
    }

    /// Whether the shell takes commands now.
    fn takes_commands(&self) -> bool {
        !self.parked() && (!self.core.is_connected() || self.core.accepts_commands(self.at()))
    }

    /// Whether the shell reads the socket now.
    fn reads(&self) -> bool {
        self.core.is_connected() && !self.parked()
    }

    /// One step; `false` once the client is finished.
    pub(super) fn step(&mut self, step: &Step) -> bool {
        if self.takes_commands() {
            for id in std::mem::take(&mut self.deferred) {
                self.core.unsubscribe(id);
                self.model.unsubscribe(id);
            }
        }
        let now = self.at();
        let commands = self.takes_commands() && !self.model.is_closing();
        let reads = self.reads();
        match *step {
            Step::Connect if !self.parked() => {
                if self.core.is_connected() {
                    let expected = self.stream_end();
                    let end = self.core.on_stream_end();
                    if !self.ended(end, expected) {
                        return false;
                    }
                }
                self.core.on_connected(self.at(), std::time::UNIX_EPOCH);
                self.model.on_connected(self.now);
            }
            Step::Drop if reads => {
                let expected = self.stream_end();
                let end = self.core.on_stream_end();
                return self.ended(end, expected);
            }
            Step::Subscribe {
                channel,
                symbol,
                count,
                capacity,
                policy,
            } if commands => self.subscribe(channel, symbol, count, capacity, policy),
            Step::Unsubscribe { pick } if commands => {
                if let Some(id) = self.pick_consumer(pick, false) {
                    // `Subscription::unsubscribe` consumes the handle.
                    self.core.unsubscribe(id);
                    self.model.unsubscribe(id);
                    self.drop_consumer(id, true);
                }
            }
            Step::Send if commands => {
                let send_id = self.next_send_id;
                self.next_send_id += 1;
                self.core
                    .send(send_id, Message::text(format!("X {send_id}")), true);
                self.model.send(send_id);
            }
            Step::Request if commands => {
                let got = self
                    .core
                    .request(&Request::new("m", None))
                    .ok()
                    .map(ReqId::get);
                assert_eq!(got, self.model.request(), "request id");
                self.one_off.extend(got);
            }
            Step::Close if commands && self.core.is_connected() => {
                self.core.begin_close(now);
                self.model.begin_close(self.now);
            }
            Step::Ack {
                req,
                member,
                sid,
                channel,
                symbol,
                echo,
            } if reads => return self.ack(req, member, sid, (channel, symbol, echo)),
            Step::Reject {
                req,
                symbol,
                expired,
            } if reads => {
                let req_id = self.pick_subscribe(req);
                let symbol = symbol.map(|s| SYMBOLS[usize::from(s) % SYMBOLS.len()]);
                let text = format!(
                    "R {} {} {}",
                    req_id.map_or("-".to_owned(), |r| r.to_string()),
                    symbol.unwrap_or("-"),
                    u8::from(expired)
                );
                let expected = self.model.on_reject(req_id, symbol, expired);
                let result = self.core.on_message(Message::text(text), now);
                return self.outcome(result, expected);
            }
            Step::Response { req, error } if reads => {
                let req_id = match self.one_off.len() {
                    0 => u64::from(req),
                    n => self.one_off[n - 1 - usize::from(req) % n.min(4)],
                };
                self.model.on_response(req_id, !error);
                let text = format!("P {req_id} {}", u8::from(error));
                let result = self.core.on_message(Message::text(text), now);
                return self.outcome(result, None);
            }
            Step::Data {
                sid,
                seq,
                bad_checksum,
            } if reads => return self.data(sid, seq, bad_checksum),
            Step::Unsolicited if reads => {
                let text = format!("N {}", self.next_frame);
                let frame = self.frame(&text, None, false);
                self.model.on_unsolicited(frame, self.now);
                let result = self.core.on_message(Message::text(text), now);
                return self.outcome(result, None);
            }
            Step::Other { kind } if reads => return self.other(kind),
            Step::ServerClose { code } if reads => {
                let code = CLOSE_CODES[usize::from(code) % CLOSE_CODES.len()];
                let expected = self.model.on_close(default_permanent_close(code));
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: Utf8Bytes::from_static("bye"),
                };
                let result = self.core.on_message(Message::Close(Some(frame)), now);
                return self.outcome(result, Some(expected));
            }
            Step::Write { count } if reads => {
                for _ in 0..=(count % 4) {
                    let Some((message, written)) = self.core.take_write(now) else {
                        break;
                    };
                    self.written(&message, true);
                    self.core.on_written(written, now);
                }
            }
            Step::WriteFail if reads => {
                if let Some((message, written)) = self.core.take_write(now) {
                    let expected = self.model.write_failed(written.is_close());
                    self.written(&message, false);
                    let failure = WriteFailure::TimedOut(Duration::from_secs(1));
                    let end = self.core.on_write_failed(written, failure);
                    return self.ended(end, expected);
                }
            }
            Step::Tick { ms } if !self.parked() => {
                self.now += u64::from(ms);
                let expected = self.model.on_tick(self.now);
                let result = self.core.on_tick(self.at());
                return self.outcome(result, expected);
            }
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
                    self.core.on_block_timeout(self.at());
                    self.model.on_block_timeout(self.now);
                } else if room {
                    self.core.on_space(self.at());
                    self.model.on_space(self.now);
                }
            }
            // Not now: the shell would not do it in this state.
            _ => {}
        }
        true
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

    /// The session ended: check how, then tell both sides as the supervisor
    /// does; `false` when the client is finished.
    fn ended(&mut self, end: SessionEnd, expected: MEnd) -> bool {
        let kind = match end {
            SessionEnd::Closed => MEnd::Closed,
            SessionEnd::Lost(_) => MEnd::Lost,
            SessionEnd::Fatal(_) => MEnd::Fatal,
        };
        assert_eq!(kind, expected, "how the session ended: {end:?}");
        self.core.on_disconnected(&end, self.at());
        self.model.on_disconnected(self.now);
        if kind == MEnd::Lost {
            return true;
        }
        self.over = true;
        self.core.finish(Some(&end.error()), self.at());
        self.model.finish(self.now);
        false
    }

    fn subscribe(&mut self, channel: u8, symbol: u8, count: u8, capacity: u8, policy: u8) {
        let channel = CHANNELS[usize::from(channel) % CHANNELS.len()];
        let mut core_subs = Vec::new();
        let mut model_subs = Vec::new();
        for i in 0..=(count % 3) {
            let topic = match (usize::from(symbol) + usize::from(i)) % (SYMBOLS.len() + 1) {
                n if n < SYMBOLS.len() => Topic::new(channel).symbol(SYMBOLS[n]),
                _ => Topic::new(channel),
            };
            let (capacity, policy) = (usize::from(capacity % 3) + 1, policy_of(policy));
            let queue = Queue::new(capacity, policy);
            let id = ClientId::new(self.next_client_id);
            self.next_client_id += 1;
            self.queues.insert(id, Arc::clone(&queue));
            self.alive.insert(id);
            core_subs.push((id, topic.clone(), queue));
            model_subs.push((id, topic, MQueue::new(capacity, policy)));
        }
        self.core.subscribe(core_subs);
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
        let result = self.core.on_message(Message::text(text), self.at());
        self.outcome(result, None)
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
        let result = self.core.on_message(Message::text(text), self.at());
        self.outcome(result, None)
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
            1 | 6 => self.model.on_pong(),
            4 | 7 => self.model.on_invalid(),
            _ => self.model.on_control(),
        }
        let result = self.core.on_message(message, self.at());
        self.outcome(result, None)
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
            ("Q", Some(req_id)) if ok => self.model.written_deadline(req_id, self.now),
            ("X", Some(send_id)) => self.model.written_send(send_id, ok),
            ("PING", _) if ok => self.model.written_ping(self.now),
            _ => {}
        }
    }
}
