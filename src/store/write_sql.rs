//! The texts of the write path's statements, around a row source
//! (`WriteDialect::row_source`), written once for both backends
//! (`store::write` runs them). The first steps are each a statement of
//! their own, and on PostgreSQL all of them together are one statement too
//! (`first_steps`, one round trip); the final writes (`Piece`) follow.

use crate::store::write::WriteDialect;

/// Binds each signed triple to its body's digest unless it is known.
/// DO UPDATE (a no-op) rather than DO NOTHING so RETURNING yields the
/// first body's digest of known keys too.
pub fn claim(rows: &str) -> String {
    format!(
        "INSERT INTO replay_guard (sent_timestamp, nonce, signature, body_sha256, first_seen_at)
         {rows}
         ON CONFLICT (sent_timestamp, nonce, signature)
         DO UPDATE SET body_sha256 = replay_guard.body_sha256
         RETURNING sent_timestamp, nonce, signature, body_sha256"
    )
}

/// Creates the bare session rows that do not exist; returns those it created.
pub fn bare_sessions(rows: &str) -> String {
    format!(
        "INSERT INTO room_sessions (appid, room_session_id, room_id, first_event_at, started_at)
         {rows}
         ON CONFLICT (appid, room_session_id) DO NOTHING
         RETURNING appid, room_session_id"
    )
}

/// Widens (or locks) existing session rows.
///
/// The WHERE updates (and so locks) a row only when this batch moves its
/// room id or first event time, or will create or close it; a new row
/// never moves. A touch without logins or logouts (NULL room id and time)
/// leaves the values as they are: started_at is always
/// COALESCE(created_at, first_event_at).
pub fn widen<DB: WriteDialect>(rows: &str) -> String {
    let (least, bytes) = (DB::LEAST, DB::AS_BYTES);
    format!(
        "WITH touched (appid, room_session_id, room_id, first_event_at, lock) AS ({rows})
         UPDATE room_sessions SET
            room_id = {least}(room_sessions.room_id{bytes},
                COALESCE(touched.room_id, room_sessions.room_id)),
            first_event_at = {least}(room_sessions.first_event_at,
                COALESCE(touched.first_event_at, room_sessions.first_event_at)),
            started_at = COALESCE(room_sessions.created_at,
                {least}(room_sessions.first_event_at,
                    COALESCE(touched.first_event_at, room_sessions.first_event_at)))
         FROM touched
         WHERE room_sessions.appid = touched.appid
           AND room_sessions.room_session_id = touched.room_session_id
           AND (touched.lock = 1
                OR room_sessions.first_event_at > touched.first_event_at
                OR room_sessions.room_id{bytes} > touched.room_id)"
    )
}

/// Sets each session's room id back to the smallest of its stored events'
/// where a conflicting copy (never stored) lowered it below them
/// (`DerivedWrites::room_id_recounts`). Only such a row is updated, and
/// this batch's own widening already locked it: no new lock is taken.
pub fn recount_room_ids<DB: WriteDialect>(rows: &str) -> String {
    let bytes = DB::AS_BYTES;
    let smallest = format!(
        "(SELECT min(e.room_id{bytes}) FROM events e
          WHERE e.appid = room_sessions.appid AND e.room_session_id = room_sessions.room_session_id)"
    );
    format!(
        "WITH recount (appid, room_session_id) AS ({rows})
         UPDATE room_sessions SET room_id = {smallest}
         FROM recount
         WHERE room_sessions.appid = recount.appid
           AND room_sessions.room_session_id = recount.room_session_id
           AND room_sessions.room_id{bytes} < {smallest}"
    )
}

/// Inserts the events that are not stored yet. The identity comes back
/// with each id: RETURNING's row order is not promised to follow the rows'.
pub fn insert_events(rows: &str) -> String {
    format!(
        "INSERT INTO events (event, appid, room_id, room_session_id, event_at, received_at,
                             user_account, session_id, user_nickname, user_role, login_at,
                             reason, creator, room_name, content_sha256)
         {rows}
         ON CONFLICT DO NOTHING
         RETURNING id, event, appid, room_session_id, user_account, session_id, event_at"
    )
}

/// The stored logins and logouts of the groups in `rows`.
///
/// One SELECT per kind, each with its kind as a literal, so each can use
/// that kind's identity index (a partial index that leads with user and
/// user session): a group's lookup stays small however many users the
/// room has. `+ 0` and `|| ''` keep the appid and session out of any index
/// condition, so events_by_session (appid, session, time), which reads the
/// whole room, is never a candidate: on a young table the planner could
/// not tell the two apart.
pub fn presence_groups<DB: WriteDialect>(rows: &str) -> String {
    let select = |event: &str| {
        per_key::<DB>(
            "e.appid, e.room_session_id, e.user_account, e.session_id, e.id, e.event,
             e.event_at, e.login_at, e.reason, e.room_id, e.user_nickname, e.user_role",
            "events e",
            &format!(
                "e.user_account = g.user_account AND e.session_id = g.session_id
                 AND e.appid + 0 = g.appid AND e.room_session_id || '' = g.room_session_id
                 AND e.event = '{event}'"
            ),
        )
    };
    let (logins, logouts) = (select("room_login"), select("room_logout"));
    format!(
        "WITH g (appid, room_session_id, user_account, session_id) AS ({rows})
         {logins} UNION ALL {logouts}"
    )
}

/// What a row of `first_steps` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstStepTag {
    /// A signed triple and its first body's digest (`claim`).
    Claimed = 0,
    /// A session row the statement created (`bare_sessions`).
    Created = 1,
    /// A touched session row that existed when the statement began.
    Seen = 2,
    /// How many rows `widen` updated (one row, read to run it in order).
    Widened = 3,
    /// An event the statement inserted (`insert_events`).
    Inserted = 4,
    /// A login or logout of the groups, stored before the statement.
    Stored = 5,
}

impl FirstStepTag {
    pub fn of(tag: i32) -> Option<FirstStepTag> {
        use FirstStepTag::*;
        [Claimed, Created, Seen, Widened, Inserted, Stored]
            .into_iter()
            .find(|t| *t as i32 == tag)
    }
}

/// `claim`, `bare_sessions`, `widen`, `insert_events` and
/// `presence_groups` as one statement of data-modifying CTEs (PostgreSQL),
/// around the row sources of the claims, the touches (twice: bare rows and
/// widenings), the events and the groups, in that order.
///
/// Its rows, tagged (`FirstStepTag`), come out of one `UNION ALL` whose
/// branches PostgreSQL runs one after another, each reading its CTE to the
/// end: so the replay guard's rows are locked before any session row, the
/// session rows before any event, as the steps one by one would (a CTE
/// nothing reads to the end would run at the statement's end instead).
///
/// All CTEs see the snapshot taken when the statement began, hence the
/// differences from the steps one by one: the UPDATE of `widen` cannot see
/// the rows the INSERT before it creates (it need not: a new row never
/// moves) nor a row another writer created after the statement began (the
/// `Seen` rows tell those apart: the batch is then recorded again step by
/// step, `recorder::store_events`), and the group
/// lookup reads the groups without this statement's events (the caller
/// adds them).
pub fn first_steps<DB: WriteDialect>(sources: &[String; 5]) -> String {
    let [claims, bare, widenings, events, groups] = sources;
    let (claim, created) = (claim(claims), bare_sessions("SELECT * FROM bare"));
    let (widen, insert) = (widen::<DB>(widenings), insert_events(events));
    let lookup = presence_groups::<DB>(groups);
    use FirstStepTag::*;
    let (t0, t1, t2) = (Claimed as i32, Created as i32, Seen as i32);
    let (t3, t4, t5) = (Widened as i32, Inserted as i32, Stored as i32);
    format!(
        "WITH claimed AS ({claim}),
              bare AS ({bare}),
              created AS ({created}),
              widened AS ({widen} RETURNING room_sessions.appid),
              inserted AS ({insert}),
              stored AS ({lookup})
         SELECT {t0} AS tag, NULL::bigint AS appid, NULL::bigint AS id,
                sent_timestamp AS s1, nonce AS s2, signature AS s3, body_sha256 AS s4,
                NULL::text AS s5, NULL::text AS s6,
                NULL::timestamptz AS t1, NULL::timestamptz AS t2,
                NULL::bigint AS n1, NULL::bigint AS n2
           FROM claimed
         UNION ALL
         SELECT {t1}, appid, NULL, room_session_id, NULL, NULL, NULL, NULL, NULL,
                NULL, NULL, NULL, NULL
           FROM created
         UNION ALL
         SELECT {t2}, s.appid, NULL, s.room_session_id, NULL, NULL, NULL, NULL, NULL,
                NULL, NULL, NULL, NULL
           FROM bare CROSS JOIN LATERAL (
                SELECT appid, room_session_id FROM room_sessions
                 WHERE appid = bare.column1 AND room_session_id = bare.column2 OFFSET 0) AS s
         UNION ALL
         SELECT {t3}, count(*), NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                NULL, NULL, NULL, NULL
           FROM widened
         UNION ALL
         SELECT {t4}, appid, id, event, room_session_id, user_account, session_id, NULL, NULL,
                event_at, NULL, NULL, NULL
           FROM inserted
         UNION ALL
         SELECT {t5}, appid, id, room_session_id, user_account, session_id, event, room_id,
                user_nickname, event_at, login_at, reason, user_role
           FROM stored"
    )
}

/// The stored events of the keys in `rows` (a retry's first copy and its
/// fingerprint). One SELECT per kind, each with its kind as a literal, so
/// each can use that kind's identity index (a partial unique index); a key
/// of another kind skips it without touching the table.
pub fn find_events<DB: WriteDialect>(rows: &str) -> String {
    let select = |event: &str, user: &str| {
        per_key::<DB>(
            "e.id, e.event, e.appid, e.room_session_id, e.user_account, e.session_id,
             e.event_at, e.content_sha256",
            "events e",
            &format!(
                "g.column1 = '{event}' AND e.event = '{event}' {user}
                 AND e.appid = g.column2 AND e.room_session_id = g.column3"
            ),
        )
    };
    let user = "AND e.user_account = g.column4 AND e.session_id = g.column5
                AND e.event_at = g.column6";
    format!(
        "WITH g AS ({rows}) {} UNION ALL {} UNION ALL {} UNION ALL {}",
        select("room_create", ""),
        select("room_close", ""),
        select("room_login", user),
        select("room_logout", user),
    )
}

/// Deletes the presence rows of the groups in `rows`, through the ids the
/// group index finds: SQLite plans a row-value `IN (VALUES …)` as a scan
/// of the whole table.
pub fn clear_presence<DB: WriteDialect>(rows: &str) -> String {
    let ids = per_key::<DB>(
        "p.id",
        "presence_intervals p",
        "p.appid = g.column1 AND p.room_session_id = g.column2
         AND p.user_account = g.column3 AND p.session_id = g.column4",
    );
    format!("DELETE FROM presence_intervals WHERE id IN (WITH g AS ({rows}) {ids})")
}

/// Inserts the groups' presence intervals, computed again.
pub fn insert_presence(rows: &str) -> String {
    format!(
        "INSERT INTO presence_intervals (appid, room_session_id, user_account, session_id,
            room_id, user_nickname, user_role, login_at, logout_at, logout_reason,
            duration_ms, login_event_id, logout_event_id)
         {rows}"
    )
}

/// Merges stored creates and closes into their session rows. At most one
/// create and one close are ever stored per session, so COALESCE and LEAST
/// give the same row in every arrival order.
pub fn merge_sessions<DB: WriteDialect>(rows: &str) -> String {
    let (least, bytes) = (DB::LEAST, DB::AS_BYTES);
    format!(
        "INSERT INTO room_sessions (appid, room_session_id, room_id, created_at, creator,
                                    closed_at, close_reason, first_event_at, started_at)
         {rows}
         ON CONFLICT (appid, room_session_id) DO UPDATE SET
            room_id = {least}(room_sessions.room_id{bytes}, excluded.room_id),
            created_at = COALESCE(room_sessions.created_at, excluded.created_at),
            creator = COALESCE(room_sessions.creator, excluded.creator),
            closed_at = COALESCE(room_sessions.closed_at, excluded.closed_at),
            close_reason = COALESCE(room_sessions.close_reason, excluded.close_reason),
            first_event_at = {least}(room_sessions.first_event_at, excluded.first_event_at),
            started_at = COALESCE(room_sessions.created_at, excluded.created_at,
                {least}(room_sessions.first_event_at, excluded.first_event_at))"
    )
}

/// Adds the batch's closes to the hourly close-reason rollup.
pub fn add_close_counts(rows: &str) -> String {
    format!(
        "INSERT INTO close_reason_hourly (appid, hour_start, close_reason, closed_count)
         {rows}
         ON CONFLICT (appid, hour_start, close_reason)
         DO UPDATE SET closed_count = close_reason_hourly.closed_count + excluded.closed_count"
    )
}

/// Archives the batch's deliveries with their outcomes.
pub fn archive(rows: &str) -> String {
    format!(
        "INSERT INTO deliveries (received_at, remote_addr, endpoint, content_type, body,
                                 body_sha256, event, appid, room_id, room_session_id,
                                 outcome, reason, detail, event_id)
         {rows}"
    )
}

/// `SELECT columns FROM table WHERE matches` for each key of `g` (a CTE
/// the caller names), as the dialect pins it to one index lookup per key
/// (see `WriteDialect::LATERAL_LOOKUPS`).
pub fn per_key<DB: WriteDialect>(columns: &str, table: &str, matches: &str) -> String {
    match DB::LATERAL_LOOKUPS {
        true => format!(
            "SELECT m.* FROM g CROSS JOIN LATERAL
                 (SELECT {columns} FROM {table} WHERE {matches} OFFSET 0) AS m"
        ),
        // SQLite's CROSS JOIN keeps its left side the outer loop: with a
        // plain join it may scan the whole index and probe the keys instead.
        false => format!("SELECT {columns} FROM g CROSS JOIN {table} ON {matches}"),
    }
}
