//! [`RateLimit`]: at most so many frames in any window of a given length.
//!
//! A leaf of its own because two layers use it: the configuration's outbound
//! limit ([`ConfigBuilder::rate_limit`](crate::ConfigBuilder::rate_limit)) and
//! a venue's documented subscribe-operation window
//! ([`VenueLimits::subscribe_ops`](crate::VenueLimits::subscribe_ops)); the
//! session enforces both with the same sliding-window limiter.

use std::time::Duration;

/// A strict rate limit: at most `frames` frames in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Frames allowed per window.
    pub frames: u32,
    /// The window length.
    pub per: Duration,
}
