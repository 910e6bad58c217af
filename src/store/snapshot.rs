//! `Store::app_snapshot`: everything stored for one appid, read the same
//! way on both backends (the columns are the ones every backend stores alike).

use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, Type};

use super::model::{AppSnapshot, EventRecord, IntervalRecord, SessionRecord};

const EVENTS: &str =
    "SELECT event, room_session_id, event_at, user_account, session_id, room_id, user_nickname,
        user_role, login_at, reason, creator, room_name, content_sha256
 FROM events WHERE appid = $1";

const SESSIONS: &str =
    "SELECT room_session_id, room_id, created_at, creator, closed_at, close_reason,
        first_event_at, started_at
 FROM room_sessions WHERE appid = $1";

const INTERVALS: &str =
    "SELECT room_session_id, user_account, session_id, login_at, logout_at, room_id,
        user_nickname, user_role, logout_reason, duration_ms
 FROM presence_intervals WHERE appid = $1";

/// The three tables' rows of `appid`, each list in its canonical order.
/// The raw sqlx error, so a backend can tell a dead connection from the rest
/// (PostgreSQL's `read` runs it again on another).
pub async fn app_snapshot<DB>(pool: &Pool<DB>, appid: u32) -> Result<AppSnapshot, sqlx::Error>
where
    DB: Database,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> EventRecord: FromRow<'r, DB::Row>,
    for<'r> SessionRecord: FromRow<'r, DB::Row>,
    for<'r> IntervalRecord: FromRow<'r, DB::Row>,
{
    let appid = i64::from(appid);
    let events = sqlx::query_as(EVENTS).bind(appid).fetch_all(pool).await?;
    let sessions = sqlx::query_as(SESSIONS).bind(appid).fetch_all(pool).await?;
    let intervals = sqlx::query_as(INTERVALS)
        .bind(appid)
        .fetch_all(pool)
        .await?;
    Ok(AppSnapshot {
        events,
        sessions,
        intervals,
    }
    .sorted())
}
