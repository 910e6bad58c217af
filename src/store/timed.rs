//! How long each step of a write transaction takes, on `/metrics`
//! (`zrt_write_step_duration_seconds{step}`): where a batch's time goes,
//! on the deployment's own database. A batch is a chain of steps one after
//! another (BEGIN, the recorder's statements, COMMIT), so a step that grows
//! slows every callback of the batch; docs/benchmarks.md reads these
//! figures to say what limits ingest.

use std::collections::HashMap;
use std::future::Future;
use std::time::Instant;

use async_trait::async_trait;

use super::StoreError;
use super::merge::{EventIdentity, GroupKey, GroupMemberRow, SessionTouch};
use super::recorder::{
    ArchiveRow, DerivedWrites, FirstSteps, FirstStepsFound, NewEvent, ReplayClaim, WriteTx,
};
use crate::domain::ReplayKey;

/// A step of a write transaction; its label value is the name of the
/// `WriteTx` method it times, or `begin` / `commit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    Begin,
    ClaimReplayKeys,
    TouchSessions,
    InsertEvents,
    FindEvents,
    PresenceGroups,
    FirstSteps,
    WriteBatch,
    Commit,
}

impl WriteStep {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteStep::Begin => "begin",
            WriteStep::ClaimReplayKeys => "claim_replay_keys",
            WriteStep::TouchSessions => "touch_sessions",
            WriteStep::InsertEvents => "insert_events",
            WriteStep::FindEvents => "find_events",
            WriteStep::PresenceGroups => "presence_groups",
            WriteStep::FirstSteps => "first_steps",
            WriteStep::WriteBatch => "write_batch",
            WriteStep::Commit => "commit",
        }
    }
}

/// Awaits `step`, recording how long it took (failed or not).
pub async fn timed<T>(step: WriteStep, work: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let result = work.await;
    crate::metrics::record_write_step(step.as_str(), started.elapsed());
    result
}

/// A `WriteTx` whose every statement is timed.
pub struct Timed<'t>(pub &'t mut dyn WriteTx);

#[async_trait]
impl WriteTx for Timed<'_> {
    async fn claim_replay_keys(
        &mut self,
        claims: &[ReplayClaim<'_>],
    ) -> Result<HashMap<ReplayKey, String>, StoreError> {
        timed(WriteStep::ClaimReplayKeys, self.0.claim_replay_keys(claims)).await
    }

    fn concurrent_writers(&self) -> bool {
        self.0.concurrent_writers()
    }

    async fn touch_sessions(&mut self, touches: &[SessionTouch]) -> Result<(), StoreError> {
        timed(WriteStep::TouchSessions, self.0.touch_sessions(touches)).await
    }

    async fn insert_events(
        &mut self,
        events: &[NewEvent<'_, '_>],
    ) -> Result<Vec<(EventIdentity, i64)>, StoreError> {
        timed(WriteStep::InsertEvents, self.0.insert_events(events)).await
    }

    async fn find_events(
        &mut self,
        events: &[NewEvent<'_, '_>],
    ) -> Result<HashMap<EventIdentity, (i64, String)>, StoreError> {
        // The recorder asks even when nothing was stored before (no rows,
        // no statement): only a lookup that runs is worth a sample.
        if events.is_empty() {
            return self.0.find_events(events).await;
        }
        timed(WriteStep::FindEvents, self.0.find_events(events)).await
    }

    async fn presence_groups(
        &mut self,
        groups: &[GroupKey],
    ) -> Result<Vec<GroupMemberRow>, StoreError> {
        timed(WriteStep::PresenceGroups, self.0.presence_groups(groups)).await
    }

    async fn first_steps(
        &mut self,
        steps: &FirstSteps<'_, '_, '_>,
    ) -> Result<FirstStepsFound, StoreError> {
        timed(WriteStep::FirstSteps, self.0.first_steps(steps)).await
    }

    async fn write_batch(
        &mut self,
        derived: &DerivedWrites,
        archive: &[ArchiveRow<'_>],
    ) -> Result<(), StoreError> {
        timed(WriteStep::WriteBatch, self.0.write_batch(derived, archive)).await
    }
}
