//! Kraken's two classification paths: the single-pass scan for non-book data
//! frames (`protocol::scan::kraken`), and the serde path for everything else,
//! which stays the reference the fuzz target `envelope_scan` compares against.

use super::frames::AckResult;
use super::frames::Envelope;
use super::Kraken;
use crate::error::ProtocolError;
use crate::protocol::json::{self, opt_u64};
use crate::protocol::{scan, Inbound};

/// The data channels Kraken documents for WebSocket v2 (see VENUES.md): a
/// frame of one of them without `data` is informational; a frame of any other
/// channel without `data` is a kind the adapter does not know.
pub(super) const DATA_CHANNELS: [&str; 8] = [
    "ticker",
    "book",
    "level3",
    "ohlc",
    "trade",
    "instrument",
    "executions",
    "balances",
];

/// The request methods Kraken documents for WebSocket v2 (trading and
/// connection requests; see VENUES.md). Their answers carry the request's
/// `req_id`; one without it answers nobody and is informational.
pub(super) const REQUEST_METHODS: [&str; 9] = [
    "add_order",
    "amend_order",
    "edit_order",
    "cancel_order",
    "cancel_all",
    "cancel_all_orders_after",
    "batch_add",
    "batch_cancel",
    "ping",
];

/// The venue's name for the type of a frame (`channel`, else `method`), for
/// frames the session cannot place. Only a name the frame holds unescaped is
/// given (a kind name with escapes is not worth an allocation).
pub(super) fn frame_kind(text: &str) -> Option<&str> {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(default, borrow)]
        channel: Option<&'a str>,
        #[serde(default, borrow)]
        method: Option<&'a str>,
    }
    let kind: Kind<'_> = serde_json::from_str(text).ok()?;
    kind.channel.or(kind.method)
}

/// `text` cut to at most `max` bytes at a character boundary (for log lines
/// quoting the peer).
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// The two classification paths behind `Protocol::classify`.
impl Kraken {
    /// The fast path: a non-book data frame read by the single-pass scanner,
    /// or `None`.
    pub(crate) fn classify_fast<'a>(&mut self, text: &'a str) -> Option<Inbound<'a>> {
        let data = scan::kraken::data(text)?;
        Some(Inbound::Data {
            server_id: self.route(data.channel, data.symbol),
            seq: data.seq,
            book_break: None,
            payload: Some(data.data),
        })
    }

    /// The reference path: every frame read through serde.
    pub(crate) fn classify_serde<'a>(&mut self, text: &'a str) -> Inbound<'a> {
        if !json::is_object(text) {
            return Inbound::Invalid(ProtocolError::Unparseable(
                "kraken: frame is not a JSON object".to_owned(),
            ));
        }
        let frame: Envelope<'a> = match serde_json::from_str(text) {
            Ok(frame) => frame,
            Err(error) => return Inbound::Invalid(json::unparseable("kraken", &error)),
        };
        let req_id = opt_u64(frame.req_id);
        if let Some(method) = frame.method.as_deref() {
            let failed = frame.failed();
            return match method {
                "subscribe" if failed => Inbound::Rejected {
                    req_id,
                    error: frame.venue_error(),
                    symbol: frame.symbol.0,
                },
                "subscribe" => {
                    let result = frame
                        .result
                        .and_then(|raw| serde_json::from_str::<AckResult<'a>>(raw.get()).ok())
                        .unwrap_or_default();
                    let Some(channel) = result.channel.as_deref() else {
                        return Inbound::Invalid(ProtocolError::Unparseable(
                            "kraken: subscribe acknowledgement without result.channel".to_owned(),
                        ));
                    };
                    if let Some(warnings) = result.warnings {
                        tracing::warn!(
                            channel,
                            warnings = cut(warnings.get(), 256),
                            "kraken: subscription acknowledged with warnings"
                        );
                    }
                    let server_id = self.key(channel, result.symbol.as_deref());
                    Inbound::Subscribed {
                        req_id,
                        server_id,
                        channel: result.channel.0,
                        symbol: result.symbol.0,
                    }
                }
                "unsubscribe" if failed => Inbound::Rejected {
                    req_id,
                    error: frame.venue_error(),
                    symbol: frame.symbol.0,
                },
                "unsubscribe" => Inbound::Unsubscribed { req_id },
                "pong" => Inbound::Pong,
                _ => match req_id {
                    Some(req_id) => Inbound::Response {
                        req_id,
                        error: failed.then(|| frame.venue_error()),
                    },
                    // The answer to a documented request sent without a
                    // req_id: nobody waits for it.
                    None if REQUEST_METHODS.contains(&method) => Inbound::Control,
                    None => Inbound::Unknown {
                        kind: frame.method.0.unwrap_or_default(),
                    },
                },
            };
        }
        if let Some(channel) = frame.channel.as_deref() {
            return match (channel, frame.data) {
                ("heartbeat", _) => Inbound::Heartbeat,
                ("status", _) => Inbound::Control,
                (channel, None) if DATA_CHANNELS.contains(&channel) => Inbound::Control,
                (_, None) => Inbound::Unknown {
                    kind: frame.channel.0.unwrap_or_default(),
                },
                (channel, Some(data)) => {
                    let snapshot = frame.kind.as_deref() == Some("snapshot");
                    let seq = opt_u64(frame.sequence);
                    self.classify_data(channel, snapshot, data, seq)
                }
            };
        }
        match req_id {
            Some(req_id) => Inbound::Response {
                req_id,
                error: frame.failed().then(|| frame.venue_error()),
            },
            // A venue error that answers nothing identifiable.
            None if frame.error.0.is_some() => Inbound::Control,
            None => Inbound::Invalid(ProtocolError::Unparseable(
                "kraken: frame has neither method nor channel".to_owned(),
            )),
        }
    }
}
