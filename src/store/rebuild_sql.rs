//! The rebuild's SQL, shared by both backends except where noted.

/// The derived tables, each with the columns that make up its content (no
/// surrogate ids, which a replay renumbers).
pub const TABLES: [(&str, &str); 4] = [
    (
        "events",
        "event, appid, room_id, room_session_id, event_at, received_at, user_account, session_id,
         user_nickname, user_role, login_at, reason, creator, room_name, content_sha256",
    ),
    (
        "room_sessions",
        "appid, room_session_id, room_id, created_at, creator, closed_at, close_reason, first_event_at, started_at",
    ),
    (
        "presence_intervals",
        "appid, room_session_id, user_account, session_id, room_id, user_nickname, user_role, login_at,
         logout_at, logout_reason, duration_ms",
    ),
    ("close_reason_hourly", "appid, hour_start, close_reason, closed_count"),
];

/// Copies one table aside (`{suffix}` is PostgreSQL's `ON COMMIT DROP`).
pub fn set_aside(table: &str, columns: &str, suffix: &str) -> String {
    format!("CREATE TEMP TABLE rebuild_old_{table} {suffix} AS SELECT {columns} FROM {table}")
}

/// Drops a table's copy where it outlives the transaction (SQLite has no
/// `ON COMMIT DROP`).
pub fn drop_set_aside(table: &str) -> String {
    format!("DROP TABLE temp.rebuild_old_{table}")
}

/// Rows only in the rebuilt table, and rows only in the copy.
pub fn diff(table: &str, columns: &str) -> String {
    format!(
        "SELECT (SELECT count(*) FROM (SELECT {columns} FROM {table} EXCEPT SELECT {columns} FROM rebuild_old_{table}) a),
                (SELECT count(*) FROM (SELECT {columns} FROM rebuild_old_{table} EXCEPT SELECT {columns} FROM {table}) b)"
    )
}

/// Child tables first.
pub const CLEAR: [&str; 4] = [
    "DELETE FROM presence_intervals",
    "DELETE FROM close_reason_hourly",
    "DELETE FROM room_sessions",
    "DELETE FROM events",
];

/// Stored events whose `stored` delivery is gone (`ARCHIVE_RETENTION`,
/// `purge --older-than`): a replay of the archive cannot make them again,
/// or makes them from a later copy that survived (a duplicate, with another
/// receive time; a conflict, with other content).
/// A set difference, each side read once: there is no index on
/// `deliveries.event_id`, and for a `NOT EXISTS` or a `LEFT JOIN` SQLite
/// read every stored delivery once per event (through the outcome index),
/// so the check took minutes at 16,800 events while `rebuild` held the
/// write lock, longer than ZEGO retries a callback. `EXCEPT` sorts the
/// two sides once (PostgreSQL hashes or sorts them); events' ids are never
/// null, so the deliveries without an event take nothing away.
pub const EVENTS_WITHOUT_DELIVERY: &str = "SELECT count(*) FROM (
     SELECT id FROM events
     EXCEPT
     SELECT event_id FROM deliveries WHERE outcome = 'stored') AS missing";

pub const ARCHIVED_AFTER: &str = "SELECT * FROM deliveries WHERE id > $1 ORDER BY id LIMIT $2";

pub const SET_RESULT: &str =
    "UPDATE deliveries SET outcome = $2, reason = $3, detail = $4, event_id = $5 WHERE id = $1";

// The statements both backends run as they are, written once, generic over
// the sqlx backend; `RebuildTx` impls call them on their open transaction.

use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use super::StoreError;
use super::merge::outcome_reason;
use super::model::DeliveryRecord;
use super::rebuild::{RebuildReport, TableChange};
use crate::domain::Outcome;

pub async fn clear_derived<DB>(conn: &mut DB::Connection) -> Result<(), StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    for statement in CLEAR {
        sqlx::query::<DB>(statement).execute(&mut *conn).await?;
    }
    Ok(())
}

pub async fn events_without_delivery<DB>(conn: &mut DB::Connection) -> Result<i64, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
{
    let (count,) = sqlx::query_as::<DB, (i64,)>(EVENTS_WITHOUT_DELIVERY)
        .fetch_one(&mut *conn)
        .await?;
    Ok(count)
}

pub async fn archived_after<DB>(
    conn: &mut DB::Connection,
    after: i64,
    limit: i64,
) -> Result<Vec<DeliveryRecord>, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> DeliveryRecord: FromRow<'r, DB::Row>,
{
    Ok(sqlx::query_as::<DB, DeliveryRecord>(ARCHIVED_AFTER)
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?)
}

pub async fn set_delivery_result<DB>(
    conn: &mut DB::Connection,
    id: i64,
    outcome: &Outcome,
    event_id: Option<i64>,
) -> Result<(), StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
{
    let (reason, detail) = outcome_reason(outcome);
    sqlx::query::<DB>(SET_RESULT)
        .bind(id)
        .bind(outcome.as_str())
        .bind(reason)
        .bind(detail)
        .bind(event_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn compare_with_set_aside<DB>(
    conn: &mut DB::Connection,
    report: &mut RebuildReport,
) -> Result<(), StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> (i64, i64): FromRow<'r, DB::Row>,
{
    let changes = [
        &mut report.events,
        &mut report.sessions,
        &mut report.intervals,
        &mut report.close_counts,
    ];
    for ((table, columns), change) in TABLES.into_iter().zip(changes) {
        let sql = diff(table, columns);
        let (added, removed) = sqlx::query_as::<DB, (i64, i64)>(&sql)
            .fetch_one(&mut *conn)
            .await?;
        *change = TableChange { added, removed };
    }
    Ok(())
}
