//! A real session core with its [`Drive`], reduced to what the
//! `reconnect_script` harness needs: a session that starts, and ends the ways
//! a session ends (closed on request, the stream dropped, a close frame), so
//! the end the reconnect machine sees is the core's own.
//!
//! Each method forwards to one `Drive` method (or the shell's write loop);
//! none of them decides anything.

use std::time::SystemTime;

use tokio::time::Instant;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use super::session_drive::{unspawned, Unspawned};
use crate::command::Command;
use crate::config::Config;
use crate::protocol::RawProtocol;
use crate::session::SessionEnd;
use crate::supervisor::drive::{Drive, Turn, WriteOutcome};

/// A session core and its drive, built as `Client::unspawned` builds them.
pub struct SessionEnds {
    drive: Drive<RawProtocol>,
}

impl std::fmt::Debug for SessionEnds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionEnds").finish_non_exhaustive()
    }
}

impl SessionEnds {
    /// The core of a client built from `config` (raw protocol).
    pub fn new(config: Config) -> Self {
        let Unspawned { drive, .. } = unspawned(config, RawProtocol);
        Self { drive }
    }

    /// A connection came up at `now`.
    pub fn connected(&mut self, now: Instant) {
        self.drive.connected(now, SystemTime::UNIX_EPOCH);
    }

    /// The user asks to close: the core begins its close, and the shell
    /// writes every frame due (our close frame among them). A write that
    /// ends the session returns that end.
    pub fn close_on_request(&mut self, now: Instant) -> Result<(), SessionEnd> {
        self.drive.serve_online(Some(Command::Close), now);
        while let Turn::Write = self.drive.next_turn(now) {
            let Some((_message, written, _timeout)) = self.drive.take_write(now) else {
                break;
            };
            self.drive.written(written, WriteOutcome::Done, now)?;
        }
        Ok(())
    }

    /// The peer sends a close frame with `code`.
    pub fn close_frame(&mut self, code: u16, now: Instant) -> Result<(), SessionEnd> {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        };
        self.drive
            .socket(Some(Ok(Message::Close(Some(frame)))), now, now)
    }

    /// The peer ends the stream without a close frame.
    pub fn stream_ended(&mut self, now: Instant) -> Result<(), SessionEnd> {
        self.drive.socket(None, now, now)
    }

    /// The session ended with `end`; the core is told, as the shell tells it.
    pub fn disconnected(&mut self, end: &SessionEnd, now: Instant) {
        self.drive.disconnected(end, now);
    }
}
