//! The small line protocol `session_script` speaks to the real session core.
//!
//! A venue adapter is not what that target tests (the classify targets do),
//! so the frames are plain words the harness writes and reads back:
//!
//! | frame | meaning |
//! |---|---|
//! | `D <sid> <seq\|-> <0\|1> <n>` | data for server id `sid` (`#5` a number, else a key), bad checksum flag, frame number `n` |
//! | `N <n>` | unsolicited data (the client's inbound stream) |
//! | `A <req\|-> <sid> <channel\|-> <symbol\|->` | subscribe ack |
//! | `R <req\|-> <symbol\|-> <0\|1>` | refusal; `1`: the session token expired |
//! | `P <req> <0\|1>` | response to a request; `1`: an error |
//! | `H`, `G`, `C`, `E <req>` | heartbeat, pong, status, unsubscribe ack |
//! | anything else | invalid |
//!
//! Written by the core: `S <req> <topic>...` (subscribe), `U <req> <sid>`
//! (unsubscribe), `Q <req>` (request), `PING` (app-level ping), and whatever
//! text a send or an on-connect frame carries.

use std::borrow::Cow;

use resilient_ws::{
    BookBreak, Inbound, Protocol, ProtocolError, Request, ServerId, Topic, VenueError,
    VenueErrorKind,
};

/// The scripted adapter: batches topics of one channel when `batch`, pings
/// at the application level when `app_ping`.
pub(crate) struct ScriptProtocol {
    pub(crate) batch: bool,
    pub(crate) app_ping: bool,
}

/// A server id as a word.
pub(crate) fn sid_word(server_id: &ServerId) -> String {
    match server_id {
        ServerId::Num(n) => format!("#{n}"),
        ServerId::Key(k) => k.to_string(),
    }
}

fn parse_sid(word: &str) -> ServerId {
    match word.strip_prefix('#').and_then(|n| n.parse().ok()) {
        Some(n) => ServerId::Num(n),
        None => ServerId::Key(word.into()),
    }
}

fn opt_word(word: Option<&str>) -> Option<&str> {
    word.filter(|w| *w != "-")
}

fn opt_num(word: Option<&str>) -> Option<u64> {
    opt_word(word).and_then(|w| w.parse().ok())
}

impl Protocol for ScriptProtocol {
    fn name(&self) -> &'static str {
        "script"
    }

    fn encode_subscribe(&mut self, topics: &[&Topic], req_id: u64) -> String {
        let mut text = format!("S {req_id}");
        for topic in topics {
            text.push(' ');
            text.push_str(&topic.to_string());
        }
        text
    }

    fn encode_unsubscribe(
        &mut self,
        _: &Topic,
        server_id: &ServerId,
        req_id: u64,
    ) -> Option<String> {
        Some(format!("U {req_id} {}", sid_word(server_id)))
    }

    fn can_batch(&self, first: &Topic, next: &Topic) -> bool {
        self.batch && first.channel() == next.channel()
    }

    fn encode_ping(&mut self, _req_id: u64) -> Option<String> {
        self.app_ping.then(|| "PING".to_owned())
    }

    fn encode_request(&mut self, _: &Request, req_id: u64) -> Result<String, ProtocolError> {
        Ok(format!("Q {req_id}"))
    }

    fn classify<'a>(&mut self, text: &'a str) -> Inbound<'a> {
        let mut words = text.split(' ');
        let kind = words.next().unwrap_or_default();
        match kind {
            "D" => {
                let server_id = parse_sid(words.next().unwrap_or_default());
                let seq = opt_num(words.next());
                let book_break =
                    (words.next() == Some("1")).then_some(BookBreak::ChecksumMismatch {
                        expected: 1,
                        computed: 2,
                    });
                Inbound::Data {
                    server_id,
                    seq,
                    book_break,
                    payload: None,
                }
            }
            "N" => Inbound::Unsolicited,
            "A" => Inbound::Subscribed {
                req_id: opt_num(words.next()),
                server_id: parse_sid(words.next().unwrap_or_default()),
                channel: opt_word(words.next()).map(Cow::Borrowed),
                symbol: opt_word(words.next()).map(Cow::Borrowed),
            },
            "R" => {
                let req_id = opt_num(words.next());
                let symbol = opt_word(words.next()).map(Cow::Borrowed);
                let kind = if words.next() == Some("1") {
                    VenueErrorKind::SessionExpired
                } else {
                    VenueErrorKind::Permanent
                };
                Inbound::Rejected {
                    req_id,
                    symbol,
                    error: VenueError::new(Some(6), "refused").with_kind(kind),
                }
            }
            "P" => match opt_num(words.next()) {
                Some(req_id) => Inbound::Response {
                    req_id,
                    error: (words.next() == Some("1")).then(|| VenueError::new(None, "no")),
                },
                None => Inbound::Control,
            },
            "H" => Inbound::Heartbeat,
            "G" => Inbound::Pong,
            "C" => Inbound::Control,
            "E" => Inbound::Unsubscribed {
                req_id: opt_num(words.next()),
            },
            _ => Inbound::Invalid(ProtocolError::Unexpected("not a script frame".into())),
        }
    }
}
