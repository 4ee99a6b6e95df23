//! The bound every duration setting is clamped to.
//!
//! A leaf of its own because the config, the pool's connect limiter and the
//! pool options all clamp to it, and none of them should import another for
//! one constant.

use std::time::Duration;

/// The longest any duration setting may be: one year. Longer values (up to
/// `Duration::MAX`, a natural way to say "never") are clamped to it by
/// [`ConfigBuilder::build`](crate::ConfigBuilder::build), because
/// `Instant + Duration::MAX` overflows and would panic deep inside the
/// connection task hours later.
pub const LONGEST_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
