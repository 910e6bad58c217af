//! Retention statements, the same text on both backends. Each deletes at
//! most one batch, so a purge never holds locks long enough to stall ingest.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use crate::store::StoreError;
use crate::store::advisory_locks;

/// `$1` cut-off, `$2` batch size.
pub const DELIVERIES: &str = "DELETE FROM deliveries WHERE id IN
    (SELECT id FROM deliveries WHERE received_at < $1 ORDER BY id LIMIT $2)";

/// `$1` cut-off, `$2` batch size.
pub const REPLAY_GUARD: &str =
    "DELETE FROM replay_guard WHERE (sent_timestamp, nonce, signature) IN
    (SELECT sent_timestamp, nonce, signature FROM replay_guard WHERE first_seen_at < $1 LIMIT $2)";

/// Sessions none of whose events happened at or after the cut-off `$1`;
/// at most `$2`. Found through the closed and the unclosed partial indexes.
pub const EXPIRED_SESSIONS: &str = "SELECT s.appid, s.room_session_id, s.closed_at, s.close_reason
    FROM room_sessions s
    WHERE (s.closed_at < $1 OR (s.closed_at IS NULL AND s.started_at < $1))
      AND NOT EXISTS (SELECT 1 FROM events e
                      WHERE e.appid = s.appid AND e.room_session_id = s.room_session_id AND e.event_at >= $1)
    LIMIT $2";

/// The `EXPIRED_SESSIONS` condition for one session, `$2` appid, `$3`
/// room_session_id: asked again after its lock is held, in a fresh
/// snapshot, since a callback of it may have been stored meanwhile.
const STILL_EXPIRED: &str = "SELECT s.appid, s.room_session_id, s.closed_at, s.close_reason
    FROM room_sessions s
    WHERE s.appid = $2 AND s.room_session_id = $3
      AND (s.closed_at < $1 OR (s.closed_at IS NULL AND s.started_at < $1))
      AND NOT EXISTS (SELECT 1 FROM events e
                      WHERE e.appid = s.appid AND e.room_session_id = s.room_session_id AND e.event_at >= $1)";

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

/// Deletes at most `batch` expired sessions (`EXPIRED_SESSIONS`) with
/// their events and presence, and takes their closes out of the rollup, in
/// the caller's transaction; returns how many.
///
/// Where ingest runs side by side (PostgreSQL), `lock_session` takes a
/// session's exclusive lock (`store::advisory_locks`; `$1`, `$2` its key):
/// all of them first, in key order, then each session is checked again.
/// The row locks come in the order ingest takes them
/// (`store::merge::SessionTouch`): every session row first, sorted, then
/// the sessions' content, then the rollup rows, sorted; so a purge and a
/// late callback of a purged session wait for each other rather than
/// deadlock, and the callback is stored either before the purge looks
/// again (and its session kept, if the callback made it recent) or after
/// the purge, with its session row made again.
pub async fn delete_expired_sessions<DB>(
    conn: &mut DB::Connection,
    before: DateTime<Utc>,
    batch: i64,
    lock_session: Option<&str>,
) -> Result<u64, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'r> ExpiredSession: FromRow<'r, DB::Row>,
{
    // Where every session chosen turned out recent once locked, choose
    // again (those are no longer expired), so that 0 still means "none left".
    let mut expired = loop {
        let chosen: Vec<ExpiredSession> = sqlx::query_as::<DB, ExpiredSession>(EXPIRED_SESSIONS)
            .bind(before)
            .bind(batch)
            .fetch_all(&mut *conn)
            .await?;
        let Some(lock_session) = lock_session else {
            break chosen;
        };
        if chosen.is_empty() {
            break chosen;
        }
        let keys = advisory_locks::session_keys(
            chosen.iter().map(|s| (s.appid, s.room_session_id.as_str())),
        );
        for (a, b) in keys {
            sqlx::query::<DB>(lock_session)
                .bind(a)
                .bind(b)
                .execute(&mut *conn)
                .await?;
        }
        // Each statement sees what committed before it began: a callback
        // stored while the purge waited for its lock counts now, and so
        // does a close it brought (for the rollup below).
        let mut still = Vec::with_capacity(chosen.len());
        for session in &chosen {
            still.extend(
                sqlx::query_as::<DB, ExpiredSession>(STILL_EXPIRED)
                    .bind(before)
                    .bind(session.appid)
                    .bind(session.room_session_id.as_str())
                    .fetch_optional(&mut *conn)
                    .await?,
            );
        }
        if !still.is_empty() {
            break still;
        }
    };
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
        use chrono::DurationRound;
        let hour = self
            .closed_at?
            .duration_trunc(chrono::TimeDelta::hours(1))
            .ok()?;
        Some((hour, self.close_reason?))
    }
}
