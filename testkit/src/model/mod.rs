//! Independent models the harnesses compare the real code against.
//!
//! Each is written from the documented rules (module docs, PROTOCOLS.md,
//! COMMON rules of the session), on the simplest data structures that can
//! hold them (sorted vectors, ordered maps), never by calling the code under
//! test: a model that shares code with what it checks cannot disagree with it.

pub(crate) mod book;
pub(crate) mod decimal;
pub(crate) mod frames;
pub(crate) mod json_skip;
pub(crate) mod kalshi_book;
pub(crate) mod ordered_book;
pub(crate) mod queue;
pub(crate) mod reconnect;
pub(crate) mod registry;
pub(crate) mod session;
pub(crate) mod venue_time;
