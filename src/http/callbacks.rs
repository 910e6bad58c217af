//! ZEGO's callback endpoints. Each handler is decode → verify → classify
//! (`ingest::assess`) → store → respond; the store decides duplicates,
//! conflicts and replays inside the transaction that archives the delivery.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, FromRef, FromRequest, Path, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};

use super::AppState;
use super::error::ApiError;
use crate::domain::{Outcome, RejectCode, Rejection, Verdict};
use crate::ingest::{self, PathEvent, RawCallback};
use crate::metrics;

/// The fields every ZEGO callback carries; each event adds its own (see
/// docs/api.md and ZEGO's documentation), and unknown fields are kept.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // a schema only: bodies are decoded by `zego::body`
pub struct CallbackBody {
    /// `room_create`, `room_close`, `room_login`, `room_logout`, or another
    /// ZEGO event. Required on `POST /callbacks`; on `/callbacks/{event}`
    /// the path names the event when the body does not.
    event: Option<String>,
    /// The ZEGO app id, an unsigned 32-bit integer (number or decimal string).
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_i64)]
    appid: u32,
    /// Unix seconds when ZEGO sent it (number or decimal string).
    timestamp: String,
    nonce: String,
    /// `hex(sha1(sorted(secret, timestamp, nonce)))`.
    signature: String,
}

/// The answer to an accepted delivery.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Ack {
    /// `stored`, `duplicate`, `conflict` (same identity, other content; the
    /// first copy stays) or `ignored` (a signed event we do not model).
    pub status: &'static str,
}

/// One ZEGO callback type; the body's `event`, if any, must match the path.
/// Body: JSON, the JSON URL-encoded as a whole, or form fields, signed by ZEGO.
#[utoipa::path(post, path = "/callbacks/{event}", tag = "callbacks",
    params(("event" = String, Path, pattern = "^[a-z0-9_]{1,64}$",
            description = "room_create, room_close, room_login or room_logout; another ZEGO event's name (stream_close) is archived and, signed, answered `ignored`")),
    request_body(description = "ZEGO's callback fields",
                 content((CallbackBody = "application/json"), (CallbackBody = "application/x-www-form-urlencoded"))),
    responses((status = 200, description = "Committed (or ignored)", body = Ack),
               (status = 400, description = "Malformed, missing or invalid field, wrong event", body = super::error::ErrorBody),
               (status = 401, description = "Signature, timestamp or replay failure", body = super::error::ErrorBody),
               (status = 404, description = "A path that cannot name a ZEGO event", body = super::error::ErrorBody),
               (status = 408, description = "The body did not arrive whole in time", body = super::error::ErrorBody),
               (status = 413, description = "Body over BODY_LIMIT_BYTES", body = super::error::ErrorBody),
               (status = 503, description = "Database unavailable; retry", body = super::error::ErrorBody)))]
pub async fn receive_typed(
    State(state): State<AppState>,
    event: Result<Path<String>, PathRejection>,
    raw: RawBody,
) -> Result<Json<Ack>, ApiError> {
    let not_found = |event: &str| {
        ApiError::not_found(format!(
            "there is no callback endpoint for {event:?}: a ZEGO event name is 1 to 64 lower-case letters, digits and `_`"
        ))
    };
    // A segment that does not decode to UTF-8 names no event either.
    let Path(event) =
        event.map_err(|_| not_found(raw.0.endpoint.trim_start_matches("/callbacks/")))?;
    let expected = PathEvent::of_segment(&event).ok_or_else(|| not_found(&event))?;
    receive(&state, expected, raw.0).await
}

/// Any ZEGO callback; the event is taken from the body's `event`.
#[utoipa::path(post, path = "/callbacks", tag = "callbacks",
    request_body(description = "ZEGO's callback fields",
                 content((CallbackBody = "application/json"), (CallbackBody = "application/x-www-form-urlencoded"))),
    responses((status = 200, description = "Committed (or ignored)", body = Ack),
               (status = 400, description = "Malformed, missing or invalid field", body = super::error::ErrorBody),
               (status = 401, description = "Signature, timestamp or replay failure", body = super::error::ErrorBody),
               (status = 408, description = "The body did not arrive whole in time", body = super::error::ErrorBody),
               (status = 413, description = "Body over BODY_LIMIT_BYTES", body = super::error::ErrorBody),
               (status = 503, description = "Database unavailable; retry", body = super::error::ErrorBody)))]
pub async fn receive_any(
    State(state): State<AppState>,
    raw: RawBody,
) -> Result<Json<Ack>, ApiError> {
    receive(&state, PathEvent::Any, raw.0).await
}

async fn receive(
    state: &AppState,
    expected: PathEvent<'_>,
    raw: RawCallback,
) -> Result<Json<Ack>, ApiError> {
    let started = Instant::now();
    let delivery = ingest::assess(&state.verify, state.display_decoding, expected, raw);
    // What the log line and the lag metric need, kept before the delivery
    // moves into a batch.
    let summary = delivery.summary.clone();
    // A body without `event` is the event its path names, as it is stored.
    let event = summary.event.as_deref().or(expected.name());
    let delay = match &delivery.verdict {
        Verdict::Accepted(event) => (delivery.received_at - event.event_at().to_utc())
            .to_std()
            .ok(),
        _ => None,
    };
    let outcome = match &state.group_commit {
        Some(batches) => batches.record(delivery).await?,
        None => state.store.record_delivery(&delivery).await?,
    };
    let lag = delay.filter(|_| outcome == Outcome::Stored);
    metrics::record_callback(event, &outcome, lag);
    tracing::info!(
        event = event.unwrap_or("-"),
        appid = summary.appid,
        room_id = summary.room_id.as_deref().unwrap_or("-"),
        room_session_id = summary.room_session_id.as_deref().unwrap_or("-"),
        outcome = outcome.as_str(),
        reason = match &outcome {
            Outcome::Rejected(r) => r.code.as_str(),
            _ => "-",
        },
        // Hundredths, as docs/operations.md shows the line.
        latency_ms = (started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0,
        "callback"
    );
    match outcome {
        Outcome::Rejected(rejection) => Err(rejection.into()),
        accepted => Ok(Json(Ack {
            status: accepted.as_str(),
        })),
    }
}

/// The request as received: body (read up to the limit), peer, path, type.
pub struct RawBody(RawCallback);

impl<S> FromRequest<S> for RawBody
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<RawBody, ApiError> {
        let state = AppState::from_ref(state);
        let limit = state.body_limit;
        // A tenth short of REQUEST_TIMEOUT_SECS, whose 503 says the service
        // was slow: a body that stops arriving is the sender's doing.
        let body_deadline = state.request_timeout - state.request_timeout / 10;
        let received_at = RawCallback::arrival_now();
        let (parts, body) = req.into_parts();
        let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
        // Refuse before reading when the sender announces too much.
        if header(CONTENT_LENGTH)
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| n > limit)
        {
            return Err(ApiError::body_too_large(limit));
        }
        let read = tokio::time::timeout(body_deadline, axum::body::to_bytes(body, limit));
        let read = read
            .await
            .map_err(|_| ApiError::body_timeout(body_deadline))?;
        let body = read.map_err(|e| {
            if is_length_limit(&e) {
                ApiError::body_too_large(limit)
            } else {
                // Not archived: there is no body to keep (the sender broke
                // off, or its chunked encoding was invalid).
                Rejection::new(
                    RejectCode::MalformedBody,
                    format!("the body could not be read: {e}"),
                )
                .into()
            }
        })?;
        Ok(RawBody(RawCallback {
            received_at,
            remote_addr: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.to_string()),
            endpoint: parts.uri.path().to_owned(),
            content_type: header(CONTENT_TYPE).map(str::to_owned),
            body,
        }))
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}
