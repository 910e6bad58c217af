//! Turning a report's rows, whatever their columns, into JSON values.

use serde::Serialize;
use sqlx::{Column, Row};

use super::StoreError;
use crate::reports::ReportTable;

pub fn report_table<R: Row>(
    rows: &[R],
    cell: impl Fn(&R, usize) -> Result<serde_json::Value, sqlx::Error>,
) -> Result<ReportTable, StoreError> {
    let columns = rows
        .first()
        .map(|r| r.columns().iter().map(|c| c.name().to_owned()).collect())
        .unwrap_or_default();
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

pub fn json_of<T: Serialize>(value: T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}
