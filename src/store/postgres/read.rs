//! The query API's statements (PostgreSQL). Every list is keyset-paginated on
//! an index whose order matches its ORDER BY; see docs/queries.md.

use sqlx::PgPool;

use crate::store::StoreError;
use crate::store::query::{
    Bucket, ClosedQuery, ParticipantRow, ReasonCount, SessionListQuery, SessionRow, StatsQuery,
    TimelineRow,
};

/// A session row with its derived `state` and `unique_users`. `$1` is
/// `include_admins`: admins are users any of whose intervals has role 4.
macro_rules! session_select {
    () => {
        "SELECT s.appid, s.room_id, s.room_session_id, s.created_at, s.creator, s.closed_at,
                s.close_reason, s.started_at,
                CASE WHEN s.closed_at IS NOT NULL THEN 'closed'
                     WHEN EXISTS (SELECT 1 FROM room_sessions l
                                  WHERE l.appid = s.appid AND l.room_id = s.room_id
                                    AND l.started_at > s.started_at) THEN 'superseded'
                     ELSE 'open' END AS state,
                (SELECT count(*) FROM (
                    SELECT p.user_account FROM presence_intervals p
                    WHERE p.appid = s.appid AND p.room_session_id = s.room_session_id
                    GROUP BY p.user_account
                    HAVING $1::boolean OR max(CASE WHEN p.user_role = 4 THEN 1 ELSE 0 END) = 0
                ) u) AS unique_users
         FROM room_sessions s "
    };
}

pub async fn list_closed(pool: &PgPool, q: &ClosedQuery) -> Result<Vec<SessionRow>, StoreError> {
    let after = q.after.as_ref();
    Ok(sqlx::query_as(concat!(
        session_select!(),
        "WHERE s.closed_at IS NOT NULL
           AND ($2::bigint IS NULL OR s.appid = $2)
           AND ($3::text IS NULL OR s.room_id = $3)
           AND (cardinality($4::bigint[]) = 0 OR s.close_reason = ANY($4))
           AND ($5::timestamptz IS NULL OR s.closed_at >= $5)
           AND ($6::timestamptz IS NULL OR s.closed_at < $6)
           AND ($7::timestamptz IS NULL OR (s.closed_at, s.appid, s.room_session_id) < ($7, $8, $9))
         ORDER BY s.closed_at DESC, s.appid DESC, s.room_session_id DESC
         LIMIT $10"
    ))
    .bind(q.include_admins)
    .bind(q.appid)
    .bind(&q.room_id)
    .bind(&q.close_reasons)
    .bind(q.from)
    .bind(q.to)
    .bind(after.map(|k| k.at))
    .bind(after.map(|k| k.appid))
    .bind(after.map(|k| k.room_session_id.as_str()))
    .bind(q.limit)
    .fetch_all(pool)
    .await?)
}

pub async fn room_history(
    pool: &PgPool,
    q: &SessionListQuery,
) -> Result<Vec<SessionRow>, StoreError> {
    let after = q.after.as_ref();
    Ok(sqlx::query_as(concat!(
        session_select!(),
        "WHERE s.room_id = $2
           AND ($3::bigint IS NULL OR s.appid = $3)
           AND ($4::timestamptz IS NULL OR (s.started_at, s.appid, s.room_session_id) < ($4, $5, $6))
         ORDER BY s.started_at DESC, s.appid DESC, s.room_session_id DESC
         LIMIT $7"
    ))
    .bind(q.include_admins)
    .bind(&q.room_id)
    .bind(q.appid)
    .bind(after.map(|k| k.at))
    .bind(after.map(|k| k.appid))
    .bind(after.map(|k| k.room_session_id.as_str()))
    .bind(q.limit)
    .fetch_all(pool)
    .await?)
}

pub async fn open_sessions(
    pool: &PgPool,
    q: &SessionListQuery,
) -> Result<Vec<SessionRow>, StoreError> {
    let after = q.after.as_ref();
    Ok(sqlx::query_as(concat!(
        session_select!(),
        "WHERE s.closed_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM room_sessions l
                           WHERE l.appid = s.appid AND l.room_id = s.room_id AND l.started_at > s.started_at)
           AND ($2::bigint IS NULL OR s.appid = $2)
           AND ($3::timestamptz IS NULL OR (s.started_at, s.appid, s.room_session_id) < ($3, $4, $5))
         ORDER BY s.started_at DESC, s.appid DESC, s.room_session_id DESC
         LIMIT $6"
    ))
    .bind(q.include_admins)
    .bind(q.appid)
    .bind(after.map(|k| k.at))
    .bind(after.map(|k| k.appid))
    .bind(after.map(|k| k.room_session_id.as_str()))
    .bind(q.limit)
    .fetch_all(pool)
    .await?)
}

pub async fn find_sessions(
    pool: &PgPool,
    room_session_id: &str,
    appid: Option<i64>,
    include_admins: bool,
) -> Result<Vec<SessionRow>, StoreError> {
    Ok(sqlx::query_as(concat!(
        session_select!(),
        "WHERE s.room_session_id = $2 AND ($3::bigint IS NULL OR s.appid = $3) ORDER BY s.appid"
    ))
    .bind(include_admins)
    .bind(room_session_id)
    .bind(appid)
    .fetch_all(pool)
    .await?)
}

pub async fn close_reason_counts(
    pool: &PgPool,
    q: &StatsQuery,
) -> Result<Vec<ReasonCount>, StoreError> {
    let bucket = match q.bucket {
        Bucket::None => None,
        Bucket::Hour => Some("hour"),
        Bucket::Day => Some("day"),
    };
    Ok(sqlx::query_as(
        "SELECT CASE WHEN $1::text IS NULL THEN NULL ELSE date_trunc($1, closed_at, 'UTC') END AS bucket_start,
                close_reason, count(*) AS count
         FROM room_sessions
         WHERE closed_at IS NOT NULL
           AND ($2::bigint IS NULL OR appid = $2)
           AND ($3::text IS NULL OR room_id = $3)
           AND ($4::timestamptz IS NULL OR closed_at >= $4)
           AND ($5::timestamptz IS NULL OR closed_at < $5)
         GROUP BY 1, 2
         ORDER BY 1, 2",
    )
    .bind(bucket)
    .bind(q.appid)
    .bind(&q.room_id)
    .bind(q.from)
    .bind(q.to)
    .fetch_all(pool)
    .await?)
}

pub async fn participants(
    pool: &PgPool,
    appid: i64,
    room_session_id: &str,
) -> Result<Vec<ParticipantRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT user_account, session_id, user_nickname, user_role, login_at, logout_at, logout_reason, duration_ms
         FROM presence_intervals
         WHERE appid = $1 AND room_session_id = $2
         ORDER BY COALESCE(login_at, logout_at), user_account, session_id",
    )
    .bind(appid)
    .bind(room_session_id)
    .fetch_all(pool)
    .await?)
}

pub async fn timeline(
    pool: &PgPool,
    appid: i64,
    room_session_id: &str,
) -> Result<Vec<TimelineRow>, StoreError> {
    // At equal times: create first, then logouts before logins, close last.
    Ok(sqlx::query_as(
        "SELECT event, event_at, received_at, user_account, session_id, user_role, reason
         FROM events
         WHERE appid = $1 AND room_session_id = $2
         ORDER BY event_at,
                  CASE event WHEN 'room_create' THEN 0 WHEN 'room_logout' THEN 1 WHEN 'room_login' THEN 2 ELSE 3 END,
                  user_account, session_id",
    )
    .bind(appid)
    .bind(room_session_id)
    .fetch_all(pool)
    .await?)
}
