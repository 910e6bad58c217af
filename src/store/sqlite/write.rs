//! SQLite's part of the write path: the SQL that differs from PostgreSQL's.

use crate::store::write::WriteDialect;

impl WriteDialect for sqlx::Sqlite {
    // The single writer connection already serialises every transaction.
    const LOCK_PRESENCE_GROUP: Option<&'static str> = None;

    // SQLite's two-argument min() is PostgreSQL's LEAST().
    const MERGE_LIFECYCLE_EVENT: &'static str =
        "INSERT INTO room_sessions (appid, room_session_id, room_id, created_at, creator,
                                closed_at, close_reason, first_event_at, started_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, COALESCE($4, $8))
     ON CONFLICT (appid, room_session_id) DO UPDATE SET
        room_id = min(room_sessions.room_id, excluded.room_id),
        created_at = COALESCE(room_sessions.created_at, excluded.created_at),
        creator = COALESCE(room_sessions.creator, excluded.creator),
        closed_at = COALESCE(room_sessions.closed_at, excluded.closed_at),
        close_reason = COALESCE(room_sessions.close_reason, excluded.close_reason),
        first_event_at = min(room_sessions.first_event_at, excluded.first_event_at),
        started_at = COALESCE(room_sessions.created_at, excluded.created_at,
                              min(room_sessions.first_event_at, excluded.first_event_at))";

    const WIDEN_SESSION: &'static str = "UPDATE room_sessions SET
        room_id = min(room_id, $3),
        first_event_at = min(first_event_at, $4),
        started_at = COALESCE(created_at, min(first_event_at, $4))
     WHERE appid = $1 AND room_session_id = $2 AND (first_event_at > $4 OR room_id > $3)";

    // BEGIN IMMEDIATE already holds SQLite's one write lock.
    const LOCK_FOR_REBUILD: Option<&'static str> = None;
    const TEMP_TABLE_SUFFIX: &'static str = "";
    const DROP_TEMP_TABLES: bool = true;
}
