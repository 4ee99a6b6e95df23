//! The reconnect machine against the model: the real
//! [`ReconnectMachine`](resilient_ws::fuzzing::ReconnectMachine)
//! decides every attempt number, delay and give-up of a script of attempts
//! and sessions; `model/reconnect.rs` says what the documented rules give.
//! Sessions go through the real session core, driven by `supervisor/drive.rs`
//! as every shell drives it, so the way a close frame or a dropped stream
//! ends a session, and the permanent-close rule (default or configured), are
//! the library's own.
//!
//! Input: six header bytes (initial delay, cap, factor, `max_attempts`,
//! `reset_after`, the close rule), then four bytes per step. A step starts an
//! attempt, which fails (an I/O timeout, a refused handshake with or without
//! Retry-After, the token source) or connects for a session that ends
//! (dropped, closed on request, or a close code; worked or not; with or
//! without a retry hint seen meanwhile). Jitter is 0, so each delay is exact.

use std::sync::Arc;
use std::time::Duration;

use resilient_ws::fuzzing::{After, ReconnectMachine, SessionEnd, SessionEnds};
use resilient_ws::{Backoff, Config, ConnectionError, Error, Operation, RedactedUrl};
use tokio::time::Instant;

use crate::model::reconnect::{MAfter, MEnd, MPolicy, ReconnectModel};

/// Initial delays, in milliseconds.
const INITIAL_MS: [u64; 6] = [1, 3, 10, 50, 200, 1000];
/// Close codes a session may end with.
const CODES: [u16; 14] = [
    1000, 1001, 1002, 1003, 1006, 1007, 1008, 1011, 1012, 1013, 3000, 4000, 4001, 4999,
];
/// The configured permanent sets (index 0: the default rule).
const RULES: [&[u16]; 3] = [&[], &[1011], &[1013, 4001]];
/// At most this many steps per script.
const MAX_STEPS: usize = 256;
const MS: u128 = 1_000_000;

/// Fuzz entry point: see the module docs.
pub fn reconnect_script(data: &[u8]) {
    let Some((header, steps)) = data.split_first_chunk::<6>() else {
        return;
    };
    let initial = INITIAL_MS[usize::from(header[0]) % INITIAL_MS.len()];
    let cap = initial * (1 + u64::from(header[1] % 40));
    let factor = 1 + u32::from(header[2] % 3);
    let max_attempts = match header[3] % 6 {
        0 | 1 => None,
        n => Some(u32::from(n - 1)),
    };
    let reset_after = u64::from(header[4] % 8) * 250;
    let rule = RULES[usize::from(header[5]) % RULES.len()];
    let policy = Backoff::new(Duration::from_millis(initial), Duration::from_millis(cap))
        .factor(f64::from(factor))
        .jitter(0.0)
        .max_attempts(max_attempts)
        .reset_after(Duration::from_millis(reset_after))
        .seed(1);
    let mut machine = ReconnectMachine::new(policy);
    let mut model = ReconnectModel::new(MPolicy {
        initial: u128::from(initial) * MS,
        cap: u128::from(cap) * MS,
        factor,
        max_attempts,
        reset_after: u128::from(reset_after) * MS,
        permanent: (!rule.is_empty()).then(|| rule.to_vec()),
    });
    let mut drive = drive_with(rule);
    let url = RedactedUrl::new("wss://127.0.0.1:9/ws");
    let base = Instant::now();
    let at = |ns: u128| base + Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX));
    let mut now: u128 = 0;
    for step in steps.chunks_exact(4).take(MAX_STEPS) {
        let [op, a, b, c] = [step[0], step[1], step[2], step[3]];
        let attempt = machine.attempt();
        assert_eq!(attempt, model.attempt(), "attempt number");
        machine.attempt_started(at(now));
        model.started(now);
        now += u128::from(a % 50) * MS;
        let (real, expected, error) = match op % 4 {
            0..=2 => {
                let (error, hint) = failed_attempt(op % 4, c, attempt, &url);
                let real = machine.attempt_failed(error.clone(), at(now));
                (real, model.attempt_failed(hint, now), Some(error))
            }
            _ => {
                let connected = now;
                let scale = [1, 10, 100, 1000][usize::from(c >> 6)];
                let lasted = u128::from(b) * scale * MS;
                let worked = c & 1 == 1;
                if op & 0x0c != 0 {
                    // A hint seen during the session (a venue lockout).
                    let hint_at = connected + lasted / 2 + u128::from(op >> 4) * 100 * MS;
                    machine.asked_to_wait(at(hint_at));
                    model.wait_until(hint_at);
                }
                now = connected + lasted;
                drive.connected(at(connected));
                let (end, mend) = session_end(&mut drive, (c >> 1) % 16, at(now));
                drive.disconnected(&end, at(now));
                let error = match &end {
                    SessionEnd::Lost(error) => Some(error.clone()),
                    _ => None,
                };
                let real = machine.session_ended(
                    end,
                    Duration::from_nanos(lasted as u64),
                    worked,
                    at(now),
                );
                (real, model.session_ended(mend, lasted, worked, now), error)
            }
        };
        match (real, expected) {
            (After::Retry(delay), MAfter::Retry(want)) => {
                let got = delay.as_nanos();
                assert!(
                    got.abs_diff(want) <= 1_000,
                    "attempt {attempt}: delay {got} ns, the rules say {want} ns"
                );
                now += want;
            }
            (After::Exit(None), MAfter::Closed) => return,
            (
                After::Exit(Some(Error::Closed {
                    code, permanent, ..
                })),
                MAfter::Permanent(want),
            ) => {
                assert_eq!((code, permanent), (want, true));
                return;
            }
            (
                After::Exit(Some(Error::Reconnect {
                    attempts,
                    last_error,
                })),
                MAfter::GiveUp(want),
            ) => {
                assert_eq!(attempts, want, "attempts counted when giving up");
                let last = error.map(|e| e.to_string());
                assert_eq!(Some(last_error.to_string()), last, "the last error");
                return;
            }
            (real, expected) => {
                panic!("attempt {attempt}: got {real:?}, the rules say {expected:?}")
            }
        }
    }
}

/// A failed attempt of kind `kind` (0: an I/O timeout, 1: refused, with a
/// Retry-After of `c` * 10 ms unless `c` is 0, 2: the token source) and the
/// hint it carries, in nanoseconds.
fn failed_attempt(kind: u8, c: u8, attempt: u32, url: &RedactedUrl) -> (Error, Option<u128>) {
    match kind {
        0 => {
            let timeout = Duration::from_secs(1);
            let error = Error::Timeout {
                operation: Operation::Connect,
                timeout,
            };
            (error, None)
        }
        1 => {
            let retry_after = (c != 0).then(|| Duration::from_millis(u64::from(c) * 10));
            let status = if c == 0 { 503 } else { 429 };
            let refused = ConnectionError::Refused {
                status,
                retry_after,
            };
            let hint = retry_after.map(|d| d.as_nanos());
            let error = Error::Connection {
                url: url.clone(),
                attempts: attempt,
                source: Arc::new(refused),
            };
            (error, hint)
        }
        _ => {
            let source = std::io::Error::other("the token source is down");
            let error = Error::Token {
                attempts: attempt,
                source: Arc::new(source),
            };
            (error, None)
        }
    }
}

/// A session core whose close rule is `rule` (empty: the default), built as
/// every shell builds it.
fn drive_with(rule: &'static [u16]) -> SessionEnds {
    let mut builder = Config::builder("wss://127.0.0.1:9/ws").idle_timeout(None);
    if !rule.is_empty() {
        builder = builder.permanent_close_codes(move |code| rule.contains(&code));
    }
    SessionEnds::new(builder.build().expect("a valid script config"))
}

/// Ends the session: 0 closed on request, 1 dropped, else a close code.
fn session_end(drive: &mut SessionEnds, pick: u8, now: Instant) -> (SessionEnd, MEnd) {
    let code = CODES[usize::from(pick) % CODES.len()];
    match pick {
        0 => {
            // The shell writes our close frame, then the peer answers.
            let written = drive.close_on_request(now);
            assert!(written.is_ok(), "a frame written ends no session");
            (close_frame(drive, 1000, now), MEnd::Closed)
        }
        1 => match drive.stream_ended(now) {
            Err(end) => (end, MEnd::Dropped),
            Ok(()) => panic!("the end of the stream must end the session"),
        },
        _ => (close_frame(drive, code, now), MEnd::Code(code)),
    }
}

fn close_frame(drive: &mut SessionEnds, code: u16, now: Instant) -> SessionEnd {
    match drive.close_frame(code, now) {
        Err(end) => end,
        Ok(()) => panic!("a close frame must end the session"),
    }
}
