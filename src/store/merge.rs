//! What both backends share about writing an event: its column values, what
//! it contributes to its session row, and turning a presence group's stored
//! events back into the facts the pairing rules take.

use chrono::{DateTime, Utc};

use crate::domain::presence::{LoginFact, LogoutFact, PresenceInterval, pair_group};
use crate::domain::time::hour_floor;
use crate::domain::{Event, EventDetail, EventKind, EventTime, RejectCode, Rejection};

/// The `events` row of an event, flattened.
pub struct EventColumns<'a> {
    pub event: &'static str,
    pub appid: i64,
    pub room_id: &'a str,
    pub room_session_id: String,
    pub event_at: DateTime<Utc>,
    pub user_account: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub user_nickname: Option<&'a str>,
    pub user_role: Option<i64>,
    pub login_at: Option<DateTime<Utc>>,
    pub reason: Option<i64>,
    pub creator: Option<&'a str>,
    pub room_name: Option<&'a str>,
    pub content_sha256: &'a str,
}

impl<'a> EventColumns<'a> {
    pub fn of(event: &'a Event) -> EventColumns<'a> {
        let user = event.user();
        let (login_at, creator, room_name) = match &event.detail {
            EventDetail::RoomCreate { creator, .. } => (None, creator.as_deref(), None),
            EventDetail::RoomLogin { room_name, .. } => (None, None, room_name.as_deref()),
            EventDetail::RoomLogout { login_at, .. } => {
                (login_at.map(EventTime::to_utc), None, None)
            }
            EventDetail::RoomClose { .. } => (None, None, None),
        };
        EventColumns {
            event: event.kind().as_str(),
            appid: i64::from(event.appid),
            room_id: &event.room_id,
            room_session_id: event.room_session_id.to_string(),
            event_at: event.event_at().to_utc(),
            user_account: user.map(|u| u.user_account.as_str()),
            session_id: user.map(|u| u.session_id.as_str()),
            user_nickname: user.and_then(|u| u.user_nickname.as_deref()),
            user_role: user.and_then(|u| u.user_role),
            login_at,
            reason: event.reason(),
            creator,
            room_name,
            content_sha256: &event.content_sha256,
        }
    }

    /// Login and logout events belong to a presence group.
    pub fn is_presence(&self) -> bool {
        self.user_account.is_some()
    }

    /// What makes a second copy of this event a duplicate (or a conflict).
    pub fn identity(&self) -> EventIdentity {
        EventIdentity::new(
            self.event,
            self.appid,
            &self.room_session_id,
            self.user_account.zip(self.session_id),
            self.event_at,
        )
    }

    /// The presence group of a login or logout.
    pub fn presence_group(&self) -> Option<GroupKey> {
        Some(GroupKey {
            appid: self.appid,
            room_session_id: self.room_session_id.clone(),
            user_account: self.user_account?.to_owned(),
            session_id: self.session_id?.to_owned(),
        })
    }

    /// The UTC hour of the event time: the close-reason rollup's bucket.
    pub fn event_hour(&self) -> DateTime<Utc> {
        hour_floor(self.event_at)
    }

    /// `created_at` / `closed_at` / `close_reason` this event sets on its session.
    pub fn session_fields(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>, Option<i64>) {
        match self.event {
            "room_create" => (Some(self.event_at), None, None),
            "room_close" => (None, Some(self.event_at), self.reason),
            _ => (None, None, None),
        }
    }
}

/// The identity of an event, as the partial unique indexes on `events`
/// define it: (appid, room session) for creates and closes; user, user
/// session and event time too for logins and logouts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventIdentity {
    pub appid: i64,
    pub room_session_id: String,
    pub event: String,
    pub user: Option<(String, String, DateTime<Utc>)>,
}

impl EventIdentity {
    pub fn new(
        event: &str,
        appid: i64,
        room_session_id: &str,
        user: Option<(&str, &str)>,
        event_at: DateTime<Utc>,
    ) -> EventIdentity {
        EventIdentity {
            appid,
            room_session_id: room_session_id.to_owned(),
            event: event.to_owned(),
            user: user.map(|(account, session)| (account.to_owned(), session.to_owned(), event_at)),
        }
    }
}

/// An event row as `INSERT … RETURNING` gives it back: its id and identity.
#[derive(Debug, sqlx::FromRow)]
pub struct InsertedEventRow {
    pub id: i64,
    pub event: String,
    pub appid: i64,
    pub room_session_id: String,
    pub user_account: Option<String>,
    pub session_id: Option<String>,
    pub event_at: DateTime<Utc>,
}

/// An event stored before the batch that meets it, read back: its id and
/// identity, and the digest that tells a retry from a conflicting copy.
#[derive(Debug, sqlx::FromRow)]
pub struct StoredEventRow {
    #[sqlx(flatten)]
    pub row: InsertedEventRow,
    pub content_sha256: String,
}

impl InsertedEventRow {
    pub fn identity(&self) -> EventIdentity {
        EventIdentity::new(
            &self.event,
            self.appid,
            &self.room_session_id,
            self.user_account.as_deref().zip(self.session_id.as_deref()),
            self.event_at,
        )
    }
}

/// A `room_sessions` row's key: appid and room session id. (Not
/// `query::SessionKey`, a position in a list of sessions.)
pub type SessionRowKey = (i64, String);

/// One presence group: a user session's logins and logouts in one room
/// session. Its intervals are recomputed whenever one of its events arrives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::FromRow)]
pub struct GroupKey {
    pub appid: i64,
    pub room_session_id: String,
    pub user_account: String,
    pub session_id: String,
}

impl GroupKey {
    /// Names the group for an advisory lock. Parts are joined with the unit
    /// separator; a clash would only make two groups wait for each other,
    /// never mix their rows.
    pub fn lock_name(&self) -> String {
        format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}",
            self.appid, self.room_session_id, self.user_account, self.session_id
        )
    }
}

/// A stored login or logout with the group it belongs to.
#[derive(Debug, sqlx::FromRow)]
pub struct GroupMemberRow {
    #[sqlx(flatten)]
    pub group: GroupKey,
    #[sqlx(flatten)]
    pub event: GroupEventRow,
}

impl GroupMemberRow {
    /// The row a lookup would read back for a login or logout this
    /// transaction inserted with `id` (`None` for a create or close).
    pub fn of_inserted(c: &EventColumns<'_>, id: i64) -> Option<GroupMemberRow> {
        Some(GroupMemberRow {
            group: c.presence_group()?,
            event: GroupEventRow {
                id,
                event: c.event.to_owned(),
                event_at: c.event_at,
                login_at: c.login_at,
                reason: c.reason,
                room_id: c.room_id.to_owned(),
                user_nickname: c.user_nickname.map(str::to_owned),
                user_role: c.user_role,
            },
        })
    }
}

/// The touches whose session is not among `sessions` (sorted by key).
pub fn touches_outside<'t>(
    touches: &'t [SessionTouch],
    sessions: &[SessionRowKey],
) -> impl Iterator<Item = &'t SessionTouch> {
    touches.iter().filter(|t| {
        let key = (t.appid, t.room_session_id.as_str());
        sessions
            .binary_search_by(|(appid, id)| (*appid, id.as_str()).cmp(&key))
            .is_err()
    })
}

/// What a batch does to a session row before it inserts any event: create
/// it bare if absent; move its room id and first event time to the
/// smallest its logins and logouts carry; lock it if the batch creates or
/// closes it. One per session, the batch's extremes folded in.
///
/// The lock is what keeps concurrent writers (replicas on one PostgreSQL)
/// free of deadlocks: a batch's create or close updates the row after the
/// events insert, so without it one transaction could hold the row (from a
/// login) and wait for an event while another holds that event and waits
/// for the row. Taken here, every session row is locked in key order and
/// before the events, and two copies of one create or close meet at the
/// row rather than at the events' unique index. (Where another writer
/// creates the row while PostgreSQL's one-statement first steps run, the
/// batch is recorded again step by step: `recorder::store_events`.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTouch {
    pub appid: i64,
    pub room_session_id: String,
    /// The bare row's room id, should the row not exist yet.
    pub room_id: String,
    /// The bare row's first event time.
    pub first_event_at: DateTime<Utc>,
    /// Room id and first event time of the batch's logins and logouts, if
    /// any: an existing row moves to them when they are smaller.
    pub widen: Option<(String, DateTime<Utc>)>,
    /// The batch creates or closes the session: lock the row now.
    pub lock: bool,
}

impl SessionTouch {
    /// The touch of the session of `c`, before any of its events is folded in.
    pub fn new(c: &EventColumns<'_>) -> SessionTouch {
        SessionTouch {
            appid: c.appid,
            room_session_id: c.room_session_id.clone(),
            room_id: c.room_id.to_owned(),
            first_event_at: c.event_at,
            widen: None,
            lock: false,
        }
    }

    /// Folds in a login or logout, every copy: a duplicate carries the
    /// values of the stored one. A conflicting copy does not, and its room
    /// id may lower the row's; the batch then sets it back from the stored
    /// events (`DerivedWrites::room_id_recounts`).
    pub fn absorb_presence(&mut self, c: &EventColumns<'_>) {
        self.absorb_bare(c);
        let widen = self
            .widen
            .get_or_insert_with(|| (c.room_id.to_owned(), c.event_at));
        if c.room_id < widen.0.as_str() {
            c.room_id.clone_into(&mut widen.0);
        }
        widen.1 = widen.1.min(c.event_at);
    }

    /// Folds in a create or close: the first copy in the batch only, the
    /// one that is stored if the session has none yet.
    pub fn absorb_lifecycle(&mut self, c: &EventColumns<'_>) {
        self.absorb_bare(c);
        self.lock = true;
    }

    fn absorb_bare(&mut self, c: &EventColumns<'_>) {
        if c.room_id < self.room_id.as_str() {
            c.room_id.clone_into(&mut self.room_id);
        }
        self.first_event_at = self.first_event_at.min(c.event_at);
    }
}

/// The session fields a batch's stored creates and closes set: at most one
/// create and one close per session, folded into one upsert (one statement
/// may not update a row twice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleMerge {
    pub appid: i64,
    pub room_session_id: String,
    pub room_id: String,
    pub created_at: Option<DateTime<Utc>>,
    pub creator: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub close_reason: Option<i64>,
    pub first_event_at: DateTime<Utc>,
}

impl LifecycleMerge {
    pub fn of(c: &EventColumns<'_>) -> LifecycleMerge {
        let mut merge = LifecycleMerge {
            appid: c.appid,
            room_session_id: c.room_session_id.clone(),
            room_id: c.room_id.to_owned(),
            created_at: None,
            creator: None,
            closed_at: None,
            close_reason: None,
            first_event_at: c.event_at,
        };
        merge.absorb(c);
        merge
    }

    /// The same rules the upsert applies against the stored row: the
    /// smaller room id, the earlier first event, the first value of each field.
    pub fn absorb(&mut self, c: &EventColumns<'_>) {
        let (created_at, closed_at, close_reason) = c.session_fields();
        if c.room_id < self.room_id.as_str() {
            c.room_id.clone_into(&mut self.room_id);
        }
        self.first_event_at = self.first_event_at.min(c.event_at);
        self.created_at = self.created_at.or(created_at);
        self.creator = self.creator.take().or(c.creator.map(str::to_owned));
        self.closed_at = self.closed_at.or(closed_at);
        self.close_reason = self.close_reason.or(close_reason);
    }

    /// The creation time when known, else the first event's.
    pub fn started_at(&self) -> DateTime<Utc> {
        self.created_at.unwrap_or(self.first_event_at)
    }
}

/// A stored login or logout of one presence group.
#[derive(Debug, sqlx::FromRow)]
pub struct GroupEventRow {
    pub id: i64,
    pub event: String,
    pub event_at: DateTime<Utc>,
    pub login_at: Option<DateTime<Utc>>,
    pub reason: Option<i64>,
    pub room_id: String,
    pub user_nickname: Option<String>,
    pub user_role: Option<i64>,
}

/// Pairs a group's stored events into its presence intervals.
pub fn intervals_of(rows: Vec<GroupEventRow>) -> Vec<PresenceInterval> {
    let time =
        |t: DateTime<Utc>| EventTime::from_utc(t).expect("stored event times were range-checked");
    let mut logins = Vec::new();
    let mut logouts = Vec::new();
    for row in rows {
        if row.event == EventKind::RoomLogin.as_str() {
            logins.push(LoginFact {
                event_id: row.id,
                login_at: time(row.event_at),
                room_id: row.room_id,
                user_nickname: row.user_nickname,
                user_role: row.user_role,
            });
        } else {
            logouts.push(LogoutFact {
                event_id: row.id,
                logout_at: time(row.event_at),
                login_at: row.login_at.map(time),
                reason: row.reason,
                room_id: row.room_id,
                user_nickname: row.user_nickname,
                user_role: row.user_role,
            });
        }
    }
    pair_group(logins, logouts)
}

/// The answer when a signed triple comes back with another body.
pub fn replay_rejection() -> Rejection {
    Rejection::new(
        RejectCode::ReplayedSignature,
        "this timestamp, nonce and signature were already used with a different body",
    )
}

/// `deliveries.reason` and `deliveries.detail` for an outcome.
pub fn outcome_reason(outcome: &crate::domain::Outcome) -> (Option<&'static str>, Option<String>) {
    use crate::domain::Outcome;
    match outcome {
        Outcome::Rejected(r) => (Some(r.code.as_str()), Some(r.message.clone())),
        Outcome::Conflict => (
            Some("content_differs"),
            Some("an event with this identity was stored before with different content; the first copy stays".into()),
        ),
        Outcome::Stored | Outcome::Duplicate | Outcome::Ignored => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(event: &'static str, room_id: &'static str, second: i64) -> EventColumns<'static> {
        let user = (event == "room_login").then_some("u");
        EventColumns {
            event,
            appid: 1,
            room_id,
            room_session_id: "9".into(),
            event_at: DateTime::from_timestamp(second, 0).unwrap(),
            user_account: user,
            session_id: user,
            user_nickname: None,
            user_role: None,
            login_at: None,
            reason: None,
            creator: None,
            room_name: None,
            content_sha256: "d",
        }
    }

    #[test]
    fn a_touch_widens_by_logins_and_locks_for_creates_and_closes() {
        let at = |s| DateTime::from_timestamp(s, 0).unwrap();
        let (login, create) = (
            columns("room_login", "b", 20),
            columns("room_create", "a", 10),
        );

        let mut touch = SessionTouch::new(&login);
        touch.absorb_presence(&login);
        assert_eq!(
            (touch.widen.clone(), touch.lock),
            (Some(("b".into(), at(20))), false)
        );

        // The create goes into the bare row and the lock, not the widening:
        // the merge widens with it once it is known to be stored.
        touch.absorb_lifecycle(&create);
        assert_eq!(
            (touch.room_id.as_str(), touch.first_event_at),
            ("a", at(10))
        );
        assert_eq!(
            (touch.widen, touch.lock),
            (Some(("b".into(), at(20))), true)
        );

        let mut close_only = SessionTouch::new(&create);
        close_only.absorb_lifecycle(&create);
        assert_eq!((close_only.widen, close_only.lock), (None, true));
    }
}
