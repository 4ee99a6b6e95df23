//! What consumers receive: data frames and in-band signals.
//!
//! A [`Frame`] shares the socket's buffer (`Bytes` underneath), so handing it
//! from the supervisor to a stream never copies the payload.

use std::fmt;

use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

use crate::protocol::ServerId;

/// One data message as received, with the sequence number the protocol reported.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    payload: Payload,
    seq: Option<u64>,
}

#[derive(Clone, PartialEq, Eq)]
enum Payload {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl Frame {
    /// A text frame (mostly for tests and custom protocols).
    pub fn text(text: impl Into<String>, seq: Option<u64>) -> Self {
        Frame {
            payload: Payload::Text(Utf8Bytes::from(text.into())),
            seq,
        }
    }

    pub(crate) fn from_text(text: Utf8Bytes, seq: Option<u64>) -> Self {
        Frame {
            payload: Payload::Text(text),
            seq,
        }
    }

    pub(crate) fn from_binary(data: Bytes) -> Self {
        Frame {
            payload: Payload::Binary(data),
            seq: None,
        }
    }

    /// The text, for a text frame.
    pub fn as_text(&self) -> Option<&str> {
        match &self.payload {
            Payload::Text(t) => Some(t.as_str()),
            Payload::Binary(_) => None,
        }
    }

    /// The raw payload bytes (UTF-8 for a text frame).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.payload {
            Payload::Text(t) => t.as_bytes(),
            Payload::Binary(b) => b,
        }
    }

    /// Whether this is a binary frame.
    pub fn is_binary(&self) -> bool {
        matches!(self.payload, Payload::Binary(_))
    }

    /// The sequence number the protocol reported for this frame, if any.
    pub fn seq(&self) -> Option<u64> {
        self.seq
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Frame");
        match &self.payload {
            Payload::Text(t) => d.field("text", &t.as_str()),
            Payload::Binary(b) => d.field("binary_len", &b.len()),
        };
        d.field("seq", &self.seq).finish()
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
    /// The venue's book checksum did not match the book built from the messages;
    /// a fresh snapshot is requested.
    ChecksumMismatch {
        /// The checksum the venue sent.
        expected: u32,
        /// The checksum of our book.
        computed: u32,
    },
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
