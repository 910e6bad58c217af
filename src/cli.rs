//! The command line: `serve` (the default) and `migrate`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{DatabaseArgs, LogFormat, ServeArgs};
use crate::{http, store, telemetry};

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

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service (the default): migrates the database, then
    /// listens for callbacks and queries.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
}

/// Runs the parsed command; errors are printed as one sentence.
pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Migrate(args)) => migrate(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let config = args.validate().map_err(|e| e.to_string())?;
    telemetry::init(args.log_format);
    let store = open_store(&args.database).await?;
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .map_err(|e| format!("cannot listen on LISTEN_ADDR {}: {e}", config.listen_addr))?;
    tracing::info!(
        addr = %listener.local_addr().map_err(|e| e.to_string())?,
        database = %redact_url(&config.database_url),
        timestamp_tolerance_secs = config.verify.timestamp_tolerance.map_or(0, |d| d.as_secs()),
        body_limit_bytes = config.body_limit,
        "zego-room-tracker listening"
    );
    if config.api_tokens.is_empty() {
        tracing::warn!(
            "API_TOKENS is not set: the query API (/api/v1) answers only clients on this machine"
        );
    }
    let state = http::AppState {
        store,
        verify: config.verify.into(),
        body_limit: config.body_limit,
        api_tokens: config.api_tokens.into(),
    };
    http::serve(listener, state, shutdown_signal())
        .await
        .map_err(|e| format!("the server stopped: {e}"))?;
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn migrate(args: DatabaseArgs) -> Result<(), String> {
    telemetry::init(LogFormat::Text);
    open_store(&args).await?;
    tracing::info!(database = %redact_url(&args.database_url), "migrations applied");
    Ok(())
}

/// Connects and migrates, naming DATABASE_URL in any error.
async fn open_store(args: &DatabaseArgs) -> Result<std::sync::Arc<dyn store::Store>, String> {
    let shown = redact_url(&args.database_url);
    let store = store::connect(&args.database_url, &args.connect_options())
        .await
        .map_err(|e| format!("cannot open DATABASE_URL {shown}: {e}"))?;
    store
        .migrate()
        .await
        .map_err(|e| format!("cannot migrate the database at DATABASE_URL {shown}: {e}"))?;
    Ok(store)
}

/// The URL with any password replaced, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:[redacted]@{host}")
        }
        _ => url.to_owned(),
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what orchestrators send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
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
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
