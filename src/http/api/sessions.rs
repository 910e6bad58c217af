//! The correlation view: one room session with everyone who was in it.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::IntoParams;

use super::params::{self, ApiPath, ApiQuery};
use super::views::{ParticipantView, SessionDetail, SessionView, TimelineEntry};
use crate::domain::ADMIN_ROLE;
use crate::domain::RoomSessionId;
use crate::domain::occupancy::{Stay, peak_concurrent_users};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::StoreError;
use crate::store::query::ParticipantRow;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetailParams {
    /// Which app's session, when the id is known under several.
    #[param(value_type = Option<i64>, minimum = 0.0, maximum = 4294967295.0)]
    pub appid: Option<String>,
    /// Count admin users (role 4) in `unique_users` and `peak_concurrent_users`.
    #[param(value_type = Option<bool>)]
    pub include_admins: Option<String>,
}

/// A session joined with every login and logout whose `room_seq` equals it.
#[utoipa::path(get, path = "/api/v1/sessions/{room_session_id}", tag = "sessions",
    params(("room_session_id" = String, Path, pattern = "^[0-9]{1,20}$", description = "Decimal room_session_id (= room_seq)"), DetailParams),
    security(("bearer" = [])),
    responses((status = 200, description = "The session", body = SessionDetail),
               (status = 400, description = "A parameter is invalid", body = crate::http::error::ErrorBody),
               (status = 401, description = "Missing or wrong token", body = crate::http::error::ErrorBody),
               (status = 404, description = "Unknown session", body = crate::http::error::ErrorBody),
               (status = 409, description = "Known under several appids; add `appid`", body = crate::http::error::ErrorBody)))]
pub async fn session_detail(
    State(state): State<AppState>,
    ApiPath(raw_id): ApiPath<String>,
    ApiQuery(p): ApiQuery<DetailParams>,
) -> Result<Json<SessionDetail>, ApiError> {
    let id: RoomSessionId = raw_id.parse().map_err(|_| {
        ApiError::invalid_parameter(
            "room_session_id",
            format!("must be an unsigned 64-bit integer, not {raw_id:?}"),
        )
    })?;
    let id = id.to_string();
    let appid = params::appid(p.appid.as_deref())?;
    let include_admins = params::flag("include_admins", p.include_admins.as_deref())?;

    let mut found = state.store.find_sessions(&id, appid).await?;
    let session = match found.len() {
        0 => {
            return Err(ApiError::not_found(format!(
                "no room session {id} is known"
            )));
        }
        1 => found.remove(0),
        _ => {
            let appids: Vec<String> = found.iter().map(|s| s.appid.to_string()).collect();
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "ambiguous_room_session_id",
                format!(
                    "room session {id} is known under appids {}; add ?appid=",
                    appids.join(", ")
                ),
            ));
        }
    };
    // Each half of the answer on a task of its own: fetching, decoding and
    // writing 1,000 participants and 2,002 events as JSON is most of this
    // request's CPU, and in one task it ran on one thread, turn about.
    let appid = session.appid;
    let start_ms = session.started_at.timestamp_millis();
    let end_ms = session
        .closed_at
        .unwrap_or_else(Utc::now)
        .timestamp_millis();
    let ((unique_users, peak, participants), timeline) = tokio::try_join!(
        on_own_task({
            let (store, id) = (state.store.clone(), id.clone());
            async move {
                let rows = store.participants(appid, &id).await?;
                let counted = Counted::new(&rows, include_admins);
                let unique_users = counted.unique_users();
                let peak = counted.peak(start_ms, end_ms);
                Ok((unique_users, peak, json_array(rows, ParticipantView::from)))
            }
        }),
        on_own_task({
            let (store, id) = (state.store.clone(), id.clone());
            async move {
                let rows = store.timeline(appid, &id).await?;
                Ok(json_array(rows, TimelineEntry::from))
            }
        }),
    )?;
    Ok(Json(SessionDetail {
        session: SessionView::new(session, unique_users),
        peak_concurrent_users: peak,
        participants,
        timeline,
    }))
}

/// `rows` as views, written as one JSON array.
fn json_array<R, V: Serialize>(rows: Vec<R>, view: impl Fn(R) -> V) -> Box<RawValue> {
    let views: Vec<V> = rows.into_iter().map(view).collect();
    // Views are strings, integers and nulls: writing them cannot fail.
    serde_json::value::to_raw_value(&views).expect("views serialize to JSON")
}

/// Runs `work` (a fetch and what follows it) as a task of its own, so it
/// can use another core. A panic in it goes on as a panic here (the
/// catch-panic layer answers 500). If the client goes away the task still
/// finishes: one query's worth of work.
async fn on_own_task<T: Send + 'static>(
    work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::spawn(work).await {
        Ok(result) => Ok(result?),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled: only when the runtime shuts down.
        Err(_) => Err(ApiError::internal()),
    }
}

/// A session's intervals as its answer counts them: admins (users any of
/// whose intervals carries role 4) left out unless `include_admins`, the
/// rule the lists' `unique_users` follow in SQL (`read_sql::session_select`).
/// Counted here from the rows the answer shows, so the two always agree.
struct Counted<'a> {
    intervals: Vec<&'a ParticipantRow>,
}

impl<'a> Counted<'a> {
    fn new(participants: &'a [ParticipantRow], include_admins: bool) -> Counted<'a> {
        let admins: HashSet<&str> = participants
            .iter()
            .filter(|p| !include_admins && p.user_role == Some(ADMIN_ROLE))
            .map(|p| p.user_account.as_str())
            .collect();
        Counted {
            intervals: participants
                .iter()
                .filter(|p| !admins.contains(p.user_account.as_str()))
                .collect(),
        }
    }

    fn unique_users(&self) -> i64 {
        let users: HashSet<&str> = self
            .intervals
            .iter()
            .map(|p| p.user_account.as_str())
            .collect();
        i64::try_from(users.len()).unwrap_or(i64::MAX)
    }

    fn peak(&self, start_ms: i64, end_ms: i64) -> i64 {
        let stays: Vec<Stay<'_>> = self
            .intervals
            .iter()
            .map(|p| Stay {
                user: &p.user_account,
                from_ms: p.login_at.map(|t| t.timestamp_millis()),
                until_ms: p.logout_at.map(|t| t.timestamp_millis()),
            })
            .collect();
        peak_concurrent_users(&stays, start_ms, end_ms)
    }
}
