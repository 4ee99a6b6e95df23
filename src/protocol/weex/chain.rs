//! The WEEX V3 depth update-id chain: a break means a push was lost and the
//! local book is wrong, so it is reported and that one subscription resyncs.
//!
//! Rules, with the facts and their sources in `src/protocol/VENUES.md`:
//! - A snapshot (`e:"depthSnapshot"`, or `d:"SNAPSHOT"`) starts the chain at
//!   its `u` (a delisted symbol's empty snapshot has `U = u = 0`).
//! - Each `CHANGED` push must have `U` equal to the previous push's `u` (not
//!   `u + 1`); it then moves the chain to its own `u`.
//! - A push whose `U` differs breaks the chain: it is reported as a
//!   [`BookBreak::Discontinuity`] (`expected` = the previous `u`, `got` = the
//!   push's `U`), the chain is dropped, and the session resubscribes that
//!   stream, whose new snapshot starts a new chain (as OKX's `prevSeqId` break).
//! - Nothing is checked before a snapshot or after a break until the next
//!   snapshot. A snapshot without `u` starts no chain.
//! - Once a chain holds, a `CHANGED` push without `U` or `u`, or a depth
//!   push with neither marker, cannot be placed in it: that is a break too
//!   ([`BookBreak::Unusable`], naming which), because the book (`book.rs`)
//!   cannot apply it honestly and only a resync repairs it.
//! - Memory: one number per subscribed depth stream; the caller only passes
//!   subscribed streams, and [`forget`](DepthChains::forget)/`clear` drop them.

use std::collections::HashMap;

use super::super::{BookBreak, ServerId};
use crate::book::signed_id;

/// What a depth push is, for the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DepthKind {
    /// A full book: restarts the chain.
    Snapshot,
    /// An update: continues the chain.
    Changed,
    /// Neither marker: a break while a chain holds, else not checked.
    Unknown,
}

/// The last `u` of each subscribed depth stream since its snapshot.
#[derive(Debug, Default)]
pub(super) struct DepthChains {
    last: HashMap<ServerId, u64>,
}

impl DepthChains {
    /// Checks one push of a subscribed stream; `Some` reports a break.
    pub(super) fn on_push(
        &mut self,
        server_id: &ServerId,
        kind: DepthKind,
        first: Option<u64>,
        last: Option<u64>,
    ) -> Option<BookBreak> {
        match kind {
            DepthKind::Unknown => {
                let previous = self.last.remove(server_id)?;
                tracing::debug!(%server_id, previous, "weex: depth push without a marker breaks the chain");
                Some(BookBreak::Unusable {
                    reason: "a depth push that is neither SNAPSHOT nor CHANGED",
                })
            }
            DepthKind::Snapshot => {
                match last {
                    Some(last) => {
                        self.last.insert(server_id.clone(), last);
                    }
                    None => {
                        self.last.remove(server_id);
                    }
                }
                None
            }
            DepthKind::Changed => {
                let previous = *self.last.get(server_id)?;
                match (first, last) {
                    (Some(first), Some(last)) if first == previous => {
                        self.last.insert(server_id.clone(), last);
                        None
                    }
                    (Some(first), _) if first != previous => {
                        self.last.remove(server_id);
                        tracing::debug!(%server_id, previous, first, "weex: depth update ids break");
                        Some(BookBreak::Discontinuity {
                            expected: signed_id(previous),
                            got: signed_id(first),
                        })
                    }
                    _ => {
                        self.last.remove(server_id);
                        tracing::debug!(%server_id, previous, "weex: depth push without update ids breaks the chain");
                        Some(BookBreak::Unusable {
                            reason: "a depth update without its update ids U and u",
                        })
                    }
                }
            }
        }
    }

    /// Whether `server_id`'s chain holds (a snapshot started it and no
    /// break ended it since).
    pub(super) fn holds(&self, server_id: &ServerId) -> bool {
        self.last.contains_key(server_id)
    }

    /// Drops a stream's chain (the subscription ended or resyncs).
    pub(super) fn forget(&mut self, server_id: &ServerId) {
        self.last.remove(server_id);
    }

    /// Drops every chain (the connection was lost).
    pub(super) fn clear(&mut self) {
        self.last.clear();
    }

    /// How many chains are kept (for bound tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.last.len()
    }
}
