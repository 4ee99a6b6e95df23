//! The shell that runs an OKX adapter's snapshot fetches off the frame path.
//!
//! The book core (`book.rs`) only asks for snapshots and takes results as
//! inputs. This shell spawns each asked-for fetch on the current tokio
//! runtime, so the socket task never waits on REST, and collects the
//! results on a channel that the adapter drains before classifying each
//! frame. Rules, and why:
//! - One fetch per request, and the core asks at most once at a time per book
//!   subscription: the channel holds at most that many results.
//! - A result is applied before the next frame of the connection is
//!   classified; OKX pushes book deltas continuously (and a no-change update
//!   when nothing changes), so a waiting book always has a next frame.
//! - Outside a tokio runtime nothing can be spawned: the request fails and
//!   the core retries, then resyncs.
//! - The source's error text is logged; a source must keep secrets out of it.

use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::book::{BookSnapshot, SnapshotSource};
use crate::protocol::ServerId;

/// A finished fetch: (subscription, request number, result).
type Fetched = (ServerId, u64, Result<BookSnapshot, String>);

/// Runs fetches through the user's source and collects their results.
pub(crate) struct Fetcher {
    source: Arc<dyn SnapshotSource>,
    tx: mpsc::UnboundedSender<Fetched>,
    rx: mpsc::UnboundedReceiver<Fetched>,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher").finish_non_exhaustive()
    }
}

impl Fetcher {
    pub(crate) fn new(source: Arc<dyn SnapshotSource>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Fetcher { source, tx, rx }
    }

    /// Starts fetching the snapshot of `inst` for request `number` of `id`.
    pub(crate) fn start(&self, id: ServerId, inst: &str, number: u64) {
        let tx = self.tx.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let _ = tx.send((id, number, Err("no tokio runtime to fetch on".to_owned())));
            return;
        };
        let future = self.source.snapshot(inst);
        runtime.spawn(async move {
            let result = future.await.map_err(|e| e.to_string());
            // The adapter may be gone; then nobody needs the result.
            let _ = tx.send((id, number, result));
        });
    }

    /// The results that arrived since the last call.
    pub(crate) fn finished(&mut self) -> Vec<Fetched> {
        let mut done = Vec::new();
        while let Ok(fetched) = self.rx.try_recv() {
            done.push(fetched);
        }
        done
    }
}
