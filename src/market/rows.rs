//! Serde seeds over an array of rows: one item per row as it is read
//! ([`EachRow`]), or only the first row ([`FirstRow`]), so a decoder never
//! collects the rows before building its own items.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

/// Maps each row `R` of an array to an item with `each`.
pub(super) struct EachRow<R, F> {
    each: F,
    row: PhantomData<fn() -> R>,
}

impl<R, F> EachRow<R, F> {
    pub(super) fn new(each: F) -> Self {
        EachRow {
            each,
            row: PhantomData,
        }
    }
}

impl<'de, R: Deserialize<'de>, T, F: FnMut(R) -> T> DeserializeSeed<'de> for EachRow<R, F> {
    type Value = Vec<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<T>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, R: Deserialize<'de>, T, F: FnMut(R) -> T> Visitor<'de> for EachRow<R, F> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Vec<T>, A::Error> {
        // The frame's size bounds the count; the hint is capped all the same.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(64));
        while let Some(row) = seq.next_element::<R>()? {
            items.push((self.each)(row));
        }
        Ok(items)
    }
}

/// The first row `R` of an array; the others are skipped (validated, not kept).
pub(super) struct FirstRow<R>(PhantomData<fn() -> R>);

impl<R> FirstRow<R> {
    pub(super) fn new() -> Self {
        FirstRow(PhantomData)
    }
}

impl<'de, R: Deserialize<'de>> DeserializeSeed<'de> for FirstRow<R> {
    type Value = Option<R>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<R>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, R: Deserialize<'de>> Visitor<'de> for FirstRow<R> {
    type Value = Option<R>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<R>, A::Error> {
        let first = seq.next_element::<R>()?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(first)
    }
}
