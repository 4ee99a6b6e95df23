//! Task bookkeeping shared by the emulators ([`exchange`](super::exchange) and
//! [`proxy`](super::proxy)).
//!
//! Rules: every task an emulator spawns goes through one [`TaskSet`], so its
//! `shutdown` can abort them all and then wait until each is gone (a test that
//! ends does not leave a server writing into the next one); a counter that tracks
//! "running" things is decremented by a drop guard, so an aborted task still
//! counts down; a lock poisoned by a panicking test is still usable ([`lock`]),
//! so one failure does not cascade into unrelated assertions.

use std::future::Future;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

/// Locks `m`, ignoring poisoning.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Increments a counter on creation and decrements it when dropped (a task
/// ended or was aborted).
pub struct CountGuard(watch::Sender<usize>);

impl CountGuard {
    /// Counts one more on `counter` until the guard is dropped.
    pub fn new(counter: &watch::Sender<usize>) -> CountGuard {
        counter.send_modify(|n| *n += 1);
        CountGuard(counter.clone())
    }
}

impl Drop for CountGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

struct Handles {
    closed: bool,
    handles: Vec<AbortHandle>,
}

/// The tasks one emulator spawned: abortable as a set, countable until gone.
pub struct TaskSet {
    handles: Mutex<Handles>,
    /// Spawned tasks not yet finished or dropped.
    alive: watch::Sender<usize>,
}

impl Default for TaskSet {
    fn default() -> TaskSet {
        TaskSet {
            handles: Mutex::new(Handles {
                closed: false,
                handles: Vec::new(),
            }),
            alive: watch::Sender::new(0),
        }
    }
}

impl TaskSet {
    /// Spawns `fut` as a tracked task; `None` once [`abort_all`](Self::abort_all) ran.
    pub fn spawn<F>(&self, fut: F) -> Option<JoinHandle<()>>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut tasks = lock(&self.handles);
        if tasks.closed {
            return None;
        }
        tasks.handles.retain(|h| !h.is_finished());
        let guard = CountGuard::new(&self.alive);
        let handle = tokio::spawn(async move {
            let _guard = guard;
            fut.await
        });
        tasks.handles.push(handle.abort_handle());
        Some(handle)
    }

    /// Refuses further spawns and aborts every tracked task.
    pub fn abort_all(&self) {
        let handles = {
            let mut tasks = lock(&self.handles);
            tasks.closed = true;
            std::mem::take(&mut tasks.handles)
        };
        for h in &handles {
            h.abort();
        }
    }

    /// Waits until every tracked task has finished or been dropped.
    pub async fn wait_gone(&self) {
        let mut rx = self.alive.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}
