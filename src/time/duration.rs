//! Durations: Go's syntax (`300ms`, `10s`, `5m`, `1h30m`, `5m0s`), as kubeadm configs and flags
//! use it, and the one way kubejoin prints one.

use std::time::Duration;

/// A duration string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?} (use a number with a unit: ms, s, m, h — e.g. 30s, 5m, 1h30m)")]
pub struct DurationError(pub String);

/// Parses a Go `time.ParseDuration` string (units ns, us, ms, s, m, h; fractions allowed).
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let err = || DurationError(s.to_string());
    let t = s.trim();
    if t.is_empty() {
        return Err(err());
    }
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if num_end == 0 {
            return Err(err());
        }
        let value: f64 = rest[..num_end].parse().map_err(|_| err())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += value * secs;
        rest = &rest[unit_end..];
    }
    if !total.is_finite() || total > 1e9 {
        return Err(err());
    }
    Ok(Duration::from_secs_f64(total))
}

/// The one way kubejoin prints a duration, configured or measured: Go's `Duration.String`
/// at the precision a person needs — milliseconds below a second (`250ms`), up to three
/// decimals below a minute (`1.5s`, `42s`), whole seconds from a minute on (`5m0s`, `1h0m0s`).
/// Every output parses back with [`parse`]. Callers that want coarser figures (a progress line's
/// whole seconds) [`round`] first.
pub fn format(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    if d < Duration::from_secs(60) {
        let ms = d.as_millis();
        let (s, frac) = (ms / 1000, ms % 1000);
        if frac == 0 {
            return format!("{s}s");
        }
        let digits = format!("{frac:03}");
        return format!("{s}.{}s", digits.trim_end_matches('0'));
    }
    let secs = round(d, Duration::from_secs(1)).as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else {
        format!("{m}m{s}s")
    }
}

/// `d` rounded to the nearest multiple of `unit` (halves up); `d` itself for a zero unit.
pub fn round(d: Duration, unit: Duration) -> Duration {
    let u = unit.as_nanos();
    if u == 0 {
        return d;
    }
    let n = (d.as_nanos() + u / 2) / u * u;
    Duration::new(
        u64::try_from(n / 1_000_000_000).unwrap_or(u64::MAX),
        (n % 1_000_000_000) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("5m0s").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        for bad in ["", "5", "m", "5x", "-1s", "5m0", "s5"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(Duration::from_secs(300)), "5m0s");
        assert_eq!(format(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format(Duration::from_millis(2340)), "2.34s");
        assert_eq!(format(Duration::from_millis(4999)), "4.999s");
        assert_eq!(format(Duration::from_secs(42)), "42s");
        assert_eq!(format(Duration::from_millis(20)), "20ms");
        assert_eq!(format(Duration::ZERO), "0ms");
        // From a minute on, whole seconds.
        assert_eq!(format(Duration::from_millis(299_700)), "5m0s");
        assert_eq!(format(Duration::from_secs(61)), "1m1s");
        assert_eq!(format(Duration::from_secs(185)), "3m5s");
        for d in [250, 1500, 2340, 42_000, 300_000, 3_600_000, 5_400_000] {
            let d = Duration::from_millis(d);
            assert_eq!(parse(&format(d)).unwrap(), d, "{}", format(d));
        }
    }

    #[test]
    fn rounds_to_a_unit() {
        let s = Duration::from_secs(1);
        assert_eq!(
            round(Duration::from_millis(12_499), s),
            Duration::from_secs(12)
        );
        assert_eq!(
            round(Duration::from_millis(12_500), s),
            Duration::from_secs(13)
        );
        assert_eq!(
            round(Duration::from_millis(1_549), Duration::from_millis(100)),
            Duration::from_millis(1_500)
        );
        assert_eq!(
            round(Duration::from_millis(7), Duration::ZERO),
            Duration::from_millis(7)
        );
    }
}
