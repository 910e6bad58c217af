//! The rows a write-path statement takes for a whole batch, as cells of four
//! SQL types, so that each backend binds them its own way: SQLite row by row
//! behind a `VALUES` list, PostgreSQL one array per column behind `UNNEST`
//! (one statement text whatever the batch size, so it is parsed and planned
//! once per connection instead of once per batch). The statements around
//! the rows are written once, in `store::write_sql`.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use crate::domain::presence::PresenceInterval;
use crate::store::merge::{GroupKey, LifecycleMerge, SessionRowKey, SessionTouch, outcome_reason};
use crate::store::recorder::{ArchiveRow, CloseCount, NewEvent, ReplayClaim};

/// The SQL type of a column of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Int,
    Text,
    Time,
    Bytes,
}

impl Column {
    /// PostgreSQL's array type of this column, for `UNNEST($n::…)`.
    pub fn pg_array(self) -> &'static str {
        match self {
            Column::Int => "bigint[]",
            Column::Text => "text[]",
            Column::Time => "timestamptz[]",
            Column::Bytes => "bytea[]",
        }
    }
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Int(Option<i64>),
    Text(Option<Cow<'a, str>>),
    Time(Option<DateTime<Utc>>),
    Bytes(&'a [u8]),
}

impl<'a> Cell<'a> {
    pub fn column(&self) -> Column {
        match self {
            Cell::Int(_) => Column::Int,
            Cell::Text(_) => Column::Text,
            Cell::Time(_) => Column::Time,
            Cell::Bytes(_) => Column::Bytes,
        }
    }

    fn text(s: &'a str) -> Cell<'a> {
        Cell::Text(Some(Cow::Borrowed(s)))
    }

    fn opt_text(s: Option<&'a str>) -> Cell<'a> {
        Cell::Text(s.map(Cow::Borrowed))
    }

    fn int(v: i64) -> Cell<'a> {
        Cell::Int(Some(v))
    }

    fn time(t: DateTime<Utc>) -> Cell<'a> {
        Cell::Time(Some(t))
    }
}

macro_rules! rows {
    ($($(#[$doc:meta])* $variant:ident($item:ty),)*) => {
        /// The rows of one statement, one variant per kind of row.
        #[derive(Clone, Copy)]
        pub enum Rows<'a> {
            $($(#[$doc])* $variant(&'a [$item]),)*
        }

        impl<'a> Rows<'a> {
            pub fn len(&self) -> usize {
                match self {
                    $(Rows::$variant(rows) => rows.len(),)*
                }
            }

            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// The first `mid` rows, and the rest.
            pub fn split_at(self, mid: usize) -> (Rows<'a>, Rows<'a>) {
                match self {
                    $(Rows::$variant(rows) => {
                        let (head, tail) = rows.split_at(mid);
                        (Rows::$variant(head), Rows::$variant(tail))
                    })*
                }
            }
        }
    };
}

rows! {
    /// replay_guard: timestamp, nonce, signature, body digest, first seen.
    ReplayClaims(ReplayClaim<'a>),
    /// room_sessions (bare): appid, session, room, first event, started.
    NewSessions(SessionTouch),
    /// room_sessions widening: appid, session, room and first event (NULL:
    /// none to widen to), lock (1: lock it anyway).
    SessionWidenings(&'a SessionTouch),
    /// events: every column but the id.
    Events(NewEvent<'a, 'a>),
    /// events' identities: kind, appid, session, user, user session, time.
    EventKeys(NewEvent<'a, 'a>),
    /// Presence groups: appid, session, user, user session.
    Groups(GroupKey),
    /// Room sessions: appid, session.
    Sessions(SessionRowKey),
    /// presence_intervals: every column but the id.
    Presence((GroupKey, PresenceInterval)),
    /// Session fields set by creates and closes.
    Merges(LifecycleMerge),
    /// close_reason_hourly increments.
    CloseCounts(CloseCount),
    /// deliveries: every column but the id.
    Archive(ArchiveRow<'a>),
}

impl<'a> Rows<'a> {
    /// The columns' types, in the order `row` gives the cells.
    pub fn columns(&self) -> &'static [Column] {
        use Column::*;
        match self {
            Rows::ReplayClaims(_) => &[Text, Text, Text, Text, Time],
            Rows::NewSessions(_) => &[Int, Text, Text, Time, Time],
            Rows::SessionWidenings(_) => &[Int, Text, Text, Time, Int],
            Rows::Events(_) => &[
                Text, Int, Text, Text, Time, Time, Text, Text, Text, Int, Time, Int, Text, Text,
                Text,
            ],
            Rows::EventKeys(_) => &[Text, Int, Text, Text, Text, Time],
            Rows::Groups(_) => &[Int, Text, Text, Text],
            Rows::Sessions(_) => &[Int, Text],
            Rows::Presence(_) => &[
                Int, Text, Text, Text, Text, Text, Int, Time, Time, Int, Int, Int, Int,
            ],
            Rows::Merges(_) => &[Int, Text, Text, Time, Text, Time, Int, Time, Time],
            Rows::CloseCounts(_) => &[Int, Time, Int, Int],
            Rows::Archive(_) => &[
                Time, Text, Text, Text, Bytes, Text, Text, Int, Text, Text, Text, Text, Text, Int,
            ],
        }
    }

    /// Row `i`'s cells.
    pub fn row(&self, i: usize) -> Vec<Cell<'a>> {
        match *self {
            Rows::ReplayClaims(rows) => {
                let c = &rows[i];
                vec![
                    Cell::text(&c.key.timestamp),
                    Cell::text(&c.key.nonce),
                    Cell::text(&c.key.signature),
                    Cell::text(c.body_sha256),
                    Cell::time(c.at),
                ]
            }
            // A bare row starts at its first event: started_at = first_event_at.
            Rows::NewSessions(rows) => {
                let t = &rows[i];
                vec![
                    Cell::int(t.appid),
                    Cell::text(&t.room_session_id),
                    Cell::text(&t.room_id),
                    Cell::time(t.first_event_at),
                    Cell::time(t.first_event_at),
                ]
            }
            Rows::SessionWidenings(rows) => {
                let t = rows[i];
                let widen = t.widen.as_ref();
                vec![
                    Cell::int(t.appid),
                    Cell::text(&t.room_session_id),
                    Cell::opt_text(widen.map(|(room_id, _)| room_id.as_str())),
                    Cell::Time(widen.map(|&(_, first_event_at)| first_event_at)),
                    Cell::int(i64::from(t.lock)),
                ]
            }
            Rows::Events(rows) => {
                let e = &rows[i];
                let c = e.columns;
                vec![
                    Cell::text(c.event),
                    Cell::int(c.appid),
                    Cell::text(c.room_id),
                    Cell::text(&c.room_session_id),
                    Cell::time(c.event_at),
                    Cell::time(e.received_at),
                    Cell::opt_text(c.user_account),
                    Cell::opt_text(c.session_id),
                    Cell::opt_text(c.user_nickname),
                    Cell::Int(c.user_role),
                    Cell::Time(c.login_at),
                    Cell::Int(c.reason),
                    Cell::opt_text(c.creator),
                    Cell::opt_text(c.room_name),
                    Cell::text(c.content_sha256),
                ]
            }
            Rows::EventKeys(rows) => {
                let c = rows[i].columns;
                vec![
                    Cell::text(c.event),
                    Cell::int(c.appid),
                    Cell::text(&c.room_session_id),
                    Cell::opt_text(c.user_account),
                    Cell::opt_text(c.session_id),
                    Cell::time(c.event_at),
                ]
            }
            Rows::Groups(rows) => group_cells(&rows[i]).to_vec(),
            Rows::Sessions(rows) => vec![Cell::int(rows[i].0), Cell::text(&rows[i].1)],
            Rows::Presence(rows) => {
                let (g, p) = &rows[i];
                let mut cells = group_cells(g).to_vec();
                cells.extend([
                    Cell::text(&p.room_id),
                    Cell::opt_text(p.user_nickname.as_deref()),
                    Cell::Int(p.user_role),
                    Cell::Time(p.login_at.map(|t| t.to_utc())),
                    Cell::Time(p.logout_at.map(|t| t.to_utc())),
                    Cell::Int(p.logout_reason),
                    Cell::Int(p.duration_ms),
                    Cell::Int(p.login_event_id),
                    Cell::Int(p.logout_event_id),
                ]);
                cells
            }
            Rows::Merges(rows) => {
                let m = &rows[i];
                vec![
                    Cell::int(m.appid),
                    Cell::text(&m.room_session_id),
                    Cell::text(&m.room_id),
                    Cell::Time(m.created_at),
                    Cell::opt_text(m.creator.as_deref()),
                    Cell::Time(m.closed_at),
                    Cell::Int(m.close_reason),
                    Cell::time(m.first_event_at),
                    Cell::time(m.started_at()),
                ]
            }
            Rows::CloseCounts(rows) => {
                let c = &rows[i];
                vec![
                    Cell::int(c.appid),
                    Cell::time(c.hour_start),
                    Cell::int(c.close_reason),
                    Cell::int(c.count),
                ]
            }
            Rows::Archive(rows) => {
                let a = &rows[i];
                let d = a.delivery;
                let (reason, detail) = outcome_reason(a.outcome);
                vec![
                    Cell::time(d.received_at),
                    Cell::opt_text(d.remote_addr.as_deref()),
                    Cell::text(&d.endpoint),
                    Cell::opt_text(d.content_type.as_deref()),
                    Cell::Bytes(&d.body),
                    Cell::text(&d.body_sha256),
                    Cell::opt_text(d.summary.event.as_deref()),
                    Cell::Int(d.summary.appid.map(i64::from)),
                    Cell::opt_text(d.summary.room_id.as_deref()),
                    Cell::opt_text(d.summary.room_session_id.as_deref()),
                    Cell::text(a.outcome.as_str()),
                    Cell::opt_text(reason),
                    Cell::Text(detail.map(Cow::Owned)),
                    Cell::Int(a.event_id),
                ]
            }
        }
    }
}

/// A presence group's key columns: appid, session, user, user session.
fn group_cells(g: &GroupKey) -> [Cell<'_>; 4] {
    [
        Cell::int(g.appid),
        Cell::text(&g.room_session_id),
        Cell::text(&g.user_account),
        Cell::text(&g.session_id),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::delivery::DeliverySummary;
    use crate::domain::presence::PresenceInterval;
    use crate::domain::{Delivery, Outcome, ReplayKey, Verdict};
    use crate::store::merge::EventColumns;

    /// Every kind of row gives one cell per column, of the column's type
    /// (PostgreSQL binds by column and refuses a mismatch; SQLite would not).
    #[test]
    fn cells_match_their_columns() {
        let now = Utc::now();
        let key = ReplayKey {
            timestamp: "1".into(),
            nonce: "n".into(),
            signature: "s".into(),
        };
        let claims = [ReplayClaim {
            key: &key,
            body_sha256: "d",
            at: now,
        }];
        let touch = [SessionTouch {
            appid: 1,
            room_session_id: "9".into(),
            room_id: "r".into(),
            first_event_at: now,
            widen: Some(("r".into(), now)),
            lock: true,
        }];
        let group = GroupKey {
            appid: 1,
            room_session_id: "9".into(),
            user_account: "u".into(),
            session_id: "s".into(),
        };
        let columns = EventColumns {
            event: "room_login",
            appid: 1,
            room_id: "r",
            room_session_id: "9".into(),
            event_at: now,
            user_account: Some("u"),
            session_id: Some("s"),
            user_nickname: None,
            user_role: Some(1),
            login_at: None,
            reason: None,
            creator: None,
            room_name: None,
            content_sha256: "c",
        };
        let events = [NewEvent {
            columns: &columns,
            received_at: now,
        }];
        let interval = PresenceInterval {
            room_id: "r".into(),
            user_nickname: None,
            user_role: None,
            login_at: None,
            logout_at: None,
            logout_reason: None,
            duration_ms: None,
            login_event_id: Some(1),
            logout_event_id: None,
        };
        let merge = [LifecycleMerge::of(&columns)];
        let counts = [CloseCount {
            appid: 1,
            hour_start: now,
            close_reason: 1,
            count: 1,
        }];
        let delivery = Delivery {
            received_at: now,
            remote_addr: None,
            endpoint: "/callbacks/room_login".into(),
            content_type: None,
            body: bytes::Bytes::from_static(b"{}"),
            body_sha256: "d".into(),
            summary: DeliverySummary::default(),
            replay_key: None,
            verdict: Verdict::Ignored {
                event: "stream_create".into(),
            },
        };
        let archive = [ArchiveRow {
            delivery: &delivery,
            outcome: &Outcome::Conflict,
            event_id: None,
        }];
        let groups = [group.clone()];
        let sessions = [(group.appid, group.room_session_id.clone())];
        let presence = [(group, interval)];
        let all = [
            Rows::ReplayClaims(&claims),
            Rows::NewSessions(&touch),
            Rows::SessionWidenings(&[&touch[0]]),
            Rows::Events(&events),
            Rows::EventKeys(&events),
            Rows::Groups(&groups),
            Rows::Sessions(&sessions),
            Rows::Presence(&presence),
            Rows::Merges(&merge),
            Rows::CloseCounts(&counts),
            Rows::Archive(&archive),
        ];
        for rows in all {
            let types: Vec<Column> = rows.row(0).iter().map(Cell::column).collect();
            assert_eq!(types, rows.columns());
            let (head, tail) = rows.split_at(1);
            assert_eq!((head.len(), tail.len()), (1, 0));
        }
    }
}
