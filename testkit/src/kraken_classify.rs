//! `kraken_classify`: Kraken frames on two adapters side by side, with the
//! adapter calls the session makes, and book frames checked against their book.

use std::borrow::Cow;

use serde_json::{json, Value};

use super::kraken_book::check_book;
use super::{check_inbound, check_venue_errors, numbers_for, parse_json, sample, ROUND_TRIPS};
use resilient_ws::protocol::{BookBreak, Inbound, Kraken, Protocol, ServerId, Topic};
use resilient_ws::VenueError;

/// Classifies every line as a Kraken frame on two adapters side by side (they
/// must agree: no hidden state), with `#` lines as adapter calls the supervisor
/// makes: `#sub CHANNEL DEPTH|- SYMBOL...` (encode a subscribe), `#unsub
/// CHANNEL [SYMBOL]` (forget and encode the unsubscribe), `#forget KEY`, `#reset`.
///
/// After each book frame the book is checked; a single-item book frame that
/// classified without a checksum verdict must match its book's checksum.
///
/// # Panics
///
/// When an invariant breaks.
pub fn kraken_classify(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut a = Kraken::new();
    let mut b = Kraken::new();
    let mut req_id = 1u64;
    for (n, line) in text.split('\n').enumerate() {
        let round_trip = n < ROUND_TRIPS;
        if let Some(command) = line.strip_prefix('#') {
            req_id += 1;
            kraken_command(&mut a, command, req_id);
            kraken_command(&mut b, command, req_id);
            continue;
        }
        let inbound = a.classify(line);
        check_inbound(&inbound);
        assert_eq!(
            inbound,
            b.classify(line),
            "two adapters disagree on {line:.200}"
        );
        match &inbound {
            Inbound::Subscribed {
                server_id,
                channel: Some(channel),
                symbol,
                ..
            } => {
                assert_eq!(*server_id, Kraken::server_id(channel, symbol.as_deref()));
                if round_trip {
                    kraken_round_trip(channel);
                }
            }
            Inbound::Subscribed { channel: None, .. } => {
                panic!("a kraken ack without a channel: {line:.200}")
            }
            Inbound::Data {
                server_id,
                book_break,
                ..
            } => check_book_frame(&a, line, server_id, *book_break),
            _ => {}
        }
        if round_trip {
            kraken_round_trip(sample(line));
        }
        check_venue_errors(line);
    }
}

pub(super) fn kraken_command(kraken: &mut Kraken, command: &str, req_id: u64) {
    let mut words = command.split_whitespace();
    match words.next() {
        Some("sub") => {
            let Some(channel) = words.next() else { return };
            let depth = words.next().and_then(|d| d.parse::<u64>().ok());
            let topics: Vec<Topic> = words
                .map(|symbol| {
                    let topic = Topic::new(channel).symbol(symbol);
                    match depth {
                        Some(depth) => topic.param("depth", depth),
                        None => topic,
                    }
                })
                .collect();
            let topics = if topics.is_empty() {
                vec![Topic::new(channel)]
            } else {
                topics
            };
            // One request per batchable run, as the registry groups them.
            let mut start = 0;
            while start < topics.len() {
                let mut end = start + 1;
                while end < topics.len() && kraken.can_batch(&topics[start], &topics[end]) {
                    end += 1;
                }
                let batch: Vec<&Topic> = topics[start..end].iter().collect();
                let frame = parse_json(&kraken.encode_subscribe(&batch, req_id));
                assert_eq!(frame["method"], json!("subscribe"));
                assert_eq!(frame["params"]["channel"], json!(channel));
                assert_eq!(frame["req_id"], json!(req_id));
                start = end;
            }
        }
        Some("unsub") => {
            let Some(channel) = words.next() else { return };
            let topic = match words.next() {
                Some(symbol) => Topic::new(channel).symbol(symbol),
                None => Topic::new(channel),
            };
            let server_id = Kraken::server_id(channel, topic.symbol_name());
            kraken.forget(&server_id);
            if let Some(frame) = kraken.encode_unsubscribe(&topic, &server_id, req_id) {
                let frame = parse_json(&frame);
                assert_eq!(frame["method"], json!("unsubscribe"));
                assert_eq!(frame["params"]["channel"], json!(channel));
            }
        }
        Some("forget") => {
            let key = words.next().unwrap_or_default();
            kraken.forget(&ServerId::Key(key.into()));
        }
        Some("reset") => kraken.reset(),
        _ => {}
    }
}

/// Checks the book a book frame touched, and that a frame classified as
/// verified really carried its book's checksum.
fn check_book_frame(kraken: &Kraken, line: &str, server_id: &ServerId, verdict: Option<BookBreak>) {
    let ServerId::Key(key) = server_id else {
        panic!("kraken routes by key, got {server_id:?}");
    };
    let Some(symbol) = key.strip_prefix("book:") else {
        return;
    };
    let Some(book) = kraken.book(symbol) else {
        return;
    };
    check_book(book);
    if verdict.is_some() {
        return;
    }
    let Ok(frame) = serde_json::from_str::<Value>(line) else {
        return;
    };
    let is_method = frame.get("method").is_some_and(Value::is_string);
    if is_method || frame.get("channel") != Some(&json!("book")) {
        return;
    }
    let Some([item]) = frame
        .get("data")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    else {
        return;
    };
    if item.get("symbol").and_then(Value::as_str) != Some(symbol) {
        return;
    }
    let expected = match item.get("checksum") {
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Some(Value::String(s)) => s.parse::<u32>().ok(),
        _ => None,
    };
    if let Some(expected) = expected {
        assert_eq!(
            book.checksum(),
            expected,
            "a frame passed verification with another checksum: {line:.300}"
        );
    }
}

fn kraken_round_trip(s: &str) {
    let (req_id, _, _) = numbers_for(s);
    let mut kraken = Kraken::new();

    let topic = Topic::new(s).symbol(s);
    let sub = parse_json(&kraken.encode_subscribe(&[&topic], req_id));
    assert_eq!(
        (&sub["method"], &sub["req_id"]),
        (&json!("subscribe"), &json!(req_id))
    );
    assert_eq!(
        (&sub["params"]["channel"], &sub["params"]["symbol"]),
        (&json!(s), &json!([s]))
    );
    let unsub = kraken
        .encode_unsubscribe(&topic, &Kraken::server_id(s, Some(s)), req_id)
        .expect("kraken unsubscribes by topic");
    let unsub = parse_json(&unsub);
    assert_eq!(
        (&unsub["method"], &unsub["params"]["symbol"]),
        (&json!("unsubscribe"), &json!([s]))
    );
    let ping = parse_json(
        &kraken
            .encode_ping(req_id)
            .expect("kraken has an app-level ping"),
    );
    assert_eq!(
        (&ping["method"], &ping["req_id"]),
        (&json!("ping"), &json!(req_id))
    );

    let mut kraken = Kraken::new();
    let ack = json!({"method": "subscribe", "result": {"channel": s, "symbol": s}, "success": true, "req_id": req_id});
    assert_eq!(
        kraken.classify(&ack.to_string()),
        Inbound::Subscribed {
            req_id: Some(req_id),
            server_id: Kraken::server_id(s, Some(s)),
            channel: Some(Cow::Borrowed(s)),
            symbol: Some(Cow::Borrowed(s)),
        }
    );
    let reject =
        json!({"error": s, "method": "subscribe", "success": false, "symbol": s, "req_id": req_id});
    assert_eq!(
        kraken.classify(&reject.to_string()),
        Inbound::Rejected {
            req_id: Some(req_id),
            symbol: Some(Cow::Borrowed(s)),
            error: VenueError::kraken(s),
        }
    );
    let data = json!({"channel": "ticker", "type": "update", "data": [{"symbol": s, "last": 1.5}]});
    let items = json!([{"symbol": s, "last": 1.5}]).to_string();
    assert_eq!(
        kraken.classify(&data.to_string()),
        Inbound::Data {
            server_id: Kraken::server_id("ticker", Some(s)),
            seq: None,
            book_break: None,
            payload: Some(&items),
        }
    );
    let pong = json!({"method": "pong", "req_id": req_id});
    assert_eq!(kraken.classify(&pong.to_string()), Inbound::Pong);
}
