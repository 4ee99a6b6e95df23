//! The WEEX WebSocket protocol (`op`/`args` style, public market data and
//! signed private connections).
//!
//! Rules, with the facts and their sources in `src/protocol/VENUES.md`:
//! - Subscribe and unsubscribe are `{"op":..,"args":[{"channel":..,"instId":..}]}`,
//!   one topic per request. WEEX echoes no request id, so the adapter
//!   remembers which request subscribed each `channel:instId` and hands that
//!   id back with the ack or error that names the same topic; an ack that
//!   names no topic matches nobody.
//! - The server sends `{"event":"ping","time":T}` and drops clients that do
//!   not answer; the adapter asks the session to reply
//!   `{"event":"pong","time":T}` ([`Inbound::Reply`]), echoing `T` verbatim.
//! - Errors map onto [`VenueErrorKind`] by code: 40001-40005 (authentication)
//!   are permanent, 40029 is rate limited with a retry hint, 50000-50009 are
//!   transient, anything else unknown.
//! - Limits: 100 channels and 240 subscribe operations per hour per
//!   connection ([`Protocol::limits`]).
//! - Private connections authenticate with signed handshake headers; see
//!   [`sign_headers`].

use std::collections::HashMap;
use std::time::Duration;

use super::json;
use super::op_args::{self, Arg, Envelope, Keys};
use super::{Inbound, Protocol, ServerId, Topic, VenueLimits};
use crate::error::{ProtocolError, VenueError};
use crate::venue_error::VenueErrorKind;

mod sign;

pub use sign::{sign_headers, signature, WeexCredentials};

/// Channels per connection, per the WEEX docs.
pub const MAX_CHANNELS: usize = 100;
/// Subscribe operations per hour per connection, per the WEEX docs.
pub const MAX_OPS_PER_HOUR: u32 = 240;
/// The wait suggested after a 40029 (rate limited): one operation slot of the
/// documented 240 per hour frees every 15 s on average.
pub const RATE_LIMIT_RETRY: Duration = Duration::from_secs(3600 / MAX_OPS_PER_HOUR as u64);
/// The longest heartbeat `time` value echoed back, in bytes; a longer one is
/// not a timestamp.
const MAX_TIME_LEN: usize = 32;

/// The WEEX WebSocket protocol.
///
/// ```
/// use resilient_ws::{Inbound, Protocol, Topic, Weex};
/// let mut weex = Weex::new();
/// let frame = weex.encode_subscribe(&[&Topic::new("ticker").symbol("BTCUSDT")], 1);
/// assert_eq!(frame, r#"{"op":"subscribe","args":[{"channel":"ticker","instId":"BTCUSDT"}]}"#);
/// match weex.classify(r#"{"event":"ping","time":"1693208170000"}"#) {
///     Inbound::Reply { text } => assert_eq!(text, r#"{"event":"pong","time":"1693208170000"}"#),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Default)]
pub struct Weex {
    keys: Keys,
    /// The request that subscribed each `channel:instId` and is not answered
    /// yet (added when encoded, removed by its ack, its error or `forget`).
    pending: HashMap<ServerId, u64>,
}

impl Weex {
    /// The WEEX protocol.
    pub fn new() -> Self {
        Self::default()
    }

    /// The server id WEEX data for `channel` and `symbol` is routed by.
    pub fn server_id(channel: &str, symbol: Option<&str>) -> ServerId {
        Keys::server_id(channel, symbol)
    }

    fn answered(&mut self, channel: Option<&str>, symbol: Option<&str>) -> Option<u64> {
        let channel = channel?;
        self.pending.remove(&Keys::server_id(channel, symbol))
    }
}

/// Classifies a WEEX error code and message.
///
/// ```
/// use resilient_ws::protocol::weex::venue_error;
/// use resilient_ws::VenueErrorKind;
/// assert_eq!(venue_error(Some(40003), "sign error").kind, VenueErrorKind::Permanent);
/// assert!(venue_error(Some(40029), "too many").retry_after().is_some());
/// ```
pub fn venue_error(code: Option<i64>, message: &str) -> VenueError {
    let error = VenueError::new(code, message);
    match code {
        Some(40001..=40005) => error.with_kind(VenueErrorKind::Permanent),
        Some(40029) => error
            .with_kind(VenueErrorKind::RateLimited)
            .with_retry_after(RATE_LIMIT_RETRY),
        Some(50000..=50009) => error.with_kind(VenueErrorKind::Transient),
        _ => error,
    }
}

impl Protocol for Weex {
    fn name(&self) -> &'static str {
        "weex"
    }

    fn encode_subscribe(&mut self, topics: &[&Topic], req_id: u64) -> String {
        for topic in topics {
            self.keys.remember(topic.channel(), topic.symbol_name());
            let id = Keys::server_id(topic.channel(), topic.symbol_name());
            if self.pending.len() < MAX_CHANNELS * 4 || self.pending.contains_key(&id) {
                self.pending.insert(id, req_id);
            }
        }
        op_args::encode("subscribe", None, topics)
    }

    fn encode_unsubscribe(
        &mut self,
        topic: &Topic,
        _server_id: &ServerId,
        _req_id: u64,
    ) -> Option<String> {
        Some(op_args::encode("unsubscribe", None, &[topic]))
    }

    fn limits(&self) -> VenueLimits {
        VenueLimits::new(
            Some(MAX_CHANNELS),
            Some((MAX_OPS_PER_HOUR, Duration::from_secs(3600))),
        )
    }

    fn classify<'a>(&mut self, text: &'a str) -> Inbound<'a> {
        if !json::is_object(text) {
            return Inbound::Invalid(ProtocolError::Unparseable(
                "weex: frame is not a JSON object".to_owned(),
            ));
        }
        let frame: Envelope<'a> = match serde_json::from_str(text) {
            Ok(frame) => frame,
            Err(error) => return Inbound::Invalid(json::unparseable("weex", &error)),
        };
        let arg = Arg::of(frame.arg);
        match frame.event.as_deref() {
            Some("ping") => match frame.time.map(|t| t.get()) {
                Some(time) if time.len() <= MAX_TIME_LEN => Inbound::Reply {
                    text: format!(r#"{{"event":"pong","time":{time}}}"#).into(),
                },
                Some(_) => Inbound::Invalid(ProtocolError::Unexpected(
                    "weex: heartbeat time is not a timestamp".to_owned(),
                )),
                None => Inbound::Reply {
                    text: r#"{"event":"pong"}"#.into(),
                },
            },
            Some("pong") => Inbound::Pong,
            Some("subscribe") => match arg.channel.0 {
                Some(channel) => {
                    let symbol = arg.inst_id.0;
                    let req_id = self.answered(Some(&channel), symbol.as_deref());
                    Inbound::Subscribed {
                        req_id,
                        server_id: self.keys.route(&channel, symbol.as_deref()),
                        channel: Some(channel),
                        symbol,
                    }
                }
                None => Inbound::Invalid(ProtocolError::Unparseable(
                    "weex: subscribe acknowledgement without arg.channel".to_owned(),
                )),
            },
            Some("unsubscribe") => Inbound::Unsubscribed { req_id: None },
            Some("error") => {
                let symbol = arg.inst_id.0;
                let req_id = self.answered(arg.channel.as_deref(), symbol.as_deref());
                let code = op_args::code(frame.code);
                Inbound::Rejected {
                    req_id,
                    symbol,
                    error: venue_error(code, frame.msg.as_deref().unwrap_or_default()),
                }
            }
            Some(_) => Inbound::Control,
            None => match (arg.channel.as_deref(), frame.data) {
                (Some(channel), Some(data)) => Inbound::Data {
                    server_id: self.keys.route(channel, arg.inst_id.as_deref()),
                    seq: None,
                    checksum: None,
                    payload: Some(data.get()),
                },
                _ => Inbound::Unsolicited,
            },
        }
    }

    fn reset(&mut self) {
        self.pending.clear();
    }

    fn forget(&mut self, server_id: &ServerId) {
        self.keys.forget(server_id);
        self.pending.remove(server_id);
    }
}

#[cfg(test)]
mod tests;
