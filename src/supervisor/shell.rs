//! The async shell of one connected session: a `select!` loop over the
//! socket, the command channel, the next write slot and the next timer (and,
//! while one is in flight, a book snapshot fetch's result).
//!
//! It decides nothing and holds no rule of its own: it follows `drive.rs`
//! (which the consumer-driven feed follows too). Every input goes to the
//! [`SessionCore`](crate::session::SessionCore) through
//! [`Drive`](super::drive::Drive), every output is applied there: frames the core hands out are written, actions become events and
//! replies, and while the core is parked on a full `Block` queue the socket is
//! not read (TCP backpressure) until the queue has room or the timeout passes.

use std::time::SystemTime;

use futures::{FutureExt, SinkExt, StreamExt};
use tokio::time::{sleep_until, Duration, Instant};

use super::drive::{ReadStamp, Turn, WriteOutcome, READ_BATCH};
use tokio::sync::mpsc;

use super::drive::Drive;
use crate::command::Command;
use crate::connect::Ws;
use crate::protocol::Protocol;
use crate::session::SessionEnd;

/// Runs one connected session until it ends. Returns how it ended and whether
/// it worked (every subscription it replayed was answered).
pub(super) async fn run<P: Protocol>(
    drive: &mut Drive<P>,
    commands: &mut mpsc::Receiver<Command>,
    close_timeout: Duration,
    ws: Ws,
) -> (SessionEnd, bool) {
    drive.connected(Instant::now(), SystemTime::now());
    let mut shell = Shell {
        drive,
        commands,
        ws,
        read_at: ReadStamp::default(),
    };
    let end = shell.run().await;
    let worked = shell.drive.session_worked();
    if let SessionEnd::Lost(crate::error::Error::Closed { .. })
    | SessionEnd::Fatal(crate::error::Error::Closed { .. }) = &end
    {
        // Complete the close handshake politely: tungstenite queued our reply.
        let bound = close_timeout.min(Duration::from_secs(1));
        let _ = tokio::time::timeout(bound, shell.ws.flush()).await;
    }
    shell.drive.disconnected(&end, Instant::now());
    (end, worked)
}

struct Shell<'a, P> {
    drive: &'a mut Drive<P>,
    commands: &'a mut mpsc::Receiver<Command>,
    ws: Ws,
    read_at: ReadStamp,
}

impl<P: Protocol> Shell<'_, P> {
    async fn run(&mut self) -> SessionEnd {
        loop {
            if let Err(end) = self.turn().await {
                return end;
            }
        }
    }

    /// One wake-up: whatever is due first, then the frames already buffered
    /// (the order is `drive.rs`'s).
    async fn turn(&mut self) -> Result<(), SessionEnd> {
        let now = Instant::now();
        match self.drive.next_turn(now) {
            Turn::Blocked { queue, timeout } => {
                let made_room = tokio::time::timeout(timeout, queue.wait_space()).await;
                self.drive.blocked_ended(made_room.is_ok(), Instant::now());
                return Ok(());
            }
            Turn::Write => self.write_next(now).await?,
            Turn::Wait {
                write_at,
                timer_at,
                commands: take_commands,
            } => {
                // Only a connection with a fetch in flight polls the channel.
                let fetching = self.drive.fetching();
                let drive = &mut *self.drive;
                tokio::select! {
                    // The receive time is when the read completed, not when the wait began.
                    message = self.ws.next() => {
                        let read_at = self.read_at.of(&self.ws);
                        drive.socket(message, read_at, now)?;
                    }
                    command = self.commands.recv(), if take_commands => {
                        drive.serve_online(command, now);
                    }
                    () = sleep_opt(write_at) => {}
                    () = sleep_until(timer_at) => drive.tick(Instant::now())?,
                    fetched = std::future::poll_fn(|cx| drive.poll_fetched(cx)), if fetching => {
                        drive.fetched(fetched, Instant::now());
                    }
                }
            }
        }
        // Drain frames that are already buffered before selecting again.
        for _ in 0..READ_BATCH {
            if !self.drive.may_read() {
                break;
            }
            let Some(message) = self.ws.next().now_or_never() else {
                break;
            };
            let read_at = self.read_at.of(&self.ws);
            self.drive.socket(message, read_at, now)?;
            // Frames already inside tungstenite's buffer cost no tokio budget,
            // so without this a busy socket never yields and a consumer woken
            // onto this worker cannot run until its queue has overflowed.
            tokio::task::coop::consume_budget().await;
        }
        Ok(())
    }

    /// Writes the frame the core says is due, bounded so a peer that stopped
    /// reading cannot wedge us.
    async fn write_next(&mut self, now: Instant) -> Result<(), SessionEnd> {
        let Some((message, written, timeout)) = self.drive.take_write(now) else {
            return Ok(());
        };
        let outcome = match tokio::time::timeout(timeout, self.ws.send(message)).await {
            Ok(Ok(())) => WriteOutcome::Done,
            Ok(Err(error)) => WriteOutcome::Failed(error),
            Err(_) => WriteOutcome::TimedOut(timeout),
        };
        self.drive.written(written, outcome, now)
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
