//! CSV for closed rooms: the JSON item's columns, a header row, and either
//! one page (with `X-Next-Cursor`) or every matching row, streamed page by
//! page so memory stays flat however many rows match.

use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::stream;

use super::params::{SessionOrder, trim_page};
use super::rooms::{cursor, key};
use super::views::{SessionView, Timestamp};
use crate::http::error::ApiError;
use crate::store::Store;
use crate::store::query::{ClosedQuery, ListedSession};

const STREAM_PAGE: usize = 1000;
const COLUMNS: [&str; 9] = [
    "appid",
    "room_id",
    "room_session_id",
    "close_reason",
    "close_reason_name",
    "closed_at",
    "created_at",
    "duration_ms",
    "unique_users",
];

/// `format=csv`, or no `format` and an `Accept` that names `text/csv`.
pub fn wanted(format: Option<&str>, headers: &HeaderMap) -> Result<bool, ApiError> {
    match format {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(ApiError::invalid_parameter(
            "format",
            format!("must be json or csv, not {other:?}"),
        )),
        None => Ok(headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(accepts_csv)),
    }
}

/// Whether an Accept header lists `text/csv` with a quality above zero
/// (`text/csv;q=0` means "not CSV").
fn accepts_csv(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let is_csv = parts
            .next()
            .is_some_and(|media| media.eq_ignore_ascii_case("text/csv"));
        let quality = parts
            .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        is_csv && quality > 0.0
    })
}

/// `query.limit` is the page size plus one (the look-ahead row).
pub async fn closed(
    store: Arc<dyn Store>,
    mut query: ClosedQuery,
    limit: i64,
    whole: bool,
) -> Result<Response, ApiError> {
    if !whole {
        let mut rows = store.list_closed(&query).await?;
        let next = trim_page(&mut rows, limit, |row| cursor(SessionOrder::ByClose, row));
        let mut response = csv_response(Body::from(render(&rows, true)));
        if let Some(cursor) = next {
            response.headers_mut().insert(
                "x-next-cursor",
                HeaderValue::from_str(&cursor).expect("hex"),
            );
        }
        return Ok(response);
    }
    // The first page is read before answering, so a database failure is a
    // clean 503 rather than a truncated 200.
    query.limit = i64::try_from(STREAM_PAGE + 1).expect("small");
    let first = store.list_closed(&query).await?;
    let pages = stream::unfold(Some((first, store, query, true)), |state| async move {
        let (mut rows, store, mut query, header) = state?;
        let more = rows.len() > STREAM_PAGE;
        rows.truncate(STREAM_PAGE);
        let chunk = render(&rows, header);
        if !more {
            return Some((Ok::<_, std::io::Error>(chunk), None));
        }
        query.after = rows.last().map(|row| key(SessionOrder::ByClose, row));
        match store.list_closed(&query).await {
            Ok(next) => Some((Ok(chunk), Some((next, store, query, false)))),
            Err(e) => {
                tracing::error!(error = %e, "CSV export stopped: the database failed mid-stream");
                Some((Err(std::io::Error::other(e)), None))
            }
        }
    });
    Ok(csv_response(Body::from_stream(pages)))
}

fn csv_response(body: Body) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    response
}

fn render(rows: &[ListedSession], header: bool) -> Vec<u8> {
    let mut out = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 96 + 128));
    if header {
        out.write_record(COLUMNS).expect("writing to memory");
    }
    for row in rows.iter().cloned() {
        let v = SessionView::from(row);
        let text = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
        let time = |t: Option<Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
        out.write_record([
            v.appid.to_string(),
            v.room_id,
            v.room_session_id,
            text(v.close_reason),
            v.close_reason_name.unwrap_or_default().to_owned(),
            time(v.closed_at),
            time(v.created_at),
            text(v.duration_ms),
            v.unique_users.to_string(),
        ])
        .expect("writing to memory");
    }
    out.into_inner().expect("writing to memory")
}

#[cfg(test)]
mod tests {
    use super::accepts_csv;

    #[test]
    fn csv_is_wanted_when_accept_lists_it_above_quality_zero() {
        for (accept, csv) in [
            ("text/csv", true),
            ("application/json, text/csv;q=0.5", true),
            ("Text/CSV", true),
            ("application/json;q=1, text/csv;q=0", false),
            ("text/csv; q=0.0", false),
            ("application/json", false),
            ("*/*", false),
        ] {
            assert_eq!(accepts_csv(accept), csv, "{accept:?}");
        }
    }
}
