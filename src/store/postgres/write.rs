//! PostgreSQL's part of the write path: the SQL that differs from SQLite's.

use std::fmt::Write as _;

use sqlx::error::BoxDynError;
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, Postgres};

use crate::store::batch_rows::{Cell, Column, Rows};
use crate::store::write::WriteDialect;

impl WriteDialect for Postgres {
    /// One array per column: the statement text is the same for every
    /// batch size, so each connection parses and plans it once, and the
    /// whole batch goes in one statement (no parameter limit to cut it by).
    fn row_source(first: usize, _rows: usize, columns: &[Column]) -> String {
        let mut sql = String::from("SELECT * FROM UNNEST(");
        for (i, column) in columns.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(sql, "{sep}${}::{}", first + i, column.pg_array());
        }
        sql.push_str(") AS r (");
        for i in 1..=columns.len() {
            let sep = if i == 1 { "" } else { ", " };
            let _ = write!(sql, "{sep}column{i}");
        }
        sql.push(')');
        sql
    }

    fn bind_rows<'q>(args: &mut PgArguments, rows: Rows<'q>) -> Result<(), BoxDynError> {
        // Rows to columns: one array parameter per column.
        let mut columns: Vec<Vec<Cell<'q>>> = rows
            .columns()
            .iter()
            .map(|_| Vec::with_capacity(rows.len()))
            .collect();
        for i in 0..rows.len() {
            for (column, cell) in columns.iter_mut().zip(rows.row(i)) {
                column.push(cell);
            }
        }
        for (column, cells) in rows.columns().iter().zip(columns) {
            match column {
                Column::Int => args.add(array(cells, |c| match c {
                    Cell::Int(v) => Ok(v),
                    other => Err(other),
                })?)?,
                Column::Text => args.add(array(cells, |c| match c {
                    Cell::Text(v) => Ok(v),
                    other => Err(other),
                })?)?,
                Column::Time => args.add(array(cells, |c| match c {
                    Cell::Time(v) => Ok(v),
                    other => Err(other),
                })?)?,
                Column::Bytes => args.add(array(cells, |c| match c {
                    Cell::Bytes(v) => Ok(v),
                    other => Err(other),
                })?)?,
            }
        }
        Ok(())
    }

    fn statement_rows(remaining: usize, _columns: usize) -> usize {
        remaining
    }

    const LATERAL_LOOKUPS: bool = true;
    const ONE_STATEMENT_WRITES: bool = true;
    // Writers on other connections and other replicas.
    const CONCURRENT_WRITERS: bool = true;
    const LEAST: &'static str = "LEAST";
    const AS_BYTES: &'static str = r#" COLLATE "C""#;

    // In the order a callback's transaction first writes them (session
    // rows, events, then its last statement's tables), so a callback in
    // flight holds only tables the rebuild has already taken or waits for
    // first: the rebuild holding `events` while waiting for the
    // `room_sessions` a callback held, as that callback queued for
    // `events`, was a deadlock.
    const LOCK_FOR_REBUILD: Option<&'static str> = Some(
        "LOCK TABLE room_sessions, events, presence_intervals, close_reason_hourly, deliveries
         IN SHARE ROW EXCLUSIVE MODE",
    );
    const TEMP_TABLE_SUFFIX: &'static str = "ON COMMIT DROP";
    const DROP_TEMP_TABLES: bool = false;
}

/// One column's cells as the values of its array parameter; a cell of
/// another type is a bug in `Rows::columns`, reported rather than bound.
fn array<'q, T>(
    cells: Vec<Cell<'q>>,
    value: impl Fn(Cell<'q>) -> Result<T, Cell<'q>>,
) -> Result<Vec<T>, BoxDynError> {
    cells
        .into_iter()
        .map(|cell| {
            value(cell).map_err(|other| {
                format!("a {:?} cell in a column of another type", other.column()).into()
            })
        })
        .collect()
}
