//! The one SQLite connection every write goes through, held open rather
//! than pooled.
//!
//! Why not a pool of one: sqlx pings a pooled connection each time it goes
//! back to the pool, and with one connection the next batch waits for that
//! ping to come back from the connection's thread before its `BEGIN` can
//! go out. Under full load that wait was about 0.4–0.7 ms of a 6 ms batch
//! (docs/benchmarks.md). A second pooled connection hides the wait but
//! makes every statement slower (two statement caches, two threads taking
//! turns), so it did not help either.
//!
//! What the pool did besides, this does too: waits at most the configured
//! timeout for the connection (then `Unavailable`, a 503) and opens a new
//! one after the old one broke (its thread gone, an I/O error), so a
//! transient fault does not stick. Every use goes through `Writer::run`,
//! which does both, so no caller can forget either.

use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{Mutex, MutexGuard};

use crate::store::StoreError;

pub struct Writer {
    options: SqliteConnectOptions,
    timeout: Duration,
    slot: Mutex<Slot>,
}

enum Slot {
    Open(SqliteConnection),
    /// Work on it failed, or was cancelled (its request dropped) before it
    /// ended: it may still count a transaction as open (below).
    Unsettled(SqliteConnection),
    /// The last connection broke; the next use opens a new one.
    Broken,
    /// `close` ran: nothing opens a connection again. Group commit may
    /// still finish the jobs of requests that timed out after shutdown
    /// closed the store; a connection they reopened would be closed by
    /// no one, and the WAL would not be folded in at exit.
    Closed,
}

impl Writer {
    /// Opens the connection now, so a file that cannot be opened fails
    /// startup rather than the first callback.
    pub async fn open(
        options: SqliteConnectOptions,
        timeout: Duration,
    ) -> Result<Writer, StoreError> {
        let connection = options.connect().await?;
        Ok(Writer {
            options,
            timeout,
            slot: Mutex::new(Slot::Open(connection)),
        })
    }

    /// Runs `work` on the connection, alone: waits at most the timeout for
    /// it, opens a new one if the last `work` found it broken, and drops it
    /// if this `work` fails saying it is unusable. After `close`, refuses
    /// (unavailable).
    pub async fn run<T>(
        &self,
        work: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut slot = self.slot().await?;
        // sqlx counts a transaction open until its ROLLBACK succeeds, and
        // that fails where SQLite already ended it (a COMMIT that failed on
        // a full disk): every later BEGIN was then refused ("non-zero
        // transaction depth"), a 500 until a restart. The round trip lets a
        // rollback queued by a dropped transaction run before the count is
        // read.
        if let Slot::Unsettled(connection) = &mut *slot
            && (connection.ping().await.is_err() || connection.is_in_transaction())
        {
            tracing::warn!(
                "the SQLite write connection was left in a transaction; opening a new one"
            );
            *slot = Slot::Broken;
        }
        match &*slot {
            Slot::Open(_) | Slot::Unsettled(_) => {}
            Slot::Broken => *slot = Slot::Open(self.options.connect().await?),
            Slot::Closed => return Err(StoreError::Unavailable(sqlx::Error::PoolClosed)),
        }
        // Unsettled until the work ends well: a run cancelled mid-way
        // leaves it so, for the next run to check.
        settle(&mut slot, Slot::Unsettled);
        let Slot::Unsettled(connection) = &mut *slot else {
            unreachable!("opened above")
        };
        let result = work(connection).await;
        match &result {
            Ok(_) => settle(&mut slot, Slot::Open),
            Err(StoreError::Unavailable(e) | StoreError::Internal(e)) if connection_broken(e) => {
                tracing::warn!(error = %e, "the SQLite write connection broke; opening a new one");
                *slot = Slot::Broken;
            }
            Err(_) => {}
        }
        result
    }

    /// The connection's slot, waited for at most the timeout (then a 503).
    async fn slot(&self) -> Result<MutexGuard<'_, Slot>, StoreError> {
        tokio::time::timeout(self.timeout, self.slot.lock())
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolTimedOut))
    }

    /// Whether the connection is open and free (for the pool gauges).
    pub fn status(&self) -> (u32, u32) {
        match self.slot.try_lock() {
            Ok(slot) => {
                let open = u32::from(matches!(*slot, Slot::Open(_) | Slot::Unsettled(_)));
                (open, open)
            }
            Err(_) => (1, 0),
        }
    }

    /// Replaces the connection with one opened from the calling thread:
    /// sqlx starts a connection's thread from the thread that opens it, and
    /// a new thread takes its creator's CPU pinning (`store::writer_cpu`).
    pub async fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = self.slot().await?;
        if matches!(*slot, Slot::Closed) {
            return Err(StoreError::Unavailable(sqlx::Error::PoolClosed));
        }
        let fresh = self.options.connect().await?;
        if let Slot::Open(old) | Slot::Unsettled(old) =
            std::mem::replace(&mut *slot, Slot::Open(fresh))
        {
            let _ = old.close().await;
        }
        Ok(())
    }

    /// Closes the connection for good (see `Slot::Closed`).
    pub async fn close(&self) {
        let mut slot = self.slot.lock().await;
        if let Slot::Open(connection) | Slot::Unsettled(connection) =
            std::mem::replace(&mut *slot, Slot::Closed)
        {
            let _ = connection.close().await;
        }
    }
}

/// The slot's connection, open or unsettled, put back as `to` says.
fn settle(slot: &mut Slot, to: fn(SqliteConnection) -> Slot) {
    if let Slot::Open(connection) | Slot::Unsettled(connection) =
        std::mem::replace(slot, Slot::Broken)
    {
        *slot = to(connection);
    }
}

/// The connection's thread is gone or its file handle failed, or SQLite
/// refused to write (SQLITE_READONLY and its extended codes): a connection
/// that opened a file it could not write to stays read-only, so it is
/// opened again, and a file made writable (or moved back) is taken up
/// without a restart.
fn connection_broken(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::WorkerCrashed | sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == SQLITE_READONLY),
        _ => false,
    }
}

const SQLITE_READONLY: i32 = 8;

#[cfg(test)]
mod tests {
    use sqlx::Executor;

    use super::*;

    async fn writer(dir: &tempfile::TempDir) -> Writer {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("w.db"))
            .create_if_missing(true);
        Writer::open(options, Duration::from_millis(200))
            .await
            .unwrap()
    }

    async fn execute(writer: &Writer, sql: &'static str) -> Result<(), StoreError> {
        writer
            .run(async |connection| Ok(connection.execute(sql).await.map(|_| ())?))
            .await
    }

    /// A run whose work fails saying the connection is unusable.
    async fn break_connection(writer: &Writer) {
        let broken = writer
            .run(async |_| Err::<(), _>(StoreError::Unavailable(sqlx::Error::WorkerCrashed)))
            .await;
        assert!(broken.is_err());
    }

    #[tokio::test]
    async fn a_broken_connection_is_replaced_on_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        execute(&writer, "CREATE TABLE t (x)").await.unwrap();
        break_connection(&writer).await;
        assert_eq!(writer.status(), (0, 0), "dropped, not reused");

        execute(&writer, "INSERT INTO t VALUES (1)").await.unwrap();
        assert_eq!(writer.status(), (1, 1));
    }

    #[tokio::test]
    async fn nothing_opens_the_connection_again_after_close() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        execute(&writer, "CREATE TABLE t (x)").await.unwrap();
        break_connection(&writer).await;
        writer.close().await;
        for refused in [
            execute(&writer, "INSERT INTO t VALUES (1)").await,
            writer.reopen().await,
        ] {
            assert!(
                matches!(
                    refused,
                    Err(StoreError::Unavailable(sqlx::Error::PoolClosed))
                ),
                "{refused:?}"
            );
        }
        assert_eq!(writer.status(), (0, 0));
    }

    /// SQLite ended the transaction itself (as after a COMMIT that failed on
    /// a full disk), so sqlx's ROLLBACK of it failed and it counted the
    /// transaction open: every later BEGIN was refused, a 500 each.
    #[tokio::test]
    async fn a_transaction_sqlite_ended_itself_does_not_stop_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let failed = writer
            .run(async |connection| {
                let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
                tx.execute("ROLLBACK").await?;
                Err::<(), _>(StoreError::Unusable("the COMMIT failed".into()))
            })
            .await;
        assert!(failed.is_err());
        for _ in 0..2 {
            let next = writer
                .run(async |connection| {
                    let tx = connection.begin_with("BEGIN IMMEDIATE").await?;
                    Ok(tx.commit().await?)
                })
                .await;
            assert!(next.is_ok(), "{next:?}");
        }
    }

    /// A run dropped mid-transaction (its request's client went away)
    /// leaves nothing behind for the next.
    #[tokio::test]
    async fn a_run_cancelled_in_a_transaction_leaves_nothing_open() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        execute(&writer, "CREATE TABLE t (x)").await.unwrap();
        let cancelled = tokio::time::timeout(
            Duration::from_millis(50),
            writer.run(async |connection| {
                let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
                tx.execute("INSERT INTO t VALUES (1)").await?;
                std::future::pending::<()>().await;
                Ok(tx.commit().await?)
            }),
        )
        .await;
        assert!(cancelled.is_err(), "the run was cancelled");
        let count = writer
            .run(async |connection| {
                let tx = connection.begin_with("BEGIN IMMEDIATE").await?;
                tx.commit().await?;
                Ok(sqlx::query_scalar::<_, i64>("SELECT count(*) FROM t")
                    .fetch_one(&mut *connection)
                    .await?)
            })
            .await;
        assert_eq!(count.unwrap(), 0, "the cancelled insert was rolled back");
    }

    #[tokio::test]
    async fn a_statement_error_keeps_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        assert!(
            execute(&writer, "INSERT INTO missing VALUES (1)")
                .await
                .is_err()
        );
        assert_eq!(writer.status(), (1, 1));
    }

    #[tokio::test]
    async fn waiting_longer_than_the_timeout_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let holder = writer.run(async |_| {
            let _ = held.await;
            Ok(())
        });
        let waiter = async {
            assert_eq!(writer.status(), (1, 0));
            let waited = writer.run(async |_| Ok(())).await;
            let _ = release.send(());
            waited
        };
        let (held, waited) = tokio::join!(holder, waiter);
        held.unwrap();
        assert!(matches!(
            waited,
            Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut))
        ));
    }
}
