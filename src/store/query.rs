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

/// One room session with its derived state.
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
}

/// A session in a list, with its distinct users counted in SQL (session
/// detail counts them from the participants it shows instead).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ListedSession {
    #[sqlx(flatten)]
    pub session: SessionRow,
    pub unique_users: i64,
}

/// One presence interval of a session (decoded by position, in
/// `read_sql`'s column order).
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// One stored event of a session, for its timeline (decoded by position too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineRow {
    pub event: String,
    pub event_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub user_account: Option<String>,
    pub session_id: Option<String>,
    pub user_role: Option<i64>,
    pub reason: Option<i64>,
}

/// Puts a session's presence intervals in the order they began (an
/// interval known only by its logout, by that), then by user and user
/// session. Done here rather than in SQL: SQLite's ordered JSON aggregate
/// sorted through a temporary B-tree (about 1 ms of a session detail), and
/// both backends now order text the same way (by bytes, not PostgreSQL's
/// collation).
pub fn in_participant_order(rows: &mut [ParticipantRow]) {
    fn key(r: &ParticipantRow) -> (Option<DateTime<Utc>>, &str, &str) {
        (r.login_at.or(r.logout_at), &r.user_account, &r.session_id)
    }
    rows.sort_by(|a, b| key(a).cmp(&key(b)));
}

/// Puts a session's events in ZEGO's time order; at equal times the create
/// first, then logouts before logins (a user who leaves and comes back in
/// the same millisecond), the close last; then by user and user session.
pub fn in_timeline_order(rows: &mut [TimelineRow]) {
    fn rank(event: &str) -> u8 {
        match event {
            "room_create" => 0,
            "room_logout" => 1,
            "room_login" => 2,
            _ => 3,
        }
    }
    fn key(r: &TimelineRow) -> (DateTime<Utc>, u8, &Option<String>, &Option<String>) {
        (r.event_at, rank(&r.event), &r.user_account, &r.session_id)
    }
    // The time alone decides almost every comparison: the event's rank
    // (string compares) and the users only when it ties.
    rows.sort_by(|a, b| {
        a.event_at
            .cmp(&b.event_at)
            .then_with(|| key(a).cmp(&key(b)))
    });
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(ms).unwrap()
    }

    fn event(event: &str, ms: i64, user: Option<&str>) -> TimelineRow {
        TimelineRow {
            event: event.into(),
            event_at: at(ms),
            received_at: at(0),
            user_account: user.map(str::to_owned),
            session_id: user.map(|_| "s".to_owned()),
            user_role: None,
            reason: None,
        }
    }

    #[test]
    fn the_timeline_is_by_time_then_create_logout_login_close_then_user() {
        let mut rows = vec![
            event("room_close", 5, None),
            event("room_login", 5, Some("b")),
            event("room_login", 5, Some("a")),
            event("room_logout", 5, Some("c")),
            event("room_create", 5, None),
            event("room_login", 1, Some("z")),
        ];
        in_timeline_order(&mut rows);
        let order: Vec<(&str, Option<&str>)> = rows
            .iter()
            .map(|r| (r.event.as_str(), r.user_account.as_deref()))
            .collect();
        assert_eq!(
            order,
            [
                ("room_login", Some("z")),
                ("room_create", None),
                ("room_logout", Some("c")),
                ("room_login", Some("a")),
                ("room_login", Some("b")),
                ("room_close", None),
            ]
        );
    }

    #[test]
    fn participants_are_by_start_or_else_end_then_user_by_bytes() {
        let stay = |user: &str, login: Option<i64>, logout: Option<i64>| ParticipantRow {
            user_account: user.into(),
            session_id: "s".into(),
            user_nickname: None,
            user_role: None,
            login_at: login.map(at),
            logout_at: logout.map(at),
            logout_reason: None,
            duration_ms: None,
        };
        let mut rows = vec![
            stay("b", Some(3), None),
            stay("late-login-unknown", None, Some(2)),
            stay("a", Some(3), Some(9)),
            stay("B", Some(3), None),
        ];
        in_participant_order(&mut rows);
        let users: Vec<&str> = rows.iter().map(|r| r.user_account.as_str()).collect();
        assert_eq!(users, ["late-login-unknown", "B", "a", "b"]);
    }
}
