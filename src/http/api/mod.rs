//! The query API under `/api/v1`, behind bearer-token auth.

mod csv_export;
mod deliveries;
pub mod params;
mod rooms;
mod sessions;
mod stats;
pub mod views;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::error::ApiError;

pub use deliveries::__path_list_deliveries;
pub use rooms::{__path_list_closed, __path_list_open, __path_room_history};
pub use sessions::__path_session_detail;
pub use stats::__path_close_reasons;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/rooms/closed", get(rooms::list_closed))
        .route("/rooms/open", get(rooms::list_open))
        .route("/rooms/{room_id}/sessions", get(rooms::room_history))
        .route("/sessions/{room_session_id}", get(sessions::session_detail))
        .route("/stats/close-reasons", get(stats::close_reasons))
        .route("/deliveries", get(deliveries::list_deliveries))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// With tokens configured: a matching `Authorization: Bearer` (compared in
/// constant time). Without: loopback clients only, so a fresh install is not
/// an open data leak.
async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let verdict = if state.api_tokens.is_empty() {
        let loopback = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            // Canonical: on a dual-stack `[::]` listener an IPv4 client is
            // `::ffff:127.0.0.1`, which is not `is_loopback` as it stands.
            .is_some_and(|ConnectInfo(addr)| addr.ip().to_canonical().is_loopback());
        loopback.then_some(()).ok_or_else(|| {
            ApiError::unauthorized(
                "API_TOKENS is not set, so the query API answers only this machine; set API_TOKENS and send Authorization: Bearer <token>",
            )
        })
    } else {
        let presented = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        match presented {
            None => Err(ApiError::unauthorized(
                "send Authorization: Bearer <token> with a token from API_TOKENS",
            )),
            Some(token)
                if state.api_tokens.iter().any(|t| {
                    constant_time_eq::constant_time_eq(t.expose().as_bytes(), token.as_bytes())
                }) =>
            {
                Ok(())
            }
            Some(_) => Err(ApiError::unauthorized(
                "the bearer token is not one of API_TOKENS",
            )),
        }
    };
    match verdict {
        Ok(()) => next.run(request).await,
        Err(error) => {
            let mut response = error.into_response();
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme's name
/// is case-insensitive (RFC 9110), so `bearer` and `BEARER` are accepted,
/// and so is more than one space after it.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for (value, token) in [
            ("Bearer t1", Some("t1")),
            ("bearer t1", Some("t1")),
            ("BEARER  t1", Some("t1")),
            ("Basic t1", None),
            ("Bearer ", None),
            ("Bearer", None),
        ] {
            assert_eq!(bearer_token(value), token, "{value:?}");
        }
    }
}
