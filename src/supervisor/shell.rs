//! The async shell of one connected session: a `select!` loop over the
//! socket, the command channel, the next write slot and the next timer.
//!
//! It decides nothing. Every input goes to the [`SessionCore`]
//! (`session/core.rs` says what happens to a frame), every output is applied
//! here: frames the core hands out are written, actions become events and
//! replies, and while the core is parked on a full `Block` queue the socket is
//! not read (TCP backpressure) until the queue has room or the timeout passes.

use futures::{FutureExt, SinkExt, StreamExt};
use tokio::time::{sleep_until, Duration, Instant};
use tokio_tungstenite::tungstenite::{self, Message};

use super::replies::Served;
use super::{Supervisor, Ws};
use crate::protocol::Protocol;
use crate::session::{SessionEnd, WriteFailure};

/// Frames handled per wake-up before yielding back to `select!`, so a busy
/// socket amortises the select cost without starving commands and timers.
const READ_BATCH: usize = 64;

/// Runs one connected session until it ends. Returns how it ended and whether
/// it worked (every subscription it replayed was answered).
pub(super) async fn run<P: Protocol>(sup: &mut Supervisor<P>, ws: Ws) -> (SessionEnd, bool) {
    sup.core.on_connected(Instant::now());
    sup.apply();
    let mut shell = Shell {
        sup,
        ws,
        read_at: ReadStamp::default(),
    };
    let end = shell.run().await;
    let worked = shell.sup.core.session_worked();
    if let SessionEnd::Lost(crate::Error::Closed { .. })
    | SessionEnd::Fatal(crate::Error::Closed { .. }) = &end
    {
        // Complete the close handshake politely: tungstenite queued our reply.
        let bound = shell.sup.config.close_timeout.min(Duration::from_secs(1));
        let _ = tokio::time::timeout(bound, shell.ws.flush()).await;
    }
    shell.sup.core.on_disconnected(&end, Instant::now());
    shell.sup.apply();
    (end, worked)
}

struct Shell<'a, P> {
    sup: &'a mut Supervisor<P>,
    ws: Ws,
    read_at: ReadStamp,
}

/// The receive time of the frames cut from the socket's latest read: the
/// clock is read once per read from the OS, not once per frame
/// (`socket.rs` says why).
#[derive(Default)]
struct ReadStamp {
    /// The socket's read count and the time taken for it; `None` before the
    /// first frame.
    last: Option<(u64, Instant)>,
}

impl ReadStamp {
    /// The receive time of a frame that just came out of `ws`.
    fn of(&mut self, ws: &Ws) -> Instant {
        let reads = ws.get_ref().get_ref().reads();
        match self.last {
            Some((stamped, at)) if stamped == reads => at,
            _ => {
                let now = Instant::now();
                self.last = Some((reads, now));
                now
            }
        }
    }
}

impl<P: Protocol> Shell<'_, P> {
    async fn run(&mut self) -> SessionEnd {
        loop {
            if let Err(end) = self.turn().await {
                return end;
            }
        }
    }

    /// One wake-up: whatever is due first, then the frames already buffered.
    async fn turn(&mut self) -> Result<(), SessionEnd> {
        if let Some((queue, timeout)) = self.sup.core.blocked_on() {
            let made_room = tokio::time::timeout(timeout, queue.wait_space()).await;
            let now = Instant::now();
            match made_room {
                Ok(()) => self.sup.core.on_space(now),
                Err(_) => self.sup.core.on_block_timeout(now),
            }
            self.sup.apply();
            return Ok(());
        }
        let now = Instant::now();
        let write_at = self.sup.core.next_write_at(now);
        if write_at.is_some_and(|at| at <= now) {
            // Due now: write without arming a timer, which tokio rounds up
            // to the next millisecond (a 10-subscription replay took ~10 ms).
            self.write_next(now).await?;
        } else {
            let timer_at = self.sup.core.next_timer().unwrap_or(now);
            let take_commands = self.sup.core.accepts_commands();
            let core = &mut self.sup.core;
            let step = tokio::select! {
                // The receive time is when the read completed, not when the wait began.
                message = self.ws.next() => {
                    core.set_read_at(self.read_at.of(&self.ws));
                    on_socket(core, message, now)
                }
                command = self.sup.commands.recv(), if take_commands => {
                    match self.sup.replies.serve(command, core) {
                        Served::Done => Ok(()),
                        Served::Close => {
                            core.begin_close(now);
                            Ok(())
                        }
                    }
                }
                () = sleep_opt(write_at) => Ok(()),
                () = sleep_until(timer_at) => core.on_tick(Instant::now()),
            };
            self.sup.apply();
            step?;
        }
        if !self.sup.core.accepts_reads() {
            return Ok(());
        }
        // Drain frames that are already buffered before selecting again.
        for _ in 0..READ_BATCH {
            let Some(message) = self.ws.next().now_or_never() else {
                break;
            };
            self.sup.core.set_read_at(self.read_at.of(&self.ws));
            let step = on_socket(&mut self.sup.core, message, now);
            self.sup.apply();
            step?;
            if !self.sup.core.accepts_reads() {
                break;
            }
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
        let Some((message, written)) = self.sup.core.take_write(now) else {
            return Ok(());
        };
        let timeout = self.sup.core.write_timeout(&written);
        let result = tokio::time::timeout(timeout, self.ws.send(message)).await;
        let outcome = match result {
            Ok(Ok(())) => {
                self.sup.core.on_written(written, now);
                Ok(())
            }
            Ok(Err(error)) => Err(self
                .sup
                .core
                .on_write_failed(written, WriteFailure::Socket(error))),
            Err(_) => Err(self
                .sup
                .core
                .on_write_failed(written, WriteFailure::TimedOut(timeout))),
        };
        self.sup.apply();
        outcome
    }
}

/// One read from the socket, into the core.
fn on_socket<P: Protocol>(
    core: &mut crate::session::SessionCore<P>,
    message: Option<Result<Message, tungstenite::Error>>,
    now: Instant,
) -> Result<(), SessionEnd> {
    match message {
        Some(Ok(message)) => core.on_message(message, now),
        Some(Err(error)) => Err(core.on_read_error(error)),
        None => Err(core.on_stream_end()),
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
