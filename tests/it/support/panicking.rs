//! A real store that panics while recording a batch holding a callback of
//! room `boom`: the stand-in for a bug some input trips, to check that the
//! group-commit writer outlives it. Everything else goes to the real store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use zego_room_tracker::domain::{Delivery, Outcome};
use zego_room_tracker::reports::{ReportParams, ReportTable};
use zego_room_tracker::store::query::{
    ClosedQuery, ListedSession, ParticipantRow, ReasonCount, SessionListQuery, SessionRow,
    StatsQuery, TimelineRow,
};
use zego_room_tracker::store::rebuild::RebuildReport;
use zego_room_tracker::store::{
    AppSnapshot, Backend, DeliveryFilter, DeliveryRecord, PoolStatus, Store, StoreError,
};

pub const PANIC_ROOM: &str = "boom";

pub struct PanicsOnBoom {
    pub store: Arc<dyn Store>,
    /// The size of the largest batch it panicked on (shared with its own
    /// writer's copy): above one, the culprit shared a batch.
    pub largest_panicked: Arc<AtomicUsize>,
}

impl PanicsOnBoom {
    pub fn new(store: Arc<dyn Store>) -> PanicsOnBoom {
        PanicsOnBoom {
            store,
            largest_panicked: Arc::default(),
        }
    }
}

#[async_trait]
impl Store for PanicsOnBoom {
    fn backend(&self) -> Backend {
        self.store.backend()
    }
    fn pool_status(&self) -> PoolStatus {
        self.store.pool_status()
    }
    async fn close(&self) {
        self.store.close().await
    }
    fn own_writer(&self, connections: u32) -> Option<Arc<dyn Store>> {
        let own = self.store.own_writer(connections)?;
        Some(Arc::new(PanicsOnBoom {
            store: own,
            largest_panicked: self.largest_panicked.clone(),
        }))
    }
    async fn migrate(&self) -> Result<(), StoreError> {
        self.store.migrate().await
    }
    async fn pending_migrations(&self) -> Result<usize, StoreError> {
        self.store.pending_migrations().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
    async fn record_deliveries(&self, deliveries: &[Delivery]) -> Result<Vec<Outcome>, StoreError> {
        let boom = deliveries
            .iter()
            .any(|d| d.summary.room_id.as_deref() == Some(PANIC_ROOM));
        if boom {
            self.largest_panicked
                .fetch_max(deliveries.len(), Ordering::Relaxed);
            panic!("a batch with a callback of room {PANIC_ROOM}");
        }
        self.store.record_deliveries(deliveries).await
    }
    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.store.list_deliveries(filter).await
    }
    async fn list_closed(&self, query: &ClosedQuery) -> Result<Vec<ListedSession>, StoreError> {
        self.store.list_closed(query).await
    }
    async fn room_history(
        &self,
        query: &SessionListQuery,
    ) -> Result<Vec<ListedSession>, StoreError> {
        self.store.room_history(query).await
    }
    async fn open_sessions(
        &self,
        query: &SessionListQuery,
    ) -> Result<Vec<ListedSession>, StoreError> {
        self.store.open_sessions(query).await
    }
    async fn find_sessions(
        &self,
        room_session_id: &str,
        appid: Option<i64>,
    ) -> Result<Vec<SessionRow>, StoreError> {
        self.store.find_sessions(room_session_id, appid).await
    }
    async fn close_reason_counts(
        &self,
        query: &StatsQuery,
    ) -> Result<Vec<ReasonCount>, StoreError> {
        self.store.close_reason_counts(query).await
    }
    async fn participants(
        &self,
        appid: i64,
        room_session_id: &str,
    ) -> Result<Vec<ParticipantRow>, StoreError> {
        self.store.participants(appid, room_session_id).await
    }
    async fn timeline(
        &self,
        appid: i64,
        room_session_id: &str,
    ) -> Result<Vec<TimelineRow>, StoreError> {
        self.store.timeline(appid, room_session_id).await
    }
    async fn purge_deliveries(&self, before: DateTime<Utc>, batch: i64) -> Result<u64, StoreError> {
        self.store.purge_deliveries(before, batch).await
    }
    async fn purge_replay_guard(
        &self,
        before: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64, StoreError> {
        self.store.purge_replay_guard(before, batch).await
    }
    async fn purge_sessions(&self, before: DateTime<Utc>, batch: i64) -> Result<u64, StoreError> {
        self.store.purge_sessions(before, batch).await
    }
    async fn rebuild(
        &self,
        reassess: &(dyn for<'r> Fn(&'r DeliveryRecord) -> Delivery + Sync),
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<RebuildReport, StoreError> {
        self.store.rebuild(reassess, progress).await
    }
    async fn run_report(
        &self,
        sql: &str,
        params: &ReportParams,
    ) -> Result<ReportTable, StoreError> {
        self.store.run_report(sql, params).await
    }
    async fn app_snapshot(&self, appid: u32) -> Result<AppSnapshot, StoreError> {
        self.store.app_snapshot(appid).await
    }
}
