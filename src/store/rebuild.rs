//! `rebuild`: re-derive events, sessions, presence and the close rollup from
//! the delivery archive, in one transaction, by replaying every archived
//! delivery that passed verification through the same write path, in
//! arrival order. The result is what live ingestion of the archive gives.

use async_trait::async_trait;

use super::StoreError;
use super::model::DeliveryRecord;
use super::recorder::{WriteTx, apply_verdicts};
use crate::domain::{Delivery, Outcome};

/// Rows added and removed in one table by a rebuild (compared on their
/// content, not surrogate ids).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableChange {
    pub added: i64,
    pub removed: i64,
}

/// What a rebuild changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Archived deliveries replayed.
    pub replayed: u64,
    /// Deliveries whose outcome is now different.
    pub outcomes_changed: u64,
    pub events: TableChange,
    pub sessions: TableChange,
    pub intervals: TableChange,
    pub close_counts: TableChange,
}

impl RebuildReport {
    pub fn changed_nothing(&self) -> bool {
        self.outcomes_changed == 0
            && [
                self.events,
                self.sessions,
                self.intervals,
                self.close_counts,
            ] == [TableChange::default(); 4]
    }
}

/// Statements a rebuild needs beyond the write path.
#[async_trait]
pub trait RebuildTx: WriteTx {
    /// Keeps writers (and purges) out until the rebuild commits.
    async fn keep_writers_out(&mut self) -> Result<(), StoreError>;
    /// Copies the derived tables aside for the diff.
    async fn set_aside_current_state(&mut self) -> Result<(), StoreError>;
    /// Stored events no archived delivery points at any more.
    async fn events_without_delivery(&mut self) -> Result<i64, StoreError>;
    /// Empties events, sessions, presence and the rollup.
    async fn clear_derived(&mut self) -> Result<(), StoreError>;
    /// Archived deliveries with `id > after`, in id order.
    async fn archived_after(
        &mut self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
    /// Records a replayed delivery's outcome and event id.
    async fn set_delivery_result(
        &mut self,
        id: i64,
        outcome: &Outcome,
        event_id: Option<i64>,
    ) -> Result<(), StoreError>;
    /// Counts rows added and removed per table against the copies.
    async fn compare_with_set_aside(
        &mut self,
        report: &mut RebuildReport,
    ) -> Result<(), StoreError>;
}

/// Outcomes a replay re-derives; rejected deliveries stay rejected (their
/// signature, timestamp or fields failed when they arrived).
pub const REPLAYED_OUTCOMES: [&str; 4] = ["stored", "duplicate", "conflict", "ignored"];

/// Runs the rebuild inside `tx`; the caller commits. `reassess` decodes an
/// archived delivery again (with today's rules).
pub async fn rebuild(
    tx: &mut dyn RebuildTx,
    reassess: &(dyn Fn(&DeliveryRecord) -> Delivery + Sync),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<RebuildReport, StoreError> {
    tx.keep_writers_out().await?;
    // The replay makes only what the archive still holds: with deliveries
    // purged, it would delete their events, sessions and close counts.
    // Checked before the copies, which cost a pass over every derived table.
    let orphaned = tx.events_without_delivery().await?;
    if orphaned > 0 {
        return Err(StoreError::Refused(format!(
            "{orphaned} stored events have no archived delivery that stored them \
             (ARCHIVE_RETENTION or `purge --older-than` deleted it, or `seed` wrote them \
             without one), and a rebuild replays \
             the archive: it would delete those events, or make them again from a later \
             copy, and their sessions, presence and close counts with them"
        )));
    }
    tx.set_aside_current_state().await?;
    tx.clear_derived().await?;
    let mut report = RebuildReport::default();
    let mut after = 0;
    loop {
        let page = tx.archived_after(after, 500).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let replayed: Vec<&DeliveryRecord> = page
            .iter()
            .filter(|d| REPLAYED_OUTCOMES.contains(&d.outcome.as_str()))
            .collect();
        let deliveries: Vec<Delivery> = replayed.iter().map(|d| reassess(d)).collect();
        let refs: Vec<&Delivery> = deliveries.iter().collect();
        let results = apply_verdicts(tx, &refs).await?;
        for (archived, (outcome, event_id)) in replayed.into_iter().zip(results) {
            if outcome.as_str() != archived.outcome
                || event_id.is_none() != archived.event_id.is_none()
            {
                report.outcomes_changed += 1;
            }
            tx.set_delivery_result(archived.id, &outcome, event_id)
                .await?;
            report.replayed += 1;
        }
        progress(report.replayed);
    }
    tx.compare_with_set_aside(&mut report).await?;
    Ok(report)
}
