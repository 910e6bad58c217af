//! Keeping the database small: delete what is older than a cut-off, one
//! batch per transaction, so ingestion is never locked out for long.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::{Store, StoreError, retrying_lock_conflicts};

/// What one purge deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub deliveries: u64,
    pub sessions: u64,
}

/// Deletes archived deliveries from before `cutoff`, and with `sessions`
/// whole sessions all of whose events are before it. `progress` sees the
/// running totals after every batch.
///
/// Not the replay guard: an entry is safe to delete only once its triple
/// can no longer pass the timestamp check, which depends on the tolerance,
/// not on how long the archive is kept (with the check off, never). `serve`
/// purges it hourly by the tolerance (`run_scheduled`).
pub async fn purge(
    store: &dyn Store,
    cutoff: DateTime<Utc>,
    sessions: bool,
    batch: i64,
    progress: impl Fn(&Purged),
) -> Result<Purged, StoreError> {
    let mut purged = Purged::default();
    // A batch PostgreSQL picks as a deadlock victim rolled back: again.
    loop {
        let n = retrying_lock_conflicts(|| store.purge_deliveries(cutoff, batch)).await?;
        purged.deliveries += n;
        progress(&purged);
        if n == 0 {
            break;
        }
    }
    if sessions {
        loop {
            let n = retrying_lock_conflicts(|| store.purge_sessions(cutoff, batch)).await?;
            purged.sessions += n;
            progress(&purged);
            if n == 0 {
                break;
            }
        }
    }
    Ok(purged)
}

/// Replay-guard entries first seen before `cutoff`. Safe only when `cutoff`
/// is at least twice the timestamp tolerance ago (`upkeep` adds a
/// second): older triples can never pass the timestamp check again.
pub async fn purge_replay_guard(
    store: &dyn Store,
    cutoff: DateTime<Utc>,
    batch: i64,
) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let n = store.purge_replay_guard(cutoff, batch).await?;
        total += n;
        if n == 0 {
            return Ok(total);
        }
    }
}

/// `serve`'s background upkeep: `upkeep` at startup and then hourly.
/// Errors are logged and retried next hour.
pub async fn run_scheduled(
    store: std::sync::Arc<dyn Store>,
    retention: Option<Duration>,
    tolerance: Option<Duration>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        upkeep(store.as_ref(), Utc::now(), retention, tolerance).await;
    }
}

/// What one round of upkeep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Upkept {
    pub replay_guard: u64,
    pub deliveries: u64,
}

/// One round of upkeep as of `now`: the replay guard beyond twice the
/// timestamp tolerance (only while the window is on) and, with a retention
/// set, the archive beyond it. A step that fails is logged and counts as
/// nothing deleted; the next round tries again.
pub async fn upkeep(
    store: &dyn Store,
    now: DateTime<Utc>,
    retention: Option<Duration>,
    tolerance: Option<Duration>,
) -> Upkept {
    let mut upkept = Upkept::default();
    // Twice the tolerance, and a second more: the timestamp check
    // compares whole seconds, so a triple first seen in the first
    // second it was valid stays valid just under a second longer.
    let guard_span = |t: Duration| t.checked_mul(2)?.checked_add(Duration::from_secs(1));
    if let Some(cutoff) = tolerance.and_then(|t| before(now, guard_span(t)?)) {
        match purge_replay_guard(store, cutoff, 5000).await {
            Ok(n) => {
                upkept.replay_guard = n;
                if n > 0 {
                    tracing::info!(deleted = n, "purged expired replay-guard entries")
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "replay-guard purge failed; retrying in an hour")
            }
        }
    }
    if let Some(cutoff) = retention.and_then(|r| before(now, r)) {
        match purge(store, cutoff, false, 5000, |_| {}).await {
            Ok(p) => {
                upkept.deliveries = p.deliveries;
                tracing::info!(deliveries = p.deliveries, %cutoff, "archive retention purge")
            }
            Err(e) => {
                tracing::warn!(error = %e, "archive retention purge failed; retrying in an hour")
            }
        }
    }
    upkept
}

/// `now - span`, or `None` when that is before any time we can hold (an
/// absurdly long setting: nothing is that old, so nothing to purge). The
/// hourly task must not panic on it: it would stop for good, silently;
/// `purge` refuses it.
pub fn before(now: DateTime<Utc>, span: Duration) -> Option<DateTime<Utc>> {
    now.checked_sub_signed(chrono::Duration::from_std(span).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_too_long_to_subtract_is_no_cutoff_not_a_panic() {
        let now = Utc::now();
        assert_eq!(
            before(now, Duration::from_secs(3600)),
            Some(now - chrono::Duration::hours(1))
        );
        assert_eq!(before(now, Duration::from_secs(u64::MAX)), None);
        assert_eq!(before(now, Duration::from_secs(10_u64.pow(13) * 2)), None);
    }
}
