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

/// A member's key in one [`SubscriptionSet`](crate::SubscriptionSet), given
/// by the set when the member joins (1, 2, 3, ... per set, never reused).
///
/// Not the [`ClientId`]: client ids are unique per [`Client`](crate::Client)
/// or per [`Pool`](crate::Pool) only, and a set may merge subscriptions of
/// several of them, so two members can share a client id. The key keeps them
/// apart; each [`SetItem`](crate::SetItem) carries both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberKey(u64);

impl MemberKey {
    /// Wraps a number; only the set (and tests) mint keys.
    pub(crate) const fn new(key: u64) -> Self {
        Self(key)
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for MemberKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The id the session puts on the wire with a subscribe, unsubscribe, ping or
/// request, and matches the venue's answer by.
///
/// Typed inside the session (core, link, deadlines) and the registry, where
/// request ids sit next to client ids and sequence numbers. The
/// [`Protocol`](crate::Protocol) trait (`encode_*`, [`Inbound`](crate::Inbound))
/// and the public [`Error`](crate::Error) keep a plain `u64`: there the id is only
/// formatted into or parsed out of venue text, and a newtype would churn every
/// adapter and every user-written protocol for no gain. The session converts at
/// that boundary ([`ReqId::from`], [`get`](ReqId::get)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReqId(u64);

impl ReqId {
    /// The number, as the protocol puts it on the wire.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The id after this one (wrapping at `u64::MAX`, as the bare counter did).
    pub(crate) fn next(self) -> Self {
        Self(self.0.wrapping_add(1))
    }
}

impl From<u64> for ReqId {
    fn from(id: u64) -> Self {
        Self(id)
    }
}

impl std::fmt::Display for ReqId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The id a venue uses for a subscription on one connection: a number it
/// assigns (Kalshi `sid`) or a key derived from the topic (Kraken channel + symbol).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServerId {
    /// A server-assigned number.
    Num(u64),
    /// A key such as `book:BTC/USD`.
    Key(std::sync::Arc<str>),
}

impl std::fmt::Display for ServerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerId::Num(n) => write!(f, "{n}"),
            ServerId::Key(k) => f.write_str(k),
        }
    }
}
