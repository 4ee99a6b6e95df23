//! Why the socket failed, in the core's own words.
//!
//! The core knows no transport error type: the shell maps its transport's
//! errors to a [`SocketFailure`] (`supervisor/socket_failure.rs` for
//! tungstenite) and the core decides what each means for the session and
//! which [`Error`](crate::Error) callers see. Texts stay as the transport
//! wrote them; the core scrubs secrets from them (it holds the URL).

use std::io;

use crate::error::ProtocolError;

/// Why reading (or writing) the socket failed.
#[derive(Debug)]
pub(crate) enum SocketFailure {
    /// The peer closed TCP without a close frame: a dropped connection.
    ResetWithoutClose,
    /// The peer broke the WebSocket protocol (a frame too large, text that is
    /// not UTF-8, a malformed frame).
    Protocol(ProtocolError),
    /// The operating system's socket failed.
    Io {
        /// The kind of I/O error.
        kind: io::ErrorKind,
        /// The error's text, unscrubbed.
        message: String,
    },
    /// Any other failure, in the transport's words (unscrubbed).
    Other(String),
}
