//! `kalshi_classify`: every line a Kalshi frame, plus encode/classify round trips.

use std::borrow::Cow;

use serde_json::json;

use super::{check_inbound, check_venue_errors, numbers_for, parse_json, sample, ROUND_TRIPS};
use resilient_ws::protocol::{Inbound, Kalshi, Protocol, Request, ServerId, Topic};
use resilient_ws::VenueError;

/// Classifies every line of the input as a Kalshi frame, and round-trips each
/// line's text through the encoders and through server frames that carry it.
///
/// # Panics
///
/// When an invariant breaks.
pub fn kalshi_classify(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut kalshi = Kalshi::new();
    for (n, line) in text.split('\n').enumerate() {
        let round_trip = n < ROUND_TRIPS;
        let inbound = kalshi.classify(line);
        check_inbound(&inbound);
        // Kalshi classification keeps no state: the same frame, the same verdict.
        assert_eq!(inbound, Kalshi::new().classify(line), "{line:.200}");
        if let Inbound::Subscribed {
            channel: Some(channel),
            ..
        } = &inbound
        {
            if round_trip {
                kalshi_round_trip(channel);
            }
        }
        if round_trip {
            kalshi_round_trip(sample(line));
        }
        check_venue_errors(line);
    }
}

fn kalshi_round_trip(s: &str) {
    let (req_id, sid, seq) = numbers_for(s);
    let mut kalshi = Kalshi::new();

    // Our frames carry arbitrary text intact.
    let topic = Topic::new(s).symbol(s);
    let sub = parse_json(&kalshi.encode_subscribe(&[&topic], req_id));
    assert_eq!(sub["id"], json!(req_id));
    assert_eq!(sub["cmd"], json!("subscribe"));
    assert_eq!(sub["params"]["channels"], json!([s]));
    assert_eq!(sub["params"]["market_tickers"], json!([s]));
    let unsub = kalshi
        .encode_unsubscribe(&topic, &ServerId::Num(sid), req_id)
        .expect("kalshi unsubscribes by sid");
    let unsub = parse_json(&unsub);
    assert_eq!(
        (&unsub["id"], &unsub["params"]["sids"]),
        (&json!(req_id), &json!([sid]))
    );
    let request = Request::new(s, Some(json!({ "text": s })));
    let encoded = kalshi
        .encode_request(&request, req_id)
        .expect("kalshi encodes any request");
    let encoded = parse_json(&encoded);
    assert_eq!(
        (&encoded["id"], &encoded["cmd"], &encoded["params"]["text"]),
        (&json!(req_id), &json!(s), &json!(s))
    );

    // Server frames built around arbitrary text classify as what they are.
    let ack =
        json!({"id": req_id, "type": "subscribed", "msg": {"channel": s, "sid": sid}}).to_string();
    assert_eq!(
        kalshi.classify(&ack),
        Inbound::Subscribed {
            req_id: Some(req_id),
            server_id: ServerId::Num(sid),
            channel: Some(Cow::Borrowed(s)),
            symbol: None,
        }
    );
    let error = json!({"id": req_id, "type": "error", "msg": {"code": 8, "msg": s}}).to_string();
    assert_eq!(
        kalshi.classify(&error),
        Inbound::Rejected {
            req_id: Some(req_id),
            symbol: None,
            error: VenueError::kalshi(Some(8), s),
        }
    );
    // A terminal error naming a sid ends that subscription, whatever its text.
    let ended =
        json!({"type": "error", "sid": sid, "seq": seq, "msg": {"code": 25, "msg": s}}).to_string();
    assert_eq!(
        kalshi.classify(&ended),
        Inbound::Ended {
            server_id: ServerId::Num(sid),
            error: VenueError::kalshi(Some(25), s),
        }
    );
    // An `ok` naming a sid and seq took that number of its sequence.
    let ok =
        json!({"id": req_id, "sid": sid, "seq": seq, "type": "ok", "msg": {"market_tickers": [s]}})
            .to_string();
    assert_eq!(
        kalshi.classify(&ok),
        Inbound::Sequenced {
            server_id: ServerId::Num(sid),
            seq,
            then: Box::new(Inbound::Response {
                req_id,
                error: None
            }),
        }
    );
    let data = json!({"type": "ticker", "sid": sid, "seq": seq, "msg": {"text": s}}).to_string();
    let msg = json!({"text": s}).to_string();
    assert_eq!(
        kalshi.classify(&data),
        Inbound::Data {
            server_id: ServerId::Num(sid),
            seq: Some(seq),
            book_break: None,
            payload: Some(&msg),
        }
    );
}
