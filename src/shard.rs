//! Which process owns which instrument, without a coordinator.
//!
//! Rules, and why:
//! - Every process gets the same instrument list and its own [`Shard`]
//!   (`i` of `N`). Shard `i` owns an instrument when its weight for that
//!   instrument is the highest of all `N` shards (rendezvous, or
//!   highest-random-weight, hashing). Every instrument has exactly one owner,
//!   and no messages are exchanged to agree on it.
//! - Going from `N` to `N + 1` shards moves only the instruments the new shard
//!   wins, about `1 / (N + 1)` of them; `hash % N` would move about `N / (N + 1)`.
//! - The hash is written here ([`stable_hash`]: FNV-1a 64 finished with a
//!   64-bit mixer) and never changes between releases or platforms: two
//!   processes built by different compilers must agree on ownership. Rust's
//!   `DefaultHasher` is randomly keyed per process and its algorithm may change.
//!   Changing [`stable_hash`] or [`Shard::weight`] is a breaking change.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 over `bytes`, finished with a 64-bit mixer (the `fmix64` step of
/// MurmurHash3) so that nearby inputs give unrelated outputs. Stable across
/// releases, platforms and processes.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    mix64(fnv1a64(bytes))
}

/// FNV-1a, 64-bit.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// MurmurHash3's 64-bit finaliser: every input bit affects every output bit.
fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// Shard `index` of `count`: owns the instruments for which it has the highest
/// rendezvous weight. Parse it from `"I/N"` (e.g. `"0/3"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Shard `index` of `count`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `count` is 0 or `index >= count`.
    pub fn new(index: u32, count: u32) -> Result<Shard, Error> {
        if count == 0 || index >= count {
            return Err(Error::Config(format!(
                "shard {index}/{count}: need 0 <= index < count"
            )));
        }
        Ok(Shard { index, count })
    }

    /// The only shard of one: owns everything.
    pub fn whole() -> Shard {
        Shard { index: 0, count: 1 }
    }

    /// This shard's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The number of shards.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The rendezvous weight of shard `index` for `instrument`.
    pub fn weight(index: u32, instrument: &str) -> u64 {
        // The shard index is mixed into the instrument's hash rather than
        // hashed with it, so one pass over the name serves every shard.
        let seed = mix64(u64::from(index).wrapping_add(1).wrapping_mul(FNV_PRIME));
        mix64(stable_hash(instrument.as_bytes()) ^ seed)
    }

    /// The index of the shard (of `count`) that owns `instrument`; ties (never
    /// seen in practice) go to the lowest index. `count == 0` is treated as 1.
    pub fn owner(instrument: &str, count: u32) -> u32 {
        let mut best = (0u32, Self::weight(0, instrument));
        for index in 1..count {
            let weight = Self::weight(index, instrument);
            if weight > best.1 {
                best = (index, weight);
            }
        }
        best.0
    }

    /// Whether this shard owns `instrument`.
    pub fn owns(&self, instrument: &str) -> bool {
        Self::owner(instrument, self.count) == self.index
    }

    /// The instruments of `all` this shard owns, in their given order.
    pub fn select<'a, I>(&self, all: I) -> Vec<&'a str>
    where
        I: IntoIterator<Item = &'a str>,
    {
        all.into_iter().filter(|i| self.owns(i)).collect()
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = Error;

    /// Parses `"I/N"`.
    fn from_str(text: &str) -> Result<Shard, Error> {
        let bad = || Error::Config(format!("shard {text:?}: expected I/N, e.g. 0/3"));
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index = index.trim().parse().map_err(|_| bad())?;
        let count = count.trim().parse().map_err(|_| bad())?;
        Shard::new(index, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const PINNED_BTC: u64 = 8_725_113_078_498_680_603;
    const PINNED_OWNERS: [u32; 4] = [0, 0, 2, 0];

    fn instruments(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("SYM-{i}/USD")).collect()
    }

    #[test]
    fn the_hash_is_pinned() {
        // FNV-1a 64 reference vectors (the FNV authors' test suite).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        // Changing these changes every deployment's ownership.
        assert_eq!(stable_hash(b"BTC/USD"), PINNED_BTC);
        let owners: Vec<u32> = ["BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD"]
            .iter()
            .map(|s| Shard::owner(s, 3))
            .collect();
        assert_eq!(owners, PINNED_OWNERS);
    }

    #[test]
    fn every_instrument_has_exactly_one_owner() {
        let all = instruments(2000);
        for count in [1u32, 2, 3, 5, 8, 13] {
            let mut owned = vec![0usize; count as usize];
            for name in &all {
                let owners: Vec<u32> = (0..count)
                    .filter(|i| Shard::new(*i, count).is_ok_and(|s| s.owns(name)))
                    .collect();
                assert_eq!(owners.len(), 1, "{name} with {count} shards: {owners:?}");
                owned[owners[0] as usize] += 1;
            }
            // Balanced within 25% of the mean for 2000 instruments.
            let mean = all.len() / count as usize;
            for (i, n) in owned.iter().enumerate() {
                assert!(
                    n.abs_diff(mean) * 4 <= mean,
                    "shard {i}/{count} owns {n}, mean {mean}"
                );
            }
        }
    }

    #[test]
    fn adding_a_shard_moves_about_one_in_n_plus_one_and_only_to_the_new_shard() {
        let all = instruments(4000);
        for count in [1u32, 2, 3, 4, 7, 10] {
            let mut moved = 0usize;
            for name in &all {
                let before = Shard::owner(name, count);
                let after = Shard::owner(name, count + 1);
                if before != after {
                    assert_eq!(after, count, "{name} moved between old shards");
                    moved += 1;
                }
            }
            let expected = all.len() as f64 / f64::from(count + 1);
            let ratio = moved as f64 / expected;
            assert!(
                (0.85..1.15).contains(&ratio),
                "{count} -> {}: moved {moved}, expected about {expected:.0}",
                count + 1
            );
        }
    }

    #[test]
    fn shards_parse_and_reject_nonsense() {
        assert_eq!("1/3".parse::<Shard>().ok(), Shard::new(1, 3).ok());
        assert_eq!(
            Shard::new(1, 3).map(|s| s.to_string()).ok().as_deref(),
            Some("1/3")
        );
        for bad in ["3/3", "0/0", "1", "a/2", "1/-2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert!(Shard::whole().owns("anything"));
    }
}
