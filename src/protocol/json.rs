//! Lenient, borrowed JSON reading shared by the bundled venue adapters.
//!
//! Classification reads only routing fields. Those are deserialized into
//! borrowed structs whose string fields are [`Text`]: a JSON string is kept
//! borrowed from the frame when it has no escapes (and unescaped into an owned
//! `String` when it has, e.g. `"BTC\/USD"`), and any other JSON value reads as
//! "absent" instead of failing the whole frame.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;
use serde_json::value::RawValue;

use crate::error::ProtocolError;

/// A JSON value read as text: `Some` for a string, `None` for anything else
/// (missing, `null`, a number, an object, ...).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Text<'a>(pub(crate) Option<Cow<'a, str>>);

impl Text<'_> {
    /// The text, when the value was a string.
    pub(crate) fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Borrowed(v))))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(v.to_owned()))))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(v))))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        Text::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }
}

/// A JSON value read as an unsigned integer: `Some` for a non-negative integer
/// that fits a `u64`, `None` for anything else (missing, `null`, negative,
/// fractional, a string, an object, ...). Cheaper than capturing a raw value and
/// parsing its text, which is what this replaces on the per-frame path.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Num(pub(crate) Option<u64>);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NumVisitor)
    }
}

struct NumVisitor;

impl<'de> Visitor<'de> for NumVisitor {
    type Value = Num;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Num(Some(v)))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Num(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Num(None))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Num(None))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Num(None))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Num(None))
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Num(None))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        Num::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // IgnoredAny skips nested values without recursion, so a value nested
        // 10,000 deep reads as absent instead of failing the frame.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Num(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Num(None))
    }
}

/// Whether `text` can only be a JSON object (first non-blank character `{`).
///
/// serde_json would also fill a struct from a JSON array, positionally; frames
/// are objects, so anything else is rejected up front.
pub(crate) fn is_object(text: &str) -> bool {
    text.trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
}

/// `Some(true)` / `Some(false)` for a JSON boolean, `None` for anything else.
pub(crate) fn flag(value: Option<&RawValue>) -> Option<bool> {
    match value.map(RawValue::get) {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    }
}

/// An [`Unparseable`](ProtocolError::Unparseable) error for a frame serde_json
/// refused. The text names the kind of failure and its position only: serde's
/// own message can quote (part of) the frame, which may be a megabyte long.
pub(crate) fn unparseable(venue: &str, error: &serde_json::Error) -> ProtocolError {
    let what = match error.classify() {
        Category::Io => "I/O error",
        Category::Syntax => "invalid JSON",
        Category::Data => "unexpected JSON shape",
        Category::Eof => "truncated JSON",
    };
    ProtocolError::Unparseable(format!(
        "{venue}: {what} at line {} column {}",
        error.line(),
        error.column()
    ))
}

/// Parses a JSON request id that may be absent, a number, or garbage.
pub(crate) fn opt_u64(value: Option<&RawValue>) -> Option<u64> {
    value.and_then(|raw| raw.get().parse::<u64>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(default, borrow)]
        s: Text<'a>,
    }

    fn read(text: &str) -> Option<Cow<'_, str>> {
        serde_json::from_str::<Probe<'_>>(text)
            .map(|p| p.s.0)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn strings_are_borrowed_unless_escaped_and_other_values_are_absent() {
        assert!(matches!(
            read(r#"{"s":"BTC/USD"}"#),
            Some(Cow::Borrowed("BTC/USD"))
        ));
        assert!(matches!(read(r#"{"s":"BTC\/USD"}"#), Some(Cow::Owned(s)) if s == "BTC/USD"));
        for other in [
            "1",
            "-1",
            "1.5e3",
            "true",
            "null",
            "[1,[2]]",
            r#"{"a":{"b":1}}"#,
        ] {
            assert_eq!(read(&format!(r#"{{"s":{other}}}"#)), None, "{other}");
        }
        assert_eq!(read("{}"), None);
    }

    #[test]
    fn errors_do_not_quote_the_frame() {
        let frame = format!(r#"{{"s":"{}"#, "secret".repeat(100));
        let err = serde_json::from_str::<Probe<'_>>(&frame)
            .err()
            .map(|e| unparseable("x", &e));
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.starts_with("unparseable frame: x: truncated JSON"),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn objects_and_flags() {
        assert!(is_object(" \n{}"));
        assert!(!is_object("[]"));
        assert!(!is_object(""));
        let raw = |t: &str| RawValue::from_string(t.to_owned()).ok();
        assert_eq!(flag(raw("true").as_deref()), Some(true));
        assert_eq!(flag(raw("false").as_deref()), Some(false));
        assert_eq!(flag(raw("1").as_deref()), None);
        assert_eq!(flag(None), None);
    }
}
