//! The venue time of a data frame, read the straightforward way: parse the
//! payload with serde_json, then look up the venue's documented field.
//!
//! Written from the venues' documented field rules (`src/protocol/VENUES.md`,
//! "Typed data"; PROTOCOLS.md), not from the scanner in
//! `src/protocol/venue_time.rs`:
//! - Kalshi: `msg.ts_ms` (Unix ms, a number); without it the deprecated
//!   `msg.ts` (Unix seconds as a number, or RFC 3339 text).
//! - OKX v5: `ts` of the last `data` row (Unix ms as a string of digits).
//! - Kraken v2: `timestamp` of the last `data` row (RFC 3339 text).
//! - WEEX V3: `E` at the top level of the push (Unix ms, a number).
//!
//! Two readings are given:
//! - [`documented`]: the documented path on a [`serde_json::Value`]. It is
//!   the answer whenever the frame has the documented shape
//!   ([`documented_shape`]).
//! - [`by_name`]: the scanner's documented contract (its module docs) on an
//!   order-preserving tree that keeps duplicates and whether a string was
//!   written with escapes: the last (WEEX: the first) member of that name at
//!   any depth, in document order, whose name has no escapes; a string value
//!   with escapes is declined. This is what the scanner promises on any valid
//!   JSON, documented shape or not.
//!
//! RFC 3339 is parsed here by a separate, plain implementation (fixed
//! fields, a year-by-year day count), as RFC 3339 section 5.6 gives it:
//! `T`/`Z` may be lower case and a space may separate date and time; plus
//! the scanner's documented limits: no leap second (`:60`), at most
//! nanosecond precision (further digits cut), nothing before 1970.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// The venues whose adapters read a venue time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Venue {
    Kalshi,
    Okx,
    Kraken,
    Weex,
}

impl Venue {
    pub(crate) const ALL: [Venue; 4] = [Venue::Kalshi, Venue::Okx, Venue::Kraken, Venue::Weex];

    /// The member names the stamp is read from, first choice first.
    pub(crate) fn keys(self) -> &'static [&'static str] {
        match self {
            Venue::Kalshi => &["ts_ms", "ts"],
            Venue::Okx => &["ts"],
            Venue::Kraken => &["timestamp"],
            Venue::Weex => &["E"],
        }
    }

    /// Whether the stamp sits in each row of a `data` array (else in one object).
    fn in_rows(self) -> bool {
        matches!(self, Venue::Okx | Venue::Kraken)
    }
}

// ---------------------------------------------------------------------------
// The documented path, on serde_json::Value
// ---------------------------------------------------------------------------

/// The venue time by the documented path (`payload` is Kalshi's `msg`, the
/// `data` array of OKX and Kraken, the whole WEEX push).
pub(crate) fn documented(venue: Venue, payload: &Value) -> Option<SystemTime> {
    match venue {
        Venue::Kalshi => {
            let msg = payload.as_object()?;
            match msg.get("ts_ms") {
                Some(ts_ms) => millis(ts_ms.as_u64()?),
                None => match msg.get("ts")? {
                    Value::Number(secs) => seconds(secs.as_u64()?),
                    Value::String(text) => rfc3339(text),
                    _ => None,
                },
            }
        }
        Venue::Okx => digit_string(payload.as_array()?.last()?.get("ts")?.as_str()?),
        Venue::Kraken => rfc3339(payload.as_array()?.last()?.get("timestamp")?.as_str()?),
        Venue::Weex => millis(payload.as_object()?.get("E")?.as_u64()?),
    }
}

fn millis(ms: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

fn seconds(secs: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Unix ms written as a string of ASCII digits (leading zeros allowed).
fn digit_string(text: &str) -> Option<SystemTime> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    millis(text.parse().ok()?)
}

// ---------------------------------------------------------------------------
// An order-preserving tree (duplicates kept, escapes noted)
// ---------------------------------------------------------------------------

/// A string as written: its decoded text, and whether it had escapes.
#[derive(Debug)]
pub(crate) struct Text {
    pub(crate) text: String,
    pub(crate) escaped: bool,
}

/// A JSON value in document order, duplicate members kept.
#[derive(Debug)]
pub(crate) enum Node {
    Object(Vec<(Text, Node)>),
    Array(Vec<Node>),
    Str(Text),
    /// A number serde_json reads as a `u64`.
    Unsigned(u64),
    /// Any other number (negative, fractional, exponent, past `u64`).
    OtherNumber,
    /// `true`, `false`, `null`.
    Literal,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Literal)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Literal)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Node, E> {
        Ok(Node::Unsigned(n))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        Ok(Node::OtherNumber)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        Ok(Node::OtherNumber)
    }

    // serde_json hands over a string borrowed from the input exactly when it
    // had no escapes (nothing had to be decoded into a buffer).
    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Node, E> {
        Ok(Node::Str(Text {
            text: text.to_owned(),
            escaped: false,
        }))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Node, E> {
        Ok(Node::Str(Text {
            text: text.to_owned(),
            escaped: true,
        }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut members = Vec::new();
        while let Some(name) = map.next_key_seed(NameSeed)? {
            members.push((name, map.next_value()?));
        }
        Ok(Node::Object(members))
    }
}

/// A member name, noting escapes as [`NodeVisitor`] does for values.
struct NameSeed;

impl<'de> DeserializeSeed<'de> for NameSeed {
    type Value = Text;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Text, D::Error> {
        match deserializer.deserialize_str(NodeVisitor)? {
            Node::Str(text) => Ok(text),
            _ => Err(de::Error::custom("a member name that is not a string")),
        }
    }
}

/// The values of every member named `key` (names with escapes included only
/// when `escaped_too`), at any depth, in document order (a member's name
/// comes before anything inside its value).
fn members_named<'n>(node: &'n Node, key: &str, escaped_too: bool, out: &mut Vec<&'n Node>) {
    match node {
        Node::Object(members) => {
            for (name, value) in members {
                if name.text == key && (escaped_too || !name.escaped) {
                    out.push(value);
                }
                members_named(value, key, escaped_too, out);
            }
        }
        Node::Array(items) => {
            for item in items {
                members_named(item, key, escaped_too, out);
            }
        }
        _ => {}
    }
}

fn count_named(node: &Node, key: &str) -> usize {
    let mut found = Vec::new();
    members_named(node, key, true, &mut found);
    found.len()
}

/// The plain (unescaped) text of a string node.
fn plain(node: &Node) -> Option<&str> {
    match node {
        Node::Str(text) if !text.escaped => Some(&text.text),
        _ => None,
    }
}

fn unsigned(node: &Node) -> Option<u64> {
    match node {
        Node::Unsigned(n) => Some(*n),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// The scanner's contract: one member of that name, at any depth
// ---------------------------------------------------------------------------

/// The venue time by the scanner's documented contract (see the module docs).
pub(crate) fn by_name(venue: Venue, payload: &Node) -> Option<SystemTime> {
    let last = |key: &str| {
        let mut found = Vec::new();
        members_named(payload, key, false, &mut found);
        found.last().copied()
    };
    match venue {
        Venue::Kalshi => {
            if let Some(ts_ms) = last("ts_ms") {
                return millis(unsigned(ts_ms)?);
            }
            match last("ts")? {
                Node::Unsigned(secs) => seconds(*secs),
                other => rfc3339(plain(other)?),
            }
        }
        Venue::Okx => digit_string(plain(last("ts")?)?),
        Venue::Kraken => rfc3339(plain(last("timestamp")?)?),
        Venue::Weex => {
            let mut found = Vec::new();
            members_named(payload, "E", false, &mut found);
            millis(unsigned(found.first()?)?)
        }
    }
}

// ---------------------------------------------------------------------------
// The documented shape
// ---------------------------------------------------------------------------

/// Whether the payload has the documented shape, where [`documented`] is
/// the answer: each stamp name (however written) occurs only where the venue
/// documents it, once there, with a name written without escapes. For OKX
/// and Kraken, either every `data` row (at least one) has it or none does.
pub(crate) fn documented_shape(venue: Venue, payload: &Node) -> bool {
    venue.keys().iter().all(|key| {
        let total = count_named(payload, key);
        if venue.in_rows() {
            let Node::Array(rows) = payload else {
                return total == 0;
            };
            total == 0
                || (!rows.is_empty()
                    && total == rows.len()
                    && rows.iter().all(|row| own_plain_members(row, key) == 1))
        } else {
            total == 0 || (total == 1 && own_plain_members(payload, key) == 1)
        }
    })
}

/// How many members of this object (not nested) are named `key` without escapes.
fn own_plain_members(node: &Node, key: &str) -> usize {
    match node {
        Node::Object(members) => members
            .iter()
            .filter(|(name, _)| name.text == key && !name.escaped)
            .count(),
        _ => 0,
    }
}

/// Whether the member [`documented`] reads is a string written with
/// escapes: the scanner reads no escapes and declines it (its module docs),
/// an allowed difference.
pub(crate) fn documented_value_escaped(venue: Venue, payload: &Node) -> bool {
    let object = match (venue.in_rows(), payload) {
        (true, Node::Array(rows)) => rows.last(),
        (false, node) => Some(node),
        _ => None,
    };
    let Some(Node::Object(members)) = object else {
        return false;
    };
    let read = |key: &str| members.iter().find(|(name, _)| name.text == key);
    let chosen = match venue {
        Venue::Kalshi => read("ts_ms").or_else(|| read("ts")),
        _ => read(venue.keys()[0]),
    };
    matches!(chosen, Some((_, Node::Str(text))) if text.escaped)
}

// ---------------------------------------------------------------------------
// RFC 3339, plainly
// ---------------------------------------------------------------------------

/// An RFC 3339 date-time (section 5.6), as UTC.
pub(crate) fn rfc3339(text: &str) -> Option<SystemTime> {
    if !text.is_ascii() {
        return None;
    }
    let (date, separator, time) = (text.get(..10)?, text.get(10..11)?, text.get(11..)?);
    if !matches!(separator, "T" | "t" | " ") {
        return None;
    }
    let [year, month, day] = fields(date, '-', [4, 2, 2])?;
    let [hour, minute, second] = fields(time.get(..8)?, ':', [2, 2, 2])?;
    let rest = time.get(8..)?;
    let (fraction, zone) = match rest.strip_prefix('.') {
        Some(after) => {
            let len = after.bytes().take_while(u8::is_ascii_digit).count();
            if len == 0 {
                return None;
            }
            after.split_at(len)
        }
        None => ("", rest),
    };
    let offset_secs = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = match zone.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let [hours, minutes] = fields(zone.get(1..)?, ':', [2, 2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 3600 + minutes * 60)
        }
    };
    if !(1..=12).contains(&month)
        || !(1..=month_len(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    // Nanoseconds: the first nine digits, padded on the right.
    let mut nanos = String::from(fraction.get(..9).unwrap_or(fraction));
    while nanos.len() < 9 {
        nanos.push('0');
    }
    let nanos: u32 = nanos.parse().ok()?;
    let local = days_since_1970(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let utc = u64::try_from(local - offset_secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(utc, nanos))
}

/// `N` fields of exactly the given digit counts, split by `separator`.
fn fields<const N: usize>(text: &str, separator: char, lens: [usize; N]) -> Option<[i64; N]> {
    let parts: Vec<&str> = text.split(separator).collect();
    if parts.len() != N {
        return None;
    }
    let mut out = [0i64; N];
    for ((slot, part), len) in out.iter_mut().zip(parts).zip(lens) {
        if part.len() != len || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    Some(out)
}

fn leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn month_len(year: i64, month: i64) -> i64 {
    const DAYS: [i64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let days = usize::try_from(month - 1)
        .ok()
        .and_then(|i| DAYS.get(i))
        .copied()
        .unwrap_or(0);
    if month == 2 && leap(year) {
        days + 1
    } else {
        days
    }
}

/// Days from 1970-01-01, counted year by year and month by month.
fn days_since_1970(year: i64, month: i64, day: i64) -> i64 {
    let year_len = |y: i64| if leap(y) { 366 } else { 365 };
    let mut days: i64 = if year >= 1970 {
        (1970..year).map(year_len).sum()
    } else {
        -(year..1970).map(year_len).sum::<i64>()
    };
    days += (1..month).map(|m| month_len(year, m)).sum::<i64>();
    days + day - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t: SystemTime) -> u128 {
        t.duration_since(UNIX_EPOCH).unwrap().as_millis()
    }

    #[test]
    fn the_tree_keeps_order_duplicates_and_escapes() {
        let tree: Node =
            serde_json::from_str(r#"{"t\u0073":1,"ts":"a\\b","ts":"2","n":-1}"#).unwrap();
        let Node::Object(members) = &tree else {
            panic!("{tree:?}")
        };
        assert_eq!(members.len(), 4);
        assert!(members[0].0.escaped && members[0].0.text == "ts");
        assert!(!members[1].0.escaped);
        assert!(matches!(&members[1].1, Node::Str(t) if t.escaped && t.text == "a\\b"));
        assert!(matches!(&members[2].1, Node::Str(t) if !t.escaped));
        assert!(matches!(members[3].1, Node::OtherNumber));
        assert_eq!(ms(by_name(Venue::Okx, &tree).unwrap()), 2);
        assert!(!documented_shape(Venue::Kalshi, &tree));
    }

    #[test]
    fn rfc3339_by_hand() {
        let at = |t: &str| rfc3339(t).map(ms);
        assert_eq!(at("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(at("2023-09-25T07:49:37.708706Z"), Some(1_695_628_177_708));
        assert_eq!(
            at("2023-09-25 09:49:37.708706+02:00"),
            Some(1_695_628_177_708)
        );
        assert_eq!(at("1969-12-31T23:30:00-01:00"), Some(1_800_000));
        assert_eq!(at("2000-02-29t00:00:00z"), Some(951_782_400_000));
        for bad in [
            "1969-12-31T23:59:59Z",
            "2023-02-29T00:00:00Z",
            "2023-09-25T23:59:60Z",
        ] {
            assert_eq!(rfc3339(bad), None, "{bad}");
        }
    }
}
