//! A real store that panics while recording a batch holding a callback of
//! room `boom`: the stand-in for a bug some input trips, to check that the
//! group-commit writer outlives it. Everything else goes to the real store.

use std::sync::Arc;

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

pub struct PanicsOnBoom(pub Arc<dyn Store>);

#[async_trait]
impl Store for PanicsOnBoom {
    fn backend(&self) -> Backend {
        self.0.backend()
    }
    fn pool_status(&self) -> PoolStatus {
        self.0.pool_status()
    }
    async fn close(&self) {
        self.0.close().await
    }
    fn own_writer(&self, connections: u32) -> Option<Arc<dyn Store>> {
        let own = self.0.own_writer(connections)?;
        Some(Arc::new(PanicsOnBoom(own)))
    }
    async fn migrate(&self) -> Result<(), StoreError> {
        self.0.migrate().await
    }
    async fn pending_migrations(&self) -> Result<usize, StoreError> {
        self.0.pending_migrations().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.0.ping().await
    }
    async fn record_deliveries(&self, deliveries: &[Delivery]) -> Result<Vec<Outcome>, StoreError> {
        let boom = deliveries
            .iter()
            .any(|d| d.summary.room_id.as_deref() == Some(PANIC_ROOM));
        assert!(!boom, "a batch with a callback of room {PANIC_ROOM}");
        self.0.record_deliveries(deliveries).await
    }
    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.0.list_deliveries(filter).await
    }
    async fn list_closed(&self, query: &ClosedQuery) -> Result<Vec<ListedSession>, StoreError> {
        self.0.list_closed(query).await
    }
    async fn room_history(
        &self,
        query: &SessionListQuery,
    ) -> Result<Vec<ListedSession>, StoreError> {
        self.0.room_history(query).await
    }
    async fn open_sessions(
        &self,
        query: &SessionListQuery,
    ) -> Result<Vec<ListedSession>, StoreError> {
        self.0.open_sessions(query).await
    }
    async fn find_sessions(
        &self,
        room_session_id: &str,
        appid: Option<i64>,
    ) -> Result<Vec<SessionRow>, StoreError> {
        self.0.find_sessions(room_session_id, appid).await
    }
    async fn close_reason_counts(
        &self,
        query: &StatsQuery,
    ) -> Result<Vec<ReasonCount>, StoreError> {
        self.0.close_reason_counts(query).await
    }
    async fn participants(
        &self,
        appid: i64,
        room_session_id: &str,
    ) -> Result<Vec<ParticipantRow>, StoreError> {
        self.0.participants(appid, room_session_id).await
    }
    async fn timeline(
        &self,
        appid: i64,
        room_session_id: &str,
    ) -> Result<Vec<TimelineRow>, StoreError> {
        self.0.timeline(appid, room_session_id).await
    }
    async fn purge_deliveries(&self, before: DateTime<Utc>, batch: i64) -> Result<u64, StoreError> {
        self.0.purge_deliveries(before, batch).await
    }
    async fn purge_replay_guard(
        &self,
        before: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64, StoreError> {
        self.0.purge_replay_guard(before, batch).await
    }
    async fn purge_sessions(&self, before: DateTime<Utc>, batch: i64) -> Result<u64, StoreError> {
        self.0.purge_sessions(before, batch).await
    }
    async fn rebuild(
        &self,
        reassess: &(dyn for<'r> Fn(&'r DeliveryRecord) -> Delivery + Sync),
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<RebuildReport, StoreError> {
        self.0.rebuild(reassess, progress).await
    }
    async fn run_report(
        &self,
        sql: &str,
        params: &ReportParams,
    ) -> Result<ReportTable, StoreError> {
        self.0.run_report(sql, params).await
    }
    async fn app_snapshot(&self, appid: u32) -> Result<AppSnapshot, StoreError> {
        self.0.app_snapshot(appid).await
    }
}
