//! Fuzz harnesses (placeholder; the fuzzing work fills this in).
pub use crate::queue::{Pushed, Queue};
pub use crate::subscription::{
    Acked, ClientId, Entry, Phase, ProtocolBatching, Registry, Route, SeqCheck, Stashed,
};
