//! Group commit writes a batch with set-based statements. Whatever a batch
//! holds (retries, replayed signatures with other bodies, conflicting
//! copies, a whole session at once), each delivery's outcome and the state
//! left behind are those of the same deliveries recorded one by one.

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde_json::json;
use zego_room_tracker::domain::Delivery;
use zego_room_tracker::store::Backend;
use zego_room_tracker::store::group_commit::GroupCommitOptions;
use zego_room_tracker::store::query::{Bucket, StatsQuery};

use crate::support::callbacks::*;
use crate::support::*;

crate::conformance!(
    a_batch_ends_as_one_by_one_would,
    a_panic_in_a_batch_fails_only_its_culprit_and_the_writer_lives_on,
    a_writer_pinned_to_a_cpu_stores_every_callback_once,
);

/// `WRITER_CPU` (`store::writer_cpu`): with its thread pinned, the writer
/// opens SQLite's write connection again from that thread; callbacks sent
/// while it does so, and after, are each stored once, and a retry of each
/// is a duplicate. (That the threads end up on one CPU is checked on the
/// real binary: `binary::the_sqlite_writer_and_its_connection_share_one_cpu`.)
async fn a_writer_pinned_to_a_cpu_stores_every_callback_once(backend: Backend) {
    use futures_util::future::join_all;
    use zego_room_tracker::domain::Outcome;
    use zego_room_tracker::store::group_commit::GroupCommit;
    use zego_room_tracker::store::writer_cpu::allowed_cpus;

    let (store, _db) = crate::or_skip!(fresh_store(backend).await);
    let cpu = *allowed_cpus()
        .last()
        .expect("this process may run somewhere");
    let writer = GroupCommit::start(
        &store,
        GroupCommitOptions {
            cpu: Some(cpu),
            ..batching()
        },
    )
    .unwrap();
    let deliveries: Vec<Delivery> = (0..200)
        .map(|n| {
            let (kind, mut fields) = close(9_000 + n, T0 + n as i64, 1);
            fields.insert("appid".into(), json!(77));
            assessed(&signed(fields), kind)
        })
        .collect();
    for expected in [Outcome::Stored, Outcome::Duplicate] {
        let outcomes = join_all(deliveries.iter().map(|d| writer.record(d.clone()))).await;
        for outcome in outcomes {
            assert_eq!(outcome.unwrap(), expected);
        }
    }
    let snapshot = store.app_snapshot(77).await.unwrap();
    assert_eq!(snapshot.sessions.len(), 200);
}

/// A bug some callback trips (here: a store that panics on room `boom`)
/// must not take the group-commit writer down with it: the batch's other
/// callbacks are stored, the culprit gets a 500, and callbacks after it are
/// written as before.
async fn a_panic_in_a_batch_fails_only_its_culprit_and_the_writer_lives_on(backend: Backend) {
    use std::sync::Arc;

    use futures_util::future::join_all;
    use reqwest::StatusCode;

    use crate::support::panicking::{PANIC_ROOM, PanicsOnBoom};

    let (store, db) = crate::or_skip!(fresh_store(backend).await);
    let panicking = PanicsOnBoom::new(store);
    let largest_panicked = panicking.largest_panicked.clone();
    let app = TestApp::with_store(Arc::new(panicking), db, policy(), Vec::new()).await;
    let post = |session: u64, room: &str| {
        let (_, mut fields) = in_room(close(session, T0, 1), room);
        fields.insert("appid".into(), json!(1));
        app.post("/callbacks/room_close", json_body(&signed(fields)))
    };
    for round in 0..3 {
        // Sent together, the culprit last (the writer is then busy with the
        // first ones), so it shares a batch with some of them.
        let answers = join_all((0..=40).map(|n| {
            let room = if n == 40 { PANIC_ROOM } else { "fine" };
            post(round * 100 + n, room)
        }))
        .await;
        let (culprit, others) = answers.split_last().unwrap();
        assert_eq!(culprit.0, StatusCode::INTERNAL_SERVER_ERROR, "{culprit:?}");
        assert_eq!(culprit.1["error"]["code"], "internal_error");
        for (status, answer) in others {
            assert_eq!(
                (*status, &answer["status"]),
                (StatusCode::OK, &json!("stored"))
            );
        }
    }
    let snapshot = app.store.app_snapshot(1).await.unwrap();
    assert_eq!(snapshot.sessions.len(), 3 * 40);
    // Else the one-by-one re-run of a failed batch was never needed.
    let largest = largest_panicked.load(std::sync::atomic::Ordering::Relaxed);
    assert!(largest > 1, "the culprit never shared a batch: {largest}");
}

async fn a_batch_ends_as_one_by_one_would(backend: Backend) {
    let (batched, _db1) = crate::or_skip!(fresh_store(backend).await);
    let (one_by_one, _db2) = crate::or_skip!(fresh_store(backend).await);
    let mut rng = StdRng::seed_from_u64(2026);
    for round in 0..12 {
        let appid = 500 + round;
        let deliveries = mixed_deliveries(appid, &mut rng);
        let mut batched_outcomes = Vec::new();
        let mut rest = deliveries.as_slice();
        while !rest.is_empty() {
            let (batch, tail) = rest.split_at(rng.random_range(1..=rest.len().min(40)));
            batched_outcomes.extend(batched.record_deliveries(batch).await.unwrap());
            rest = tail;
        }
        let mut single_outcomes = Vec::new();
        for d in &deliveries {
            single_outcomes.push(one_by_one.record_delivery(d).await.unwrap());
        }
        assert_eq!(batched_outcomes, single_outcomes, "round {round}");
        assert_eq!(
            batched.app_snapshot(appid).await.unwrap().sorted(),
            one_by_one.app_snapshot(appid).await.unwrap().sorted(),
            "round {round}"
        );
        for outcome in ["stored", "duplicate", "conflict", "rejected"] {
            assert!(
                single_outcomes.iter().any(|o| o.as_str() == outcome),
                "round {round} exercised no {outcome}"
            );
        }
    }
    let all_time = StatsQuery {
        appid: None,
        room_id: None,
        from: None,
        to: None,
        bucket: Bucket::None,
    };
    assert_eq!(
        batched.close_reason_counts(&all_time).await.unwrap(),
        one_by_one.close_reason_counts(&all_time).await.unwrap()
    );
    assert_eq!(
        super::support::deliveries(batched.as_ref()).await.len(),
        super::support::deliveries(one_by_one.as_ref()).await.len()
    );
}

/// Three sessions' creates, closes, logins and logouts in random order,
/// with identical retries, re-signed copies, conflicting copies (same
/// identity, other content) and signed triples replayed with another body.
fn mixed_deliveries(appid: u32, rng: &mut StdRng) -> Vec<Delivery> {
    let mut pool = Vec::new();
    for session in 1..=3u64 {
        let start = T0 + rng.random_range(0..1_000);
        pool.push(create(session, start));
        pool.push(close(session, start + 5_000, rng.random_range(1..=4)));
        for user in ["ann", "bob", "cyd"] {
            let login_at = start + rng.random_range(1..2_000);
            pool.push(login(session, user, "s1", login_at, 1));
            pool.push(logout(session, user, "s1", login_at + 900, Some(login_at)));
            if rng.random_bool(0.5) {
                pool.push(login(session, user, "s1", login_at + 1_000, 1));
            }
        }
    }
    let mut deliveries = Vec::new();
    for (kind, fields) in &pool {
        let mut fields = fields.clone();
        fields.insert("appid".into(), json!(appid));
        if rng.random_bool(0.1) {
            fields.insert("room_id".into(), json!("room-2")); // another room id: widens the session
        }
        let signed_fields = signed(fields.clone());
        let first = assessed(&signed_fields, *kind);
        deliveries.push(first.clone());
        match rng.random_range(0..5) {
            0 => deliveries.push(first), // ZEGO's retry: the same request again
            1 => deliveries.push(assessed(&signed(fields.clone()), *kind)), // re-signed copy
            2 => {
                // Same identity, other content: a conflict.
                let mut other = fields.clone();
                other.insert("user_nickname".into(), json!("someone else"));
                other.insert("id_name".into(), json!("someone else"));
                if other.contains_key("close_reason") {
                    other.insert("close_reason".into(), json!(9));
                }
                deliveries.push(assessed(&signed(other), *kind));
            }
            3 => {
                // The signed triple again with another body.
                let mut tampered = signed_fields.clone();
                tampered.insert("room_id".into(), json!("room-tampered"));
                deliveries.push(assessed(&tampered, *kind));
            }
            _ => {}
        }
    }
    deliveries.shuffle(rng);
    // Some copies also arrive before their original.
    if let Some(extra) = deliveries.choose(rng).cloned() {
        deliveries.insert(0, extra);
    }
    deliveries
}
