//! The measured phases, one file each; `main` runs them in order.

use super::*;

mod baselines;
mod feed;
mod latency;
mod memory;
mod recovery;
mod throughput;

pub(crate) use baselines::*;
pub(crate) use feed::*;
pub(crate) use latency::*;
pub(crate) use memory::*;
pub(crate) use recovery::*;
pub(crate) use throughput::*;
