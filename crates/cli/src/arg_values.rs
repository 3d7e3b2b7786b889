//! Parsers for values given on the command line: byte sizes (`64MiB`), durations (`7d`) and
//! points in time (`2026-01-31T12:00:00Z`, `now-1h`, or milliseconds since the epoch).
//!
//! Each returns a message naming what is accepted, which clap turns into a usage error.

use std::time::{SystemTime, UNIX_EPOCH};

/// A byte count: digits with an optional unit `B`, `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024)
/// or `KB`, `MB`, `GB`, `TB` (powers of 1000); the unit is case-insensitive.
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    const UNITS: &[(&str, u64)] = &[
        ("kib", 1 << 10),
        ("mib", 1 << 20),
        ("gib", 1 << 30),
        ("tib", 1 << 40),
        ("kb", 1_000),
        ("mb", 1_000_000),
        ("gb", 1_000_000_000),
        ("tb", 1_000_000_000_000),
        ("b", 1),
    ];
    parse_with_units(text, UNITS).ok_or_else(|| {
        format!("invalid size {text:?}: expected a number of bytes like 1048576 or 1MiB")
    })
}

/// A duration in milliseconds: digits with an optional unit `ms`, `s`, `m`, `h` or `d`; plain
/// digits are milliseconds.
pub(crate) fn parse_duration_ms(text: &str) -> Result<u64, String> {
    const UNITS: &[(&str, u64)] = &[
        ("ms", 1),
        ("s", 1_000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
    ];
    parse_with_units(text, UNITS).ok_or_else(|| {
        format!(
            "invalid duration {text:?}: expected milliseconds like 60000, or 500ms, 30s, 5m, 2h, 7d"
        )
    })
}

/// Digits followed by one of `units` (or none, meaning a factor of 1), checked for overflow.
fn parse_with_units(text: &str, units: &[(&str, u64)]) -> Option<u64> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    let number: u64 = digits.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let factor = if unit.is_empty() {
        1
    } else {
        units.iter().find(|(name, _)| *name == unit)?.1
    };
    number.checked_mul(factor)
}

/// A point in time as milliseconds since the Unix epoch: an integer (milliseconds since the
/// epoch), an RFC 3339 time (`2026-01-31T12:00:00Z`, `2026-01-31T12:00:00.250+01:00`), a date
/// (`2026-01-31`, midnight UTC), or `now-DURATION` (`now-15m`).
pub(crate) fn parse_time_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let invalid = || {
        format!(
            "invalid time {text:?}: expected milliseconds since the epoch, an RFC 3339 time like \
             2026-01-31T12:00:00Z, a date like 2026-01-31, or now-DURATION like now-15m"
        )
    };
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    if let Some(ago) = text.strip_prefix("now-") {
        let ago =
            i64::try_from(parse_duration_ms(ago).map_err(|_| invalid())?).map_err(|_| invalid())?;
        return Ok(now_ms().saturating_sub(ago));
    }
    parse_rfc3339(text).ok_or_else(invalid)
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `YYYY-MM-DD`, or `YYYY-MM-DD(T| )HH:MM:SS[.fraction](Z|±HH:MM)`.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let number = |s: &str| -> Option<i64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };

    let date = text.get(..10)?;
    let year = number(date.get(0..4)?)?;
    let month = number(date.get(5..7)?)?;
    let day = number(date.get(8..10)?)?;
    if date.as_bytes().get(4) != Some(&b'-') || date.as_bytes().get(7) != Some(&b'-') {
        return None;
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let rest = text.get(10..)?;
    if rest.is_empty() {
        return days.checked_mul(86_400_000);
    }

    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let hour = number(rest.get(0..2)?)?;
    let minute = number(rest.get(3..5)?)?;
    let second = number(rest.get(6..8)?)?;
    if rest.get(2..3)? != ":" || rest.get(5..6)? != ":" || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = rest.get(8..)?;
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        let digits = fraction.get(..end)?;
        let padded = format!("{:0<3}", digits.get(..digits.len().min(3))?);
        millis = number(&padded)?;
        rest = fraction.get(end..)?;
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.get(3..4)? != ":" {
                return None;
            }
            sign * (number(rest.get(1..3)?)? * 60 + number(rest.get(4..6)?)?)
        }
    };
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    seconds.checked_mul(1_000)?.checked_add(millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A time in milliseconds since the epoch as RFC 3339 UTC with milliseconds.
pub(crate) fn format_time_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000
    )
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("2 kb"), Ok(2_000));
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("-1").is_err());
        assert!(parse_bytes("99999999999TiB").is_err());
    }

    #[test]
    fn durations_default_to_milliseconds() {
        assert_eq!(parse_duration_ms("250"), Ok(250));
        assert_eq!(parse_duration_ms("7d"), Ok(7 * 86_400_000));
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert!(parse_duration_ms("soon").is_err());
    }

    #[test]
    fn rfc3339_times_match_the_epoch_milliseconds() {
        assert_eq!(parse_time_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_time_ms("2024-02-29T12:34:56.789Z"),
            Ok(1_709_210_096_789)
        );
        assert_eq!(
            parse_time_ms("2024-02-29T13:34:56.789+01:00"),
            Ok(1_709_210_096_789)
        );
        assert_eq!(parse_time_ms("2024-03-01"), Ok(1_709_251_200_000));
        assert_eq!(parse_time_ms("1709210096789"), Ok(1_709_210_096_789));
        assert!(parse_time_ms("2024-13-01").is_err());
        assert!(parse_time_ms("yesterday").is_err());
        let an_hour_ago = parse_time_ms("now-1h").unwrap();
        assert!((now_ms() - an_hour_ago - 3_600_000).abs() < 60_000);
    }

    #[test]
    fn formatted_times_parse_back() {
        for ms in [0, 1_709_210_096_789, 951_782_400_000, -86_400_001] {
            assert_eq!(parse_time_ms(&format_time_ms(ms)), Ok(ms), "{ms}");
        }
        assert_eq!(
            format_time_ms(1_709_210_096_789),
            "2024-02-29T12:34:56.789Z"
        );
    }
}
