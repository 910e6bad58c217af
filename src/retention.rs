//! Keeping the database small: delete what is older than a cut-off, one
//! batch per transaction, so ingestion is never locked out for long.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::{Store, StoreError};

/// What one purge deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub deliveries: u64,
    pub replay_guard: u64,
    pub sessions: u64,
}

/// Deletes archived deliveries and replay-guard entries from before
/// `cutoff`, and with `sessions` whole sessions all of whose events are
/// before it. `progress` sees the running totals after every batch.
pub async fn purge(
    store: &dyn Store,
    cutoff: DateTime<Utc>,
    sessions: bool,
    batch: i64,
    progress: impl Fn(&Purged),
) -> Result<Purged, StoreError> {
    let mut purged = Purged::default();
    loop {
        let n = store.purge_deliveries(cutoff, batch).await?;
        purged.deliveries += n;
        progress(&purged);
        if n == 0 {
            break;
        }
    }
    purged.replay_guard = purge_replay_guard(store, cutoff, batch).await?;
    if sessions {
        loop {
            let n = store.purge_sessions(cutoff, batch).await?;
            purged.sessions += n;
            progress(&purged);
            if n == 0 {
                break;
            }
        }
    }
    Ok(purged)
}

/// Replay-guard entries older than the timestamp window can never match a
/// fresh callback again: deleting them is always safe.
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

/// `serve`'s background upkeep, hourly: the replay guard beyond twice the
/// timestamp tolerance (when the window is on) and, with a retention set,
/// the archive beyond it. Errors are logged and retried next hour.
pub async fn run_scheduled(
    store: std::sync::Arc<dyn Store>,
    retention: Option<Duration>,
    tolerance: Option<Duration>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let now = Utc::now();
        if let Some(tolerance) = tolerance {
            let cutoff =
                now - chrono::Duration::from_std(tolerance * 2).unwrap_or(chrono::Duration::MAX);
            match purge_replay_guard(store.as_ref(), cutoff, 5000).await {
                Ok(n) if n > 0 => {
                    tracing::info!(deleted = n, "purged expired replay-guard entries")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "replay-guard purge failed; retrying in an hour")
                }
            }
        }
        if let Some(retention) = retention {
            let cutoff =
                now - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
            match purge(store.as_ref(), cutoff, false, 5000, |_| {}).await {
                Ok(p) => {
                    tracing::info!(deliveries = p.deliveries, replay_guard = p.replay_guard, %cutoff, "archive retention purge")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "archive retention purge failed; retrying in an hour")
                }
            }
        }
    }
}
