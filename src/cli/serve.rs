//! `serve`: migrate, then answer callbacks and queries until SIGTERM/SIGINT.

use super::{open_store, redact_url};
use crate::config::{ServeArgs, ServeConfig};
use crate::{http, telemetry};

pub async fn serve(args: ServeArgs) -> Result<(), String> {
    let config = args.validate().map_err(|e| e.to_string())?;
    telemetry::init(args.log_format);
    let tls = match &config.tls {
        None => None,
        Some((cert, key)) => Some(http::tls::load(cert, key).await?),
    };
    let store = open_store(&args.database).await?;
    // Checked with group commit off too, so a wrong value is never silently ignored.
    let writer_cpu = config
        .writer_cpu
        .resolve(store.backend(), &crate::store::writer_cpu::allowed_cpus())?;
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .map_err(|e| format!("cannot listen on LISTEN_ADDR {}: {e}", config.listen_addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    log_startup(&config, addr, tls.is_some());
    tokio::spawn(crate::retention::run_scheduled(
        store.clone(),
        config.archive_retention,
        config.verify.timestamp_tolerance,
    ));
    let group_commit = match config.group_commit {
        None => None,
        Some(mut options) => {
            if store.backend() == crate::store::Backend::Sqlite {
                options.workers = 1; // one writer: more workers would only split batches
            }
            options.cpu = writer_cpu;
            let started = crate::store::group_commit::GroupCommit::start(&store, options);
            Some(started.map_err(|e| format!("cannot start the GROUP_COMMIT writers: {e}"))?)
        }
    };
    let state = http::AppState {
        group_commit,
        store: store.clone(),
        verify: config.verify.into(),
        display_decoding: config.display_decoding,
        body_limit: config.body_limit,
        api_tokens: config.api_tokens.into(),
        request_timeout: config.request_timeout,
    };
    run_until_signal(listener, state, tls, config.shutdown_grace).await?;
    // Closing waits for connections still checked out (a retention purge,
    // a request past the grace); one that stopped answering would hold the
    // exit for good. Everything answered 2xx is committed already.
    let closing = config.shutdown_grace.max(std::time::Duration::from_secs(5));
    if tokio::time::timeout(closing, store.close()).await.is_err() {
        tracing::warn!(
            secs = closing.as_secs(),
            "closing the database connections took too long; exiting"
        );
        return Ok(());
    }
    tracing::info!("shut down cleanly");
    Ok(())
}

/// The startup line, and a warning for each setting that invites trouble.
fn log_startup(config: &ServeConfig, addr: std::net::SocketAddr, https: bool) {
    tracing::info!(
        %addr,
        database = %redact_url(&config.database_url),
        timestamp_tolerance_secs = config.verify.timestamp_tolerance.map_or(0, |d| d.as_secs()),
        body_limit_bytes = config.body_limit,
        display_field_decoding = clap::ValueEnum::to_possible_value(&config.display_decoding)
            .map(|v| v.get_name().to_owned()),
        scheme = if https { "https" } else { "http" },
        "zego-room-tracker listening"
    );
    if config.api_tokens.is_empty() {
        tracing::warn!(
            "API_TOKENS is not set: the query API (/api/v1) answers only clients on this machine, \
             which includes a reverse proxy on this machine and so everyone it forwards; \
             set API_TOKENS behind a proxy"
        );
    }
    if let Some(tolerance) = config
        .verify
        .timestamp_tolerance
        .filter(|t| t.as_secs() < 62)
    {
        tracing::warn!(
            "TIMESTAMP_TOLERANCE_SECS is {}: under ZEGO's 62 s retry span, so a retry that keeps \
             its first timestamp may be refused (401 stale_timestamp)",
            tolerance.as_secs()
        );
    }
}

/// Serves until SIGTERM/SIGINT: the server then stops accepting and
/// drains in-flight requests; past `grace` we go on to exit anyway.
async fn run_until_signal(
    listener: tokio::net::TcpListener,
    state: http::AppState,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    grace: std::time::Duration,
) -> Result<(), String> {
    let signalled = std::sync::Arc::new(tokio::sync::Notify::new());
    let notify = signalled.clone();
    let shutdown = async move {
        shutdown_signal().await;
        notify.notify_one();
    };
    let server = async {
        match tls {
            None => http::serve(listener, state, shutdown).await,
            Some(tls) => http::serve_tls(listener, state, tls, shutdown).await,
        }
    };
    tokio::select! {
        result = server => result.map_err(|e| format!("the server stopped: {e}"))?,
        () = async { signalled.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests outlived SHUTDOWN_GRACE_SECS; exiting");
        }
    }
    Ok(())
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
