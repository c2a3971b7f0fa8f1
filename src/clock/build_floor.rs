// The choice of the clock floor, shared by `build.rs` (which includes this file) and the crate
// (`clock::build_floor`, where it is unit-tested). Plain items only: `include!` takes no inner
// attributes or module docs.

/// A floor that holds for every build of this code: the day it was written (2026-12-01T00:00:00Z).
/// No binary of this source can run before it, so a larger `SOURCE_DATE_EPOCH` or commit time
/// raises the floor and anything smaller (0, a mistake) falls back to it.
pub const FIXED_FLOOR: i64 = 1_796_083_200;

/// Where the floor came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloorSource {
    /// `SOURCE_DATE_EPOCH` at build time (reproducible builds, Debian, scripts/build).
    SourceDateEpoch,
    /// The committer time of `HEAD` (a build from a git checkout without `SOURCE_DATE_EPOCH`).
    CommitTime,
    /// [`FIXED_FLOOR`]: neither was usable (a source tarball, or a value below it).
    Fixed,
}

impl FloorSource {
    pub fn id(self) -> &'static str {
        match self {
            FloorSource::SourceDateEpoch => "SOURCE_DATE_EPOCH",
            FloorSource::CommitTime => "commit-time",
            FloorSource::Fixed => "fixed",
        }
    }
}

/// Seconds since the Unix epoch of a decimal string (surrounding ASCII whitespace allowed).
pub fn parse_epoch(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The floor from `SOURCE_DATE_EPOCH` (when set and a number), else the commit time, each only
/// when it is later than [`FIXED_FLOOR`]. A `SOURCE_DATE_EPOCH` that is set but not a number is
/// an error: a reproducible build must not silently take another value.
pub fn choose_floor(
    source_date_epoch: Option<&str>,
    commit_time: Option<&str>,
) -> Result<(i64, FloorSource), BadSourceDateEpoch> {
    if let Some(v) = source_date_epoch {
        let Some(secs) = parse_epoch(v) else {
            return Err(BadSourceDateEpoch {
                value: v.to_string(),
            });
        };
        return Ok(if secs > FIXED_FLOOR {
            (secs, FloorSource::SourceDateEpoch)
        } else {
            (FIXED_FLOOR, FloorSource::Fixed)
        });
    }
    match commit_time.and_then(parse_epoch) {
        Some(secs) if secs > FIXED_FLOOR => Ok((secs, FloorSource::CommitTime)),
        _ => Ok((FIXED_FLOOR, FloorSource::Fixed)),
    }
}

/// A `SOURCE_DATE_EPOCH` that is set but is not a number of seconds since 1970. (Written out
/// rather than derived: `build.rs` includes this file and has no dependencies.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSourceDateEpoch {
    /// The value as it was set.
    pub value: String,
}

impl std::fmt::Display for BadSourceDateEpoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SOURCE_DATE_EPOCH={:?} is not a number of seconds since 1970",
            self.value
        )
    }
}

impl std::error::Error for BadSourceDateEpoch {}
