//! The query API's JSON shapes. Times are RFC 3339 UTC with milliseconds;
//! `room_session_id` is always a string (JavaScript loses precision above
//! 2^53); `appid` is a number.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::domain::reason::{close_reason_name, logout_reason_name};
use crate::domain::time::with_instant_text;
use crate::store::DeliveryRecord;
use crate::store::query::{ListedSession, ParticipantRow, SessionRow, TimelineRow};

/// An instant in an answer, spelled as `format_instant` spells it but
/// serialized without a `String` of its own (a session detail holds
/// thousands). The OpenAPI schema calls it a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub DateTime<Utc>);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        with_instant_text(self.0, |text| serializer.serialize_str(text))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        with_instant_text(self.0, |text| f.write_str(text))
    }
}

/// A page of a list. `next_cursor` is null on the last page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// One room session in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub appid: i64,
    pub room_id: String,
    /// Decimal string of an unsigned 64-bit id.
    pub room_session_id: String,
    /// `open`, `closed`, or `superseded` (a later lifecycle of the room exists, no close arrived;
    /// later = greater `started_at`, then greater `room_session_id` compared as bytes).
    pub state: String,
    #[schema(value_type = String)]
    pub started_at: Timestamp,
    #[schema(value_type = Option<String>)]
    pub created_at: Option<Timestamp>,
    #[schema(value_type = Option<String>)]
    pub closed_at: Option<Timestamp>,
    pub close_reason: Option<i64>,
    /// `normal`, `heartbeat_timeout`, `last_user_disconnected`, `last_user_kicked_out` or `unknown`.
    pub close_reason_name: Option<&'static str>,
    /// `closed_at - created_at`; null while either is unknown, negative if
    /// ZEGO stamped the close before the create (clock skew, kept as sent).
    pub duration_ms: Option<i64>,
    pub creator: Option<String>,
    /// Distinct users (admins, role 4, excluded unless `include_admins=true`).
    pub unique_users: i64,
}

impl From<ListedSession> for SessionView {
    fn from(listed: ListedSession) -> SessionView {
        SessionView::new(listed.session, listed.unique_users)
    }
}

impl SessionView {
    pub fn new(s: SessionRow, unique_users: i64) -> SessionView {
        SessionView {
            duration_ms: s
                .closed_at
                .zip(s.created_at)
                .map(|(closed, created)| (closed - created).num_milliseconds()),
            appid: s.appid,
            room_id: s.room_id,
            room_session_id: s.room_session_id,
            state: s.state,
            started_at: Timestamp(s.started_at),
            created_at: s.created_at.map(Timestamp),
            closed_at: s.closed_at.map(Timestamp),
            close_reason: s.close_reason,
            close_reason_name: s.close_reason.map(close_reason_name),
            creator: s.creator,
            unique_users,
        }
    }
}

/// One presence interval of a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParticipantView {
    pub user_account: String,
    pub user_nickname: Option<String>,
    /// 1 host, 2 audience, 4 admin (cloud recording, moderation bots).
    pub user_role: Option<i64>,
    pub session_id: String,
    #[schema(value_type = Option<String>)]
    pub login_at: Option<Timestamp>,
    #[schema(value_type = Option<String>)]
    pub logout_at: Option<Timestamp>,
    pub logout_reason: Option<i64>,
    pub logout_reason_name: Option<&'static str>,
    /// `logout_at - login_at`; null while the stay is open, its login time
    /// unknown, or the logout stamped before the login (clock skew).
    pub duration_ms: Option<i64>,
}

impl From<ParticipantRow> for ParticipantView {
    fn from(p: ParticipantRow) -> ParticipantView {
        ParticipantView {
            user_account: p.user_account,
            user_nickname: p.user_nickname,
            user_role: p.user_role,
            session_id: p.session_id,
            login_at: p.login_at.map(Timestamp),
            logout_at: p.logout_at.map(Timestamp),
            logout_reason: p.logout_reason,
            logout_reason_name: p.logout_reason.map(logout_reason_name),
            duration_ms: p.duration_ms,
        }
    }
}

/// One event of a session's timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEntry {
    pub event: String,
    /// ZEGO's time of the event.
    #[schema(value_type = String)]
    pub event_at: Timestamp,
    /// When we first received it (late arrivals show here).
    #[schema(value_type = String)]
    pub received_at: Timestamp,
    pub user_account: Option<String>,
    pub session_id: Option<String>,
    pub user_role: Option<i64>,
    pub reason: Option<i64>,
    pub reason_name: Option<&'static str>,
}

impl From<TimelineRow> for TimelineEntry {
    fn from(t: TimelineRow) -> TimelineEntry {
        let name = match t.event.as_str() {
            "room_close" => t.reason.map(close_reason_name),
            "room_logout" => t.reason.map(logout_reason_name),
            _ => None,
        };
        TimelineEntry {
            event_at: Timestamp(t.event_at),
            received_at: Timestamp(t.received_at),
            event: t.event,
            user_account: t.user_account,
            session_id: t.session_id,
            user_role: t.user_role,
            reason: t.reason,
            reason_name: name,
        }
    }
}

/// A session with everyone who was in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub session: SessionView,
    pub peak_concurrent_users: i64,
    // Written as JSON on the task that fetched them (`sessions.rs`).
    #[schema(value_type = Vec<ParticipantView>)]
    pub participants: Box<RawValue>,
    #[schema(value_type = Vec<TimelineEntry>)]
    pub timeline: Box<RawValue>,
}

/// Closed sessions with one close reason.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReasonCountView {
    pub close_reason: i64,
    pub name: &'static str,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BucketView {
    /// Start of the UTC hour or day.
    #[schema(value_type = String)]
    pub start: Timestamp,
    pub reasons: Vec<ReasonCountView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CloseReasonStats {
    pub total: i64,
    pub reasons: Vec<ReasonCountView>,
    /// Present when `bucket` is `hour` or `day`: every bucket from the first
    /// to the last non-empty one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<BucketView>>,
}

/// One archived delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: i64,
    #[schema(value_type = String)]
    pub received_at: Timestamp,
    pub remote_addr: Option<String>,
    pub endpoint: String,
    pub content_type: Option<String>,
    pub event: Option<String>,
    pub appid: Option<i64>,
    pub room_id: Option<String>,
    pub room_session_id: Option<String>,
    /// `stored`, `duplicate`, `conflict`, `ignored` or `rejected`.
    pub outcome: String,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub event_id: Option<i64>,
    /// The raw body when it is UTF-8 …
    pub body: Option<String>,
    /// … else its bytes in hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_hex: Option<String>,
    pub body_sha256: String,
}

impl From<DeliveryRecord> for DeliveryView {
    fn from(d: DeliveryRecord) -> DeliveryView {
        let (body, body_hex) = match String::from_utf8(d.body) {
            Ok(text) => (Some(text), None),
            Err(e) => (None, Some(hex::encode(e.into_bytes()))),
        };
        DeliveryView {
            id: d.id,
            received_at: Timestamp(d.received_at),
            remote_addr: d.remote_addr,
            endpoint: d.endpoint,
            content_type: d.content_type,
            event: d.event,
            appid: d.appid,
            room_id: d.room_id,
            room_session_id: d.room_session_id,
            outcome: d.outcome,
            reason: d.reason,
            detail: d.detail,
            event_id: d.event_id,
            body,
            body_hex,
            body_sha256: d.body_sha256,
        }
    }
}
