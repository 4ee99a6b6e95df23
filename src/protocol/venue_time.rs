//! The venue's own timestamp of a data frame, read by a key search.
//!
//! Each built-in adapter hands the session its search as a plain function
//! ([`Protocol::venue_time_finder`](super::Protocol::venue_time_finder),
//! the functions of [`finder`]); the session keeps it on each data frame and
//! [`Frame::venue_time`](crate::Frame::venue_time) runs it on the frame's
//! bytes when asked, so a consumer that never asks pays nothing. One who
//! asks may ask per frame, so it must cost little: tens of nanoseconds, not
//! a walk over the payload. Rules, and why:
//! - **A substring search, never a parse.** The key with its quotes
//!   (`"ts_ms"`) is searched for in the text the adapter already validated
//!   as JSON, followed by `:`; then only the value is read. In valid JSON
//!   that text is a member name: inside a string its quotes would be escaped
//!   (a match preceded by `\` is skipped), and a string followed by `:` is
//!   always a name.
//! - **One member of that name, at any depth: the last for a stamp the
//!   venue writes near the end (Kalshi, Kraken and OKX rows), the first for
//!   one near the start (WEEX `E`)**, so the search reads little of the
//!   frame. The venues put the stamp once per row and nest no object with
//!   the same name in the documented messages (Kraken book levels are
//!   `price`/`qty` pairs); for a multi-row payload it is the last row's
//!   stamp, the newest. A name written with escapes (`"t\u0073"`) is not
//!   found: the frame then has no venue time.
//! - **Anything unexpected is `None`**: a missing key, a value of another
//!   type, a string value written with escapes (`"16300\u0034..."`: never
//!   decoded), a time before 1970 or past what [`SystemTime`] holds. A venue
//!   time is information, not a routing fact, so it is never guessed.
//! - **Checked by a differential fuzz target**, `venue_time`
//!   (`testkit/src/venue_time.rs`): through each adapter, the answer equals
//!   these rules read from a serde tree, and, on payloads of the documented
//!   shape, the venue's documented field read with `serde_json::Value`.
//!
//! Where each venue puts its stamp (sources in `src/protocol/VENUES.md`,
//! "Typed data"): Kraken v2 `timestamp` (RFC 3339) in each data row; OKX v5
//! `ts` (Unix ms as a string) in each data row; WEEX V3 `E` (Unix ms) at the
//! top level of the push; Kalshi `ts_ms` (Unix ms) in `msg`, else the
//! deprecated `ts` (Unix seconds, or RFC 3339 text on some channels).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::scan::{Cursor, Value};

/// A scalar member value: a number's text, or a string's content (no escapes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar<'a> {
    Num(&'a str),
    Str(&'a str),
}

/// Which occurrence of a member name to take.
#[derive(Clone, Copy)]
enum From {
    /// The first: for a stamp near the start (WEEX `E`).
    Start,
    /// The last: for a stamp near the end (Kalshi `ts`, the last row's stamp
    /// of a Kraken or OKX payload), so the search reads only the tail.
    End,
}

/// The value of the first (or last) member named `quoted_key` (the name
/// with its quotes) in `text`; `Some(None)` when it is neither a number nor
/// a string without escapes.
///
/// The search is anchored on `:`, found with `memchr` (vectorised): every
/// member name is followed by one, and a frame has a few dozen at most, so
/// only those places are compared with the key. A byte-by-byte search for
/// the key itself cost ~12 instructions per byte, ~1,250 per Kalshi ticker
/// that has no `ts_ms` (callgrind): more than the rest of the routing.
fn scalar<'a>(text: &'a str, quoted_key: &str, from: From) -> Option<Option<Scalar<'a>>> {
    let bytes = text.as_bytes();
    match from {
        From::Start => memchr::memchr_iter(b':', bytes)
            .find_map(|colon| member_at_colon(text, colon, quoted_key)),
        From::End => memchr::memrchr_iter(b':', bytes)
            .find_map(|colon| member_at_colon(text, colon, quoted_key)),
    }
}

/// For a `:` at `colon`: `None` unless the quoted name just before it (white
/// space allowed between) is `quoted_key`, else the member's scalar value.
#[inline(always)]
fn member_at_colon<'a>(
    text: &'a str,
    colon: usize,
    quoted_key: &str,
) -> Option<Option<Scalar<'a>>> {
    let at = name_before(text.as_bytes(), colon, quoted_key.as_bytes())?;
    value_after(text, at, quoted_key.len())
}

/// Where `quoted_key` starts when it ends just before `colon` (white space
/// allowed between). Inlined so that the key's length is a constant and the
/// compare needs no `memcmp` call; the closing quote and the last letter
/// are compared first, which rejects most names.
#[inline(always)]
fn name_before(bytes: &[u8], colon: usize, quoted_key: &[u8]) -> Option<usize> {
    let mut end = colon;
    while end > 0 && bytes.get(end - 1).is_some_and(is_ws) {
        end -= 1;
    }
    let at = end.checked_sub(quoted_key.len())?;
    let last = quoted_key.len().checked_sub(2)?;
    if bytes.get(at + last) != quoted_key.get(last) {
        return None;
    }
    (bytes.get(at..end)? == quoted_key).then_some(at)
}

fn is_ws(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// For a quoted name found at `at`: `None` when it is not a member name
/// (inside a string, or a string value), else the member's scalar value.
fn value_after(text: &str, at: usize, key_len: usize) -> Option<Option<Scalar<'_>>> {
    let bytes = text.as_bytes();
    if at > 0 && bytes.get(at - 1) == Some(&b'\\') {
        return None; // an escaped quote: inside a string
    }
    let mut i = at + key_len;
    while bytes.get(i).is_some_and(is_ws) {
        i += 1;
    }
    if bytes.get(i) != Some(&b':') {
        return None; // a string value, not a name
    }
    i += 1;
    while bytes.get(i).is_some_and(is_ws) {
        i += 1;
    }
    let value = match bytes.get(i) {
        Some(b'"') => {
            // One vectorised search for the closing quote or a backslash: a
            // backslash first means the content has an escape (never decoded).
            let rest = bytes.get(i + 1..).unwrap_or_default();
            match memchr::memchr2(b'"', b'\\', rest) {
                Some(len) if rest.get(len) == Some(&b'"') => {
                    text.get(i + 1..i + 1 + len).map(Scalar::Str)
                }
                _ => None,
            }
        }
        Some(b'-' | b'0'..=b'9') => {
            let rest = bytes.get(i..).unwrap_or_default();
            // The digits first (a stamp is nearly always only digits), then
            // whatever else a number may hold: the same run, fewer tests a byte.
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            let more = rest
                .get(digits..)
                .unwrap_or_default()
                .iter()
                .take_while(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                .count();
            text.get(i..i + digits + more).map(Scalar::Num)
        }
        _ => None,
    };
    Some(value)
}

/// The value of `key` among the top-level members of the object the cursor
/// is at, or `None` (absent, or the text is not an object). A full walk:
/// for opt-in decoding (the WEEX symbol), not the per-frame stamp.
pub(crate) fn member<'a>(cursor: &mut Cursor<'a>, key: &[u8]) -> Option<Value<'a>> {
    let mut members = cursor.begin_object()?;
    while let Some(name) = cursor.next_key(&mut members)? {
        let value = cursor.value()?;
        if name == key {
            return Some(value);
        }
    }
    None
}

/// Unix milliseconds as a time.
pub(crate) fn from_millis(ms: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// A non-negative integer written as plain digits, leading zeros allowed
/// (an OKX string may have any number); `None` past `u64`.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    // By hand rather than `str::parse`: this may run once per frame. The
    // checked steps bound the value; no length cap (a cap of 20 characters
    // refused `"000000000000000000001"`, found by the `venue_time` target).
    text.bytes().try_fold(0u64, |n, b| {
        let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'))?;
        n.checked_mul(10)?.checked_add(digit)
    })
}

/// Unix milliseconds written as digits (a JSON number or the digits of a string).
pub(crate) fn millis_text(text: &str) -> Option<SystemTime> {
    from_millis(digits(text)?)
}

/// Kraken v2: the last data row's `timestamp` (RFC 3339).
pub(crate) fn kraken(payload: &str) -> Option<SystemTime> {
    match scalar(payload, "\"timestamp\"", From::End)?? {
        Scalar::Str(text) => rfc3339(text),
        Scalar::Num(_) => None,
    }
}

/// OKX v5: the last data row's `ts` (Unix ms, a string of digits).
pub(crate) fn okx(payload: &str) -> Option<SystemTime> {
    match scalar(payload, "\"ts\"", From::End)?? {
        Scalar::Str(text) => millis_text(text),
        Scalar::Num(_) => None,
    }
}

/// WEEX V3: the push's `E` (Unix ms, a number).
pub(crate) fn weex(text: &str) -> Option<SystemTime> {
    match scalar(text, "\"E\"", From::Start)?? {
        Scalar::Num(text) => millis_text(text),
        Scalar::Str(_) => None,
    }
}

/// Kalshi: `msg.ts_ms` (Unix ms); without it the deprecated `msg.ts` (Unix
/// seconds, or RFC 3339 text as `orderbook_delta` once sent).
pub(crate) fn kalshi(payload: &str) -> Option<SystemTime> {
    // One pass from the end for both names: `ts_ms` wins wherever it is,
    // the last `ts` is kept in case there is none.
    const TS_MS: &str = "\"ts_ms\"";
    const TS: &str = "\"ts\"";
    let bytes = payload.as_bytes();
    let mut ts = None;
    for colon in memchr::memrchr_iter(b':', bytes) {
        // Both names end in `s"`: most members are rejected by two compares.
        let mut end = colon;
        while end > 0 && bytes.get(end - 1).is_some_and(is_ws) {
            end -= 1;
        }
        if end < 2 || bytes.get(end - 2..end) != Some(b"s\"".as_slice()) {
            continue;
        }
        if let Some(found) = member_at_colon(payload, colon, TS_MS) {
            return match found? {
                Scalar::Num(text) => millis_text(text),
                Scalar::Str(_) => None,
            };
        }
        if ts.is_none() {
            ts = member_at_colon(payload, colon, TS);
        }
    }
    match ts?? {
        Scalar::Num(text) => UNIX_EPOCH.checked_add(Duration::from_secs(digits(text)?)),
        Scalar::Str(text) => rfc3339(text),
    }
}

/// The adapters' [`VenueTimeFinder`](super::VenueTimeFinder)s: each
/// adapter's `venue_time` is its finder, so the answer is the same whether
/// the session stored the finder on the frame or the adapter was asked.
pub(crate) mod finder {
    use std::time::SystemTime;

    /// Kalshi: [`kalshi`](super::kalshi) of the payload (`msg`).
    pub(crate) fn kalshi(_text: &str, payload: &str) -> Option<SystemTime> {
        super::kalshi(payload)
    }

    /// Kraken: [`kraken`](super::kraken) of the payload (`data`).
    pub(crate) fn kraken(_text: &str, payload: &str) -> Option<SystemTime> {
        super::kraken(payload)
    }

    /// OKX: [`okx`](super::okx) of the payload (`data`).
    pub(crate) fn okx(_text: &str, payload: &str) -> Option<SystemTime> {
        super::okx(payload)
    }

    /// WEEX: [`weex`](super::weex) of the whole frame (`E` is top-level).
    pub(crate) fn weex(text: &str, _payload: &str) -> Option<SystemTime> {
        super::weex(text)
    }
}

/// An RFC 3339 date-time (`2023-09-25T07:49:37.708706Z`, or with a
/// `+hh:mm`/`-hh:mm` offset): at most nanosecond precision (further digits
/// are cut), no leap second, nothing before 1970.
pub(crate) fn rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0u64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
        })
    };
    let punct = |at: usize, want: &[u8]| b.get(at).is_some_and(|c| want.contains(c));
    if !(punct(4, b"-")
        && punct(7, b"-")
        && punct(10, b"Tt ")
        && punct(13, b":")
        && punct(16, b":"))
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut nanos = 0u32;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while let Some(d) = b.get(at).filter(|d| d.is_ascii_digit()) {
            if at - start < 9 {
                nanos = nanos * 10 + u32::from(d - b'0');
            }
            at += 1;
        }
        let places = at - start;
        if places == 0 {
            return None;
        }
        for _ in places..9 {
            nanos *= 10;
        }
    }
    let offset_secs: i64 = match b.get(at)? {
        b'Z' | b'z' if at + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if at + 6 == b.len() && punct(at + 3, b":") => {
            let (h, m) = (num(at + 1..at + 3)?, num(at + 4..at + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = (h * 3600 + m * 60) as i64;
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let local = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64;
    let utc = u64::try_from(local - offset_secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(utc, nanos))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (the well-known
/// era-based conversion; `year` is at most 9999 here, so nothing overflows).
fn days_from_civil(year: u64, month: u64, day: u64) -> i64 {
    let (year, month, day) = (year as i64, month as i64, day as i64);
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t: SystemTime) -> u128 {
        t.duration_since(UNIX_EPOCH).unwrap().as_millis()
    }

    fn nanos(t: SystemTime) -> u128 {
        t.duration_since(UNIX_EPOCH).unwrap().as_nanos()
    }

    #[test]
    fn rfc3339_reads_kraken_stamps_exactly() {
        // 2023-09-25T07:49:37.708706Z = 1695628177.708706 s.
        let t = rfc3339("2023-09-25T07:49:37.708706Z").unwrap();
        assert_eq!(nanos(t), 1_695_628_177_708_706_000);
        assert_eq!(ms(rfc3339("1970-01-01T00:00:00Z").unwrap()), 0);
        assert_eq!(
            ms(rfc3339("2000-02-29T00:00:00Z").unwrap()),
            951_782_400_000
        );
        assert_eq!(
            rfc3339("2023-09-25T09:49:37.708706+02:00"),
            rfc3339("2023-09-25T07:49:37.708706Z")
        );
        assert_eq!(
            nanos(rfc3339("2023-09-25T07:49:37.1234567891Z").unwrap()) % 1_000_000_000,
            123_456_789
        );
        for bad in [
            "",
            "2023-09-25",
            "2023-09-25T07:49:37",
            "2023-13-25T07:49:37Z",
            "2023-02-29T07:49:37Z",
            "2023-09-25T24:00:00Z",
            "2023-09-25T07:49:37.Z",
            "2023-09-25T07:49:37Zjunk",
            "1969-12-31T23:59:59Z",
            "2023-09-25T07:49:37+0200",
            "２023-09-25T07:49:37Z",
        ] {
            assert_eq!(rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn each_venue_reads_its_documented_stamp() {
        let kraken_trade = r#"[{"symbol":"MATIC/USD","side":"buy","price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,"timestamp":"2023-09-25T07:49:37.708706Z"}]"#;
        assert_eq!(
            nanos(kraken(kraken_trade).unwrap()),
            1_695_628_177_708_706_000
        );
        // The last row's stamp; a string that merely holds the key's text
        // (escaped quotes) or a value spelled like the key is not a name.
        let tricky = r#"[{"timestamp":"2024-01-01T00:00:00Z"},{"timestamp" : "2023-09-25T07:49:37.708706Z","note":"\"timestamp\":\"2001-01-01T00:00:00Z\"","x":"timestamp"}]"#;
        assert_eq!(nanos(kraken(tricky).unwrap()), 1_695_628_177_708_706_000);
        assert_eq!(kraken(r#"[{"timestamp":1695628177}]"#), None);
        assert_eq!(kraken("[]"), None);

        let okx_trade = r#"[{"instId":"BTC-USDT","tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897","count":"3"}]"#;
        assert_eq!(ms(okx(okx_trade).unwrap()), 1_630_048_897_897);
        assert_eq!(
            okx(r#"[{"ts":1630048897897}]"#),
            None,
            "OKX sends ts as a string"
        );

        let weex_trade = r#"{"e":"trade","E":1775118619709,"s":"ETHUSDT","d":[{"T":1775118619691,"t":"8cd2","p":"2050.56","q":"0.02625","v":"53.8272000","m":true}]}"#;
        assert_eq!(ms(weex(weex_trade).unwrap()), 1_775_118_619_709);

        let kalshi_both = r#"{"market_ticker":"M","ts":1707667200,"ts_ms":1707667200123}"#;
        assert_eq!(ms(kalshi(kalshi_both).unwrap()), 1_707_667_200_123);
        let kalshi_secs = r#"{"market_ticker":"M","ts":1707667200}"#;
        assert_eq!(ms(kalshi(kalshi_secs).unwrap()), 1_707_667_200_000);
        let kalshi_text = r#"{"market_ticker":"M","ts":"2026-02-14T15:30:00Z"}"#;
        assert_eq!(ms(kalshi(kalshi_text).unwrap()), 1_771_083_000_000);
        assert_eq!(kalshi(r#"{"market_ticker":"M"}"#), None);
        // A string holding `"ts_ms":` (escaped quotes) is not a member.
        let kalshi_escaped = r#"{"note":"a \"ts_ms\":5","ts":1707667200}"#;
        assert_eq!(ms(kalshi(kalshi_escaped).unwrap()), 1_707_667_200_000);
        assert_eq!(kalshi(r#"{"ts":-1}"#), None);
        assert_eq!(kalshi(r#"{"ts":1.5}"#), None);
        assert_eq!(digits("18446744073709551615"), Some(u64::MAX));
        assert_eq!(digits("18446744073709551616"), None, "overflow");
        assert_eq!(digits("12a"), None);
        assert_eq!(digits("000000000000000000001"), Some(1), "leading zeros");
        assert_eq!(digits("018446744073709551616"), None, "overflow");
        assert_eq!(
            kalshi(r#"{"ts_ms":"1707667200123","ts":1}"#),
            None,
            "ts_ms of the wrong type"
        );
        assert_eq!(weex(r#"{"e":"x","E":"1"}"#), None);
        assert_eq!(kalshi("not json"), None);
    }

    /// A frame keeps its adapter's search and runs it when asked: asked
    /// once, twice, or on a clone, the answer is the one the adapter's
    /// `venue_time` gives for the frame's text and payload as it is routed
    /// (the eager answer frames carried before), for each built-in adapter.
    #[test]
    fn a_frames_venue_time_found_when_asked_is_the_adapters_answer() {
        use crate::protocol::{Kalshi, Kraken, Okx, Protocol, Weex};
        use crate::Frame;

        fn holds<P: Protocol>(mut adapter: P, samples: &[(&str, Option<u128>)]) {
            assert!(
                adapter.venue_time_finder().is_some(),
                "{}: a built-in adapter hands the session its search",
                adapter.name()
            );
            for &(text, want_nanos) in samples {
                let frame = Frame::classified(&mut adapter, text);
                let eager =
                    adapter.venue_time(frame.as_text().unwrap(), frame.payload_text().unwrap());
                let once = frame.venue_time();
                let twice = frame.venue_time();
                assert_eq!(once, eager, "{text}");
                assert_eq!(twice, eager, "{text}");
                assert_eq!(frame.clone().venue_time(), eager, "{text}");
                assert_eq!(once.map(nanos), want_nanos, "{text}");
            }
        }

        holds(
            Kalshi::new(),
            &[
                (
                    r#"{"type":"trade","sid":11,"seq":3,"msg":{"trade_id":"d91bc706-ee49-470d-82d8-11418bda6fed","market_ticker":"HIGHNY-22DEC23-B53.5","yes_price_dollars":"0.36","count_fp":"136.00","taker_side":"no","ts":1669149841,"ts_ms":1669149841123}}"#,
                    Some(1_669_149_841_123_000_000),
                ),
                (
                    r#"{"type":"ticker","sid":1,"seq":2,"msg":{"market_ticker":"KX-001","price":48,"yes_bid":47,"yes_ask":49,"ts":1669149841}}"#,
                    Some(1_669_149_841_000_000_000),
                ),
                (
                    r#"{"type":"ticker","sid":1,"seq":3,"msg":{"market_ticker":"KX-001","price":48}}"#,
                    None,
                ),
            ],
        );
        holds(
            Kraken::new(),
            &[
                (
                    r#"{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"buy","price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,"timestamp":"2023-09-25T07:49:37.708706Z"}]}"#,
                    Some(1_695_628_177_708_706_000),
                ),
                (
                    r#"{"channel":"ticker","type":"update","data":[{"symbol":"ALGO/USD","bid":0.10025,"bid_qty":740.0,"ask":0.10036,"ask_qty":1361.44813783,"last":0.10035,"volume":997038.98383185,"vwap":0.10148,"low":0.09979,"high":0.10285,"change":-0.00017,"change_pct":-0.17,"timestamp":"2023-09-25T09:04:31.742648Z"}]}"#,
                    Some(1_695_632_671_742_648_000),
                ),
                (
                    r#"{"channel":"ticker","type":"update","data":[{"symbol":"ALGO/USD","bid":0.10025}]}"#,
                    None,
                ),
            ],
        );
        holds(
            Okx::new(),
            &[
                (
                    r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897","count":"3"}]}"#,
                    Some(1_630_048_897_897_000_000),
                ),
                (
                    r#"{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instType":"SPOT","instId":"BTC-USDT","last":"9999.99","lastSz":"0.1","askPx":"9999.99","askSz":"11","bidPx":"8888.88","bidSz":"5","ts":"1597026383085"}]}"#,
                    Some(1_597_026_383_085_000_000),
                ),
            ],
        );
        holds(
            Weex::new(),
            &[(
                r#"{"e":"trade","E":1775118619709,"s":"ETHUSDT","d":[{"T":1775118619691,"t":"8cd2","p":"2050.56","q":"0.02625","v":"53.8272000","m":true}]}"#,
                Some(1_775_118_619_709_000_000),
            )],
        );
    }
}
