//! `venue_time`: the per-frame venue-time scanner (`protocol::venue_time`,
//! a `memchr` search for the member name) against a plain serde_json
//! reading of each venue's documented field (`model/venue_time.rs`).
//!
//! Each frame goes through the real adapter as the session sends it:
//! `classify`, and for a data frame `venue_time(text, payload)` with the
//! payload span the adapter found. What must hold, for every data frame:
//! - The payload the scanner reads is valid JSON (the adapters validate what
//!   they accept; the scanner's rules rely on it).
//! - The adapter's finder (`venue_time_finder`, which the session keeps on
//!   each frame and runs when `Frame::venue_time` is asked) gives the same
//!   answer as `venue_time`.
//! - The answer equals [`by_name`]: the scanner's documented contract (the
//!   last, for WEEX the first, member of that name at any depth whose name
//!   has no escapes; a string value with escapes declined; anything of
//!   another type or out of range `None`), on an order-preserving serde tree.
//! - When the payload has the documented shape ([`documented_shape`]: each
//!   stamp name only where the venue documents it, once per object), the
//!   answer equals [`documented`], the venue's documented field read from a
//!   `serde_json::Value`.
//!
//! The one allowed difference from [`documented`] is written out here: on a
//! documented-shape payload whose stamp is a string written with escapes
//! (`"16300\u00348897897"`), the scanner declines (`None`) where serde
//! would decode it. Off the documented shape (the name nested elsewhere,
//! twice in an object, written with escapes, a row without it) the scanner
//! is held to [`by_name`] only: it reads one member by name, by design.
//!
//! Input: a first byte below `0x80` makes the input text lines, each sent
//! raw to every adapter and placed as the payload of each venue's data
//! envelope. A first byte from `0x80` makes the rest generator bytes: frames
//! for each venue whose payloads put the stamp names in string values and
//! escaped quotes, with white space around `:`, nested under the same name,
//! duplicated, escaped, with values of every type, out of range, and RFC
//! 3339 text mutated by the bytes.

use std::time::SystemTime;

use serde_json::Value;

use super::model::venue_time::{
    by_name, documented, documented_shape, documented_value_escaped, Node, Venue,
};
use resilient_ws::fuzzing::span_of;
use resilient_ws::protocol::Inbound;
use resilient_ws::{Kalshi, Kraken, Okx, Protocol, Weex};

/// At most this many generated frames per input (one run stays short).
const MAX_FRAMES: usize = 16;
/// At most this many text lines per input.
const MAX_LINES: usize = 16;

/// Fuzz entry point: see the module docs.
///
/// # Panics
///
/// When the scanner's answer differs from the reference.
pub fn venue_time(data: &[u8]) {
    let mut adapters = Adapters::new();
    match data.split_first() {
        Some((&first, rest)) if first >= 0x80 => generated(&mut adapters, rest),
        _ => lines(&mut adapters, data),
    }
}

/// One adapter of each venue.
struct Adapters {
    kalshi: Kalshi,
    okx: Okx,
    kraken: Kraken,
    weex: Weex,
}

impl Adapters {
    fn new() -> Self {
        Self {
            kalshi: Kalshi::new(),
            okx: Okx::new(),
            kraken: Kraken::new(),
            weex: Weex::new(),
        }
    }

    fn get(&mut self, venue: Venue) -> &mut dyn Protocol {
        match venue {
            Venue::Kalshi => &mut self.kalshi,
            Venue::Okx => &mut self.okx,
            Venue::Kraken => &mut self.kraken,
            Venue::Weex => &mut self.weex,
        }
    }
}

/// Each venue's data envelope with the payload at `@`.
fn envelope(venue: Venue) -> (&'static str, &'static str) {
    match venue {
        Venue::Kalshi => (r#"{"type":"trade","sid":1,"seq":1,"msg":"#, "}"),
        Venue::Okx => (
            r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":"#,
            "}",
        ),
        Venue::Kraken => (r#"{"channel":"trade","type":"update","data":"#, "}"),
        Venue::Weex => (r#"{"e":"trade","s":"BTCUSDT","d":"#, "}"),
    }
}

fn lines(adapters: &mut Adapters, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n').take(MAX_LINES) {
        for venue in Venue::ALL {
            check(adapters.get(venue), venue, line, None);
            let (head, tail) = envelope(venue);
            let wrapped = format!("{head}{line}{tail}");
            check(adapters.get(venue), venue, &wrapped, None);
        }
    }
}

/// Classifies `text` and, for a data frame, holds the venue time to the
/// references. `placed` is the payload text the generator put in the frame,
/// which must be the span the adapter hands on.
fn check(adapter: &mut dyn Protocol, venue: Venue, text: &str, placed: Option<&str>) {
    let mut inbound = adapter.classify(text);
    while let Inbound::Sequenced { then, .. } = inbound {
        inbound = *then;
    }
    let Inbound::Data { payload, .. } = inbound else {
        assert!(
            placed.is_none(),
            "a generated {venue:?} frame is not data: {text}"
        );
        return;
    };
    // As the session does: the span of the payload the adapter named, else
    // the whole frame.
    let payload = payload
        .and_then(|part| span_of(text, part))
        .and_then(|(start, end)| text.get(start as usize..end as usize))
        .unwrap_or(text);
    let got = adapter.venue_time(text, payload);
    // What a frame's `venue_time()` runs when asked: the same answer.
    if let Some(find) = adapter.venue_time_finder() {
        assert_eq!(
            find(text, payload),
            got,
            "{venue:?}: the finder differs from venue_time on {text}"
        );
    }
    if let Some(placed) = placed {
        assert_eq!(payload, placed, "{venue:?}: the payload span");
    }
    // WEEX documents its stamp at the top level of the push: the whole frame.
    let read = if venue == Venue::Weex { text } else { payload };
    let tree: Node = match serde_json::from_str(read) {
        Ok(tree) => tree,
        // serde's own nesting limit; the adapters' scanners have a lower one.
        Err(error) if error.to_string().contains("recursion limit") => return,
        // serde's own number limit: JSON's grammar has no range (RFC 8259
        // section 6 leaves it to implementations), so a number past `f64`
        // (`1e400`) is JSON the scanner may pass on and serde cannot read;
        // the scanner reads no stamp in exponent form (its contract), and
        // there is no reference to hold it to here.
        Err(error) if error.to_string().contains("number out of range") => return,
        Err(error) => panic!("{venue:?}: a data payload that is not JSON ({error}): {read}"),
    };
    let contract = by_name(venue, &tree);
    assert_eq!(
        got, contract,
        "{venue:?}: the scanner breaks its own contract on {read}"
    );
    if documented_shape(venue, &tree) {
        let value: Value = serde_json::from_str(read).unwrap_or(Value::Null);
        let expected: Option<SystemTime> = if documented_value_escaped(venue, &tree) {
            None // allowed: the scanner reads no escapes (see the module docs)
        } else {
            documented(venue, &value)
        };
        assert_eq!(
            got, expected,
            "{venue:?}: differs from the documented field on {read}"
        );
    }
}

// ---------------------------------------------------------------------------
// Generated frames
// ---------------------------------------------------------------------------

fn generated(adapters: &mut Adapters, data: &[u8]) {
    let mut bytes = Bytes { data, at: 0 };
    for _ in 0..MAX_FRAMES {
        if bytes.done() {
            break;
        }
        let venue = Venue::ALL[usize::from(bytes.next()) % 4];
        let mut generator = Generator {
            bytes: &mut bytes,
            venue,
            out: String::new(),
        };
        let (text, payload) = generator.frame();
        let placed = payload.as_deref().map(|p| p.trim_matches(WS));
        check(adapters.get(venue), venue, &text, placed);
    }
}

const WS: &[char] = &[' ', '\t', '\n', '\r'];

/// The fuzzer's bytes, read one at a time (zeros once they run out).
struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        let byte = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        byte
    }

    fn done(&self) -> bool {
        self.at >= self.data.len()
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::from(self.next()) % items.len()]
    }
}

/// Member names: each venue's stamp names, spelled plainly, with escapes,
/// and near misses.
const NAMES: &[&str] = &[
    "ts_ms",
    "ts",
    "timestamp",
    "E",
    r"t\u0073",
    r"ts\u005fms",
    r"\u0045",
    r"tim\u0065stamp",
    r#"a\"ts"#,
    r#"\"ts\""#,
    r"\\",
    "ts_m",
    "s_ms",
    "Ts",
    "e",
    "T",
    "timestamps",
    "x",
    "",
];

/// Stamp-like string contents (JSON-escaped where needed).
const STRINGS: &[&str] = &[
    "1630048897897",
    "1707667200123",
    "0",
    "18446744073709551615",
    "18446744073709551616",
    "",
    "-1",
    "+1",
    "1.5",
    "1e3",
    " 1",
    r"1630\u00308897897",
    "2023-09-25T07:49:37.708706Z",
    "2023-09-25t07:49:37z",
    "2023-09-25 07:49:37Z",
    "2023-09-25T09:49:37.708706+02:00",
    "1969-12-31T23:30:00-01:00",
    "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "2024-02-29T00:00:00Z",
    "2023-02-29T00:00:00Z",
    "2023-09-25T23:59:60Z",
    "9999-12-31T23:59:59.999999999Z",
    "2023-09-25T07:49:37.1234567891Z",
    "2023-09-25T07:49:37.Z",
    "2023-09-25T07:49:37+24:00",
    "0000-01-01T23:59:59-23:59",
    "2026-02-14T15:30:00Z",
    r"2023-09-25T07:49:37\u002e5Z",
    r#"\"ts\":\"1630048897897\""#,
    r#"\"ts_ms\": 5, \"E\":1"#,
    r#"{\"timestamp\":\"2001-01-01T00:00:00Z\"}"#,
    r"a \\",
    ":",
    "ts",
    "E",
];

/// Number texts: in and out of every range the venues use.
const NUMBERS: &[&str] = &[
    "0",
    "1707667200",
    "1707667200123",
    "1775118619709",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "9223372036854775807",
    "9223372036854775808",
    "-1",
    "-0",
    "1.5",
    "1e3",
    "1E+3",
    "1.0",
    "0.0",
];

const SPACES: &[&str] = &["", "", "", " ", "\n", "\t ", "\r\n  "];

const CHAR_EDITS: &[char] = &[
    '0', '1', '2', '9', '-', ':', '+', 'T', 'Z', 'z', ' ', '.', 'x',
];

/// Writes one frame from the bytes.
struct Generator<'b, 'a> {
    bytes: &'b mut Bytes<'a>,
    venue: Venue,
    out: String,
}

impl Generator<'_, '_> {
    /// A frame of the venue, and the payload text placed in it (`None` for
    /// WEEX, whose stamp is read from the whole push).
    fn frame(&mut self) -> (String, Option<String>) {
        match self.venue {
            Venue::Weex => {
                // The routing members first, so the push stays a `trade`.
                self.out.push_str(r#"{"e":"trade","s":"BTCUSDT""#);
                self.members(0, true);
                self.out.push('}');
                (std::mem::take(&mut self.out), None)
            }
            Venue::Kalshi => {
                self.object(0);
                let payload = std::mem::take(&mut self.out);
                let (head, tail) = envelope(self.venue);
                (format!("{head}{payload}{tail}"), Some(payload))
            }
            Venue::Okx | Venue::Kraken => {
                self.out.push('[');
                let rows = self.bytes.next() % 4;
                for row in 0..rows {
                    if row > 0 {
                        self.out.push(',');
                    }
                    self.object(0);
                }
                self.out.push(']');
                let payload = std::mem::take(&mut self.out);
                let (head, tail) = envelope(self.venue);
                (format!("{head}{payload}{tail}"), Some(payload))
            }
        }
    }

    fn space(&mut self) {
        let space = self.bytes.pick(SPACES);
        self.out.push_str(space);
    }

    fn object(&mut self, depth: u8) {
        self.out.push('{');
        self.members(depth, false);
        self.out.push('}');
    }

    /// Up to four members; `after_first` when members precede them.
    fn members(&mut self, depth: u8, after_first: bool) {
        let count = self.bytes.next() % 5;
        for i in 0..count {
            if i > 0 || after_first {
                self.out.push(',');
            }
            self.space();
            let name = match self.name() {
                // The push's own routing member: a second one is refused.
                "e" if self.venue == Venue::Weex && depth == 0 => "E",
                name => name,
            };
            self.out.push('"');
            self.out.push_str(name);
            self.out.push('"');
            self.space();
            self.out.push(':');
            self.space();
            self.value(depth + 1);
            self.space();
        }
    }

    /// Mostly this venue's own stamp names, else any from [`NAMES`].
    fn name(&mut self) -> &'static str {
        let choice = self.bytes.next();
        let own = self.venue.keys();
        match choice % 8 {
            0..=3 => own[usize::from(choice / 8) % own.len()],
            _ => NAMES[usize::from(choice / 8) % NAMES.len()],
        }
    }

    fn value(&mut self, depth: u8) {
        match self.bytes.next() % 12 {
            0..=3 => self.string(),
            4..=5 => {
                let number = self.bytes.pick(NUMBERS);
                self.out.push_str(number);
            }
            6 => {
                // Any u64, or past it.
                let mut n = 0u64;
                for _ in 0..8 {
                    n = n << 8 | u64::from(self.bytes.next());
                }
                self.out.push_str(&n.to_string());
                if self.bytes.next() % 4 == 0 && n != 0 {
                    self.out.push('0'); // ten times it: past u64 for most
                }
            }
            7 | 8 if depth < 4 => self.object(depth),
            9 if depth < 4 => {
                self.out.push('[');
                let items = self.bytes.next() % 3;
                for i in 0..items {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.space();
                    self.value(depth + 1);
                }
                self.out.push(']');
            }
            10 => {
                let literal = self.bytes.pick(&["true", "false", "null"]);
                self.out.push_str(literal);
            }
            _ => self.string(),
        }
    }

    /// A string from [`STRINGS`], maybe edited by the bytes: leading zeros,
    /// one character replaced, or cut short (kept valid JSON).
    fn string(&mut self) {
        let mut text = String::from(self.bytes.pick(STRINGS));
        match self.bytes.next() % 8 {
            0 => {
                let zeros = usize::from(self.bytes.next() % 24);
                text.insert_str(0, &"0".repeat(zeros));
            }
            1 | 2 => {
                let at = usize::from(self.bytes.next());
                let with = self.bytes.pick(CHAR_EDITS);
                if let Some(pos) = plain_position(&text, at) {
                    text.replace_range(pos..pos + 1, with.encode_utf8(&mut [0; 4]));
                }
            }
            3 => {
                let at = usize::from(self.bytes.next());
                if let Some(pos) = plain_position(&text, at) {
                    text.truncate(pos);
                }
            }
            _ => {}
        }
        self.out.push('"');
        self.out.push_str(&text);
        self.out.push('"');
    }
}

/// A byte position in `text` (from `at`, wrapped) that is neither inside an
/// escape sequence nor a backslash, so an edit there keeps the string valid.
fn plain_position(text: &str, at: usize) -> Option<usize> {
    if text.is_empty() || text.contains('\\') {
        return None; // edits only on strings without escapes
    }
    Some(at % text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_frames_have_a_venue_time() {
        // Each venue's documented push, as a line: every one is data and
        // has a stamp (checked against both references by `check`).
        let frames = [
            (
                Venue::Kalshi,
                r#"{"type":"trade","sid":11,"seq":3,"msg":{"trade_id":"d91bc706-ee49-470d-82d8-11418bda6fed","market_ticker":"HIGHNY-22DEC23-B53.5","yes_price_dollars":"0.36","count_fp":"136.00","taker_side":"no","ts":1669149841,"ts_ms":1669149841123}}"#,
            ),
            (
                Venue::Okx,
                r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897","count":"3"}]}"#,
            ),
            (
                Venue::Kraken,
                r#"{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"buy","price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,"timestamp":"2023-09-25T07:49:37.708706Z"}]}"#,
            ),
            (
                Venue::Weex,
                r#"{"e":"trade","E":1775118619709,"s":"ETHUSDT","d":[{"T":1775118619691,"t":"8cd2","p":"2050.56","q":"0.02625","v":"53.8272000","m":true}]}"#,
            ),
        ];
        let mut adapters = Adapters::new();
        for (venue, text) in frames {
            let adapter = adapters.get(venue);
            let Inbound::Data { payload, .. } = adapter.classify(text) else {
                panic!("{venue:?} not data");
            };
            assert!(adapter.venue_time(text, payload.unwrap_or(text)).is_some());
            check(adapter, venue, text, None);
        }
    }

    #[test]
    fn generated_frames_are_data() {
        // A spread of generator inputs: every generated frame must classify
        // as data (else `check` panics), so the generator stays useful.
        for seed in 0u8..=255 {
            let data: Vec<u8> = (0..200u32)
                .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed ^ 0x5a))
                .collect();
            venue_time(&[[0x80].as_slice(), &data].concat());
        }
    }
}
