//! Small helpers that reproduce Go and Kubernetes formatting: RFC 3339 timestamps, UIDs, names
//! from `generateName`, `%#v` of a byte slice, and encoding/json's HTML escaping.

use ring::rand::{SecureRandom, SystemRandom};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC calendar time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Civil {
    pub(crate) fn from_system_time(t: SystemTime) -> Civil {
        let secs = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        };
        Civil::from_unix(secs)
    }

    /// Days-to-civil conversion (proleptic Gregorian calendar), after Howard Hinnant's algorithm.
    pub(crate) fn from_unix(secs: i64) -> Civil {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
        }
    }
}

/// `metav1.Time` as the API server writes it: RFC 3339, whole seconds, `Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let c = Civil::from_system_time(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// RFC 3339 with milliseconds, for the request log.
pub(crate) fn rfc3339_millis(t: SystemTime) -> String {
    let millis = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_millis())
        .unwrap_or(0);
    let base = rfc3339(t);
    format!("{}.{millis:03}Z", base.trim_end_matches('Z'))
}

/// Fills `buf` from the system CSPRNG. A failing system RNG leaves no safe way to go on, but
/// the server must not panic: it falls back to a time-derived value, which only ever feeds
/// names, UIDs and serials of a test server.
pub(crate) fn random_bytes(buf: &mut [u8]) {
    if SystemRandom::new().fill(buf).is_err() {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            .to_le_bytes();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = nanos[i % nanos.len()] ^ (i as u8).wrapping_mul(31);
        }
    }
}

/// A random (version 4) UUID, the form of `metadata.uid`.
pub(crate) fn uuid() -> String {
    let mut b = [0u8; 16];
    random_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The alphabet of apimachinery's `utilrand.String`, which `generateName` uses: no vowels (no
/// accidental words) and no confusable characters.
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `generateName` + 5 random characters, as `names.SimpleNameGenerator` does.
pub(crate) fn generate_name(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 5);
    out.push_str(prefix);
    let mut produced = 0;
    while produced < 5 {
        let mut buf = [0u8; 16];
        random_bytes(&mut buf);
        for b in buf {
            // Rejection sampling keeps the distribution uniform over the 27 characters.
            if (b as usize) < 256 - 256 % NAME_ALPHABET.len() && produced < 5 {
                out.push(char::from(NAME_ALPHABET[b as usize % NAME_ALPHABET.len()]));
                produced += 1;
            }
        }
    }
    out
}

/// Go's `fmt.Sprintf("%#v", []byte)`: `[]byte{0x30, 0x81}`; `[]byte(nil)` for a missing value.
pub(crate) fn go_bytes(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "[]byte(nil)".to_string(),
        Some(b) => {
            let items: Vec<String> = b.iter().map(|x| format!("{x:#x}")).collect();
            format!("[]byte{{{}}}", items.join(", "))
        }
    }
}

/// Go's encoding/json escapes `<`, `>`, `&`, U+2028 and U+2029 inside strings. Those bytes can
/// only occur inside JSON strings, so a byte-level pass over serde_json's output is exact.
pub(crate) fn go_json_escape(json: Vec<u8>) -> Vec<u8> {
    let needs = json.iter().any(|b| matches!(b, b'<' | b'>' | b'&'))
        || json
            .windows(3)
            .any(|w| w == [0xe2, 0x80, 0xa8] || w == [0xe2, 0x80, 0xa9]);
    if !needs {
        return json;
    }
    let mut out = Vec::with_capacity(json.len() + 16);
    let mut i = 0;
    while i < json.len() {
        let b = json[i];
        match b {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            0xe2 if json.get(i + 1) == Some(&0x80)
                && matches!(json.get(i + 2), Some(0xa8) | Some(0xa9)) =>
            {
                if json.get(i + 2) == Some(&0xa8) {
                    out.extend_from_slice(b"\\u2028");
                } else {
                    out.extend_from_slice(b"\\u2029");
                }
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

/// Durations on the command line: `500ms`, `5s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

/// Constant-time equality, for token secrets.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_matches_known_dates() {
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_348_576)),
            "2026-11-22T11:56:16Z"
        );
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn generated_names_use_the_go_alphabet() {
        for _ in 0..50 {
            let n = generate_name("csr-");
            assert_eq!(n.len(), 9);
            assert!(n[4..].bytes().all(|b| NAME_ALPHABET.contains(&b)), "{n}");
        }
    }

    #[test]
    fn uuids_have_version_4() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }

    #[test]
    fn go_byte_slices() {
        assert_eq!(
            go_bytes(Some(&[0x30, 0x81, 0, 0xa])),
            "[]byte{0x30, 0x81, 0x0, 0xa}"
        );
        assert_eq!(go_bytes(Some(&[])), "[]byte{}");
        assert_eq!(go_bytes(None), "[]byte(nil)");
    }

    #[test]
    fn json_escaping_like_go() {
        assert_eq!(
            go_json_escape(br#"{"a":"<b>&"}"#.to_vec()),
            br#"{"a":"\u003cb\u003e\u0026"}"#.to_vec()
        );
        assert_eq!(
            go_json_escape("\"\u{2028}\"".as_bytes().to_vec()),
            b"\"\\u2028\"".to_vec()
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("5d"), None);
    }
}
