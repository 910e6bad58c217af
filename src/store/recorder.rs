//! The one transaction a batch of deliveries goes through, whatever the
//! backend, in three steps:
//!
//! 1. **Gather** (`Gather`): claim the batch's signed triples in the replay
//!    guard, create or widen its session rows, insert its events, then read
//!    back every event identity's stored row and every presence group's
//!    logins and logouts. No statement of this step needs another's result,
//!    so a backend may send them all at once (PostgreSQL sends them with its
//!    BEGIN, in one message: `store::postgres::batch`).
//! 2. **Decide**, here, in memory: replays, outcomes, presence intervals,
//!    session merges, rollup counts, archive rows.
//! 3. **Write** what was decided (`WriteTx::write_batch`), which a backend
//!    may send with its COMMIT.
//!
//! The gather assumes which deliveries replay a signed triple with another
//! body (none, at first: such a replay is an attack or a bug, never ZEGO's
//! retry). When the replay guard says otherwise, `record` answers
//! `Recorded::Replayed` before anything is decided, and the caller rolls
//! back and records the batch again assuming what the guard said: a
//! replayed delivery must not have created a session row or stored an
//! event. Every result is the one the deliveries would get one after
//! another in batch order. Backends supply the statements (`WriteTx`); the
//! decisions live here once.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use super::merge::{
    EventColumns, EventIdentity, GroupKey, GroupMemberRow, LifecycleMerge, SessionTouch,
    intervals_of, replay_rejection,
};
use crate::domain::presence::PresenceInterval;
use crate::domain::{Delivery, EventKind, Outcome, ReplayKey, Verdict};

/// A signed triple to bind to the body it first came with.
pub struct ReplayClaim<'a> {
    pub key: &'a ReplayKey,
    pub body_sha256: &'a str,
    pub at: DateTime<Utc>,
}

/// A delivery's archive row.
pub struct ArchiveRow<'a> {
    pub delivery: &'a Delivery,
    pub outcome: &'a Outcome,
    pub event_id: Option<i64>,
}

/// An event to insert, with when its delivery arrived.
pub struct NewEvent<'c, 'e> {
    pub columns: &'c EventColumns<'e>,
    pub received_at: DateTime<Utc>,
}

/// What a batch claims, creates and reads before its first decision, in
/// the order a backend runs it: each input sorted by key where the order
/// decides which locks are taken first.
pub struct Gather<'c, 'e> {
    /// Signed triples (unique, sorted) to bind to their bodies unless known.
    pub claims: Vec<ReplayClaim<'e>>,
    /// Session rows to create bare when absent, widen, and lock where the
    /// batch creates or closes them (sorted; `SessionTouch`).
    pub touches: Vec<SessionTouch>,
    /// Events to insert unless stored (unique identities, sorted); then
    /// every one's stored row is read back.
    pub events: Vec<NewEvent<'c, 'e>>,
    /// Presence groups (sorted) whose stored logins and logouts to read
    /// back, after the insert.
    pub groups: Vec<GroupKey>,
}

/// What the gather found.
#[derive(Debug, Default)]
pub struct Gathered {
    /// Per claimed key, the digest of the first body seen with it.
    pub first_bodies: HashMap<ReplayKey, String>,
    /// The identities this transaction inserted.
    pub inserted: HashSet<EventIdentity>,
    /// Every gathered identity's stored event: id and content digest.
    pub stored: HashMap<EventIdentity, (i64, String)>,
    /// The stored logins and logouts of the gathered groups.
    pub members: Vec<GroupMemberRow>,
}

/// The statements of the write path, run inside one open transaction.
#[async_trait]
pub trait WriteTx: Send {
    /// Whether other transactions write at the same time (PostgreSQL), so
    /// that what a batch will update must be locked up front, in one order.
    fn concurrent_writers(&self) -> bool;

    /// Runs the gather: the claims, then the session rows (created bare,
    /// then widened and locked), then the events, then the reads, each
    /// statement seeing the ones before it.
    async fn gather(&mut self, gather: &Gather<'_, '_>) -> Result<Gathered, StoreError>;

    /// Writes what the batch derived and the deliveries' archive rows
    /// (none for a rebuild): after the last decision, so a backend may send
    /// it with the COMMIT. An error may surface only at the commit.
    async fn write_batch(
        &mut self,
        derived: &DerivedWrites,
        archive: &[ArchiveRow<'_>],
    ) -> Result<(), StoreError>;
}

/// What a batch's stored events change beyond the events themselves.
#[derive(Debug, Default)]
pub struct DerivedWrites {
    /// Presence groups whose rows are replaced, sorted.
    pub groups: Vec<GroupKey>,
    /// Their new presence intervals.
    pub intervals: Vec<(GroupKey, PresenceInterval)>,
    /// Session fields set by creates and closes: one per session, sorted.
    pub merges: Vec<LifecycleMerge>,
    /// Closes to add to the close-reason rollup, in key order (so
    /// concurrent transactions lock rollup rows in one order).
    pub close_counts: Vec<CloseCount>,
}

/// Closes of one appid, UTC hour and close reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseCount {
    pub appid: i64,
    pub hour_start: DateTime<Utc>,
    pub close_reason: i64,
    pub count: i64,
}

/// The result of one attempt at recording a batch.
#[derive(Debug)]
pub enum Recorded {
    /// Each delivery's outcome, in order; the caller commits.
    Outcomes(Vec<Outcome>),
    /// The replay guard turned away other deliveries than assumed (these):
    /// the caller rolls back and records again assuming them.
    Replayed(Vec<bool>),
}

/// How many times a caller records one batch before it gives up: the
/// second attempt assumes what the first found, and only a concurrent
/// writer claiming one of the batch's signed triples in between (or a
/// purge removing one) makes a third differ.
pub const RECORD_ATTEMPTS: usize = 4;

/// The error a caller returns when `RECORD_ATTEMPTS` did not settle.
pub fn unsettled_replays() -> StoreError {
    StoreError::inconsistent("the replay guard answered differently on every attempt")
}

/// Decides and writes the outcomes of `deliveries`, in order, assuming
/// `replayed` (one flag per delivery) of them replay a signed triple with
/// another body; `Recorded::Replayed` when the replay guard disagrees. The
/// caller commits or rolls back.
pub async fn record(
    tx: &mut dyn WriteTx,
    deliveries: &[Delivery],
    replayed: &[bool],
) -> Result<Recorded, StoreError> {
    debug_assert_eq!(deliveries.len(), replayed.len());
    let fresh: Vec<&Delivery> = deliveries
        .iter()
        .zip(replayed)
        .filter(|(_, replayed)| !**replayed)
        .map(|(d, _)| d)
        .collect();
    let plan = Plan::of(&fresh, tx.concurrent_writers());
    let gathered = tx.gather(&plan.gather(replay_claims(deliveries))).await?;
    let found = replayed_with_another_body(deliveries, &gathered.first_bodies);
    if found != replayed {
        return Ok(Recorded::Replayed(found));
    }
    let (applied, derived) = plan.decide(gathered)?;
    let mut applied = applied.into_iter();
    let results: Vec<(Outcome, Option<i64>)> = replayed
        .iter()
        .map(|replayed| match replayed {
            true => (Outcome::Rejected(replay_rejection()), None),
            false => applied.next().expect("one result per fresh delivery"),
        })
        .collect();
    let archive: Vec<ArchiveRow<'_>> = deliveries
        .iter()
        .zip(&results)
        .map(|(delivery, (outcome, event_id))| ArchiveRow {
            delivery,
            outcome,
            event_id: *event_id,
        })
        .collect();
    tx.write_batch(&derived, &archive).await?;
    Ok(Recorded::Outcomes(
        results.into_iter().map(|(outcome, _)| outcome).collect(),
    ))
}

/// The replay guard's claims: the first delivery of each signed triple in
/// the batch claims it, sorted by key.
fn replay_claims(deliveries: &[Delivery]) -> Vec<ReplayClaim<'_>> {
    let mut claims: BTreeMap<&ReplayKey, ReplayClaim<'_>> = BTreeMap::new();
    for d in deliveries {
        if let Some(key) = &d.replay_key {
            claims.entry(key).or_insert(ReplayClaim {
                key,
                body_sha256: &d.body_sha256,
                at: d.received_at,
            });
        }
    }
    claims.into_values().collect()
}

/// Whether each delivery reuses a signed triple first seen with another
/// body (earlier, or earlier in this batch).
fn replayed_with_another_body(
    deliveries: &[Delivery],
    first_bodies: &HashMap<ReplayKey, String>,
) -> Vec<bool> {
    deliveries
        .iter()
        .map(|d| {
            d.replay_key.as_ref().is_some_and(|key| {
                first_bodies.get(key).map(String::as_str) != Some(d.body_sha256.as_str())
            })
        })
        .collect()
}

/// Stores the deliveries' events, where they carry one: each delivery's
/// outcome and the id of the event it stored, duplicated or conflicted
/// with. No replay guard, no archive rows (`rebuild` replays deliveries
/// already archived).
pub async fn apply_verdicts(
    tx: &mut dyn WriteTx,
    deliveries: &[&Delivery],
) -> Result<Vec<(Outcome, Option<i64>)>, StoreError> {
    let plan = Plan::of(deliveries, tx.concurrent_writers());
    let gathered = tx.gather(&plan.gather(Vec::new())).await?;
    let (results, derived) = plan.decide(gathered)?;
    tx.write_batch(&derived, &[]).await?;
    Ok(results)
}

type Results = Vec<(Outcome, Option<i64>)>;

/// A batch's accepted events, laid out for the gather and the decisions.
struct Plan<'d> {
    deliveries: Vec<&'d Delivery>,
    /// Per delivery, its event's position in `events`, if it carries one.
    accepted: Vec<Option<usize>>,
    events: Vec<NewEventColumns<'d>>,
    identities: Vec<EventIdentity>,
    /// Each distinct identity's first copy in the batch (sorted by identity,
    /// so concurrent batches insert in one order).
    first_in_batch: BTreeMap<EventIdentity, usize>,
    /// Every presence group of the batch's events, sorted.
    groups: Vec<GroupKey>,
    /// Whether writers run side by side (PostgreSQL): then creates and
    /// closes lock their session rows too.
    lock_lifecycle: bool,
}

struct NewEventColumns<'e> {
    columns: EventColumns<'e>,
    received_at: DateTime<Utc>,
}

impl<'d> Plan<'d> {
    fn of(deliveries: &[&'d Delivery], lock_lifecycle: bool) -> Plan<'d> {
        let mut accepted = Vec::with_capacity(deliveries.len());
        let mut events = Vec::new();
        for d in deliveries {
            match &d.verdict {
                Verdict::Accepted(event) => {
                    accepted.push(Some(events.len()));
                    events.push(NewEventColumns {
                        columns: EventColumns::of(event),
                        received_at: d.received_at,
                    });
                }
                _ => accepted.push(None),
            }
        }
        let identities: Vec<EventIdentity> =
            events.iter().map(|e| e.columns.identity()).collect();
        let mut first_in_batch = BTreeMap::new();
        for (i, identity) in identities.iter().enumerate() {
            first_in_batch.entry(identity.clone()).or_insert(i);
        }
        let groups: BTreeSet<GroupKey> = events
            .iter()
            .filter_map(|e| e.columns.presence_group())
            .collect();
        Plan {
            deliveries: deliveries.to_vec(),
            accepted,
            events,
            identities,
            first_in_batch,
            groups: groups.into_iter().collect(),
            lock_lifecycle,
        }
    }

    /// The gather of this batch, with the replay guard's `claims`.
    ///
    /// Locks come before the insert, in one order for every batch. Where
    /// writers run side by side (PostgreSQL), the transaction began holding
    /// its presence groups' locks (`store::advisory_locks`); the session
    /// rows come next, sorted. Two copies of one event then meet at a lock
    /// this batch takes before any event (the group of a login or logout,
    /// the session row of a create or close), so the reads see every event
    /// a concurrent writer committed and no two batches wait on each other
    /// (`SessionTouch`).
    fn gather(&self, claims: Vec<ReplayClaim<'d>>) -> Gather<'_, 'd> {
        // Every copy of a login or logout; the first copy of a create or
        // close, and only where writers run side by side (one writer needs
        // no lock).
        let presence = self
            .events
            .iter()
            .map(|e| &e.columns)
            .filter(|c| c.is_presence());
        let lifecycle = self
            .first_in_batch
            .values()
            .map(|&i| &self.events[i].columns)
            .filter(|c| self.lock_lifecycle && !c.is_presence());
        let mut touches: BTreeMap<(i64, &str), SessionTouch> = BTreeMap::new();
        for c in presence.chain(lifecycle) {
            let touch = touches
                .entry((c.appid, c.room_session_id.as_str()))
                .or_insert_with(|| SessionTouch::new(c));
            if c.is_presence() {
                touch.absorb_presence(c);
            } else {
                touch.absorb_lifecycle(c);
            }
        }
        Gather {
            claims,
            touches: touches.into_values().collect(),
            events: self
                .first_in_batch
                .values()
                .map(|&i| NewEvent {
                    columns: &self.events[i].columns,
                    received_at: self.events[i].received_at,
                })
                .collect(),
            groups: self.groups.clone(),
        }
    }

    /// Every decision, from what the gather found: each delivery's outcome
    /// and event id, and what the stored events derive.
    fn decide(self, gathered: Gathered) -> Result<(Results, DerivedWrites), StoreError> {
        let mut derived = DerivedWrites::default();
        let mut event_results = Vec::with_capacity(self.events.len());
        let mut changed_groups: BTreeSet<GroupKey> = BTreeSet::new();
        let mut merges: BTreeMap<(i64, &str), LifecycleMerge> = BTreeMap::new();
        let mut close_counts: BTreeMap<(i64, DateTime<Utc>, i64), i64> = BTreeMap::new();
        for (i, (e, identity)) in self.events.iter().zip(&self.identities).enumerate() {
            let Some((id, content_sha256)) = gathered.stored.get(identity) else {
                // The insert stored it or found it stored: a read after it
                // that misses it is a bug, not a state to guess around.
                return Err(StoreError::inconsistent(format!(
                    "the stored row of {identity:?} was not read back"
                )));
            };
            let inserted_here = gathered.inserted.contains(identity);
            let outcome = if inserted_here && self.first_in_batch[identity] == i {
                Outcome::Stored
            } else if *content_sha256 == e.columns.content_sha256 {
                Outcome::Duplicate
            } else {
                Outcome::Conflict
            };
            if outcome == Outcome::Stored {
                let c = &e.columns;
                if let Some(group) = c.presence_group() {
                    changed_groups.insert(group);
                } else {
                    merges
                        .entry((c.appid, c.room_session_id.as_str()))
                        .and_modify(|m| m.absorb(c))
                        .or_insert_with(|| LifecycleMerge::of(c));
                    // Exactly once per session: a second close of it is a
                    // duplicate or a conflict.
                    if c.event == EventKind::RoomClose.as_str() {
                        let reason = c.reason.expect("a stored close has a close_reason");
                        *close_counts
                            .entry((c.appid, c.event_hour(), reason))
                            .or_default() += 1;
                    }
                }
            }
            event_results.push((outcome, *id));
        }

        if !changed_groups.is_empty() {
            derived.groups = changed_groups.into_iter().collect();
            let mut members: BTreeMap<GroupKey, Vec<_>> = BTreeMap::new();
            for row in gathered.members {
                members.entry(row.group).or_default().push(row.event);
            }
            for g in &derived.groups {
                let rows = members.remove(g).unwrap_or_default();
                derived
                    .intervals
                    .extend(intervals_of(rows).into_iter().map(|i| (g.clone(), i)));
            }
        }
        derived.merges = merges.into_values().collect();
        derived.close_counts = close_counts
            .into_iter()
            .map(|((appid, hour_start, close_reason), count)| CloseCount {
                appid,
                hour_start,
                close_reason,
                count,
            })
            .collect();

        let results = self
            .deliveries
            .iter()
            .zip(&self.accepted)
            .map(|(d, accepted)| match (&d.verdict, accepted) {
                (Verdict::Rejected(r), _) => (Outcome::Rejected(r.clone()), None),
                (Verdict::Accepted(_), Some(i)) => {
                    let (outcome, id) = &event_results[*i];
                    (outcome.clone(), Some(*id))
                }
                _ => (Outcome::Ignored, None),
            })
            .collect();
        Ok((results, derived))
    }
}
