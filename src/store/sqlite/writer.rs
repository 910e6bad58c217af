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
//! timeout for the connection (then `Unavailable`, a 503), opens it lazily
//! and opens a new one after the old one broke (its thread gone, an I/O
//! error), so a transient fault does not stick.

use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{Mutex, MutexGuard};

use crate::store::StoreError;

pub struct Writer {
    options: SqliteConnectOptions,
    timeout: Duration,
    slot: Mutex<Option<SqliteConnection>>,
}

/// Exclusive use of the write connection until dropped.
pub struct WriterGuard<'a>(MutexGuard<'a, Option<SqliteConnection>>);

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
            slot: Mutex::new(Some(connection)),
        })
    }

    /// Waits (at most the timeout) for the connection, reopening it if the
    /// last user found it broken.
    pub async fn lock(&self) -> Result<WriterGuard<'_>, StoreError> {
        let mut slot = tokio::time::timeout(self.timeout, self.slot.lock())
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolTimedOut))?;
        if slot.is_none() {
            *slot = Some(self.options.connect().await?);
        }
        Ok(WriterGuard(slot))
    }

    /// Whether the connection is open and free (for the pool gauges).
    pub fn status(&self) -> (u32, u32) {
        match self.slot.try_lock() {
            Ok(slot) => {
                let open = u32::from(slot.is_some());
                (open, open)
            }
            Err(_) => (1, 0),
        }
    }

    pub async fn close(&self) {
        if let Some(connection) = self.slot.lock().await.take() {
            let _ = connection.close().await;
        }
    }
}

impl WriterGuard<'_> {
    /// The connection; see `check` for what to do with the result.
    pub fn connection(&mut self) -> &mut SqliteConnection {
        self.0.as_mut().expect("the slot is filled while locked")
    }

    /// Passes `result` through, first dropping the connection if the error
    /// says it is unusable, so the next `lock` opens a new one.
    pub fn check<T>(&mut self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::Unavailable(e) | StoreError::Internal(e)) = &result
            && connection_broken(e)
        {
            tracing::warn!(error = %e, "the SQLite write connection broke; opening a new one");
            *self.0 = None;
        }
        result
    }
}

/// The connection's thread is gone or its file handle failed.
fn connection_broken(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::WorkerCrashed | sqlx::Error::Io(_) | sqlx::Error::Protocol(_)
    )
}

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

    #[tokio::test]
    async fn a_broken_connection_is_replaced_on_the_next_lock() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let mut guard = writer.lock().await.unwrap();
        guard
            .connection()
            .execute("CREATE TABLE t (x)")
            .await
            .unwrap();
        let broken: Result<(), StoreError> =
            Err(StoreError::Unavailable(sqlx::Error::WorkerCrashed));
        assert!(guard.check(broken).is_err());
        drop(guard);
        assert_eq!(writer.status(), (0, 0), "dropped, not reused");

        let mut guard = writer.lock().await.unwrap();
        guard
            .connection()
            .execute("INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        drop(guard);
        assert_eq!(writer.status(), (1, 1));
    }

    #[tokio::test]
    async fn a_statement_error_keeps_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let mut guard = writer.lock().await.unwrap();
        let failed = guard
            .connection()
            .execute("INSERT INTO missing VALUES (1)")
            .await;
        assert!(guard.check(failed.map_err(StoreError::from)).is_err());
        drop(guard);
        assert_eq!(writer.status(), (1, 1));
    }

    #[tokio::test]
    async fn waiting_longer_than_the_timeout_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let _held = writer.lock().await.unwrap();
        assert_eq!(writer.status(), (1, 0));
        assert!(matches!(
            writer.lock().await,
            Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut))
        ));
    }
}
