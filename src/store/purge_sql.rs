//! Retention statements, the same text on both backends. Each deletes at
//! most one batch, so a purge never holds locks long enough to stall ingest.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use crate::store::StoreError;

/// `$1` cut-off, `$2` batch size.
pub const DELIVERIES: &str = "DELETE FROM deliveries WHERE id IN
    (SELECT id FROM deliveries WHERE received_at < $1 ORDER BY id LIMIT $2)";

/// `$1` cut-off, `$2` batch size.
pub const REPLAY_GUARD: &str =
    "DELETE FROM replay_guard WHERE (sent_timestamp, nonce, signature) IN
    (SELECT sent_timestamp, nonce, signature FROM replay_guard WHERE first_seen_at < $1 LIMIT $2)";

/// Whether session `s` is expired at the cut-off `$1`: closed (or, never
/// closed, started) before it, and none of its events at or after it. A
/// macro, so that each statement that asks it is one constant (`concat!`):
/// the choice below, and the check again once locked
/// (`postgres::lock_still_expired`).
macro_rules! is_expired {
    () => {
        "(s.closed_at < $1 OR (s.closed_at IS NULL AND s.started_at < $1))
      AND NOT EXISTS (SELECT 1 FROM events e
                      WHERE e.appid = s.appid AND e.room_session_id = s.room_session_id AND e.event_at >= $1)"
    };
}
pub(crate) use is_expired;

/// At most `$2` sessions `is_expired!` at `$1`. Found through the closed
/// and the unclosed partial indexes.
const EXPIRED_SESSIONS: &str = concat!(
    "SELECT s.appid, s.room_session_id, s.closed_at, s.close_reason
    FROM room_sessions s
    WHERE ",
    is_expired!(),
    "
    LIMIT $2"
);

/// `$1` appid, `$2` room_session_id: one per table, the session row first
/// (ingest's lock order).
const DELETE_SESSION: [&str; 3] = [
    "DELETE FROM room_sessions WHERE appid = $1 AND room_session_id = $2",
    "DELETE FROM presence_intervals WHERE appid = $1 AND room_session_id = $2",
    "DELETE FROM events WHERE appid = $1 AND room_session_id = $2",
];

/// Takes purged closed sessions out of the rollup: `$1` appid, `$2` hour,
/// `$3` reason, `$4` how many.
const UNCOUNT_CLOSES: [&str; 2] = [
    "UPDATE close_reason_hourly SET closed_count = closed_count - $4
     WHERE appid = $1 AND hour_start = $2 AND close_reason = $3",
    "DELETE FROM close_reason_hourly
     WHERE appid = $1 AND hour_start = $2 AND close_reason = $3 AND closed_count <= 0",
];

/// At most `batch` sessions none of whose events happened at or after
/// `before` (`EXPIRED_SESSIONS`).
pub async fn expired_sessions<DB>(
    conn: &mut DB::Connection,
    before: DateTime<Utc>,
    batch: i64,
) -> Result<Vec<ExpiredSession>, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'r> ExpiredSession: FromRow<'r, DB::Row>,
{
    Ok(sqlx::query_as::<DB, ExpiredSession>(EXPIRED_SESSIONS)
        .bind(before)
        .bind(batch)
        .fetch_all(&mut *conn)
        .await?)
}

/// Deletes these sessions with their events and presence, and takes their
/// closes out of the rollup, in the caller's transaction; returns how many.
///
/// The row locks come in the order ingest takes them
/// (`store::merge::SessionTouch`): every session row first, sorted, then
/// the sessions' content, then the rollup rows, sorted; so a purge and a
/// late callback of a purged session wait for each other rather than
/// deadlock. (Where ingest runs side by side, PostgreSQL, the caller holds
/// the sessions' advisory locks first: `store::advisory_locks`.)
pub async fn delete_sessions<DB>(
    conn: &mut DB::Connection,
    mut expired: Vec<ExpiredSession>,
) -> Result<u64, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
{
    expired.sort_by(|a, b| (a.appid, &a.room_session_id).cmp(&(b.appid, &b.room_session_id)));
    // Table by table, so every session row is locked before any content.
    for statement in DELETE_SESSION {
        for session in &expired {
            sqlx::query::<DB>(statement)
                .bind(session.appid)
                .bind(session.room_session_id.as_str())
                .execute(&mut *conn)
                .await?;
        }
    }
    let mut closes: BTreeMap<(i64, DateTime<Utc>, i64), i64> = BTreeMap::new();
    for session in &expired {
        if let Some((hour, reason)) = session.close_hour() {
            *closes.entry((session.appid, hour, reason)).or_default() += 1;
        }
    }
    for ((appid, hour, reason), count) in closes {
        for statement in UNCOUNT_CLOSES {
            sqlx::query::<DB>(statement)
                .bind(appid)
                .bind(hour)
                .bind(reason)
                .bind(count)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(expired.len() as u64)
}

/// A session chosen for purging.
#[derive(Debug, sqlx::FromRow)]
pub struct ExpiredSession {
    pub appid: i64,
    pub room_session_id: String,
    pub closed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub close_reason: Option<i64>,
}

impl ExpiredSession {
    /// The rollup row its close was counted in.
    pub fn close_hour(&self) -> Option<(chrono::DateTime<chrono::Utc>, i64)> {
        let hour = crate::domain::time::hour_floor(self.closed_at?);
        Some((hour, self.close_reason?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_sessions_are_chosen_by_the_condition_a_purge_checks_again() {
        assert!(EXPIRED_SESSIONS.contains(&format!("WHERE {}\n    LIMIT $2", is_expired!())));
    }
}
