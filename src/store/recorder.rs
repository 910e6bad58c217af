//! The one transaction a batch of deliveries goes through, whatever the
//! backend: replay guard → session rows → event identity → presence
//! recompute / session merge → archive (on PostgreSQL after the advisory
//! locks its BEGIN took: `store::advisory_locks`). Each step is one set-based
//! statement for the whole batch (a handful of round trips per commit, not
//! a handful per callback), and its result is the one the deliveries would
//! get one after another in batch order. Backends supply the statements
//! (`WriteTx`); the decisions live here once.
//!
//! On PostgreSQL every step is a round trip, and a batch's time is mostly
//! the chain of them, so the steps up to the events and the presence
//! lookups go out as one statement (`Steps::AtOnce`): each needs what the
//! one before decided only where a delivery reuses a signed triple with
//! another body, which the statement's replay guard tells afterwards; then
//! the transaction is rolled back and the batch recorded step by step.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use super::merge::{
    EventColumns, EventIdentity, GroupKey, GroupMemberRow, LifecycleMerge, SessionRowKey,
    SessionTouch, intervals_of, replay_rejection, touches_outside,
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

/// How a batch's statements up to its last decision run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Steps {
    /// One after another, each with what the one before found.
    OneByOne,
    /// The replay guard, the session rows, the events and the presence
    /// groups' lookup in one statement (`WriteTx::first_steps`), on the
    /// guess that every signed triple's first body is the one its first
    /// delivery in the batch brings (no replay). Only where the backend
    /// runs them as one statement (PostgreSQL).
    AtOnce,
}

/// A batch's first statements, to run as one (`WriteTx::first_steps`).
pub struct FirstSteps<'a, 'c, 'e> {
    pub claims: &'a [ReplayClaim<'a>],
    /// Every touch, created or not: the statement cannot see what it creates.
    pub touches: &'a [SessionTouch],
    pub events: &'a [NewEvent<'c, 'e>],
    /// The groups of the events' logins and logouts (those stored will
    /// be among them), sorted.
    pub groups: &'a [GroupKey],
}

/// What `WriteTx::first_steps` found.
#[derive(Debug, Default)]
pub struct FirstStepsFound {
    /// As `claim_replay_keys` returns it.
    pub first_bodies: HashMap<ReplayKey, String>,
    /// The touched sessions the statement created or saw, sorted. A touch
    /// outside them is of a session another writer created after the
    /// statement began (its INSERT met the row, its UPDATE could not see
    /// it), so the batch is recorded again step by step.
    pub sessions_found: Vec<SessionRowKey>,
    /// As `insert_events` returns it.
    pub inserted: Vec<(EventIdentity, i64)>,
    /// The groups' logins and logouts as stored *before* the statement:
    /// without the events it inserted.
    pub stored_group_rows: Vec<GroupMemberRow>,
}

/// The statements of the write path, run inside one open transaction. Each
/// takes every row of the batch at once; inputs come sorted by key where
/// the order decides which locks are taken first.
#[async_trait]
pub trait WriteTx: Send {
    /// Binds each key (unique, sorted) to its body's digest unless the key
    /// is known; returns, per key, the digest of the first body seen with it.
    async fn claim_replay_keys(
        &mut self,
        claims: &[ReplayClaim<'_>],
    ) -> Result<HashMap<ReplayKey, String>, StoreError>;

    /// Whether other transactions write at the same time (PostgreSQL), so
    /// that what a batch will update must be locked up front, in one order.
    fn concurrent_writers(&self) -> bool;

    /// Creates the bare session rows that do not exist, widens those that
    /// do, and locks those the batch creates or closes (sorted). A busy
    /// room's logins and logouts lock its row only when they move it, so
    /// they do not queue on it.
    async fn touch_sessions(&mut self, touches: &[SessionTouch]) -> Result<(), StoreError>;

    /// Inserts the events (unique identities) that are not stored yet;
    /// returns the identity and new id of each one inserted.
    async fn insert_events(
        &mut self,
        events: &[NewEvent<'_, '_>],
    ) -> Result<Vec<(EventIdentity, i64)>, StoreError>;

    /// Id and content fingerprint of the stored event of each of these
    /// (unique) identities; no statement for none.
    async fn find_events(
        &mut self,
        events: &[NewEvent<'_, '_>],
    ) -> Result<HashMap<EventIdentity, (i64, String)>, StoreError>;

    /// The stored logins and logouts of these groups.
    async fn presence_groups(
        &mut self,
        groups: &[GroupKey],
    ) -> Result<Vec<GroupMemberRow>, StoreError>;

    /// `claim_replay_keys`, `touch_sessions`, `insert_events` and
    /// `presence_groups` (read before the insert) as one statement, in that
    /// order, so locks are taken in the order the steps take them. Only
    /// for backends that have one (PostgreSQL: data-modifying CTEs).
    async fn first_steps(
        &mut self,
        steps: &FirstSteps<'_, '_, '_>,
    ) -> Result<FirstStepsFound, StoreError>;

    /// Writes what the batch derived and the deliveries' archive rows
    /// (none for a rebuild): after the last decision, so a backend may send
    /// it all at once.
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
    /// Sessions of the batch's conflicting logins and logouts, sorted. A
    /// conflicting copy is not stored, yet it widened its session before
    /// the insert told it apart (`SessionTouch::absorb_presence`): its
    /// room id is counted again from the stored events, so the first copy
    /// stays in the session as in the events.
    pub room_id_recounts: Vec<SessionRowKey>,
}

/// Closes of one appid, UTC hour and close reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseCount {
    pub appid: i64,
    pub hour_start: DateTime<Utc>,
    pub close_reason: i64,
    pub count: i64,
}

/// Decides and writes the outcomes of `deliveries`, in order, one
/// statement after another. The caller commits.
pub async fn record(
    tx: &mut dyn WriteTx,
    deliveries: &[Delivery],
) -> Result<Vec<Outcome>, StoreError> {
    stepwise(record_with(tx, deliveries, Steps::OneByOne).await?)
}

/// `record` with the statements up to the last decision as one
/// (`Steps::AtOnce`; PostgreSQL). `None` when it guessed wrong (the
/// transaction wrote what a replayed delivery must not), or when a session
/// row it must lock before its events was created by another writer while
/// the statement ran: the caller rolls it back and runs `record` in a new
/// one.
pub async fn record_at_once(
    tx: &mut dyn WriteTx,
    deliveries: &[Delivery],
) -> Result<Option<Vec<Outcome>>, StoreError> {
    record_with(tx, deliveries, Steps::AtOnce).await
}

/// Step by step there is no guess to get wrong.
fn stepwise<T>(recorded: Option<T>) -> Result<T, StoreError> {
    recorded.ok_or_else(|| StoreError::inconsistent("a batch recorded step by step guessed"))
}

async fn record_with(
    tx: &mut dyn WriteTx,
    deliveries: &[Delivery],
    steps: Steps,
) -> Result<Option<Vec<Outcome>>, StoreError> {
    let claims = replay_claims(deliveries);
    let replayed = match steps {
        Steps::AtOnce => {
            let guess: HashMap<&ReplayKey, &str> =
                claims.iter().map(|c| (c.key, c.body_sha256)).collect();
            replayed_with_another_body(deliveries, |key| guess.get(key).copied())
        }
        Steps::OneByOne => {
            let first_bodies = match claims.is_empty() {
                true => HashMap::new(),
                false => tx.claim_replay_keys(&claims).await?,
            };
            replayed_with_another_body(deliveries, |key| first_bodies.get(key).map(String::as_str))
        }
    };
    let fresh: Vec<&Delivery> = deliveries
        .iter()
        .zip(&replayed)
        .filter(|(_, replayed)| !**replayed)
        .map(|(d, _)| d)
        .collect();
    let at_once = (steps == Steps::AtOnce).then_some(claims.as_slice());
    let Some((applied, derived)) = decide(tx, &fresh, at_once).await? else {
        return Ok(None);
    };
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
    Ok(Some(
        results.into_iter().map(|(outcome, _)| outcome).collect(),
    ))
}

/// The batch's signed triples, sorted, each with the first delivery that
/// brings it: the one that claims it.
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

/// The replay guard: whether each delivery reuses a signed triple first
/// seen with another body (earlier, or earlier in this batch), given each
/// triple's first body.
fn replayed_with_another_body<'k>(
    deliveries: &'k [Delivery],
    first_body: impl Fn(&'k ReplayKey) -> Option<&'k str>,
) -> Vec<bool> {
    deliveries
        .iter()
        .map(|d| {
            d.replay_key
                .as_ref()
                .is_some_and(|key| first_body(key) != Some(d.body_sha256.as_str()))
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
    let (results, derived) = stepwise(decide(tx, deliveries, None).await?)?;
    tx.write_batch(&derived, &[]).await?;
    Ok(results)
}

type Results = Vec<(Outcome, Option<i64>)>;

/// Everything up to the last decision: outcomes, and what they derive.
/// With `at_once` (the batch's replay claims) the first statements run as
/// one; `None` if they must run again step by step (`record_at_once`).
async fn decide(
    tx: &mut dyn WriteTx,
    deliveries: &[&Delivery],
    at_once: Option<&[ReplayClaim<'_>]>,
) -> Result<Option<(Results, DerivedWrites)>, StoreError> {
    let mut accepted = Vec::new();
    let mut columns = Vec::new();
    for (i, d) in deliveries.iter().enumerate() {
        if let Verdict::Accepted(event) = &d.verdict {
            accepted.push(i);
            columns.push(NewEventColumns {
                columns: EventColumns::of(event),
                received_at: d.received_at,
            });
        }
    }
    let Some((stored, derived)) = store_events(tx, &columns, at_once).await? else {
        return Ok(None);
    };
    let mut stored = stored.into_iter();
    let mut accepted = accepted.into_iter().peekable();
    let results = deliveries
        .iter()
        .enumerate()
        .map(|(i, d)| match &d.verdict {
            Verdict::Rejected(r) => (Outcome::Rejected(r.clone()), None),
            Verdict::Ignored { .. } => (Outcome::Ignored, None),
            Verdict::Accepted(_) => {
                debug_assert_eq!(accepted.next(), Some(i));
                let (outcome, id) = stored.next().expect("one result per accepted event");
                (outcome, Some(id))
            }
        })
        .collect();
    Ok(Some((results, derived)))
}

struct NewEventColumns<'e> {
    columns: EventColumns<'e>,
    received_at: DateTime<Utc>,
}

/// The event a batch stores (or finds) for one identity.
struct FirstCopy {
    id: i64,
    content_sha256: String,
    /// Inserted by this batch, by the event at this position.
    inserted_by: Option<usize>,
}

type Stored = (Vec<(Outcome, i64)>, DerivedWrites);

async fn store_events(
    tx: &mut dyn WriteTx,
    events: &[NewEventColumns<'_>],
    at_once: Option<&[ReplayClaim<'_>]>,
) -> Result<Option<Stored>, StoreError> {
    if events.is_empty() && at_once.is_none_or(<[_]>::is_empty) {
        return Ok(Some((Vec::new(), DerivedWrites::default())));
    }
    // The batch's distinct identities (the first copy of each in batch
    // order), sorted so concurrent batches insert in one order.
    let identities: Vec<EventIdentity> = events.iter().map(|e| e.columns.identity()).collect();
    let mut first_in_batch: BTreeMap<&EventIdentity, usize> = BTreeMap::new();
    for (i, identity) in identities.iter().enumerate() {
        first_in_batch.entry(identity).or_insert(i);
    }
    let touches = session_touches(events, &first_in_batch, tx.concurrent_writers());
    let new_events: Vec<NewEvent<'_, '_>> = first_in_batch
        .values()
        .map(|&i| NewEvent {
            columns: &events[i].columns,
            received_at: events[i].received_at,
        })
        .collect();
    let (inserted, stored_group_rows) = match at_once {
        None => {
            if !touches.is_empty() {
                tx.touch_sessions(&touches).await?;
            }
            (tx.insert_events(&new_events).await?, None)
        }
        Some(claims) => {
            let groups: BTreeSet<GroupKey> = new_events
                .iter()
                .filter_map(|e| e.columns.presence_group())
                .collect();
            let groups: Vec<GroupKey> = groups.into_iter().collect();
            let steps = FirstSteps {
                claims,
                touches: &touches,
                events: &new_events,
                groups: &groups,
            };
            let found = tx.first_steps(&steps).await?;
            let guessed_right = claims
                .iter()
                .all(|c| found.first_bodies.get(c.key).map(String::as_str) == Some(c.body_sha256));
            if !guessed_right {
                return Ok(None);
            }
            // A session row another writer created while the statement
            // ran: the statement's INSERT met it and its UPDATE could not
            // see it, so the row is neither widened nor locked. Touched
            // now, after the events and out of the sorted order every
            // writer locks rows in, it deadlocked: with a second copy of a
            // create that locked the row first and then waited for this
            // batch's event (a fresh session's first login racing two
            // copies of its create), and, rarely, with a writer holding a
            // row this batch had locked. So the batch goes again, step by
            // step, where the row is seen and taken in order.
            if touches_outside(&touches, &found.sessions_found)
                .next()
                .is_some()
            {
                return Ok(None);
            }
            (found.inserted, Some(found.stored_group_rows))
        }
    };
    let inserted: HashMap<EventIdentity, i64> = inserted.into_iter().collect();
    let first_copies = first_copies(tx, events, &first_in_batch, &inserted).await?;
    let (results, mut derived, changed_groups) = outcomes(events, &identities, &first_copies);
    if !changed_groups.is_empty() {
        derived.groups = changed_groups;
        derived.intervals = recompute_presence(
            tx,
            &derived.groups,
            stored_group_rows,
            &first_copies,
            events,
        )
        .await?;
    }
    Ok(Some((results, derived)))
}

/// What the batch does to its session rows before it inserts any event.
///
/// Locks before the insert, in one order for every batch. Where writers
/// run side by side (PostgreSQL), the transaction began holding its
/// presence groups' locks (`store::advisory_locks`); the session rows come
/// next, sorted. Two copies of one event then meet at a lock this batch
/// takes before any event (the group of a login or logout, the session row
/// of a create or close), so the recomputation sees every event a
/// concurrent writer committed and no two batches wait on each other
/// (`SessionTouch`).
///
/// Every copy of a login or logout is folded in; the first copy of a
/// create or close, and only where writers run side by side (one writer
/// needs no lock).
fn session_touches(
    events: &[NewEventColumns<'_>],
    first_in_batch: &BTreeMap<&EventIdentity, usize>,
    lock_lifecycle: bool,
) -> Vec<SessionTouch> {
    let presence = events
        .iter()
        .map(|e| &e.columns)
        .filter(|c| c.is_presence());
    let lifecycle = first_in_batch
        .values()
        .map(|&i| &events[i].columns)
        .filter(|c| lock_lifecycle && !c.is_presence());
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
    touches.into_values().collect()
}

/// The event that holds each identity: the one this batch inserted, or
/// the one stored before it (retries and conflicting copies, looked up in
/// one statement).
async fn first_copies<'i>(
    tx: &mut dyn WriteTx,
    events: &[NewEventColumns<'_>],
    first_in_batch: &BTreeMap<&'i EventIdentity, usize>,
    inserted: &HashMap<EventIdentity, i64>,
) -> Result<HashMap<&'i EventIdentity, FirstCopy>, StoreError> {
    let stored_before: Vec<NewEvent<'_, '_>> = first_in_batch
        .iter()
        .filter(|(identity, _)| !inserted.contains_key(*identity))
        .map(|(_, &i)| NewEvent {
            columns: &events[i].columns,
            received_at: events[i].received_at,
        })
        .collect();
    let mut found = tx.find_events(&stored_before).await?;
    let mut first_copies = HashMap::with_capacity(first_in_batch.len());
    for (&identity, &i) in first_in_batch {
        let copy = match inserted.get(identity) {
            Some(&id) => FirstCopy {
                id,
                content_sha256: events[i].columns.content_sha256.to_owned(),
                inserted_by: Some(i),
            },
            None => {
                // The insert met it, so a read after it finds it.
                let (id, content_sha256) = found.remove(identity).ok_or_else(|| {
                    StoreError::inconsistent(format!("{identity:?} was neither inserted nor found"))
                })?;
                FirstCopy {
                    id,
                    content_sha256,
                    inserted_by: None,
                }
            }
        };
        first_copies.insert(identity, copy);
    }
    Ok(first_copies)
}

/// Each copy's outcome and event id, in batch order, and what the stored
/// ones change: session merges, close counts, room-id recounts (in
/// `DerivedWrites`) and the presence groups to recompute (sorted).
fn outcomes(
    events: &[NewEventColumns<'_>],
    identities: &[EventIdentity],
    first_copies: &HashMap<&EventIdentity, FirstCopy>,
) -> (Vec<(Outcome, i64)>, DerivedWrites, Vec<GroupKey>) {
    let mut results = Vec::with_capacity(events.len());
    let mut changed_groups: BTreeSet<GroupKey> = BTreeSet::new();
    let mut merges: BTreeMap<(i64, &str), LifecycleMerge> = BTreeMap::new();
    let mut close_counts: BTreeMap<(i64, DateTime<Utc>, i64), i64> = BTreeMap::new();
    let mut room_id_recounts: BTreeSet<SessionRowKey> = BTreeSet::new();
    for (i, (e, identity)) in events.iter().zip(identities).enumerate() {
        let first = &first_copies[identity];
        let outcome = if first.inserted_by == Some(i) {
            Outcome::Stored
        } else if first.content_sha256 == e.columns.content_sha256 {
            Outcome::Duplicate
        } else {
            Outcome::Conflict
        };
        if outcome == Outcome::Conflict && e.columns.is_presence() {
            room_id_recounts.insert((e.columns.appid, e.columns.room_session_id.clone()));
        }
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
        results.push((outcome, first.id));
    }
    let derived = DerivedWrites {
        merges: merges.into_values().collect(),
        room_id_recounts: room_id_recounts.into_iter().collect(),
        close_counts: close_counts
            .into_iter()
            .map(|((appid, hour_start, close_reason), count)| CloseCount {
                appid,
                hour_start,
                close_reason,
                count,
            })
            .collect(),
        ..DerivedWrites::default()
    };
    (results, derived, changed_groups.into_iter().collect())
}

/// The presence intervals of `groups`, paired again from all their stored
/// events: read now, or read by the first steps before the batch inserted
/// its own (`stored_group_rows`), which are added.
async fn recompute_presence(
    tx: &mut dyn WriteTx,
    groups: &[GroupKey],
    stored_group_rows: Option<Vec<GroupMemberRow>>,
    first_copies: &HashMap<&EventIdentity, FirstCopy>,
    events: &[NewEventColumns<'_>],
) -> Result<Vec<(GroupKey, PresenceInterval)>, StoreError> {
    let rows = match stored_group_rows {
        None => tx.presence_groups(groups).await?,
        Some(mut rows) => {
            rows.extend(first_copies.values().filter_map(|copy| {
                let i = copy.inserted_by?;
                GroupMemberRow::of_inserted(&events[i].columns, copy.id)
            }));
            rows
        }
    };
    let mut members: BTreeMap<GroupKey, Vec<_>> = BTreeMap::new();
    for row in rows {
        members.entry(row.group).or_default().push(row.event);
    }
    let mut intervals = Vec::new();
    for g in groups {
        let rows = members.remove(g).unwrap_or_default();
        intervals.extend(intervals_of(rows).into_iter().map(|i| (g.clone(), i)));
    }
    Ok(intervals)
}
