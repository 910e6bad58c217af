//! Built-in SQL reports: `reports/*.sql`, embedded in the binary, readable on
//! their own. Each takes three optional parameters written `:from`, `:to`
//! and `:appid` (psql variables, so a file runs in psql as it is); the
//! `report` command binds them.

use chrono::{DateTime, Utc};

/// One built-in report.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! reports {
    ($($name:literal),* $(,)?) => {
        pub const REPORTS: &[Report] = &[
            $(Report { name: $name, sql: include_str!(concat!("../reports/", $name, ".sql")) }),*
        ];
    };
}

reports!(
    "close-reasons-by-day",
    "longest-sessions",
    "busiest-rooms",
    "open-sessions",
    "top-users",
    "missing-lifecycle-events",
    "logouts-without-login",
    "conflicts",
);

impl Report {
    pub fn find(name: &str) -> Option<Report> {
        REPORTS.iter().copied().find(|r| r.name == name)
    }

    /// The first comment line: what the report shows.
    pub fn description(&self) -> &'static str {
        self.sql
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("-- "))
            .unwrap_or("")
    }

    /// The SQL with `:from`, `:to`, `:appid` as `$1`, `$2`, `$3`, which both
    /// backends bind positionally.
    pub fn bindable_sql(&self) -> String {
        let mut out = String::with_capacity(self.sql.len());
        let mut rest = self.sql;
        while let Some(at) = rest.find(':') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let name_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            match &after[..name_len] {
                "from" => out.push_str("$1"),
                "to" => out.push_str("$2"),
                "appid" => out.push_str("$3"),
                _ => {
                    out.push(':');
                    rest = after;
                    continue;
                }
            }
            rest = &after[name_len..];
        }
        out.push_str(rest);
        out
    }
}

/// The report parameters; `None` means no filter.
#[derive(Debug, Clone, Default)]
pub struct ReportParams {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub appid: Option<i64>,
}

/// A report's result: column names and rows of JSON values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportTable {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_report_has_a_description_and_binds_its_parameters() {
        for report in REPORTS {
            assert!(!report.description().is_empty(), "{}", report.name);
            let sql = report.bindable_sql();
            for placeholder in [":from", ":to", ":appid"] {
                assert!(!sql.contains(placeholder), "{}: {sql}", report.name);
            }
            assert!(
                sql.contains("$1") && sql.contains("$2") && sql.contains("$3"),
                "{}",
                report.name
            );
        }
    }

    #[test]
    fn only_the_three_parameters_are_replaced() {
        let report = Report {
            name: "t",
            sql: "SELECT '12:00', :from, :tomorrow, :to::text, :appid",
        };
        assert_eq!(
            report.bindable_sql(),
            "SELECT '12:00', $1, :tomorrow, $2::text, $3"
        );
    }
}
