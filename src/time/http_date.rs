//! HTTP-dates (RFC 9110 §5.6.7): IMF-fixdate, RFC 850 and asctime, as `Retry-After` and `Date`
//! carry them.

use super::calendar::{days_from_civil, days_in_month};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// An HTTP-date (RFC 9110 §5.6.7) as a point in time.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    http_date_at(s, SystemTime::now())
}

/// [`parse_http_date`], with RFC 850's two-digit years read relative to `now`.
pub fn http_date_at(s: &str, now: SystemTime) -> Option<SystemTime> {
    let month = |m: &str| MONTHS.iter().position(|x| *x == m).map(|i| i as u32 + 1);
    let num = |t: &str| -> Option<u32> {
        (!t.is_empty() && t.len() <= 4 && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let time = |t: &str| -> Option<(u32, u32, u32)> {
        let mut p = t.split(':');
        let (h, m, s) = (p.next()?, p.next()?, p.next()?);
        if p.next().is_some() || h.len() != 2 || m.len() != 2 || s.len() != 2 {
            return None;
        }
        Some((num(h)?, num(m)?, num(s)?))
    };
    let (year, mon, day, hms) = if let Some((wd, rest)) = s.split_once(", ") {
        let f: Vec<&str> = rest.split(' ').collect();
        if DAYS.contains(&wd) {
            // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
            match f.as_slice() {
                [d, m, y, t, "GMT"] if d.len() == 2 && y.len() == 4 => {
                    (i64::from(num(y)?), month(m)?, num(d)?, time(t)?)
                }
                _ => return None,
            }
        } else if LONG_DAYS.contains(&wd) {
            // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
            match f.as_slice() {
                [dmy, t, "GMT"] => {
                    let mut p = dmy.split('-');
                    let (d, m, y) = (p.next()?, p.next()?, p.next()?);
                    if p.next().is_some() || d.len() != 2 || y.len() != 2 {
                        return None;
                    }
                    (two_digit_year(num(y)?, now), month(m)?, num(d)?, time(t)?)
                }
                _ => return None,
            }
        } else {
            return None;
        }
    } else {
        // asctime: Sun Nov  6 08:49:37 1994 (day padded with a space)
        let f: Vec<&str> = s.split(' ').filter(|t| !t.is_empty()).collect();
        match f.as_slice() {
            [wd, m, d, t, y] if DAYS.contains(wd) && y.len() == 4 && d.len() <= 2 => {
                (i64::from(num(y)?), month(m)?, num(d)?, time(t)?)
            }
            _ => return None,
        }
    };
    let (h, mi, se) = hms;
    // A leap second (60) is accepted by the grammar; it is the same instant as :59 plus one.
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || se > 60 || day > days_in_month(year, mon) {
        return None;
    }
    let days = days_from_civil(year, mon, day);
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + se);
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// RFC 9110: a two-digit year more than 50 years in the future is in the past century.
fn two_digit_year(yy: u32, now: SystemTime) -> i64 {
    let this_year = now
        .duration_since(UNIX_EPOCH)
        .map(|d| 1970 + d.as_secs() as i64 / 31_556_952)
        .unwrap_or(1970);
    let century = this_year - this_year.rem_euclid(100);
    let y = century + i64::from(yy);
    if y > this_year + 50 {
        y - 100
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms_and_their_limits() {
        // 1994-11-06T08:49:37Z
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(form), Some(t), "{form}");
        }
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(UNIX_EPOCH)
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 23:59:59 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(1_835_481_599))
        );
        for bad in [
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Wed, 01 Jan 1969 00:00:00 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }
}
