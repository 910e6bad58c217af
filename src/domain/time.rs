//! Instants as people read and type them: RFC 3339 UTC with milliseconds
//! out; RFC 3339 or Unix epoch milliseconds in.

use chrono::{DateTime, Datelike, SecondsFormat, TimeDelta, TimeZone, Timelike, Utc};

use super::EventTime;

/// `2017-07-10T08:56:29.909Z`: the one format every answer uses.
pub fn format_instant(t: DateTime<Utc>) -> String {
    with_instant_text(t, str::to_owned)
}

/// Hands `f` the text of `t` as `format_instant` spells it, written on the
/// stack: a session detail writes ~7,000 times, and chrono's formatter plus
/// a `String` each were a tenth of its CPU. Years 0–9999 (every time we
/// take in) have this fixed width; chrono spells the rest.
pub fn with_instant_text<R>(t: DateTime<Utc>, f: impl FnOnce(&str) -> R) -> R {
    // Other years chrono writes with a sign or a fifth digit, and a leap
    // second (millis past 999) as second 60.
    let (Ok(year @ 0..=9999), millis @ 0..=999) =
        (u32::try_from(t.year()), t.timestamp_subsec_millis())
    else {
        return f(&t.to_rfc3339_opts(SecondsFormat::Millis, true));
    };
    let mut text = *b"0000-00-00T00:00:00.000Z";
    // Each field's digits, right to left, over the template's zeros.
    for (mut value, end) in [
        (year, 4),
        (t.month(), 7),
        (t.day(), 10),
        (t.hour(), 13),
        (t.minute(), 16),
        (t.second(), 19),
        (millis, 23),
    ] {
        let mut at = end;
        while value > 0 {
            at -= 1;
            text[at] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    // Only ASCII digits went into an ASCII template.
    f(std::str::from_utf8(&text).expect("ASCII"))
}

/// `2024-05-01T00:00:00Z` (any offset) or `1714521600000`, up to the end of
/// year 9999 as event times are (`EventTime::MAX_MS`): SQLite compares
/// times as text, and a year of five digits would sort before `9999`.
///
/// Digits below the microsecond round up to it: PostgreSQL binds whole
/// microseconds and would otherwise cut `…20.0000001Z` down to `…20Z`, so
/// that a `from` let in (and a `to` left out) a time at `…20.000Z` that
/// SQLite compares right. Every stored time is a whole millisecond, so the
/// rounded bound keeps the same rows on either side.
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let t = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<i64>()
            .ok()
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
    } else {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .and_then(leap_second_as_the_next)
    }?;
    (t.timestamp_millis() <= EventTime::MAX_MS).then_some(up_to_the_microsecond(t))
}

/// A leap second (`…23:59:60.5Z`, which RFC 3339 allows) as the moment
/// after `…23:59:59.999…`, `…00:00:00.5Z`, as PostgreSQL reads it; SQLite
/// would compare its text, `…23:59:60…`, and select other rows.
fn leap_second_as_the_next(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let nanos = t.nanosecond();
    if nanos < 1_000_000_000 {
        return Some(t);
    }
    t.with_nanosecond(nanos - 1_000_000_000)?
        .checked_add_signed(TimeDelta::seconds(1))
}

/// `t`, or the next whole microsecond after it (`t` itself past the end of
/// year 9999, where no stored time is).
fn up_to_the_microsecond(t: DateTime<Utc>) -> DateTime<Utc> {
    let below = t.timestamp_subsec_nanos() % 1_000;
    if below == 0 {
        return t;
    }
    t.checked_add_signed(TimeDelta::nanoseconds(i64::from(1_000 - below)))
        .filter(|up| up.timestamp_millis() <= EventTime::MAX_MS)
        .unwrap_or(t)
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
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_leap_second_is_the_next_seconds_moment() {
        let at = |text: &str| parse_instant(text).map(|t| t.to_rfc3339());
        assert_eq!(at("2023-11-14T23:59:60.5Z"), at("2023-11-15T00:00:00.5Z"));
        assert_eq!(at("2023-11-14T23:59:60Z"), at("2023-11-15T00:00:00Z"));
        assert_eq!(
            at("9999-12-31T23:59:60Z"),
            None,
            "past the last time we take"
        );
    }

    fn chrono_text(t: DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    #[test]
    fn instants_are_spelled_as_chrono_spells_them_at_the_edges() {
        for ms in [
            0,
            1_499_676_989_909,
            -1,
            EventTime::MAX_MS,
            EventTime::MAX_MS + 1,
            -62_167_219_200_000, // 0000-01-01T00:00:00.000Z
            -62_167_219_200_001, // the millisecond before: year -1
        ] {
            let t = Utc.timestamp_millis_opt(ms).unwrap();
            assert_eq!(format_instant(t), chrono_text(t), "{ms}");
        }
        assert_eq!(
            format_instant(Utc.timestamp_millis_opt(-62_167_219_200_000).unwrap()),
            "0000-01-01T00:00:00.000Z"
        );
        for t in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            assert_eq!(format_instant(t), chrono_text(t));
        }
        let leap = DateTime::from_timestamp(1_483_228_799, 1_500_000_000).unwrap();
        assert_eq!(format_instant(leap), chrono_text(leap));
        assert_eq!(format_instant(leap), "2016-12-31T23:59:60.500Z");
    }

    proptest! {
        #[test]
        fn any_instant_is_spelled_as_chrono_spells_it(
            secs in DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
            nanos in 0u32..1_000_000_000,
        ) {
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            prop_assert_eq!(format_instant(t), chrono_text(t));
        }

        #[test]
        fn any_instant_of_years_0_to_9999_is_spelled_as_chrono_spells_it(
            secs in -62_167_219_200_i64..=253_402_300_799,
            nanos in 0u32..1_000_000_000,
        ) {
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            prop_assert_eq!(format_instant(t), chrono_text(t));
        }
    }

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

    #[test]
    fn digits_below_the_microsecond_round_up_to_it() {
        let at = |text: &str| {
            parse_instant(text)
                .unwrap()
                .to_rfc3339_opts(SecondsFormat::Nanos, true)
        };
        assert_eq!(
            at("2023-11-14T22:13:20.0000001Z"),
            "2023-11-14T22:13:20.000001000Z"
        );
        assert_eq!(
            at("2023-11-14T22:13:20.999999001Z"),
            "2023-11-14T22:13:21.000000000Z"
        );
        assert_eq!(
            at("2023-11-14T22:13:20.000001Z"),
            "2023-11-14T22:13:20.000001000Z"
        );
        assert_eq!(
            at("9999-12-31T23:59:59.9999999Z"),
            "9999-12-31T23:59:59.999999900Z"
        );
    }
}
