//! The HTTP surface: router, shared state, and the server loop.

pub mod api;
mod callbacks;
pub mod error;
mod health;
pub mod openapi;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use std::time::{Duration, Instant};

use axum::error_handling::HandleErrorLayer;
use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{BoxError, Router};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower::timeout::TimeoutLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::ingest::VerifyPolicy;
use crate::store::Store;
use crate::store::group_commit::GroupCommit;
use crate::zego::Secret;
use crate::zego::fields::DisplayDecoding;
use error::ApiError;

/// What every handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub verify: Arc<VerifyPolicy>,
    /// DISPLAY_FIELD_DECODING.
    pub display_decoding: DisplayDecoding,
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
                // A bug some request trips answers our JSON 500 (the panic
                // is logged) instead of dropping the connection unanswered.
                .layer(CatchPanicLayer::custom(answer_panic as PanicAnswer))
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

type PanicAnswer = fn(Box<dyn std::any::Any + Send>) -> Response;

/// The answer to a request whose handler panicked: our JSON 500, where the
/// connection would otherwise be dropped unanswered. (The panic's message
/// has gone to stderr already, through the panic hook.)
fn answer_panic(_panic: Box<dyn std::any::Any + Send>) -> Response {
    tracing::error!("a request handler panicked; answered 500");
    ApiError::internal().into_response()
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

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_the_json_500() {
        async fn buggy() -> &'static str {
            panic!("a bug some request tripped")
        }
        let app = Router::new()
            .route("/", get(buggy))
            .layer(CatchPanicLayer::custom(answer_panic as PanicAnswer));
        let response = app
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = to_bytes(response.into_body(), 1024).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "internal_error");
    }
}
