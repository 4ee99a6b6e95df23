//! OKX v5 `classify` on arbitrary frames, through the public adapter API:
//! never panics, keeps books only for the subscribed instrument, and the
//! fast checksum over a kept book equals the plain one computed from its
//! levels (differential).

use resilient_ws::protocol::okx::{checksum, checksum_levels};
use resilient_ws::{Okx, Protocol, Topic};

/// Fuzz entry point: see the module docs.
pub fn okx_classify(data: &[u8]) {
    let mut okx = Okx::new();
    let _ = okx.encode_subscribe(&[&Topic::new("books").symbol("BTC-USDT")], 1);
    let _ = okx.encode_subscribe(&[&Topic::new("trades").symbol("BTC-USDT")], 2);
    // A channel subscribed by instrument type: acks and pushes naming a type
    // take the scoped route.
    let by_type = Topic::new("instruments").param("instType", "SPOT");
    let _ = okx.encode_subscribe(&[&by_type], 3);
    for frame in data.split(|b| *b == 0xff) {
        let Ok(text) = std::str::from_utf8(frame) else {
            continue;
        };
        let _ = okx.classify(text);
        if let Some(book) = okx.book("books", "BTC-USDT") {
            let bids: Vec<(&str, &str)> = book.bids().map(|l| (l.price(), l.qty())).collect();
            let asks: Vec<(&str, &str)> = book.asks().map(|l| (l.price(), l.qty())).collect();
            assert!(bids.len() <= 400 && asks.len() <= 400);
            assert_eq!(checksum(book), checksum_levels(&bids, &asks));
        }
        assert!(okx.book("books", "ETH-USDT").is_none());
    }
}
