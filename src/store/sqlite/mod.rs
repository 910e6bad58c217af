//! SQLite store: the zero-setup default. SQLite allows one writer at a time,
//! so writes go through exactly one connection (`writer.rs`: no lock
//! upgrades, no SQLITE_BUSY between our own requests) and reads through a
//! pool. WAL journal with `synchronous = FULL`: a 2xx means the commit is on
//! disk.

mod write;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Column, Connection, Executor, Row, Sqlite, SqlitePool, Statement, TypeInfo, ValueRef};

use crate::domain::{Delivery, Outcome};
use crate::reports::{ReportParams, ReportTable};
use crate::store::model::{AppSnapshot, DeliveryFilter, DeliveryRecord};
use crate::store::purge_sql;
use crate::store::query::{
    ClosedQuery, ListedSession, ParticipantRow, ReasonCount, SessionListQuery, SessionRow,
    StatsQuery, TimelineRow, in_participant_order, in_timeline_order,
};
use crate::store::rebuild::{self, RebuildReport};
use crate::store::recorder::record;
use crate::store::report::{column_names, json_of, report_table};
use crate::store::timed::{Timed, WriteStep, timed};
use crate::store::write::Write;
use crate::store::{Backend, ConnectOptions, PoolStatus, Store, StoreError};
use crate::store::{read_sql, snapshot};
use writer::Writer;

/// This backend's migrations, embedded once for `migrate` and
/// `pending_migrations`.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

pub struct SqliteStore {
    writer: Writer,
    reader: SqlitePool,
    /// The database file, locked while migrating (`migration_lock`).
    file: std::path::PathBuf,
}

impl SqliteStore {
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<SqliteStore, StoreError> {
        let connect: SqliteConnectOptions = url
            .parse::<SqliteConnectOptions>()?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            // Checkpoint (copy the WAL back into the database file) every
            // 10,000 pages (about 40 MB of WAL) instead of 1,000: index pages
            // that many batches dirty are then copied once instead of about
            // ten times, and commits got about 7% faster under full load
            // (docs/benchmarks.md).
            .pragma("wal_autocheckpoint", "10000")
            // Waits this long for another process's lock (a backup, a second server), then 503.
            .busy_timeout(options.timeout)
            // PostgreSQL's byte-order collation by its name, so the
            // reports' `COLLATE "C"` orders text alike on both backends
            // (SQLite's own default, BINARY, is the same order).
            .collation("C", |a: &str, b: &str| a.cmp(b));
        // SQLite opens an empty name as a private temporary database, one
        // per connection: the writer's migrated tables were then missing for
        // every reader, and nothing outlived the process (`sqlite://$UNSET`).
        // In memory, a 2xx would not mean the callback is on disk: it is gone
        // when the process ends.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if connect.get_filename().as_os_str().is_empty() || in_memory {
            return Err(StoreError::Refused(
                "a SQLite DATABASE_URL must name a file, e.g. sqlite://data/zego-room-tracker.db"
                    .into(),
            ));
        }
        if let Some(dir) = connect
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(sqlx::Error::Io(e)))?;
        }
        // Its thread named, to be told from the readers' (`top -H`, and the
        // test that checks its CPU pinning). Linux keeps 15 bytes of a name.
        let writer_options = connect
            .clone()
            .thread_name(|id| format!("sqlite-writer{id}"));
        let file = connect.get_filename().to_owned();
        let writer = Writer::open(writer_options, options.timeout).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.timeout)
            .connect_lazy_with(connect.read_only(true));
        Ok(SqliteStore {
            writer,
            reader,
            file,
        })
    }
}

impl SqliteStore {
    /// An exclusive `flock` on the database file's directory, held while
    /// migrating: sqlx takes no lock around SQLite migrations, so two
    /// processes starting on a fresh file both applied the first one and
    /// one failed ("table events already exists"). The second now waits,
    /// then finds nothing to do. Not on the database file itself: closing
    /// any descriptor of that file drops every POSIX lock this process
    /// holds on it, SQLite's included, and another process then took
    /// itself for the last one open and deleted the WAL under this one's
    /// readers ("database disk image is malformed"). `None` where there is
    /// no plain file (in memory, a `file:` URI).
    async fn migration_lock(&self) -> Result<Option<std::fs::File>, StoreError> {
        if !self.file.is_file() {
            return Ok(None);
        }
        let dir = match self.file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => std::path::PathBuf::from("."),
        };
        tokio::task::spawn_blocking(move || {
            let handle = std::fs::File::open(&dir)?;
            handle.lock()?;
            Ok(Some(handle))
        })
        .await
        .map_err(|e| StoreError::Unusable(format!("waiting for the migration lock: {e}")))?
        .map_err(|e: std::io::Error| StoreError::Unavailable(sqlx::Error::Io(e)))
    }

    /// Whether the file `url` names exists (an in-memory database always does).
    pub fn file_exists(url: &str) -> Result<bool, StoreError> {
        let options = url.parse::<SqliteConnectOptions>()?;
        let file = options.get_filename();
        // A `file:` URI is SQLite's to resolve (its query and all): not
        // checked here, it fails on opening if it is not there.
        let uri = file.to_str().is_some_and(|f| f.starts_with("file:"));
        Ok(uri || file.as_os_str() == ":memory:" || file.exists())
    }

    /// A session's rows fetched as one JSON array (`read_sql::*_AS_JSON`).
    async fn json_rows<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        appid: i64,
        room_session_id: &str,
    ) -> Result<Vec<T>, StoreError> {
        let json: String = sqlx::query_scalar(sql)
            .bind(appid)
            .bind(room_session_id)
            .fetch_one(&self.reader)
            .await?;
        serde_json::from_str(&json)
            .map_err(|e| StoreError::Internal(sqlx::Error::Decode(Box::new(e))))
    }
}

/// A time as this store writes it (RFC 3339 text).
fn stored_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .map_err(|e| StoreError::Internal(sqlx::Error::Decode(Box::new(e))))
}

impl SqliteStore {
    /// One of `purge_sql`'s batch deletes (`$1` cut-off, `$2` batch size)
    /// on the write connection; how many rows it deleted.
    async fn delete_batch(
        &self,
        statement: &'static str,
        before: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64, StoreError> {
        self.writer
            .run(async |connection| {
                let done = sqlx::query(statement)
                    .bind(before)
                    .bind(batch)
                    .execute(connection)
                    .await?;
                Ok(done.rows_affected())
            })
            .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn pool_status(&self) -> PoolStatus {
        let (writer_open, writer_idle) = self.writer.status();
        PoolStatus {
            open: writer_open + self.reader.size(),
            idle: writer_idle as usize + self.reader.num_idle(),
            max: 1 + self.reader.options().get_max_connections(),
        }
    }

    async fn close(&self) {
        // Readers first: the last connection to close folds the WAL into
        // the database and deletes it, which a read-only one cannot do.
        // sqlx gives a used connection back to its pool from a task of its
        // own, and one arriving after `close` has emptied the pool stays
        // there open: closing again closes it. With the writer closed first
        // the WAL was left behind after about one `report` in five.
        let patience = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            self.reader.close().await;
            if self.reader.size() == 0 || tokio::time::Instant::now() >= patience {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.writer.close().await;
    }

    fn own_writer(&self, _connections: u32) -> Option<Arc<dyn Store>> {
        None
    }

    async fn reopen_writer_here(&self) -> Result<(), StoreError> {
        self.writer.reopen().await
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let _lock = self.migration_lock().await?;
        self.writer
            .run(async |connection| Ok(MIGRATOR.run_direct(connection).await?))
            .await
    }

    async fn pending_migrations(&self) -> Result<usize, StoreError> {
        let applied = sqlx::query_scalar(super::APPLIED_MIGRATIONS)
            .fetch_all(&self.reader)
            .await;
        super::pending_of(&MIGRATOR, applied)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // Ready means writable: take the write lock, so a file another
        // process holds shows as not ready, and change a page, rolled back:
        // SQLite grants the lock on a file it may only read (a read-only
        // file or mount) and refuses only the first page written.
        self.writer
            .run(async |connection| {
                let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
                sqlx::query("PRAGMA user_version = 0")
                    .execute(&mut *tx)
                    .await?;
                Ok(tx.rollback().await?)
            })
            .await
    }

    async fn record_deliveries(&self, deliveries: &[Delivery]) -> Result<Vec<Outcome>, StoreError> {
        // IMMEDIATE takes the write lock up front, so a lock held by another
        // process is waited for (busy_timeout) rather than failing mid-way.
        self.writer
            .run(async |connection| {
                let begin = connection.begin_with("BEGIN IMMEDIATE");
                let mut tx = Write::new(timed(WriteStep::Begin, begin).await?);
                let outcomes = record(&mut Timed(&mut tx), deliveries).await?;
                timed(WriteStep::Commit, tx.commit()).await?;
                Ok(outcomes)
            })
            .await
    }

    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        Ok(read_sql::deliveries::<Sqlite>(filter)
            .build_query_as()
            .fetch_all(&self.reader)
            .await?)
    }

    async fn list_closed(&self, query: &ClosedQuery) -> Result<Vec<ListedSession>, StoreError> {
        Ok(read_sql::closed::<Sqlite>(query)
            .build_query_as()
            .fetch_all(&self.reader)
            .await?)
    }

    async fn room_history(
        &self,
        query: &SessionListQuery,
    ) -> Result<Vec<ListedSession>, StoreError> {
        Ok(read_sql::room_history::<Sqlite>(query)
            .build_query_as()
            .fetch_all(&self.reader)
            .await?)
    }

    async fn open_sessions(
        &self,
        query: &SessionListQuery,
    ) -> Result<Vec<ListedSession>, StoreError> {
        Ok(read_sql::open_sessions::<Sqlite>(query)
            .build_query_as()
            .fetch_all(&self.reader)
            .await?)
    }

    async fn find_sessions(
        &self,
        room_session_id: &str,
        appid: Option<i64>,
    ) -> Result<Vec<SessionRow>, StoreError> {
        Ok(read_sql::find_sessions::<Sqlite>(room_session_id, appid)
            .build_query_as()
            .fetch_all(&self.reader)
            .await?)
    }

    async fn close_reason_counts(
        &self,
        query: &StatsQuery,
    ) -> Result<Vec<ReasonCount>, StoreError> {
        Ok(read_sql::close_reason_counts::<Sqlite>(query)
            .build_query_as()
            .fetch_all(&self.reader)
            .await?)
    }

    async fn participants(
        &self,
        appid: i64,
        room_session_id: &str,
    ) -> Result<Vec<ParticipantRow>, StoreError> {
        type Row = (
            String,
            String,
            Option<String>,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<i64>,
        );
        let rows: Vec<Row> = self
            .json_rows(read_sql::PARTICIPANTS_AS_JSON, appid, room_session_id)
            .await?;
        let mut rows = rows
            .into_iter()
            .map(|r| {
                Ok(ParticipantRow {
                    user_account: r.0,
                    session_id: r.1,
                    user_nickname: r.2,
                    user_role: r.3,
                    login_at: r.4.as_deref().map(stored_time).transpose()?,
                    logout_at: r.5.as_deref().map(stored_time).transpose()?,
                    logout_reason: r.6,
                    duration_ms: r.7,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        in_participant_order(&mut rows);
        Ok(rows)
    }

    async fn timeline(
        &self,
        appid: i64,
        room_session_id: &str,
    ) -> Result<Vec<TimelineRow>, StoreError> {
        type Row = (
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<i64>,
        );
        let rows: Vec<Row> = self
            .json_rows(read_sql::TIMELINE_AS_JSON, appid, room_session_id)
            .await?;
        let mut rows = rows
            .into_iter()
            .map(|r| {
                Ok(TimelineRow {
                    event: r.0,
                    event_at: stored_time(&r.1)?,
                    received_at: stored_time(&r.2)?,
                    user_account: r.3,
                    session_id: r.4,
                    user_role: r.5,
                    reason: r.6,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
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
        self.writer
            .run(async |connection| {
                let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
                let expired = purge_sql::expired_sessions::<Sqlite>(&mut tx, before, batch).await?;
                let purged = purge_sql::delete_sessions::<Sqlite>(&mut tx, expired).await?;
                tx.commit().await?;
                Ok(purged)
            })
            .await
    }

    async fn rebuild(
        &self,
        reassess: &(dyn for<'r> Fn(&'r DeliveryRecord) -> Delivery + Sync),
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<RebuildReport, StoreError> {
        self.writer
            .run(async |connection| {
                let mut tx = Write::new(connection.begin_with("BEGIN IMMEDIATE").await?);
                let report = rebuild::rebuild(&mut tx, reassess, progress).await?;
                tx.commit().await?;
                Ok(report)
            })
            .await
    }

    async fn run_report(
        &self,
        sql: &str,
        params: &ReportParams,
    ) -> Result<ReportTable, StoreError> {
        let rows = sqlx::query(sql)
            .bind(params.from)
            .bind(params.to)
            .bind(params.appid)
            .fetch_all(&self.reader)
            .await?;
        let columns = match rows.first() {
            Some(row) => column_names(row.columns()),
            None => column_names(self.reader.prepare(sql).await?.columns()),
        };
        // SQLite types values, not columns: decode by each value's storage class.
        report_table(columns, &rows, |row, i| {
            let storage = row.try_get_raw(i)?.type_info().name().to_owned();
            Ok(match storage.as_str() {
                "INTEGER" => json_of(row.try_get::<Option<i64>, _>(i)?),
                "REAL" => json_of(row.try_get::<Option<f64>, _>(i)?),
                "NULL" => serde_json::Value::Null,
                "BLOB" => json_of(row.try_get::<Option<Vec<u8>>, _>(i)?.map(hex::encode)),
                _ => {
                    let text = row.try_get::<Option<String>, _>(i)?;
                    let is_time = row.columns()[i].name().ends_with("_at");
                    json_of(if is_time {
                        text.map(as_instant_text)
                    } else {
                        text
                    })
                }
            })
        })
    }

    async fn app_snapshot(&self, appid: u32) -> Result<AppSnapshot, StoreError> {
        Ok(snapshot::app_snapshot(&self.reader, appid).await?)
    }
}

/// A report's time column (named `…_at`, as every one is) as PostgreSQL's
/// path spells it (`format_instant`: milliseconds, `Z`). SQLite holds times
/// as the text sqlx wrote (`…:20+00:00`, no fraction on a whole second),
/// and the same report would otherwise read differently per backend.
fn as_instant_text(text: String) -> String {
    match DateTime::parse_from_rfc3339(&text) {
        Ok(t) => crate::domain::time::format_instant(t.with_timezone(&Utc)),
        Err(_) => text,
    }
}
