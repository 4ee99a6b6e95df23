//! One JSON value read the straightforward way, a byte at a time: the
//! reference for the envelope scanner's validating skip
//! (`src/protocol/scan/`), whose word-at-a-time fast paths must give exactly
//! these answers.
//!
//! Written from the grammar the skipper documents (RFC 8259, strict; its
//! module docs), not from its code: JSON whitespace is space, tab, line feed
//! and carriage return; a string ends at an unescaped `"`, has no raw byte
//! below 0x20 and uses only the escapes `\" \\ \/ \b \f \n \r \t \uXXXX`
//! (four hex digits; a lone surrogate is accepted); a number is
//! `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` with no range
//! limit; the literals are `true`, `false` and `null`; arrays and objects
//! separate with `,`, have no trailing comma and string keys, and nest at
//! most [`MAX_DEPTH`] deep (deeper is refused, as the scanner refuses it).
//! Recursive: the depth is bounded, so the stack is too.

/// The deepest nesting the scanner follows (its `MAX_DEPTH`).
pub(crate) const MAX_DEPTH: usize = 64;

/// What a value is, as the scanner reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string; `plain` when it has no backslash.
    Str {
        plain: bool,
    },
    /// A number; `uint` when it is only digits.
    Num {
        uint: bool,
    },
    Null,
    Bool,
    /// An array or an object.
    Container,
}

/// The offset of the first byte at or after `pos` that is not whitespace.
pub(crate) fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while matches!(bytes.get(pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        pos += 1;
    }
    pos
}

/// The value starting exactly at `pos`, inside `depth` open containers: the
/// offset past it and its kind, or `None` when it is not valid JSON (or
/// nests too deep).
pub(crate) fn value(bytes: &[u8], pos: usize, depth: usize) -> Option<(usize, Kind)> {
    match *bytes.get(pos)? {
        b'"' => string(bytes, pos).map(|(end, plain)| (end, Kind::Str { plain })),
        b'-' | b'0'..=b'9' => number(bytes, pos).map(|(end, uint)| (end, Kind::Num { uint })),
        b't' => literal(bytes, pos, b"true").map(|end| (end, Kind::Bool)),
        b'f' => literal(bytes, pos, b"false").map(|end| (end, Kind::Bool)),
        b'n' => literal(bytes, pos, b"null").map(|end| (end, Kind::Null)),
        b'[' if depth < MAX_DEPTH => array(bytes, pos, depth + 1).map(|end| (end, Kind::Container)),
        b'{' if depth < MAX_DEPTH => {
            object(bytes, pos, depth + 1).map(|end| (end, Kind::Container))
        }
        _ => None,
    }
}

/// A string at its opening quote: the offset past its closing quote and
/// whether it had no escapes.
pub(crate) fn string(bytes: &[u8], pos: usize) -> Option<(usize, bool)> {
    if bytes.get(pos) != Some(&b'"') {
        return None;
    }
    let mut plain = true;
    let mut at = pos + 1;
    loop {
        let byte = *bytes.get(at)?;
        at += 1;
        match byte {
            b'"' => return Some((at, plain)),
            0x00..=0x1f => return None,
            b'\\' => {
                plain = false;
                match *bytes.get(at)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => at += 1,
                    b'u' => {
                        for i in 1..=4 {
                            if !bytes.get(at + i)?.is_ascii_hexdigit() {
                                return None;
                            }
                        }
                        at += 5;
                    }
                    _ => return None,
                }
            }
            _ => {}
        }
    }
}

/// Digits from `pos`: how many.
fn run_of_digits(bytes: &[u8], pos: usize) -> usize {
    bytes
        .get(pos..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count()
}

/// A number at `pos`: the offset past it and whether it was only digits.
fn number(bytes: &[u8], pos: usize) -> Option<(usize, bool)> {
    let mut at = pos;
    let mut uint = true;
    if bytes.get(at) == Some(&b'-') {
        uint = false;
        at += 1;
    }
    match *bytes.get(at)? {
        b'0' => at += 1,
        b'1'..=b'9' => at += run_of_digits(bytes, at),
        _ => return None,
    }
    if bytes.get(at) == Some(&b'.') {
        uint = false;
        let n = run_of_digits(bytes, at + 1);
        if n == 0 {
            return None;
        }
        at += 1 + n;
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        uint = false;
        at += 1;
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        let n = run_of_digits(bytes, at);
        if n == 0 {
            return None;
        }
        at += n;
    }
    Some((at, uint))
}

fn literal(bytes: &[u8], pos: usize, word: &[u8]) -> Option<usize> {
    (bytes.get(pos..pos + word.len())? == word).then_some(pos + word.len())
}

/// An array at its `[`, itself `depth` deep.
fn array(bytes: &[u8], pos: usize, depth: usize) -> Option<usize> {
    let mut at = skip_ws(bytes, pos + 1);
    if bytes.get(at) == Some(&b']') {
        return Some(at + 1);
    }
    loop {
        at = skip_ws(bytes, value(bytes, at, depth)?.0);
        match *bytes.get(at)? {
            b',' => at = skip_ws(bytes, at + 1),
            b']' => return Some(at + 1),
            _ => return None,
        }
    }
}

/// An object at its `{`, itself `depth` deep.
fn object(bytes: &[u8], pos: usize, depth: usize) -> Option<usize> {
    let mut at = skip_ws(bytes, pos + 1);
    if bytes.get(at) == Some(&b'}') {
        return Some(at + 1);
    }
    loop {
        at = skip_ws(bytes, string(bytes, at)?.0);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        at = skip_ws(bytes, at + 1);
        at = skip_ws(bytes, value(bytes, at, depth)?.0);
        match *bytes.get(at)? {
            b',' => at = skip_ws(bytes, at + 1),
            b'}' => return Some(at + 1),
            _ => return None,
        }
    }
}
