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

pub const ARCHIVED_AFTER: &str = "SELECT * FROM deliveries WHERE id > $1 ORDER BY id LIMIT $2";

pub const SET_RESULT: &str =
    "UPDATE deliveries SET outcome = $2, reason = $3, detail = $4, event_id = $5 WHERE id = $1";
