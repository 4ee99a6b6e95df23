//! Subjects: `{prefix}.{venue}.{channel}.{instrument}`, each token made safe.
//!
//! A NATS subject token cannot be empty and cannot contain whitespace, `.`,
//! `*` or `>` (they separate tokens or are wildcards). [`token`] keeps every
//! printable ASCII character except those and `~`, and writes any other byte
//! as `~` followed by two upper-case hex digits; an empty name becomes `~`.
//! The mapping is injective (two different names never share a token) and
//! reversible ([`untoken`]), so a reader can recover the venue's symbol:
//!
//! | name | token |
//! |---|---|
//! | `BTC/USD` | `BTC/USD` |
//! | `BTC-USDT-SWAP` | `BTC-USDT-SWAP` |
//! | `KXBTC.2026` | `KXBTC~2E2026` |
//! | `a b` | `a~20b` |
//! | `~` | `~7E` |
//! | (no instrument) | `~` |

use std::fmt::Write as _;

/// `name` as one safe subject token (see the module docs).
pub fn token(name: &str) -> String {
    if name.is_empty() {
        return "~".to_owned();
    }
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        let keep = byte.is_ascii_graphic() && !matches!(byte, b'.' | b'*' | b'>' | b'~');
        if keep {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "~{byte:02X}");
        }
    }
    out
}

/// The name a [`token`] was made from; `None` if `token` is not one.
pub fn untoken(token: &str) -> Option<String> {
    if token == "~" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'~' {
            let hex = token.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `{prefix}.{venue}.{channel}.{instrument}`, each part a [`token`]; the prefix
/// is used as given (it may hold dots, e.g. `md.prod`).
pub fn subject(prefix: &str, venue: &str, channel: &str, instrument: &str) -> String {
    let mut out =
        String::with_capacity(prefix.len() + venue.len() + channel.len() + instrument.len() + 3);
    if !prefix.is_empty() {
        out.push_str(prefix);
        out.push('.');
    }
    out.push_str(&token(venue));
    out.push('.');
    out.push_str(&token(channel));
    out.push('.');
    out.push_str(&token(instrument));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_safe_injective_and_reversible() {
        let names = [
            "BTC/USD",
            "KXBTC.2026",
            "a b",
            "~",
            "~7E",
            "*",
            ">",
            "",
            "é",
            "x\ty",
            "BTC-USDT",
        ];
        let mut seen = std::collections::HashSet::new();
        for name in names {
            let t = token(name);
            assert!(!t.is_empty());
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b'.' | b'*' | b'>')),
                "{name:?} -> {t:?}"
            );
            assert!(seen.insert(t.clone()), "collision on {t:?}");
            assert_eq!(untoken(&t).as_deref(), Some(name));
        }
        assert_eq!(token("KXBTC.2026"), "KXBTC~2E2026");
        assert_eq!(
            subject("md", "kraken", "book", "BTC/USD"),
            "md.kraken.book.BTC/USD"
        );
        assert_eq!(subject("", "k", "c", ""), "k.c.~");
        assert_eq!(untoken("~4"), None);
    }
}
