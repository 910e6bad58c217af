//! The HTTP layer's one error type and its one JSON shape:
//! `{"error": {"code": "snake_case_code", "message": "human sentence"}}`.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::domain::{RejectCode, Rejection};
use crate::store::StoreError;

/// What every error answer's body is (and the OpenAPI document's schema
/// of it): `ApiError` is only ever sent as this.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `invalid_parameter`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    /// A bug: the 500 that says nothing about internals.
    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an internal error occurred",
        )
    }

    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A query parameter that cannot be used; the message starts with its name.
    pub fn invalid_parameter(name: &str, problem: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            format!("`{name}` {problem}"),
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn body_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            RejectCode::BodyTooLarge.as_str(),
            format!("the body is larger than the {limit}-byte limit (BODY_LIMIT_BYTES)"),
        )
    }

    /// A body that did not arrive whole in time (not archived: there is no
    /// body to keep).
    pub fn body_timeout(waited: std::time::Duration) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the body did not arrive within {:.1} s; send it whole",
                waited.as_secs_f64()
            ),
        )
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> ApiError {
        let status = match r.code {
            RejectCode::MissingSignature
            | RejectCode::InvalidSignature
            | RejectCode::StaleTimestamp
            | RejectCode::ReplayedSignature => StatusCode::UNAUTHORIZED,
            RejectCode::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RejectCode::MalformedBody
            | RejectCode::EventMismatch
            | RejectCode::MissingField
            | RejectCode::InvalidField => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, r.code.as_str(), r.message)
    }
}

/// A query string the endpoint's parameters cannot be read from.
impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        ApiError::invalid_parameter("query", e.body_text())
    }
}

/// A path segment the endpoint cannot use (not UTF-8 once percent-decoded).
impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> ApiError {
        ApiError::invalid_parameter("path", e.body_text())
    }
}

/// 5xx bodies say nothing about internals; the cause goes to the log.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Unavailable(_) | StoreError::Unusable(_) => {
                tracing::warn!(error = %e, "storage unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the database is unavailable; retry later",
                )
            }
            _ => {
                tracing::error!(error = %e, "storage error");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
