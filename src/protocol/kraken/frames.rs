//! The borrowed views of Kraken frames the classifier reads: only routing fields
//! (method, channel, type, ids, symbol, checksum) and a book item's levels as
//! their exact wire text, never a full `serde_json::Value` tree. Numbers sent as
//! JSON strings are accepted (Kraken's checksum is over the text either way).

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::super::json::{self, Text};
use crate::error::VenueError;

/// A JSON number's text, also accepting a number sent as a plain JSON string.
pub(super) fn number_text(raw: &RawValue) -> &str {
    let text = raw.get();
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
}

pub(super) fn parse_u32(raw: &RawValue) -> Option<u32> {
    number_text(raw).parse().ok()
}

/// The routing fields of a Kraken frame.
#[derive(Deserialize)]
pub(super) struct Envelope<'a> {
    #[serde(default, borrow)]
    pub(super) method: Text<'a>,
    #[serde(default, borrow)]
    pub(super) channel: Text<'a>,
    #[serde(default, borrow, rename = "type")]
    pub(super) kind: Text<'a>,
    #[serde(default, borrow)]
    pub(super) success: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub(super) req_id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub(super) result: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub(super) error: Text<'a>,
    #[serde(default, borrow)]
    pub(super) symbol: Text<'a>,
    #[serde(default, borrow)]
    pub(super) data: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub(super) sequence: Option<&'a RawValue>,
}

impl Envelope<'_> {
    /// Whether a method response reports failure: `success` false, or no
    /// `success` but an `error`.
    pub(super) fn failed(&self) -> bool {
        match json::flag(self.success) {
            Some(success) => !success,
            None => self.error.0.is_some(),
        }
    }

    pub(super) fn venue_error(&self) -> VenueError {
        VenueError::kraken(self.error.as_deref().unwrap_or("request failed"))
    }
}

/// The `result` of a subscribe acknowledgement.
#[derive(Deserialize, Default)]
pub(super) struct AckResult<'a> {
    #[serde(default, borrow)]
    pub(super) channel: Text<'a>,
    #[serde(default, borrow)]
    pub(super) symbol: Text<'a>,
    /// Kraken's advisory notes on the channel (deprecated fields, upcoming
    /// changes): logged, so a venue change is not ignored in silence.
    #[serde(default, borrow)]
    pub(super) warnings: Option<&'a RawValue>,
}

/// The routing fields of a data item, read leniently.
#[derive(Deserialize, Default)]
pub(super) struct Head<'a> {
    #[serde(default, borrow)]
    pub(super) symbol: Text<'a>,
}

/// The [`Head`] of the first item of `data`, or an empty one when `data` is
/// not a list starting with an object.
pub(super) fn first_head(data: &RawValue) -> Head<'_> {
    struct FirstVisitor;
    impl<'de> Visitor<'de> for FirstVisitor {
        type Value = Head<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Head<'de>, A::Error> {
            let head = seq.next_element::<Head<'de>>()?.unwrap_or_default();
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(head)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(data.get());
    deserializer
        .deserialize_seq(FirstVisitor)
        .unwrap_or_default()
}

/// One item of a book frame's `data`.
#[derive(Deserialize)]
pub(super) struct BookItem<'a> {
    #[serde(default, borrow)]
    pub(super) symbol: Text<'a>,
    #[serde(default, borrow)]
    pub(super) bids: Vec<RawLevel<'a>>,
    #[serde(default, borrow)]
    pub(super) asks: Vec<RawLevel<'a>>,
    #[serde(default, borrow)]
    pub(super) checksum: Option<&'a RawValue>,
}

/// A price level with its numbers' wire text.
#[derive(Deserialize)]
pub(super) struct RawLevel<'a> {
    #[serde(borrow)]
    pub(super) price: &'a RawValue,
    #[serde(borrow)]
    pub(super) qty: &'a RawValue,
}

impl<'a> RawLevel<'a> {
    pub(super) fn text(&self) -> (&'a str, &'a str) {
        (number_text(self.price), number_text(self.qty))
    }
}
