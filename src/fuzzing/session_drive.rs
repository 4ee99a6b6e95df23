//! The session core as the `session_script` harness drives it: built as
//! [`Client::unspawned`] builds it, driven only through its [`Drive`] (the
//! one set of driving rules every shell follows, `supervisor/drive.rs`), and
//! read where the harness checks it.
//!
//! Everything here builds or reads; nothing decides. The accessors hand out
//! what a shell or a handle already holds (the registry behind the core, the
//! stats hub's snapshot, a subscription made as `Client::prepare` makes it),
//! so no session internal has to be public for the harness's sake.

use std::sync::Arc;

use tokio::sync::{broadcast, oneshot};

use crate::client::Client;
use crate::command::NewSubscription;
use crate::config::Config;
use crate::error::Error;
use crate::events::Event;
use crate::ids::ClientId;
use crate::protocol::{Protocol, Topic};
use crate::queue::{Overflow, Queue};
use crate::session::SessionEnd;
use crate::stats::{InFlight, Stats};
use crate::stream::Messages;
use crate::subscription::Registry;
use crate::supervisor::drive::Drive;

/// A client's session core with its drive, its inbound stream and its
/// events, before any task is spawned.
pub struct Unspawned<P> {
    /// The core with its callers: every input goes through it.
    pub drive: Drive<P>,
    /// The client's inbound (unsolicited) stream, as `Client::connect` returns it.
    pub inbound: Messages,
    /// Every event published from now on, as `Client::events` sees it.
    pub events: broadcast::Receiver<Event>,
}

impl<P> std::fmt::Debug for Unspawned<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unspawned").finish_non_exhaustive()
    }
}

/// The core, callers and shared state of a client of `config` and
/// `protocol`, built as every shell builds them (`Client::unspawned`); the
/// handle and the command channel are dropped: the harness hands commands
/// to the drive itself.
pub fn unspawned<P: Protocol>(config: Config, protocol: P) -> Unspawned<P> {
    let (_client, inbound, supervisor, _span) = Client::unspawned(config, protocol);
    let (_config, drive, _commands, _reconnect) = supervisor.into_parts();
    let events = drive.shared().subscribe_events();
    Unspawned {
        drive,
        inbound,
        events,
    }
}

/// The subscription registry the core keeps (read-only).
pub fn registry<P: Protocol>(drive: &Drive<P>) -> &Registry {
    drive.core.registry()
}

/// The client's counters and queue totals now, as `Client::stats` reads them.
pub fn stats<P: Protocol>(drive: &Drive<P>) -> Stats {
    drive.shared().stats.snapshot()
}

/// A subscription as `Client::prepare` makes it for the drive: its queue
/// (known to the stats hub from creation) and its in-flight count; with the
/// queue its stream reads and the receiver its caller waits on.
pub fn new_subscription<P: Protocol>(
    drive: &Drive<P>,
    client_id: ClientId,
    topic: Topic,
    capacity: usize,
    policy: Overflow,
) -> (
    NewSubscription,
    Arc<Queue>,
    oneshot::Receiver<Result<(), Error>>,
) {
    let stats = &drive.shared().stats;
    let queue = Queue::new(capacity, policy);
    stats.track(&queue);
    let (ready, answer) = oneshot::channel();
    let new = NewSubscription {
        client_id,
        topic,
        queue: Arc::clone(&queue),
        ready,
        in_flight: InFlight::new(stats),
    };
    (new, queue, answer)
}

/// A client id (the library numbers them; a harness picks its own).
pub const fn client_id(id: u64) -> ClientId {
    ClientId::new(id)
}

/// The error a session's end hands every stream when it ends the client.
pub fn end_error(end: &SessionEnd) -> Error {
    end.error()
}
