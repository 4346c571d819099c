//! Time as a value. The core never reads a clock: every input carries a [`Now`],
//! whose monotonic part drives deadlines and whose wall-clock part stamps
//! records and drives time-based retention.

use std::time::Duration;

/// A point on the driver's monotonic clock, in nanoseconds from an arbitrary
/// origin the driver picks once. It never goes backwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The instant `nanos` nanoseconds after the driver's origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the driver's origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the far future.
    pub fn saturating_add(self, d: Duration) -> Self {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(nanos))
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// The time of an input: monotonic for deadlines, wall clock (milliseconds
/// since the Unix epoch, Kafka's timestamp unit) for record timestamps and
/// retention.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    /// The monotonic clock, for deadlines.
    pub mono: Instant,
    /// The wall clock in Unix milliseconds, for timestamps and retention.
    pub wall_ms: i64,
}

impl Now {
    /// A `Now` from its two parts.
    pub const fn new(mono: Instant, wall_ms: i64) -> Self {
        Self { mono, wall_ms }
    }

    /// This time moved forward by `d` on both clocks (for simulations).
    pub fn advance(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self {
            mono: self.mono.saturating_add(d),
            wall_ms: self.wall_ms.saturating_add(ms),
        }
    }
}
