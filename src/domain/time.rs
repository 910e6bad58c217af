//! Instants as people read and type them: RFC 3339 UTC with milliseconds
//! out; RFC 3339 or Unix epoch milliseconds in.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// `2017-07-10T08:56:29.909Z`: the one format every answer uses.
pub fn format_instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `2024-05-01T00:00:00Z` (any offset) or `1714521600000`.
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .ok()
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single());
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(parse_instant(""), None);
    }
}
