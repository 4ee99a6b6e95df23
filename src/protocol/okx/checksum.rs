//! The OKX v5 order-book checksum.
//!
//! CRC-32 (ISO-HDLC, as zlib's `crc32`) of the first [`CHECKSUM_LEVELS`] bids
//! and asks, interleaved best first as `bid1px:bid1sz:ask1px:ask1sz:..`;
//! when one side runs out, the other side's remaining levels follow. Prices
//! and sizes are used exactly as sent (`0.5000` stays `0.5000`). OKX sends the
//! result as a signed 32-bit integer; here it is the same 32 bits unsigned.

use crate::protocol::kraken::Book;

/// How many levels of each side the checksum covers.
pub const CHECKSUM_LEVELS: usize = 25;

/// The checksum of levels given best first, each as (price text, size text).
///
/// The check string of OKX's documented example is
/// `3366.1:7:3366.8:9:3366:6:3368:8`:
///
/// ```
/// use resilient_ws::protocol::okx::checksum_levels;
/// let crc = checksum_levels(&[("3366.1", "7"), ("3366", "6")], &[("3366.8", "9"), ("3368", "8")]);
/// assert_eq!(crc, crc32fast::hash(b"3366.1:7:3366.8:9:3366:6:3368:8"));
/// ```
pub fn checksum_levels(bids: &[(&str, &str)], asks: &[(&str, &str)]) -> u32 {
    checksum_of(bids.iter().copied(), asks.iter().copied())
}

/// The checksum of a book's top levels.
pub fn checksum(book: &Book) -> u32 {
    checksum_of(
        book.bids().map(|l| (l.price(), l.qty())),
        book.asks().map(|l| (l.price(), l.qty())),
    )
}

fn checksum_of<'a>(
    bids: impl Iterator<Item = (&'a str, &'a str)>,
    asks: impl Iterator<Item = (&'a str, &'a str)>,
) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    let mut first = true;
    let mut feed = |(price, size): (&str, &str)| {
        if !first {
            hasher.update(b":");
        }
        first = false;
        hasher.update(price.as_bytes());
        hasher.update(b":");
        hasher.update(size.as_bytes());
    };
    let mut bids = bids.take(CHECKSUM_LEVELS);
    let mut asks = asks.take(CHECKSUM_LEVELS);
    loop {
        let (bid, ask) = (bids.next(), asks.next());
        if bid.is_none() && ask.is_none() {
            break;
        }
        bid.into_iter().chain(ask).for_each(&mut feed);
    }
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain model: build the documented check string, then hash it.
    fn model(bids: &[(&str, &str)], asks: &[(&str, &str)]) -> u32 {
        let mut parts = Vec::new();
        for i in 0..CHECKSUM_LEVELS {
            if let Some((p, s)) = bids.get(i) {
                parts.push(format!("{p}:{s}"));
            }
            if let Some((p, s)) = asks.get(i) {
                parts.push(format!("{p}:{s}"));
            }
        }
        crc32fast::hash(parts.join(":").as_bytes())
    }

    #[test]
    fn the_documented_examples() {
        // OKX v5 docs, "Order book channel" > "Checksum", example 1 and 2.
        let crc = checksum_levels(
            &[("3366.1", "7"), ("3366", "6")],
            &[("3366.8", "9"), ("3368", "8")],
        );
        assert_eq!(crc, crc32fast::hash(b"3366.1:7:3366.8:9:3366:6:3368:8"));
        // The same example in OKEx's earlier (v3) docs states the value.
        assert_eq!(crc as i32, -1_881_014_294);
        let crc = checksum_levels(
            &[("3366.1", "7")],
            &[("3366.8", "9"), ("3368", "8"), ("3372", "8")],
        );
        assert_eq!(crc, crc32fast::hash(b"3366.1:7:3366.8:9:3368:8:3372:8"));
        assert_eq!(crc as i32, 831_078_360);
    }

    #[test]
    fn matches_the_model_on_uneven_and_deep_books() {
        let texts: Vec<(String, String)> = (0..40)
            .map(|i| (format!("{}.5", 1000 - i), format!("0.{i:04}")))
            .collect();
        let levels: Vec<(&str, &str)> = texts
            .iter()
            .map(|(p, s)| (p.as_str(), s.as_str()))
            .collect();
        for (nb, na) in [(0, 0), (0, 3), (3, 0), (40, 1), (1, 40), (25, 25), (40, 40)] {
            let (bids, asks) = (&levels[..nb], &levels[40 - na..]);
            assert_eq!(checksum_levels(bids, asks), model(bids, asks), "{nb}/{na}");
        }
    }
}
