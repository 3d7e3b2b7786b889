//! Event time of a flight: New York local time (the data's scheduled departure, `HHMM`) to
//! UTC milliseconds, and the data's own UTC `time_hour` stamps.
//!
//! Owns civil-date arithmetic and the US daylight-saving rule in force since 2007 (second
//! Sunday of March at 02:00 to first Sunday of November at 02:00, both local). No time-zone
//! database: New York is the only zone the data needs. A local time in the repeated hour of
//! November is read as daylight time, the first of its two occurrences, as the data does.

/// Milliseconds in a minute, hour and day.
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Day of week of a day count from 1970-01-01, with 0 for Sunday.
fn weekday(days: i64) -> i64 {
    // 1970-01-01 was a Thursday.
    (days + 4).rem_euclid(7)
}

/// The day count of the `n`th (1-based) Sunday of a month.
fn nth_sunday(year: i64, month: u32, n: i64) -> i64 {
    let first = days_from_civil(year, month, 1);
    let first_sunday = first + (7 - weekday(first)) % 7;
    first_sunday + 7 * (n - 1)
}

/// UTC milliseconds of a New York local wall-clock time.
pub(crate) fn new_york_to_utc_ms(year: i64, month: u32, day: u32, hour: u32, minute: u32) -> i64 {
    let days = days_from_civil(year, month, day);
    let local_ms = days * DAY_MS + i64::from(hour) * HOUR_MS + i64::from(minute) * MINUTE_MS;
    let dst_start = nth_sunday(year, 3, 2) * DAY_MS + 2 * HOUR_MS;
    let dst_end = nth_sunday(year, 11, 1) * DAY_MS + 2 * HOUR_MS;
    let offset_hours = if (dst_start..dst_end).contains(&local_ms) {
        4
    } else {
        5
    };
    local_ms + offset_hours * HOUR_MS
}

/// UTC milliseconds of midnight starting a New York local date.
pub(crate) fn new_york_midnight_ms(year: i64, month: u32, day: u32) -> i64 {
    new_york_to_utc_ms(year, month, day, 0, 0)
}

/// Parses the data's `time_hour` stamps, `YYYY-MM-DDTHH:MM:SSZ`, to UTC milliseconds.
pub(crate) fn parse_utc_ms(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() != 20 || bytes.get(10) != Some(&b'T') || bytes.get(19) != Some(&b'Z') {
        return None;
    }
    let field = |range: std::ops::Range<usize>| text.get(range)?.parse::<u32>().ok();
    let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let (hour, minute, second) = (field(11..13)?, field(14..16)?, field(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    Some(
        days_from_civil(i64::from(year), month, day) * DAY_MS
            + i64::from(hour) * HOUR_MS
            + i64::from(minute) * MINUTE_MS
            + i64::from(second) * 1000,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2013, 1, 1), 15_706);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn winter_is_five_hours_behind_and_summer_four() {
        // The first row of the data: 2013-01-01 05:15 local, time_hour 10:00Z.
        assert_eq!(
            new_york_to_utc_ms(2013, 1, 1, 5, 15),
            parse_utc_ms("2013-01-01T10:15:00Z").unwrap()
        );
        assert_eq!(
            new_york_midnight_ms(2013, 7, 4),
            parse_utc_ms("2013-07-04T04:00:00Z").unwrap()
        );
    }

    #[test]
    fn daylight_saving_switches_on_the_2013_sundays() {
        // 10 March 2013 02:00 EST became 03:00 EDT; 3 November 02:00 EDT became 01:00 EST.
        assert_eq!(
            new_york_to_utc_ms(2013, 3, 10, 1, 59),
            parse_utc_ms("2013-03-10T06:59:00Z").unwrap()
        );
        assert_eq!(
            new_york_to_utc_ms(2013, 3, 10, 3, 0),
            parse_utc_ms("2013-03-10T07:00:00Z").unwrap()
        );
        assert_eq!(
            new_york_to_utc_ms(2013, 11, 3, 1, 30),
            parse_utc_ms("2013-11-03T05:30:00Z").unwrap()
        );
        assert_eq!(
            new_york_to_utc_ms(2013, 11, 3, 2, 0),
            parse_utc_ms("2013-11-03T07:00:00Z").unwrap()
        );
    }

    #[test]
    fn malformed_stamps_are_refused() {
        assert_eq!(parse_utc_ms("2013-01-01 10:00:00Z"), None);
        assert_eq!(parse_utc_ms("2013-13-01T10:00:00Z"), None);
        assert_eq!(parse_utc_ms("NA"), None);
    }
}
