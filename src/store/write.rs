//! The write path's statements, written once for both backends (generic
//! over the sqlx backend). What differs comes from `WriteDialect`,
//! implemented in `postgres/` and `sqlite/`: how a batch's rows reach a
//! statement (`store::batch_rows`) and a handful of SQL texts. The
//! decisions are in `store::recorder` and `store::rebuild`.

use std::collections::HashMap;
use std::fmt::Write as _;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::error::BoxDynError;
use sqlx::{Arguments, Database, Encode, Executor, FromRow, IntoArguments, Transaction, Type};

use crate::domain::presence::PresenceInterval;
use crate::domain::{Outcome, ReplayKey};
use crate::store::StoreError;
use crate::store::batch_rows::{Column, Rows};
use crate::store::merge::{
    EventIdentity, GroupEventRow, GroupKey, GroupMemberRow, InsertedEventRow, LifecycleMerge,
    SessionTouch, StoredEventRow, touches_outside,
};
use crate::store::model::DeliveryRecord;
use crate::store::rebuild::{RebuildReport, RebuildTx};
use crate::store::rebuild_sql;
use crate::store::recorder::{
    ArchiveRow, CloseCount, DerivedWrites, FirstSteps, FirstStepsFound, NewEvent, ReplayClaim,
    WriteTx,
};
use crate::store::write_sql as sql;

/// The SQL that differs between backends.
pub trait WriteDialect: Database {
    /// SQL that yields `rows` rows of these columns, named `column1`,
    /// `column2`, … (as a `VALUES` list names them), from the bind
    /// parameters numbered from `first`.
    fn row_source(first: usize, rows: usize, columns: &[Column]) -> String;
    /// Adds `rows` to `args`, for the parameters of their `row_source`.
    fn bind_rows<'q>(args: &mut Self::Arguments<'q>, rows: Rows<'q>) -> Result<(), BoxDynError>;
    /// How many of `remaining` rows of `columns` columns the next statement
    /// of a step takes.
    fn statement_rows(remaining: usize, columns: usize) -> usize;
    /// Whether a batch's final writes (presence, session merges, rollup,
    /// archive), and its first statements (`WriteTx::first_steps`), go out
    /// as one statement of data-modifying CTEs each (PostgreSQL: one round
    /// trip) rather than one statement each (SQLite, which has no
    /// data-modifying CTEs and no round trips to save).
    const ONE_STATEMENT_WRITES: bool;
    /// Whether a batch's keys are looked up through `CROSS JOIN LATERAL
    /// (… OFFSET 0)` rather than a plain join. PostgreSQL plans a plain
    /// join by the table's statistics, which on a young table (before
    /// autovacuum's first ANALYZE) guess `event = 'room_login'` to match
    /// 0.5% of rows: it then reads the whole partial index for each batch
    /// (or each key), so every batch gets slower as the table grows. The
    /// lateral form is one index lookup per key whatever the statistics
    /// say. SQLite has no LATERAL; a CROSS JOIN loops over the keys.
    const LATERAL_LOOKUPS: bool;
    /// Whether transactions of this backend run side by side (so a batch
    /// must lock what it will update, in one order: `SessionTouch`).
    const CONCURRENT_WRITERS: bool;
    /// The two-argument minimum: PostgreSQL's `LEAST`, SQLite's `min`.
    const LEAST: &'static str;
    /// Appended to a text operand so that comparing it compares bytes, as
    /// the Rust side of the merge does (`merge.rs`, the smallest room id):
    /// PostgreSQL compares text in the database's collation, which on a
    /// database made with a language's locale puts `a` before `B`; SQLite
    /// compares bytes already.
    const AS_BYTES: &'static str;
    /// Keeps writers out for a rebuild, where the backend needs a statement for it.
    const LOCK_FOR_REBUILD: Option<&'static str>;
    /// Suffix of `CREATE TEMP TABLE … AS` for the rebuild's copies.
    const TEMP_TABLE_SUFFIX: &'static str;
    /// Whether the rebuild's copies must be dropped by hand before commit.
    const DROP_TEMP_TABLES: bool;
}

/// The bind parameters of `rows`, for a statement of them alone.
fn args<'q, DB: WriteDialect>(rows: Rows<'q>) -> Result<DB::Arguments<'q>, StoreError> {
    let mut args = DB::Arguments::default();
    DB::bind_rows(&mut args, rows).map_err(sqlx::Error::Encode)?;
    Ok(args)
}

/// An open write transaction, on a pooled connection (`'static`) or a
/// borrowed one.
pub struct Write<'c, DB: Database>(pub Transaction<'c, DB>);

impl<'c, DB: Database> Write<'c, DB> {
    pub fn new(tx: Transaction<'c, DB>) -> Write<'c, DB> {
        Write(tx)
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.0.commit().await?;
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        self.0.rollback().await?;
        Ok(())
    }
}

/// The statement `sql` makes of a row source, once per statement-sized
/// part of `rows`.
fn statements<'a, DB: WriteDialect>(
    rows: Rows<'a>,
    sql: impl Fn(&str) -> String,
) -> impl Iterator<Item = (String, Rows<'a>)> {
    let columns = rows.columns();
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (head, tail) = rest.split_at(DB::statement_rows(rest.len(), columns.len()));
        rest = tail;
        Some((sql(&DB::row_source(1, head.len(), columns)), head))
    })
}

#[async_trait]
impl<DB> WriteTx for Write<'_, DB>
where
    DB: WriteDialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'r> (i64, String): FromRow<'r, DB::Row>,
    for<'r> (String, String, String, String): FromRow<'r, DB::Row>,
    for<'r> InsertedEventRow: FromRow<'r, DB::Row>,
    for<'r> StoredEventRow: FromRow<'r, DB::Row>,
    for<'r> GroupMemberRow: FromRow<'r, DB::Row>,
    for<'r> GroupEventRow: FromRow<'r, DB::Row>,
    for<'r> FirstStepRow: FromRow<'r, DB::Row>,
{
    async fn claim_replay_keys(
        &mut self,
        claims: &[ReplayClaim<'_>],
    ) -> Result<HashMap<ReplayKey, String>, StoreError> {
        let mut first_bodies = HashMap::with_capacity(claims.len());
        for (sql, rows) in statements::<DB>(Rows::ReplayClaims(claims), sql::claim) {
            let rows = sqlx::query_as_with::<DB, (String, String, String, String), _>(
                &sql,
                args::<DB>(rows)?,
            )
            .fetch_all(&mut *self.0)
            .await?;
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

    fn concurrent_writers(&self) -> bool {
        DB::CONCURRENT_WRITERS
    }

    async fn touch_sessions(&mut self, touches: &[SessionTouch]) -> Result<(), StoreError> {
        let mut created: Vec<(i64, String)> = Vec::new();
        for (sql, rows) in statements::<DB>(Rows::NewSessions(touches), sql::bare_sessions) {
            created.extend(
                sqlx::query_as_with::<DB, (i64, String), _>(&sql, args::<DB>(rows)?)
                    .fetch_all(&mut *self.0)
                    .await?,
            );
        }
        // A row this transaction created holds its lock already and never
        // moves. (RETURNING's order is not promised: sort, then search.)
        created.sort_unstable();
        let existing: Vec<&SessionTouch> = touches_outside(touches, &created).collect();
        for (sql, rows) in statements::<DB>(Rows::SessionWidenings(&existing), sql::widen::<DB>) {
            sqlx::query_with::<DB, _>(&sql, args::<DB>(rows)?)
                .execute(&mut *self.0)
                .await?;
        }
        Ok(())
    }

    async fn insert_events(
        &mut self,
        events: &[NewEvent<'_, '_>],
    ) -> Result<Vec<(EventIdentity, i64)>, StoreError> {
        let mut inserted = Vec::with_capacity(events.len());
        for (sql, rows) in statements::<DB>(Rows::Events(events), sql::insert_events) {
            let rows = sqlx::query_as_with::<DB, InsertedEventRow, _>(&sql, args::<DB>(rows)?)
                .fetch_all(&mut *self.0)
                .await?;
            inserted.extend(rows.into_iter().map(|r| (r.identity(), r.id)));
        }
        Ok(inserted)
    }

    async fn find_events(
        &mut self,
        events: &[NewEvent<'_, '_>],
    ) -> Result<HashMap<EventIdentity, (i64, String)>, StoreError> {
        let mut found = HashMap::with_capacity(events.len());
        for (sql, rows) in statements::<DB>(Rows::EventKeys(events), sql::find_events::<DB>) {
            let rows = sqlx::query_as_with::<DB, StoredEventRow, _>(&sql, args::<DB>(rows)?)
                .fetch_all(&mut *self.0)
                .await?;
            for stored in rows {
                let identity = stored.row.identity();
                found.insert(identity, (stored.row.id, stored.content_sha256));
            }
        }
        Ok(found)
    }

    async fn presence_groups(
        &mut self,
        groups: &[GroupKey],
    ) -> Result<Vec<GroupMemberRow>, StoreError> {
        let mut found = Vec::new();
        for (sql, rows) in statements::<DB>(Rows::Groups(groups), sql::presence_groups::<DB>) {
            found.extend(
                sqlx::query_as_with::<DB, GroupMemberRow, _>(&sql, args::<DB>(rows)?)
                    .fetch_all(&mut *self.0)
                    .await?,
            );
        }
        Ok(found)
    }

    async fn first_steps(
        &mut self,
        steps: &FirstSteps<'_, '_, '_>,
    ) -> Result<FirstStepsFound, StoreError> {
        if !DB::ONE_STATEMENT_WRITES {
            return Err(StoreError::inconsistent(
                "this backend runs a batch's statements one by one",
            ));
        }
        let widenings: Vec<&SessionTouch> = steps.touches.iter().collect();
        let (sources, args) = row_sources::<DB, 5>([
            Rows::ReplayClaims(steps.claims),
            Rows::NewSessions(steps.touches),
            Rows::SessionWidenings(&widenings),
            Rows::Events(steps.events),
            Rows::Groups(steps.groups),
        ])?;
        // The statement is bound before the arguments that borrow it, so
        // it outlives them.
        let (statement, args) = (sql::first_steps::<DB>(&sources), args);
        let rows = sqlx::query_as_with::<DB, FirstStepRow, _>(&statement, args)
            .fetch_all(&mut *self.0)
            .await?;
        first_steps_found(rows)
    }

    async fn write_batch(
        &mut self,
        derived: &DerivedWrites,
        archive: &[ArchiveRow<'_>],
    ) -> Result<(), StoreError> {
        for (sql, rows) in statements::<DB>(
            Rows::Sessions(&derived.room_id_recounts),
            sql::recount_room_ids::<DB>,
        ) {
            sqlx::query_with::<DB, _>(&sql, args::<DB>(rows)?)
                .execute(&mut *self.0)
                .await?;
        }
        // Session rows first: PostgreSQL locks one statement's tables in
        // the order it names them, and every writer (and `rebuild`'s LOCK
        // TABLE) takes `room_sessions` before the presence, rollup and
        // archive tables. A batch that only archives (every delivery
        // rejected) reaches this statement with nothing locked, and named
        // `presence_intervals` first: it deadlocked with a rebuild.
        // (Clearing a group's presence still comes before inserting it,
        // which SQLite, running the pieces one by one, needs.)
        let pieces = [
            Piece::Merge(&derived.merges),
            Piece::ClearPresence(&derived.groups),
            Piece::Presence(&derived.intervals),
            Piece::CloseCounts(&derived.close_counts),
            Piece::Archive(archive),
        ];
        if pieces.iter().all(|p| p.rows().is_empty()) {
            return Ok(());
        }
        if DB::ONE_STATEMENT_WRITES {
            // One round trip, and one statement text whatever the batch
            // holds (empty pieces write nothing): each piece a
            // data-modifying CTE. They all see the snapshot from before the
            // statement, which is what each needs (the presence rows they
            // replace are held by the group locks; the upserts resolve
            // conflicts against the latest rows).
            // Before the arguments, which borrow it: it must outlive them.
            let mut sql = String::from("WITH ");
            let (sources, args) = row_sources::<DB, 5>(pieces.map(|p| p.rows()))?;
            for (n, (piece, source)) in pieces.iter().zip(&sources).enumerate() {
                if n > 0 {
                    sql.push_str(", ");
                }
                let _ = write!(sql, "w{n} AS ({})", piece.sql::<DB>(source));
            }
            sql.push_str(" SELECT 1");
            sqlx::query_with::<DB, _>(&sql, args)
                .execute(&mut *self.0)
                .await?;
        } else {
            for piece in &pieces {
                for (sql, rows) in statements::<DB>(piece.rows(), |rows| piece.sql::<DB>(rows)) {
                    sqlx::query_with::<DB, _>(&sql, args::<DB>(rows)?)
                        .execute(&mut *self.0)
                        .await?;
                }
            }
        }
        Ok(())
    }
}

/// A row of `write_sql::first_steps`: one statement's rows of several
/// shapes, told apart by `tag` (`write_sql::FirstStepTag`), in generic
/// columns.
#[derive(Debug, FromRow)]
pub struct FirstStepRow {
    tag: i32,
    appid: Option<i64>,
    id: Option<i64>,
    s1: Option<String>,
    s2: Option<String>,
    s3: Option<String>,
    s4: Option<String>,
    s5: Option<String>,
    s6: Option<String>,
    t1: Option<DateTime<Utc>>,
    t2: Option<DateTime<Utc>>,
    n1: Option<i64>,
    n2: Option<i64>,
}

/// Sorts `write_sql::first_steps`' rows into what each step found.
fn first_steps_found(rows: Vec<FirstStepRow>) -> Result<FirstStepsFound, StoreError> {
    use sql::FirstStepTag as Tag;
    fn some<T>(value: Option<T>, what: &str) -> Result<T, StoreError> {
        value.ok_or_else(|| StoreError::inconsistent(format!("first steps: no {what}")))
    }
    let mut found = FirstStepsFound::default();
    for r in rows {
        match Tag::of(r.tag) {
            Some(Tag::Claimed) => {
                let key = ReplayKey {
                    timestamp: some(r.s1, "timestamp")?,
                    nonce: some(r.s2, "nonce")?,
                    signature: some(r.s3, "signature")?,
                };
                found.first_bodies.insert(key, some(r.s4, "body digest")?);
            }
            Some(Tag::Created | Tag::Seen) => {
                let session = (some(r.appid, "appid")?, some(r.s1, "session")?);
                found.sessions_found.push(session);
            }
            Some(Tag::Widened) => {}
            Some(Tag::Inserted) => {
                let row = InsertedEventRow {
                    id: some(r.id, "id")?,
                    event: some(r.s1, "event")?,
                    appid: some(r.appid, "appid")?,
                    room_session_id: some(r.s2, "session")?,
                    user_account: r.s3,
                    session_id: r.s4,
                    event_at: some(r.t1, "event time")?,
                };
                found.inserted.push((row.identity(), row.id));
            }
            Some(Tag::Stored) => found.stored_group_rows.push(GroupMemberRow {
                group: GroupKey {
                    appid: some(r.appid, "appid")?,
                    room_session_id: some(r.s1, "session")?,
                    user_account: some(r.s2, "user")?,
                    session_id: some(r.s3, "user session")?,
                },
                event: GroupEventRow {
                    id: some(r.id, "id")?,
                    event: some(r.s4, "event")?,
                    event_at: some(r.t1, "event time")?,
                    login_at: r.t2,
                    reason: r.n1,
                    room_id: some(r.s5, "room id")?,
                    user_nickname: r.s6,
                    user_role: r.n2,
                },
            }),
            None => {
                return Err(StoreError::inconsistent(format!(
                    "first steps: a row tagged {}",
                    r.tag
                )));
            }
        }
    }
    found.sessions_found.sort_unstable();
    Ok(found)
}

/// Row sources for `parts`, to go in one statement (each part's
/// parameters numbered after the one before's), and their arguments.
fn row_sources<'q, DB: WriteDialect, const N: usize>(
    parts: [Rows<'q>; N],
) -> Result<([String; N], DB::Arguments<'q>), StoreError> {
    let mut args = DB::Arguments::default();
    let mut sources: [String; N] = std::array::from_fn(|_| String::new());
    for (source, rows) in sources.iter_mut().zip(parts) {
        *source = DB::row_source(args.len() + 1, rows.len(), rows.columns());
        DB::bind_rows(&mut args, rows).map_err(sqlx::Error::Encode)?;
    }
    Ok((sources, args))
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

impl<'a> Piece<'a, '_> {
    fn rows(&self) -> Rows<'a> {
        match *self {
            Piece::ClearPresence(r) => Rows::Groups(r),
            Piece::Presence(r) => Rows::Presence(r),
            Piece::Merge(r) => Rows::Merges(r),
            Piece::CloseCounts(r) => Rows::CloseCounts(r),
            Piece::Archive(r) => Rows::Archive(r),
        }
    }

    /// The statement, around a row source of this piece's rows.
    fn sql<DB: WriteDialect>(&self, rows: &str) -> String {
        match self {
            Piece::ClearPresence(_) => sql::clear_presence::<DB>(rows),
            Piece::Presence(_) => sql::insert_presence(rows),
            Piece::Merge(_) => sql::merge_sessions::<DB>(rows),
            Piece::CloseCounts(_) => sql::add_close_counts(rows),
            Piece::Archive(_) => sql::archive(rows),
        }
    }
}

/// Bind parameters one statement may carry on either backend (SQLite
/// 32,766; PostgreSQL 65,535), with room to spare.
pub const MAX_PARAMS: usize = 30_000;

/// Statement sizes for backends that bind row by row: power-of-two row
/// counts (the binary digits of the count, largest first), so that few
/// statement texts exist and all stay prepared, each under the
/// bind-parameter limit.
pub fn power_of_two_rows(remaining: usize, columns: usize) -> usize {
    let largest = prev_power_of_two((MAX_PARAMS / columns).clamp(1, 512));
    prev_power_of_two(remaining).min(largest)
}

/// The largest power of two not above `n` (`n` ≥ 1).
fn prev_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.leading_zeros())
}

#[async_trait]
impl<DB> RebuildTx for Write<'_, DB>
where
    DB: WriteDialect,
    for<'x> Write<'x, DB>: WriteTx,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'r> (i64, i64): FromRow<'r, DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> DeliveryRecord: FromRow<'r, DB::Row>,
{
    async fn keep_writers_out(&mut self) -> Result<(), StoreError> {
        if let Some(lock) = DB::LOCK_FOR_REBUILD {
            sqlx::query::<DB>(lock).execute(&mut *self.0).await?;
        }
        Ok(())
    }

    async fn set_aside_current_state(&mut self) -> Result<(), StoreError> {
        for (table, columns) in rebuild_sql::TABLES {
            let copy = rebuild_sql::set_aside(table, columns, DB::TEMP_TABLE_SUFFIX);
            sqlx::query::<DB>(&copy).execute(&mut *self.0).await?;
        }
        Ok(())
    }

    async fn events_without_delivery(&mut self) -> Result<i64, StoreError> {
        rebuild_sql::events_without_delivery::<DB>(&mut self.0).await
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
                let drop = rebuild_sql::drop_set_aside(table);
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
    fn row_by_row_statements_stay_under_the_parameter_limits_in_few_shapes() {
        let sizes = |mut rows: usize, columns| {
            let mut sizes = Vec::new();
            while rows > 0 {
                let n = power_of_two_rows(rows, columns);
                sizes.push(n);
                rows -= n;
            }
            sizes
        };
        assert_eq!(sizes(45, 4), [32, 8, 4, 1]);
        assert_eq!(sizes(45, 15_000), [[2; 22].as_slice(), &[1]].concat());
        assert_eq!(sizes(1_000, 4), [512, 256, 128, 64, 32, 8]);
    }

    #[test]
    fn row_sources_follow_the_dialect() {
        use Column::*;
        assert_eq!(
            <sqlx::Sqlite as WriteDialect>::row_source(3, 2, &[Int, Text]),
            "VALUES (?, ?), (?, ?)"
        );
        assert_eq!(
            <sqlx::Postgres as WriteDialect>::row_source(3, 2, &[Int, Text]),
            "SELECT * FROM UNNEST($3::bigint[], $4::text[]) AS r (column1, column2)"
        );
    }
}
