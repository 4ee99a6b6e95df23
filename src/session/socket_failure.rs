//! Why the socket failed, in the core's own words.
//!
//! The core knows no transport error type: the shell maps its transport's
//! errors to a [`SocketFailure`] (`supervisor/socket_failure.rs` for
//! tungstenite) and the core decides what each means for the session and
//! which [`Error`](crate::Error) callers see. Texts stay as the transport
//! wrote them; the core scrubs secrets from them (it holds the URL).

use std::io;

use crate::config::Config;
use crate::error::{scrub, ConnectionError, Error, ProtocolError};

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

impl SocketFailure {
    /// The error callers see when the socket to `config`'s URL failed so
    /// (the connection is lost; secrets scrubbed from the transport's text).
    pub(super) fn into_error(self, config: &Config) -> Error {
        match self {
            SocketFailure::ResetWithoutClose => {
                lost(config, "the server ended the stream without a close frame")
            }
            SocketFailure::Protocol(error) => Error::protocol(error),
            SocketFailure::Io { kind, message } => Error::connection(
                &config.redacted_url,
                0,
                ConnectionError::Io {
                    kind,
                    message: scrub(&message, &config.url),
                },
            ),
            SocketFailure::Other(text) => lost(config, &scrub(&text, &config.url)),
        }
    }
}

/// The error of a connection to `config`'s URL lost for `why`.
pub(super) fn lost(config: &Config, why: &str) -> Error {
    Error::connection(
        &config.redacted_url,
        0,
        ConnectionError::Lost(why.to_owned()),
    )
}
