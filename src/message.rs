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
//!   ([`Frame::venue_time`]): found once by a key search as the frame is routed
//!   ([`Protocol::venue_time`](crate::Protocol::venue_time)), never parsed twice.

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
#[derive(Clone)]
pub struct Frame {
    payload: Payload,
    seq: Option<u64>,
    /// 0: no subscription (unsolicited, a response).
    client_id: u64,
    /// Byte range of the venue payload inside the text; `start == end == 0`
    /// with `has_span == false` means the whole frame.
    span: (u32, u32),
    has_span: bool,
    received: Received,
    venue_time: Option<SystemTime>,
}

#[derive(Clone, PartialEq, Eq)]
enum Payload {
    Text(Utf8Bytes),
    Binary(Bytes),
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
        Frame {
            payload: Payload::Text(text),
            seq,
            client_id: 0,
            span: (0, 0),
            has_span: false,
            received,
            venue_time: None,
        }
    }

    pub(crate) fn from_binary(data: Bytes, received: Received) -> Self {
        Frame {
            payload: Payload::Binary(data),
            seq: None,
            client_id: 0,
            span: (0, 0),
            has_span: false,
            received,
            venue_time: None,
        }
    }

    /// Sets the payload span (byte offsets into the text, as found by [`span_of`]).
    pub(crate) fn with_span(mut self, span: Option<(u32, u32)>) -> Self {
        if let Some(span) = span {
            self.span = span;
            self.has_span = true;
        }
        self
    }

    /// Records the venue's timestamp of the frame.
    pub(crate) fn set_venue_time(&mut self, venue_time: Option<SystemTime>) {
        self.venue_time = venue_time;
    }

    /// A text frame as a session hands it on: classified by `protocol`, with
    /// the payload span and the venue time the adapter found, received now
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
        let venue_time = match (frame.as_text(), frame.payload_text()) {
            (Some(text), Some(payload)) => protocol.venue_time(text, payload),
            _ => None,
        };
        frame.set_venue_time(venue_time);
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
            Payload::Text(t) => Some(t.as_str()),
            Payload::Binary(_) => None,
        }
    }

    /// The raw frame bytes (UTF-8 for a text frame).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.payload {
            Payload::Text(t) => t.as_bytes(),
            Payload::Binary(b) => b,
        }
    }

    /// The venue payload found while classifying (Kalshi `msg`, Kraken
    /// `data`, as raw JSON text), or the whole frame when the protocol named
    /// none. No parsing happens here.
    pub fn payload(&self) -> &[u8] {
        let bytes = self.as_bytes();
        if !self.has_span {
            return bytes;
        }
        let (start, end) = (self.span.0 as usize, self.span.1 as usize);
        bytes.get(start..end).unwrap_or(bytes)
    }

    /// Like [`payload`](Frame::payload), as text (`None` for a binary frame).
    pub fn payload_text(&self) -> Option<&str> {
        let text = self.as_text()?;
        if !self.has_span {
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

    /// Whether this is a binary frame.
    pub fn is_binary(&self) -> bool {
        matches!(self.payload, Payload::Binary(_))
    }

    /// The sequence number the protocol reported for this frame, if any.
    pub fn seq(&self) -> Option<u64> {
        self.seq
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
    pub fn venue_time(&self) -> Option<SystemTime> {
        self.venue_time
    }

    /// How long ago the frame was read from the socket.
    pub fn age(&self) -> std::time::Duration {
        self.received.at.elapsed()
    }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        self.payload == other.payload
            && self.seq == other.seq
            && self.client_id == other.client_id
            && self.payload() == other.payload()
    }
}

impl Eq for Frame {}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Frame");
        match &self.payload {
            Payload::Text(t) => d.field("text", &t.as_str()),
            Payload::Binary(b) => d.field("binary_len", &b.len()),
        };
        d.field("seq", &self.seq)
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
