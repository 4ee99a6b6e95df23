//! Unit tests of the registry's rules (see the module docs): replay order and
//! batching, ack matching, the stash bounds, sequence checks, rejections.

use super::*;
use crate::queue::Overflow;

/// Client id `n`.
const fn c(n: u64) -> ClientId {
    ClientId::new(n)
}

/// Request id `n`.
fn req(n: u64) -> ReqId {
    ReqId::from(n)
}

/// Client ids, as batches and member lists name them.
fn cs(ns: &[u64]) -> Vec<ClientId> {
    ns.iter().copied().map(c).collect()
}

struct NoBatch;
impl ProtocolBatching for NoBatch {
    fn batchable(&self, _: &Topic, _: &Topic) -> bool {
        false
    }
}
struct SameChannel;
impl ProtocolBatching for SameChannel {
    fn batchable(&self, a: &Topic, b: &Topic) -> bool {
        a.channel() == b.channel()
    }
}

/// Batches like [`SameChannel`], at most two topics per request.
struct TwoPerRequest;
impl ProtocolBatching for TwoPerRequest {
    fn batchable(&self, a: &Topic, b: &Topic) -> bool {
        a.channel() == b.channel()
    }
    fn batch_cap(&self) -> usize {
        2
    }
}

fn registry_with(n: usize) -> Registry {
    let mut r = Registry::new(4, 1 << 20);
    for i in 0..n {
        r.add(
            c(i as u64 + 1),
            Topic::new("ticker").symbol(format!("S{i}")),
            Queue::new(8, Overflow::DropOldest),
        );
    }
    r
}

#[test]
fn replay_is_in_creation_order_and_batches_only_when_allowed() {
    let mut r = registry_with(3);
    r.add(
        c(4),
        Topic::new("book").symbol("X"),
        Queue::new(8, Overflow::DropOldest),
    );
    assert_eq!(
        r.unsent_batches(&NoBatch),
        vec![cs(&[1]), cs(&[2]), cs(&[3]), cs(&[4])]
    );
    assert_eq!(
        r.unsent_batches(&SameChannel),
        vec![cs(&[1, 2, 3]), cs(&[4])]
    );
    // A cap starts a new request, still in creation order.
    assert_eq!(
        r.unsent_batches(&TwoPerRequest),
        vec![cs(&[1, 2]), cs(&[3]), cs(&[4])]
    );
}

#[test]
fn acks_route_and_a_disconnect_clears_every_server_id() {
    let mut r = registry_with(2);
    r.mark_sent(&cs(&[1]), req(10));
    r.mark_sent(&cs(&[2]), req(11));
    let a = r
        .on_subscribed(Some(req(10)), ServerId::Num(7), Some("ticker"), None)
        .map(|a| a.client_id);
    assert_eq!(a, Some(c(1)));
    assert_eq!(r.route(&ServerId::Num(7)), Route::To(c(1)));
    r.check_invariants().unwrap();
    r.on_disconnect();
    assert_eq!(r.route(&ServerId::Num(7)), Route::Unroutable);
    assert_eq!(r.unsent_batches(&NoBatch), vec![cs(&[1]), cs(&[2])]);
    r.check_invariants().unwrap();
}

#[test]
fn per_symbol_acks_of_one_request_all_match() {
    let mut r = registry_with(3);
    r.mark_sent(&cs(&[1, 2, 3]), req(5));
    for (sym, want) in [("S2", 3), ("S0", 1), ("S1", 2)] {
        let key = ServerId::Key(format!("ticker:{sym}").into());
        let got = r
            .on_subscribed(Some(req(5)), key, Some("ticker"), Some(sym))
            .map(|a| a.client_id);
        assert_eq!(got, Some(c(want)));
    }
    assert!(!r.any_pending());
    // A duplicate ack matches nothing.
    assert!(r
        .on_subscribed(Some(req(5)), ServerId::Num(1), None, None)
        .is_none());
}

#[test]
fn an_ack_that_names_another_symbol_matches_nobody_even_with_one_member_left() {
    let mut r = registry_with(2);
    r.mark_sent(&cs(&[1, 2]), req(9));
    let key = |s: &str| ServerId::Key(s.into());
    let first = r.on_subscribed(Some(req(9)), key("ticker:S0"), Some("ticker"), Some("S0"));
    assert_eq!(first.map(|a| a.client_id), Some(c(1)));
    // One member left, but the ack names another symbol: it is not S1's.
    let stray = r.on_subscribed(
        Some(req(9)),
        key("ticker:XBT/USD"),
        Some("ticker"),
        Some("XBT/USD"),
    );
    assert!(stray.is_none());
    // A repeated ack for S0 cannot take S1's place either.
    let repeated = r.on_subscribed(Some(req(9)), key("ticker:S0"), Some("ticker"), Some("S0"));
    assert!(repeated.is_none());
    assert_eq!(r.route(&key("ticker:S0")), Route::To(c(1)));
    assert!(r.is_pending(req(9)));
    r.check_invariants().unwrap();
}

#[test]
fn a_server_id_routed_to_a_live_subscription_is_never_re_pointed() {
    let mut r = registry_with(2);
    r.mark_sent(&cs(&[1]), req(1));
    r.mark_sent(&cs(&[2]), req(2));
    let a = r.on_subscribed(Some(req(1)), ServerId::Num(7), None, None);
    assert_eq!(a.map(|a| a.client_id), Some(c(1)));
    // The venue (or a hostile peer) acks request 2 with sid 7 again.
    assert!(r
        .on_subscribed(Some(req(2)), ServerId::Num(7), None, None)
        .is_none());
    assert_eq!(r.route(&ServerId::Num(7)), Route::To(c(1)));
    assert!(r.is_pending(req(2)));
    r.check_invariants().unwrap();
}

#[test]
fn an_ack_without_a_request_id_matches_by_channel_and_symbol() {
    let mut r = registry_with(2);
    r.mark_sent(&cs(&[1]), req(3));
    r.mark_sent(&cs(&[2]), req(4));
    let acked = r.on_subscribed(
        None,
        ServerId::Key("ticker:S1".into()),
        Some("ticker"),
        Some("S1"),
    );
    assert_eq!(acked.map(|a| a.client_id), Some(c(2)));
    assert!(r
        .on_subscribed(None, ServerId::Num(5), None, None)
        .is_none());
    r.check_invariants().unwrap();
}

#[test]
fn early_frames_wait_in_the_stash_and_come_out_with_the_ack() {
    let mut r = registry_with(1);
    r.mark_sent(&cs(&[1]), req(1));
    assert_eq!(r.route(&ServerId::Num(9)), Route::Stash);
    let frame = Frame::text("early", Some(1));
    let evicted = r.stash(Stashed {
        server_id: ServerId::Num(9),
        frame,
        book_break: None,
    });
    assert_eq!(evicted, 0);
    let acked = r
        .on_subscribed(Some(req(1)), ServerId::Num(9), None, None)
        .expect("acked");
    assert_eq!(acked.stashed.len(), 1);
    assert_eq!(r.stashed(), 0);
}

#[test]
fn a_break_between_frames_rides_on_the_newest_stashed_frame_of_its_server_id() {
    let mut r = registry_with(1);
    r.mark_sent(&cs(&[1]), req(1));
    for (id, text) in [(9, "first"), (9, "newest"), (8, "other")] {
        r.stash(Stashed {
            server_id: ServerId::Num(id),
            frame: Frame::text(text, None),
            book_break: None,
        });
    }
    let kind = BookBreak::Unusable { reason: "test" };
    assert!(r.stash_break(&ServerId::Num(9), kind));
    // One break per frame: a second one finds the newest frame taken.
    assert!(!r.stash_break(&ServerId::Num(9), kind));
    assert!(
        !r.stash_break(&ServerId::Num(7), kind),
        "nothing stashed for 7"
    );
    let acked = r
        .on_subscribed(Some(req(1)), ServerId::Num(9), None, None)
        .expect("acked");
    let breaks: Vec<_> = acked
        .stashed
        .iter()
        .map(|s| (s.frame.as_text().unwrap().to_owned(), s.book_break))
        .collect();
    assert_eq!(
        breaks,
        [
            ("first".to_owned(), None),
            ("newest".to_owned(), Some(kind))
        ]
    );
}

#[test]
fn the_stash_is_bounded() {
    let mut r = registry_with(1);
    r.mark_sent(&cs(&[1]), req(1));
    let mut evicted = 0;
    for i in 0..10 {
        let item = Stashed {
            server_id: ServerId::Num(i),
            frame: Frame::text("x", None),
            book_break: None,
        };
        evicted += r.stash(item);
    }
    assert_eq!((r.stashed(), evicted), (4, 6));
}

#[test]
fn the_stash_is_bounded_by_bytes_too() {
    let mut r = Registry::new(256, 100);
    r.add(
        c(1),
        Topic::new("ticker"),
        Queue::new(8, Overflow::DropOldest),
    );
    r.mark_sent(&cs(&[1]), req(1));
    let item = |n: usize| Stashed {
        server_id: ServerId::Num(9),
        frame: Frame::text("x".repeat(n), None),
        book_break: None,
    };
    let mut evicted = 0;
    for _ in 0..10 {
        evicted += r.stash(item(30));
    }
    // Three 30-byte frames fit in 100 bytes; the rest pushed the oldest out.
    assert_eq!((r.stashed(), r.stashed_bytes(), evicted), (3, 90, 7));
    // A frame larger than the whole budget is dropped itself.
    assert_eq!(r.stash(item(101)), 1);
    assert_eq!(r.stashed_bytes(), 90);
    r.check_invariants().unwrap();
}

#[test]
fn sequence_checks() {
    let mut r = registry_with(1);
    assert_eq!(r.check_seq(c(1), 5), SeqCheck::InOrder);
    assert_eq!(r.check_seq(c(1), 6), SeqCheck::InOrder);
    assert_eq!(r.check_seq(c(1), 6), SeqCheck::Duplicate);
    assert_eq!(
        r.check_seq(c(1), 9),
        SeqCheck::Gap {
            last_seq: 6,
            next_seq: 9
        }
    );
    // Below the last one: a stale repeat, which does not move the last
    // number back, so the next in-order frame is not a false gap.
    assert_eq!(r.check_seq(c(1), 2), SeqCheck::Duplicate);
    assert_eq!(r.check_seq(c(1), 10), SeqCheck::InOrder);
}

#[test]
fn a_control_frame_takes_only_the_next_number_of_its_sequence() {
    let mut r = registry_with(2);
    r.mark_sent(&cs(&[1]), req(1));
    assert!(r
        .on_subscribed(Some(req(1)), ServerId::Num(7), None, None)
        .is_some());
    // Nothing seen yet: nothing to follow.
    r.note_control_seq(&ServerId::Num(7), 3);
    assert_eq!(r.check_seq(c(1), 1), SeqCheck::InOrder);
    // The next number: the data frame after it is in order.
    r.note_control_seq(&ServerId::Num(7), 2);
    assert_eq!(r.check_seq(c(1), 3), SeqCheck::InOrder);
    // Any other number is ignored: it neither hides a gap nor makes the
    // next frame a duplicate.
    r.note_control_seq(&ServerId::Num(7), 9);
    r.note_control_seq(&ServerId::Num(7), 1);
    assert_eq!(r.check_seq(c(1), 4), SeqCheck::InOrder);
    r.note_control_seq(&ServerId::Num(7), 6);
    assert_eq!(
        r.check_seq(c(1), 6),
        SeqCheck::Gap {
            last_seq: 4,
            next_seq: 6
        }
    );
    // A server id nobody holds: nothing happens.
    r.note_control_seq(&ServerId::Num(8), 1);
    assert_eq!(r.check_seq(c(2), 1), SeqCheck::InOrder);
    r.check_invariants().unwrap();
}

#[test]
fn a_rejection_removes_only_the_named_symbol() {
    let mut r = registry_with(2);
    r.mark_sent(&cs(&[1, 2]), req(3));
    let (id, op, _) = r.on_rejected(Some(req(3)), Some("S1")).expect("matched");
    assert_eq!((id, op), (c(2), SubscriptionOp::Subscribe));
    assert!(r.is_pending(req(3)));
    assert_eq!(r.len(), 1);
    r.check_invariants().unwrap();
}

#[test]
fn a_retopic_changes_what_is_replayed_but_not_the_identity() {
    let mut r = registry_with(1);
    r.mark_sent(&cs(&[1]), req(1));
    assert!(r
        .on_subscribed(Some(req(1)), ServerId::Num(9), Some("ticker"), None)
        .is_some());
    let wider = Topic::new("ticker").param("market_tickers", serde_json::json!(["S0", "T"]));
    assert_eq!(r.retopic(&ServerId::Num(9), wider.clone()), Some(c(1)));
    // Another channel, or a server id nobody holds: ignored.
    assert_eq!(r.retopic(&ServerId::Num(9), Topic::new("trade")), None);
    assert_eq!(r.retopic(&ServerId::Num(8), wider.clone()), None);
    assert_eq!(r.get(c(1)).map(|e| &e.topic), Some(&wider));
    // Still the holder of its first topic, and a replay sends the new one.
    assert_eq!(r.holder_of(&Topic::new("ticker").symbol("S0")), Some(c(1)));
    assert_eq!(r.holder_of(&wider), None);
    r.on_disconnect();
    assert_eq!(r.unsent_batches(&NoBatch), vec![cs(&[1])]);
    assert_eq!(r.get(c(1)).map(|e| &e.topic), Some(&wider));
    assert!(r.remove(c(1)).is_some());
    assert_eq!(r.holder_of(&Topic::new("ticker").symbol("S0")), None);
    r.check_invariants().unwrap();
}
