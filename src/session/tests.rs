//! The core driven through [`Drive`] as every shell drives it, with a clock
//! the test moves: rules that need exact timing or a hostile peer faster
//! than any socket test could be.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tungstenite::{Message, Utf8Bytes};

use super::output::SessionEnd;
use crate::client::Client;
use crate::command::{Command, NewSubscription};
use crate::config::Config;
use crate::error::Error;
use crate::message::Update;
use crate::protocol::weex::PONG_ID_BASE;
use crate::protocol::{BookBreak, Inbound, Protocol, ServerId, Topic};
use crate::queue::{Overflow, Queue};
use crate::stats::InFlight;
use crate::subscription::{ClientId, Phase};
use crate::supervisor::drive::{Drive, Turn, WriteOutcome};

/// `ack <req> <sid>`, `data <sid>`, `bad <sid>` (a book break: a checksum
/// mismatch), `skip <sid> <expected> <got>` (an update-id discontinuity),
/// `odd <sid>` (an unusable update).
struct Lines;

impl Protocol for Lines {
    fn name(&self) -> &'static str {
        "lines"
    }

    fn encode_subscribe(&mut self, _topics: &[&Topic], req_id: u64) -> String {
        format!("sub {req_id}")
    }

    fn encode_unsubscribe(&mut self, _: &Topic, server_id: &ServerId, _: u64) -> Option<String> {
        Some(format!("unsub {server_id}"))
    }

    fn classify<'a>(&mut self, text: &'a str) -> Inbound<'a> {
        let words: Vec<&str> = text.split(' ').collect();
        let num = |i: usize| {
            words
                .get(i)
                .and_then(|w| w.parse::<u64>().ok())
                .unwrap_or(0)
        };
        match words.first() {
            Some(&"ack") => Inbound::Subscribed {
                req_id: Some(num(1)),
                server_id: ServerId::Num(num(2)),
                channel: None,
                symbol: None,
            },
            Some(&"data") => Inbound::Data {
                server_id: ServerId::Num(num(1)),
                seq: None,
                book_break: None,
                payload: None,
            },
            Some(&"bad") => Inbound::Data {
                server_id: ServerId::Num(num(1)),
                seq: None,
                book_break: Some(BookBreak::ChecksumMismatch {
                    expected: 1,
                    computed: 2,
                }),
                payload: None,
            },
            Some(&"skip") => Inbound::Data {
                server_id: ServerId::Num(num(1)),
                seq: None,
                book_break: Some(BookBreak::Discontinuity {
                    expected: num(2) as i64,
                    got: num(3) as i64,
                }),
                payload: None,
            },
            Some(&"odd") => Inbound::Data {
                server_id: ServerId::Num(num(1)),
                seq: None,
                book_break: Some(BookBreak::Unusable {
                    reason: "an odd update",
                }),
                payload: None,
            },
            _ => Inbound::Control,
        }
    }
}

/// A drive of a core speaking `protocol`, built as every shell builds it.
fn drive_of<P: Protocol>(config: Config, protocol: P) -> Drive<P> {
    let (_client, _inbound, supervisor, _span) = Client::unspawned(config, protocol);
    let (_config, drive, _commands, _reconnect) = supervisor.into_parts();
    drive
}

fn drive(config: Config) -> Drive<Lines> {
    drive_of(config, Lines)
}

fn text(s: &str) -> Message {
    Message::Text(Utf8Bytes::from(s.to_owned()))
}

/// The peer sends `message` at `now`.
fn read<P: Protocol>(
    drive: &mut Drive<P>,
    message: Message,
    now: Instant,
) -> Result<(), SessionEnd> {
    drive.socket(Some(Ok(message)), now, now)
}

/// A handle subscribes `id` to `topic`; the receiver gets the answer.
fn subscribe<P: Protocol>(
    drive: &mut Drive<P>,
    id: u64,
    topic: Topic,
    queue: Arc<Queue>,
    now: Instant,
) -> oneshot::Receiver<Result<(), Error>> {
    let (ready, answer) = oneshot::channel();
    let in_flight = InFlight::new(&drive.shared().stats);
    let new = NewSubscription {
        client_id: ClientId::new(id),
        topic,
        queue,
        ready,
        in_flight,
    };
    drive.serve_online(Some(Command::Subscribe(vec![new])), now);
    answer
}

/// A handle sends a one-off frame.
fn send<P: Protocol>(drive: &mut Drive<P>, message: Message, rate_limited: bool, now: Instant) {
    let (reply, _answer) = oneshot::channel();
    let command = Command::Send {
        message,
        rate_limited,
        reply,
    };
    drive.serve_online(Some(command), now);
}

/// Writes every frame due at `now`, as a shell does.
fn write_all<P: Protocol>(drive: &mut Drive<P>, now: Instant) -> Vec<Message> {
    let mut written = Vec::new();
    while matches!(drive.next_turn(now), Turn::Write) {
        let Some((message, w, _timeout)) = drive.take_write(now) else {
            break;
        };
        drive.written(w, WriteOutcome::Done, now).unwrap();
        written.push(message);
    }
    written
}

/// Writes every frame waiting, from `now` on, each when the drive says it is
/// due (the clock jumps to each write slot, no timer runs).
fn write_all_waiting<P: Protocol>(drive: &mut Drive<P>, mut now: Instant) -> Vec<Message> {
    let mut written = Vec::new();
    loop {
        written.extend(write_all(drive, now));
        match drive.next_turn(now) {
            Turn::Wait {
                write_at: Some(at), ..
            } => now = at,
            _ => return written,
        }
    }
}

fn texts(written: Vec<Message>) -> Vec<String> {
    written
        .into_iter()
        .filter_map(|message| match message {
            Message::Text(text) => Some(text.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

fn written_texts<P: Protocol>(drive: &mut Drive<P>, now: Instant) -> Vec<String> {
    texts(write_all(drive, now))
}

#[test]
fn a_stall_on_a_full_block_queue_is_not_a_ping_timeout() {
    let config = Config::builder("ws://127.0.0.1:9")
        .ping_interval(Duration::from_secs(1))
        .pong_timeout(Duration::from_secs(1))
        .idle_timeout(None)
        .build()
        .unwrap();
    let mut drive = drive(config);
    let t0 = Instant::now();
    drive.connected(t0, std::time::UNIX_EPOCH);
    let queue = Queue::new(
        1,
        Overflow::Block {
            timeout: Duration::from_secs(60),
        },
    );
    let _ready = subscribe(&mut drive, 1, Topic::new("t"), Arc::clone(&queue), t0);
    write_all(&mut drive, t0);
    read(&mut drive, text("ack 1 7"), t0).unwrap();

    // The ping goes out; its pong is due a second later.
    let t1 = t0 + Duration::from_secs(1);
    drive.tick(t1).unwrap();
    let pings = write_all(&mut drive, t1);
    assert!(matches!(pings.as_slice(), [Message::Ping(_)]), "{pings:?}");

    // The consumer stalls with a full queue: the session stops reading.
    read(&mut drive, text("data 7"), t1).unwrap();
    read(&mut drive, text("data 7"), t1).unwrap();
    assert!(matches!(drive.next_turn(t1), Turn::Blocked { .. }));

    // Ten seconds later it makes room. The peer could not have answered the
    // ping while we were not reading, so the pong deadline moved with the stall.
    let t2 = t1 + Duration::from_secs(10);
    let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
    assert!(matches!(
        queue.poll_pop(&mut cx),
        std::task::Poll::Ready(Some(Ok(Update::Data(_))))
    ));
    drive.blocked_ended(true, t2);
    assert!(matches!(drive.next_turn(t2), Turn::Wait { .. }));
    assert!(drive.tick(t2).is_ok(), "a stall is not a dead peer");
    // Without a pong the peer is dead, counted from when we read again.
    let end = drive.tick(t2 + Duration::from_secs(2));
    assert!(matches!(end, Err(SessionEnd::Lost(_))), "{end:?}");
}

#[test]
fn alternating_acks_and_bad_checksums_cannot_grow_the_outbound_queue() {
    // One frame an hour: after the first subscribe, whatever the core queues
    // waits for the rate limiter.
    let config = Config::builder("ws://127.0.0.1:9")
        .rate_limit(1, Duration::from_secs(3600))
        .idle_timeout(None)
        .build()
        .unwrap();
    let mut drive = drive(config);
    let t0 = Instant::now();
    drive.connected(t0, std::time::UNIX_EPOCH);
    let queue = Queue::new(1024, Overflow::DropOldest);
    let _ready = subscribe(&mut drive, 1, Topic::new("book"), queue, t0);
    assert_eq!(write_all(&mut drive, t0).len(), 1, "the subscribe");
    let pending = |drive: &Drive<Lines>| match drive.core.registry().get(ClientId::new(1)) {
        Some(entry) => match entry.phase {
            Phase::Pending { req_id } => Some(req_id),
            _ => None,
        },
        None => None,
    };
    // The peer acks whatever request is pending and follows each ack with a
    // frame whose checksum fails.
    for _ in 0..500 {
        if let Some(req_id) = pending(&drive) {
            read(&mut drive, text(&format!("ack {req_id} 7")), t0).unwrap();
        }
        read(&mut drive, text("bad 7"), t0).unwrap();
        assert!(write_all(&mut drive, t0).is_empty(), "held back");
    }
    let waiting = write_all_waiting(&mut drive, t0);
    assert!(
        waiting.len() <= 2,
        "at most one resync (unsubscribe + subscribe) waits: {waiting:?}"
    );
    // Once written, a later mismatch may resync again.
    let later = t0 + Duration::from_secs(24 * 3600);
    if let Some(req_id) = pending(&drive) {
        read(&mut drive, text(&format!("ack {req_id} 7")), later).unwrap();
    }
    read(&mut drive, text("bad 7"), later).unwrap();
    let written = write_all_waiting(&mut drive, later);
    assert_eq!(written.len(), 2, "{written:?}");
}

/// Every kind of book break reaches the stream after its frame, as the
/// adapter named it, is counted once, and resyncs that subscription.
#[test]
fn every_book_break_is_signalled_as_named_and_resyncs() {
    let config = Config::builder("ws://127.0.0.1:9")
        .idle_timeout(None)
        .build()
        .unwrap();
    let mut drive = drive(config);
    let t0 = Instant::now();
    drive.connected(t0, std::time::UNIX_EPOCH);
    let queue = Queue::new(64, Overflow::DropOldest);
    let _ready = subscribe(&mut drive, 1, Topic::new("book"), Arc::clone(&queue), t0);
    let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
    let cases = [
        (
            "bad 7",
            BookBreak::ChecksumMismatch {
                expected: 1,
                computed: 2,
            },
        ),
        (
            "skip 7 41 43",
            BookBreak::Discontinuity {
                expected: 41,
                got: 43,
            },
        ),
        (
            "odd 7",
            BookBreak::Unusable {
                reason: "an odd update",
            },
        ),
    ];
    for (round, (frame, kind)) in cases.into_iter().enumerate() {
        write_all(&mut drive, t0);
        let Some(Phase::Pending { req_id }) =
            drive.core.registry().get(ClientId::new(1)).map(|e| e.phase)
        else {
            panic!("round {round}: no subscribe pending");
        };
        read(&mut drive, text(&format!("ack {req_id} 7")), t0).unwrap();
        while let std::task::Poll::Ready(Some(_)) = queue.poll_pop(&mut cx) {}
        read(&mut drive, text(frame), t0).unwrap();
        assert!(matches!(
            queue.poll_pop(&mut cx),
            std::task::Poll::Ready(Some(Ok(Update::Data(_))))
        ));
        match queue.poll_pop(&mut cx) {
            std::task::Poll::Ready(Some(Ok(Update::BookBreak(got)))) => assert_eq!(got, kind),
            other => panic!("{frame}: {other:?}"),
        }
        assert_eq!(
            drive.shared().stats.counters.book_breaks.get(),
            round as u64 + 1
        );
        let written = written_texts(&mut drive, t0);
        assert_eq!(written.len(), 2, "{frame}: a resync, {written:?}");
        assert!(written[0].starts_with("unsub"), "{written:?}");
        assert!(written[1].starts_with("sub"), "{written:?}");
    }
}

#[test]
fn venue_heartbeats_are_answered_ahead_of_the_queue_and_bounded() {
    use crate::protocol::Weex;
    // One frame per hour: what is written first is what jumped the queue.
    let config = Config::builder("ws://127.0.0.1:9")
        .rate_limit(1, Duration::from_secs(3600))
        .idle_timeout(None)
        .build()
        .unwrap();
    let mut drive = drive_of(config, Weex::new());
    let t0 = Instant::now();
    drive.connected(t0, std::time::UNIX_EPOCH);
    for (id, symbol) in [(1, "A"), (2, "B")] {
        let queue = Queue::new(8, Overflow::DropOldest);
        let topic = Topic::new("ticker").symbol(symbol);
        let _ready = subscribe(&mut drive, id, topic, queue, t0);
        write_all(&mut drive, t0);
    }
    for time in 1..=10 {
        let ping = format!(r#"{{"event":"ping","time":{time}}}"#);
        read(&mut drive, text(&ping), t0).unwrap();
    }
    // At most four answers wait, in arrival order, ahead of the subscribe
    // the limiter holds (the first went out at once).
    let pong = |n: u64| format!(r#"{{"method":"PONG","id":{}}}"#, PONG_ID_BASE + n);
    let waiting = texts(write_all_waiting(&mut drive, t0));
    assert_eq!(waiting.len(), 4 + 1, "{waiting:?}");
    assert_eq!(waiting[..4], [pong(0), pong(1), pong(2), pong(3)]);
    assert!(waiting[4].contains("\"B@ticker\""), "{}", waiting[4]);
    assert_eq!(drive.shared().stats.counters.control.get(), 10);
}

#[test]
fn answered_heartbeats_keep_an_idle_watch_satisfied() {
    use crate::protocol::Weex;
    let config = Config::builder("ws://127.0.0.1:9")
        .idle_timeout(Some(Duration::from_secs(4)))
        .ping_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let mut drive = drive_of(config, Weex::new());
    let t0 = Instant::now();
    drive.connected(t0, std::time::UNIX_EPOCH);
    for second in 1..=20 {
        let now = t0 + Duration::from_secs(second);
        read(&mut drive, text(r#"{"event":"ping","time":1}"#), now).unwrap();
        let _ = written_texts(&mut drive, now);
        assert!(drive.tick(now).is_ok(), "second {second}");
    }
    // The heartbeats stop: the feed is idle.
    let mut ended = false;
    for second in 21..=30 {
        if drive.tick(t0 + Duration::from_secs(second)).is_err() {
            ended = true;
            break;
        }
    }
    assert!(ended, "no heartbeat for 10 s must end a 4 s idle watch");
}

/// WEEX behind gzip: the shape of a compressed venue.
struct Gzipped(crate::protocol::Weex);

impl Protocol for Gzipped {
    fn name(&self) -> &'static str {
        "gzipped"
    }
    fn encode_subscribe(&mut self, topics: &[&Topic], req_id: u64) -> String {
        self.0.encode_subscribe(topics, req_id)
    }
    fn encode_unsubscribe(&mut self, t: &Topic, s: &ServerId, r: u64) -> Option<String> {
        self.0.encode_unsubscribe(t, s, r)
    }
    fn decode_binary(
        &mut self,
        data: &[u8],
    ) -> Option<Result<String, crate::error::ProtocolError>> {
        use crate::protocol::{inflate_bounded, Compression};
        Some(inflate_bounded(data, Compression::Gzip, 1024))
    }
    fn classify<'a>(&mut self, text: &'a str) -> Inbound<'a> {
        self.0.classify(text)
    }
}

#[test]
fn compressed_frames_are_inflated_within_a_budget_then_classified() {
    use std::io::Write;
    fn gzip(data: &[u8]) -> Message {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        Message::Binary(enc.finish().unwrap().into())
    }
    let config = Config::builder("ws://127.0.0.1:9")
        .idle_timeout(None)
        .build()
        .unwrap();
    let mut drive = drive_of(config, Gzipped(crate::protocol::Weex::new()));
    let t0 = Instant::now();
    drive.connected(t0, std::time::UNIX_EPOCH);
    read(&mut drive, gzip(br#"{"event":"ping","time":7}"#), t0).unwrap();
    assert_eq!(
        written_texts(&mut drive, t0),
        [format!(r#"{{"method":"PONG","id":{PONG_ID_BASE}}}"#)]
    );
    // A bomb: 8 MiB of zeros in a few KiB; the budget is 1 KiB.
    read(&mut drive, gzip(&vec![b' '; 8 << 20]), t0).unwrap();
    read(&mut drive, Message::Binary(vec![1, 2, 3].into()), t0).unwrap();
    assert_eq!(drive.shared().stats.counters.unroutable.get(), 2);
    assert!(written_texts(&mut drive, t0).is_empty());
}

#[test]
fn an_unlimited_send_skips_the_rate_limit_budget_and_keeps_its_place() {
    let config = Config::builder("ws://127.0.0.1:9")
        .idle_timeout(None)
        .rate_limit(1, Duration::from_secs(1))
        .build()
        .unwrap();
    let mut drive = drive(config);
    let t0 = Instant::now();
    drive.connected(t0, std::time::UNIX_EPOCH);
    send(&mut drive, text("limited-1"), true, t0);
    send(&mut drive, Message::binary(vec![1u8, 2]), false, t0);
    send(&mut drive, Message::binary(vec![3u8]), false, t0);
    send(&mut drive, text("limited-2"), true, t0);
    // The budget (one frame a second) covers limited-1; the unlimited frames
    // follow at once; limited-2 waits for the next window.
    let now = write_all(&mut drive, t0);
    assert_eq!(
        now,
        vec![
            text("limited-1"),
            Message::binary(vec![1u8, 2]),
            Message::binary(vec![3u8])
        ]
    );
    assert!(write_all(&mut drive, t0 + Duration::from_millis(999)).is_empty());
    let later = write_all(&mut drive, t0 + Duration::from_secs(1));
    assert_eq!(later, vec![text("limited-2")]);
}

#[test]
fn requests_the_operations_window_holds_do_not_block_commands_and_are_withdrawn_when_unwanted() {
    use crate::protocol::Weex;
    let config = Config::builder("ws://127.0.0.1:9")
        .rate_limit(100_000, Duration::from_secs(1))
        .idle_timeout(None)
        .build()
        .unwrap();
    let mut drive = drive_of(config, Weex::new());
    let t0 = Instant::now();
    drive.connected(t0, std::time::UNIX_EPOCH);
    let mut written = 0;
    let mut subscribe = |drive: &mut Drive<Weex>, id: u64| {
        let queue = Queue::new(8, Overflow::DropOldest);
        let topic = Topic::new("ticker").symbol(format!("S{id}"));
        let _ready = subscribe(drive, id, topic, queue, t0);
        written += write_all(drive, t0).len();
    };
    // WEEX: 240 operations an hour. They all go; the next ones are held.
    for id in 1..=1300 {
        subscribe(&mut drive, id);
    }
    assert_eq!(written, 240);
    let hour = Duration::from_secs(3600);
    let gauge = |drive: &Drive<Weex>| drive.shared().stats.counters.subscribe_ops_waiting.get();
    // Every input publishes the held operations; more than the outbound
    // limit wait, yet commands (close, sends) are taken: they are counted
    // from the queue, not read back from the gauge.
    assert_eq!(gauge(&drive), 1060);
    let Turn::Wait {
        write_at, commands, ..
    } = drive.next_turn(t0)
    else {
        panic!("nothing is due before the window opens");
    };
    assert_eq!(write_at, Some(t0 + hour));
    assert!(commands);
    // A held request whose subscription ended is withdrawn: no operation is
    // spent on it, and no unsubscribe follows.
    let unsubscribe = Command::Unsubscribe {
        client_id: ClientId::new(241),
        reply: None,
    };
    drive.serve_online(Some(unsubscribe), t0);
    assert_eq!(gauge(&drive), 1059);
    let texts = written_texts(&mut drive, t0 + hour);
    assert_eq!(texts.len(), 240, "one window's worth");
    assert!(
        texts.iter().all(|t| !t.contains("\"S241@ticker\"")),
        "{:?}",
        &texts[..3]
    );
    assert!(texts[0].contains("\"S242@ticker\""), "{}", texts[0]);
}

#[test]
fn the_gauges_are_current_after_each_input_with_no_step_for_the_driver() {
    use crate::protocol::Weex;
    let config = Config::builder("ws://127.0.0.1:9")
        .rate_limit(100_000, Duration::from_secs(1))
        .idle_timeout(None)
        .build()
        .unwrap();
    let drive = drive_of(config, Weex::new());
    let shared = Arc::clone(drive.shared());
    let gauge = || shared.stats.counters.subscribe_ops_waiting.get();
    let live = || shared.stats.counters.subscriptions.get();
    // The core alone, driven through its inputs and `poll_transmit`: no
    // apply, no publishing step. Whatever the gauge says, the inputs said.
    let mut core = drive.core;
    let t0 = Instant::now();
    core.on_connected(t0, std::time::UNIX_EPOCH);
    // WEEX: 240 operations an hour; one more is held once they are spent.
    for id in 1..=241 {
        let topic = Topic::new("ticker").symbol(format!("S{id}"));
        let queue = Queue::new(8, Overflow::DropOldest);
        core.subscribe(vec![(ClientId::new(id), topic, queue)], t0);
    }
    assert_eq!(gauge(), 0, "nothing is held before the window is spent");
    let mut written = 0;
    while let Some((_, done, _)) = core.poll_transmit(t0) {
        core.on_written(done, t0);
        written += 1;
    }
    assert_eq!(written, 240);
    assert_eq!(gauge(), 1, "the last write closed the window");
    // Questions change nothing.
    let hour = Duration::from_secs(3600);
    assert_eq!(core.next_write_at(t0), Some(t0 + hour));
    assert!(core.accepts_commands(t0 + hour));
    let _ = core.poll_timeout();
    assert_eq!(gauge(), 1);
    // The window opens with time: the next input (any) says so.
    let pong = Message::Pong(Vec::new().into());
    assert!(core.on_message(pong, t0 + hour, t0 + hour).is_ok());
    assert_eq!(gauge(), 0, "the window is open again");
    assert_eq!(live(), 241);
    core.unsubscribe(ClientId::new(241), t0 + hour);
    assert_eq!(gauge(), 0);
    assert_eq!(live(), 240, "an ended subscription is no longer counted");
}

#[test]
fn while_closing_the_next_timer_is_the_close_deadline_not_a_due_ping() {
    let config = Config::builder("ws://127.0.0.1:9")
        .ping_interval(Duration::from_secs(1))
        .close_timeout(Duration::from_secs(1))
        .idle_timeout(None)
        .build()
        .unwrap();
    let mut drive = drive(config);
    let t0 = Instant::now();
    drive.connected(t0, std::time::UNIX_EPOCH);
    let closing_at = t0 + Duration::from_millis(900);
    drive.serve_online(Some(Command::Close), closing_at);
    write_all(&mut drive, closing_at);
    // The ping falls due while the close handshake waits for the peer.
    let t1 = t0 + Duration::from_secs(1);
    assert!(drive.tick(t1).is_ok());
    let Turn::Wait { timer_at, .. } = drive.next_turn(t1) else {
        panic!("nothing to write while closing");
    };
    assert!(timer_at > t1, "due again at once: {timer_at:?} <= {t1:?}");
    assert_eq!(timer_at, closing_at + Duration::from_secs(1));
    assert!(matches!(drive.tick(timer_at), Err(SessionEnd::Closed)));
}

/// While closing, the next timer is the close deadline: a ping or idle
/// deadline that passed during the close handshake must not make every turn
/// "due" (found in a recording: hundreds of thousands of ticks per second
/// until the close deadline).
#[test]
fn while_closing_past_ping_and_idle_deadlines_do_not_make_every_turn_due() {
    let config = Config::builder("ws://127.0.0.1:9")
        .ping_interval(Duration::from_secs(1))
        .pong_timeout(Duration::from_secs(1))
        .idle_timeout(Some(Duration::from_secs(2)))
        .close_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut drive = drive(config);
    let t0 = Instant::now();
    drive.connected(t0, std::time::UNIX_EPOCH);
    drive.serve_online(Some(Command::Close), t0);
    write_all(&mut drive, t0);
    let close_deadline = t0 + Duration::from_secs(5);
    // The ping (1 s) and the idle watch (2 s) are past; the close is not.
    let t1 = t0 + Duration::from_secs(3);
    assert!(drive.tick(t1).is_ok());
    let Turn::Wait { timer_at, .. } = drive.next_turn(t1) else {
        panic!("nothing to write while closing");
    };
    assert_eq!(timer_at, close_deadline, "no busy loop");
    assert!(matches!(
        drive.tick(close_deadline),
        Err(SessionEnd::Closed)
    ));
}

/// Frames cut from one socket read share its receive time (worked out once
/// per read); a new connection's wall-clock anchor applies from its first
/// frame, even one read at the same monotonic instant as the last frame of
/// the connection before.
#[test]
fn the_receive_time_follows_each_connections_wall_clock_anchor() {
    use std::time::UNIX_EPOCH;
    let mut drive = drive(Config::builder("ws://127.0.0.1:9").build().unwrap());
    let queue = Queue::new(16, Overflow::DropOldest);
    let t0 = Instant::now();
    let t1 = t0 + Duration::from_secs(1);
    let mut frames = Vec::new();
    for (wall, anchored_at) in [(1_000, t0), (5_000, t1)] {
        let wall = UNIX_EPOCH + Duration::from_secs(wall);
        drive.connected(anchored_at, wall);
        if frames.is_empty() {
            let _ready = subscribe(&mut drive, 1, Topic::new("t"), Arc::clone(&queue), t0);
        }
        let sub = written_texts(&mut drive, anchored_at);
        let req = sub
            .iter()
            .find_map(|s| s.strip_prefix("sub "))
            .unwrap()
            .to_owned();
        read(&mut drive, text(&format!("ack {req} 7")), anchored_at).unwrap();
        // Two frames of one read at `t1`, then collected.
        read(&mut drive, text("data 7"), t1).unwrap();
        read(&mut drive, text("data 7"), t1).unwrap();
        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
        // (After the reconnect, an `Update::Resubscribed` comes first.)
        while let std::task::Poll::Ready(Some(item)) = queue.poll_pop(&mut cx) {
            if let Ok(Update::Data(frame)) = item {
                frames.push(frame.received());
            }
        }
        let end = SessionEnd::Lost(Error::Timeout {
            operation: crate::error::Operation::Ping,
            timeout: Duration::from_secs(1),
        });
        drive.disconnected(&end, t1);
    }
    let walls: Vec<_> = frames.iter().map(|r| r.wall).collect();
    assert_eq!(
        walls,
        [1_001, 1_001, 5_000, 5_000].map(|s| UNIX_EPOCH + Duration::from_secs(s))
    );
    assert!(frames.iter().all(|r| r.at == t1.into_std()));
}

/// `Lines` with a venue time: the last word of `data <sid> <ms>` is the
/// stamp (Unix ms). Counts how often the session asks `venue_time`; with
/// `finder`, it also hands the session [`stamp_of_counted`] as its finder.
struct Stamped {
    finder: bool,
    asked: Arc<std::sync::atomic::AtomicUsize>,
}

/// Calls of [`stamp_of_counted`]: a finder is a plain `fn`, so its count is
/// a static, used by one test only.
static FINDER_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn stamp_of(text: &str) -> Option<std::time::SystemTime> {
    let ms = text.rsplit(' ').next()?.parse().ok()?;
    std::time::UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

fn stamp_of_counted(text: &str, _payload: &str) -> Option<std::time::SystemTime> {
    FINDER_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    stamp_of(text)
}

impl Protocol for Stamped {
    fn name(&self) -> &'static str {
        "stamped"
    }
    fn encode_subscribe(&mut self, topics: &[&Topic], req_id: u64) -> String {
        Lines.encode_subscribe(topics, req_id)
    }
    fn encode_unsubscribe(&mut self, t: &Topic, s: &ServerId, r: u64) -> Option<String> {
        Lines.encode_unsubscribe(t, s, r)
    }
    fn classify<'a>(&mut self, text: &'a str) -> Inbound<'a> {
        Lines.classify(text)
    }
    fn venue_time(&self, text: &str, _payload: &str) -> Option<std::time::SystemTime> {
        self.asked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        stamp_of(text)
    }
    fn venue_time_finder(&self) -> Option<crate::protocol::VenueTimeFinder> {
        self.finder
            .then_some(stamp_of_counted as crate::protocol::VenueTimeFinder)
    }
}

/// A frame's venue time is found when asked where the adapter hands the
/// session a finder: routing runs no search at all, and each ask runs the
/// finder on the frame's bytes. An adapter with only `venue_time` is asked
/// once per data frame as it is routed (the frame keeps the answer).
#[test]
fn a_venue_time_is_searched_when_asked_with_a_finder_and_as_routed_without() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const FRAMES: u64 = 5;
    let at = |ms: u64| Some(std::time::UNIX_EPOCH + Duration::from_millis(ms));
    for finder in [true, false] {
        let asked = Arc::new(AtomicUsize::new(0));
        let protocol = Stamped {
            finder,
            asked: Arc::clone(&asked),
        };
        let config = Config::builder("ws://127.0.0.1:9")
            .idle_timeout(None)
            .build()
            .unwrap();
        let mut drive = drive_of(config, protocol);
        let queue = Queue::new(16, Overflow::DropOldest);
        let t0 = Instant::now();
        drive.connected(t0, std::time::UNIX_EPOCH);
        let _ready = subscribe(&mut drive, 1, Topic::new("t"), Arc::clone(&queue), t0);
        let sub = written_texts(&mut drive, t0);
        let req = sub.iter().find_map(|s| s.strip_prefix("sub ")).unwrap();
        read(&mut drive, text(&format!("ack {req} 7")), t0).unwrap();
        for ms in 1..=FRAMES {
            read(&mut drive, text(&format!("data 7 {ms}")), t0).unwrap();
        }
        let mut frames = Vec::new();
        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
        while let std::task::Poll::Ready(Some(item)) = queue.poll_pop(&mut cx) {
            if let Ok(Update::Data(frame)) = item {
                frames.push(frame);
            }
        }
        assert_eq!(frames.len(), FRAMES as usize);
        let routed = if finder { 0 } else { FRAMES as usize };
        assert_eq!(asked.load(Ordering::Relaxed), routed, "finder {finder}");
        // With the `metrics` feature every client has a venue-lag histogram,
        // which asks each data frame's venue time as it is routed.
        let searched_routing = if cfg!(feature = "metrics") {
            FRAMES as usize
        } else {
            0
        };
        if finder {
            assert_eq!(
                FINDER_CALLS.load(Ordering::Relaxed),
                searched_routing,
                "searches while routing"
            );
        }
        for (ms, frame) in (1..).zip(&frames) {
            assert_eq!(frame.venue_time(), at(ms));
            assert_eq!(frame.venue_time(), at(ms), "asked twice, the same");
        }
        // Asking never reaches the adapter; with a finder, each ask searches.
        assert_eq!(asked.load(Ordering::Relaxed), routed);
        if finder {
            assert_eq!(
                FINDER_CALLS.load(Ordering::Relaxed),
                searched_routing + 2 * FRAMES as usize
            );
        }
    }
}
