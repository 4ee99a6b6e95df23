//! The core driven directly, with a clock the test moves: rules that need
//! exact timing or a hostile peer faster than any socket test could be.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::core::SessionCore;
use super::output::SessionEnd;
use crate::config::Config;
use crate::message::Update;
use crate::protocol::weex::PONG_ID_BASE;
use crate::protocol::{BookBreak, Inbound, Protocol, ServerId, Topic};
use crate::queue::{Overflow, Queue};
use crate::stats::StatsHub;
use crate::subscription::{ClientId, Phase};

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

fn core(config: Config) -> SessionCore<Lines> {
    let stats = Arc::new(StatsHub::default());
    let inbound = Queue::new(8, Overflow::DropOldest);
    SessionCore::new(Arc::new(config), Lines, stats, inbound)
}

fn text(s: &str) -> Message {
    Message::Text(Utf8Bytes::from(s.to_owned()))
}

/// Writes everything due at `now`, as the shell would.
fn write_all(core: &mut SessionCore<Lines>, now: Instant) -> Vec<Message> {
    let mut written = Vec::new();
    while let Some((message, w)) = core.take_write(now) {
        core.on_written(w, now);
        written.push(message);
    }
    written
}

#[test]
fn a_stall_on_a_full_block_queue_is_not_a_ping_timeout() {
    let config = Config::builder("ws://127.0.0.1:9")
        .ping_interval(Duration::from_secs(1))
        .pong_timeout(Duration::from_secs(1))
        .idle_timeout(None)
        .build()
        .unwrap();
    let mut core = core(config);
    let t0 = Instant::now();
    core.on_connected(t0);
    let queue = Queue::new(
        1,
        Overflow::Block {
            timeout: Duration::from_secs(60),
        },
    );
    core.subscribe(vec![(
        ClientId::new(1),
        Topic::new("t"),
        Arc::clone(&queue),
    )]);
    write_all(&mut core, t0);
    core.on_message(text("ack 1 7"), t0).unwrap();

    // The ping goes out; its pong is due a second later.
    let t1 = t0 + Duration::from_secs(1);
    core.on_tick(t1).unwrap();
    let pings = write_all(&mut core, t1);
    assert!(matches!(pings.as_slice(), [Message::Ping(_)]), "{pings:?}");

    // The consumer stalls with a full queue: the session stops reading.
    core.on_message(text("data 7"), t1).unwrap();
    core.on_message(text("data 7"), t1).unwrap();
    assert!(core.blocked_on().is_some());

    // Ten seconds later it makes room. The peer could not have answered the
    // ping while we were not reading, so the pong deadline moved with the stall.
    let t2 = t1 + Duration::from_secs(10);
    let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
    assert!(matches!(
        queue.poll_pop(&mut cx),
        std::task::Poll::Ready(Some(Ok(Update::Data(_))))
    ));
    core.on_space(t2);
    assert!(core.blocked_on().is_none());
    assert!(core.on_tick(t2).is_ok(), "a stall is not a dead peer");
    // Without a pong the peer is dead, counted from when we read again.
    let end = core.on_tick(t2 + Duration::from_secs(2));
    assert!(matches!(end, Err(SessionEnd::Lost(_))), "{end:?}");
}

#[test]
fn alternating_acks_and_bad_checksums_cannot_grow_the_outbound_queue() {
    let config = Config::builder("ws://127.0.0.1:9")
        .idle_timeout(None)
        .build()
        .unwrap();
    let mut core = core(config);
    let t0 = Instant::now();
    core.on_connected(t0);
    let queue = Queue::new(1024, Overflow::DropOldest);
    core.subscribe(vec![(ClientId::new(1), Topic::new("book"), queue)]);
    // The peer acks whatever request is pending and follows each ack with a
    // frame whose checksum fails; nothing is written in between (say, the
    // rate limiter holds the frames back).
    let mut longest = 0;
    for _ in 0..500 {
        if let Some(Phase::Pending { req_id }) =
            core.registry().get(ClientId::new(1)).map(|e| e.phase)
        {
            core.on_message(text(&format!("ack {req_id} 7")), t0)
                .unwrap();
        }
        core.on_message(text("bad 7"), t0).unwrap();
        let queued = core.link.as_ref().map_or(0, |l| l.outbound_len());
        longest = longest.max(queued);
    }
    assert!(
        longest <= 3,
        "one subscribe and at most one resync (unsubscribe + subscribe) wait: {longest}"
    );
    // Once written, a later mismatch may resync again.
    write_all(&mut core, t0);
    if let Some(Phase::Pending { req_id }) = core.registry().get(ClientId::new(1)).map(|e| e.phase)
    {
        core.on_message(text(&format!("ack {req_id} 7")), t0)
            .unwrap();
    }
    core.on_message(text("bad 7"), t0).unwrap();
    let written = write_all(&mut core, t0);
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
    let mut core = core(config);
    let t0 = Instant::now();
    core.on_connected(t0);
    let queue = Queue::new(64, Overflow::DropOldest);
    core.subscribe(vec![(
        ClientId::new(1),
        Topic::new("book"),
        Arc::clone(&queue),
    )]);
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
        write_all(&mut core, t0);
        let Some(Phase::Pending { req_id }) =
            core.registry().get(ClientId::new(1)).map(|e| e.phase)
        else {
            panic!("round {round}: no subscribe pending");
        };
        core.on_message(text(&format!("ack {req_id} 7")), t0)
            .unwrap();
        while let std::task::Poll::Ready(Some(_)) = queue.poll_pop(&mut cx) {}
        core.on_message(text(frame), t0).unwrap();
        assert!(matches!(
            queue.poll_pop(&mut cx),
            std::task::Poll::Ready(Some(Ok(Update::Data(_))))
        ));
        match queue.poll_pop(&mut cx) {
            std::task::Poll::Ready(Some(Ok(Update::BookBreak(got)))) => assert_eq!(got, kind),
            other => panic!("{frame}: {other:?}"),
        }
        assert_eq!(core.stats.counters.book_breaks.get(), round as u64 + 1);
        let written: Vec<String> = write_all(&mut core, t0)
            .into_iter()
            .filter_map(|m| m.into_text().ok().map(|t| t.as_str().to_owned()))
            .collect();
        assert_eq!(written.len(), 2, "{frame}: a resync, {written:?}");
        assert!(written[0].starts_with("unsub"), "{written:?}");
        assert!(written[1].starts_with("sub"), "{written:?}");
    }
}

fn core_of<P: Protocol>(config: Config, protocol: P) -> SessionCore<P> {
    let stats = Arc::new(StatsHub::default());
    let inbound = Queue::new(8, Overflow::DropOldest);
    SessionCore::new(Arc::new(config), protocol, stats, inbound)
}

fn written_texts<P: Protocol>(core: &mut SessionCore<P>, now: Instant) -> Vec<String> {
    let mut written = Vec::new();
    while let Some((message, w)) = core.take_write(now) {
        core.on_written(w, now);
        if let Message::Text(text) = message {
            written.push(text.as_str().to_owned());
        }
    }
    written
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
    let mut core = core_of(config, Weex::new());
    let t0 = Instant::now();
    core.on_connected(t0);
    for (id, symbol) in [(1, "A"), (2, "B")] {
        let queue = Queue::new(8, Overflow::DropOldest);
        let id = ClientId::new(id);
        core.subscribe(vec![(id, Topic::new("ticker").symbol(symbol), queue)]);
    }
    for time in 1..=10 {
        let ping = format!(r#"{{"event":"ping","time":{time}}}"#);
        core.on_message(text(&ping), t0).unwrap();
    }
    // At most four answers wait, in arrival order, ahead of the subscribes.
    let queued = core.link.as_ref().map_or(0, |l| l.outbound_len());
    assert_eq!(queued, 4 + 2);
    let pong = |n: u64| format!(r#"{{"method":"PONG","id":{}}}"#, PONG_ID_BASE + n);
    assert_eq!(written_texts(&mut core, t0), [pong(0)]);
    let t1 = t0 + Duration::from_secs(3600);
    assert_eq!(written_texts(&mut core, t1), [pong(1)]);
    assert_eq!(core.stats.counters.control.get(), 10);
}

#[test]
fn answered_heartbeats_keep_an_idle_watch_satisfied() {
    use crate::protocol::Weex;
    let config = Config::builder("ws://127.0.0.1:9")
        .idle_timeout(Some(Duration::from_secs(4)))
        .ping_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let mut core = core_of(config, Weex::new());
    let t0 = Instant::now();
    core.on_connected(t0);
    for second in 1..=20 {
        let now = t0 + Duration::from_secs(second);
        core.on_message(text(r#"{"event":"ping","time":1}"#), now)
            .unwrap();
        let _ = written_texts(&mut core, now);
        assert!(core.on_tick(now).is_ok(), "second {second}");
    }
    // The heartbeats stop: the feed is idle.
    let mut ended = false;
    for second in 21..=30 {
        if core.on_tick(t0 + Duration::from_secs(second)).is_err() {
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
    let mut core = core_of(config, Gzipped(crate::protocol::Weex::new()));
    let t0 = Instant::now();
    core.on_connected(t0);
    core.on_message(gzip(br#"{"event":"ping","time":7}"#), t0)
        .unwrap();
    assert_eq!(
        written_texts(&mut core, t0),
        [format!(r#"{{"method":"PONG","id":{PONG_ID_BASE}}}"#)]
    );
    // A bomb: 8 MiB of zeros in a few KiB; the budget is 1 KiB.
    core.on_message(gzip(&vec![b' '; 8 << 20]), t0).unwrap();
    core.on_message(Message::Binary(vec![1, 2, 3].into()), t0)
        .unwrap();
    assert_eq!(core.stats.counters.unroutable.get(), 2);
    assert!(written_texts(&mut core, t0).is_empty());
}

#[test]
fn an_unlimited_send_skips_the_rate_limit_budget_and_keeps_its_place() {
    let config = Config::builder("ws://127.0.0.1:9")
        .idle_timeout(None)
        .rate_limit(1, Duration::from_secs(1))
        .build()
        .unwrap();
    let mut core = core(config);
    let t0 = Instant::now();
    core.on_connected(t0);
    core.send(1, text("limited-1"), true);
    core.send(2, Message::binary(vec![1u8, 2]), false);
    core.send(3, Message::binary(vec![3u8]), false);
    core.send(4, text("limited-2"), true);
    // The budget (one frame a second) covers limited-1; the unlimited frames
    // follow at once; limited-2 waits for the next window.
    let now = write_all(&mut core, t0);
    assert_eq!(
        now,
        vec![
            text("limited-1"),
            Message::binary(vec![1u8, 2]),
            Message::binary(vec![3u8])
        ]
    );
    assert!(write_all(&mut core, t0 + Duration::from_millis(999)).is_empty());
    let later = write_all(&mut core, t0 + Duration::from_secs(1));
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
    let mut core = core_of(config, Weex::new());
    let t0 = Instant::now();
    core.on_connected(t0);
    let subscribe = |core: &mut SessionCore<Weex>, id: u64| {
        let queue = Queue::new(8, Overflow::DropOldest);
        let topic = Topic::new("ticker").symbol(format!("S{id}"));
        core.subscribe(vec![(ClientId::new(id), topic, queue)]);
    };
    // WEEX: 240 operations an hour. They all go; the next ones are held.
    for id in 1..=240 {
        subscribe(&mut core, id);
    }
    assert_eq!(written_texts(&mut core, t0).len(), 240);
    for id in 241..=1300 {
        subscribe(&mut core, id);
    }
    let hour = Duration::from_secs(3600);
    let gauge = || core.stats.counters.subscribe_ops_waiting.get();
    assert_eq!(core.next_write_at(t0), Some(t0 + hour));
    assert_eq!(gauge(), 0, "asking when to write publishes nothing");
    // More than the outbound limit waits, yet commands (close, sends) are
    // taken: the held operations are counted from the queue, not read back
    // from the gauge.
    assert!(core.accepts_commands(t0));
    core.publish_ops_waiting(t0);
    assert_eq!(gauge(), 1060);
    // A held request whose subscription ended is withdrawn: no operation is
    // spent on it, and no unsubscribe follows.
    core.unsubscribe(ClientId::new(241));
    assert_eq!(core.link.as_ref().map(|l| l.outbound_len()), Some(1059));
    let texts = written_texts(&mut core, t0 + hour);
    assert_eq!(texts.len(), 240, "one window's worth");
    assert!(
        texts.iter().all(|t| !t.contains("\"S241@ticker\"")),
        "{:?}",
        &texts[..3]
    );
    assert!(texts[0].contains("\"S242@ticker\""), "{}", texts[0]);
}

#[test]
fn while_closing_the_next_timer_is_the_close_deadline_not_a_due_ping() {
    let config = Config::builder("ws://127.0.0.1:9")
        .ping_interval(Duration::from_secs(1))
        .close_timeout(Duration::from_secs(1))
        .idle_timeout(None)
        .build()
        .unwrap();
    let mut core = core(config);
    let t0 = Instant::now();
    core.on_connected(t0);
    let closing_at = t0 + Duration::from_millis(900);
    core.begin_close(closing_at);
    // The ping falls due while the close handshake waits for the peer.
    let t1 = t0 + Duration::from_secs(1);
    assert!(core.on_tick(t1).is_ok());
    let next = core.next_timer().expect("connected");
    assert!(next > t1, "due again at once: {next:?} <= {t1:?}");
    assert_eq!(next, closing_at + Duration::from_secs(1));
    assert!(matches!(core.on_tick(next), Err(SessionEnd::Closed)));
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
    let mut core = core(config);
    let t0 = Instant::now();
    core.on_connected(t0);
    core.begin_close(t0);
    write_all(&mut core, t0);
    let close_deadline = t0 + Duration::from_secs(5);
    // The ping (1 s) and the idle watch (2 s) are past; the close is not.
    let t1 = t0 + Duration::from_secs(3);
    assert!(core.on_tick(t1).is_ok());
    assert_eq!(core.next_timer(), Some(close_deadline), "no busy loop");
    assert!(matches!(
        core.on_tick(close_deadline),
        Err(SessionEnd::Closed)
    ));
}
