//! PostgreSQL store. Concurrency comes from many replicas and connections,
//! so every statement is safe under READ COMMITTED: identity by unique
//! indexes, session merges by upserts of commutative values, presence groups
//! serialised by a transaction-scoped advisory lock. Here: the pool,
//! reads, and the `Store` implementation; write transactions in
//! `write_tx`, the writer's held connections in `held`, the write path's
//! dialect in `write`.

mod held;
mod write;
mod write_tx;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sqlx::migrate::MigrateError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{
    Column, Connection, Executor, FromRow, PgConnection, PgPool, Postgres, QueryBuilder, Row,
    Statement, TypeInfo,
};

use crate::domain::time::format_instant;

use crate::domain::{Delivery, Outcome};
use crate::reports::{ReportParams, ReportTable};
use crate::store::advisory_locks::{self, BatchLocks};
use crate::store::model::{AppSnapshot, DeliveryFilter, DeliveryRecord};
use crate::store::purge_sql::{self, ExpiredSession};
use crate::store::query::{
    ClosedQuery, ListedSession, ParticipantRow, ReasonCount, SessionListQuery, SessionRow,
    StatsQuery, TimelineRow, in_participant_order, in_timeline_order,
};
use crate::store::rebuild::{self, RebuildReport};
use crate::store::report::{column_names, json_of, report_table};
use crate::store::write::Write;
use crate::store::{Backend, ConnectOptions, PoolStatus, Store, StoreError};
use crate::store::{read_sql, snapshot};
use write_tx::{SILENT_WRITE_LIMIT_IN_TIMEOUTS, WriteFailed, record_on};

/// This backend's migrations, embedded once for `migrate` and
/// `pending_migrations`.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

pub struct PgStore {
    pool: PgPool,
    /// The write transactions' connections, where this is the group-commit
    /// writer's store (`own_writer`); elsewhere they come from `pool`.
    held: Option<held::HeldConnections>,
}

impl PgStore {
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<PgStore, StoreError> {
        let timeout_ms = options.timeout.as_millis().to_string();
        let connect: PgConnectOptions = url.parse::<PgConnectOptions>()?.options([
            // A stuck lock or statement fails fast (503) instead of holding ZEGO's connection.
            ("statement_timeout", timeout_ms.as_str()),
            ("lock_timeout", timeout_ms.as_str()),
        ]);
        // No ping before each acquire: it is a round trip per transaction,
        // and sqlx already pings every connection when it is released. A
        // connection that died idle (a restart) fails its BEGIN or its read
        // instead, which `record_deliveries`, `begin` and `read` retry on
        // another.
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.timeout)
            .test_before_acquire(false)
            .connect_lazy_with(connect);
        Ok(PgStore { pool, held: None })
    }
}

/// Takes the exclusive advisory lock of each session `purge --sessions`
/// chose (`store::advisory_locks`; ingest holds the shared ones while it
/// writes), in key order, then returns those still expired: each
/// statement sees what committed before it began, so a callback stored
/// while the purge waited for its lock counts now, and so does a close it
/// brought (for the rollup). Two statements for the whole batch.
async fn lock_still_expired(
    conn: &mut PgConnection,
    before: DateTime<Utc>,
    chosen: &[ExpiredSession],
) -> Result<Vec<ExpiredSession>, StoreError> {
    let keys =
        advisory_locks::session_keys(chosen.iter().map(|s| (s.appid, s.room_session_id.as_str())));
    let (a, b): (Vec<i32>, Vec<i32>) = keys.into_iter().unzip();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(k.a, k.b) FROM unnest($1::int4[], $2::int4[]) AS k (a, b)",
    )
    .bind(a)
    .bind(b)
    .execute(&mut *conn)
    .await?;
    let appids: Vec<i64> = chosen.iter().map(|s| s.appid).collect();
    let ids: Vec<&str> = chosen.iter().map(|s| s.room_session_id.as_str()).collect();
    const STILL_EXPIRED: &str = concat!(
        "SELECT s.appid, s.room_session_id, s.closed_at, s.close_reason
         FROM unnest($2::int8[], $3::text[]) AS c (appid, room_session_id)
         JOIN room_sessions s ON s.appid = c.appid AND s.room_session_id = c.room_session_id
         WHERE ",
        purge_sql::is_expired!()
    );
    Ok(sqlx::query_as(STILL_EXPIRED)
        .bind(before)
        .bind(appids)
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?)
}

impl PgStore {
    /// Runs a read, again on another connection while the one it got had
    /// died idle (as after a database restart; the pool does not ping a
    /// connection before handing it out, and drops a dead one when it
    /// comes back), at most once per pooled connection: a read changes
    /// nothing, so it is safe to repeat.
    ///
    /// Each attempt is bounded here too: DATABASE_TIMEOUT_MS bounds the
    /// statement on the server and the wait for a connection, but not a
    /// connection that stopped answering (a firewall that dropped its
    /// state), on which a read, `/readyz` included, waited for the
    /// request's whole timeout. Past twice DATABASE_TIMEOUT_MS it is given
    /// up and the read tried on another connection.
    async fn read<'f, T>(
        &self,
        run: impl Fn() -> BoxFuture<'f, Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        let mut attempts = self.pool.options().get_max_connections();
        let limit = self.pool.options().get_acquire_timeout() * 2;
        loop {
            match tokio::time::timeout(limit, run()).await {
                Err(_) if attempts > 0 => {
                    attempts -= 1;
                    tracing::warn!(
                        ?limit,
                        "a read got no answer; retrying on another connection"
                    );
                }
                Err(_) => {
                    return Err(StoreError::Unusable(format!(
                        "PostgreSQL did not answer a read within {limit:?}"
                    )));
                }
                Ok(Err(e)) if attempts > 0 && connection_lost(&e) => {
                    attempts -= 1;
                    tracing::info!(error = %e, "read on a dead connection; retrying on another");
                }
                Ok(result) => return Ok(result?),
            }
        }
    }

    /// `read` of the rows of a `read_sql` query.
    async fn read_rows<'q, R>(
        &self,
        query: impl Fn() -> QueryBuilder<'q, Postgres> + Sync,
    ) -> Result<Vec<R>, StoreError>
    where
        R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        let query = &query;
        self.read(|| Box::pin(async move { query().build_query_as().fetch_all(&self.pool).await }))
            .await
    }
}

impl PgStore {
    /// A transaction on a pooled connection, for the operator's writes
    /// (purge, rebuild). Like the group-commit writer's, a BEGIN that fails
    /// because its connection died idle (a database restart) is retried on
    /// another, at most once per pooled connection: nothing but the BEGIN
    /// was sent. A failure after it is the caller's, as before.
    async fn begin(&self) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
        let mut attempts = self.pool.options().get_max_connections();
        loop {
            match self.pool.begin().await {
                Err(e) if attempts > 0 && connection_lost(&e) => {
                    attempts -= 1;
                    tracing::info!(error = %e, "BEGIN on a dead connection; retrying on another");
                }
                result => return Ok(result?),
            }
        }
    }

    /// One of `purge_sql`'s batch deletes (`$1` cut-off, `$2` batch size)
    /// in a transaction of its own (`begin`: a DELETE sent alone could not
    /// tell a dead connection from one that died after deleting); how many
    /// rows it deleted.
    async fn delete_batch(
        &self,
        statement: &'static str,
        before: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(statement)
            .bind(before)
            .bind(batch)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}

/// The connection is gone: a socket error, or the server ended the session
/// (SQLSTATE 57P01–57P03 at shutdown, class 08).
fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("57P") || code.starts_with("08")),
        _ => false,
    }
}

/// Why no connection opens within `limit`: the error of one attempt, or
/// the pool's timeout if that attempt times out too (or, now, succeeds).
async fn why_no_connection(options: &PgConnectOptions, limit: Duration) -> StoreError {
    match tokio::time::timeout(limit, PgConnection::connect_with(options)).await {
        Ok(Err(cause)) => StoreError::from(cause),
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            StoreError::Unavailable(sqlx::Error::PoolTimedOut)
        }
        Err(_) => StoreError::Unavailable(sqlx::Error::PoolTimedOut),
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn pool_status(&self) -> PoolStatus {
        PoolStatus {
            open: self.pool.size(),
            idle: self.pool.num_idle(),
            max: self.pool.options().get_max_connections(),
        }
    }

    async fn close(&self) {
        if let Some(held) = &self.held {
            held.close().await;
        }
        self.pool.close().await;
    }

    fn own_writer(&self, connections: u32) -> Option<Arc<dyn Store>> {
        let connect = (*self.pool.connect_options()).clone();
        let pool = self
            .pool
            .options()
            .clone()
            .max_connections(connections)
            .connect_lazy_with(connect.clone());
        Some(Arc::new(PgStore {
            pool,
            held: Some(held::HeldConnections::new(
                connect,
                self.pool.options().get_acquire_timeout(),
            )),
        }))
    }

    /// On a connection of its own without DATABASE_TIMEOUT_MS: that limit
    /// is for callbacks and reads, while a migration takes as long as its
    /// table's size makes it (0005 rebuilds an index, about 10 s at 10 M
    /// sessions), and a second process starting meanwhile waits that long
    /// for sqlx's migration lock. Both would fail half-way under it. Only
    /// opening the connection is bounded by it.
    async fn migrate(&self) -> Result<(), StoreError> {
        // The later `-c` of a setting wins in PostgreSQL's startup options.
        let unlimited = (*self.pool.connect_options())
            .clone()
            .options([("statement_timeout", "0"), ("lock_timeout", "0")]);
        let limit = self.pool.options().get_acquire_timeout();
        let one = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(limit)
            .connect_lazy_with(unlimited.clone());
        let migrated = MIGRATOR.run(&one).await;
        one.close().await;
        match migrated {
            // The pool retries a refused or failed connection until the
            // limit and then says only that it timed out; one more attempt
            // names the cause for the startup error.
            Err(MigrateError::Execute(sqlx::Error::PoolTimedOut)) => {
                Err(why_no_connection(&unlimited, limit).await)
            }
            migrated => Ok(migrated?),
        }
    }

    async fn pending_migrations(&self) -> Result<usize, StoreError> {
        let applied = sqlx::query_scalar(super::APPLIED_MIGRATIONS)
            .fetch_all(&self.pool)
            .await;
        // `report`'s first statement: name why no connection opened, as
        // `migrate` does for the commands that write.
        if let Err(sqlx::Error::PoolTimedOut) = applied {
            let limit = self.pool.options().get_acquire_timeout();
            return Err(why_no_connection(&self.pool.connect_options(), limit).await);
        }
        super::pending_of(&MIGRATOR, applied)
    }

    /// Ready means writable, as on SQLite: a standby after a failover, or
    /// a database made read-only, answers reads but refuses every callback.
    async fn ping(&self) -> Result<(), StoreError> {
        let read_only: String = self
            .read(|| {
                Box::pin(
                    sqlx::query_scalar("SELECT current_setting('transaction_read_only')")
                        .fetch_one(&self.pool),
                )
            })
            .await?;
        if read_only == "on" {
            return Err(StoreError::Unusable(
                "it takes no writes (transaction_read_only is on: a standby, or \
                 default_transaction_read_only)"
                    .into(),
            ));
        }
        Ok(())
    }

    async fn record_deliveries(&self, deliveries: &[Delivery]) -> Result<Vec<Outcome>, StoreError> {
        let locks = BatchLocks::of(deliveries);
        // A BEGIN that fails on a connection error (one that died while
        // idle, as after a database restart) is retried on another
        // connection, once per connection this store may have at most:
        // nothing but the BEGIN was sent. The dead one is dropped (sqlx
        // closes a pooled one when its ping fails).
        let mut attempts = self.pool.options().get_max_connections();
        // Every lock and statement has DATABASE_TIMEOUT_MS on the server;
        // this catches the connection that never answers at all (a hung
        // server, a middlebox that dropped the connection's state), which
        // would otherwise hold the writer, and every callback after it, for
        // good. Dropped, it is replaced by a new one at the next batch.
        let timeout = self.pool.options().get_acquire_timeout();
        let deadline = timeout * SILENT_WRITE_LIMIT_IN_TIMEOUTS;
        loop {
            let mut conn = self.write_connection().await?;
            let written =
                tokio::time::timeout(deadline, record_on(&mut conn, &locks, timeout, deliveries));
            let Ok(written) = written.await else {
                conn.discard();
                return Err(StoreError::Unavailable(sqlx::Error::Io(
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "PostgreSQL did not answer a write transaction within {deadline:?}; its connection was dropped"
                        ),
                    ),
                )));
            };
            match written {
                Ok(outcomes) => {
                    self.done_with(conn);
                    return Ok(outcomes);
                }
                Err(WriteFailed::Begin(e)) if attempts > 0 && connection_lost(&e) => {
                    attempts -= 1;
                    tracing::info!(error = %e, "BEGIN on a dead connection; retrying on another");
                }
                Err(WriteFailed::Begin(e)) => return Err(e.into()),
                Err(WriteFailed::Store(e)) => return Err(e),
            }
        }
    }

    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.read_rows(|| read_sql::deliveries::<Postgres>(filter))
            .await
    }

    async fn list_closed(&self, query: &ClosedQuery) -> Result<Vec<ListedSession>, StoreError> {
        self.read_rows(|| read_sql::closed::<Postgres>(query)).await
    }

    async fn room_history(
        &self,
        query: &SessionListQuery,
    ) -> Result<Vec<ListedSession>, StoreError> {
        self.read_rows(|| read_sql::room_history::<Postgres>(query))
            .await
    }

    async fn open_sessions(
        &self,
        query: &SessionListQuery,
    ) -> Result<Vec<ListedSession>, StoreError> {
        self.read_rows(|| read_sql::open_sessions::<Postgres>(query))
            .await
    }

    async fn find_sessions(
        &self,
        room_session_id: &str,
        appid: Option<i64>,
    ) -> Result<Vec<SessionRow>, StoreError> {
        self.read_rows(|| read_sql::find_sessions::<Postgres>(room_session_id, appid))
            .await
    }

    async fn close_reason_counts(
        &self,
        query: &StatsQuery,
    ) -> Result<Vec<ReasonCount>, StoreError> {
        self.read_rows(|| read_sql::close_reason_counts::<Postgres>(query))
            .await
    }

    async fn participants(
        &self,
        appid: i64,
        room_session_id: &str,
    ) -> Result<Vec<ParticipantRow>, StoreError> {
        let mut rows = self
            .read(|| {
                Box::pin(
                    sqlx::query(read_sql::PARTICIPANTS)
                        .bind(appid)
                        .bind(room_session_id)
                        .try_map(|row: PgRow| participant(&row))
                        .fetch_all(&self.pool),
                )
            })
            .await?;
        in_participant_order(&mut rows);
        Ok(rows)
    }

    async fn timeline(
        &self,
        appid: i64,
        room_session_id: &str,
    ) -> Result<Vec<TimelineRow>, StoreError> {
        let mut rows = self
            .read(|| {
                Box::pin(
                    sqlx::query(read_sql::TIMELINE)
                        .bind(appid)
                        .bind(room_session_id)
                        .try_map(|row: PgRow| timeline_entry(&row))
                        .fetch_all(&self.pool),
                )
            })
            .await?;
        in_timeline_order(&mut rows);
        Ok(rows)
    }

    async fn purge_deliveries(&self, before: DateTime<Utc>, batch: i64) -> Result<u64, StoreError> {
        self.delete_batch(purge_sql::DELIVERIES, before, batch)
            .await
    }

    async fn purge_replay_guard(
        &self,
        before: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64, StoreError> {
        self.delete_batch(purge_sql::REPLAY_GUARD, before, batch)
            .await
    }

    async fn purge_sessions(&self, before: DateTime<Utc>, batch: i64) -> Result<u64, StoreError> {
        // Where every session chosen turned out recent once locked, choose
        // again (those are no longer expired), so that 0 still means "none
        // left"; in a new transaction, as the locks of one choice must not
        // be held while taking the next's: those could sort below them, and
        // a callback batch taking its shared locks in order then waited for
        // the purge while holding one the purge waited for.
        loop {
            let mut tx = self.begin().await?;
            let chosen = purge_sql::expired_sessions::<Postgres>(&mut tx, before, batch).await?;
            if chosen.is_empty() {
                tx.commit().await?;
                return Ok(0);
            }
            let expired = lock_still_expired(&mut tx, before, &chosen).await?;
            if !expired.is_empty() {
                let purged = purge_sql::delete_sessions::<Postgres>(&mut tx, expired).await?;
                tx.commit().await?;
                return Ok(purged);
            }
            tx.rollback().await?;
        }
    }

    async fn rebuild(
        &self,
        reassess: &(dyn for<'r> Fn(&'r DeliveryRecord) -> Delivery + Sync),
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<RebuildReport, StoreError> {
        let mut tx = Write::new(self.begin().await?);
        let report = rebuild::rebuild(&mut tx, reassess, progress).await?;
        tx.commit().await?;
        Ok(report)
    }

    async fn run_report(
        &self,
        sql: &str,
        params: &ReportParams,
    ) -> Result<ReportTable, StoreError> {
        let rows = self
            .read(|| {
                Box::pin(
                    sqlx::query(sql)
                        .bind(params.from)
                        .bind(params.to)
                        .bind(params.appid)
                        .fetch_all(&self.pool),
                )
            })
            .await?;
        let columns = match rows.first() {
            Some(row) => column_names(row.columns()),
            None => {
                // The parameters' types as they are bound, so PostgreSQL
                // need not infer them from the SQL.
                let parameters = [
                    <DateTime<Utc> as sqlx::Type<Postgres>>::type_info(),
                    <DateTime<Utc> as sqlx::Type<Postgres>>::type_info(),
                    <i64 as sqlx::Type<Postgres>>::type_info(),
                ];
                let statement = self
                    .read(|| (&self.pool).prepare_with(sql, &parameters))
                    .await?;
                column_names(statement.columns())
            }
        };
        report_table(columns, &rows, |row, i| {
            let column = &row.columns()[i];
            Ok(match column.type_info().name() {
                "INT2" | "INT4" | "INT8" => json_of(
                    row.try_get::<Option<i64>, _>(i)
                        .or_else(|_| row.try_get::<Option<i32>, _>(i).map(|v| v.map(i64::from)))?,
                ),
                "FLOAT4" | "FLOAT8" => json_of(row.try_get::<Option<f64>, _>(i)?),
                "BOOL" => json_of(row.try_get::<Option<bool>, _>(i)?),
                "TIMESTAMPTZ" => json_of(
                    row.try_get::<Option<DateTime<Utc>>, _>(i)?
                        .map(format_instant),
                ),
                _ => json_of(row.try_get::<Option<String>, _>(i)?),
            })
        })
    }

    async fn app_snapshot(&self, appid: u32) -> Result<AppSnapshot, StoreError> {
        self.read(|| Box::pin(snapshot::app_snapshot(&self.pool, appid)))
            .await
    }
}

// A session's rows decoded by position, in `read_sql::PARTICIPANTS`' and
// `TIMELINE`'s column order, without the by-name lookup and type check per
// column that `FromRow` makes: 3,002 rows × 8 columns of a session detail
// spent about a tenth of its CPU there. The column types are the schema's;
// the conformance suite decodes every column.
fn participant(row: &PgRow) -> Result<ParticipantRow, sqlx::Error> {
    Ok(ParticipantRow {
        user_account: row.try_get_unchecked(0)?,
        session_id: row.try_get_unchecked(1)?,
        user_nickname: row.try_get_unchecked(2)?,
        user_role: row.try_get_unchecked(3)?,
        login_at: row.try_get_unchecked(4)?,
        logout_at: row.try_get_unchecked(5)?,
        logout_reason: row.try_get_unchecked(6)?,
        duration_ms: row.try_get_unchecked(7)?,
    })
}

fn timeline_entry(row: &PgRow) -> Result<TimelineRow, sqlx::Error> {
    Ok(TimelineRow {
        event: row.try_get_unchecked(0)?,
        event_at: row.try_get_unchecked(1)?,
        received_at: row.try_get_unchecked(2)?,
        user_account: row.try_get_unchecked(3)?,
        session_id: row.try_get_unchecked(4)?,
        user_role: row.try_get_unchecked(5)?,
        reason: row.try_get_unchecked(6)?,
    })
}
