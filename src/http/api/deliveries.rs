//! The delivery archive, for operators.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use super::params::{self, ApiQuery};
use super::views::{DeliveryView, Page};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::DeliveryFilter;

const OUTCOMES: [&str; 5] = ["stored", "duplicate", "conflict", "ignored", "rejected"];

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// `stored`, `duplicate`, `conflict`, `ignored` or `rejected`.
    #[param(pattern = "^(stored|duplicate|conflict|ignored|rejected)$")]
    pub outcome: Option<String>,
    /// Received at or after: RFC 3339 or Unix milliseconds, up to year 9999.
    #[param(
        pattern = r"^([0-9]{1,16}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))$"
    )]
    pub from: Option<String>,
    /// Received before (exclusive).
    #[param(
        pattern = r"^([0-9]{1,16}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))$"
    )]
    pub to: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9a-f]{2,200}$")]
    pub cursor: Option<String>,
}

/// Every delivery that reached a callback endpoint, newest first, with its raw body.
#[utoipa::path(get, path = "/api/v1/deliveries", tag = "operations", params(DeliveryParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of deliveries", body = Page<DeliveryView>),
               (status = 400, description = "A parameter is invalid", body = crate::http::error::ErrorBody),
               (status = 401, description = "Missing or wrong token", body = crate::http::error::ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<DeliveryParams>,
) -> Result<Json<Page<DeliveryView>>, ApiError> {
    if let Some(outcome) = p.outcome.as_deref()
        && !OUTCOMES.contains(&outcome)
    {
        return Err(ApiError::invalid_parameter(
            "outcome",
            format!("must be one of {}, not {outcome:?}", OUTCOMES.join(", ")),
        ));
    }
    let (from, to) = params::range(p.from.as_deref(), p.to.as_deref())?;
    let limit = params::limit(p.limit.as_deref())?;
    let filter = DeliveryFilter {
        outcome: p.outcome,
        from,
        to,
        before_id: params::id_cursor(p.cursor.as_deref())?,
        limit: limit + 1,
    };
    let mut rows = state.store.list_deliveries(&filter).await?;
    let next_cursor = params::trim_page(&mut rows, limit, |row| params::encode_id_cursor(row.id));
    Ok(Json(Page {
        items: rows.into_iter().map(DeliveryView::from).collect(),
        next_cursor,
    }))
}
