//! PostgreSQL's part of the write path: the SQL that differs from SQLite's.

use crate::store::write::WriteDialect;

impl WriteDialect for sqlx::Postgres {
    // Serialises writers of one presence group across connections and
    // replicas; a hash collision only makes two unrelated groups wait.
    const LOCK_PRESENCE_GROUP: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))");

    // At most one create and one close are ever stored per session, so
    // COALESCE and LEAST give the same row in every arrival order.
    const MERGE_LIFECYCLE_EVENT: &'static str =
        "INSERT INTO room_sessions (appid, room_session_id, room_id, created_at, creator,
                                closed_at, close_reason, first_event_at, started_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, COALESCE($4, $8))
     ON CONFLICT (appid, room_session_id) DO UPDATE SET
        room_id = LEAST(room_sessions.room_id, excluded.room_id),
        created_at = COALESCE(room_sessions.created_at, excluded.created_at),
        creator = COALESCE(room_sessions.creator, excluded.creator),
        closed_at = COALESCE(room_sessions.closed_at, excluded.closed_at),
        close_reason = COALESCE(room_sessions.close_reason, excluded.close_reason),
        first_event_at = LEAST(room_sessions.first_event_at, excluded.first_event_at),
        started_at = COALESCE(room_sessions.created_at, excluded.created_at,
                              LEAST(room_sessions.first_event_at, excluded.first_event_at))";

    // The WHERE makes this lock the row only when something changes, so a
    // busy room's logins do not queue on the session row.
    const WIDEN_SESSION: &'static str = "UPDATE room_sessions SET
        room_id = LEAST(room_id, $3),
        first_event_at = LEAST(first_event_at, $4),
        started_at = COALESCE(created_at, LEAST(first_event_at, $4))
     WHERE appid = $1 AND room_session_id = $2 AND (first_event_at > $4 OR room_id > $3)";

    const LOCK_FOR_REBUILD: Option<&'static str> = Some(
        "LOCK TABLE events, room_sessions, presence_intervals, close_reason_hourly, deliveries
         IN SHARE ROW EXCLUSIVE MODE",
    );
    const TEMP_TABLE_SUFFIX: &'static str = "ON COMMIT DROP";
    const DROP_TEMP_TABLES: bool = false;
}
