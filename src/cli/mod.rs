//! The command line: `serve` (the default) and the operator's tools
//! (`report`, `send`, `import`, `rebuild`, `purge`, `seed`), one module
//! each; `migrate` and the shared database opening are here.

mod import;
mod purge;
mod rebuild;
mod report;
mod seed;
mod send;
mod serve;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::{DatabaseArgs, LogFormat, ServeArgs};
use crate::{store, telemetry};

/// Receives ZEGO room-lifecycle callbacks (room_create, room_close,
/// room_login, room_logout), stores each one exactly once in PostgreSQL or
/// SQLite, and merges them into room sessions and presence intervals.
///
/// Every setting is a flag or an environment variable (also read from a
/// `.env` file in the working directory); flags win over the environment,
/// which wins over `.env`.
#[derive(Debug, Parser)]
#[command(
    name = "zego-room-tracker",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// `serve`'s settings, for running without a subcommand.
    #[command(flatten)]
    serve: ServeArgs,
}

/// The operator's tools alone, without `serve`'s settings: `Cli` reads
/// those from the environment whatever the subcommand, so a bad value of a
/// variable only `serve` uses (`ARCHIVE_RETENTION=0d` in `.env`) stopped
/// `report` and `send`, which have no such flag to fix it with.
#[derive(Debug, Parser)]
#[command(name = "zego-room-tracker", version)]
struct Tools {
    #[command(subcommand)]
    command: Command,
}

/// Parses this process's command line and runs it: a subcommand's with
/// `Tools`, anything else (no subcommand, `--help`, `help`) with `Cli`.
pub async fn run_from_args() -> ExitCode {
    let first = std::env::args_os().nth(1);
    let tool = first
        .as_ref()
        .and_then(|a| a.to_str())
        .is_some_and(|first| {
            first != "help"
                && Cli::command()
                    .get_subcommands()
                    .any(|c| c.get_name() == first)
        });
    if tool {
        run_command(Tools::parse().command).await
    } else {
        run(Cli::parse()).await
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service (the default): migrates the database, then
    /// listens for callbacks and queries.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Run a built-in SQL report (see `report --list`).
    Report(report::ReportArgs),
    /// Play ZEGO: sign and send callbacks (ZEGO's examples, a file, or
    /// generated sessions) to a URL, retrying on ZEGO's schedule.
    Send(send::SendArgs),
    /// Load archived callbacks (JSON lines or files) without signatures;
    /// safe to run twice.
    Import(import::ImportArgs),
    /// Delete raw deliveries (and optionally whole sessions) older than a cut-off, in batches.
    Purge(purge::PurgeArgs),
    /// Re-derive events, sessions and presence from the delivery archive and
    /// report what changed.
    Rebuild(rebuild::RebuildArgs),
    /// Fill an empty database with synthetic history for query benchmarks
    /// (bulk COPY / multi-row inserts, not HTTP).
    Seed(seed::SeedArgs),
}

/// Runs the parsed command line; errors are printed as one sentence.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        None => exit_code(serve::serve(cli.serve).await),
        Some(command) => run_command(command).await,
    }
}

async fn run_command(command: Command) -> ExitCode {
    exit_code(match command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Send(args) => send::run(args).await,
        Command::Import(args) => import::run(args).await,
        Command::Purge(args) => purge::run(args).await,
        Command::Rebuild(args) => rebuild::run(args).await,
        Command::Seed(args) => seed::run(args).await,
        Command::Migrate(args) => migrate(args).await,
    })
}

fn exit_code(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(args: DatabaseArgs) -> Result<(), String> {
    telemetry::init(LogFormat::Text);
    open_store(&args).await?.close().await;
    tracing::info!(database = %redact_url(&args.database_url), "migrations applied");
    Ok(())
}

/// Runs a command's `work` on `store`, then closes the store whatever the
/// work returned. Closing is what folds SQLite's WAL into the database file
/// and deletes it: without it, what the command wrote stayed in `-wal`
/// only, and a copy of the `.db` file alone lacked it.
pub(crate) async fn closing<T>(
    store: std::sync::Arc<dyn store::Store>,
    work: impl AsyncFnOnce(&dyn store::Store) -> Result<T, String>,
) -> Result<T, String> {
    let result = work(store.as_ref()).await;
    store.close().await;
    result
}

/// Connects and migrates, naming DATABASE_URL in any error.
pub(crate) async fn open_store(
    args: &DatabaseArgs,
) -> Result<std::sync::Arc<dyn store::Store>, String> {
    let shown = redact_url(&args.database_url);
    let store = store::connect(&args.database_url, &args.connect_options())
        .await
        .map_err(|e| format!("cannot open DATABASE_URL {shown}: {e}"))?;
    if let Err(e) = store.migrate().await {
        store.close().await;
        return Err(format!(
            "cannot migrate the database at DATABASE_URL {shown}: {e}"
        ));
    }
    Ok(store)
}

/// Connects without creating or migrating anything, for commands that only
/// read (`report`): a database that is missing or behind is an error that
/// says what to run, not a new empty database or a migration nobody asked
/// for (one may take minutes on a large database).
pub(crate) async fn open_store_for_reading(
    args: &DatabaseArgs,
) -> Result<std::sync::Arc<dyn store::Store>, String> {
    let shown = redact_url(&args.database_url);
    let store = store::connect_existing(&args.database_url, &args.connect_options())
        .await
        .map_err(|e| format!("cannot open DATABASE_URL {shown}: {e}"))?;
    let pending = match store.pending_migrations().await {
        Ok(pending) => pending,
        Err(e) => {
            store.close().await;
            return Err(format!(
                "cannot read the database at DATABASE_URL {shown}: {e}"
            ));
        }
    };
    if pending > 0 {
        store.close().await;
        return Err(format!(
            "the database at DATABASE_URL {shown} lacks {pending} of this version's migrations: \
             run `zego-room-tracker migrate` (or `serve`) with this DATABASE_URL first"
        ));
    }
    Ok(store)
}

/// The URL with any password replaced, for logs and errors: in the user
/// part (read as the URL parser, and so sqlx, reads it: to the last `@`
/// before the host) and in a `password=` query parameter.
pub fn redact_url(url: &str) -> String {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return redact_unparsed(url);
    };
    let in_query = parsed.query_pairs().any(|(key, _)| key == "password");
    if parsed.password().is_none() && !in_query {
        return url.to_owned();
    }
    let mut shown = format!("{}://{}", parsed.scheme(), parsed.username());
    if parsed.password().is_some() {
        shown.push_str(":[redacted]");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        shown.push('@');
    }
    shown.push_str(parsed.host_str().unwrap_or(""));
    if let Some(port) = parsed.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(parsed.path());
    if parsed.query().is_some() {
        let pairs: Vec<String> = parsed
            .query_pairs()
            .map(|(key, value)| match key.as_ref() {
                "password" => format!("{key}=[redacted]"),
                _ => format!("{key}={value}"),
            })
            .collect();
        shown.push('?');
        shown.push_str(&pairs.join("&"));
    }
    shown
}

/// `redact_url` of a URL the parser refuses (a `#` or `/` in the password,
/// a socket path), which is when the error that shows it is most likely:
/// everything from the first `:` of the user part to the last `@` is
/// hidden, and a `password=` parameter's value. It may hide more than the
/// password, never less.
fn redact_unparsed(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let rest = match rest.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{user}:[redacted]@{host}")
        }
        _ => rest.to_owned(),
    };
    let shown = match rest.split_once("password=") {
        Some((before, after)) => {
            let tail = after.find('&').map_or("", |at| &after[at..]);
            format!("{before}password=[redacted]{tail}")
        }
        None => rest,
    };
    format!("{scheme}://{shown}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:[redacted]@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
        // The user part runs to the last `@`, as sqlx reads it.
        assert_eq!(
            redact_url("postgres://u:top@secret@h/db"),
            "postgres://u:[redacted]@h/db"
        );
        assert_eq!(
            redact_url("postgres://u@h:5432/db?sslmode=require&password=hunter2"),
            "postgres://u@h:5432/db?sslmode=require&password=[redacted]"
        );
        // URLs the parser refuses, as sqlx does: their error shows them.
        assert_eq!(
            redact_url("postgres://u:Hunter2#x@h:5432/db"),
            "postgres://u:[redacted]@h:5432/db"
        );
        assert_eq!(
            redact_url("postgres://u:s3cr/et@h/db"),
            "postgres://u:[redacted]@h/db"
        );
        assert_eq!(
            redact_url("postgres://u@/db?host=/run/x#y&password=pw&sslmode=off"),
            "postgres://u@/db?host=/run/x#y&password=[redacted]&sslmode=off"
        );
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
        Tools::command().debug_assert();
    }
}
