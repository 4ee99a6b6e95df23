//! `weex_book`: the WEEX depth book against the naive model in
//! `model/ordered_book.rs` (a `BTreeMap` keyed by exact decimal value), two
//! ways:
//! - the real `DepthBook`, with a small cap from the input so the cap is
//!   reached, after every push;
//! - the whole adapter: the same pushes as V3 JSON frames with chained
//!   `U`/`u` through [`Weex::classify`](resilient_ws::Weex), read back through its
//!   [`BookViews`](resilient_ws::BookViews): the view equals the model while the
//!   chain holds, is cleared (and the push reported as a break) on an
//!   update-id gap (a `Discontinuity` naming the previous `u` and the push's
//!   `U`) or a push it cannot apply (`Unusable`), and stays cleared until the
//!   next snapshot.
//!
//! Input: the first line is the cap (8 if unreadable, at most 64); then one
//! line per push: `S` (snapshot), `C` (change) or `G` (a change whose `U`
//! skips ahead: a lost push), the ask levels, `|`, the bid levels, each
//! level `price:qty` as wire text. Other lines are skipped.

use super::model::decimal as reference;
use super::model::ordered_book::{OrderedBook, TextLevels};
use resilient_ws::decimal::{MAX_SCALE, MAX_TEXT_LEN};
use resilient_ws::fuzzing::DepthBook;
use resilient_ws::protocol::weex::MAX_LEVELS_PER_SIDE;
use resilient_ws::{BookBreak, Inbound, Protocol, Topic, Weex};

/// At most this many pushes per input.
const MAX_PUSHES: usize = 64;

/// What the reference says of one price or quantity text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Validity {
    /// A non-negative decimal that surely fits a `Decimal`.
    Valid,
    /// Not one (syntax, sign, too long, surely out of range).
    Invalid,
    /// At the `i128` edge (39 digits): the magnitude decides.
    Edge,
}

fn validity(text: &str) -> Validity {
    if text.len() > MAX_TEXT_LEN {
        return Validity::Invalid;
    }
    let Some(value) = reference::parse(text) else {
        return Validity::Invalid;
    };
    if value.negative {
        return Validity::Invalid;
    }
    if value.int.is_empty() && value.frac.is_empty() {
        return Validity::Valid;
    }
    if value.sent_scale > i64::from(MAX_SCALE) {
        return Validity::Invalid;
    }
    match value.mantissa_digits {
        0..=38 => Validity::Valid,
        39 => Validity::Edge,
        _ => Validity::Invalid,
    }
}

/// The worst validity of a push's levels.
fn push_validity(asks: &[(&str, &str)], bids: &[(&str, &str)]) -> Validity {
    let mut worst = Validity::Valid;
    for &(price, qty) in asks.iter().chain(bids) {
        for text in [price, qty] {
            match validity(text) {
                Validity::Invalid => return Validity::Invalid,
                Validity::Edge => worst = Validity::Edge,
                Validity::Valid => {}
            }
        }
    }
    worst
}

fn text_levels<'a>(levels: impl Iterator<Item = (&'a str, &'a str)>) -> TextLevels {
    levels.map(|(p, q)| (p.to_owned(), q.to_owned())).collect()
}

/// One push of the input.
struct Push<'a> {
    kind: char,
    asks: Vec<(&'a str, &'a str)>,
    bids: Vec<(&'a str, &'a str)>,
}

fn parse_line(line: &str) -> Option<Push<'_>> {
    let mut words = line.split_whitespace();
    let kind = match words.next()? {
        "S" | "s" => 'S',
        "C" | "c" => 'C',
        "G" | "g" => 'G',
        _ => return None,
    };
    let (mut asks, mut bids) = (Vec::new(), Vec::new());
    let mut side = &mut asks;
    for word in words {
        if word == "|" {
            side = &mut bids;
            continue;
        }
        side.push(word.split_once(':').unwrap_or((word, "")));
    }
    Some(Push { kind, asks, bids })
}

/// Fuzz entry point: see the module docs.
///
/// # Panics
///
/// When the book or the view differs from the model.
pub fn weex_book(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let cap = lines
        .next()
        .and_then(|l| l.trim().parse::<usize>().ok())
        .unwrap_or(8)
        .min(64);
    let pushes: Vec<Push<'_>> = lines.filter_map(parse_line).take(MAX_PUSHES).collect();
    direct(&pushes, cap);
    through_the_adapter(&pushes);
}

/// The real `DepthBook` with `cap`, against the model.
fn direct(pushes: &[Push<'_>], cap: usize) {
    let mut book = DepthBook::with_cap(cap);
    let mut model = OrderedBook::default();
    for push in pushes {
        let snapshot = push.kind == 'S';
        let before = (text_levels(book.asks()), text_levels(book.bids()));
        let result = if snapshot {
            book.apply_snapshot(&push.asks, &push.bids)
        } else {
            book.apply_changes(&push.asks, &push.bids)
        };
        match (result, push_validity(&push.asks, &push.bids)) {
            (Ok(()), Validity::Valid | Validity::Edge) => {
                model.apply(snapshot, &push.asks, &push.bids, cap);
            }
            (Err(_), Validity::Invalid | Validity::Edge) => {
                let after = (text_levels(book.asks()), text_levels(book.bids()));
                assert_eq!(before, after, "a refused push altered the book");
            }
            (result, validity) => panic!(
                "book said {result:?}, the model says {validity:?}: {:?} | {:?}",
                push.asks, push.bids
            ),
        }
        assert!(book.asks().len() <= cap && book.bids().len() <= cap);
        assert_eq!(text_levels(book.asks()), model.asks(), "asks");
        assert_eq!(text_levels(book.bids()), model.bids(), "bids");
    }
}

/// The adapter and its views, against the model and the update-id rules.
fn through_the_adapter(pushes: &[Push<'_>]) {
    let mut weex = Weex::new();
    let topic = Topic::new("depth").symbol("ETHUSDT");
    let _ = weex.encode_subscribe(&[&topic], 1);
    let view = weex.book_views().watch("ETHUSDT", MAX_LEVELS_PER_SIDE);
    let mut model = OrderedBook::default();
    // The model's chain: `Some(last u)` while it holds.
    let mut chain: Option<u64> = None;
    let mut updates = 0u64;
    let mut next_id = 1u64;
    for (time, push) in (1u64..).zip(pushes) {
        let snapshot = push.kind == 'S';
        let first = match (push.kind, chain) {
            ('S', _) => next_id,
            ('G', Some(last)) => last + 1,
            (_, Some(last)) => last,
            (_, None) => next_id,
        };
        let last = first + 2;
        next_id = last + 1;
        let frame = serde_json::json!({
            "e": if snapshot { "depthSnapshot" } else { "depth" },
            "E": time,
            "s": "ETHUSDT",
            "U": first,
            "u": last,
            "l": 15,
            "d": if snapshot { "SNAPSHOT" } else { "CHANGED" },
            "b": push.bids.iter().map(|(p, q)| [p, q]).collect::<Vec<_>>(),
            "a": push.asks.iter().map(|(p, q)| [p, q]).collect::<Vec<_>>(),
        })
        .to_string();
        let verdict = match weex.classify(&frame) {
            Inbound::Data { book_break, .. } => book_break,
            other => panic!("a depth push classified as {other:?}"),
        };
        // JSON escapes in a level's text are refused by the adapter: no
        // decimal needs one, so such a level is invalid either way.
        let validity = push_validity(&push.asks, &push.bids);
        let applies = snapshot || chain.is_some();
        let gap = push.kind == 'G' && chain.is_some();
        match (applies, gap, validity, verdict) {
            (false, _, _, None) => {}
            (true, true, _, Some(BookBreak::Discontinuity { expected, got })) => {
                let ids = chain.map(|last| (last as i64, first as i64));
                assert_eq!(Some((expected, got)), ids, "the break names other ids");
                chain = None;
            }
            (true, false, Validity::Valid, None) | (true, false, Validity::Edge, None) => {
                model.apply(snapshot, &push.asks, &push.bids, MAX_LEVELS_PER_SIDE);
                chain = Some(last);
                updates = if snapshot { 1 } else { updates + 1 };
            }
            (true, false, Validity::Invalid | Validity::Edge, Some(BookBreak::Unusable { .. })) => {
                chain = None;
            }
            (applies, gap, validity, verdict) => panic!(
                "adapter said {verdict:?}; the model: applies {applies}, gap {gap}, {validity:?}"
            ),
        }
        match (view.latest(), chain) {
            (None, None) => {}
            (Some(top), Some(_)) => {
                assert_eq!(text_levels(top.asks()), model.asks(), "view asks");
                assert_eq!(text_levels(top.bids()), model.bids(), "view bids");
                assert_eq!(top.updates(), updates);
                assert_eq!(
                    top.venue_time(),
                    Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(time))
                );
                assert_eq!(top.ask_levels().count(), top.asks().len());
                assert_eq!(top.bid_levels().count(), top.bids().len());
            }
            (top, chain) => panic!("view {top:?} while the model's chain is {chain:?}"),
        }
    }
}
