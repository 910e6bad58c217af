//! The query API's SQL, built once for both backends. Only the predicates a
//! request uses are written into the statement (no `$1 IS NULL OR …`), so
//! the planner sees plain conditions and picks the index that matches; the
//! keyset condition is a row comparison in the ORDER BY's column order. The
//! dialect differences (truncating a time to its hour or day, comparing
//! text as bytes) come from `ReadDialect`. Plans at a million sessions are
//! in docs/queries.md.

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::domain::EventTime;
use crate::domain::time::{hour_ceil, hour_floor};

use super::model::DeliveryFilter;
use super::query::{Bucket, ClosedQuery, SessionKey, SessionListQuery, StatsQuery};

/// What differs between the backends' read SQL.
pub trait ReadDialect: Database {
    /// An expression for the start of the UTC hour or day of the time in
    /// `column`, typed as a time the backend decodes into `DateTime<Utc>`.
    fn bucket_start(bucket: Bucket, column: &str) -> String;

    /// `sum(column)` as a 64-bit integer (PostgreSQL's sum of bigint is numeric).
    fn sum_i64(column: &str) -> String;

    /// Opens a condition the planner should take as unselective (matching
    /// about half the rows); `)` closes it. SQLite has no statistics and
    /// takes `close_reason IN (1, 2)` as selective: it would read every
    /// matching session through the reason index and sort them (250 ms at
    /// a million sessions) instead of walking the closed index in order and
    /// stopping after a page (3 ms). PostgreSQL has statistics.
    fn unselective_open() -> &'static str;

    /// Closes what `unselective_open` opened.
    fn unselective_close() -> &'static str;

    /// Appended to a text operand so it compares as bytes, as SQLite's
    /// default does and Rust's `str` order: `room_session_id` orders lists
    /// and breaks supersession ties, and a PostgreSQL database's collation
    /// may sort digits otherwise (a numeric ICU collation puts "10" after
    /// "9"), so the backends would list or open different sessions.
    const AS_BYTES: &'static str;
}

impl ReadDialect for sqlx::Postgres {
    fn bucket_start(bucket: Bucket, column: &str) -> String {
        match bucket {
            Bucket::None => "NULL::timestamptz".into(),
            Bucket::Hour => format!("date_trunc('hour', {column}, 'UTC')"),
            Bucket::Day => format!("date_trunc('day', {column}, 'UTC')"),
        }
    }

    fn sum_i64(column: &str) -> String {
        format!("sum({column})::bigint")
    }

    fn unselective_open() -> &'static str {
        "("
    }

    fn unselective_close() -> &'static str {
        ")"
    }

    const AS_BYTES: &'static str = " COLLATE \"C\"";
}

impl ReadDialect for sqlx::Sqlite {
    fn bucket_start(bucket: Bucket, column: &str) -> String {
        // strftime reads the stored '+00:00' times and writes the same form.
        match bucket {
            Bucket::None => "NULL".into(),
            Bucket::Hour => format!("strftime('%Y-%m-%dT%H:00:00+00:00', {column})"),
            Bucket::Day => format!("strftime('%Y-%m-%dT00:00:00+00:00', {column})"),
        }
    }

    fn sum_i64(column: &str) -> String {
        format!("sum({column})")
    }

    fn unselective_open() -> &'static str {
        "likelihood("
    }

    fn unselective_close() -> &'static str {
        ", 0.5)"
    }

    const AS_BYTES: &'static str = "";
}

/// A session row with its derived `state`.
fn session_columns<DB: ReadDialect>() -> String {
    format!(
        "s.appid, s.room_id, s.room_session_id, s.created_at, s.creator, s.closed_at,
                s.close_reason, s.started_at,
                CASE WHEN s.closed_at IS NOT NULL THEN 'closed'
                     WHEN {later} THEN 'superseded'
                     ELSE 'open' END AS state",
        later = later_lifecycle_exists::<DB>(),
    )
}

/// A session row with its derived `state` and `unique_users` (a list's
/// `ListedSession`). Admins are users any of whose intervals has role 4.
fn session_select<DB: ReadDialect>(include_admins: bool) -> String {
    let admins = if include_admins {
        ""
    } else {
        "HAVING max(CASE WHEN p.user_role = 4 THEN 1 ELSE 0 END) = 0"
    };
    format!(
        "SELECT {columns},
                (SELECT count(*) FROM (
                    SELECT p.user_account FROM presence_intervals p
                    WHERE p.appid = s.appid AND p.room_session_id = s.room_session_id
                    GROUP BY p.user_account {admins}
                ) u) AS unique_users
         FROM room_sessions s
         WHERE TRUE",
        columns = session_columns::<DB>(),
    )
}

/// "A later lifecycle of the same room exists" (`superseded`). Later means
/// a greater `(started_at, room_session_id)`, the room history's order, so
/// two lifecycles that started in the same millisecond are not both open
/// (migration 0005, which also gives the index this range, with the id's
/// bytes as its order on PostgreSQL).
fn later_lifecycle_exists<DB: ReadDialect>() -> String {
    let bytes = DB::AS_BYTES;
    format!(
        "EXISTS (SELECT 1 FROM room_sessions l
    WHERE l.appid = s.appid AND l.room_id = s.room_id
      AND (l.started_at, l.room_session_id{bytes}) > (s.started_at, s.room_session_id{bytes}))"
    )
}

pub fn closed<'a, DB>(q: &'a ClosedQuery) -> QueryBuilder<'a, DB>
where
    DB: ReadDialect,
    DB::Arguments<'a>: Default,
    i64: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    DateTime<Utc>: Encode<'a, DB> + Type<DB>,
{
    let mut sql = QueryBuilder::new(session_select::<DB>(q.include_admins));
    sql.push(" AND s.closed_at IS NOT NULL");
    if let Some(appid) = q.appid {
        sql.push(" AND s.appid = ").push_bind(appid);
    }
    if let Some(room_id) = &q.room_id {
        sql.push(" AND s.room_id = ").push_bind(room_id.as_str());
    }
    if !q.close_reasons.is_empty() {
        // One reason: its index serves the order (closed_at). Several: walk
        // the closed index in order, filtering (see `unselective_open`).
        let several = q.close_reasons.len() > 1;
        sql.push(" AND ");
        if several {
            sql.push(DB::unselective_open());
        }
        sql.push("s.close_reason IN (");
        let mut list = sql.separated(", ");
        for reason in &q.close_reasons {
            list.push_bind(*reason);
        }
        sql.push(")");
        if several {
            sql.push(DB::unselective_close());
        }
    }
    if let Some(from) = q.from {
        sql.push(" AND s.closed_at >= ").push_bind(from);
    }
    if let Some(to) = q.to {
        sql.push(" AND s.closed_at < ").push_bind(to);
    }
    keyset(&mut sql, "s.closed_at", q.after.as_ref(), q.limit);
    sql
}

pub fn room_history<'a, DB>(q: &'a SessionListQuery) -> QueryBuilder<'a, DB>
where
    DB: ReadDialect,
    DB::Arguments<'a>: Default,
    i64: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    DateTime<Utc>: Encode<'a, DB> + Type<DB>,
{
    let mut sql = QueryBuilder::new(session_select::<DB>(q.include_admins));
    sql.push(" AND s.room_id = ")
        .push_bind(q.room_id.as_deref().unwrap_or_default());
    if let Some(appid) = q.appid {
        sql.push(" AND s.appid = ").push_bind(appid);
    }
    keyset(&mut sql, "s.started_at", q.after.as_ref(), q.limit);
    sql
}

pub fn open_sessions<'a, DB>(q: &'a SessionListQuery) -> QueryBuilder<'a, DB>
where
    DB: ReadDialect,
    DB::Arguments<'a>: Default,
    i64: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    DateTime<Utc>: Encode<'a, DB> + Type<DB>,
{
    let mut sql = QueryBuilder::new(session_select::<DB>(q.include_admins));
    sql.push(" AND s.closed_at IS NULL AND NOT ");
    sql.push(later_lifecycle_exists::<DB>());
    if let Some(appid) = q.appid {
        sql.push(" AND s.appid = ").push_bind(appid);
    }
    keyset(&mut sql, "s.started_at", q.after.as_ref(), q.limit);
    sql
}

pub fn find_sessions<'a, DB>(room_session_id: &'a str, appid: Option<i64>) -> QueryBuilder<'a, DB>
where
    DB: ReadDialect,
    DB::Arguments<'a>: Default,
    i64: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
{
    // No user count: session detail counts from the participants it fetches.
    let mut sql = QueryBuilder::new(format!(
        "SELECT {} FROM room_sessions s WHERE s.room_session_id = ",
        session_columns::<DB>()
    ));
    sql.push_bind(room_session_id);
    if let Some(appid) = appid {
        sql.push(" AND s.appid = ").push_bind(appid);
    }
    sql.push(" ORDER BY s.appid");
    sql
}

/// Close-reason counts. Without a room filter they come from the hourly
/// rollup (thousands of rows however many sessions), and only the partial
/// hours at either end of the range (bounds off the hour) are counted from
/// the sessions themselves; with a room filter, all from the sessions,
/// through the room's index. Both give the same numbers (tested).
pub fn close_reason_counts<'a, DB>(q: &'a StatsQuery) -> QueryBuilder<'a, DB>
where
    DB: ReadDialect,
    DB::Arguments<'a>: Default,
    i64: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    DateTime<Utc>: Encode<'a, DB> + Type<DB>,
{
    let mut sql = QueryBuilder::new(format!(
        "SELECT bucket_start, close_reason, {} AS count FROM (",
        DB::sum_i64("n")
    ));
    match &q.room_id {
        Some(room_id) => {
            push_session_closes(&mut sql, q, q.from, q.to);
            sql.push(" AND room_id = ").push_bind(room_id.as_str());
        }
        None => {
            // Whole hours [hours_from, hours_to) from the rollup; the partial
            // hours outside them from the sessions.
            let hours_from = q.from.map(hour_ceil);
            let hours_to = q.to.map(hour_floor);
            let within_one_hour = matches!((hours_from, hours_to), (Some(f), Some(t)) if f >= t);
            // After the last hour an event time can start (year 9999)
            // there is no whole hour either, and the bound would not be
            // a time SQLite compares right.
            let after_the_last_hour =
                hours_from.is_some_and(|f| f.timestamp_millis() > EventTime::MAX_MS);
            if within_one_hour || after_the_last_hour {
                // No whole hour to take from the rollup.
                push_session_closes(&mut sql, q, q.from, q.to);
            } else {
                sql.push(format!(
                    "SELECT {} AS bucket_start, close_reason, closed_count AS n
                     FROM close_reason_hourly WHERE TRUE",
                    DB::bucket_start(q.bucket, "hour_start")
                ));
                if let Some(appid) = q.appid {
                    sql.push(" AND appid = ").push_bind(appid);
                }
                if let Some(f) = hours_from {
                    sql.push(" AND hour_start >= ").push_bind(f);
                }
                if let Some(t) = hours_to {
                    sql.push(" AND hour_start < ").push_bind(t);
                }
                if let (Some(from), Some(f)) = (q.from, hours_from)
                    && from < f
                {
                    sql.push(" UNION ALL ");
                    push_session_closes(&mut sql, q, Some(from), Some(f));
                }
                if let (Some(to), Some(t)) = (q.to, hours_to)
                    && t < to
                {
                    sql.push(" UNION ALL ");
                    push_session_closes(&mut sql, q, Some(t), Some(to));
                }
            }
        }
    }
    sql.push(") closes GROUP BY bucket_start, close_reason ORDER BY bucket_start, close_reason");
    sql
}

/// `SELECT bucket_start, close_reason, 1 AS n` for each closed session of
/// `q`'s appid closed in [from, to).
fn push_session_closes<'a, DB>(
    sql: &mut QueryBuilder<'a, DB>,
    q: &'a StatsQuery,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) where
    DB: ReadDialect,
    DB::Arguments<'a>: Default,
    i64: Encode<'a, DB> + Type<DB>,
    DateTime<Utc>: Encode<'a, DB> + Type<DB>,
{
    sql.push(format!(
        "SELECT {} AS bucket_start, close_reason, 1 AS n
         FROM room_sessions WHERE closed_at IS NOT NULL",
        DB::bucket_start(q.bucket, "closed_at")
    ));
    if let Some(appid) = q.appid {
        sql.push(" AND appid = ").push_bind(appid);
    }
    if let Some(from) = from {
        sql.push(" AND closed_at >= ").push_bind(from);
    }
    if let Some(to) = to {
        sql.push(" AND closed_at < ").push_bind(to);
    }
}

pub fn deliveries<'a, DB>(f: &'a DeliveryFilter) -> QueryBuilder<'a, DB>
where
    DB: ReadDialect,
    DB::Arguments<'a>: Default,
    i64: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    DateTime<Utc>: Encode<'a, DB> + Type<DB>,
{
    let mut sql = QueryBuilder::new("SELECT * FROM deliveries WHERE TRUE");
    if let Some(outcome) = &f.outcome {
        sql.push(" AND outcome = ").push_bind(outcome.as_str());
    }
    if let Some(from) = f.from {
        sql.push(" AND received_at >= ").push_bind(from);
    }
    if let Some(to) = f.to {
        sql.push(" AND received_at < ").push_bind(to);
    }
    if let Some(before) = f.before_id {
        sql.push(" AND id < ").push_bind(before);
    }
    sql.push(" ORDER BY id DESC LIMIT ").push_bind(f.limit);
    sql
}

// The columns of the participants and timeline queries, shared by their
// row form and their JSON form (macros, so `concat!` builds both at compile
// time). Both stores decode them by position, in this order. No ORDER BY:
// the store sorts the rows (`query::in_*_order`).
macro_rules! participant_columns {
    () => {
        "user_account, session_id, user_nickname, user_role, login_at, logout_at, \
         logout_reason, duration_ms"
    };
}
macro_rules! timeline_columns {
    () => {
        "event, event_at, received_at, user_account, session_id, user_role, reason"
    };
}
macro_rules! of_the_session {
    () => {
        " WHERE appid = $1 AND room_session_id = $2"
    };
}

/// A session's presence intervals.
pub const PARTICIPANTS: &str = concat!(
    "SELECT ",
    participant_columns!(),
    " FROM presence_intervals",
    of_the_session!()
);

/// A session's events.
pub const TIMELINE: &str = concat!(
    "SELECT ",
    timeline_columns!(),
    " FROM events",
    of_the_session!()
);

/// `PARTICIPANTS` and `TIMELINE` as one row each, a JSON array of row
/// arrays (SQLite only). sqlx hands SQLite rows from its worker thread one
/// at a time, a few microseconds each: a session of 1,000 participants
/// (3,000 rows) spent most of its detail request there.
pub const PARTICIPANTS_AS_JSON: &str = concat!(
    "SELECT json_group_array(json_array(",
    participant_columns!(),
    ")) FROM presence_intervals",
    of_the_session!()
);

pub const TIMELINE_AS_JSON: &str = concat!(
    "SELECT json_group_array(json_array(",
    timeline_columns!(),
    ")) FROM events",
    of_the_session!()
);

/// Newest first by `time_column`, then by key, resuming after `after`.
fn keyset<'a, DB>(
    sql: &mut QueryBuilder<'a, DB>,
    time_column: &str,
    after: Option<&'a SessionKey>,
    limit: i64,
) where
    DB: ReadDialect,
    i64: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    DateTime<Utc>: Encode<'a, DB> + Type<DB>,
{
    // The id compares as bytes, so on PostgreSQL the index gives the order
    // of (time, appid) and an incremental sort the id's within a tie: ties
    // are rare, and a deep page still starts at its place in the index.
    let bytes = DB::AS_BYTES;
    if let Some(key) = after {
        sql.push(format_args!(
            " AND ({time_column}, s.appid, s.room_session_id{bytes}) < ("
        ));
        sql.push_bind(key.at)
            .push(", ")
            .push_bind(key.appid)
            .push(", ")
            .push_bind(key.room_session_id.as_str())
            .push(")");
    }
    sql.push(format_args!(
        " ORDER BY {time_column} DESC, s.appid DESC, s.room_session_id{bytes} DESC LIMIT "
    ));
    sql.push_bind(limit);
}
