//! Wall-clock time that may be wrong: a point ([`WallTime`], signed nanoseconds since the Unix
//! epoch — a reset RTC can say 1970 or earlier) and a signed difference ([`Offset`]).

use std::fmt;
use std::time::{Duration, SystemTime};

const NANOS: i128 = 1_000_000_000;

/// A point in time on the wall clock: nanoseconds since 1970-01-01T00:00:00Z (negative before).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WallTime(i128);

impl WallTime {
    pub const UNIX_EPOCH: WallTime = WallTime(0);

    pub const fn from_unix_nanos(nanos: i128) -> Self {
        WallTime(nanos)
    }

    pub const fn from_unix_secs(secs: i64) -> Self {
        WallTime(secs as i128 * NANOS)
    }

    pub const fn unix_nanos(self) -> i128 {
        self.0
    }

    /// Whole seconds since the Unix epoch, rounded down (towards the past).
    pub fn unix_secs(self) -> i64 {
        let s = self.0.div_euclid(NANOS);
        i64::try_from(s).unwrap_or(if s < 0 { i64::MIN } else { i64::MAX })
    }

    /// The nanoseconds within the second, `0..1_000_000_000`.
    pub fn subsec_nanos(self) -> u32 {
        // rem_euclid of a positive modulus is in 0..NANOS, which fits.
        u32::try_from(self.0.rem_euclid(NANOS)).unwrap_or(0)
    }

    pub fn from_system(t: SystemTime) -> Self {
        match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => WallTime(d.as_nanos() as i128),
            Err(e) => WallTime(-(e.duration().as_nanos() as i128)),
        }
    }

    /// The same instant as a `SystemTime` (`None` only outside its range).
    pub fn to_system(self) -> Option<SystemTime> {
        let magnitude = Duration::new(
            u64::try_from(self.0.unsigned_abs() / NANOS as u128).ok()?,
            u32::try_from(self.0.unsigned_abs() % NANOS as u128).ok()?,
        );
        if self.0 >= 0 {
            SystemTime::UNIX_EPOCH.checked_add(magnitude)
        } else {
            SystemTime::UNIX_EPOCH.checked_sub(magnitude)
        }
    }

    /// `self + offset`.
    pub fn plus(self, offset: Offset) -> Self {
        WallTime(self.0.saturating_add(offset.0))
    }

    /// `self - earlier`, as an offset (negative when `earlier` is later).
    pub fn since(self, earlier: WallTime) -> Offset {
        Offset(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for WallTime {
    /// RFC 3339 in UTC with milliseconds: `2015-01-01T00:00:05.250Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = i128::from(self.unix_secs());
        let days = i64::try_from(secs.div_euclid(86_400)).unwrap_or(0);
        let tod = secs.rem_euclid(86_400);
        let (y, m, d) = super::calendar::civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            tod / 3600,
            tod / 60 % 60,
            tod % 60,
            self.subsec_nanos() / 1_000_000
        )
    }
}

/// A signed difference between two wall-clock times, in nanoseconds. A clock offset is "what to
/// add to the local clock to get the right time": positive when the local clock is behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(i128);

impl Offset {
    pub const ZERO: Offset = Offset(0);

    pub const fn from_nanos(nanos: i128) -> Self {
        Offset(nanos)
    }

    pub fn from_secs_f64(secs: f64) -> Self {
        Offset((secs * 1e9).round() as i128)
    }

    pub const fn nanos(self) -> i128 {
        self.0
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// The magnitude as a `Duration` (saturating).
    pub fn abs(self) -> Duration {
        let n = self.0.unsigned_abs();
        Duration::new(
            u64::try_from(n / NANOS as u128).unwrap_or(u64::MAX),
            u32::try_from(n % NANOS as u128).unwrap_or(0),
        )
    }

    /// The positive offset of a duration.
    pub fn of(d: Duration) -> Self {
        Offset(d.as_nanos() as i128)
    }

    pub fn negated(self) -> Self {
        Offset(self.0.saturating_neg())
    }
}

impl fmt::Display for Offset {
    /// `+0.042s`, `-3.500s`, `+378691200.000s (4383.0 days)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { '-' } else { '+' };
        let n = self.0.unsigned_abs();
        let ms = (n + 500_000) / 1_000_000;
        write!(f, "{sign}{}.{:03}s", ms / 1000, ms % 1000)?;
        let secs = n as f64 / 1e9;
        if secs >= 86_400.0 {
            write!(f, " ({:.1} days)", secs / 86_400.0)?;
        } else if secs >= 3_600.0 {
            write!(f, " ({:.1} hours)", secs / 3_600.0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_time_prints_rfc_3339_utc() {
        assert_eq!(WallTime::UNIX_EPOCH.to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            WallTime::from_unix_secs(1_420_070_400).to_string(),
            "2015-01-01T00:00:00.000Z"
        );
        // The NTP era boundary, and a time before 1970 (a reset clock can be anywhere).
        assert_eq!(
            WallTime::from_unix_nanos(2_085_978_496 * NANOS + 250_000_000).to_string(),
            "2036-02-07T06:28:16.250Z"
        );
        assert_eq!(
            WallTime::from_unix_nanos(-1).to_string(),
            "1969-12-31T23:59:59.999Z"
        );
        assert_eq!(
            WallTime::from_unix_secs(-2_208_988_800).to_string(),
            "1900-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn wall_time_and_system_time_convert_both_ways() {
        let now = SystemTime::now();
        assert_eq!(WallTime::from_system(now).to_system(), Some(now));
        let before = SystemTime::UNIX_EPOCH - Duration::new(5, 7);
        let w = WallTime::from_system(before);
        assert_eq!(w.unix_nanos(), -5_000_000_007);
        assert_eq!((w.unix_secs(), w.subsec_nanos()), (-6, 999_999_993));
        assert_eq!(w.to_system(), Some(before));
    }

    #[test]
    fn offsets_add_and_print() {
        let t = WallTime::from_unix_secs(100);
        let o = Offset::from_nanos(-1_500_000_000);
        assert_eq!(t.plus(o), WallTime::from_unix_nanos(98_500_000_000));
        assert_eq!(t.plus(o).since(t), o);
        assert_eq!(o.to_string(), "-1.500s");
        assert_eq!(o.abs(), Duration::from_millis(1500));
        assert_eq!(Offset::from_nanos(41_999_999).to_string(), "+0.042s");
        assert_eq!(
            Offset::from_nanos(378_691_200 * NANOS).to_string(),
            "+378691200.000s (4383.0 days)"
        );
        assert_eq!(
            Offset::from_secs_f64(7200.0).to_string(),
            "+7200.000s (2.0 hours)"
        );
        assert_eq!(
            Offset::of(Duration::from_millis(3)).negated().nanos(),
            -3_000_000
        );
    }
}
