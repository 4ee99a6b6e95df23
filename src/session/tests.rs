//! The core driven directly, with a clock the test moves: rules that need
//! exact timing or a hostile peer faster than any socket test could be.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::{SessionCore, SessionEnd};
use crate::config::Config;
use crate::message::Update;
use crate::protocol::{ChecksumMismatch, Inbound, Protocol, ServerId, Topic};
use crate::queue::{Overflow, Queue};
use crate::stats::StatsHub;
use crate::subscription::Phase;

/// `ack <req> <sid>`, `data <sid>`, `bad <sid>` (a checksum mismatch).
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
                checksum: None,
                payload: None,
            },
            Some(&"bad") => Inbound::Data {
                server_id: ServerId::Num(num(1)),
                seq: None,
                checksum: Some(ChecksumMismatch {
                    expected: 1,
                    computed: 2,
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
    core.subscribe(vec![(1, Topic::new("t"), Arc::clone(&queue))]);
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
    core.subscribe(vec![(1, Topic::new("book"), queue)]);
    // The peer acks whatever request is pending and follows each ack with a
    // frame whose checksum fails; nothing is written in between (say, the
    // rate limiter holds the frames back).
    let mut longest = 0;
    for _ in 0..500 {
        if let Some(Phase::Pending { req_id }) = core.registry().get(1).map(|e| e.phase) {
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
    if let Some(Phase::Pending { req_id }) = core.registry().get(1).map(|e| e.phase) {
        core.on_message(text(&format!("ack {req_id} 7")), t0)
            .unwrap();
    }
    core.on_message(text("bad 7"), t0).unwrap();
    let written = write_all(&mut core, t0);
    assert_eq!(written.len(), 2, "{written:?}");
}
