//! How writing one frame ended: what a shell reports to the drive, and what
//! the recorder's tap writes down. Its own file so the tap need not import
//! the drive that calls it.

use tokio::time::Duration;

/// How writing one frame ended.
pub enum WriteOutcome {
    /// The socket took it.
    Done,
    /// The socket failed.
    Failed(tungstenite::Error),
    /// The peer did not take it within the timeout.
    TimedOut(Duration),
}
