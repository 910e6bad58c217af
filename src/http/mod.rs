//! The HTTP surface: router, shared state, and the server loop.

pub mod api;
mod callbacks;
pub mod error;
mod health;
pub mod openapi;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::ingest::VerifyPolicy;
use crate::store::Store;
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
}

/// The whole application as a router, for `serve` and for in-process tests.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/callbacks", post(callbacks::receive_any))
        .route("/callbacks/{event}", post(callbacks::receive_typed))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::openapi_json))
        .nest("/api/v1", api::router(state.clone()))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(TraceLayer::new_for_http())
        .with_state(state)
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
