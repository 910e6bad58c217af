//! `report NAME`: runs a built-in report from `reports/` and prints it.

use std::io::Write;

use clap::{Args, ValueEnum};

use super::{closing, open_store_for_reading};
use crate::config::DatabaseArgs;
use crate::domain::time::parse_instant;
use crate::reports::{REPORTS, Report, ReportParams, ReportTable};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// An array of objects.
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The report to run (`--list` shows them all).
    #[arg(required_unless_present = "list")]
    name: Option<String>,

    /// List the reports with one-line descriptions.
    #[arg(long)]
    list: bool,

    /// Only rows at or after this time (RFC 3339 or Unix ms; each report says on which column).
    #[arg(long, value_parser = instant)]
    from: Option<chrono::DateTime<chrono::Utc>>,

    /// Only rows before this time.
    #[arg(long, value_parser = instant)]
    to: Option<chrono::DateTime<chrono::Utc>>,

    /// Only this appid.
    #[arg(long)]
    appid: Option<u32>,

    /// How to print the rows.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,

    #[command(flatten)]
    database: DatabaseArgs,
}

fn instant(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    parse_instant(text).ok_or_else(|| {
        "expected RFC 3339 (2024-05-01T00:00:00Z) or Unix milliseconds, up to year 9999".into()
    })
}

pub async fn run(args: ReportArgs) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    if args.list {
        let width = REPORTS.iter().map(|r| r.name.len()).max().unwrap_or(0);
        for report in REPORTS {
            let line = format!("{:width$}  {}\n", report.name, report.description());
            write_out(&mut out, &line)?;
        }
        return Ok(());
    }
    let name = args.name.as_deref().unwrap_or_default();
    let report = Report::find(name).ok_or_else(|| {
        let names: Vec<&str> = REPORTS.iter().map(|r| r.name).collect();
        format!(
            "there is no report {name:?}; the reports are: {}",
            names.join(", ")
        )
    })?;
    let params = ReportParams {
        from: args.from,
        to: args.to,
        appid: args.appid.map(i64::from),
    };
    let table = closing(
        open_store_for_reading(&args.database).await?,
        async |store| {
            store
                .run_report(&report.bindable_sql(), &params)
                .await
                .map_err(|e| format!("report {name} failed: {e}"))
        },
    )
    .await?;
    let text = match args.format {
        Format::Table => render_table(&table),
        Format::Csv => render_csv(&table)?,
        Format::Json => render_json(&table),
    };
    write_out(&mut out, &text)?;
    eprintln!("{} rows", table.rows.len());
    Ok(())
}

/// Writes to stdout; a reader that has gone (`report … | head`) ends the
/// output quietly rather than as an error.
fn write_out(out: &mut impl Write, text: &str) -> Result<(), String> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.to_string()),
        _ => Ok(()),
    }
}

fn cell_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn render_table(table: &ReportTable) -> String {
    if table.rows.is_empty() {
        return "(no rows)\n".into();
    }
    let texts: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|r| r.iter().map(cell_text).collect())
        .collect();
    let widths: Vec<usize> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            texts
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(table.columns.iter().map(String::as_str).collect());
    out += &line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    );
    for row in &texts {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

fn render_csv(table: &ReportTable) -> Result<String, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&table.columns).map_err(|e| e.to_string())?;
    for row in &table.rows {
        w.write_record(row.iter().map(cell_text))
            .map_err(|e| e.to_string())?;
    }
    String::from_utf8(w.into_inner().map_err(|e| e.to_string())?).map_err(|e| e.to_string())
}

fn render_json(table: &ReportTable) -> String {
    if table.rows.is_empty() {
        return "[]\n".into();
    }
    let objects: Vec<serde_json::Map<String, serde_json::Value>> = table
        .rows
        .iter()
        .map(|row| {
            table
                .columns
                .iter()
                .cloned()
                .zip(row.iter().cloned())
                .collect()
        })
        .collect();
    serde_json::to_string_pretty(&objects).expect("JSON values serialise") + "\n"
}
