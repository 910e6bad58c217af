//! Room lists: closed rooms (JSON or CSV), one room's history, open rooms.

use axum::Json;
use axum::extract::State;
use axum::http::header::VARY;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::csv_export;
use super::params::{self, ApiPath, ApiQuery, SessionOrder};
use super::views::{Page, SessionView};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::query::{ClosedQuery, ListedSession, SessionKey, SessionListQuery};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClosedParams {
    /// Only this app.
    #[param(value_type = Option<i64>, minimum = 0.0, maximum = 4294967295.0)]
    pub appid: Option<String>,
    /// Only this room id.
    pub room_id: Option<String>,
    /// Comma-separated close reason codes, e.g. `1,2`.
    #[param(pattern = r"^-?[0-9]{1,18}(,-?[0-9]{1,18})*$")]
    pub close_reason: Option<String>,
    /// Closed at or after: RFC 3339 or Unix milliseconds, up to year 9999.
    #[param(
        pattern = r"^([0-9]{1,16}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))$"
    )]
    pub from: Option<String>,
    /// Closed before (exclusive).
    #[param(
        pattern = r"^([0-9]{1,16}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))$"
    )]
    pub to: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9a-f]{2,200}$")]
    pub cursor: Option<String>,
    /// `json` (default) or `csv`; `Accept: text/csv` also selects CSV.
    #[param(pattern = "^(json|csv)$")]
    pub format: Option<String>,
    /// Count admin users (role 4) in `unique_users`.
    #[param(value_type = Option<bool>)]
    pub include_admins: Option<String>,
}

/// Closed room sessions, newest close first.
#[utoipa::path(get, path = "/api/v1/rooms/closed", tag = "rooms", params(ClosedParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of closed sessions, or the same columns as CSV",
               content((Page<SessionView> = "application/json"), (String = "text/csv")),
               headers(("X-Next-Cursor" = String, description = "CSV only: the cursor of the next page, absent on the last"))),
               (status = 400, description = "A parameter is invalid", body = crate::http::error::ErrorBody),
               (status = 401, description = "Missing or wrong token", body = crate::http::error::ErrorBody)))]
pub async fn list_closed(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<ClosedParams>,
) -> Result<Response, ApiError> {
    let (from, to) = params::range(p.from.as_deref(), p.to.as_deref())?;
    let limit = params::limit(p.limit.as_deref())?;
    let query = ClosedQuery {
        appid: params::appid(p.appid.as_deref())?,
        room_id: params::room_id(p.room_id.clone())?,
        close_reasons: params::codes("close_reason", p.close_reason.as_deref())?,
        from,
        to,
        after: params::session_cursor(SessionOrder::ByClose, p.cursor.as_deref())?,
        limit: limit + 1,
        include_admins: params::flag("include_admins", p.include_admins.as_deref())?,
    };
    let mut response = if csv_export::wanted(p.format.as_deref(), &headers)? {
        let whole = p.limit.is_none() && p.cursor.is_none();
        csv_export::closed(state.store.clone(), query, limit, whole).await?
    } else {
        let rows = state.store.list_closed(&query).await?;
        Json(page(rows, limit, SessionOrder::ByClose)).into_response()
    };
    // The same URL answers CSV or JSON by its `Accept`: a cache must key on it.
    response
        .headers_mut()
        .insert(VARY, HeaderValue::from_static("accept"));
    Ok(response)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionListParams {
    /// Only this app.
    #[param(value_type = Option<i64>, minimum = 0.0, maximum = 4294967295.0)]
    pub appid: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9a-f]{2,200}$")]
    pub cursor: Option<String>,
    /// Count admin users (role 4) in `unique_users`.
    #[param(value_type = Option<bool>)]
    pub include_admins: Option<String>,
}

impl SessionListParams {
    fn query(&self, room_id: Option<String>) -> Result<(SessionListQuery, i64), ApiError> {
        let limit = params::limit(self.limit.as_deref())?;
        let query = SessionListQuery {
            appid: params::appid(self.appid.as_deref())?,
            room_id,
            after: params::session_cursor(SessionOrder::ByStart, self.cursor.as_deref())?,
            limit: limit + 1,
            include_admins: params::flag("include_admins", self.include_admins.as_deref())?,
        };
        Ok((query, limit))
    }
}

/// Every lifecycle of one room id, newest first, with its state.
#[utoipa::path(get, path = "/api/v1/rooms/{room_id}/sessions", tag = "rooms",
    params(("room_id" = String, Path, description = "The room id"), SessionListParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of sessions", body = Page<SessionView>),
               (status = 400, description = "A parameter is invalid", body = crate::http::error::ErrorBody),
               (status = 401, description = "Missing or wrong token", body = crate::http::error::ErrorBody)))]
pub async fn room_history(
    State(state): State<AppState>,
    ApiPath(room_id): ApiPath<String>,
    ApiQuery(p): ApiQuery<SessionListParams>,
) -> Result<Json<Page<SessionView>>, ApiError> {
    let (query, limit) = p.query(params::room_id(Some(room_id))?)?;
    let rows = state.store.room_history(&query).await?;
    Ok(Json(page(rows, limit, SessionOrder::ByStart)))
}

/// Sessions seen (created or logged into) and not closed nor superseded.
#[utoipa::path(get, path = "/api/v1/rooms/open", tag = "rooms", params(SessionListParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of open sessions", body = Page<SessionView>),
               (status = 400, description = "A parameter is invalid", body = crate::http::error::ErrorBody),
               (status = 401, description = "Missing or wrong token", body = crate::http::error::ErrorBody)))]
pub async fn list_open(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<SessionListParams>,
) -> Result<Json<Page<SessionView>>, ApiError> {
    let (query, limit) = p.query(None)?;
    let rows = state.store.open_sessions(&query).await?;
    Ok(Json(page(rows, limit, SessionOrder::ByStart)))
}

/// Trims the look-ahead row (fetched as `limit + 1`) into a cursor.
pub fn page(mut rows: Vec<ListedSession>, limit: i64, order: SessionOrder) -> Page<SessionView> {
    let next_cursor = params::trim_page(&mut rows, limit, |row| cursor(order, row));
    Page {
        items: rows.into_iter().map(SessionView::from).collect(),
        next_cursor,
    }
}

/// The cursor of the page after `row` in a list of that order.
pub fn cursor(order: SessionOrder, row: &ListedSession) -> String {
    params::encode_session_cursor(order, &key(order, row))
}

/// A listed session's place in a list of that order.
pub fn key(order: SessionOrder, row: &ListedSession) -> SessionKey {
    let s = &row.session;
    SessionKey {
        at: match order {
            SessionOrder::ByClose => s.closed_at.expect("closed sessions have closed_at"),
            SessionOrder::ByStart => s.started_at,
        },
        appid: s.appid,
        room_session_id: s.room_session_id.clone(),
    }
}
