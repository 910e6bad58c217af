//! Storage: one `Store` trait, a PostgreSQL and a SQLite implementation.
//! The backend is chosen once, from the `DATABASE_URL` scheme; everything
//! else sees `Arc<dyn Store>`. SQL written once for both backends lives in
//! `read_sql`, `write_sql`, `purge_sql`, `rebuild_sql` and `snapshot`; what
//! differs between them, in `postgres/` and `sqlite/`.

mod advisory_locks;
mod batch_rows;
mod error;
pub mod group_commit;
mod merge;
mod model;
mod postgres;
mod purge_sql;
pub mod query;
mod read_sql;
pub mod rebuild;
mod rebuild_sql;
mod recorder;
mod report;
mod snapshot;
mod sqlite;
mod timed;
mod write;
mod write_sql;
pub mod writer_cpu;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use error::StoreError;
pub use model::{
    AppSnapshot, DeliveryFilter, DeliveryRecord, EventRecord, IntervalRecord, SessionRecord,
};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::domain::{Delivery, Outcome};
use query::{
    ClosedQuery, ListedSession, ParticipantRow, ReasonCount, SessionListQuery, SessionRow,
    StatsQuery, TimelineRow,
};

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Connection settings shared by both backends.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    /// How long a request waits for a connection, a lock or a statement
    /// before the store reports itself unavailable (503: ZEGO retries).
    pub timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            max_connections: 16,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Database connections of a store, for the pool gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub open: u32,
    pub idle: usize,
    pub max: u32,
}

/// Runs `write` again, up to three times, while PostgreSQL picks its
/// transaction as a deadlock or serialization victim: the victim is rolled
/// back whole, and run again it very likely succeeds (counted in
/// `zrt_write_retries_total`). Anything else is returned as it is.
pub async fn retrying_lock_conflicts<T, W, F>(mut write: W) -> Result<T, StoreError>
where
    W: FnMut() -> F,
    F: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut result = write().await;
    for _ in 0..3 {
        match &result {
            Err(e) if e.is_lock_conflict() => {
                crate::metrics::record_write_retry();
                result = write().await;
            }
            _ => break,
        }
    }
    result
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    fn pool_status(&self) -> PoolStatus;

    /// Closes the connections once in-flight work is done (shutdown).
    async fn close(&self);

    /// The same database through `connections` connections of its own,
    /// for a writer that runs on a runtime of its own (`group_commit`);
    /// call it on that runtime, which the connections then belong to.
    /// `None` where that gains nothing (SQLite: its connections already
    /// run on threads of their own, and it has one writer connection).
    /// PostgreSQL's writer store holds its write connections itself, one
    /// per worker, instead of pooling them (`postgres::held`).
    fn own_writer(&self, connections: u32) -> Option<Arc<dyn Store>>;

    /// Opens the backend's own write connection again from the calling
    /// thread, so a thread it runs on inherits that thread's CPU pinning
    /// (`store::writer_cpu`; SQLite's connection has a thread of its own).
    /// Nothing to do where statements run elsewhere (PostgreSQL).
    async fn reopen_writer_here(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Applies the embedded migrations of this backend.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// How many of this backend's migrations the database has not applied
    /// (all of them where it has none of our tables).
    async fn pending_migrations(&self) -> Result<usize, StoreError>;

    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Archives each delivery and, when it carries an accepted event, stores
    /// the event exactly once and merges it into sessions and presence, all
    /// in ONE transaction for the whole slice (group commit), in order, so
    /// duplicates and conflicts inside a batch behave as across batches. The
    /// replay guard is checked here, so replicas share it.
    async fn record_deliveries(&self, deliveries: &[Delivery]) -> Result<Vec<Outcome>, StoreError>;

    /// One delivery in its own transaction (run again if PostgreSQL picks
    /// it as a deadlock victim, as group commit runs a batch again).
    async fn record_delivery(&self, delivery: &Delivery) -> Result<Outcome, StoreError> {
        let one = std::slice::from_ref(delivery);
        let mut outcomes = retrying_lock_conflicts(|| self.record_deliveries(one)).await?;
        Ok(outcomes.pop().expect("one outcome per delivery"))
    }

    /// The delivery archive, newest first.
    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Closed sessions, newest close first.
    async fn list_closed(&self, query: &ClosedQuery) -> Result<Vec<ListedSession>, StoreError>;

    /// Every lifecycle of `query.room_id`, newest first.
    async fn room_history(
        &self,
        query: &SessionListQuery,
    ) -> Result<Vec<ListedSession>, StoreError>;

    /// Sessions in state `open`, newest first.
    async fn open_sessions(
        &self,
        query: &SessionListQuery,
    ) -> Result<Vec<ListedSession>, StoreError>;

    /// The session(s) with this id: one per appid that knows it (no user
    /// count: session detail counts the participants it fetches).
    async fn find_sessions(
        &self,
        room_session_id: &str,
        appid: Option<i64>,
    ) -> Result<Vec<SessionRow>, StoreError>;

    /// Closed sessions counted per close reason (and bucket).
    async fn close_reason_counts(&self, query: &StatsQuery)
    -> Result<Vec<ReasonCount>, StoreError>;

    /// A session's presence intervals.
    async fn participants(
        &self,
        appid: i64,
        room_session_id: &str,
    ) -> Result<Vec<ParticipantRow>, StoreError>;

    /// A session's events in ZEGO's time order.
    async fn timeline(
        &self,
        appid: i64,
        room_session_id: &str,
    ) -> Result<Vec<TimelineRow>, StoreError>;

    /// Deletes one batch of archived deliveries received before `before`;
    /// how many. Callers loop until 0.
    async fn purge_deliveries(&self, before: DateTime<Utc>, batch: i64) -> Result<u64, StoreError>;

    /// Deletes one batch of replay-guard entries first seen before `before`.
    async fn purge_replay_guard(
        &self,
        before: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64, StoreError>;

    /// Deletes one batch of sessions all of whose events are before `before`,
    /// with their events and presence, taking them out of the close rollup.
    async fn purge_sessions(&self, before: DateTime<Utc>, batch: i64) -> Result<u64, StoreError>;

    /// Re-derives everything from the delivery archive in one transaction
    /// (writers wait), decoding each archived delivery with `reassess`.
    async fn rebuild(
        &self,
        reassess: &(dyn for<'r> Fn(&'r DeliveryRecord) -> Delivery + Sync),
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<rebuild::RebuildReport, StoreError>;

    /// Runs a report's SQL (parameters already `$1`..`$3`), every value as JSON.
    async fn run_report(
        &self,
        sql: &str,
        params: &crate::reports::ReportParams,
    ) -> Result<crate::reports::ReportTable, StoreError>;

    /// Every event, session and presence interval of one appid, in a
    /// canonical order: what "the same final state" means in tests and `rebuild`.
    async fn app_snapshot(&self, appid: u32) -> Result<AppSnapshot, StoreError>;
}

/// Opens the database named by `url` (`postgres://…` or `sqlite:…`),
/// creating a SQLite file and its directory when missing. Does not migrate.
/// `connect_existing` does not create one.
pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url, options).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, options).await?))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}

/// Like `connect`, but a SQLite file that does not exist is an error, not
/// a new empty database: for commands that only read.
pub async fn connect_existing(
    url: &str,
    options: &ConnectOptions,
) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") && !SqliteStore::file_exists(url)? {
        return Err(StoreError::Refused(
            "there is no database file there (run the command where `serve` runs, or set DATABASE_URL)"
                .into(),
        ));
    }
    connect(url, options).await
}

/// The versions `_sqlx_migrations` records as applied (the same on both
/// backends).
const APPLIED_MIGRATIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success";

/// How many of `migrator`'s migrations `read` (the rows of
/// `APPLIED_MIGRATIONS`) lacks. A database where that table does not exist
/// (never migrated) has none applied. Any other error (no such database,
/// a refused login, no permission, a timeout) is itself: "run migrate"
/// would not fix it.
fn pending_of(
    migrator: &sqlx::migrate::Migrator,
    read: Result<Vec<i64>, sqlx::Error>,
) -> Result<usize, StoreError> {
    let applied = match read {
        Err(sqlx::Error::Database(db))
            if db.code().as_deref() == Some("42P01") // PostgreSQL's undefined_table
                || db.message().starts_with("no such table") =>
        {
            Vec::new()
        }
        read => read?,
    };
    Ok(migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .count())
}
