//! The write path's statements, written once for both backends (generic
//! over the sqlx backend). What differs, a handful of SQL texts, comes from
//! `WriteDialect`, implemented in `postgres/` and `sqlite/`; the decisions
//! are in `store::recorder` and `store::rebuild`.

use std::collections::HashMap;
use std::fmt::Write as _;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Transaction, Type};

use crate::domain::presence::PresenceInterval;
use crate::domain::{Outcome, ReplayKey};
use crate::store::StoreError;
use crate::store::merge::{
    EventColumns, EventIdentity, GroupEventRow, GroupKey, GroupMemberRow, InsertedEventRow,
    LifecycleMerge, SessionTouch, outcome_reason,
};
use crate::store::model::DeliveryRecord;
use crate::store::rebuild::{RebuildReport, RebuildTx};
use crate::store::rebuild_sql;
use crate::store::recorder::{
    ArchiveRow, CloseCount, DerivedWrites, NewEvent, ReplayClaim, WriteTx,
};

/// The SQL that differs between backends.
pub trait WriteDialect: Database {
    /// `$1, $2, …` (PostgreSQL) rather than `?` (SQLite, which looks a
    /// numbered parameter up by name in a list: quadratic in a multi-row
    /// statement's parameters).
    const NUMBERED_PLACEHOLDERS: bool;
    /// Whether to cut a batch's rows into power-of-two statement sizes so
    /// that few statement texts exist and all stay prepared (SQLite, where
    /// an extra statement costs no round trip but a fresh prepare is
    /// expensive), rather than one statement per step (PostgreSQL, where
    /// round trips dominate).
    const FEW_STATEMENT_SHAPES: bool;
    /// Whether a batch's final writes (presence, session merges, rollup,
    /// archive) go out as one statement of data-modifying CTEs (PostgreSQL:
    /// one round trip) rather than one statement each (SQLite).
    const ONE_STATEMENT_WRITES: bool;
    /// The two-argument minimum: PostgreSQL's `LEAST`, SQLite's `min`.
    const LEAST: &'static str;
    /// Takes transaction-scoped locks on presence groups, where the backend
    /// has concurrent writers: the text before and after a `VALUES` list
    /// of group names, taken in list order.
    const LOCK_PRESENCE_GROUPS: Option<(&'static str, &'static str)>;
    /// Keeps writers out for a rebuild, where the backend needs a statement for it.
    const LOCK_FOR_REBUILD: Option<&'static str>;
    /// Suffix of `CREATE TEMP TABLE … AS` for the rebuild's copies.
    const TEMP_TABLE_SUFFIX: &'static str;
    /// Whether the rebuild's copies must be dropped by hand before commit.
    const DROP_TEMP_TABLES: bool;
}

/// An open write transaction.
pub struct Write<DB: Database>(pub Transaction<'static, DB>);

impl<DB: Database> Write<DB> {
    pub fn new(tx: Transaction<'static, DB>) -> Write<DB> {
        Write(tx)
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.0.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl<DB> WriteTx for Write<DB>
where
    DB: WriteDialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DateTime<Utc>>: Encode<'q, DB> + Type<DB>,
    for<'r> (i64, String): FromRow<'r, DB::Row>,
    for<'r> (String, String, String, String): FromRow<'r, DB::Row>,
    for<'r> InsertedEventRow: FromRow<'r, DB::Row>,
    for<'r> GroupMemberRow: FromRow<'r, DB::Row>,
    for<'r> GroupEventRow: FromRow<'r, DB::Row>,
{
    async fn claim_replay_keys(
        &mut self,
        claims: &[ReplayClaim<'_>],
    ) -> Result<HashMap<ReplayKey, String>, StoreError> {
        let mut first_bodies = HashMap::with_capacity(claims.len());
        for chunk in chunks::<DB, _>(claims, 5) {
            // DO UPDATE (a no-op) rather than DO NOTHING so RETURNING yields
            // the first body's digest of known keys too.
            let sql = format!(
                "INSERT INTO replay_guard (sent_timestamp, nonce, signature, body_sha256, first_seen_at)
                 {}
                 ON CONFLICT (sent_timestamp, nonce, signature)
                 DO UPDATE SET body_sha256 = replay_guard.body_sha256
                 RETURNING sent_timestamp, nonce, signature, body_sha256",
                values::<DB>(chunk.len(), 5)
            );
            let mut query = sqlx::query_as::<DB, (String, String, String, String)>(&sql);
            for c in chunk {
                query = query
                    .bind(c.key.timestamp.as_str())
                    .bind(c.key.nonce.as_str())
                    .bind(c.key.signature.as_str())
                    .bind(c.body_sha256)
                    .bind(c.at);
            }
            let rows = query.fetch_all(&mut *self.0).await?;
            for (timestamp, nonce, signature, body_sha256) in rows {
                let key = ReplayKey {
                    timestamp,
                    nonce,
                    signature,
                };
                first_bodies.insert(key, body_sha256);
            }
        }
        Ok(first_bodies)
    }

    async fn touch_presence_sessions(
        &mut self,
        touches: &[SessionTouch],
    ) -> Result<(), StoreError> {
        for chunk in chunks::<DB, _>(touches, 5) {
            let sql = format!(
                "INSERT INTO room_sessions (appid, room_session_id, room_id, first_event_at, started_at)
                 {}
                 ON CONFLICT (appid, room_session_id) DO NOTHING",
                values::<DB>(chunk.len(), 5)
            );
            let mut query = sqlx::query::<DB>(&sql);
            for t in chunk {
                query = query
                    .bind(t.appid)
                    .bind(t.room_session_id.as_str())
                    .bind(t.room_id.as_str())
                    .bind(t.first_event_at)
                    .bind(t.first_event_at);
            }
            query.execute(&mut *self.0).await?;

            // The WHERE updates (and so locks) a row only when this batch
            // moves its room id or first event time; a new row never moves.
            let least = DB::LEAST;
            let sql = format!(
                "WITH touched (appid, room_session_id, room_id, first_event_at) AS ({})
                 UPDATE room_sessions SET
                    room_id = {least}(room_sessions.room_id, touched.room_id),
                    first_event_at = {least}(room_sessions.first_event_at, touched.first_event_at),
                    started_at = COALESCE(room_sessions.created_at,
                        {least}(room_sessions.first_event_at, touched.first_event_at))
                 FROM touched
                 WHERE room_sessions.appid = touched.appid
                   AND room_sessions.room_session_id = touched.room_session_id
                   AND (room_sessions.first_event_at > touched.first_event_at
                        OR room_sessions.room_id > touched.room_id)",
                values::<DB>(chunk.len(), 4)
            );
            let mut query = sqlx::query::<DB>(&sql);
            for t in chunk {
                query = query
                    .bind(t.appid)
                    .bind(t.room_session_id.as_str())
                    .bind(t.room_id.as_str())
                    .bind(t.first_event_at);
            }
            query.execute(&mut *self.0).await?;
        }
        Ok(())
    }

    async fn lock_presence_groups(&mut self, groups: &[GroupKey]) -> Result<(), StoreError> {
        let Some((head, tail)) = DB::LOCK_PRESENCE_GROUPS else {
            return Ok(());
        };
        for chunk in chunks::<DB, _>(groups, 1) {
            let sql = format!("{head}{}{tail}", values::<DB>(chunk.len(), 1));
            let mut query = sqlx::query::<DB>(&sql);
            for g in chunk {
                query = query.bind(g.lock_name());
            }
            query.execute(&mut *self.0).await?;
        }
        Ok(())
    }

    async fn insert_events(
        &mut self,
        events: &[NewEvent<'_, '_>],
    ) -> Result<Vec<(EventIdentity, i64)>, StoreError> {
        let mut inserted = Vec::with_capacity(events.len());
        for chunk in chunks::<DB, _>(events, 15) {
            // The identity comes back with each id: RETURNING's row order
            // is not promised to follow VALUES.
            let sql = format!(
                "INSERT INTO events (event, appid, room_id, room_session_id, event_at, received_at,
                                     user_account, session_id, user_nickname, user_role, login_at,
                                     reason, creator, room_name, content_sha256)
                 {}
                 ON CONFLICT DO NOTHING
                 RETURNING id, event, appid, room_session_id, user_account, session_id, event_at",
                values::<DB>(chunk.len(), 15)
            );
            let mut query = sqlx::query_as::<DB, InsertedEventRow>(&sql);
            for e in chunk {
                let c = e.columns;
                query = query
                    .bind(c.event)
                    .bind(c.appid)
                    .bind(c.room_id)
                    .bind(c.room_session_id.as_str())
                    .bind(c.event_at)
                    .bind(e.received_at)
                    .bind(c.user_account)
                    .bind(c.session_id)
                    .bind(c.user_nickname)
                    .bind(c.user_role)
                    .bind(c.login_at)
                    .bind(c.reason)
                    .bind(c.creator)
                    .bind(c.room_name)
                    .bind(c.content_sha256);
            }
            let rows = query.fetch_all(&mut *self.0).await?;
            inserted.extend(rows.into_iter().map(|r| (r.identity(), r.id)));
        }
        Ok(inserted)
    }

    async fn find_event(&mut self, c: &EventColumns<'_>) -> Result<(i64, String), StoreError> {
        // Logins and logouts are identified by user, session and time too;
        // for creates and closes those are NULL and not part of the identity.
        Ok(sqlx::query_as::<DB, _>(
            "SELECT id, content_sha256 FROM events
             WHERE event = $1 AND appid = $2 AND room_session_id = $3
               AND ($4 IS NULL OR (user_account = $4 AND session_id = $5 AND event_at = $6))",
        )
        .bind(c.event)
        .bind(c.appid)
        .bind(c.room_session_id.as_str())
        .bind(c.user_account)
        .bind(c.session_id)
        .bind(c.event_at)
        .fetch_one(&mut *self.0)
        .await?)
    }

    async fn presence_groups(
        &mut self,
        groups: &[GroupKey],
    ) -> Result<Vec<GroupMemberRow>, StoreError> {
        let mut rows = Vec::new();
        for chunk in chunks::<DB, _>(groups, 4) {
            // One SELECT per kind, each with its kind as a literal, so each
            // can use that kind's identity index (a partial index on
            // appid, session, user, user session): a group's lookup stays
            // small however many users the room has.
            let select = |event: &str| {
                format!(
                    "SELECT e.appid, e.room_session_id, e.user_account, e.session_id, e.id, e.event,
                            e.event_at, e.login_at, e.reason, e.room_id, e.user_nickname, e.user_role
                     FROM g JOIN events e
                       ON e.appid = g.appid AND e.room_session_id = g.room_session_id
                      AND e.user_account = g.user_account AND e.session_id = g.session_id
                     WHERE e.event = '{event}'"
                )
            };
            let sql = format!(
                "WITH g (appid, room_session_id, user_account, session_id) AS ({})
                 {} UNION ALL {}",
                values::<DB>(chunk.len(), 4),
                select("room_login"),
                select("room_logout")
            );
            let mut query = sqlx::query_as::<DB, GroupMemberRow>(&sql);
            for g in chunk {
                query = query
                    .bind(g.appid)
                    .bind(g.room_session_id.as_str())
                    .bind(g.user_account.as_str())
                    .bind(g.session_id.as_str());
            }
            rows.extend(query.fetch_all(&mut *self.0).await?);
        }
        Ok(rows)
    }

    async fn write_batch(
        &mut self,
        derived: &DerivedWrites,
        archive: &[ArchiveRow<'_>],
    ) -> Result<(), StoreError> {
        let pieces = [
            Piece::ClearPresence(&derived.groups),
            Piece::Presence(&derived.intervals),
            Piece::Merge(&derived.merges),
            Piece::CloseCounts(&derived.close_counts),
            Piece::Archive(archive),
        ];
        let params: usize = pieces.iter().map(|p| p.rows() * p.columns()).sum();
        if DB::ONE_STATEMENT_WRITES && params <= MAX_PARAMS {
            // One round trip: each piece a data-modifying CTE. They all see
            // the snapshot from before the statement, which is what each
            // needs (the presence rows they replace are held by the group
            // locks; the upserts resolve conflicts against the latest rows).
            let mut sql = String::from("WITH ");
            let mut first_param = 1;
            for (n, piece) in pieces.iter().filter(|p| p.rows() > 0).enumerate() {
                if n > 0 {
                    sql.push_str(", ");
                }
                let values = values_from::<DB>(first_param, piece.rows(), piece.columns());
                let _ = write!(sql, "w{n} AS ({})", piece.sql::<DB>(&values));
                first_param += piece.rows() * piece.columns();
            }
            if first_param == 1 {
                return Ok(());
            }
            sql.push_str(" SELECT 1");
            let mut query = sqlx::query::<DB>(&sql);
            for piece in &pieces {
                query = piece.bind(query);
            }
            query.execute(&mut *self.0).await?;
        } else {
            for piece in &pieces {
                for chunk in piece.chunks::<DB>() {
                    let sql = chunk.sql::<DB>(&values::<DB>(chunk.rows(), chunk.columns()));
                    chunk
                        .bind(sqlx::query::<DB>(&sql))
                        .execute(&mut *self.0)
                        .await?;
                }
            }
        }
        Ok(())
    }
}

/// One statement's worth of a batch's final writes.
#[derive(Clone, Copy)]
enum Piece<'a, 'd> {
    /// Deletes the presence rows of these groups.
    ClearPresence(&'a [GroupKey]),
    Presence(&'a [(GroupKey, PresenceInterval)]),
    Merge(&'a [LifecycleMerge]),
    CloseCounts(&'a [CloseCount]),
    Archive(&'a [ArchiveRow<'d>]),
}

impl<'a, 'd> Piece<'a, 'd> {
    fn rows(&self) -> usize {
        match self {
            Piece::ClearPresence(r) => r.len(),
            Piece::Presence(r) => r.len(),
            Piece::Merge(r) => r.len(),
            Piece::CloseCounts(r) => r.len(),
            Piece::Archive(r) => r.len(),
        }
    }

    fn columns(&self) -> usize {
        match self {
            Piece::ClearPresence(_) => 4,
            Piece::Presence(_) => 13,
            Piece::Merge(_) => 9,
            Piece::CloseCounts(_) => 4,
            Piece::Archive(_) => 14,
        }
    }

    /// The piece cut into statement-sized pieces.
    fn chunks<DB: WriteDialect>(self) -> Vec<Piece<'a, 'd>> {
        let columns = self.columns();
        match self {
            Piece::ClearPresence(r) => chunks::<DB, _>(r, columns)
                .map(Piece::ClearPresence)
                .collect(),
            Piece::Presence(r) => chunks::<DB, _>(r, columns).map(Piece::Presence).collect(),
            Piece::Merge(r) => chunks::<DB, _>(r, columns).map(Piece::Merge).collect(),
            Piece::CloseCounts(r) => chunks::<DB, _>(r, columns)
                .map(Piece::CloseCounts)
                .collect(),
            Piece::Archive(r) => chunks::<DB, _>(r, columns).map(Piece::Archive).collect(),
        }
    }

    /// The statement, around a `VALUES` list of this piece's rows.
    fn sql<DB: WriteDialect>(&self, values: &str) -> String {
        let least = DB::LEAST;
        match self {
            // Through the ids the group index finds: SQLite plans a row-value
            // `IN (VALUES …)` as a scan of the whole table. (Both backends
            // name a VALUES list's columns column1, column2, ….)
            Piece::ClearPresence(_) => format!(
                "DELETE FROM presence_intervals WHERE id IN (
                     SELECT p.id FROM ({values}) AS g
                     JOIN presence_intervals p
                       ON p.appid = g.column1 AND p.room_session_id = g.column2
                      AND p.user_account = g.column3 AND p.session_id = g.column4)"
            ),
            Piece::Presence(_) => format!(
                "INSERT INTO presence_intervals (appid, room_session_id, user_account, session_id,
                    room_id, user_nickname, user_role, login_at, logout_at, logout_reason,
                    duration_ms, login_event_id, logout_event_id)
                 {values}"
            ),
            // At most one create and one close are ever stored per session,
            // so COALESCE and LEAST give the same row in every arrival order.
            Piece::Merge(_) => format!(
                "INSERT INTO room_sessions (appid, room_session_id, room_id, created_at, creator,
                                            closed_at, close_reason, first_event_at, started_at)
                 {values}
                 ON CONFLICT (appid, room_session_id) DO UPDATE SET
                    room_id = {least}(room_sessions.room_id, excluded.room_id),
                    created_at = COALESCE(room_sessions.created_at, excluded.created_at),
                    creator = COALESCE(room_sessions.creator, excluded.creator),
                    closed_at = COALESCE(room_sessions.closed_at, excluded.closed_at),
                    close_reason = COALESCE(room_sessions.close_reason, excluded.close_reason),
                    first_event_at = {least}(room_sessions.first_event_at, excluded.first_event_at),
                    started_at = COALESCE(room_sessions.created_at, excluded.created_at,
                        {least}(room_sessions.first_event_at, excluded.first_event_at))"
            ),
            Piece::CloseCounts(_) => format!(
                "INSERT INTO close_reason_hourly (appid, hour_start, close_reason, closed_count)
                 {values}
                 ON CONFLICT (appid, hour_start, close_reason)
                 DO UPDATE SET closed_count = close_reason_hourly.closed_count + excluded.closed_count"
            ),
            Piece::Archive(_) => format!(
                "INSERT INTO deliveries (received_at, remote_addr, endpoint, content_type, body,
                                         body_sha256, event, appid, room_id, room_session_id,
                                         outcome, reason, detail, event_id)
                 {values}"
            ),
        }
    }

    /// Binds this piece's rows, in `sql`'s placeholder order.
    fn bind<'q, DB>(&self, mut q: Query<'q, DB>) -> Query<'q, DB>
    where
        'a: 'q,
        'd: 'q,
        DB: Database,
        i64: Encode<'q, DB> + Type<DB>,
        Option<i64>: Encode<'q, DB> + Type<DB>,
        &'q str: Encode<'q, DB> + Type<DB>,
        Option<&'q str>: Encode<'q, DB> + Type<DB>,
        Option<String>: Encode<'q, DB> + Type<DB>,
        &'q [u8]: Encode<'q, DB> + Type<DB>,
        DateTime<Utc>: Encode<'q, DB> + Type<DB>,
        Option<DateTime<Utc>>: Encode<'q, DB> + Type<DB>,
    {
        match *self {
            Piece::ClearPresence(groups) => {
                for g in groups {
                    q = q
                        .bind(g.appid)
                        .bind(g.room_session_id.as_str())
                        .bind(g.user_account.as_str())
                        .bind(g.session_id.as_str());
                }
            }
            Piece::Presence(intervals) => {
                for (g, i) in intervals {
                    q = q
                        .bind(g.appid)
                        .bind(g.room_session_id.as_str())
                        .bind(g.user_account.as_str())
                        .bind(g.session_id.as_str())
                        .bind(i.room_id.as_str())
                        .bind(i.user_nickname.as_deref())
                        .bind(i.user_role)
                        .bind(i.login_at.map(|t| t.to_utc()))
                        .bind(i.logout_at.map(|t| t.to_utc()))
                        .bind(i.logout_reason)
                        .bind(i.duration_ms)
                        .bind(i.login_event_id)
                        .bind(i.logout_event_id);
                }
            }
            Piece::Merge(merges) => {
                for m in merges {
                    q = q
                        .bind(m.appid)
                        .bind(m.room_session_id.as_str())
                        .bind(m.room_id.as_str())
                        .bind(m.created_at)
                        .bind(m.creator.as_deref())
                        .bind(m.closed_at)
                        .bind(m.close_reason)
                        .bind(m.first_event_at)
                        .bind(m.started_at());
                }
            }
            Piece::CloseCounts(counts) => {
                for c in counts {
                    q = q
                        .bind(c.appid)
                        .bind(c.hour_start)
                        .bind(c.close_reason)
                        .bind(c.count);
                }
            }
            Piece::Archive(rows) => {
                for a in rows {
                    let d = a.delivery;
                    let (reason, detail) = outcome_reason(a.outcome);
                    q = q
                        .bind(d.received_at)
                        .bind(d.remote_addr.as_deref())
                        .bind(d.endpoint.as_str())
                        .bind(d.content_type.as_deref())
                        .bind(d.body.as_ref())
                        .bind(d.body_sha256.as_str())
                        .bind(d.summary.event.as_deref())
                        .bind(d.summary.appid.map(i64::from))
                        .bind(d.summary.room_id.as_deref())
                        .bind(d.summary.room_session_id.as_deref())
                        .bind(a.outcome.as_str())
                        .bind(reason)
                        .bind(detail)
                        .bind(a.event_id);
                }
            }
        }
        q
    }
}

type Query<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// Bind parameters one statement may carry on either backend (SQLite
/// 32,766; PostgreSQL 65,535), with room to spare.
const MAX_PARAMS: usize = 30_000;

/// `VALUES (…), (…), …`: `rows` tuples of `columns` placeholders.
fn values<DB: WriteDialect>(rows: usize, columns: usize) -> String {
    values_from::<DB>(1, rows, columns)
}

/// `values`, numbering placeholders from `$first` (PostgreSQL).
fn values_from<DB: WriteDialect>(first: usize, rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(8 + rows * columns * 6);
    sql.push_str("VALUES ");
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            if DB::NUMBERED_PLACEHOLDERS {
                let _ = write!(sql, "${}", first + r * columns + c);
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql
}

/// Splits `rows` into multi-row statements under both backends'
/// bind-parameter limits (SQLite 32,766; PostgreSQL 65,535): as few as
/// possible, or, where the dialect wants few statement shapes, of
/// power-of-two sizes (the binary digits of the count, largest first).
fn chunks<DB: WriteDialect, T>(rows: &[T], columns: usize) -> impl Iterator<Item = &[T]> {
    let largest = prev_power_of_two((MAX_PARAMS / columns).clamp(1, 512));
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = if DB::FEW_STATEMENT_SHAPES {
            prev_power_of_two(rest.len()).min(largest)
        } else {
            rest.len().min(largest)
        };
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// The largest power of two not above `n` (`n` ≥ 1).
fn prev_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.leading_zeros())
}

#[async_trait]
impl<DB> RebuildTx for Write<DB>
where
    DB: WriteDialect,
    Write<DB>: WriteTx,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'r> (i64, i64): FromRow<'r, DB::Row>,
    for<'r> DeliveryRecord: FromRow<'r, DB::Row>,
{
    async fn set_aside_current_state(&mut self) -> Result<(), StoreError> {
        if let Some(lock) = DB::LOCK_FOR_REBUILD {
            sqlx::query::<DB>(lock).execute(&mut *self.0).await?;
        }
        for (table, columns) in rebuild_sql::TABLES {
            let copy = rebuild_sql::set_aside(table, columns, DB::TEMP_TABLE_SUFFIX);
            sqlx::query::<DB>(&copy).execute(&mut *self.0).await?;
        }
        Ok(())
    }

    async fn clear_derived(&mut self) -> Result<(), StoreError> {
        rebuild_sql::clear_derived::<DB>(&mut self.0).await
    }

    async fn archived_after(
        &mut self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        rebuild_sql::archived_after::<DB>(&mut self.0, after, limit).await
    }

    async fn set_delivery_result(
        &mut self,
        id: i64,
        outcome: &Outcome,
        event_id: Option<i64>,
    ) -> Result<(), StoreError> {
        rebuild_sql::set_delivery_result::<DB>(&mut self.0, id, outcome, event_id).await
    }

    async fn compare_with_set_aside(
        &mut self,
        report: &mut RebuildReport,
    ) -> Result<(), StoreError> {
        rebuild_sql::compare_with_set_aside::<DB>(&mut self.0, report).await?;
        if DB::DROP_TEMP_TABLES {
            for (table, _) in rebuild_sql::TABLES {
                let drop = format!("DROP TABLE temp.rebuild_old_{table}");
                sqlx::query::<DB>(&drop).execute(&mut *self.0).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_stay_under_the_parameter_limits_in_few_shapes() {
        let rows: Vec<u32> = (0..45).collect();
        let sizes = |columns| -> Vec<usize> {
            chunks::<sqlx::Sqlite, _>(&rows, columns)
                .map(<[u32]>::len)
                .collect()
        };
        assert_eq!(sizes(4), [32, 8, 4, 1]);
        assert_eq!(sizes(15_000), [[2; 22].as_slice(), &[1]].concat());
        let sizes: Vec<usize> = chunks::<sqlx::Postgres, _>(&rows, 4)
            .map(<[u32]>::len)
            .collect();
        assert_eq!(sizes, [45]);
        assert_eq!(chunks::<sqlx::Postgres, _>(&rows[..0], 4).count(), 0);
    }

    #[test]
    fn placeholders_follow_the_dialect() {
        assert_eq!(values::<sqlx::Postgres>(2, 2), "VALUES ($1, $2), ($3, $4)");
        assert_eq!(values::<sqlx::Sqlite>(2, 2), "VALUES (?, ?), (?, ?)");
    }
}
