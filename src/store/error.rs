//! The storage layer's one error type.

/// `Unavailable` is what a retry may fix (connection refused, pool or lock
/// timeout, disk full): the HTTP layer answers 503 so ZEGO retries. `Internal`
/// is a bug or a schema mismatch.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Unavailable too (a 503), said in words: the database takes no
    /// writes, a read got no answer, or a batch's failure shared with each
    /// of its requests (`StoreError::shared`).
    #[error("the database is unavailable: {0}")]
    Unusable(String),
    #[error("database error: {0}")]
    Internal(#[source] sqlx::Error),
    /// The database answered what the write path cannot have asked for:
    /// a bug (`StoreError::inconsistent`), a 500.
    #[error("the write path's own reads disagree (a bug): {0}")]
    Inconsistent(String),
    /// A write transaction panicked (a bug some input tripped); the group-
    /// commit worker caught it and lives on (`store::group_commit`).
    #[error("the write transaction panicked: {0}")]
    Panicked(String),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("DATABASE_URL must start with postgres://, postgresql:// or sqlite:")]
    UnsupportedUrl,
    /// An operator command that would lose data, refused before it changed
    /// anything; the message says why and what to do.
    #[error("{0}")]
    Refused(String),
}

impl StoreError {
    /// The same unavailability for another request of a failed batch: the
    /// first request gets the error itself, the others its words (an
    /// `sqlx::Error` cannot be cloned).
    pub fn shared(&self) -> StoreError {
        match self {
            StoreError::Unavailable(cause) => StoreError::Unusable(cause.to_string()),
            StoreError::Unusable(why) => StoreError::Unusable(why.clone()),
            other => StoreError::Unusable(other.to_string()),
        }
    }

    /// The database answered what the write path cannot have asked for: a
    /// bug, reported as `Inconsistent` (a 500).
    pub fn inconsistent(what: impl Into<String>) -> StoreError {
        StoreError::Inconsistent(what.into())
    }

    /// A deadlock or serialization failure (SQLSTATE class 40): the same
    /// transaction, run again, will very likely succeed.
    pub fn is_lock_conflict(&self) -> bool {
        matches!(self, StoreError::Unavailable(sqlx::Error::Database(db))
            if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some()
                && db.code().is_some_and(|c| c.starts_with("40")))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_transient(&e) {
            StoreError::Unavailable(e)
        } else {
            StoreError::Internal(e)
        }
    }
}

fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let postgres = db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some();
            db.code().is_some_and(|code| {
                if postgres {
                    is_transient_sqlstate(&code)
                } else {
                    is_transient_sqlite_code(&code)
                }
            })
        }
        _ => false,
    }
}

/// PostgreSQL SQLSTATE classes 08 (connection), 53 (resources), 57
/// (operator intervention: shutdown, statement timeout), 55P03 (lock
/// timeout), 40 (serialization failure or deadlock: safe to retry); and
/// what an operator fixes while ZEGO retries: 3D000 (the database does not
/// exist, say dropped under a running service) and class 28 (the login was
/// refused: a changed password, a dropped role). Those are not bugs, and
/// as a 500 they slipped past an alert on 503s while `/readyz` said 500.
fn is_transient_sqlstate(code: &str) -> bool {
    ["08", "53", "57", "40", "28"]
        .iter()
        .any(|class| code.starts_with(class))
        || code == "55P03"
        || code == "3D000"
        // read_only_sql_transaction: pointed at a standby (a failover) or
        // made read-only, the database takes writes again once fixed.
        || code == "25006"
}

/// SQLite primary codes BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN
/// (extended codes keep the primary code in the low byte).
fn is_transient_sqlite_code(code: &str) -> bool {
    code.parse::<i32>()
        .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_and_lock_failures_are_transient() {
        assert!(is_transient_sqlstate("08006"));
        assert!(is_transient_sqlstate("57P01"));
        assert!(is_transient_sqlstate("57014"));
        assert!(is_transient_sqlstate("55P03"));
        assert!(is_transient_sqlstate("3D000"));
        assert!(is_transient_sqlstate("28P01"));
        assert!(is_transient_sqlstate("25006"));
        assert!(!is_transient_sqlstate("23505"));
        assert!(is_transient_sqlite_code("5")); // SQLITE_BUSY
        assert!(is_transient_sqlite_code("517")); // SQLITE_BUSY_SNAPSHOT
        assert!(is_transient_sqlite_code("13")); // SQLITE_FULL
        assert!(!is_transient_sqlite_code("1")); // SQLITE_ERROR
        assert!(!is_transient_sqlite_code("2067")); // SQLITE_CONSTRAINT_UNIQUE
    }
}
