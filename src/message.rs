//! What consumers receive: data frames and in-band signals.
//!
//! A [`Frame`] shares the socket's buffer (`Bytes` underneath), so handing it
//! from the supervisor to a stream never copies the payload. It also carries
//! what the library learnt while routing it, so consumers never parse twice:
//! - the client id of the subscription it was routed to;
//! - when it was read from the socket: a monotonic [`Instant`] (for ages and
//!   latencies) and a wall-clock [`SystemTime`] (for logs; derived from the
//!   monotonic clock and an anchor taken at each connect, so it never jumps
//!   within a connection);
//! - the byte span of the venue payload the protocol found while classifying
//!   (Kalshi `msg`, Kraken `data`), which [`Frame::payload`] returns and
//!   [`Frame::decode`] deserializes with serde, borrowing where the target
//!   type borrows;
//! - the venue's own timestamp, when the venue stamps its data
//!   ([`Frame::venue_time`]): found by a key search when it is asked, not as
//!   the frame is routed, so a consumer that never asks pays nothing. The
//!   frame keeps the adapter's search (a function pointer,
//!   [`Protocol::venue_time_finder`](crate::Protocol::venue_time_finder)),
//!   which reads the frame's own bytes: every ask gives the same answer, the
//!   one the adapter's [`Protocol::venue_time`](crate::Protocol::venue_time)
//!   gives. An adapter without a finder is asked once as the frame is
//!   routed, and the frame keeps the answer.

use std::fmt;
use std::time::{Instant, SystemTime};

use serde::Deserialize;
use tungstenite::{Bytes, Utf8Bytes};

use crate::ids::ClientId;
use crate::protocol::ServerId;

/// When a frame was read from the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Monotonic time of the read (ages, latencies).
    pub at: Instant,
    /// Wall-clock time of the read (logs): the connection's wall-clock anchor
    /// plus the monotonic time since, so it is consistent within a connection.
    pub wall: SystemTime,
}

impl Received {
    /// Now, on both clocks.
    pub fn now() -> Self {
        Received {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// A payload that did not deserialize into the requested type.
///
/// It names where in the payload decoding failed and why (serde's message,
/// which quotes at most a scalar of the market data, never configuration or
/// credentials).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode the payload of subscription {client_id} as {target}: {category} error at line {line} column {column}: {message}")]
#[non_exhaustive]
pub struct DecodeError {
    /// The client id of the frame's subscription (0 for an unsolicited frame).
    pub client_id: ClientId,
    /// The Rust type that was asked for.
    pub target: &'static str,
    /// What kind of failure: `syntax`, `data` (valid JSON, wrong shape) or `eof`.
    pub category: &'static str,
    /// 1-based line in the payload (0 when the failure is about a value,
    /// not a place in the text, e.g. a ticker frame with no row).
    pub line: usize,
    /// 1-based column in the payload (0 as for `line`).
    pub column: usize,
    /// serde's description.
    pub message: String,
}

/// One data message as received, with the sequence number the protocol
/// reported, the subscription it was routed to, when it was read, and where
/// its venue payload is. Equality ignores the receive time.
// Every frame is moved several times between the socket and the consumer
// (into the queue, out of it, into a `SetItem`, out of `poll_next`), so it is
// kept small: the optional facts' flags ride in the payload enum's padding
// (`Shape`) instead of in `Option`s of their own, and the venue time is a
// function pointer until asked. That keeps a `Frame` (and an `Update`) at
// 112 bytes, which lets `Result<Update, Error>` use `Error`'s spare tag
// values and stay at `Error`'s 120 (pinned by `tests::moved_values_stay_small`).
#[derive(Clone)]
pub struct Frame {
    payload: Payload,
    /// The sequence number, when `payload`'s shape says the frame has one.
    seq: u64,
    /// 0: no subscription (unsolicited, a response).
    client_id: u64,
    /// Byte range of the venue payload inside the text, when `payload`'s
    /// shape says the adapter named one (else the whole frame).
    span: (u32, u32),
    received: Received,
    venue_time: VenueTime,
}

/// A frame's venue time: the search that finds it when asked, or the answer
/// found as the frame was routed.
#[derive(Clone, Copy)]
enum VenueTime {
    /// Found when asked, by the adapter's search over the frame's text and
    /// payload (the built-in adapters).
    Find(crate::protocol::VenueTimeFinder),
    /// Found as the frame was routed (an adapter without a finder), or none.
    Known(Option<SystemTime>),
}

/// The frame's bytes, and its shape beside them (in the enum's padding).
#[derive(Clone)]
enum Payload {
    Text(Utf8Bytes, Shape),
    Binary(Bytes, Shape),
}

/// Which of a frame's optional facts it has: flags, not `Option`s, so they
/// fit in [`Payload`]'s padding.
#[derive(Clone, Copy, Default)]
struct Shape {
    /// `Frame::seq` holds the protocol's sequence number.
    has_seq: bool,
    /// `Frame::span` holds the adapter's payload span.
    has_span: bool,
}

impl Payload {
    fn shape(&self) -> Shape {
        match self {
            Payload::Text(_, shape) | Payload::Binary(_, shape) => *shape,
        }
    }

    fn shape_mut(&mut self) -> &mut Shape {
        match self {
            Payload::Text(_, shape) | Payload::Binary(_, shape) => shape,
        }
    }
}

/// The byte span of `part` inside `text`, when `part` is a sub-slice of it.
pub fn span_of(text: &str, part: &str) -> Option<(u32, u32)> {
    let start = (part.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    // Confirms both ends are in bounds and on char boundaries, and that the
    // slice really is `part` (not an equal string elsewhere in memory).
    let found = text.get(start..end)?;
    if found.as_ptr() != part.as_ptr() {
        return None;
    }
    Some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
}

impl Frame {
    /// A text frame (mostly for tests and custom protocols): no subscription,
    /// the whole text as payload, received now.
    pub fn text(text: impl Into<String>, seq: Option<u64>) -> Self {
        Self::from_text(Utf8Bytes::from(text.into()), seq, Received::now())
    }

    pub(crate) fn from_text(text: Utf8Bytes, seq: Option<u64>, received: Received) -> Self {
        let shape = Shape {
            has_seq: seq.is_some(),
            has_span: false,
        };
        Frame {
            payload: Payload::Text(text, shape),
            seq: seq.unwrap_or_default(),
            client_id: 0,
            span: (0, 0),
            received,
            venue_time: VenueTime::Known(None),
        }
    }

    pub(crate) fn from_binary(data: Bytes, received: Received) -> Self {
        Frame {
            payload: Payload::Binary(data, Shape::default()),
            seq: 0,
            client_id: 0,
            span: (0, 0),
            received,
            venue_time: VenueTime::Known(None),
        }
    }

    /// Sets the payload span (byte offsets into the text, as found by [`span_of`]).
    pub(crate) fn with_span(mut self, span: Option<(u32, u32)>) -> Self {
        if let Some(span) = span {
            self.span = span;
            self.payload.shape_mut().has_span = true;
        }
        self
    }

    /// Gives a data frame its venue time as `protocol` finds it: the
    /// adapter's finder, kept to run when asked, or else the adapter's
    /// answer now (see [`Protocol::venue_time_finder`](crate::Protocol::venue_time_finder)).
    pub(crate) fn stamp_venue_time<P: crate::protocol::Protocol + ?Sized>(&mut self, protocol: &P) {
        self.venue_time = match protocol.venue_time_finder() {
            Some(find) => VenueTime::Find(find),
            None => VenueTime::Known(
                self.text_and_payload()
                    .and_then(|(text, payload)| protocol.venue_time(text, payload)),
            ),
        };
    }

    /// A text frame as a session hands it on: classified by `protocol`, with
    /// the payload span and the venue time as the adapter finds it, received now
    /// (no subscription is stamped). For tests, replays and benchmarks of
    /// code that reads frames, e.g. typed market data
    /// ([`Frame::trades`]).
    ///
    /// ```
    /// use resilient_ws::{Frame, Kraken};
    /// let text = r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","timestamp":"2023-09-25T07:49:37.708706Z"}]}"#;
    /// let frame = Frame::classified(&mut Kraken::new(), text);
    /// assert!(frame.payload().starts_with(b"[{"));
    /// assert!(frame.venue_time().is_some());
    /// ```
    pub fn classified<P: crate::protocol::Protocol + ?Sized>(
        protocol: &mut P,
        text: impl Into<String>,
    ) -> Self {
        let text = Utf8Bytes::from(text.into());
        let (span, seq) = match protocol.classify(text.as_str()) {
            crate::protocol::Inbound::Data { seq, payload, .. } => {
                (payload.and_then(|part| span_of(text.as_str(), part)), seq)
            }
            _ => (None, None),
        };
        let mut frame = Self::from_text(text, seq, Received::now()).with_span(span);
        frame.stamp_venue_time(protocol);
        frame
    }

    /// Stamps the subscription the frame was routed to.
    pub(crate) fn set_client_id(&mut self, client_id: ClientId) {
        let client_id = client_id.get();
        self.client_id = client_id;
    }

    /// The text, for a text frame.
    pub fn as_text(&self) -> Option<&str> {
        match &self.payload {
            Payload::Text(t, _) => Some(t.as_str()),
            Payload::Binary(..) => None,
        }
    }

    /// The raw frame bytes (UTF-8 for a text frame).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.payload {
            Payload::Text(t, _) => t.as_bytes(),
            Payload::Binary(b, _) => b,
        }
    }

    /// The venue payload found while classifying (Kalshi `msg`, Kraken
    /// `data`, as raw JSON text), or the whole frame when the protocol named
    /// none. No parsing happens here.
    pub fn payload(&self) -> &[u8] {
        let bytes = self.as_bytes();
        if !self.payload.shape().has_span {
            return bytes;
        }
        let (start, end) = (self.span.0 as usize, self.span.1 as usize);
        bytes.get(start..end).unwrap_or(bytes)
    }

    /// Like [`payload`](Frame::payload), as text (`None` for a binary frame).
    pub fn payload_text(&self) -> Option<&str> {
        let text = self.as_text()?;
        if !self.payload.shape().has_span {
            return Some(text);
        }
        let (start, end) = (self.span.0 as usize, self.span.1 as usize);
        Some(text.get(start..end).unwrap_or(text))
    }

    /// Deserializes the [`payload`](Frame::payload) into `T` with serde.
    /// `T` may borrow from the frame (`&str` fields, `&RawValue`).
    ///
    /// ```
    /// use resilient_ws::Frame;
    /// #[derive(serde::Deserialize)]
    /// struct Tick<'a> { symbol: &'a str, last: f64 }
    /// let frame = Frame::text(r#"{"symbol":"BTC/USD","last":97000.5}"#, None);
    /// let tick: Tick<'_> = frame.decode().unwrap();
    /// assert_eq!((tick.symbol, tick.last), ("BTC/USD", 97000.5));
    /// assert!(frame.decode::<Vec<u8>>().is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`DecodeError`] when the payload is not JSON of the shape of `T`.
    pub fn decode<'a, T: Deserialize<'a>>(&'a self) -> Result<T, DecodeError> {
        serde_json::from_slice(self.payload()).map_err(|error| {
            let category = match error.classify() {
                serde_json::error::Category::Io => "io",
                serde_json::error::Category::Syntax => "syntax",
                serde_json::error::Category::Data => "data",
                serde_json::error::Category::Eof => "eof",
            };
            DecodeError {
                client_id: ClientId::new(self.client_id),
                target: std::any::type_name::<T>(),
                category,
                line: error.line(),
                column: error.column(),
                message: error.to_string(),
            }
        })
    }

    /// The text and the payload span of a text frame: what a venue-time
    /// search reads.
    fn text_and_payload(&self) -> Option<(&str, &str)> {
        Some((self.as_text()?, self.payload_text()?))
    }

    /// Whether this is a binary frame.
    pub fn is_binary(&self) -> bool {
        matches!(self.payload, Payload::Binary(..))
    }

    /// The sequence number the protocol reported for this frame, if any.
    pub fn seq(&self) -> Option<u64> {
        self.payload.shape().has_seq.then_some(self.seq)
    }

    /// The client id of the subscription this frame was routed to; `None`
    /// for a frame of the unsolicited stream or a request's response.
    pub fn client_id(&self) -> Option<ClientId> {
        (self.client_id != 0).then_some(ClientId::new(self.client_id))
    }

    /// When the frame was read from the socket.
    pub fn received(&self) -> Received {
        self.received
    }

    /// The venue's own timestamp of this frame, when the venue sends one
    /// (Kraken `timestamp`, OKX `ts`, WEEX `E`, Kalshi `ts_ms`; see
    /// [`Protocol::venue_time`](crate::Protocol::venue_time)). Compare it with
    /// [`received`](Frame::received)`().wall` for the feed's lag; the two
    /// clocks are different machines', so the difference can be negative.
    ///
    /// Found when asked, by a key search over the frame (tens of
    /// nanoseconds; no allocation): a frame nobody asks costs nothing, and a
    /// consumer that asks often may keep the answer. Every ask gives the same
    /// answer: the adapter's search reads only the frame's own bytes (see
    /// [`Protocol::venue_time_finder`](crate::Protocol::venue_time_finder)).
    pub fn venue_time(&self) -> Option<SystemTime> {
        match self.venue_time {
            VenueTime::Known(venue_time) => venue_time,
            VenueTime::Find(find) => self
                .text_and_payload()
                .and_then(|(text, payload)| find(text, payload)),
        }
    }

    /// How long ago the frame was read from the socket.
    pub fn age(&self) -> std::time::Duration {
        self.received.at.elapsed()
    }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        self.is_binary() == other.is_binary()
            && self.as_bytes() == other.as_bytes()
            && self.seq() == other.seq()
            && self.client_id == other.client_id
            && self.payload() == other.payload()
    }
}

impl Eq for Frame {}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Frame");
        match &self.payload {
            Payload::Text(t, _) => d.field("text", &t.as_str()),
            Payload::Binary(b, _) => d.field("binary_len", &b.len()),
        };
        d.field("seq", &self.seq())
            .field("client_id", &self.client_id())
            .finish()
    }
}

/// An item of a [`Subscription`](crate::Subscription) stream: data, or a signal
/// about the data. Signals never end the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Update {
    /// A data message routed to this subscription.
    Data(Frame),
    /// Sequence numbers were skipped: messages after `last_seq` and before
    /// `next_seq` never arrived. A fresh snapshot is requested unless
    /// [`resync_on_gap`](crate::ConfigBuilder::resync_on_gap) is off.
    Gap {
        /// The last sequence number seen before the gap.
        last_seq: u64,
        /// The sequence number that arrived.
        next_seq: u64,
    },
    /// The sequence went backwards (the server restarted the stream).
    Reset {
        /// The last sequence number seen.
        last_seq: u64,
        /// The lower sequence number that arrived.
        next_seq: u64,
    },
    /// The book the adapter builds for this subscription broke: its checksum
    /// did not match, an update did not continue the venue's update-id chain,
    /// or an update could not be used ([`BookBreak`](crate::BookBreak) names
    /// which). The book's view reads `None` and a fresh snapshot is requested
    /// for this subscription only. A sequence gap the session sees itself is
    /// [`Update::Gap`] instead.
    BookBreak(crate::book::BookBreak),
    /// The subscription was re-established (after a reconnect or a resync) under
    /// a new server id. Data that follows belongs to the new server stream
    /// (sequence numbers start over, snapshots are re-sent).
    Resubscribed {
        /// The new server id.
        server_id: ServerId,
    },
}

impl Update {
    /// Whether this is a data message (as opposed to a signal).
    pub fn is_data(&self) -> bool {
        matches!(self, Update::Data(_))
    }

    /// The frame, for a data message.
    pub fn as_frame(&self) -> Option<&Frame> {
        match self {
            Update::Data(frame) => Some(frame),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, SetItem};

    /// Each data frame is moved by value from the session to the consumer
    /// several times (queue in and out, a set's `SetItem`, `poll_next`'s
    /// return): a move of up to 128 bytes is a few vector stores, a bigger
    /// one a `memcpy` call (5.8 % of the feed's time at 128/152 bytes). These
    /// must not grow back silently. `Update` must stay under the last 8
    /// bytes of `Error` (where `Error` keeps its variant tag) for
    /// `Result<Update, Error>` to need no tag of its own. `SetItem` cannot
    /// reach 128 without changing a public type: `Error` is 120 bytes
    /// (`Error::Subscription` carries a 88-byte `VenueError`) and `SetItem`
    /// adds 24 bytes of public fields. (`<=`: other platforms' clocks are
    /// no bigger.)
    #[test]
    fn moved_values_stay_small() {
        use std::mem::size_of;
        assert!(size_of::<Frame>() <= 112, "{}", size_of::<Frame>());
        assert!(size_of::<Update>() <= 112, "{}", size_of::<Update>());
        assert!(size_of::<Error>() <= 120, "{}", size_of::<Error>());
        let result = size_of::<Result<Update, Error>>();
        assert!(result <= size_of::<Error>().max(112), "{result}");
        assert!(size_of::<SetItem>() <= 144, "{}", size_of::<SetItem>());
        let polled = size_of::<std::task::Poll<Option<SetItem>>>();
        assert_eq!(polled, size_of::<SetItem>(), "no tag of its own");
    }

    /// The flags moved into the payload's shape answer as the `Option`s did.
    #[test]
    fn the_shape_flags_answer_as_options_did() {
        let text = r#"{"a":[1,2]}"#;
        let frame = Frame::text(text, Some(0));
        assert_eq!((frame.seq(), frame.payload()), (Some(0), text.as_bytes()));
        let frame = Frame::text(text, None);
        assert_eq!(frame.seq(), None);
        let frame = frame.with_span(span_of(text, &text[5..10]));
        assert_eq!(frame.payload_text(), Some("[1,2]"));
        assert_ne!(frame, Frame::text(text, None), "the payload differs");
        assert_eq!(frame, frame.clone());
        assert_ne!(Frame::text(text, Some(1)), Frame::text(text, None));
        let binary = Frame::from_binary(Bytes::from_static(b"ab"), Received::now());
        assert_eq!((binary.seq(), binary.payload()), (None, b"ab".as_slice()));
        assert_ne!(binary, Frame::text("ab", None), "binary is not text");
    }
}
