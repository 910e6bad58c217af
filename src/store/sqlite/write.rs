//! SQLite's part of the write path: the SQL that differs from PostgreSQL's.

use sqlx::error::BoxDynError;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, Sqlite};

use crate::store::batch_rows::{Cell, Column, Rows};
use crate::store::write::{WriteDialect, power_of_two_rows};

impl WriteDialect for Sqlite {
    /// A `VALUES` list of `?` placeholders: sqlx looks a numbered one
    /// (`$n`) up by name in a list, which is quadratic in a multi-row
    /// statement's parameters.
    fn row_source(_first: usize, rows: usize, columns: &[Column]) -> String {
        let tuple = format!("({})", vec!["?"; columns.len()].join(", "));
        format!("VALUES {}", vec![tuple; rows].join(", "))
    }

    fn bind_rows<'q>(args: &mut SqliteArguments<'q>, rows: Rows<'q>) -> Result<(), BoxDynError> {
        for i in 0..rows.len() {
            for cell in rows.row(i) {
                match cell {
                    Cell::Int(v) => args.add(v)?,
                    Cell::Text(v) => args.add(v)?,
                    Cell::Time(v) => args.add(v)?,
                    Cell::Bytes(v) => args.add(v)?,
                }
            }
        }
        Ok(())
    }

    /// Power-of-two statement sizes: an extra statement costs SQLite no
    /// round trip, but a fresh prepare is expensive, so few statement
    /// texts keep every one prepared.
    fn statement_rows(remaining: usize, columns: usize) -> usize {
        power_of_two_rows(remaining, columns)
    }

    const LATERAL_LOOKUPS: bool = false;
    const ONE_STATEMENT_WRITES: bool = false;
    // SQLite's two-argument min() is PostgreSQL's LEAST().
    // One writer at a time (BEGIN IMMEDIATE).
    const CONCURRENT_WRITERS: bool = false;
    const LEAST: &'static str = "min";
    const AS_BYTES: &'static str = "";

    // BEGIN IMMEDIATE already holds SQLite's one write lock.
    const LOCK_FOR_REBUILD: Option<&'static str> = None;
    const TEMP_TABLE_SUFFIX: &'static str = "";
    const DROP_TEMP_TABLES: bool = true;
}
