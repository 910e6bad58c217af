//! Retention statements, the same text on both backends. Each deletes at
//! most one batch, so a purge never holds locks long enough to stall ingest.

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

/// `$1` appid, `$2` room_session_id: one per table.
pub const DELETE_SESSION: [&str; 3] = [
    "DELETE FROM presence_intervals WHERE appid = $1 AND room_session_id = $2",
    "DELETE FROM events WHERE appid = $1 AND room_session_id = $2",
    "DELETE FROM room_sessions WHERE appid = $1 AND room_session_id = $2",
];

/// Takes a purged closed session out of the rollup: `$1` appid, `$2` hour, `$3` reason.
pub const UNCOUNT_CLOSE: [&str; 2] = [
    "UPDATE close_reason_hourly SET closed_count = closed_count - 1
     WHERE appid = $1 AND hour_start = $2 AND close_reason = $3",
    "DELETE FROM close_reason_hourly
     WHERE appid = $1 AND hour_start = $2 AND close_reason = $3 AND closed_count <= 0",
];

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
