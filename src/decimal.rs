//! Exact decimal numbers for prices and sizes, parsed from the venue's text.
//!
//! Venues send prices and quantities as decimal text: JSON strings (OKX, WEEX,
//! Kalshi's fixed-point fields) or JSON numbers whose exact digits matter
//! (Kraken: `0.00100000` is not `0.001` for its checksum). Going through `f64`
//! changes both the value (`0.1` has no exact binary form) and the text, so
//! books and typed market data keep a [`Decimal`] instead. Rules, and why:
//!
//! - A value is `mantissa / 10^scale` with an `i128` mantissa (38 significant
//!   digits) and a scale of at most [`MAX_SCALE`]. Anything a venue sends for a
//!   price or size fits with room to spare; text that does not fit is refused
//!   ([`Decimal::parse`] returns `None`), never rounded.
//! - The scale is kept as sent: `"0.0800"` parses to mantissa 800, scale 4 and
//!   prints as `0.0800` again. Equality, ordering and hashing are by *value*
//!   (`0.08 == 0.0800`), so a book keyed by price finds a level whatever the
//!   trailing zeros of the update that names it.
//! - The accepted text is a JSON number or the same text inside a JSON string:
//!   an optional `-`, digits, an optional fraction, an optional exponent. No
//!   `+`, no leading `.`, no `NaN`. Leading zeros are tolerated (venue strings
//!   are not JSON numbers and some pad).
//!
//! The parser is checked by the `decimal` fuzz target against an independent
//! reference that compares decimal digit strings (see `fuzz/`).

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// The largest scale (digits after the point) a [`Decimal`] keeps.
pub const MAX_SCALE: u32 = 28;

/// The longest text [`Decimal::parse`] reads; longer text is refused before
/// any work (a peer chooses the text).
pub const MAX_TEXT_LEN: usize = 64;

/// An exact decimal: `mantissa / 10^scale`. See the module docs for the rules.
///
/// ```
/// use resilient_ws::Decimal;
/// let price: Decimal = "0.0800".parse().unwrap();
/// assert_eq!(price.to_string(), "0.0800");
/// assert_eq!(price, "0.08".parse().unwrap());
/// assert!(price < Decimal::parse("0.081").unwrap());
/// assert!(Decimal::parse("1e400").is_none()); // does not fit: refused, not rounded
/// ```
#[derive(Clone, Copy)]
pub struct Decimal {
    mantissa: i128,
    scale: u32,
}

/// Why a text is not a [`Decimal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecimalError {
    /// Not the shape of a decimal number (or longer than [`MAX_TEXT_LEN`]).
    Syntax,
    /// A decimal number, but more digits or a larger scale than a [`Decimal`] holds.
    OutOfRange,
}

impl fmt::Display for DecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecimalError::Syntax => "not a decimal number",
            DecimalError::OutOfRange => "decimal number out of range",
        })
    }
}

impl std::error::Error for DecimalError {}

impl Decimal {
    /// Zero.
    pub const ZERO: Decimal = Decimal {
        mantissa: 0,
        scale: 0,
    };

    /// `mantissa / 10^scale`, or `None` when `scale` exceeds [`MAX_SCALE`].
    pub fn new(mantissa: i128, scale: u32) -> Option<Decimal> {
        (scale <= MAX_SCALE).then_some(Decimal { mantissa, scale })
    }

    /// Parses decimal text (see the module docs); `None` if it is not one or
    /// does not fit.
    pub fn parse(text: &str) -> Option<Decimal> {
        Self::try_parse(text).ok()
    }

    /// Parses decimal text, saying why it failed.
    pub fn try_parse(text: &str) -> Result<Decimal, DecimalError> {
        if text.len() > MAX_TEXT_LEN {
            return Err(DecimalError::Syntax);
        }
        let bytes = text.as_bytes();
        let (negative, rest) = match bytes.split_first() {
            Some((b'-', rest)) => (true, rest),
            Some(_) => (false, bytes),
            None => return Err(DecimalError::Syntax),
        };
        let (number, exponent) = match rest.iter().position(|b| matches!(b, b'e' | b'E')) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        let (int, frac) = match number.iter().position(|b| *b == b'.') {
            Some(at) => (&number[..at], Some(&number[at + 1..])),
            None => (number, None),
        };
        if int.is_empty() || frac.is_some_and(<[u8]>::is_empty) {
            return Err(DecimalError::Syntax);
        }
        let frac = frac.unwrap_or_default();
        // The whole shape first: text that is not a decimal is a syntax error
        // even where its digits would also overflow.
        if !int.iter().chain(frac).all(u8::is_ascii_digit) {
            return Err(DecimalError::Syntax);
        }
        let exponent = exponent.map(parse_exponent).transpose()?;
        let mut mantissa: i128 = 0;
        for &digit in int.iter().chain(frac) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(digit - b'0')))
                .ok_or(DecimalError::OutOfRange)?;
        }
        // The value is mantissa * 10^(exponent - frac digits).
        let shift = exponent.unwrap_or(0) - frac.len() as i64;
        let (mantissa, scale) = if mantissa == 0 {
            // Zero times any power of ten is zero, however large the
            // exponent; its places are kept as sent when they fit.
            let scale = u32::try_from(-shift).ok().filter(|s| *s <= MAX_SCALE);
            (0, scale.unwrap_or(0))
        } else if shift >= 0 {
            let factor = u32::try_from(shift)
                .ok()
                .and_then(|s| 10i128.checked_pow(s))
                .ok_or(DecimalError::OutOfRange)?;
            (
                mantissa
                    .checked_mul(factor)
                    .ok_or(DecimalError::OutOfRange)?,
                0,
            )
        } else {
            let scale = u32::try_from(-shift).map_err(|_| DecimalError::OutOfRange)?;
            if scale > MAX_SCALE {
                return Err(DecimalError::OutOfRange);
            }
            (mantissa, scale)
        };
        Ok(Decimal {
            mantissa: if negative { -mantissa } else { mantissa },
            scale,
        })
    }

    /// The mantissa: the value is `mantissa() / 10^scale()`.
    pub fn mantissa(&self) -> i128 {
        self.mantissa
    }

    /// Digits after the point, as sent.
    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// Whether the value is zero (`"0"`, `"0.000"`, `"-0"`).
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    /// The same value with trailing zeros after the point removed
    /// (`0.0800` -> `0.08`, `5.000` -> `5`).
    pub fn normalized(&self) -> Decimal {
        let mut d = *self;
        while d.scale > 0 && d.mantissa % 10 == 0 {
            d.mantissa /= 10;
            d.scale -= 1;
        }
        d
    }

    /// The exact sum, at the larger of the two scales (`"300.00" + "-100.5"`
    /// is `199.50`); `None` when it does not fit (never rounded).
    ///
    /// ```
    /// use resilient_ws::Decimal;
    /// let sum = Decimal::parse("300.00").unwrap().checked_add(Decimal::parse("-100.5").unwrap());
    /// assert_eq!(sum.unwrap().to_string(), "199.50");
    /// ```
    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale.max(other.scale);
        let a = rescale(self, scale)?;
        let b = rescale(other, scale)?;
        Some(Decimal {
            mantissa: a.checked_add(b)?,
            scale,
        })
    }

    /// The exact difference `self - other`, at the larger of the two scales;
    /// `None` when it does not fit.
    ///
    /// ```
    /// use resilient_ws::Decimal;
    /// let one = Decimal::parse("1").unwrap();
    /// assert_eq!(one.checked_sub(Decimal::parse("0.5400").unwrap()).unwrap().to_string(), "0.4600");
    /// ```
    pub fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        let negated = Decimal {
            mantissa: other.mantissa.checked_neg()?,
            scale: other.scale,
        };
        self.checked_add(negated)
    }

    /// An approximation as `f64`, for display or statistics only: never for
    /// keys, checksums or comparisons.
    pub fn to_f64(&self) -> f64 {
        // Both conversions are exact up to 2^53; the division rounds once more.
        self.mantissa as f64 / 10f64.powi(self.scale as i32)
    }
}

/// Reads an exponent's digits (`-5`, `+3`, `12`); bounded so a peer cannot
/// make `10^n` overflow the arithmetic.
fn parse_exponent(text: &[u8]) -> Result<i64, DecimalError> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 4 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(
            if digits.iter().all(u8::is_ascii_digit) && !digits.is_empty() {
                DecimalError::OutOfRange
            } else {
                DecimalError::Syntax
            },
        );
    }
    let value = digits
        .iter()
        .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
    Ok(if negative { -value } else { value })
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.scale == other.scale {
            return self.mantissa.cmp(&other.mantissa);
        }
        // Bring both to the larger scale; if that overflows, the one that
        // overflowed is the larger in magnitude (its integer part has more
        // digits than the other can hold at that scale).
        let (a, b) = (self.normalized(), other.normalized());
        let scale = a.scale.max(b.scale);
        match (rescale(a, scale), rescale(b, scale)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (None, Some(_)) => sign_ordering(a.mantissa),
            (Some(_), None) => sign_ordering(b.mantissa).reverse(),
            // Both at most MAX_SCALE after normalising, and at the larger of
            // their scales one of them needs no change: unreachable, but an
            // answer is still owed.
            (None, None) => a.mantissa.signum().cmp(&b.mantissa.signum()),
        }
    }
}

/// How a value too large to rescale compares with one that fits.
fn sign_ordering(mantissa: i128) -> Ordering {
    if mantissa < 0 {
        Ordering::Less
    } else {
        Ordering::Greater
    }
}

fn rescale(d: Decimal, scale: u32) -> Option<i128> {
    10i128
        .checked_pow(scale - d.scale)
        .and_then(|f| d.mantissa.checked_mul(f))
}

impl Hash for Decimal {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Equal values hash alike: hash the normalized form.
        let d = self.normalized();
        d.mantissa.hash(state);
        d.scale.hash(state);
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let sign = if self.mantissa < 0 { "-" } else { "" };
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            write!(f, "{sign}{int}.{frac}")
        } else {
            write!(f, "{sign}0.{}{digits}", "0".repeat(scale - digits.len()))
        }
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decimal({self})")
    }
}

impl FromStr for Decimal {
    type Err = DecimalError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Decimal::try_parse(text)
    }
}

impl serde::Serialize for Decimal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Decimal {
    /// Reads a JSON string (`"0.0800"`) or a JSON number with its exact digits
    /// (`0.00100000`): numbers are read through serde_json's `RawValue`, never
    /// through `f64`.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = <&serde_json::value::RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        let text = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(text);
        Decimal::try_parse(text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text).unwrap_or_else(|| panic!("{text} should parse"))
    }

    #[test]
    fn keeps_the_scale_as_sent_and_compares_by_value() {
        assert_eq!(d("0.0800").to_string(), "0.0800");
        assert_eq!(d("0.00100000").to_string(), "0.00100000");
        assert_eq!(d("45283.5").to_string(), "45283.5");
        assert_eq!(d("0.08"), d("0.0800"));
        assert!(d("0.08") < d("0.081"));
        assert!(d("-1") < d("0"));
        assert!(d("-0.5") > d("-0.51"));
        assert_eq!(d("-0"), d("0.000"));
        assert_eq!(d("007.10"), d("7.1"));
    }

    #[test]
    fn equal_values_hash_alike() {
        use std::collections::HashSet;
        let set: HashSet<Decimal> = ["1.50", "1.5", "1.500000"].iter().map(|t| d(t)).collect();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn exponents_are_exact() {
        assert_eq!(d("1.5e-05"), d("0.000015"));
        assert_eq!(d("1.5E-05").scale(), 6);
        assert_eq!(d("12e2"), d("1200"));
        assert_eq!(d("0e999"), Decimal::ZERO);
    }

    #[test]
    fn refuses_what_is_not_a_decimal_or_does_not_fit() {
        for bad in [
            "", "-", ".5", "5.", "+5", "1..2", "1e", "1e+", "NaN", "1 ", " 1", "0x10", "1e-x",
        ] {
            assert_eq!(
                Decimal::try_parse(bad),
                Err(DecimalError::Syntax),
                "{bad:?}"
            );
        }
        for big in [
            "1e99",
            "1e-29",
            "123456789012345678901234567890123456789012",
        ] {
            assert_eq!(
                Decimal::try_parse(big),
                Err(DecimalError::OutOfRange),
                "{big:?}"
            );
        }
        assert!(Decimal::parse(&"1".repeat(MAX_TEXT_LEN + 1)).is_none());
    }

    #[test]
    fn sums_and_differences_are_exact_or_refused() {
        assert_eq!(
            d("300.00").checked_add(d("-100.00")).unwrap().to_string(),
            "200.00"
        );
        assert_eq!(d("0.1").checked_add(d("0.2")).unwrap(), d("0.3"));
        assert_eq!(
            d("1").checked_sub(d("0.5400")).unwrap().to_string(),
            "0.4600"
        );
        assert_eq!(d("5").checked_sub(d("5.00")).unwrap(), Decimal::ZERO);
        let huge = d("99999999999999999999999999999999999999");
        assert!(Decimal::new(i128::MAX, 0)
            .unwrap()
            .checked_add(d("1"))
            .is_none());
        assert!(d("1")
            .checked_add(d("0.0000000000000000000000000001"))
            .is_some());
        assert!(huge.checked_add(d("0.1")).is_none());
        let min = Decimal::new(i128::MIN, 0).unwrap();
        assert!(d("0").checked_sub(min).is_none());
    }

    #[test]
    fn ordering_survives_values_that_cannot_share_a_scale() {
        let huge = d("99999999999999999999999999999999999999");
        let tiny = d("0.0000000000000000000000000001");
        assert!(huge > tiny);
        assert!(tiny < huge);
        assert!(d("-99999999999999999999999999999999999999") < tiny);
    }

    #[test]
    fn deserializes_strings_and_numbers_without_f64() {
        let v: Vec<Decimal> =
            serde_json::from_str(r#"["0.0800", 0.00100000, 3310070434]"#).unwrap();
        assert_eq!(v[0].to_string(), "0.0800");
        assert_eq!(v[1].to_string(), "0.00100000");
        assert_eq!(v[2].to_string(), "3310070434");
        assert!(serde_json::from_str::<Decimal>("true").is_err());
        assert_eq!(serde_json::to_string(&v[0]).unwrap(), r#""0.0800""#);
    }
}
