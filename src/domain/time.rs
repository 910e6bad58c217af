//! Instants as people read and type them: RFC 3339 UTC with milliseconds
//! out; RFC 3339 or Unix epoch milliseconds in.

use chrono::{DateTime, SecondsFormat, TimeDelta, TimeZone, Utc};

use super::EventTime;

/// `2017-07-10T08:56:29.909Z`: the one format every answer uses.
pub fn format_instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `2024-05-01T00:00:00Z` (any offset) or `1714521600000`, up to the end of
/// year 9999 as event times are (`EventTime::MAX_MS`): SQLite compares
/// times as text, and a year of five digits would sort before `9999`.
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let t = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<i64>()
            .ok()
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
    } else {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }?;
    (t.timestamp_millis() <= EventTime::MAX_MS).then_some(t)
}

/// The start of the UTC hour holding `t`: the close-reason rollup's bucket.
/// Counted in whole seconds, so it holds for every time we take in (event
/// times run to year 9999): chrono's `duration_trunc` counts in
/// nanoseconds, which run out in April 2262, and failed there.
pub fn hour_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    let start = t.timestamp().div_euclid(3600) * 3600;
    // Out of range only within chrono's first hour (year -262143): `t` then.
    DateTime::from_timestamp(start, 0).unwrap_or(t)
}

/// The first whole hour at or after `t`.
pub fn hour_ceil(t: DateTime<Utc>) -> DateTime<Utc> {
    let floor = hour_floor(t);
    if floor == t {
        return floor;
    }
    // Out of range only within chrono's last hour (year 262142): `t` then.
    floor.checked_add_signed(TimeDelta::hours(1)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_whole_up_to_year_9999() {
        let at = |text: &str| parse_instant(text).unwrap();
        for (t, floor, ceil) in [
            (
                "2017-07-10T08:56:29.909Z",
                "2017-07-10T08:00:00Z",
                "2017-07-10T09:00:00Z",
            ),
            (
                "2017-07-10T08:00:00Z",
                "2017-07-10T08:00:00Z",
                "2017-07-10T08:00:00Z",
            ),
            (
                "1970-01-01T00:00:00.001Z",
                "1970-01-01T00:00:00Z",
                "1970-01-01T01:00:00Z",
            ),
            // Past April 2262, where chrono's duration_trunc gives up.
            (
                "2286-11-20T17:46:40Z",
                "2286-11-20T17:00:00Z",
                "2286-11-20T18:00:00Z",
            ),
            (
                "9999-12-31T23:59:59.999Z",
                "9999-12-31T23:00:00Z",
                "+10000-01-01T00:00:00Z",
            ),
        ] {
            assert_eq!(
                format_instant(hour_floor(at(t))),
                format_instant(at(floor)),
                "{t}"
            );
            let ceil = if ceil.starts_with('+') {
                at("9999-12-31T23:00:00Z") + TimeDelta::hours(1)
            } else {
                at(ceil)
            };
            assert_eq!(hour_ceil(at(t)), ceil, "{t}");
        }
        assert_eq!(
            hour_floor(DateTime::<Utc>::MIN_UTC),
            DateTime::<Utc>::MIN_UTC
        );
        assert_eq!(
            hour_ceil(DateTime::<Utc>::MAX_UTC),
            DateTime::<Utc>::MAX_UTC
        );
    }

    #[test]
    fn rfc3339_and_epoch_millis_name_the_same_instant() {
        assert_eq!(
            parse_instant("2017-07-10T08:56:29.909Z"),
            parse_instant("1499676989909")
        );
        assert_eq!(
            parse_instant("2017-07-10T10:56:29.909+02:00"),
            parse_instant("1499676989909")
        );
        assert_eq!(parse_instant("yesterday"), None);
        assert!(parse_instant("253402300799999").is_some());
        assert_eq!(parse_instant("253402300800000"), None, "year 10000");
        assert_eq!(parse_instant("99999999999999999999"), None);
        assert_eq!(parse_instant(""), None);
    }
}
