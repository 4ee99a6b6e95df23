//! The seam between the venue-neutral supervisor and a venue's wire format.
//!
//! The supervisor never parses venue JSON. It asks the [`Protocol`] to *encode*
//! subscribe, unsubscribe, ping and request frames, and to *classify* each
//! inbound text frame into an [`Inbound`]: an acknowledgement, a rejection,
//! routed data, a response, a pong, a heartbeat, or something else.
//!
//! The protocol value is owned by the supervisor task (it is `&mut self`
//! everywhere), so an adapter may keep per-connection state, such as the Kraken
//! order books it verifies checksums against, without any locking.
//!
//! Classification is on the hot path: adapters deserialize only the routing
//! fields into borrowed structs, never a full `serde_json::Value` tree.

use std::borrow::Cow;
use std::fmt;

use crate::error::{ProtocolError, VenueError};

pub(crate) mod json;
pub mod kalshi;
pub mod kraken;
mod limits;
pub mod okx;
pub(crate) mod op_args;
mod raw;
mod route_keys;
pub(crate) mod scan;
pub(crate) mod venue_time;
pub mod weex;

pub use kalshi::Kalshi;
pub use kraken::Kraken;
pub use limits::{inflate_bounded, Compression, VenueLimits, MAX_DECODED_BYTES};
pub use okx::Okx;
pub use raw::RawProtocol;
pub use weex::Weex;
// Plain data below the adapters (the book's snapshot requests name it too);
// its public path stays here.
pub use crate::ids::ServerId;

/// What a subscription is for: a channel, usually a symbol, and venue parameters.
///
/// ```
/// use resilient_ws::Topic;
/// let topic = Topic::new("book").symbol("BTC/USD").param("depth", 10);
/// assert_eq!(topic.channel(), "book");
/// ```
///
/// `Debug` shows every parameter except secrets: a parameter whose name holds
/// `token`, `secret`, `signature`, `password`, `passphrase` or `api_key`
/// (any case, at any depth) is printed as `"<redacted>"`, since topics end up
/// in logs and error reports.
#[derive(Clone, PartialEq)]
pub struct Topic {
    channel: String,
    symbol: Option<String>,
    params: serde_json::Map<String, serde_json::Value>,
}

impl Topic {
    /// A topic on `channel`.
    pub fn new(channel: impl Into<String>) -> Self {
        Topic {
            channel: channel.into(),
            symbol: None,
            params: serde_json::Map::new(),
        }
    }

    /// Sets the symbol (market ticker, currency pair, ...).
    pub fn symbol(mut self, symbol: impl Into<String>) -> Self {
        self.symbol = Some(symbol.into());
        self
    }

    /// Adds a venue-specific parameter, merged into the subscribe request's params.
    pub fn param(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.params.insert(key.into(), value.into());
        self
    }

    /// The channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The symbol, if any.
    pub fn symbol_name(&self) -> Option<&str> {
        self.symbol.as_deref()
    }

    /// The venue parameters.
    pub fn params(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.params
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topic")
            .field("channel", &self.channel)
            .field("symbol", &self.symbol)
            .field(
                "params",
                &Redacted(&serde_json::Value::Object(self.params.clone())),
            )
            .finish()
    }
}

/// Whether a parameter name marks a secret.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "token",
        "secret",
        "signature",
        "password",
        "passphrase",
        "api_key",
        "apikey",
    ]
    .iter()
    .any(|needle| key.contains(needle))
}

/// A JSON value with every secret parameter replaced, for `Debug`.
fn redacted(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) {
                        Value::String("<redacted>".into())
                    } else {
                        redacted(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        other => other.clone(),
    }
}

/// Debug-formats a JSON value with its secrets redacted.
struct Redacted<'a>(&'a serde_json::Value);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", redacted(self.0))
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.symbol {
            Some(symbol) => write!(f, "{}:{}", self.channel, symbol),
            None => f.write_str(&self.channel),
        }
    }
}

/// A one-off request for [`Client::request`](crate::Client::request); the
/// protocol adds the request id.
///
/// `Debug` redacts secret parameters as [`Topic`]'s does.
#[derive(Clone, PartialEq)]
pub struct Request {
    /// The venue's method or command name.
    pub method: String,
    /// The parameters, if any.
    pub params: Option<serde_json::Value>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("params", &self.params.as_ref().map(Redacted))
            .finish()
    }
}

impl Request {
    /// A request for `method` with `params`.
    pub fn new(method: impl Into<String>, params: Option<serde_json::Value>) -> Self {
        Request {
            method: method.into(),
            params,
        }
    }
}

/// A book break the protocol attaches to a data frame (see [`BookBreak`]).
pub use crate::book::BookBreak;

/// A venue-time search over a data frame's text and payload (the arguments
/// of [`Protocol::venue_time`]), kept on each frame so the search runs only
/// when the frame's venue time is asked (see [`Protocol::venue_time_finder`]).
pub type VenueTimeFinder = fn(text: &str, payload: &str) -> Option<std::time::SystemTime>;

/// The classification of one inbound text frame.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Inbound<'a> {
    /// Data for the subscription the server knows as `server_id`.
    Data {
        /// The server id the frame is routed by.
        server_id: ServerId,
        /// The per-subscription sequence number, when the venue sends one.
        seq: Option<u64>,
        /// Set when the frame broke the book the protocol keeps for the
        /// subscription (a checksum mismatch, an update-id discontinuity, an
        /// update the book cannot use): the session reports it in-band and
        /// resyncs that one subscription.
        book_break: Option<BookBreak>,
        /// The venue payload (e.g. Kalshi `msg`, Kraken `data`) as a slice of
        /// the classified text, when the protocol found one while classifying:
        /// consumers get it from [`Frame::payload`](crate::Frame::payload)
        /// without parsing again. A slice that is not part of the text is ignored.
        payload: Option<&'a str>,
    },
    /// Data that belongs to no subscription; it goes to the client's inbound stream.
    Unsolicited,
    /// A subscribe was acknowledged. Within one request, the ack is matched to the
    /// first pending topic whose channel and symbol agree with the ones given.
    Subscribed {
        /// The request id echoed by the venue.
        req_id: Option<u64>,
        /// The server id to route by from now on.
        server_id: ServerId,
        /// The acknowledged channel, when the ack names it.
        channel: Option<Cow<'a, str>>,
        /// The acknowledged symbol, when the ack names it.
        symbol: Option<Cow<'a, str>>,
    },
    /// A subscribe (or unsubscribe) was refused.
    Rejected {
        /// The request id echoed by the venue.
        req_id: Option<u64>,
        /// The refused symbol, when the venue names it (Kraken does).
        symbol: Option<Cow<'a, str>>,
        /// The venue's error.
        error: VenueError,
    },
    /// An unsubscribe was acknowledged.
    Unsubscribed {
        /// The request id echoed by the venue.
        req_id: Option<u64>,
    },
    /// The answer to a [`Request`].
    Response {
        /// The request id echoed by the venue.
        req_id: u64,
        /// The venue's error, when the request failed.
        error: Option<VenueError>,
    },
    /// An application-level pong.
    Pong,
    /// A venue heartbeat: no data, but proof the feed is alive.
    Heartbeat,
    /// A venue heartbeat the client must answer (WEEX's `{"event":"ping"}`):
    /// the session writes `text` ahead of queued frames and counts the
    /// heartbeat as proof the feed is alive. At most a few replies wait at a
    /// time; a heartbeat arriving while they are full is not answered twice.
    Reply {
        /// The answer to write, exactly as the venue expects it.
        text: Cow<'a, str>,
    },
    /// The venue ended the subscription it knows as `server_id` on its own
    /// (Kalshi's error 25 "subscription buffer overflow" or 10 "channel
    /// error"): nothing more will come for it. The session subscribes it
    /// again (a fresh snapshot under a new server id; its consumer gets
    /// [`Update::Resubscribed`](crate::Update::Resubscribed)), and a refusal
    /// of that subscribe ends it with the venue's error, so the stream never
    /// goes silent.
    Ended {
        /// The server id of the subscription that ended.
        server_id: ServerId,
        /// Why the venue ended it.
        error: VenueError,
    },
    /// A control frame that took a number in a subscription's sequence
    /// (Kalshi's `ok` and `error` frames carry the `sid` and `seq` of the
    /// subscription they concern). When `seq` is the next number for
    /// `server_id`, the session records it, so the data frame after it is not
    /// taken for a gap; then it handles `then`, the frame's own meaning.
    Sequenced {
        /// The server id whose sequence the frame took a number of.
        server_id: ServerId,
        /// The number it took.
        seq: u64,
        /// What the frame is besides (a response, a rejection, ...).
        then: Box<Inbound<'a>>,
    },
    /// A status or informational frame.
    Control,
    /// A well-formed frame of a message type the adapter does not know (a
    /// channel or method the venue added, say): counted as unroutable and
    /// reported once per `kind` ([`Event::UnknownMessage`](crate::Event::UnknownMessage)).
    Unknown {
        /// The venue's name for the frame's type (its `channel`, `method`,
        /// `type` or `event` field).
        kind: Cow<'a, str>,
    },
    /// The venue announced that it will close this connection soon (OKX's
    /// service-upgrade notice, code 64008): the session reconnects now and
    /// replays its subscriptions instead of waiting to be cut off. The
    /// notice is the reported cause of the disconnect.
    Reconnect {
        /// The venue's notice.
        notice: VenueError,
    },
    /// A frame the protocol cannot make sense of; counted as unroutable.
    Invalid(ProtocolError),
}

/// A venue's wire format. Implement it to plug in a new exchange.
///
/// Every method has the supervisor's exclusive access (`&mut self`), so
/// implementations can keep state (the Kraken adapter keeps order books).
/// Nothing here may panic on what a peer sends: [`classify`](Protocol::classify)
/// returns [`Inbound::Invalid`] for garbage.
pub trait Protocol: Send + 'static {
    /// A short name for logs and summaries (e.g. `"kalshi"`).
    fn name(&self) -> &'static str;

    /// The text frame that subscribes to `topics` under request id `req_id`.
    /// `topics` has one element unless [`can_batch`](Protocol::can_batch) allowed more.
    fn encode_subscribe(&mut self, topics: &[&Topic], req_id: u64) -> String;

    /// The text frame that ends the subscription the server knows as `server_id`,
    /// or `None` if the venue has no unsubscribe.
    fn encode_unsubscribe(
        &mut self,
        topic: &Topic,
        server_id: &ServerId,
        req_id: u64,
    ) -> Option<String>;

    /// Whether `next` may join a subscribe request that already holds `first`.
    /// Default: never (one request per topic).
    fn can_batch(&self, first: &Topic, next: &Topic) -> bool {
        let _ = (first, next);
        false
    }

    /// What tells two topics of one channel apart on a connection: a second
    /// subscribe of a topic with the same channel and scope is refused
    /// locally (the venue keeps one stream per topic). Default: the symbol.
    /// OKX subscribes some channels by `instType` or `instFamily` instead
    /// of an instrument (`instruments`, `liquidation-orders`,
    /// `opt-summary`), and several types may share a connection, so its
    /// adapter names that field here.
    fn topic_scope<'t>(&self, topic: &'t Topic) -> Option<std::borrow::Cow<'t, str>> {
        topic.symbol_name().map(std::borrow::Cow::Borrowed)
    }

    /// The most topics one subscribe request carries when
    /// [`can_batch`](Protocol::can_batch) allows more than one: a venue that
    /// caps a request's size (OKX: 64 KB for all of a request's channels,
    /// closing with 1009 beyond it) gets more requests instead of one it
    /// refuses. Default: no cap.
    fn max_batch(&self) -> usize {
        usize::MAX
    }

    /// A frame that asks the venue for a fresh snapshot of the live
    /// subscription `server_id` without ending it (Kalshi's
    /// `update_subscription` with `action: "get_snapshot"`), used to resync
    /// after a sequence gap. `None` (the default) resyncs the way every venue
    /// can: unsubscribe, then subscribe again. If the venue refuses the
    /// request, the session falls back to that.
    fn encode_resync(
        &mut self,
        topic: &Topic,
        server_id: &ServerId,
        req_id: u64,
    ) -> Option<String> {
        let _ = (topic, server_id, req_id);
        None
    }

    /// An application-level ping, if the venue has one. When `None` (the
    /// default) the supervisor sends WebSocket pings instead.
    fn encode_ping(&mut self, req_id: u64) -> Option<String> {
        let _ = req_id;
        None
    }

    /// The text frame for a one-off request. The default rejects requests.
    fn encode_request(&mut self, request: &Request, req_id: u64) -> Result<String, ProtocolError> {
        let _ = req_id;
        Err(ProtocolError::Unexpected(format!(
            "{} does not support requests ({})",
            self.name(),
            request.method
        )))
    }

    /// Classifies an inbound text frame.
    fn classify<'a>(&mut self, text: &'a str) -> Inbound<'a>;

    /// The venue's name for the type of `text` (its `channel`, `method`,
    /// `type` or `event` field), asked only for a frame that could not be
    /// placed: data classified for a subscription this connection does not
    /// hold, or unsolicited data. The session counts such frames per kind and
    /// reports each kind once ([`Event::UnknownMessage`](crate::Event::UnknownMessage)).
    /// Default `None`: unroutable data is counted as the kind `"unnamed"`, and
    /// unsolicited data (all of a raw feed's frames) is not reported.
    fn frame_kind<'a>(&self, text: &'a str) -> Option<&'a str> {
        let _ = text;
        None
    }

    /// Decompresses an inbound binary frame into text, for venues that send
    /// gzip or deflate frames; the text is then classified by
    /// [`classify`](Protocol::classify) like any text frame. `None` (the
    /// default) leaves the frame to
    /// [`classify_binary`](Protocol::classify_binary). Implementations must
    /// bound the output (see [`inflate_bounded`]): a small frame may inflate
    /// to gigabytes.
    fn decode_binary(&mut self, data: &[u8]) -> Option<Result<String, ProtocolError>> {
        let _ = data;
        None
    }

    /// The venue's own timestamp of a data frame, where the venue sends one:
    /// `text` is the whole frame, `payload` the span
    /// [`Frame::payload`](crate::Frame::payload) returns (the whole frame when
    /// the adapter named none). Scan for the key, never parse the payload
    /// into a tree. Default: `None`.
    ///
    /// When it is asked: an adapter that also hands the session a
    /// [`venue_time_finder`](Protocol::venue_time_finder) (the built-in
    /// adapters do) is never asked here by the session; the finder is kept
    /// on each frame and runs when a consumer asks
    /// [`Frame::venue_time`](crate::Frame::venue_time), so a consumer that
    /// never asks pays nothing. Without a finder, the session calls this once
    /// per data frame as it routes it and stores the answer on the frame.
    fn venue_time(&self, text: &str, payload: &str) -> Option<std::time::SystemTime> {
        let _ = (text, payload);
        None
    }

    /// A plain function giving [`venue_time`](Protocol::venue_time)'s answer
    /// from the frame's bytes alone, or `None` (the default) to have the
    /// session call `venue_time` on every data frame.
    ///
    /// The session stores the function on each data frame (a pointer: no
    /// allocation, no reference to the adapter) instead of the answer, and
    /// [`Frame::venue_time`](crate::Frame::venue_time) calls it on the
    /// frame's text and payload each time it is asked. It must answer exactly
    /// as `venue_time` does for every frame (the same function on the same
    /// bytes), and cannot read the adapter's state: an adapter whose venue
    /// time depends on its state keeps the default.
    fn venue_time_finder(&self) -> Option<VenueTimeFinder> {
        None
    }

    /// Whether a close with `code` will not fix itself, so reconnecting
    /// stops (unless the user set
    /// [`permanent_close_codes`](crate::ConfigBuilder::permanent_close_codes)).
    /// Default: [`default_permanent_close`](crate::default_permanent_close)
    /// (1002, 1003, 1007-1010, 4000-4999).
    fn is_permanent_close(&self, code: u16) -> bool {
        crate::close_code::default_permanent_close(code)
    }

    /// The views of the books this adapter verifies, if it keeps any
    /// (Kraken): the client keeps a clone, so
    /// [`Client::book_views`](crate::Client::book_views) reads them at any
    /// time, after the adapter moved into the connection. Default: `None`.
    fn book_views(&self) -> Option<crate::book::BookViews> {
        None
    }

    /// The venue's documented per-connection limits (channels per connection,
    /// subscribe operations per window). A [`Pool`](crate::Pool) takes
    /// `channels_per_connection` as its default cap per connection; the
    /// session counts each subscribe or unsubscribe request frame as one of
    /// `subscribe_ops` and makes requests beyond the window wait (a fresh
    /// window per connection). Default:
    /// none known (the pool then uses
    /// [`DEFAULT_MAX_PER_CONNECTION`](crate::pool::DEFAULT_MAX_PER_CONNECTION)).
    fn limits(&self) -> VenueLimits {
        VenueLimits::default()
    }

    /// Classifies an inbound binary frame. Default: unexpected for a text protocol.
    fn classify_binary(&mut self, data: &[u8]) -> Inbound<'static> {
        Inbound::Invalid(ProtocolError::Unexpected(format!(
            "binary frame of {} bytes where text was expected",
            data.len()
        )))
    }

    /// A fresh session token from the client's [`TokenSource`](crate::TokenSource),
    /// given before each connection attempt. Adapters for venues with private
    /// channels put it on the wire where the venue expects it; the default
    /// ignores it. Implementations must not log it.
    fn set_token(&mut self, token: &str) {
        let _ = token;
    }

    /// The parts of `request`'s params a recording may keep (see
    /// [`Recorder`](crate::Recorder)): none of them a secret, and enough for
    /// a replay to rebuild what this adapter derives from the request (Kalshi:
    /// the sid, action and markets of an `update_subscription` that adds or
    /// deletes markets, so a replay's books cover them as live did). A
    /// recording keeps a request's method and these, never its other params;
    /// a replay hands the adapter a request with exactly these params.
    /// Default: `None` (only the method is kept).
    fn recordable_params(&self, request: &Request) -> Option<serde_json::Value> {
        let _ = request;
        None
    }

    /// Live subscriptions the venue now holds differently from the topic
    /// they were subscribed with, each as its server id and the topic a
    /// subscribe of it must name from now on (Kalshi: markets added or
    /// deleted with `update_subscription`, answered `ok`). The session
    /// subscribes that topic whenever it subscribes the subscription again
    /// (after a reconnect, a resync by resubscribe, or the venue ending it),
    /// so what a user changed on a live subscription survives those. The
    /// subscription keeps its identity (channel and symbol it was created
    /// with); a topic of another channel is ignored. Asked after each answer
    /// to a request ([`Inbound::Response`]). Default: none.
    fn take_changed_topics(&mut self) -> Vec<(ServerId, Topic)> {
        Vec::new()
    }

    /// The connection was lost: drop any per-connection state (books, ...).
    fn reset(&mut self) {}

    /// The subscription known as `server_id` ended or is about to be replaced:
    /// drop its per-subscription state.
    fn forget(&mut self, server_id: &ServerId) {
        let _ = server_id;
    }

    /// The subscription to `topic` ended without ever getting a server id
    /// (refused, timed out, or dropped while pending): drop whatever
    /// [`encode_subscribe`](Protocol::encode_subscribe) kept for it, or churn
    /// grows the adapter without bound. The client holds at most one live
    /// subscription per topic, so nothing live shares that state. Default: nothing.
    fn forget_topic(&mut self, topic: &Topic) {
        let _ = topic;
    }

    /// Where this adapter's book snapshots come from, when its venue sends
    /// them only over REST (OKX with
    /// [`Okx::snapshot_source`](crate::Okx::snapshot_source)). The
    /// connection runs the fetches the adapter asks for
    /// ([`take_snapshot_requests`](Protocol::take_snapshot_requests)) through
    /// it, off the frame path, and hands each result back as soon as it ends
    /// ([`snapshot_fetched`](Protocol::snapshot_fetched)); the adapter itself
    /// does no I/O. Asked once, when the client is built. Default: `None`
    /// (then the other two are never called).
    fn book_snapshot_source(&self) -> Option<std::sync::Arc<dyn crate::book::SnapshotSource>> {
        None
    }

    /// The snapshots asked for since the last call, asked after every input
    /// of the connection while a source is set: keep it cheap when there are
    /// none. Default: none.
    fn take_snapshot_requests(&mut self) -> Vec<crate::book::SnapshotRequest> {
        Vec::new()
    }

    /// A fetch asked for by [`take_snapshot_requests`](Protocol::take_snapshot_requests)
    /// ended. Results come in the order the fetches end, possibly after the
    /// subscription ended or the connection was replaced (compare
    /// [`SnapshotFetched::number`](crate::book::SnapshotFetched::number)).
    /// `Some`: applying it broke the book of `fetched.server_id` (a buffered
    /// delta that does not verify, or too many failed fetches); the session
    /// reports it at once, as it would a frame's
    /// `book_break` ([`Inbound::Data`]), and resyncs that subscription.
    /// Default: ignored.
    fn snapshot_fetched(&mut self, fetched: crate::book::SnapshotFetched) -> Option<BookBreak> {
        let _ = fetched;
        None
    }

    /// Replay only: whether the live connection's adapter had a
    /// [`book_snapshot_source`](Protocol::book_snapshot_source). Its books
    /// must then wait for snapshots (and ask for them, with the same request
    /// numbers) exactly as they did live, whatever source this adapter was
    /// given; the recorded results are handed to
    /// [`snapshot_fetched`](Protocol::snapshot_fetched) and no source is
    /// called. Called once, before any input. Default: nothing.
    fn replay_snapshot_source(&mut self, live: bool) {
        let _ = live;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn debug_of_topic_and_request_redacts_secret_params() {
        let topic = Topic::new("orders")
            .symbol("BTC/USD")
            .param("token", "hunter2-topic")
            .param("depth", 10)
            .param("auth", json!({"api_key": "hunter2-nested"}));
        let request = Request::new(
            "add_order",
            Some(
                json!({"token": "hunter2-request", "orders": [{"Signature": "hunter2-sig"}], "qty": 1}),
            ),
        );
        let text = format!("{topic:?} {topic:#?} {request:?} {request:#?}");
        assert!(!text.contains("hunter2"), "{text}");
        // Everything else is still there.
        for visible in [
            "orders",
            "BTC/USD",
            "depth",
            "10",
            "add_order",
            "qty",
            "<redacted>",
        ] {
            assert!(text.contains(visible), "{visible} missing from {text}");
        }
    }
}
