//! WEEX frames for the op/args test server: market-data pushes and the
//! heartbeat knobs (the server's `{"event":"ping","time":T}` and whether an
//! unanswered one drops the client).
#![allow(dead_code)]

use std::time::Duration;

use serde_json::json;

use super::op_venue::{with_arg, OpVenue};

/// Pings every `every`; with `strict`, a connection that did not answer the
/// previous ping is closed (as WEEX drops clients that do not pong). Applies
/// to connections made after the call.
pub fn heartbeats(venue: &OpVenue, every: Duration, strict: bool) {
    let mut state = venue.state();
    state.ping_every = Some(every);
    state.require_pong = strict;
}

/// A `ticker`, `depth` or `trades` push.
pub fn push(venue: &OpVenue, channel: &str, inst: &str, n: u64) {
    let frame = with_arg(
        channel,
        inst,
        json!({"action": "snapshot", "data": [{"instId": inst, "n": n}]}),
    );
    venue.push(channel, inst, &frame);
}
