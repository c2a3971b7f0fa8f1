//! The clock floor and the best time known without asking anyone.
//!
//! The floor is this binary's build time (`build.rs`: `SOURCE_DATE_EPOCH`, else the last commit's
//! time, else a fixed date — so the same source builds the same binary). A binary cannot run
//! before it was built, so a clock that reads earlier is certainly wrong; the opposite is not
//! true (a clock later than the floor may still be wrong), which is why SNTP comes first and the
//! floor only bounds what is believed when nothing answers.

use super::build_floor::{parse_epoch, FloorSource};
use crate::time::WallTime;

/// The floor compiled into this binary (seconds since the Unix epoch).
pub const FLOOR_SECS: &str = env!("KUBEJOIN_CLOCK_FLOOR");
/// Where `build.rs` took it from: `SOURCE_DATE_EPOCH`, `commit-time` or `fixed`.
pub const FLOOR_SOURCE: &str = env!("KUBEJOIN_CLOCK_FLOOR_SOURCE");

/// The clock floor: this binary's build time.
pub fn floor() -> WallTime {
    // build.rs only ever writes a number it parsed; the fixed floor covers the impossible case.
    WallTime::from_unix_secs(parse_epoch(FLOOR_SECS).unwrap_or(super::build_floor::FIXED_FLOOR))
}

/// Where a best-known time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    /// The system clock (RTC, or whatever set it before kubejoin).
    SystemClock,
    /// The binary's build time: the system clock was earlier, so certainly wrong.
    Floor,
    /// The `Date` header of an answer over TLS verified against the pinned CA (docs/time.md).
    VerifiedDate,
    /// SNTP's agreed time, not set on the clock (a dry run).
    Sntp,
}

impl TimeSource {
    pub fn id(self) -> &'static str {
        match self {
            TimeSource::SystemClock => "system-clock",
            TimeSource::Floor => "build-time-floor",
            TimeSource::VerifiedDate => "verified-date-header",
            TimeSource::Sntp => "sntp",
        }
    }
}

/// A time believed, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BestTime {
    pub time: WallTime,
    pub source: TimeSource,
}

/// The best time known without SNTP: the latest of the floor, the system clock and (optionally)
/// a verified `Date` header. Later wins because each is a lower bound of the truth under its own
/// argument: the floor certainly, the clock because kubejoin never sets it backwards, the `Date`
/// header because only a holder of a key certified by the pinned CA could have sent it. A clock
/// *ahead* of the truth is not corrected here: that needs SNTP (the certificate error says so).
pub fn best_known(floor: WallTime, system: WallTime, verified_date: Option<WallTime>) -> BestTime {
    let mut best = BestTime {
        time: system,
        source: TimeSource::SystemClock,
    };
    if floor > best.time {
        best = BestTime {
            time: floor,
            source: TimeSource::Floor,
        };
    }
    if let Some(d) = verified_date.filter(|d| *d > best.time) {
        best = BestTime {
            time: d,
            source: TimeSource::VerifiedDate,
        };
    }
    best
}

/// A time learnt from a source and standing for the clock: a verified `Date` (`datehdr`; the
/// clock is then stepped to it unless in a dry run), or SNTP's agreed time in a dry run (which
/// never sets the clock). Kept with the monotonic instant it was learnt at, so it runs on with
/// the process, and with its source (for the certificate error).
type Learnt = (WallTime, std::time::Instant, TimeSource);
static LEARNT: std::sync::Mutex<Option<Learnt>> = std::sync::Mutex::new(None);

/// Remembers `t` (from `source`) as the time now: every later certificate check of this process
/// is made at `t` carried forward ([`best_now`], read by `cert::BestTimeVerifier`), as it would
/// be on a clock stepped to it.
pub fn learn(t: WallTime, source: TimeSource) {
    if let Ok(mut g) = LEARNT.lock() {
        *g = Some((t, std::time::Instant::now(), source));
    }
}

/// The time learnt ([`learn`]) carried forward by the monotonic time since, and its source.
pub fn learnt() -> Option<BestTime> {
    let g = LEARNT.lock().ok()?;
    g.as_ref().map(|(t, at, source)| BestTime {
        time: t.plus(crate::time::Offset::of(at.elapsed())),
        source: *source,
    })
}

/// The time certificate validity is checked at now, on a node whose clock reads `system`: a
/// time learnt ([`learn`]) stands for the clock, as it does once the clock is stepped to it
/// (never below the `floor`); otherwise the best of the clock and the floor ([`best_known`]).
pub fn best_now(floor: WallTime, system: WallTime) -> BestTime {
    match learnt() {
        Some(l) if l.time >= floor => l,
        _ => best_known(floor, system, None),
    }
}

/// Where the compiled-in floor came from.
pub fn floor_source() -> FloorSource {
    match FLOOR_SOURCE {
        "SOURCE_DATE_EPOCH" => FloorSource::SourceDateEpoch,
        "commit-time" => FloorSource::CommitTime,
        _ => FloorSource::Fixed,
    }
}

#[cfg(test)]
mod tests {
    use super::super::build_floor::{choose_floor, FIXED_FLOOR};
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn the_compiled_floor_is_a_real_past_time() {
        let f = floor();
        assert!(f >= WallTime::from_unix_secs(FIXED_FLOOR), "{f}");
        // This test runs after the build, on a machine whose clock is right.
        assert!(f <= WallTime::from_system(SystemTime::now()), "{f}");
        match floor_source() {
            FloorSource::SourceDateEpoch => {
                let v = std::env::var("SOURCE_DATE_EPOCH").unwrap_or_default();
                assert_eq!(
                    parse_epoch(&v).map(|s| s.max(FIXED_FLOOR)),
                    Some(f.unix_secs())
                );
            }
            FloorSource::CommitTime => assert!(f.unix_secs() > FIXED_FLOOR),
            FloorSource::Fixed => assert_eq!(f.unix_secs(), FIXED_FLOOR),
        }
    }

    #[test]
    fn the_floor_comes_from_source_date_epoch_then_the_commit_then_a_fixed_date() {
        let later = (FIXED_FLOOR + 86_400).to_string();
        let commit = (FIXED_FLOOR + 3_600).to_string();
        assert_eq!(
            choose_floor(Some(&later), Some(&commit)),
            Ok((FIXED_FLOOR + 86_400, FloorSource::SourceDateEpoch))
        );
        assert_eq!(
            choose_floor(None, Some(&format!("{commit}\n"))),
            Ok((FIXED_FLOOR + 3_600, FloorSource::CommitTime))
        );
        assert_eq!(
            choose_floor(None, None),
            Ok((FIXED_FLOOR, FloorSource::Fixed))
        );
        // The image builder's default SOURCE_DATE_EPOCH=0 (and any earlier date) never lowers it.
        assert_eq!(
            choose_floor(Some("0"), Some(&commit)),
            Ok((FIXED_FLOOR, FloorSource::Fixed))
        );
        assert_eq!(
            choose_floor(None, Some("garbage")),
            Ok((FIXED_FLOOR, FloorSource::Fixed))
        );
        // A set but malformed SOURCE_DATE_EPOCH fails the build instead of being replaced.
        let e = choose_floor(Some("2026-12-01"), None).unwrap_err();
        assert_eq!(e.value, "2026-12-01");
        assert_eq!(
            e.to_string(),
            "SOURCE_DATE_EPOCH=\"2026-12-01\" is not a number of seconds since 1970"
        );
        assert!(choose_floor(Some("-5"), None).is_err());
    }

    #[test]
    fn best_known_is_the_latest_lower_bound() {
        let floor = WallTime::from_unix_secs(1_796_083_200); // 2026-12-01
        let rtc_2015 = WallTime::from_unix_secs(1_420_070_400);
        let rtc_2027 = WallTime::from_unix_secs(1_800_000_000);
        assert_eq!(
            best_known(floor, rtc_2015, None),
            BestTime {
                time: floor,
                source: TimeSource::Floor
            }
        );
        assert_eq!(
            best_known(floor, rtc_2027, None),
            BestTime {
                time: rtc_2027,
                source: TimeSource::SystemClock
            }
        );
        let date = WallTime::from_unix_secs(1_800_000_100);
        assert_eq!(
            best_known(floor, rtc_2015, Some(date)).source,
            TimeSource::VerifiedDate
        );
        // Never backwards: an older Date does not lower a later clock.
        assert_eq!(
            best_known(floor, rtc_2027, Some(floor)).source,
            TimeSource::SystemClock
        );
        assert_eq!(TimeSource::Floor.id(), "build-time-floor");
    }
}
