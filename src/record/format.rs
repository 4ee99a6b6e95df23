//! The on-disk form of a recording: a file header, then records framed as
//! `[body length u32 LE][CRC32 of body u32 LE][body]`.
//!
//! Why this framing: a crash can cut the last record anywhere. A short
//! length, a short body or a CRC that does not match marks the end of what
//! can be trusted in that file; the reader stops there and counts it
//! (`torn`), so a torn tail is skipped, never misread as a record. A length
//! above [`MAX_BODY`] is treated the same way (a corrupt length must not make
//! the reader allocate gigabytes).
//!
//! Bodies are plain little-endian fields written by hand (no serde): the
//! recorder's writer thread encodes, the reader decodes, and both live in
//! this file so the two cannot drift. Times: `at` is the monotonic offset of
//! the drive's `now` from the recorder's origin, `wall` the wall clock in
//! nanoseconds since the Unix epoch when the record was made. Outbound
//! frames and one-off sends are kept as length + CRC only: they may carry
//! credentials (tokens, signatures, login frames), which must never reach a
//! file.
//!
//! Versions (the file header says which; the reader takes both):
//! - `RWSREC1`: records of kinds 1-12.
//! - `RWSREC2`: adds kind 13, a book snapshot fetch's result
//!   ([`Input::Fetched`]: the subscription, the request number, and the
//!   snapshot's sequence, venue time and levels as wire text, or the
//!   source's error text), so a replay of a book built from a REST snapshot
//!   verifies as live did. The body of every older kind is unchanged, so a
//!   version 1 file reads as before. A reader that knows only version 1
//!   skips a version 2 file as unreadable (counted) instead of stopping at
//!   its first kind-13 record as if it were corrupt.
//! - `RWSREC3`: adds command tag 6, a request with the params its adapter
//!   names as recordable ([`Protocol::recordable_params`](crate::Protocol::recordable_params):
//!   Kalshi's `add_markets` / `delete_markets` sid, action and markets, never
//!   a secret), so a replay's books cover added markets as live did. A
//!   request without them is still tag 3 (method only), and every older
//!   record reads as before.

use std::time::{Duration, UNIX_EPOCH};

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use crate::book::{BookSnapshot, SnapshotFetched};
use crate::protocol::{ServerId, Topic};
use crate::queue::Overflow;

/// The first bytes of every recording file this version writes (format
/// version 3).
pub(crate) const MAGIC: &[u8; 8] = b"RWSREC3\n";

/// The headers of every format version the reader takes (see the module docs).
pub(crate) const READABLE: [&[u8; 8]; 3] = [b"RWSREC1\n", b"RWSREC2\n", MAGIC];

/// The longest recordable params kept with a request; longer ones are left
/// out (the method is still kept), so a request cannot make a record huge.
pub(crate) const MAX_REQUEST_PARAMS: usize = 1024 * 1024;

/// The largest body a record may have: a frame up to the largest message
/// the library accepts by default, plus its fields. Longer is corruption.
pub(crate) const MAX_BODY: u32 = 256 * 1024 * 1024;

/// One record: which connection (`stream`), when, and what.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// The connection's number within the recorder (one per client).
    pub(crate) stream: u32,
    /// Monotonic offset of the drive's `now` from the recorder's origin.
    pub(crate) at: Duration,
    /// Wall clock, nanoseconds since the Unix epoch.
    pub(crate) wall: u64,
    pub(crate) event: Input,
}

/// One input to a drive (or a note about the recording itself).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Input {
    /// A connection's first record: its name, venue and the settings that
    /// shape its decisions (`settings.rs`).
    Stream {
        name: String,
        venue: String,
        settings: String,
    },
    Connected,
    /// A frame read from the socket; `read_at` is its receive time (offset).
    Frame {
        read_at: Duration,
        message: Message,
    },
    /// The socket failed (`Some(text)`) or ended (`None`).
    ReadEnd {
        error: Option<String>,
    },
    Tick,
    /// A command; `online` when served while connected.
    Command {
        online: bool,
        command: Recorded,
    },
    /// A frame taken for writing: its length and CRC (never its text).
    Write {
        len: u64,
        crc: u32,
    },
    /// How that write ended.
    Written(WriteEnd),
    BlockedEnded {
        made_room: bool,
    },
    Disconnected {
        end: End,
    },
    Finish {
        error: Option<String>,
    },
    /// Records were dropped here (the recorder's queue was full).
    Hole {
        records: u64,
        bytes: u64,
    },
    /// A book snapshot fetch ended (format version 2).
    Fetched(SnapshotFetched),
}

/// The bytes a [`Input::Fetched`] record's body takes beyond its fixed
/// fields: what the recorder's queue counts, and what must stay under
/// [`MAX_BODY`].
pub(crate) fn fetched_bytes(fetched: &SnapshotFetched) -> usize {
    let id = match &fetched.server_id {
        ServerId::Num(_) => 8,
        ServerId::Key(key) => 4 + key.len(),
    };
    let body = match &fetched.result {
        Ok(snapshot) => snapshot
            .asks
            .iter()
            .chain(&snapshot.bids)
            .map(|(p, s)| 8 + p.len() + s.len())
            .sum::<usize>(),
        Err(error) => 4 + error.len(),
    };
    id + body
}

/// A command as recorded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Recorded {
    Subscribe(Vec<NewTopic>),
    Unsubscribe {
        client_id: u64,
    },
    /// A one-off send: only its length and CRC are kept.
    Send {
        rate_limited: bool,
        len: u64,
        crc: u32,
    },
    /// A request: its method, and the params its adapter names as
    /// recordable (as JSON text; format version 3), never the rest (params
    /// may be credentials).
    Request {
        method: String,
        params: Option<String>,
    },
    Close,
    /// Every handle is gone.
    HandlesGone,
}

/// One subscription of a subscribe command.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewTopic {
    pub(crate) client_id: u64,
    /// The topic as JSON: `{"channel":..,"symbol":..,"params":{..}}`.
    pub(crate) topic: String,
    pub(crate) capacity: u64,
    pub(crate) overflow: Overflow,
}

/// How a write ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WriteEnd {
    Done,
    Failed(String),
    TimedOut(Duration),
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum End {
    Closed,
    Lost(String),
    Fatal(String),
}

/// The CRC and length outbound frames are verified by.
pub(crate) fn fingerprint(message: &Message) -> (u64, u32) {
    let (kind, payload): (u8, &[u8]) = match message {
        Message::Text(t) => (0, t.as_bytes()),
        Message::Binary(b) => (1, b),
        Message::Ping(b) => (2, b),
        Message::Pong(b) => (3, b),
        Message::Close(_) => (4, &[]),
        Message::Frame(f) => (5, f.payload()),
    };
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind]);
    hasher.update(payload);
    (payload.len() as u64, hasher.finalize())
}

/// Appends `entry` framed (length, CRC, body) to `out`.
pub(crate) fn encode(entry: &Entry, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    let mut w = Writer(out);
    w.u32(entry.stream);
    w.duration(entry.at);
    w.u64(entry.wall);
    w.input(&entry.event);
    let body = &out[start + 8..];
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// How reading one record from the front of `buf` went.
#[derive(Debug, PartialEq)]
pub(crate) enum Decoded {
    /// A record, and the bytes it took.
    Entry(Entry, usize),
    /// Not enough bytes for a whole record (at the end of a file: torn).
    Short,
    /// Bad length, CRC mismatch or a body that does not parse.
    Corrupt,
}

/// Reads one framed record from the front of `buf`.
pub(crate) fn decode(buf: &[u8]) -> Decoded {
    let (Some(len), Some(crc)) = (le_u32(buf, 0), le_u32(buf, 4)) else {
        return Decoded::Short;
    };
    if len > MAX_BODY {
        return Decoded::Corrupt;
    }
    let end = 8 + len as usize;
    let Some(body) = buf.get(8..end) else {
        return Decoded::Short;
    };
    if crc32fast::hash(body) != crc {
        return Decoded::Corrupt;
    }
    let mut r = Reader(body);
    match r.entry() {
        Some(entry) if r.0.is_empty() => Decoded::Entry(entry, end),
        _ => Decoded::Corrupt,
    }
}

fn le_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn duration(&mut self, d: Duration) {
        self.u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(b);
    }
    fn text(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt_text(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.text(s);
            }
        }
    }
    fn message(&mut self, message: &Message) {
        match message {
            Message::Text(t) => {
                self.u8(0);
                self.bytes(t.as_bytes());
            }
            Message::Binary(b) => {
                self.u8(1);
                self.bytes(b);
            }
            Message::Ping(b) => {
                self.u8(2);
                self.bytes(b);
            }
            Message::Pong(b) => {
                self.u8(3);
                self.bytes(b);
            }
            Message::Close(None) => self.u8(4),
            Message::Close(Some(frame)) => {
                self.u8(5);
                self.0
                    .extend_from_slice(&u16::from(frame.code).to_le_bytes());
                self.text(&frame.reason);
            }
            // Raw frames never come out of the reader; kept as binary.
            Message::Frame(f) => {
                self.u8(1);
                self.bytes(f.payload());
            }
        }
    }
    fn overflow(&mut self, overflow: Overflow) {
        match overflow {
            Overflow::DropOldest => self.u8(0),
            Overflow::DropNewest => self.u8(1),
            Overflow::Error => self.u8(2),
            Overflow::Block { timeout } => {
                self.u8(3);
                self.duration(timeout);
            }
        }
    }
    fn input(&mut self, input: &Input) {
        match input {
            Input::Stream {
                name,
                venue,
                settings,
            } => {
                self.u8(1);
                self.text(name);
                self.text(venue);
                self.text(settings);
            }
            Input::Connected => self.u8(2),
            Input::Frame { read_at, message } => {
                self.u8(3);
                self.duration(*read_at);
                self.message(message);
            }
            Input::ReadEnd { error } => {
                self.u8(4);
                self.opt_text(error.as_deref());
            }
            Input::Tick => self.u8(5),
            Input::Command { online, command } => {
                self.u8(6);
                self.u8(u8::from(*online));
                self.command(command);
            }
            Input::Write { len, crc } => {
                self.u8(7);
                self.u64(*len);
                self.u32(*crc);
            }
            Input::Written(end) => {
                self.u8(8);
                match end {
                    WriteEnd::Done => self.u8(0),
                    WriteEnd::Failed(text) => {
                        self.u8(1);
                        self.text(text);
                    }
                    WriteEnd::TimedOut(d) => {
                        self.u8(2);
                        self.duration(*d);
                    }
                }
            }
            Input::BlockedEnded { made_room } => {
                self.u8(9);
                self.u8(u8::from(*made_room));
            }
            Input::Disconnected { end } => {
                self.u8(10);
                match end {
                    End::Closed => self.u8(0),
                    End::Lost(text) => {
                        self.u8(1);
                        self.text(text);
                    }
                    End::Fatal(text) => {
                        self.u8(2);
                        self.text(text);
                    }
                }
            }
            Input::Finish { error } => {
                self.u8(11);
                self.opt_text(error.as_deref());
            }
            Input::Hole { records, bytes } => {
                self.u8(12);
                self.u64(*records);
                self.u64(*bytes);
            }
            Input::Fetched(fetched) => {
                self.u8(13);
                self.fetched(fetched);
            }
        }
    }
    fn fetched(&mut self, fetched: &SnapshotFetched) {
        match &fetched.server_id {
            ServerId::Num(n) => {
                self.u8(0);
                self.u64(*n);
            }
            ServerId::Key(key) => {
                self.u8(1);
                self.text(key);
            }
        }
        self.u64(fetched.number);
        match &fetched.result {
            Ok(snapshot) => {
                self.u8(0);
                self.u64(u64::from_le_bytes(snapshot.seq.to_le_bytes()));
                match snapshot.venue_time.map(|t| t.duration_since(UNIX_EPOCH)) {
                    None => self.u8(0),
                    Some(Ok(after)) => {
                        self.u8(1);
                        self.duration(after);
                    }
                    Some(Err(before)) => {
                        self.u8(2);
                        self.duration(before.duration());
                    }
                }
                self.levels(&snapshot.asks);
                self.levels(&snapshot.bids);
            }
            Err(error) => {
                self.u8(1);
                self.text(error);
            }
        }
    }
    fn levels(&mut self, levels: &[(String, String)]) {
        self.u32(u32::try_from(levels.len()).unwrap_or(u32::MAX));
        for (price, size) in levels {
            self.text(price);
            self.text(size);
        }
    }
    fn command(&mut self, command: &Recorded) {
        match command {
            Recorded::Subscribe(topics) => {
                self.u8(0);
                self.u32(u32::try_from(topics.len()).unwrap_or(u32::MAX));
                for t in topics {
                    self.u64(t.client_id);
                    self.text(&t.topic);
                    self.u64(t.capacity);
                    self.overflow(t.overflow);
                }
            }
            Recorded::Unsubscribe { client_id } => {
                self.u8(1);
                self.u64(*client_id);
            }
            Recorded::Send {
                rate_limited,
                len,
                crc,
            } => {
                self.u8(2);
                self.u8(u8::from(*rate_limited));
                self.u64(*len);
                self.u32(*crc);
            }
            Recorded::Request {
                method,
                params: None,
            } => {
                self.u8(3);
                self.text(method);
            }
            Recorded::Request {
                method,
                params: Some(params),
            } => {
                self.u8(6);
                self.text(method);
                self.text(params);
            }
            Recorded::Close => self.u8(4),
            Recorded::HandlesGone => self.u8(5),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(*self.take(1)?.first()?)
    }
    fn bool(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn duration(&mut self) -> Option<Duration> {
        Some(Duration::from_nanos(self.u64()?))
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = self.u32()? as usize;
        Some(self.take(len)?.to_vec())
    }
    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }
    fn opt_text(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.text()?)),
            _ => None,
        }
    }
    fn entry(&mut self) -> Option<Entry> {
        Some(Entry {
            stream: self.u32()?,
            at: self.duration()?,
            wall: self.u64()?,
            event: self.input()?,
        })
    }
    fn message(&mut self) -> Option<Message> {
        Some(match self.u8()? {
            0 => Message::text(self.text()?),
            1 => Message::binary(self.bytes()?),
            2 => Message::Ping(self.bytes()?.into()),
            3 => Message::Pong(self.bytes()?.into()),
            4 => Message::Close(None),
            5 => {
                let code = self.u16()?;
                let reason = self.text()?;
                Message::Close(Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                }))
            }
            _ => return None,
        })
    }
    fn overflow(&mut self) -> Option<Overflow> {
        Some(match self.u8()? {
            0 => Overflow::DropOldest,
            1 => Overflow::DropNewest,
            2 => Overflow::Error,
            3 => Overflow::Block {
                timeout: self.duration()?,
            },
            _ => return None,
        })
    }
    fn input(&mut self) -> Option<Input> {
        Some(match self.u8()? {
            1 => Input::Stream {
                name: self.text()?,
                venue: self.text()?,
                settings: self.text()?,
            },
            2 => Input::Connected,
            3 => Input::Frame {
                read_at: self.duration()?,
                message: self.message()?,
            },
            4 => Input::ReadEnd {
                error: self.opt_text()?,
            },
            5 => Input::Tick,
            6 => Input::Command {
                online: self.bool()?,
                command: self.command()?,
            },
            7 => Input::Write {
                len: self.u64()?,
                crc: self.u32()?,
            },
            8 => Input::Written(match self.u8()? {
                0 => WriteEnd::Done,
                1 => WriteEnd::Failed(self.text()?),
                2 => WriteEnd::TimedOut(self.duration()?),
                _ => return None,
            }),
            9 => Input::BlockedEnded {
                made_room: self.bool()?,
            },
            10 => Input::Disconnected {
                end: match self.u8()? {
                    0 => End::Closed,
                    1 => End::Lost(self.text()?),
                    2 => End::Fatal(self.text()?),
                    _ => return None,
                },
            },
            11 => Input::Finish {
                error: self.opt_text()?,
            },
            12 => Input::Hole {
                records: self.u64()?,
                bytes: self.u64()?,
            },
            13 => Input::Fetched(self.fetched()?),
            _ => return None,
        })
    }
    fn fetched(&mut self) -> Option<SnapshotFetched> {
        let server_id = match self.u8()? {
            0 => ServerId::Num(self.u64()?),
            1 => ServerId::Key(self.text()?.into()),
            _ => return None,
        };
        let number = self.u64()?;
        let result = match self.u8()? {
            0 => {
                let seq = i64::from_le_bytes(self.u64()?.to_le_bytes());
                let venue_time = match self.u8()? {
                    0 => None,
                    1 => Some(UNIX_EPOCH.checked_add(self.duration()?)?),
                    2 => Some(UNIX_EPOCH.checked_sub(self.duration()?)?),
                    _ => return None,
                };
                Ok(BookSnapshot {
                    seq,
                    asks: self.levels()?,
                    bids: self.levels()?,
                    venue_time,
                })
            }
            1 => Err(self.text()?),
            _ => return None,
        };
        Some(SnapshotFetched {
            server_id,
            number,
            result,
        })
    }
    fn levels(&mut self) -> Option<Vec<(String, String)>> {
        let count = self.u32()?;
        // Not preallocated from `count`: a corrupt count must not allocate;
        // every level takes bytes the body must hold.
        let mut levels = Vec::new();
        for _ in 0..count {
            levels.push((self.text()?, self.text()?));
        }
        Some(levels)
    }
    fn command(&mut self) -> Option<Recorded> {
        Some(match self.u8()? {
            0 => {
                let count = self.u32()?;
                let mut topics = Vec::new();
                for _ in 0..count {
                    topics.push(NewTopic {
                        client_id: self.u64()?,
                        topic: self.text()?,
                        capacity: self.u64()?,
                        overflow: self.overflow()?,
                    });
                }
                Recorded::Subscribe(topics)
            }
            1 => Recorded::Unsubscribe {
                client_id: self.u64()?,
            },
            2 => Recorded::Send {
                rate_limited: self.bool()?,
                len: self.u64()?,
                crc: self.u32()?,
            },
            3 => Recorded::Request {
                method: self.text()?,
                params: None,
            },
            6 => Recorded::Request {
                method: self.text()?,
                params: Some(self.text()?),
            },
            4 => Recorded::Close,
            5 => Recorded::HandlesGone,
            _ => return None,
        })
    }
}

/// A topic as JSON, for the recording.
pub(crate) fn topic_json(topic: &Topic) -> String {
    serde_json::json!({
        "channel": topic.channel(),
        "symbol": topic.symbol_name(),
        "params": topic.params(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Entry> {
        let inputs = vec![
            Input::Stream {
                name: "main".into(),
                venue: "kraken".into(),
                settings: "{}".into(),
            },
            Input::Connected,
            Input::Frame {
                read_at: Duration::from_micros(5),
                message: Message::text("{\"a\":1}"),
            },
            Input::Frame {
                read_at: Duration::from_micros(6),
                message: Message::Close(Some(CloseFrame {
                    code: CloseCode::from(4001),
                    reason: "bye".into(),
                })),
            },
            Input::ReadEnd {
                error: Some("reset".into()),
            },
            Input::Tick,
            Input::Command {
                online: true,
                command: Recorded::Subscribe(vec![NewTopic {
                    client_id: 3,
                    topic: "{\"channel\":\"book\"}".into(),
                    capacity: 10,
                    overflow: Overflow::Block {
                        timeout: Duration::from_millis(7),
                    },
                }]),
            },
            Input::Write { len: 3, crc: 9 },
            Input::Command {
                online: true,
                command: Recorded::Request {
                    method: "list_subscriptions".into(),
                    params: None,
                },
            },
            Input::Command {
                online: false,
                command: Recorded::Request {
                    method: "update_subscription".into(),
                    params: Some(r#"{"sid":1,"action":"add_markets"}"#.into()),
                },
            },
            Input::Written(WriteEnd::TimedOut(Duration::from_secs(1))),
            Input::Disconnected {
                end: End::Lost("x".into()),
            },
            Input::Hole {
                records: 2,
                bytes: 40,
            },
            Input::Finish { error: None },
            Input::Fetched(SnapshotFetched {
                server_id: ServerId::Key("books:BTC-USDT".into()),
                number: 3,
                result: Ok(BookSnapshot {
                    seq: -5,
                    asks: vec![("100.5".into(), "1".into()), ("101".into(), "0.25".into())],
                    bids: vec![("99".into(), "7".into())],
                    venue_time: Some(UNIX_EPOCH + Duration::from_millis(1_597_026_383_085)),
                }),
            }),
            Input::Fetched(SnapshotFetched {
                server_id: ServerId::Num(9),
                number: u64::MAX,
                result: Ok(BookSnapshot {
                    venue_time: Some(UNIX_EPOCH - Duration::from_secs(1)),
                    ..BookSnapshot::default()
                }),
            }),
            Input::Fetched(SnapshotFetched {
                server_id: ServerId::Num(9),
                number: 1,
                result: Err("503 from the venue".into()),
            }),
        ];
        inputs
            .into_iter()
            .enumerate()
            .map(|(i, event)| Entry {
                stream: 1,
                at: Duration::from_millis(i as u64),
                wall: 1_700_000_000_000_000_000 + i as u64,
                event,
            })
            .collect()
    }

    #[test]
    fn every_input_round_trips() {
        let mut buf = Vec::new();
        for entry in sample() {
            encode(&entry, &mut buf);
        }
        let mut rest = &buf[..];
        let mut back = Vec::new();
        while !rest.is_empty() {
            match decode(rest) {
                Decoded::Entry(entry, used) => {
                    back.push(entry);
                    rest = &rest[used..];
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, sample());
    }

    #[test]
    fn a_torn_or_flipped_record_is_never_misread() {
        let mut buf = Vec::new();
        encode(&sample()[2], &mut buf);
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut]), Decoded::Short, "cut at {cut}");
        }
        for at in 0..buf.len() {
            let mut flipped = buf.clone();
            flipped[at] ^= 0x40;
            assert!(
                !matches!(decode(&flipped), Decoded::Entry(e, _) if e == sample()[2]),
                "flip at {at} read as the original"
            );
            // A flipped body byte fails the CRC.
            if at >= 8 {
                assert_eq!(decode(&flipped), Decoded::Corrupt, "flip at {at}");
            }
        }
    }
}
