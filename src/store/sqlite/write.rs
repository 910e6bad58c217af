//! SQLite's part of the write path: the SQL that differs from PostgreSQL's.

use crate::store::write::WriteDialect;

impl WriteDialect for sqlx::Sqlite {
    // SQLite's two-argument min() is PostgreSQL's LEAST().
    const NUMBERED_PLACEHOLDERS: bool = false;
    const FEW_STATEMENT_SHAPES: bool = true;
    const ONE_STATEMENT_WRITES: bool = false;
    const LEAST: &'static str = "min";

    // The single writer connection already serialises every transaction.
    const LOCK_PRESENCE_GROUPS: Option<(&'static str, &'static str)> = None;

    // BEGIN IMMEDIATE already holds SQLite's one write lock.
    const LOCK_FOR_REBUILD: Option<&'static str> = None;
    const TEMP_TABLE_SUFFIX: &'static str = "";
    const DROP_TEMP_TABLES: bool = true;
}
