//! The validating skipper: finds where a JSON value ends, checking it by the
//! strict grammar of RFC 8259 on the way, so that the scanner never accepts a
//! frame serde_json refuses.
//!
//! What it checks, exactly as serde_json's own skipping does (`ignore_value`):
//! strings end at an unescaped `"`, have no raw byte below 0x20, and use only
//! the escapes `\" \\ \/ \b \f \n \r \t \uXXXX` (a `\u` escape needs four hex
//! digits; like serde when it skips, a lone surrogate is accepted here, so the
//! fast paths bail on escaped strings wherever serde would decode one).
//! Numbers: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, with no
//! range limit (serde does not check one when skipping). Literals `true`,
//! `false`, `null`. Arrays and objects with `,` separators, no trailing comma,
//! string keys, nested at most [`MAX_DEPTH`] deep (deeper: `None`, and the
//! caller falls back to serde, which has no such limit when skipping).
//!
//! Every function takes the frame's bytes and a start offset and returns the
//! offset just past what it read, or `None` for anything invalid.

use super::{Kind, MAX_DEPTH};

/// Eight copies of a byte in a word.
const fn splat(byte: u8) -> u64 {
    u64::from_le_bytes([byte; 8])
}

const ONES: u64 = splat(0x01);
const HIGHS: u64 = splat(0x80);

/// A mask with the high bit set in each of the eight bytes of `word` (first
/// byte lowest) that is `"`, `\\` or below 0x20, the bytes that end a run of
/// plain string content; zero when there is none. Bytes after a match may be
/// flagged falsely (a borrow carries into them), bytes before one never are,
/// so the lowest set bit is exactly the first match.
#[inline(always)]
fn specials(word: u64) -> u64 {
    let control = word.wrapping_sub(splat(0x20)) & !word;
    let quote = word ^ splat(b'"');
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = word ^ splat(b'\\');
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (control | quote | backslash) & HIGHS
}

/// Skips JSON whitespace from `pos`.
#[inline(always)]
fn ws(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(pos) {
        pos += 1;
    }
    pos
}

/// A string starting at its opening quote (`bytes[pos]` is `"`): the offset
/// past its closing quote, and whether it had no escapes.
#[inline(always)]
pub(super) fn string(bytes: &[u8], pos: usize) -> Option<(usize, bool)> {
    if bytes.get(pos) != Some(&b'"') {
        return None;
    }
    let mut pos = pos + 1;
    let mut plain = true;
    loop {
        // Eight bytes at a time through plain content, to the first special
        // byte; the last few bytes of the frame go one at a time below.
        while let Some(chunk) = bytes.get(pos..pos + 8) {
            let mask = specials(u64::from_le_bytes(chunk.try_into().ok()?));
            if mask != 0 {
                pos += (mask.trailing_zeros() / 8) as usize;
                break;
            }
            pos += 8;
        }
        match *bytes.get(pos)? {
            b'"' => return Some((pos + 1, plain)),
            b'\\' => {
                plain = false;
                pos = escape(bytes, pos + 1)?;
            }
            0x00..=0x1f => return None,
            _ => pos += 1,
        }
    }
}

/// The escape after a backslash (at `pos`): the offset past it.
#[inline(always)]
fn escape(bytes: &[u8], pos: usize) -> Option<usize> {
    match *bytes.get(pos)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(pos + 1),
        b'u' => {
            let hex = bytes.get(pos + 1..pos + 5)?;
            hex.iter().all(u8::is_ascii_hexdigit).then_some(pos + 5)
        }
        _ => None,
    }
}

/// Skips ASCII digits from `pos`; `None` unless there is at least one.
#[inline(always)]
fn digits(bytes: &[u8], pos: usize) -> Option<usize> {
    let mut end = pos;
    // Eight at a time while all eight are digits: each byte is 0x30..=0x39
    // when its high nibble is 3 and adding 6 does not carry out of the nibble.
    while let Some(chunk) = bytes.get(end..end + 8) {
        let word = u64::from_le_bytes(chunk.try_into().ok()?);
        let nibbles = splat(0xf0);
        if word & nibbles != splat(0x30) || word.wrapping_add(splat(0x06)) & nibbles != splat(0x30)
        {
            break;
        }
        end += 8;
    }
    while bytes.get(end).is_some_and(u8::is_ascii_digit) {
        end += 1;
    }
    (end > pos).then_some(end)
}

/// A number starting at `pos`: the offset past it, and whether it was only
/// digits.
#[inline(always)]
fn number(bytes: &[u8], mut pos: usize) -> Option<(usize, bool)> {
    let mut uint = true;
    if bytes.get(pos) == Some(&b'-') {
        uint = false;
        pos += 1;
    }
    pos = match *bytes.get(pos)? {
        b'0' => pos + 1,
        b'1'..=b'9' => digits(bytes, pos)?,
        _ => return None,
    };
    if bytes.get(pos) == Some(&b'.') {
        uint = false;
        pos = digits(bytes, pos + 1)?;
    }
    if let Some(b'e' | b'E') = bytes.get(pos) {
        uint = false;
        pos += 1;
        if let Some(b'+' | b'-') = bytes.get(pos) {
            pos += 1;
        }
        pos = digits(bytes, pos)?;
    }
    Some((pos, uint))
}

/// A literal `word` at `pos`: the offset past it.
#[inline(always)]
fn literal(bytes: &[u8], pos: usize, word: &[u8]) -> Option<usize> {
    let end = pos + word.len();
    (bytes.get(pos..end)? == word).then_some(end)
}

/// A scalar (anything but an array or object) at `pos`.
#[inline(always)]
fn scalar(bytes: &[u8], pos: usize) -> Option<(usize, Kind)> {
    match *bytes.get(pos)? {
        b'"' => string(bytes, pos).map(|(end, plain)| (end, Kind::Str { plain })),
        b'-' | b'0'..=b'9' => number(bytes, pos).map(|(end, uint)| (end, Kind::Num { uint })),
        b't' => literal(bytes, pos, b"true").map(|end| (end, Kind::Bool)),
        b'f' => literal(bytes, pos, b"false").map(|end| (end, Kind::Bool)),
        b'n' => literal(bytes, pos, b"null").map(|end| (end, Kind::Null)),
        _ => None,
    }
}

/// A key and its colon, at `pos` (after whitespace): the offset past the colon.
#[inline(always)]
fn key(bytes: &[u8], pos: usize) -> Option<usize> {
    let (end, _) = string(bytes, ws(bytes, pos))?;
    let colon = ws(bytes, end);
    (bytes.get(colon) == Some(&b':')).then_some(colon + 1)
}

/// Any value starting exactly at `pos` (no leading whitespace): the offset past
/// it and its kind.
#[inline]
pub(super) fn value(bytes: &[u8], pos: usize) -> Option<(usize, Kind)> {
    match *bytes.get(pos)? {
        b'[' | b'{' => container(bytes, pos).map(|end| (end, Kind::Container)),
        _ => scalar(bytes, pos),
    }
}

/// An array or object at `pos`, walked iteratively. `stack` holds one bit per
/// open container (1: object), innermost lowest.
fn container(bytes: &[u8], mut pos: usize) -> Option<usize> {
    let mut stack: u64 = 0;
    let mut depth: u32 = 0;
    loop {
        // A value is expected at `pos` (after whitespace).
        pos = ws(bytes, pos);
        match *bytes.get(pos)? {
            open @ (b'[' | b'{') => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return None;
                }
                let object = open == b'{';
                stack = (stack << 1) | u64::from(object);
                pos = ws(bytes, pos + 1);
                let close = if object { b'}' } else { b']' };
                if bytes.get(pos) != Some(&close) {
                    if object {
                        pos = key(bytes, pos)?;
                    }
                    continue;
                }
                // Empty: closed right away; handled as a finished value below.
                pos += 1;
                depth -= 1;
                stack >>= 1;
            }
            _ => pos = scalar(bytes, pos)?.0,
        }
        // A value just ended: close containers until one continues.
        loop {
            if depth == 0 {
                return Some(pos);
            }
            let object = stack & 1 == 1;
            pos = ws(bytes, pos);
            match (*bytes.get(pos)?, object) {
                (b',', true) => {
                    pos = key(bytes, pos + 1)?;
                    break;
                }
                (b',', false) => {
                    pos += 1;
                    break;
                }
                (b'}', true) | (b']', false) => {
                    pos += 1;
                    depth -= 1;
                    stack >>= 1;
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip(text: &str) -> Option<(usize, Kind)> {
        value(text.as_bytes(), 0)
    }

    /// What serde_json's own skipper says about a value, as the reference.
    fn serde_accepts(text: &str) -> bool {
        serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
    }

    #[test]
    fn valid_values_are_skipped_whole() {
        for text in [
            r#""""#,
            r#""plain text, long enough for a few words""#,
            r#""\" \\ \/ \b \f \n \r \t \u00e9 \uD800""#,
            "\"caf\u{e9} \u{1F600}\"",
            "0",
            "-0",
            "12",
            "-12.5e+3",
            "1E-2",
            "0.0",
            "18446744073709551616",
            "1e400",
            "true",
            "false",
            "null",
            "[]",
            "{}",
            "[ 1 , [ ] , { } , { \"a\" : [ null ] } ]",
            r#"{"a":{"b":{"c":[1,2,{"d":"e"}]}},"f":"g"}"#,
        ] {
            assert!(serde_accepts(text), "{text}");
            assert_eq!(skip(text).map(|(end, _)| end), Some(text.len()), "{text}");
        }
        let deep = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert_eq!(skip(&deep).map(|(end, _)| end), Some(deep.len()));
    }

    #[test]
    fn invalid_values_are_refused() {
        for text in [
            "",
            "\"",
            "\"abc",
            "\"a\u{1}b\"",
            "\"tab\tinside\"",
            r#""\x""#,
            r#""\u12""#,
            r#""\u12G4""#,
            "-",
            "01",
            "1.",
            ".5",
            "1e",
            "1e+",
            "+1",
            "tru",
            "nul",
            "[",
            "[1,]",
            "[1 2]",
            "{\"a\"}",
            "{\"a\":1,}",
            "{1:2}",
            "{\"a\":1]",
            "[1}",
            "{,}",
            "]",
        ] {
            assert!(!serde_accepts(text), "serde accepts {text}");
            assert!(skip(text).is_none_or(|(end, _)| end < text.len()), "{text}");
        }
    }

    #[test]
    fn kinds_and_limits() {
        assert_eq!(skip("12"), Some((2, Kind::Num { uint: true })));
        assert_eq!(skip("-1"), Some((2, Kind::Num { uint: false })));
        assert_eq!(skip("1.0"), Some((3, Kind::Num { uint: false })));
        assert_eq!(skip(r#""a""#), Some((3, Kind::Str { plain: true })));
        assert_eq!(skip(r#""\n""#), Some((4, Kind::Str { plain: false })));
        assert_eq!(skip("null"), Some((4, Kind::Null)));
        assert_eq!(skip("false"), Some((5, Kind::Bool)));
        assert_eq!(skip("[1]x"), Some((3, Kind::Container)));
        // Too deep for the scanner (serde skips it): the caller falls back.
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert!(serde_accepts(&deep));
        assert_eq!(skip(&deep), None);
    }

    #[test]
    fn the_word_test_finds_the_first_special_byte() {
        for special in [b'"', b'\\', 0x00, 0x1f] {
            for at in 0..8 {
                for after in [b'"', b'\\', 0x00, b'a', 0x80] {
                    let mut chunk = [b'a'; 8];
                    chunk[at] = special;
                    for byte in chunk.iter_mut().skip(at + 1) {
                        *byte = after;
                    }
                    let mask = specials(u64::from_le_bytes(chunk));
                    assert_eq!(mask.trailing_zeros() / 8, at as u32, "{special} at {at}");
                }
            }
        }
        for plain in [b' ', b'a', 0x7f, 0x80, 0xff, b'!', b'#', b'[', b']', 0x20] {
            assert_eq!(specials(u64::from_le_bytes([plain; 8])), 0, "{plain}");
        }
        // Strings end exactly at their quote wherever it falls in a word.
        for len in 0..24 {
            for tail in ["", ",", "1234567890abcdef"] {
                let text = format!("\"{}\"{tail}", "\u{e9}".repeat(len));
                assert_eq!(
                    string(text.as_bytes(), 0),
                    Some((text.len() - tail.len(), true)),
                    "{text}"
                );
                let text = format!("\"{}\\n{}\"{tail}", "x".repeat(len), "y".repeat(len % 9));
                assert_eq!(
                    string(text.as_bytes(), 0),
                    Some((text.len() - tail.len(), false)),
                    "{text}"
                );
            }
        }
    }
}
