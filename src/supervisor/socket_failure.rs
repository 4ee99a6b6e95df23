//! How the shells describe a tungstenite error to the session core
//! ([`SocketFailure`]): the one place that knows tungstenite's error type,
//! so the core stays free of the transport's types.

use tungstenite::error::{CapacityError, ProtocolError as WsProtocolError};
use tungstenite::Error as WsError;

use crate::error::ProtocolError;
use crate::session::SocketFailure;

/// What `error` (from reading or writing the socket) means to the core.
pub(crate) fn of(error: WsError) -> SocketFailure {
    match error {
        // The peer closed TCP without a close frame: tungstenite calls that
        // a protocol error, but it is a dropped connection.
        WsError::Protocol(WsProtocolError::ResetWithoutClosingHandshake) => {
            SocketFailure::ResetWithoutClose
        }
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            SocketFailure::Protocol(ProtocolError::TooLarge(format!(
                "{size} bytes > limit {max_size}"
            )))
        }
        WsError::Capacity(other) => {
            SocketFailure::Protocol(ProtocolError::TooLarge(other.to_string()))
        }
        WsError::Utf8(_) => SocketFailure::Protocol(ProtocolError::InvalidUtf8),
        WsError::Protocol(violation) => {
            SocketFailure::Protocol(ProtocolError::Violation(violation.to_string()))
        }
        WsError::AttackAttempt => {
            SocketFailure::Protocol(ProtocolError::Violation("attack attempt detected".into()))
        }
        WsError::Io(io) => SocketFailure::Io {
            kind: io.kind(),
            message: io.to_string(),
        },
        other => SocketFailure::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tungstenite_error_keeps_its_meaning() {
        assert!(matches!(
            of(WsError::Protocol(
                WsProtocolError::ResetWithoutClosingHandshake
            )),
            SocketFailure::ResetWithoutClose
        ));
        assert!(matches!(
            of(WsError::Capacity(CapacityError::MessageTooLong { size: 9, max_size: 4 })),
            SocketFailure::Protocol(ProtocolError::TooLarge(text)) if text == "9 bytes > limit 4"
        ));
        assert!(matches!(
            of(WsError::Protocol(WsProtocolError::NonZeroReservedBits)),
            SocketFailure::Protocol(ProtocolError::Violation(_))
        ));
        assert!(matches!(
            of(WsError::AttackAttempt),
            SocketFailure::Protocol(ProtocolError::Violation(text)) if text == "attack attempt detected"
        ));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        assert!(matches!(
            of(WsError::Io(io)),
            SocketFailure::Io { kind: std::io::ErrorKind::ConnectionReset, message }
                if message == "reset by peer"
        ));
        assert!(matches!(
            of(WsError::ConnectionClosed),
            SocketFailure::Other(text) if text == WsError::ConnectionClosed.to_string()
        ));
    }
}
