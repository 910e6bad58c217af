//! Read-side parameters and rows: what the query API asks the store and what
//! it gets back. Times decode from `timestamptz` and from SQLite text alike.

use chrono::{DateTime, Utc};

/// A keyset position in a list of sessions ordered newest first: the row's
/// ordering time (`closed_at` or `started_at`), then its key as tie-break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKey {
    pub at: DateTime<Utc>,
    pub appid: i64,
    pub room_session_id: String,
}

/// `GET /api/v1/rooms/closed`.
#[derive(Debug, Clone, Default)]
pub struct ClosedQuery {
    pub appid: Option<i64>,
    pub room_id: Option<String>,
    /// Empty: every reason.
    pub close_reasons: Vec<i64>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub after: Option<SessionKey>,
    pub limit: i64,
    pub include_admins: bool,
}

/// `GET /api/v1/rooms/{room_id}/sessions` and `GET /api/v1/rooms/open`.
#[derive(Debug, Clone, Default)]
pub struct SessionListQuery {
    pub appid: Option<i64>,
    pub room_id: Option<String>,
    pub after: Option<SessionKey>,
    pub limit: i64,
    pub include_admins: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    None,
    Hour,
    Day,
}

/// `GET /api/v1/stats/close-reasons`.
#[derive(Debug, Clone)]
pub struct StatsQuery {
    pub appid: Option<i64>,
    pub room_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub bucket: Bucket,
}

/// Closed sessions per close reason (and bucket start, when bucketed).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReasonCount {
    pub bucket_start: Option<DateTime<Utc>>,
    pub close_reason: Option<i64>,
    pub count: i64,
}

/// One room session with its derived state and user count.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    pub appid: i64,
    pub room_id: String,
    pub room_session_id: String,
    pub created_at: Option<DateTime<Utc>>,
    pub creator: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub close_reason: Option<i64>,
    pub started_at: DateTime<Utc>,
    /// `open`, `closed` or `superseded`.
    pub state: String,
    pub unique_users: i64,
}

/// One presence interval of a session.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ParticipantRow {
    pub user_account: String,
    pub session_id: String,
    pub user_nickname: Option<String>,
    pub user_role: Option<i64>,
    pub login_at: Option<DateTime<Utc>>,
    pub logout_at: Option<DateTime<Utc>>,
    pub logout_reason: Option<i64>,
    pub duration_ms: Option<i64>,
}

/// One stored event of a session, for its timeline.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TimelineRow {
    pub event: String,
    pub event_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub user_account: Option<String>,
    pub session_id: Option<String>,
    pub user_role: Option<i64>,
    pub reason: Option<i64>,
}
