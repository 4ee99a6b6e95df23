//! A single-pass, allocation-free scanner for the top-level object of a frame:
//! the fast path of classification, with serde_json as the reference.
//!
//! Classifying a data frame needs a handful of routing fields and the span of
//! the payload. Reading them through serde costs most of the socket task's
//! time per frame (struct visitors, field matching, `RawValue` capture, and for
//! Kraken a second pass over `data` for the first item's `symbol`). The scanner
//! walks the bytes once, yields each top-level key with its value's span and
//! kind, and validates everything it skips.
//!
//! Rules, and why:
//! - **It never decides alone what serde would refuse.** Every value it skips is
//!   validated by the strict JSON grammar ([`skip`]): strings (escape validity,
//!   no raw control characters below 0x20), numbers, literals, nested arrays and
//!   objects. Trailing text after the object may only be JSON whitespace. So a
//!   frame the scanner accepts is one serde_json accepts too.
//! - **Anything unusual is `None`, and the caller falls back to the serde path**:
//!   an escaped key, a value nested deeper than [`MAX_DEPTH`], an unexpected byte. The
//!   venue fast paths (`kalshi`, `kraken`) add their own bail-outs wherever serde
//!   would read a field differently from what the scanner sees (duplicate
//!   fields, escaped strings, numbers that are not plain `u64`s).
//! - **Iterative, bounded, no allocation**: nesting is tracked in a 64-bit
//!   stack, so a hostile frame costs one linear pass and no memory.
//! - **Each value read only as far as its field needs**: a member whose value
//!   is not wanted is skipped without building its text or kind, an integer
//!   is parsed where its digits are found, a string that must be plain bails
//!   at its first backslash. Strings and digit runs are read eight bytes at a
//!   time; the verdicts are those of the byte-at-a-time grammar all the same.
//! - The differential fuzz target `envelope_scan` and the unit tests hold each
//!   fast path to exactly the `Inbound` the serde path returns; `scan_skip`
//!   holds the word-at-a-time reading to a byte-at-a-time model of the
//!   grammar (`testkit/src/model/json_skip.rs`).

pub(crate) mod kalshi;
pub(crate) mod kraken;
mod skip;

#[cfg(test)]
mod tests;

/// The deepest nesting the skipper follows inside one skipped value; deeper
/// frames fall back to serde.
pub(crate) const MAX_DEPTH: u32 = 64;

/// What kind of JSON value a [`Value`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string; `plain` when it has no escape sequences.
    Str {
        /// No backslash inside: its text is its content.
        plain: bool,
    },
    /// A number; `uint` when it is only digits (a non-negative integer).
    Num {
        /// Only ASCII digits (no sign, fraction or exponent).
        uint: bool,
    },
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// An array or an object.
    Container,
}

/// A validated JSON value: its exact text (no surrounding whitespace, as
/// serde's `RawValue` captures it) and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Value<'a> {
    /// The value's text in the frame.
    pub(crate) raw: &'a str,
    /// Its kind.
    pub(crate) kind: Kind,
}

impl<'a> Value<'a> {
    /// The content of a string without escapes, else `None`.
    #[inline]
    pub(crate) fn plain_str(&self) -> Option<&'a str> {
        match self.kind {
            Kind::Str { plain: true } => {
                self.raw.strip_prefix('"').and_then(|r| r.strip_suffix('"'))
            }
            _ => None,
        }
    }
}

/// A position in a frame being scanned.
pub(crate) struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

/// Where a walk through one object's members is: before the first member or
/// after one (a comma comes next).
#[derive(Debug, Default)]
pub(crate) struct Members {
    started: bool,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `text`.
    pub(crate) fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    #[inline]
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    /// Skips JSON whitespace (space, tab, line feed, carriage return).
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// The next byte after whitespace, not consumed (the cursor moves past the
    /// whitespace); `None` at the end of the frame.
    #[inline]
    fn next_byte(&mut self) -> Option<u8> {
        let (pos, byte) = skip::next(self.bytes(), self.pos)?;
        self.pos = pos;
        Some(byte)
    }

    /// Consumes `byte` (after whitespace), or fails.
    #[inline]
    fn expect(&mut self, byte: u8) -> Option<()> {
        if self.next_byte()? == byte {
            self.pos += 1;
            Some(())
        } else {
            None
        }
    }

    /// Opens an object (after whitespace): `{`.
    #[inline]
    pub(crate) fn begin_object(&mut self) -> Option<Members> {
        self.expect(b'{')?;
        Some(Members::default())
    }

    /// The next key of the object being walked, with the `:` after it consumed;
    /// `Some(None)` when the object ended (its `}` consumed). `None` (bail) on
    /// bad syntax or a key with escapes (serde would match it unescaped).
    /// The key's bytes (its text: no escapes) are enough to match it against
    /// known names, and skip a second UTF-8 boundary check per key.
    #[inline(always)]
    pub(crate) fn next_key(&mut self, members: &mut Members) -> Option<Option<&'a [u8]>> {
        let mut byte = self.next_byte()?;
        if byte == b'}' {
            self.pos += 1;
            return Some(None);
        }
        if members.started {
            if byte != b',' {
                return None;
            }
            self.pos += 1;
            byte = self.next_byte()?;
        }
        members.started = true;
        if byte != b'"' {
            return None;
        }
        let end = skip::plain_string_body(self.bytes(), self.pos + 1)?;
        let key = self.bytes().get(self.pos + 1..end - 1)?;
        self.pos = skip::colon(self.bytes(), end)?;
        Some(Some(key))
    }

    /// The next value (after whitespace), validated and skipped.
    #[inline(always)]
    pub(crate) fn value(&mut self) -> Option<Value<'a>> {
        let (start, first) = skip::next(self.bytes(), self.pos)?;
        let (end, kind) = skip::value_at(self.bytes(), start, first)?;
        self.pos = end;
        Some(Value {
            raw: self.text.get(start..end)?,
            kind,
        })
    }

    /// The next value (after whitespace), validated and skipped, when only
    /// its validity matters: no text or kind to build.
    #[inline(always)]
    pub(crate) fn skip_value(&mut self) -> Option<()> {
        let (start, first) = skip::next(self.bytes(), self.pos)?;
        self.pos = skip::value_at(self.bytes(), start, first)?.0;
        Some(())
    }

    /// The next value (after whitespace) when it is a non-negative integer
    /// (only digits: no sign, fraction or exponent) that fits a `u64`, else
    /// `None` (as `str::parse` reads the digits). Read in the same pass that
    /// finds its end.
    #[inline(always)]
    pub(crate) fn uint(&mut self) -> Option<u64> {
        let (start, first) = skip::next(self.bytes(), self.pos)?;
        let (end, number) = skip::uint(self.bytes(), start, first)?;
        self.pos = end;
        Some(number)
    }

    /// The next value (after whitespace) when it is a string without
    /// escapes: its content (as [`Value::plain_str`] reads it), else `None`.
    #[inline(always)]
    pub(crate) fn plain_str(&mut self) -> Option<&'a str> {
        let (start, end) = self.plain_content()?;
        self.text.get(start..end)
    }

    /// [`Cursor::plain_str`]'s content as bytes, for a caller that only
    /// compares it: no UTF-8 boundary checks.
    #[inline(always)]
    pub(crate) fn plain_bytes(&mut self) -> Option<&'a [u8]> {
        let (start, end) = self.plain_content()?;
        self.bytes().get(start..end)
    }

    /// Where the content of the next value (after whitespace) lies when it
    /// is a string without escapes; the cursor moves past its closing quote.
    #[inline(always)]
    fn plain_content(&mut self) -> Option<(usize, usize)> {
        let (start, first) = skip::next(self.bytes(), self.pos)?;
        if first != b'"' {
            return None;
        }
        let end = skip::plain_string_body(self.bytes(), start + 1)?;
        self.pos = end;
        Some((start + 1, end - 1))
    }

    /// Whether the next byte (after whitespace) is `byte`, without consuming it.
    #[inline]
    pub(crate) fn at(&mut self, byte: u8) -> bool {
        self.next_byte() == Some(byte)
    }

    /// The current byte offset.
    #[inline]
    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    /// The text from `start` to the current offset.
    #[inline]
    pub(crate) fn since(&self, start: usize) -> Option<&'a str> {
        self.text.get(start..self.pos)
    }

    /// Opens an array (after whitespace): `[`. Returns whether it is empty
    /// (then its `]` is consumed too).
    #[inline]
    pub(crate) fn begin_array(&mut self) -> Option<bool> {
        self.expect(b'[')?;
        if self.next_byte() == Some(b']') {
            self.pos += 1;
            return Some(true);
        }
        Some(false)
    }

    /// Skips the rest of an array whose first element was just read:
    /// `(, value)* ]`.
    #[inline]
    pub(crate) fn finish_array(&mut self) -> Option<()> {
        loop {
            match self.next_byte()? {
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                b',' => {
                    self.pos += 1;
                    self.value()?;
                }
                _ => return None,
            }
        }
    }

    /// Checks that only JSON whitespace is left.
    #[inline]
    pub(crate) fn end(&mut self) -> Option<()> {
        self.ws();
        (self.pos == self.text.len()).then_some(())
    }
}

/// Remembers which of up to 16 known keys a walk has seen, so a duplicate
/// (which serde's derived structs refuse) makes the fast path bail.
#[derive(Debug, Default)]
pub(crate) struct Seen(u16);

impl Seen {
    /// Marks key number `index`; `None` when it was seen before.
    #[inline]
    pub(crate) fn first(&mut self, index: u8) -> Option<()> {
        let bit = 1u16.checked_shl(u32::from(index))?;
        if self.0 & bit != 0 {
            return None;
        }
        self.0 |= bit;
        Some(())
    }
}
