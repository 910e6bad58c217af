//! The OpenAPI 3 document, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::api;
use super::api::views;

#[derive(OpenApi)]
#[openapi(
    info(title = "zego-room-tracker", description = "ZEGO room-lifecycle callbacks in, room history out."),
    paths(
        super::callbacks::receive_typed,
        super::callbacks::receive_any,
        api::list_closed,
        api::list_open,
        api::room_history,
        api::session_detail,
        api::close_reasons,
        api::list_deliveries,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        openapi_json,
    ),
    components(schemas(
        views::SessionView, views::SessionDetail, views::ParticipantView, views::TimelineEntry,
        views::CloseReasonStats, views::ReasonCountView, views::BucketView, views::DeliveryView,
        super::error::ErrorBody, super::error::ErrorDetail, super::callbacks::Ack, super::callbacks::CallbackBody,
    )),
    modifiers(&BearerAuth, &Unavailable),
    tags(
        (name = "callbacks", description = "What ZEGO calls; signed, no token"),
        (name = "rooms", description = "Room sessions"),
        (name = "sessions", description = "One session with its participants"),
        (name = "stats", description = "Aggregates"),
        (name = "operations", description = "Archive and probes"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The 503 every query API operation can answer, listed once here rather
/// than on each: the database did not answer within DATABASE_TIMEOUT_MS
/// (`storage_unavailable`) or the request outlived REQUEST_TIMEOUT_SECS
/// (`timeout`). Clients generated from the document should retry it.
struct Unavailable;

impl Modify for Unavailable {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let unavailable = ResponseBuilder::new()
            .description("Database unavailable or the request took too long; retry")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/v1/") {
                continue;
            }
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                operation
                    .responses
                    .responses
                    .entry("503".to_owned())
                    .or_insert_with(|| unavailable.clone().into());
            }
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
