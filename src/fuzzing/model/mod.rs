//! Independent models `session_script` compares the real session core against
//! (the other harnesses' models live in `testkit/src/model/`).
//!
//! Each is written from the documented rules (module docs, PROTOCOLS.md,
//! COMMON rules of the session), on the simplest data structures that can
//! hold them (sorted vectors, ordered maps), never by calling the code under
//! test: a model that shares code with what it checks cannot disagree with it.

pub(super) mod frames;
pub(super) mod queue;
pub(super) mod registry;
pub(super) mod session;
