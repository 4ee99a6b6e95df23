//! Typed ids, so a subscription's id, a request id, a sequence number and a
//! counter cannot be mixed up: each is its own type, and turning one into a
//! bare number is an explicit `.get()`.

/// A subscription's durable id, assigned by the client in creation order
/// (1, 2, 3, ... per [`Client`](crate::Client)).
///
/// It never changes for the life of the subscription, whatever server ids the
/// venue hands out across reconnects and resyncs, so it is the key to match
/// [`Event`](crate::Event)s and errors to a [`Subscription`](crate::Subscription).
/// A newtype rather than a bare `u64` so it cannot be mixed up with request
/// ids, sequence numbers or counters. [`Display`](std::fmt::Display) prints the
/// number; [`get`](ClientId::get) returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(u64);

impl ClientId {
    /// Wraps a number; only the client (and tests) mint ids.
    pub(crate) const fn new(id: u64) -> Self {
        Self(id)
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
