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
    // Flipping bit 1 maps `"` (0x22) to 0x20 and keeps every control byte
    // below 0x20, while every other byte lands at 0x21 or above: one "below
    // 0x21" test finds both.
    let flipped = word ^ splat(0x02);
    let quote_or_control = flipped.wrapping_sub(splat(0x21)) & !flipped;
    let backslash = word ^ splat(b'\\');
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (quote_or_control | backslash) & HIGHS
}

/// Whether `byte` is JSON whitespace (space, tab, line feed, carriage return).
#[inline(always)]
fn is_ws(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// The first byte at or after `pos` that is not JSON whitespace, with its
/// offset; `None` at the end of the frame. Callers dispatch on the byte
/// directly, so it is read once (no separate whitespace pass and peek).
#[inline(always)]
pub(super) fn next(bytes: &[u8], mut pos: usize) -> Option<(usize, u8)> {
    loop {
        let byte = *bytes.get(pos)?;
        // Every structural byte, and every byte a value starts with, is above
        // the space: one comparison for the common case.
        if byte > b' ' || !is_ws(byte) {
            return Some((pos, byte));
        }
        pos += 1;
    }
}

/// The eight bytes at `pos` as a little-endian word, if there are eight.
#[inline(always)]
fn word_at(bytes: &[u8], pos: usize) -> Option<u64> {
    let chunk = bytes.get(pos..)?.first_chunk::<8>()?;
    Some(u64::from_le_bytes(*chunk))
}

/// A string starting at its opening quote (`bytes[pos]` is `"`): the offset
/// past its closing quote, and whether it had no escapes.
#[cfg(test)]
fn string(bytes: &[u8], pos: usize) -> Option<(usize, bool)> {
    if bytes.get(pos) != Some(&b'"') {
        return None;
    }
    string_body(bytes, pos + 1)
}

/// From `pos` inside a string's content: where its first special byte is (a
/// quote, a backslash or a control byte) and that byte; `None` when the frame
/// ends first. Eight bytes at a time through plain content, the special byte
/// read out of the word already loaded (no second bounds check); the last few
/// bytes of the frame go one at a time.
#[inline(always)]
fn next_special(bytes: &[u8], mut pos: usize) -> Option<(usize, u8)> {
    loop {
        if let Some(word) = word_at(bytes, pos) {
            let mask = specials(word);
            if mask == 0 {
                pos += 8;
                continue;
            }
            let bit = mask.trailing_zeros();
            // The lowest flagged byte is exactly the first special byte.
            return Some((pos + (bit / 8) as usize, (word >> (bit & !7)) as u8));
        }
        let byte = *bytes.get(pos)?;
        if byte >= 0x20 && byte != b'"' && byte != b'\\' {
            pos += 1;
            continue;
        }
        return Some((pos, byte));
    }
}

/// The rest of a string whose opening quote is just before `pos`: the offset
/// past its closing quote, and whether it had no escapes.
#[inline(always)]
pub(super) fn string_body(bytes: &[u8], mut pos: usize) -> Option<(usize, bool)> {
    let mut plain = true;
    loop {
        let (at, byte) = next_special(bytes, pos)?;
        match byte {
            b'"' => return Some((at + 1, plain)),
            b'\\' => {
                plain = false;
                pos = escape(bytes, at + 1)?;
            }
            _ => return None,
        }
    }
}

/// The rest of a string without escapes whose opening quote is just before
/// `pos`: the offset past its closing quote. `None` when it has an escape
/// (the callers bail on those) or is invalid: for keys, which are matched
/// by their bytes.
#[inline(always)]
pub(super) fn plain_string_body(bytes: &[u8], pos: usize) -> Option<usize> {
    let (at, byte) = next_special(bytes, pos)?;
    (byte == b'"').then_some(at + 1)
}

/// The escape after a backslash (at `pos`): the offset past it.
#[inline(always)]
fn escape(bytes: &[u8], pos: usize) -> Option<usize> {
    match *bytes.get(pos)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(pos + 1),
        b'u' => {
            let hex = bytes.get(pos + 1..)?.first_chunk::<4>()?;
            hex.iter().all(u8::is_ascii_hexdigit).then_some(pos + 5)
        }
        _ => None,
    }
}

/// A mask with the high bit set in each of the eight bytes of `word` that is
/// not an ASCII digit; exact per byte (no carry crosses bytes: `x ^ '0'` is
/// 0..=9 for a digit, and `(x & 0x7f) + 0x76` stays below 0x100).
#[inline(always)]
fn non_digits(word: u64) -> u64 {
    let t = word ^ splat(b'0');
    ((t & splat(0x7f)).wrapping_add(splat(0x76)) | t) & HIGHS
}

/// Skips ASCII digits from `pos` (possibly none): the offset past them.
#[inline(always)]
fn digits(bytes: &[u8], mut pos: usize) -> usize {
    // Eight at a time: the first non-digit in the word ends the run, so a
    // short run costs one word and no byte loop. (Testing the first word
    // before the loop was measured: fewer instructions, slower frames.)
    while let Some(word) = word_at(bytes, pos) {
        let mask = non_digits(word);
        if mask != 0 {
            return pos + (mask.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    while bytes.get(pos).is_some_and(u8::is_ascii_digit) {
        pos += 1;
    }
    pos
}

/// At least one ASCII digit from `pos`: the offset past them.
#[inline(always)]
fn some_digits(bytes: &[u8], pos: usize) -> Option<usize> {
    let end = digits(bytes, pos);
    (end > pos).then_some(end)
}

/// A number starting at `pos`, whose first byte is `first`: the offset past
/// it, and whether it was only digits.
#[inline(always)]
fn number(bytes: &[u8], mut pos: usize, first: u8) -> Option<(usize, bool)> {
    let mut uint = true;
    let mut first = first;
    if first == b'-' {
        uint = false;
        pos += 1;
        first = *bytes.get(pos)?;
    }
    pos = match first {
        b'0' => pos + 1,
        b'1'..=b'9' => digits(bytes, pos + 1),
        _ => return None,
    };
    number_tail(bytes, pos, uint)
}

/// The optional fraction and exponent of a number whose integer part ends at
/// `pos`: the offset past the number, and `uint` unless either is there.
#[inline(always)]
fn number_tail(bytes: &[u8], mut pos: usize, mut uint: bool) -> Option<(usize, bool)> {
    let mut next = bytes.get(pos).copied();
    if next == Some(b'.') {
        uint = false;
        pos = some_digits(bytes, pos + 1)?;
        next = bytes.get(pos).copied();
    }
    if let Some(b'e' | b'E') = next {
        uint = false;
        pos += 1;
        if let Some(b'+' | b'-') = bytes.get(pos) {
            pos += 1;
        }
        pos = some_digits(bytes, pos)?;
    }
    Some((pos, uint))
}

/// A number at `pos` (its first byte `first`) that is a non-negative
/// integer fitting a `u64`: the offset past it and its value; `None` for any
/// other value, valid or not. The same verdict as [`scalar`] followed by
/// reading a `Num { uint: true }`, in one pass.
#[inline(always)]
pub(super) fn uint(bytes: &[u8], pos: usize, first: u8) -> Option<(usize, u64)> {
    let end = match first {
        b'0' => pos + 1,
        b'1'..=b'9' => digits(bytes, pos + 1),
        _ => return None,
    };
    // A fraction or an exponent: a number, but not an integer.
    if let Some(b'.' | b'e' | b'E') = bytes.get(end) {
        return None;
    }
    let text = bytes.get(pos..end)?;
    // Up to 19 digits cannot overflow a u64; 20 may; more always do.
    let number = if text.len() < 20 {
        text.iter().fold(0u64, |n, digit| {
            n.wrapping_mul(10)
                .wrapping_add(u64::from(digit.wrapping_sub(b'0')))
        })
    } else {
        text.iter().try_fold(0u64, |n, digit| {
            n.checked_mul(10)?
                .checked_add(u64::from(digit.wrapping_sub(b'0')))
        })?
    };
    Some((end, number))
}

/// A literal `word` at `pos`: the offset past it.
#[inline(always)]
fn literal<const N: usize>(bytes: &[u8], pos: usize, word: &[u8; N]) -> Option<usize> {
    (bytes.get(pos..)?.first_chunk::<N>()? == word).then_some(pos + N)
}

/// A scalar (anything but an array or object) at `pos`, whose first byte is
/// `first`. A digit other than `0` starts the common case, a plain integer;
/// a string next.
#[inline(always)]
fn scalar(bytes: &[u8], pos: usize, first: u8) -> Option<(usize, Kind)> {
    if first.wrapping_sub(b'1') < 9 {
        return number_tail(bytes, digits(bytes, pos + 1), true)
            .map(|(end, uint)| (end, Kind::Num { uint }));
    }
    if first == b'"' {
        return string_body(bytes, pos + 1).map(|(end, plain)| (end, Kind::Str { plain }));
    }
    match first {
        b'-' | b'0' => number(bytes, pos, first).map(|(end, uint)| (end, Kind::Num { uint })),
        b't' => literal(bytes, pos, b"true").map(|end| (end, Kind::Bool)),
        b'f' => literal(bytes, pos, b"false").map(|end| (end, Kind::Bool)),
        b'n' => literal(bytes, pos, b"null").map(|end| (end, Kind::Null)),
        _ => None,
    }
}

/// The `:` after a key that ended just before `pos`: the offset past it.
#[inline(always)]
pub(super) fn colon(bytes: &[u8], pos: usize) -> Option<usize> {
    let (pos, byte) = next(bytes, pos)?;
    (byte == b':').then_some(pos + 1)
}

/// A key whose opening quote is just before `pos`, and its colon; then the
/// member's value is expected: its offset and first byte.
#[inline(always)]
fn key_body(bytes: &[u8], pos: usize) -> Option<(usize, u8)> {
    let (end, _) = string_body(bytes, pos)?;
    next(bytes, colon(bytes, end)?)
}

/// Any value starting exactly at `pos` (no leading whitespace): the offset past
/// it and its kind.
#[cfg(test)]
fn value(bytes: &[u8], pos: usize) -> Option<(usize, Kind)> {
    value_at(bytes, pos, *bytes.get(pos)?)
}

/// Any value starting exactly at `pos`, whose first byte is `first`.
#[inline(always)]
pub(super) fn value_at(bytes: &[u8], pos: usize, first: u8) -> Option<(usize, Kind)> {
    if let b'[' | b'{' = first {
        return container(bytes, pos, first).map(|end| (end, Kind::Container));
    }
    scalar(bytes, pos, first)
}

/// The byte that closes an array (`]`) or an object (`}`): they differ in
/// one bit.
#[inline(always)]
fn closer(object: bool) -> u8 {
    b']' | (u8::from(object) << 5)
}

/// An array or object at `pos` (its first byte `open`), walked iteratively.
/// `stack` holds one bit per open container (1: object), innermost lowest.
/// Out of line: the scalars around it are inlined into the venue paths.
///
/// The tests come in the order of how often each case is met in market
/// data: a value is most often a plain integer (digits, then a separator), a
/// string, or a container.
#[inline(never)]
fn container(bytes: &[u8], mut pos: usize, open: u8) -> Option<usize> {
    let mut stack: u64 = 0;
    let mut depth: u32 = 0;
    // The first byte of the value expected at `pos`.
    let mut first = open;
    loop {
        if first.wrapping_sub(b'1') < 9 {
            // A plain integer unless a fraction or exponent follows.
            pos = digits(bytes, pos + 1);
            if let Some(b'.' | b'e' | b'E') = bytes.get(pos) {
                pos = number_tail(bytes, pos, true)?.0;
            }
        } else if first == b'"' {
            pos = string_body(bytes, pos + 1)?.0;
        } else if first == b'[' || first == b'{' {
            depth += 1;
            if depth > MAX_DEPTH {
                return None;
            }
            let object = first == b'{';
            stack = (stack << 1) | u64::from(object);
            let (inner, byte) = next(bytes, pos + 1)?;
            if byte == closer(object) {
                // Empty: closed right away; a finished value below.
                pos = inner + 1;
                depth -= 1;
                stack >>= 1;
            } else if object {
                if byte != b'"' {
                    return None;
                }
                (pos, first) = key_body(bytes, inner + 1)?;
                continue;
            } else {
                (pos, first) = (inner, byte);
                continue;
            }
        } else {
            pos = match first {
                b'-' | b'0' => number(bytes, pos, first)?.0,
                b't' => literal(bytes, pos, b"true")?,
                b'f' => literal(bytes, pos, b"false")?,
                b'n' => literal(bytes, pos, b"null")?,
                _ => return None,
            };
        }
        // A value just ended: close containers until one continues.
        loop {
            if depth == 0 {
                return Some(pos);
            }
            let object = stack & 1 == 1;
            let (at, byte) = next(bytes, pos)?;
            if byte == b',' {
                if object {
                    let (at, byte) = next(bytes, at + 1)?;
                    if byte != b'"' {
                        return None;
                    }
                    (pos, first) = key_body(bytes, at + 1)?;
                } else {
                    (pos, first) = next(bytes, at + 1)?;
                }
                break;
            }
            if byte != closer(object) {
                return None;
            }
            pos = at + 1;
            depth -= 1;
            stack >>= 1;
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
    fn the_word_test_flags_exactly_the_special_bytes() {
        for byte in 0..=255u8 {
            let special = byte < 0x20 || byte == b'"' || byte == b'\\';
            for at in 0..8 {
                for fill in [b'a', b' ', b'!', b'#', 0x80, 0xff] {
                    let mut chunk = [fill; 8];
                    chunk[at] = byte;
                    let mask = specials(u64::from_le_bytes(chunk));
                    if special {
                        assert_eq!(mask.trailing_zeros() / 8, at as u32, "{byte} at {at}");
                    } else {
                        assert_eq!(mask, 0, "{byte} at {at} in {fill}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_digit_test_is_exact_per_byte() {
        for byte in 0..=255u8 {
            for at in 0..8 {
                let mut chunk = [b'5'; 8];
                chunk[at] = byte;
                let mask = non_digits(u64::from_le_bytes(chunk));
                let expected = if byte.is_ascii_digit() {
                    0
                } else {
                    0x80 << (8 * at)
                };
                assert_eq!(mask, expected, "{byte} at {at}");
            }
        }
        // Runs of digits end exactly at the first non-digit, wherever it falls.
        for len in 0..20 {
            for tail in ["", ",", "}", "1234567890x", ".5", "e9", "a"] {
                let run = "7".repeat(len);
                let text = format!("{run}{tail}");
                let expected = len + tail.bytes().take_while(u8::is_ascii_digit).count();
                assert_eq!(digits(text.as_bytes(), 0), expected, "{text}");
            }
        }
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
