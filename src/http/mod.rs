//! The HTTP surface: router, shared state, and the server loop.

pub mod api;
mod callbacks;
pub mod error;
mod health;
pub mod openapi;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use std::time::{Duration, Instant};

use axum::error_handling::HandleErrorLayer;
use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{BoxError, Router};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::ingest::VerifyPolicy;
use crate::store::Store;
use crate::store::group_commit::GroupCommit;
use crate::zego::Secret;
use error::ApiError;

/// What every handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub verify: Arc<VerifyPolicy>,
    pub body_limit: usize,
    /// Bearer tokens for `/api/v1`; empty means loopback clients only.
    pub api_tokens: Arc<Vec<Secret>>,
    /// Longest a request may take before it answers 503.
    pub request_timeout: Duration,
    /// Batches concurrent callbacks into shared transactions; `None` writes
    /// each in its own.
    pub group_commit: Option<GroupCommit>,
}

/// Records every request's latency under its route template.
async fn measure(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    crate::metrics::record_request(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The whole application as a router, for `serve` and for in-process tests.
pub fn app(state: AppState) -> Router {
    let request_timeout = state.request_timeout;
    // Installed before the first request, so nothing is recorded into the void.
    crate::metrics::handle();
    Router::new()
        .route("/callbacks", post(callbacks::receive_any))
        .route("/callbacks/{event}", post(callbacks::receive_typed))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/metrics", get(health::metrics))
        .nest("/api/v1", api::router(state.clone()))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(
            ServiceBuilder::new()
                .layer(TraceLayer::new_for_http())
                .layer(middleware::from_fn(measure))
                // A request that outlives this answers 503, so ZEGO retries
                // instead of holding a connection open.
                .layer(HandleErrorLayer::new(|_: BoxError| async {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "timeout",
                        "the request took too long; retry",
                    )
                }))
                .layer(TimeoutLayer::new(request_timeout)),
        )
        .with_state(state)
}

/// Like `serve`, over HTTPS with `tls` (rustls): for small deployments that
/// have no TLS-terminating proxy in front (ZEGO recommends HTTPS).
pub async fn serve_tls(
    listener: TcpListener,
    state: AppState,
    tls: axum_server::tls_rustls::RustlsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::new();
    let on_signal = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        // No deadline here: `serve`'s caller bounds the drain (SHUTDOWN_GRACE_SECS).
        on_signal.graceful_shutdown(None);
    });
    axum_server::from_tcp_rustls(listener.into_std()?, tls)?
        .handle(handle)
        .serve(app(state).into_make_service_with_connect_info::<SocketAddr>())
        .await
}

/// Serves `state` on an already-bound listener until `shutdown` resolves,
/// then finishes in-flight requests. Tests bind port 0 and pass the listener.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
