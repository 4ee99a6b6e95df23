//! The emulated Kraken order book: Kraken's published example book, one level
//! changed per update (alternating sides), and the CRC32 checksum computed with
//! the library's own `checksum_levels` over the top ten levels, rendered in
//! Kraken's text form. The emulator and the client therefore agree only when
//! both render prices and quantities the way Kraken documents.

use resilient_ws::protocol::kraken::checksum_levels;
use serde_json::Value;

use super::state::State;

const BOOK_SNAPSHOT_TS: &str = "2023-10-06T17:35:55.440295Z";
const BOOK_UPDATE_TS: &str = "2023-10-06T17:35:56.101010Z";

/// Kraken's published example book: prices in tenths, quantities in 1e-8 units.
const DEFAULT_ASKS: [(u64, u64); 10] = [
    (452_852, 100_000),
    (452_864, 154_571_953),
    (452_866, 154_571_109),
    (452_896, 154_560_911),
    (452_902, 15_890_660),
    (452_918, 154_553_491),
    (452_947, 4_454_749),
    (452_961, 35_380_000),
    (452_975, 9_945_542),
    (452_995, 18_772_827),
];
const DEFAULT_BIDS: [(u64, u64); 10] = [
    (452_835, 10_000_000),
    (452_834, 154_582_015),
    (452_821, 10_000_000),
    (452_810, 10_000_000),
    (452_803, 154_592_586),
    (452_790, 7_990_000),
    (452_776, 3_310_103),
    (452_775, 30_000_000),
    (452_773, 154_602_737),
    (452_766, 15_445_238),
];

pub(super) struct Book {
    /// Ascending by price.
    asks: Vec<(u64, u64)>,
    /// Descending by price.
    bids: Vec<(u64, u64)>,
    step: u64,
}

fn price_text(p: u64) -> String {
    format!("{}.{}", p / 10, p % 10)
}

fn qty_text(q: u64) -> String {
    format!("{}.{:08}", q / 100_000_000, q % 100_000_000)
}

fn levels_json(levels: &[(u64, u64)]) -> String {
    let items: Vec<String> = levels
        .iter()
        .map(|&(p, q)| format!(r#"{{"price":{},"qty":{}}}"#, price_text(p), qty_text(q)))
        .collect();
    format!("[{}]", items.join(","))
}

impl Book {
    pub(super) fn new() -> Book {
        Book {
            asks: DEFAULT_ASKS.to_vec(),
            bids: DEFAULT_BIDS.to_vec(),
            step: 0,
        }
    }

    pub(super) fn checksum(&self) -> u32 {
        let text = |l: &[(u64, u64)]| -> Vec<(String, String)> {
            l.iter()
                .take(10)
                .map(|&(p, q)| (price_text(p), qty_text(q)))
                .collect()
        };
        let asks = text(&self.asks);
        let bids = text(&self.bids);
        let a: Vec<(&str, &str)> = asks.iter().map(|(p, q)| (p.as_str(), q.as_str())).collect();
        let b: Vec<(&str, &str)> = bids.iter().map(|(p, q)| (p.as_str(), q.as_str())).collect();
        checksum_levels(&a, &b)
    }

    /// Changes one level's qty (alternating sides); returns (is_ask, level).
    fn mutate(&mut self) -> (bool, (u64, u64)) {
        let k = self.step;
        self.step += 1;
        let is_ask = k % 2 == 0;
        let side = if is_ask {
            &mut self.asks
        } else {
            &mut self.bids
        };
        let idx = ((k / 2) as usize) % side.len();
        side[idx].1 += 1_000_000;
        (is_ask, side[idx])
    }
}

impl State {
    fn take_checksum(&mut self, symbol: &str, checksum: u32) -> u32 {
        if self.corrupt.remove(symbol) {
            checksum.wrapping_add(1)
        } else {
            checksum
        }
    }

    pub(super) fn book_snapshot(&mut self, symbol: &str) -> String {
        let book = self
            .books
            .entry(symbol.to_owned())
            .or_insert_with(Book::new);
        let (bids, asks, cs) = (
            levels_json(&book.bids),
            levels_json(&book.asks),
            book.checksum(),
        );
        let cs = self.take_checksum(symbol, cs);
        format!(
            r#"{{"channel":"book","type":"snapshot","data":[{{"symbol":{},"bids":{},"asks":{},"checksum":{},"timestamp":"{}"}}]}}"#,
            Value::from(symbol),
            bids,
            asks,
            cs,
            BOOK_SNAPSHOT_TS
        )
    }

    pub(super) fn book_update(&mut self, symbol: &str) -> String {
        let book = self
            .books
            .entry(symbol.to_owned())
            .or_insert_with(Book::new);
        let (is_ask, level) = book.mutate();
        let cs = book.checksum();
        let cs = self.take_checksum(symbol, cs);
        let changed = levels_json(&[level]);
        let (bids, asks) = if is_ask {
            ("[]".to_owned(), changed)
        } else {
            (changed, "[]".to_owned())
        };
        format!(
            r#"{{"channel":"book","type":"update","data":[{{"symbol":{},"bids":{},"asks":{},"checksum":{},"timestamp":"{}"}}]}}"#,
            Value::from(symbol),
            bids,
            asks,
            cs,
            BOOK_UPDATE_TS
        )
    }
}
