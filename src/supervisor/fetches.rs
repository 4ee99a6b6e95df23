//! The drive's runner of an adapter's book snapshot fetches
//! ([`Protocol::book_snapshot_source`](crate::Protocol::book_snapshot_source)),
//! and the wake-up input their results are.
//!
//! The adapter's book is sans I/O: it asks for snapshots and takes results
//! as inputs. This runner spawns each asked-for fetch on the current tokio
//! runtime (the socket's task never waits on REST) and collects the results
//! on a channel the shells wait on, next to the socket. Rules, and why:
//! - A result is an input of the drive ([`Drive::fetched`](super::drive::Drive::fetched)),
//!   handed in as soon as it arrives: a book waiting for its snapshot becomes
//!   verified without waiting for another frame, and a recorder keeps the
//!   result where it came in the order of inputs, so a replay hands it in
//!   at the same point.
//! - Free for connections without a source: the drive then holds no runner
//!   (`None`: one branch per input). With a source, a shell polls the
//!   channel only while a fetch is in flight ([`Fetches::in_flight`]), so an
//!   idle runner costs one integer comparison per wake-up.
//! - Every fetch ends with exactly one result: a fetch that panics or whose
//!   runtime shuts down reports an error (a guard sends it when dropped), so
//!   the adapter retries instead of waiting for ever and the count of
//!   fetches in flight never drifts.
//! - Outside a tokio runtime nothing can be spawned: the request fails at
//!   once (an error result) and the adapter retries, then resyncs.
//! - The channel holds at most the fetches in flight; the adapter asks at
//!   most once at a time per book subscription.
//! - Replay never fetches ([`Fetches::replaying`]): the recorded results are
//!   handed in instead; the requests are taken and dropped.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use crate::book::{SnapshotFetched, SnapshotRequest, SnapshotSource};

/// Runs an adapter's snapshot fetches and collects their results.
pub(crate) struct Fetches {
    /// `None` in replay: requests are dropped, results come from the recording.
    source: Option<Arc<dyn SnapshotSource>>,
    tx: mpsc::UnboundedSender<SnapshotFetched>,
    rx: mpsc::UnboundedReceiver<SnapshotFetched>,
    /// Fetches started whose result was not taken yet.
    in_flight: usize,
}

impl fmt::Debug for Fetches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetches")
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl Fetches {
    pub(crate) fn new(source: Arc<dyn SnapshotSource>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Fetches {
            source: Some(source),
            tx,
            rx,
            in_flight: 0,
        }
    }

    /// A runner for replay: nothing is fetched (the recorded results are
    /// handed in); the requests are taken and dropped.
    pub(crate) fn replaying() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Fetches {
            source: None,
            tx,
            rx,
            in_flight: 0,
        }
    }

    /// Whether a result is still to come: only then does a shell wait on
    /// [`poll_fetched`](Self::poll_fetched).
    pub(crate) fn in_flight(&self) -> bool {
        self.in_flight > 0
    }

    /// Starts a fetch per request.
    pub(crate) fn start(&mut self, requests: Vec<SnapshotRequest>) {
        let Some(source) = &self.source else {
            return;
        };
        for request in requests {
            self.in_flight += 1;
            let mut reply = Reply {
                tx: Some(self.tx.clone()),
                server_id: request.server_id,
                number: request.number,
            };
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                reply.send(Err("no tokio runtime to fetch on".to_owned()));
                continue;
            };
            let future = source.snapshot(&request.symbol);
            runtime.spawn(async move {
                let result = future.await.map_err(|e| e.to_string());
                reply.send(result);
            });
        }
    }

    /// The next result, registering the waker when none is there yet.
    pub(crate) fn poll_fetched(&mut self, cx: &mut Context<'_>) -> Poll<SnapshotFetched> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(fetched)) => {
                self.in_flight = self.in_flight.saturating_sub(1);
                Poll::Ready(fetched)
            }
            // `self.tx` keeps the channel open: `None` cannot happen.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

/// The one result of one fetch: sent when the fetch ends, or (as an error)
/// when the task is dropped before it does.
struct Reply {
    tx: Option<mpsc::UnboundedSender<SnapshotFetched>>,
    server_id: crate::protocol::ServerId,
    number: u64,
}

impl Reply {
    fn send(&mut self, result: Result<crate::book::BookSnapshot, String>) {
        if let Some(tx) = self.tx.take() {
            // The connection may be gone; then nobody needs the result.
            let _ = tx.send(SnapshotFetched {
                server_id: self.server_id.clone(),
                number: self.number,
                result,
            });
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        self.send(Err(
            "the snapshot fetch ended without an answer (it panicked or its runtime shut down)"
                .to_owned(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{BookSnapshot, SnapshotError};
    use crate::protocol::ServerId;
    use std::future::poll_fn;

    fn request(number: u64) -> SnapshotRequest {
        SnapshotRequest {
            server_id: ServerId::Num(7),
            symbol: "BTC-USDT".into(),
            number,
        }
    }

    #[tokio::test]
    async fn each_fetch_ends_with_one_result_even_when_it_panics() {
        let source = |symbol: String| async move {
            if symbol == "BTC-USDT" {
                panic!("a source that panics");
            }
            Ok::<_, SnapshotError>(BookSnapshot::default())
        };
        let mut fetches = Fetches::new(Arc::new(source));
        assert!(!fetches.in_flight());
        fetches.start(vec![request(1)]);
        assert!(fetches.in_flight());
        let fetched = poll_fn(|cx| fetches.poll_fetched(cx)).await;
        assert_eq!(fetched.number, 1);
        assert!(fetched.result.unwrap_err().contains("without an answer"));
        assert!(!fetches.in_flight(), "the count does not drift");
    }

    #[tokio::test]
    async fn replay_starts_nothing() {
        let mut fetches = Fetches::replaying();
        fetches.start(vec![request(1)]);
        assert!(!fetches.in_flight());
    }

    #[test]
    fn outside_a_runtime_the_request_fails_at_once() {
        let source =
            |_symbol: String| async move { Ok::<_, SnapshotError>(BookSnapshot::default()) };
        let mut fetches = Fetches::new(Arc::new(source));
        fetches.start(vec![request(3)]);
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        match fetches.poll_fetched(&mut cx) {
            Poll::Ready(fetched) => assert!(fetched.result.unwrap_err().contains("no tokio")),
            Poll::Pending => panic!("the failure is there at once"),
        }
    }
}
