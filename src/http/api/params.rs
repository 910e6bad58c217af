//! Query-string parameters of the query API, parsed strictly: every bad value
//! is a 400 whose message names the parameter.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use chrono::{DateTime, TimeZone, Utc};
use serde::de::DeserializeOwned;

use crate::domain::time::parse_instant;
use crate::domain::{EventTime, RoomSessionId};
use crate::http::error::ApiError;
use crate::store::query::SessionKey;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 1000;

/// Axum's `Query`, with a bad query string answered as our JSON 400
/// (`ApiError: From<QueryRejection>`) instead of axum's plain text, and a
/// value that is not UTF-8 once percent-decoded refused: `Query` would
/// read `room_id=%FF` as U+FFFD and match a room of that name, where the
/// same bytes in the path are a 400.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if let Some(name) = not_utf8_parameter(parts.uri.query().unwrap_or_default()) {
            return Err(ApiError::invalid_parameter(
                &name,
                "is not UTF-8 once percent-decoded",
            ));
        }
        let Query(value) = Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(value))
    }
}

/// The (lossily decoded) name of the first query parameter whose name or
/// value is not UTF-8 once percent-decoded.
fn not_utf8_parameter(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = urlencoding::decode_binary(name.as_bytes());
        let value = urlencoding::decode_binary(value.as_bytes());
        (std::str::from_utf8(&name).is_err() || std::str::from_utf8(&value).is_err())
            .then(|| String::from_utf8_lossy(&name).into_owned())
    })
}

/// Axum's `Path`, with a bad segment (not UTF-8 once percent-decoded)
/// answered as the JSON `invalid_parameter` every other bad input gets.
#[derive(FromRequestParts)]
#[from_request(via(Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// A room id to look up. A NUL character cannot be in any stored one (JSON
/// text can carry it, PostgreSQL text cannot hold it) and PostgreSQL
/// refuses it as a parameter, so it is a 400 here on both backends.
pub fn room_id(raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw {
        Some(id) if id.contains('\0') => Err(ApiError::invalid_parameter(
            "room_id",
            "must not contain a NUL character",
        )),
        other => Ok(other),
    }
}

/// `limit`: 1 to 1000, default 50.
pub fn limit(raw: Option<&str>) -> Result<i64, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    raw.parse::<i64>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::invalid_parameter(
                "limit",
                format!("must be a whole number from 1 to {MAX_LIMIT}, not {raw:?}"),
            )
        })
}

/// A time: RFC 3339 (`2024-05-01T00:00:00Z`) or Unix epoch milliseconds.
pub fn time(name: &'static str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let parsed = parse_instant(raw).or_else(|| parse_instant(&offset_plus_restored(raw)?));
    parsed.map(Some).ok_or_else(|| {
        ApiError::invalid_parameter(
            name,
            format!(
                "must be an RFC 3339 time (2024-05-01T00:00:00Z) or Unix milliseconds, up to year 9999, not {raw:?}"
            ),
        )
    })
}

/// A positive offset's `+` sent unencoded in a query string arrives as a
/// space (`…T08:00:00 08:00`, form decoding); the `+` put back, or `None`
/// when the text does not end in a space and an `HH:MM` offset.
fn offset_plus_restored(raw: &str) -> Option<String> {
    let (time, offset) = raw.rsplit_once(' ')?;
    let is_offset = offset.len() == 5
        && offset.bytes().enumerate().all(|(i, b)| {
            if i == 2 {
                b == b':'
            } else {
                b.is_ascii_digit()
            }
        });
    is_offset.then(|| format!("{time}+{offset}"))
}

/// `appid`: an unsigned 32-bit integer.
pub fn appid(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    raw.parse::<u32>().map(|a| Some(i64::from(a))).map_err(|_| {
        ApiError::invalid_parameter(
            "appid",
            format!("must be an unsigned 32-bit integer, not {raw:?}"),
        )
    })
}

/// A comma-separated list of integer codes, e.g. `close_reason=1,2`.
pub fn codes(name: &'static str, raw: Option<&str>) -> Result<Vec<i64>, ApiError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(|part| {
            part.trim().parse::<i64>().map_err(|_| {
                ApiError::invalid_parameter(
                    name,
                    format!("must be comma-separated integers, not {raw:?}"),
                )
            })
        })
        .collect()
}

/// `true` or `false`; absent is false.
pub fn flag(name: &'static str, raw: Option<&str>) -> Result<bool, ApiError> {
    match raw {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::invalid_parameter(
            name,
            format!("must be true or false, not {other:?}"),
        )),
    }
}

/// A half-open time range `[from, to)`; either end may be open.
pub type TimeRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// `from` and `to`. An empty or inverted range is not an error: it matches nothing.
pub fn range(from: Option<&str>, to: Option<&str>) -> Result<TimeRange, ApiError> {
    Ok((time("from", from)?, time("to", to)?))
}

/// Lists are fetched with one row more than `limit`: if it came, the page
/// is not the last. Drops it and returns the cursor of the page's last row.
pub fn trim_page<T>(
    rows: &mut Vec<T>,
    limit: i64,
    cursor_of: impl Fn(&T) -> String,
) -> Option<String> {
    let limit = usize::try_from(limit).expect("limit is 1..=1000");
    (rows.len() > limit).then(|| {
        rows.truncate(limit);
        cursor_of(rows.last().expect("limit >= 1"))
    })
}

/// Which time a list of sessions is ordered by, and so what its cursors'
/// times mean: a close time's cursor given to a list by start would cut
/// that list at the wrong time, so each order's cursors are its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionOrder {
    /// `/rooms/closed`: newest close first.
    ByClose,
    /// `/rooms/open` and `/rooms/{room_id}/sessions`: newest start first.
    ByStart,
}

impl SessionOrder {
    fn tag(self) -> &'static str {
        match self {
            SessionOrder::ByClose => "c1:",
            SessionOrder::ByStart => "s1:",
        }
    }
}

/// Opaque cursors: hex of a small text, so clients treat them as tokens.
pub fn encode_session_cursor(order: SessionOrder, key: &SessionKey) -> String {
    hex::encode(format!(
        "{}{}:{}:{}",
        order.tag(),
        key.at.timestamp_micros(),
        key.appid,
        key.room_session_id
    ))
}

pub fn session_cursor(
    order: SessionOrder,
    raw: Option<&str>,
) -> Result<Option<SessionKey>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let decoded = hex::decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let key = decoded.as_deref().and_then(|text| {
        let mut parts = text.strip_prefix(order.tag())?.splitn(3, ':');
        // Only what this API writes into a cursor, a stored session's key:
        // an event time (PostgreSQL refused one far outside 1970–9999, a
        // 500, and the backends compared one past 9999 differently) and a
        // room session id (PostgreSQL refused a NUL in it).
        let at = Utc.timestamp_micros(parts.next()?.parse().ok()?).single()?;
        EventTime::from_millis(at.timestamp_millis())?;
        let appid = parts.next()?.parse().ok()?;
        let room_session_id = parts.next()?.parse::<RoomSessionId>().ok()?.to_string();
        Some(SessionKey {
            at,
            appid,
            room_session_id,
        })
    });
    key.map(Some).ok_or_else(bad_cursor)
}

pub fn encode_id_cursor(id: i64) -> String {
    hex::encode(format!("d1:{id}"))
}

pub fn id_cursor(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    hex::decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|text| text.strip_prefix("d1:")?.parse().ok())
        .map(Some)
        .ok_or_else(bad_cursor)
}

fn bad_cursor() -> ApiError {
    ApiError::invalid_parameter(
        "cursor",
        "is not a cursor this endpoint returned; start again without it",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_1_to_1000_are_refused() {
        assert_eq!(limit(None).unwrap(), 50);
        assert_eq!(limit(Some("1000")).unwrap(), 1000);
        for bad in ["0", "1001", "-1", "x"] {
            assert!(limit(Some(bad)).unwrap_err().message.contains("limit"));
        }
    }

    #[test]
    fn times_are_rfc3339_or_epoch_millis() {
        let a = time("from", Some("2017-07-10T08:56:29.909Z"))
            .unwrap()
            .unwrap();
        let b = time("from", Some("1499676989909")).unwrap().unwrap();
        assert_eq!(a, b);
        assert!(time("from", Some("yesterday")).is_err());
        // An unencoded `+` of an offset arrives as a space.
        let plus = time("from", Some("2017-07-10T16:56:29.909+08:00")).unwrap();
        let spaced = time("from", Some("2017-07-10T16:56:29.909 08:00")).unwrap();
        assert_eq!((plus, spaced), (Some(a), Some(a)));
        assert!(time("from", Some("2017-07-10T16:56:29.909 0800")).is_err());
        assert!(time("from", Some("2017-07-10 08:00")).is_err());
        assert!(range(Some("2"), Some("1")).is_ok());
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let key = SessionKey {
            at: Utc.timestamp_millis_opt(1_499_676_989_909).unwrap(),
            appid: 7,
            room_session_id: "18446744073709551615".into(),
        };
        for order in [SessionOrder::ByClose, SessionOrder::ByStart] {
            let cursor = encode_session_cursor(order, &key);
            assert_eq!(
                session_cursor(order, Some(&cursor)).unwrap(),
                Some(key.clone())
            );
            assert!(id_cursor(Some(&cursor)).is_err());
        }
        let by_close = encode_session_cursor(SessionOrder::ByClose, &key);
        assert!(session_cursor(SessionOrder::ByStart, Some(&by_close)).is_err());
        let by_start = encode_session_cursor(SessionOrder::ByStart, &key);
        assert!(session_cursor(SessionOrder::ByClose, Some(&by_start)).is_err());
        assert_eq!(id_cursor(Some(&encode_id_cursor(42))).unwrap(), Some(42));
        assert!(session_cursor(SessionOrder::ByStart, Some("zz")).is_err());
    }

    #[test]
    fn a_parameter_not_utf8_once_decoded_is_named() {
        assert_eq!(
            not_utf8_parameter("limit=2&room_id=%FF"),
            Some("room_id".into())
        );
        assert_eq!(not_utf8_parameter("%FF=1").as_deref(), Some("\u{FFFD}"));
        assert_eq!(not_utf8_parameter("room_id=%EF%BF%BD&from=1+2"), None);
        assert_eq!(not_utf8_parameter("room_id=%E5%BC%A0"), None);
        assert_eq!(not_utf8_parameter(""), None);
    }

    #[test]
    fn codes_and_flags() {
        assert_eq!(codes("close_reason", Some("1, 2")).unwrap(), vec![1, 2]);
        assert!(codes("close_reason", Some("1,x")).is_err());
        assert!(flag("include_admins", Some("yes")).is_err());
    }
}
