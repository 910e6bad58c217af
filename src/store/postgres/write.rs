//! PostgreSQL's part of the write path: the SQL that differs from SQLite's.

use crate::store::write::WriteDialect;

impl WriteDialect for sqlx::Postgres {
    const NUMBERED_PLACEHOLDERS: bool = true;
    const FEW_STATEMENT_SHAPES: bool = false;
    const ONE_STATEMENT_WRITES: bool = true;
    const LEAST: &'static str = "LEAST";

    // Serialises writers of one presence group across connections and
    // replicas; a hash collision only makes two unrelated groups wait. A
    // VALUES scan yields its rows in list order, so the locks are taken in
    // the caller's (sorted) order.
    const LOCK_PRESENCE_GROUPS: Option<(&'static str, &'static str)> = Some((
        "SELECT pg_advisory_xact_lock(hashtextextended(g.name, 0)) FROM (",
        ") AS g (name)",
    ));

    const LOCK_FOR_REBUILD: Option<&'static str> = Some(
        "LOCK TABLE events, room_sessions, presence_intervals, close_reason_hourly, deliveries
         IN SHARE ROW EXCLUSIVE MODE",
    );
    const TEMP_TABLE_SUFFIX: &'static str = "ON COMMIT DROP";
    const DROP_TEMP_TABLES: bool = false;
}
