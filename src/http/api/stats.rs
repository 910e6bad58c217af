//! Close-reason statistics, optionally in continuous UTC hour or day buckets.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use super::params::{self, ApiQuery};
use super::views::{BucketView, CloseReasonStats, ReasonCountView, Timestamp};
use crate::domain::reason::close_reason_name;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::query::{Bucket, ReasonCount, StatsQuery};

/// More buckets than this is a 400: a chart cannot use them anyway.
pub const MAX_BUCKETS: i64 = 10_000;
/// Always listed, with zero counts, so charts keep their series.
const KNOWN_REASONS: [i64; 4] = [0, 1, 2, 3];

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// Only this app.
    #[param(value_type = Option<i64>, minimum = 0.0, maximum = 4294967295.0)]
    pub appid: Option<String>,
    /// Only this room id.
    pub room_id: Option<String>,
    /// Closed at or after: RFC 3339 or Unix milliseconds, up to year 9999.
    #[param(
        pattern = r"^([0-9]{1,16}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))$"
    )]
    pub from: Option<String>,
    /// Closed before (exclusive).
    #[param(
        pattern = r"^([0-9]{1,16}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))$"
    )]
    pub to: Option<String>,
    /// `none` (default), `hour` or `day` (UTC).
    #[param(pattern = "^(none|hour|day)$")]
    pub bucket: Option<String>,
}

/// How many closed sessions ended for each reason.
#[utoipa::path(get, path = "/api/v1/stats/close-reasons", tag = "stats", params(StatsParams),
    security(("bearer" = [])),
    responses((status = 200, description = "Counts per reason", body = CloseReasonStats),
               (status = 400, description = "A parameter is invalid, or too many buckets", body = crate::http::error::ErrorBody),
               (status = 401, description = "Missing or wrong token", body = crate::http::error::ErrorBody)))]
pub async fn close_reasons(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<StatsParams>,
) -> Result<Json<CloseReasonStats>, ApiError> {
    let (from, to) = params::range(p.from.as_deref(), p.to.as_deref())?;
    let bucket = match p.bucket.as_deref() {
        None | Some("none") => Bucket::None,
        Some("hour") => Bucket::Hour,
        Some("day") => Bucket::Day,
        Some(other) => {
            return Err(ApiError::invalid_parameter(
                "bucket",
                format!("must be none, hour or day, not {other:?}"),
            ));
        }
    };
    let query = StatsQuery {
        appid: params::appid(p.appid.as_deref())?,
        room_id: params::room_id(p.room_id)?,
        from,
        to,
        bucket,
    };
    let counts = state.store.close_reason_counts(&query).await?;
    Ok(Json(summarise(&counts, bucket_size(bucket))?))
}

fn bucket_size(bucket: Bucket) -> Option<TimeDelta> {
    match bucket {
        Bucket::None => None,
        Bucket::Hour => Some(TimeDelta::hours(1)),
        Bucket::Day => Some(TimeDelta::days(1)),
    }
}

fn check_bucket_count(
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    size: TimeDelta,
) -> Result<(), ApiError> {
    let count = (last - first).num_milliseconds() / size.num_milliseconds() + 1;
    if count > MAX_BUCKETS {
        return Err(ApiError::invalid_parameter(
            "bucket",
            format!(
                "would give {count} buckets (at most {MAX_BUCKETS}): narrow `from`/`to` or widen the bucket"
            ),
        ));
    }
    Ok(())
}

fn summarise(
    counts: &[ReasonCount],
    size: Option<TimeDelta>,
) -> Result<CloseReasonStats, ApiError> {
    let mut totals: BTreeMap<i64, i64> = KNOWN_REASONS.iter().map(|&r| (r, 0)).collect();
    let mut per_bucket: BTreeMap<DateTime<Utc>, BTreeMap<i64, i64>> = BTreeMap::new();
    for c in counts {
        let reason = c.close_reason.unwrap_or(-1);
        *totals.entry(reason).or_default() += c.count;
        if let Some(start) = c.bucket_start {
            *per_bucket
                .entry(start)
                .or_default()
                .entry(reason)
                .or_default() += c.count;
        }
    }
    let list = |counts: &BTreeMap<i64, i64>| -> Vec<ReasonCountView> {
        totals
            .keys()
            .map(|&r| ReasonCountView {
                close_reason: r,
                name: close_reason_name(r),
                count: counts.get(&r).copied().unwrap_or(0),
            })
            .collect()
    };
    let buckets = match size {
        None => None,
        Some(size) => {
            let mut views = Vec::new();
            if let (Some(first), Some(last)) =
                (per_bucket.keys().next(), per_bucket.keys().next_back())
            {
                check_bucket_count(*first, *last, size)?;
                let empty = BTreeMap::new();
                let mut start = *first;
                while start <= *last {
                    views.push(BucketView {
                        start: Timestamp(start),
                        reasons: list(per_bucket.get(&start).unwrap_or(&empty)),
                    });
                    start += size;
                }
            }
            Some(views)
        }
    };
    Ok(CloseReasonStats {
        total: totals.values().sum(),
        reasons: list(&totals),
        buckets,
    })
}
