//! `scan_skip`: the envelope scanner's validating skip (`protocol::scan`),
//! whose strings, digit runs and member separators are read word at a time,
//! against the byte-at-a-time reading of the same grammar
//! (`model/json_skip.rs`).
//!
//! For each line, and for the line at every starting offset among its first
//! bytes (so that every value ends at every position of an eight-byte word
//! and near the end of the text), and for the line inside an array and as a
//! member of an object: the scanner's offset and kind of the value, its
//! skip, its `u64` reading and its plain-string reading equal the model's;
//! an object's keys, walked member by member, equal the model's.

use resilient_ws::fuzzing::{scan_keys, scan_plain_str, scan_skip_value, scan_uint, scan_value};

use crate::model::json_skip::{self, Kind};

/// How many starting offsets of each line are checked.
const OFFSETS: usize = 24;

/// Checks every line of `data` (see the module docs).
///
/// # Panics
///
/// When the scanner and the model disagree.
pub fn scan_skip(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        for (start, _) in line.char_indices().take(OFFSETS) {
            check(&line[start..]);
        }
        check(&format!("[{line}]"));
        check(&format!("[{line},{line}]"));
        check(&format!("{{\"k\":{line},\"k2\":{line}}}"));
        check(&format!("{{\"k\":{line}}}   "));
    }
}

/// The model's reading of the value at the start of `text`: where it
/// starts (after whitespace), ends, and its kind.
fn model(text: &str) -> Option<(usize, usize, Kind)> {
    let bytes = text.as_bytes();
    let start = json_skip::skip_ws(bytes, 0);
    let (end, kind) = json_skip::value(bytes, start, 0)?;
    Some((start, end, kind))
}

fn check(text: &str) {
    let expected = model(text);
    let kind = expected.map(|(_, end, kind)| {
        let name = match kind {
            Kind::Str { plain: true } => "str",
            Kind::Str { plain: false } => "escaped_str",
            Kind::Num { uint: true } => "uint",
            Kind::Num { uint: false } => "num",
            Kind::Null => "null",
            Kind::Bool => "bool",
            Kind::Container => "container",
        };
        (end, name)
    });
    assert_eq!(scan_value(text), kind, "value of {text:.300}");
    assert_eq!(
        scan_skip_value(text),
        expected.map(|(_, end, _)| end),
        "skip of {text:.300}"
    );
    let uint = expected.and_then(|(start, end, kind)| {
        let number = (kind == Kind::Num { uint: true }).then(|| text[start..end].parse().ok());
        number.flatten().map(|n: u64| (end, n))
    });
    assert_eq!(scan_uint(text), uint, "u64 of {text:.300}");
    let plain = expected.and_then(|(start, end, kind)| {
        (kind == Kind::Str { plain: true }).then(|| (end, &text[start + 1..end - 1]))
    });
    assert_eq!(scan_plain_str(text), plain, "plain string of {text:.300}");
    assert_eq!(scan_keys(text), model_keys(text), "keys of {text:.300}");
}

/// The keys of the object at the start of `text` and the offset past it, as
/// the model reads them: `None` when it is not a valid object or a key has
/// escapes. A walk member by member skips each member's value as a value of
/// its own, so each may nest [`json_skip::MAX_DEPTH`] deep (one more than
/// inside the object skipped whole).
fn model_keys(text: &str) -> Option<(usize, Vec<&[u8]>)> {
    let bytes = text.as_bytes();
    let mut at = json_skip::skip_ws(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    let mut keys = Vec::new();
    at = json_skip::skip_ws(bytes, at + 1);
    if bytes.get(at) == Some(&b'}') {
        return Some((at + 1, keys));
    }
    loop {
        let (key_end, plain) = json_skip::string(bytes, at)?;
        if !plain {
            return None;
        }
        keys.push(bytes.get(at + 1..key_end - 1)?);
        at = json_skip::skip_ws(bytes, key_end);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        at = json_skip::skip_ws(bytes, at + 1);
        at = json_skip::skip_ws(bytes, json_skip::value(bytes, at, 0)?.0);
        match *bytes.get(at)? {
            b',' => at = json_skip::skip_ws(bytes, at + 1),
            b'}' => return Some((at + 1, keys)),
            _ => return None,
        }
    }
}
