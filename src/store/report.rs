//! Turning a report's rows, whatever their columns, into JSON values.

use serde::Serialize;
use sqlx::{Column, Row};

use super::StoreError;
use crate::reports::ReportTable;

/// `columns` names the result's columns even when it has no rows (a
/// backend takes them from the prepared statement then), so an empty CSV
/// still has its header.
pub fn report_table<R: Row>(
    columns: Vec<String>,
    rows: &[R],
    cell: impl Fn(&R, usize) -> Result<serde_json::Value, sqlx::Error>,
) -> Result<ReportTable, StoreError> {
    let rows = rows
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| cell(row, i))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ReportTable { columns, rows })
}

pub fn column_names(columns: &[impl Column]) -> Vec<String> {
    columns.iter().map(|c| c.name().to_owned()).collect()
}

pub fn json_of<T: Serialize>(value: T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}
