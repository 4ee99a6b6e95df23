//! Options for one-off sends ([`Client::send_text_with`](crate::Client::send_text_with),
//! [`Client::send_binary_with`](crate::Client::send_binary_with)).
//!
//! Rules, and why:
//! - A one-off frame is never replayed on a later connection and fails at once
//!   while disconnected: an order or a request must not go out twice or late.
//! - By default it spends the outbound rate limit's budget like every venue
//!   frame. Venues whose limits are per message type (e.g. order entry counted
//!   apart from subscriptions) can opt out with [`SendOptions::unlimited`]; the
//!   frame still keeps its place in the outbound queue, so order is kept.

/// How a one-off frame is sent. `Default`: within the rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendOptions {
    pub(crate) rate_limited: bool,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions { rate_limited: true }
    }
}

impl SendOptions {
    /// Within the rate limit (the default).
    pub fn new() -> Self {
        SendOptions::default()
    }

    /// Outside the rate limit's budget: written as soon as the frames queued
    /// before it are, and not counted against the limit.
    #[must_use]
    pub fn unlimited(mut self) -> Self {
        self.rate_limited = false;
        self
    }
}
