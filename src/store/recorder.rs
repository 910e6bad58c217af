//! The one transaction every delivery goes through, whatever the backend:
//! replay guard → event identity → session merge → presence → archive.
//! Backends supply the statements (`WriteTx`); the decisions live here once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use super::merge::{EventColumns, GroupEventRow, intervals_of, replay_rejection};
use crate::domain::presence::PresenceInterval;
use crate::domain::{Delivery, Event, EventKind, Outcome, ReplayKey, Verdict};

/// The statements of the write path, run inside one open transaction.
#[async_trait]
pub trait WriteTx: Send {
    /// Records `body_sha256` as the body of `key` unless the key is known;
    /// returns the digest of the first body seen with it.
    async fn claim_replay_key(
        &mut self,
        key: &ReplayKey,
        body_sha256: &str,
        at: DateTime<Utc>,
    ) -> Result<String, StoreError>;

    /// Holds other writers of this presence group off until commit, where
    /// the backend has concurrent writers at all.
    async fn lock_presence_group(&mut self, c: &EventColumns<'_>) -> Result<(), StoreError>;

    /// Inserts the event unless its identity exists; the new id if inserted.
    async fn insert_event(
        &mut self,
        c: &EventColumns<'_>,
        received_at: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError>;

    /// Id and content fingerprint of the stored event with this identity.
    async fn find_event(&mut self, c: &EventColumns<'_>) -> Result<(i64, String), StoreError>;

    /// Upserts the session row with what a create or a close sets.
    async fn merge_lifecycle_event(&mut self, c: &EventColumns<'_>) -> Result<(), StoreError>;

    /// Adds one to the close-reason rollup for this close's appid, hour and
    /// reason (applied by `flush_close_counts`, at the latest at commit).
    async fn count_close(&mut self, c: &EventColumns<'_>) -> Result<(), StoreError>;

    /// Writes the counts `count_close` gathered, in key order.
    async fn flush_close_counts(&mut self) -> Result<(), StoreError>;

    /// Inserts a bare session row for a login/logout; false if one existed.
    async fn insert_session_if_absent(&mut self, c: &EventColumns<'_>) -> Result<bool, StoreError>;

    /// Moves the session's first event time earlier (and its room id to the
    /// smaller) only when this event changes them, so a busy room's logins do
    /// not queue on the session row's lock.
    async fn widen_session(&mut self, c: &EventColumns<'_>) -> Result<(), StoreError>;

    /// The group's stored logins and logouts.
    async fn presence_group(
        &mut self,
        c: &EventColumns<'_>,
    ) -> Result<Vec<GroupEventRow>, StoreError>;

    /// Replaces the group's presence rows.
    async fn replace_presence(
        &mut self,
        c: &EventColumns<'_>,
        intervals: Vec<PresenceInterval>,
    ) -> Result<(), StoreError>;

    /// Writes the delivery's archive row.
    async fn archive(
        &mut self,
        delivery: &Delivery,
        outcome: &Outcome,
        event_id: Option<i64>,
    ) -> Result<(), StoreError>;
}

/// Decides and writes the outcome of `delivery`. The caller commits.
pub async fn record(tx: &mut dyn WriteTx, delivery: &Delivery) -> Result<Outcome, StoreError> {
    if let Some(key) = &delivery.replay_key {
        let first_body = tx
            .claim_replay_key(key, &delivery.body_sha256, delivery.received_at)
            .await?;
        if first_body != delivery.body_sha256 {
            let outcome = Outcome::Rejected(replay_rejection());
            tx.archive(delivery, &outcome, None).await?;
            return Ok(outcome);
        }
    }
    let (outcome, event_id) = apply_verdict(tx, delivery).await?;
    tx.archive(delivery, &outcome, event_id).await?;
    Ok(outcome)
}

/// Stores the delivery's event, if it carries one: the outcome and the id
/// of the event it stored, duplicated or conflicted with. No replay guard,
/// no archive row (`rebuild` replays deliveries already archived).
pub async fn apply_verdict(
    tx: &mut dyn WriteTx,
    delivery: &Delivery,
) -> Result<(Outcome, Option<i64>), StoreError> {
    Ok(match &delivery.verdict {
        Verdict::Rejected(r) => (Outcome::Rejected(r.clone()), None),
        Verdict::Ignored { .. } => (Outcome::Ignored, None),
        Verdict::Accepted(event) => {
            let (outcome, id) = store_event(tx, event, delivery.received_at).await?;
            (outcome, Some(id))
        }
    })
}

async fn store_event(
    tx: &mut dyn WriteTx,
    event: &Event,
    received_at: DateTime<Utc>,
) -> Result<(Outcome, i64), StoreError> {
    let c = EventColumns::of(event);
    if c.is_presence() {
        // Session row first, group lock second, for every presence event:
        // one lock order within a session, so concurrent (batched)
        // transactions do not deadlock. For a duplicate both are no-ops.
        if !tx.insert_session_if_absent(&c).await? {
            tx.widen_session(&c).await?;
        }
        // Before the insert, so the recomputation below sees every event a
        // concurrent writer of this group committed.
        tx.lock_presence_group(&c).await?;
    }
    let Some(id) = tx.insert_event(&c, received_at).await? else {
        let (id, first_sha256) = tx.find_event(&c).await?;
        let outcome = if first_sha256 == c.content_sha256 {
            Outcome::Duplicate
        } else {
            Outcome::Conflict
        };
        return Ok((outcome, id));
    };
    if c.is_presence() {
        let group = tx.presence_group(&c).await?;
        tx.replace_presence(&c, intervals_of(group)).await?;
    } else {
        tx.merge_lifecycle_event(&c).await?;
        // Exactly once per session: a second close of it would have been a
        // duplicate or a conflict above.
        if c.event == EventKind::RoomClose.as_str() {
            tx.count_close(&c).await?;
        }
    }
    Ok((Outcome::Stored, id))
}
