//! Prometheus metrics: what is counted, under which names, and the text
//! `GET /metrics` serves. Labels only ever take values from fixed sets
//! (known events, outcomes, reject codes, route templates), never from a
//! request body, so a sender cannot blow up the number of series.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::{EventKind, Outcome};

/// Installs the process-wide recorder on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        // Durations, from a tenth of a millisecond (a write statement) to
        // seconds (a slow request).
        let durations = [
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0,
        ];
        let lag = [
            0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 15.0, 30.0, 60.0, 120.0, 600.0, 3600.0,
        ];
        // Buckets for every histogram by default: one without them becomes
        // a summary, which keeps its samples until a scrape and cost 14 MiB
        // of peak memory to render after a busy minute.
        let recorder = PrometheusBuilder::new()
            .set_buckets(&durations)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full("zrt_callback_lag_seconds".into()), &lag)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("zrt_group_commit_batch_size".into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                )
            })
            .expect("bucket lists are non-empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder (a test harness) may already be installed; ours
        // then still renders what it records through `handle`.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// One callback delivery's outcome, and for a new event how late it came.
pub fn record_callback(event: Option<&str>, outcome: &Outcome, lag: Option<Duration>) {
    let event = event
        .and_then(EventKind::parse)
        .map_or("other", EventKind::as_str);
    counter!("zrt_callbacks_total", "event" => event, "outcome" => outcome.as_str()).increment(1);
    if let Outcome::Rejected(rejection) = outcome {
        counter!("zrt_callback_rejections_total", "reason" => rejection.code.as_str()).increment(1);
    }
    if let Some(lag) = lag {
        histogram!("zrt_callback_lag_seconds", "event" => event).record(lag.as_secs_f64());
    }
}

/// One HTTP request; `route` is the matched route template.
pub fn record_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    histogram!(
        "zrt_http_request_duration_seconds",
        "method" => method_label(method), "route" => route.to_owned(), "status" => status.to_string()
    )
    .record(elapsed.as_secs_f64());
}

/// The methods HTTP defines by name, and `other`: a client can send any
/// token as a method, and each would otherwise be a new series.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("other")
}

/// Database connections open and idle, sampled at scrape time.
pub fn record_pool(open: u32, idle: usize, max: u32) {
    gauge!("zrt_db_pool_connections", "state" => "open").set(f64::from(open));
    gauge!("zrt_db_pool_connections", "state" => "idle").set(idle as f64);
    gauge!("zrt_db_pool_connections", "state" => "max").set(f64::from(max));
}

/// One group-commit transaction: how many deliveries it held and how long
/// it took to write and commit them.
pub fn record_batch(size: usize, elapsed: Duration) {
    histogram!("zrt_group_commit_batch_size").record(size as f64);
    histogram!("zrt_group_commit_duration_seconds").record(elapsed.as_secs_f64());
}

/// A write transaction run again after PostgreSQL picked it as a deadlock
/// or serialization victim (`store::retrying_lock_conflicts`).
pub fn record_write_retry() {
    counter!("zrt_write_retries_total", "reason" => "lock_conflict").increment(1);
}

/// One step of a write transaction (`store::timed::WriteStep`).
pub fn record_write_step(step: &'static str, elapsed: Duration) {
    histogram!("zrt_write_step_duration_seconds", "step" => step).record(elapsed.as_secs_f64());
}
