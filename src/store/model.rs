//! Rows as the store hands them out, and the filters it takes. Shared by both
//! backends: times decode from `timestamptz` (PostgreSQL) and from RFC 3339
//! text (SQLite) alike.

use chrono::{DateTime, Utc};

/// One archived delivery.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRecord {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub remote_addr: Option<String>,
    pub endpoint: String,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub body_sha256: String,
    pub event: Option<String>,
    pub appid: Option<i64>,
    pub room_id: Option<String>,
    pub room_session_id: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub event_id: Option<i64>,
}

/// Which deliveries to list: newest first, `before_id` as the keyset cursor.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub outcome: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// One stored event, without its surrogate id or receive time (which depend
/// on arrival order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct EventRecord {
    pub event: String,
    pub room_session_id: String,
    pub event_at: DateTime<Utc>,
    pub user_account: Option<String>,
    pub session_id: Option<String>,
    pub room_id: String,
    pub user_nickname: Option<String>,
    pub user_role: Option<i64>,
    pub login_at: Option<DateTime<Utc>>,
    pub reason: Option<i64>,
    pub creator: Option<String>,
    pub room_name: Option<String>,
    pub content_sha256: String,
}

/// One merged room session.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct SessionRecord {
    pub room_session_id: String,
    pub room_id: String,
    pub created_at: Option<DateTime<Utc>>,
    pub creator: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub close_reason: Option<i64>,
    pub first_event_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
}

/// One presence interval.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct IntervalRecord {
    pub room_session_id: String,
    pub user_account: String,
    pub session_id: String,
    pub login_at: Option<DateTime<Utc>>,
    pub logout_at: Option<DateTime<Utc>>,
    pub room_id: String,
    pub user_nickname: Option<String>,
    pub user_role: Option<i64>,
    pub logout_reason: Option<i64>,
    pub duration_ms: Option<i64>,
}

/// Everything stored for one appid, each list sorted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppSnapshot {
    pub events: Vec<EventRecord>,
    pub sessions: Vec<SessionRecord>,
    pub intervals: Vec<IntervalRecord>,
}

impl AppSnapshot {
    pub fn sorted(mut self) -> AppSnapshot {
        self.events.sort();
        self.sessions.sort();
        self.intervals.sort();
        self
    }
}
