//! The database going away mid-run: 503 (ZEGO retries), readiness goes red,
//! and the very same delivery succeeds once the database is back.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, Executor, SqliteConnection};
use zego_room_tracker::store::{self, Backend, StoreError};

use crate::support::callbacks::*;
use crate::support::proxy::Proxy;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_answers_503_and_the_retry_is_stored() {
    let db = crate::or_skip!(TestDb::new(Backend::Postgres).await);
    let (proxy, store) = store_behind_proxy(&db, &test_connect_options()).await;
    let app = TestApp::with_store(store, db, policy(), Vec::new()).await;

    let first = json_body(&signed(fixture("room_create.json")));
    assert_eq!(
        app.post("/callbacks/room_create", first).await.1["status"],
        "stored"
    );

    proxy.cut();
    let delivery = json_body(&signed(fixture("room_close.json")));
    let (status, body) = app.post("/callbacks/room_close", delivery.clone()).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            &"storage_unavailable".into()
        )
    );
    assert_eq!(app.get("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);

    proxy.restore();
    assert_eq!(
        app.post("/callbacks/room_close", delivery).await.1["status"],
        "stored"
    );
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);
    let snapshot = app.store.app_snapshot(1).await.unwrap();
    assert!(snapshot.sessions[0].closed_at.is_some() && snapshot.sessions[0].created_at.is_some());
}

/// A migration is not bound by DATABASE_TIMEOUT_MS, which is for callbacks
/// and reads: a process starting while another migrates waits for it (here
/// the migrations table is held, as while another process's migration
/// runs), and a migration that rebuilds an index on a large table takes
/// as long as it takes. Under the limit, both failed and `serve` did not
/// start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_outlasting_the_database_timeout_still_runs() {
    let db = crate::or_skip!(TestDb::new(Backend::Postgres).await);
    let first = store::connect(&db.url, &test_connect_options())
        .await
        .unwrap();
    first.migrate().await.unwrap();

    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    holder
        .execute("BEGIN; LOCK TABLE _sqlx_migrations IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let options = store::ConnectOptions {
        timeout: Duration::from_millis(200),
        ..test_connect_options()
    };
    let second = store::connect(&db.url, &options).await.unwrap();
    let migrating = tokio::spawn(async move { second.migrate().await });
    // Once it waits for the lock, three times its timeout later it still waits.
    let waits = until_waiting_for_locks(&db.url, 1, || migrating.is_finished()).await;
    assert!(waits, "{:?}", migrating.await);
    tokio::time::sleep(3 * options.timeout).await;
    assert!(!migrating.is_finished(), "{:?}", migrating.await);
    holder.execute("COMMIT").await.unwrap();
    let migrated = tokio::time::timeout(Duration::from_secs(10), migrating).await;
    assert!(matches!(migrated, Ok(Ok(Ok(())))), "{migrated:?}");
}

/// The database dropped under a running service (or its login refused) is
/// unavailable, not a bug: `/readyz` and callbacks answer 503, which alerts
/// on 503s and ZEGO's retries cover. It was a 500 `internal_error`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_postgres_database_is_503_not_500() {
    let db = crate::or_skip!(TestDb::new(Backend::Postgres).await);
    let admin = format!("{}/postgres", db.url.rsplit_once('/').unwrap().0);
    let name = db.url.rsplit_once('/').unwrap().1.to_owned();
    let store = store::connect(&db.url, &test_connect_options())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let app = TestApp::with_store(store, db, policy(), Vec::new()).await;
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);

    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    conn.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let delivery = json_body(&signed(fixture("room_close.json")));
    let (status, body) = app.post("/callbacks/room_close", delivery).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            &"storage_unavailable".into()
        )
    );
}

/// A database that takes no writes (a standby after a failover, or made
/// read-only): `/readyz` is a 503, as for a SQLite file that refuses
/// writes, and callbacks are 503s ZEGO retries. Both were wrong: ready, and
/// every callback a 500 (25006 counted as a bug).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_postgres_database_is_not_ready_and_503() {
    let db = crate::or_skip!(TestDb::new(Backend::Postgres).await);
    let name = db.url.rsplit_once('/').unwrap().1.to_owned();
    let store = store::connect(&db.url, &test_connect_options())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let url = db.url.clone();
    let app = TestApp::with_store(store, db, policy(), Vec::new()).await;
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);

    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    // The setting, then every other connection ended, so new ones read it.
    let mut alter_database = async |setting: &str| {
        let alter = format!("ALTER DATABASE {name} {setting}");
        admin.execute(alter.as_str()).await.unwrap();
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .await
            .unwrap();
    };
    alter_database("SET default_transaction_read_only = on").await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let delivery = json_body(&signed(fixture("room_close.json")));
    let (status, body) = app.post("/callbacks/room_close", delivery.clone()).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            &"storage_unavailable".into()
        ),
        "{body}"
    );

    alter_database("RESET default_transaction_read_only").await;
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);
    let (status, body) = app.post_as_zego("/callbacks/room_close", delivery).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &"stored".into())
    );
}

/// A SQLite file the service may only read (its mode, a read-only mount;
/// here the immutable attribute, which binds root too): `/readyz` is a 503
/// and callbacks are 503s, then stored once it takes writes again. SQLite
/// grants the write lock on such a file and refuses only the first page
/// written, so taking the lock alone said ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_that_refuses_writes_is_not_ready_and_503() {
    let db = TestDb::sqlite();
    let file = db.sqlite_file().unwrap();
    let migrating = store::connect(&db.url, &test_connect_options())
        .await
        .unwrap();
    migrating.migrate().await.unwrap();
    migrating.close().await;
    let as_root = running_as_root();
    let protect = |on: bool| {
        let status = if as_root {
            std::process::Command::new("chattr")
                .args([if on { "+i" } else { "-i" }, &file])
                .status()
        } else {
            std::process::Command::new("chmod")
                .args([if on { "444" } else { "644" }, &file])
                .status()
        };
        assert!(
            status.is_ok_and(|s| s.success()),
            "cannot make {file} read-only (as root this needs chattr on ext4, xfs or btrfs)"
        );
    };
    protect(true);
    let store = store::connect(&db.url, &test_connect_options())
        .await
        .unwrap();
    let app = TestApp::with_store(store, db, policy(), Vec::new()).await;
    let (status, body) = app.get("/readyz").await;
    let delivery = json_body(&signed(fixture("room_close.json")));
    let (callback, answer) = app.post("/callbacks/room_close", delivery.clone()).await;
    protect(false);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        (callback, &answer["error"]["code"]),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            &"storage_unavailable".into()
        ),
        "{answer}"
    );
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);
    let (status, body) = app.post_as_zego("/callbacks/room_close", delivery).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &"stored".into())
    );
}

/// A pooled connection that stops answering (a middlebox lost its state)
/// while new ones pass: `/readyz` and reads give it up after twice
/// DATABASE_TIMEOUT_MS and go on on another connection. They waited for
/// the request's whole timeout (30 s), and a load balancer would have
/// taken a node out that was storing callbacks all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_read_connection_is_given_up_not_waited_on() {
    let db = crate::or_skip!(TestDb::new(Backend::Postgres).await);
    let options = one_second_timeout();
    let (proxy, store) = store_behind_proxy(&db, &options).await;
    store.ping().await.unwrap(); // the pool now holds an idle connection
    proxy.silence();
    let started = Instant::now();
    let answered = tokio::time::timeout(Duration::from_secs(20), store.ping()).await;
    assert!(
        matches!(answered, Ok(Ok(()))),
        "{answered:?} after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// The group-commit writer's held connection stops answering (a hung
/// server, a middlebox that lost the connection's state) while new
/// connections work: the batch on it fails as unavailable after ten
/// DATABASE_TIMEOUT_MS, and the next batch is stored on a new connection.
/// Without that deadline the one writer waited for good, and every later
/// callback with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_write_connection_costs_one_batch_not_the_writer() {
    use zego_room_tracker::domain::Outcome;
    use zego_room_tracker::store::group_commit::{GroupCommit, GroupCommitOptions};

    let db = crate::or_skip!(TestDb::new(Backend::Postgres).await);
    let options = one_second_timeout();
    let (proxy, store) = store_behind_proxy(&db, &options).await;
    let writer = GroupCommit::start(
        &store,
        GroupCommitOptions {
            workers: 1,
            ..batching()
        },
    )
    .unwrap();
    let close = |n: u64| {
        let (kind, mut fields) = crate::support::callbacks::close(n, T0 + n as i64, 1);
        fields.insert("appid".into(), json!(1));
        assessed(&signed(fields), kind)
    };
    assert_eq!(writer.record(close(1)).await.unwrap(), Outcome::Stored);

    proxy.silence();
    let started = Instant::now();
    let stalled = tokio::time::timeout(Duration::from_secs(20), writer.record(close(2))).await;
    assert!(
        matches!(stalled, Ok(Err(StoreError::Unavailable(_)))),
        "{stalled:?} after {:?}",
        started.elapsed()
    );
    for n in [3, 2] {
        let outcome = tokio::time::timeout(Duration::from_secs(10), writer.record(close(n))).await;
        assert!(
            matches!(outcome, Ok(Ok(Outcome::Stored))),
            "{n}: {outcome:?}"
        );
    }
}

/// A write transaction whose connection goes silent between statements
/// (its statement ran, the answer and everything after are lost) is ended
/// by PostgreSQL after DATABASE_TIMEOUT_MS idle in it. Before, it held its
/// locks, and with them every later write to its sessions, until TCP gave
/// up on the connection (hours); the writer had long moved on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_transaction_gone_silent_is_ended_by_postgresql() {
    let db = crate::or_skip!(TestDb::new(Backend::Postgres).await);
    // Long enough for the loop below to see the write wait for its lock
    // (it gives up after this) on a busy machine.
    let options = one_second_timeout();
    let (proxy, store) = store_behind_proxy(&db, &options).await;
    let (kind, mut fields) = crate::support::callbacks::close(1, T0, 1);
    fields.insert("appid".into(), json!(1));
    let delivery = assessed(&signed(fields), kind);

    // Holds the write up mid-transaction, on a connection of its own.
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    holder
        .execute("BEGIN; LOCK TABLE room_sessions IN EXCLUSIVE MODE")
        .await
        .unwrap();
    let writing = tokio::spawn(async move { store.record_deliveries(&[delivery]).await });
    let others = |condition: &str| {
        format!(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND {condition}"
        )
    };
    let waiting = others("wait_event_type = 'Lock'");
    let idle = others("state LIKE 'idle in transaction%'");
    let count = async |conn: &mut sqlx::PgConnection, sql: &str| -> i64 {
        sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
    };
    // Watched from a connection outside any transaction: one inside sees
    // pg_stat_activity as it was at its first look until it ends.
    let mut watcher = sqlx::PgConnection::connect(&db.url).await.unwrap();
    while count(&mut watcher, &waiting).await == 0 {
        assert!(!writing.is_finished(), "{:?}", writing.await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.silence();
    holder.execute("COMMIT").await.unwrap();

    // The statement now finishes into the silence; its transaction waits
    // for a next statement that never comes, and PostgreSQL ends it.
    let started = Instant::now();
    let mut seen_idle = false;
    loop {
        let n = count(&mut watcher, &idle).await;
        seen_idle |= n > 0;
        if (seen_idle && n == 0) || started.elapsed() > Duration::from_secs(10) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen_idle && started.elapsed() < Duration::from_secs(10),
        "idle in transaction seen: {seen_idle}; still there after {:?}",
        started.elapsed()
    );
    let written = writing.await.unwrap();
    assert!(
        matches!(written, Err(StoreError::Unavailable(_))),
        "{written:?}"
    );
}

/// Two processes starting on one fresh SQLite file migrate it one after the
/// other (docs/operations.md: the second waits). Both applied the first
/// migration and one failed ("table events already exists").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_migrating_one_fresh_sqlite_file_both_succeed() {
    for _ in 0..5 {
        let db = TestDb::sqlite();
        let first = store::connect(&db.url, &test_connect_options())
            .await
            .unwrap();
        let second = store::connect(&db.url, &test_connect_options())
            .await
            .unwrap();
        let (a, b) = tokio::join!(first.migrate(), second.migrate());
        assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
        assert_eq!(second.pending_migrations().await.unwrap(), 0);
        first.close().await;
        second.close().await;
    }
}

/// SQLite holds POSIX locks on the database file while a connection has it
/// open in WAL mode (how another process tells it is not the last), and
/// closing any descriptor of that file drops them all. Migrating once
/// locked the file through a descriptor of its own: after it the locks
/// were gone, an `import` process closing took itself for the last one,
/// deleted the WAL under this process's readers, and they read "database
/// disk image is malformed".
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_leaves_sqlites_own_locks_on_the_file() {
    use std::os::unix::fs::MetadataExt;
    let db = TestDb::sqlite();
    let file = db.sqlite_file().unwrap();
    let store = store::connect(&db.url, &test_connect_options())
        .await
        .unwrap();
    let held = || {
        let inode = std::fs::metadata(&file).unwrap().ino();
        let (pid, inode) = (format!(" {} ", std::process::id()), format!(":{inode} "));
        std::fs::read_to_string("/proc/locks")
            .unwrap()
            .lines()
            .any(|l| l.contains("POSIX") && l.contains(&pid) && l.contains(&inode))
    };
    store.migrate().await.unwrap();
    assert!(held(), "SQLite holds a lock on the file it has open");
    // A second store of this process, as a test or a second command would.
    let second = store::connect(&db.url, &test_connect_options())
        .await
        .unwrap();
    second.migrate().await.unwrap();
    assert!(held(), "migrating released SQLite's locks on the file");
    second.close().await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_by_another_process_answers_503_and_the_retry_is_stored() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    // Another writer (a backup, a second server) holds the write lock.
    let mut blocker = SqliteConnection::connect(&app.db.url).await.unwrap();
    blocker.execute("BEGIN EXCLUSIVE").await.unwrap();

    let delivery = json_body(&signed(fixture("room_close.json")));
    let started = std::time::Instant::now();
    let (status, body) = app.post("/callbacks/room_close", delivery.clone()).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            &"storage_unavailable".into()
        )
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "503 comes after the configured timeout, not a hang"
    );
    // Readiness means writable: red while the lock is held.
    assert_eq!(app.get("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);

    blocker.execute("ROLLBACK").await.unwrap();
    assert_eq!(
        app.post("/callbacks/room_close", delivery).await.1["status"],
        "stored"
    );
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);
}

/// Two server processes on one PostgreSQL receiving the same callbacks at
/// once (each delivery re-signed, as ZEGO's retries are): one copy of each
/// event, one `stored` per event, the rest `duplicate`. Forty shuffled
/// sessions put creates, closes, logins and logouts of one session into
/// different batches on each side; a deadlock between the two writers
/// would outlast the tests' 1.5 s statement timeout (PostgreSQL looks for
/// deadlocks after 1 s) and answer 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_store_each_event_once() {
    use futures::future::join_all;
    const SESSIONS: usize = 40;
    let (first_store, db) = crate::or_skip!(fresh_store(Backend::Postgres).await);
    let second_store = store::connect(&db.url, &test_connect_options())
        .await
        .unwrap();
    let first = TestApp::with_store(first_store, db, policy(), Vec::new()).await;
    let second_db = TestDb::sqlite(); // only to satisfy TestApp; the store is PostgreSQL's
    let second = TestApp::with_store(second_store, second_db, policy(), Vec::new()).await;

    let plan = zego_room_tracker::sender::traffic::Plan {
        appid: 3,
        users: 3,
        shuffle: true,
        duplicates: 0.0,
        run_id: "twins".into(),
    };
    let callbacks: Vec<_> = (0..SESSIONS as u64)
        .flat_map(|n| zego_room_tracker::sender::traffic::session(&plan, n, &mut rand::rng()))
        .collect();
    let sends = callbacks.iter().flat_map(|c| {
        [&first, &second].map(|app| {
            let path = format!("/callbacks/{}", c.event);
            let body = json_body(&signed(c.fields.clone()));
            async move {
                let (code, answer) = app.post(&path, body).await;
                match answer["status"].as_str() {
                    Some(status) => status.to_owned(),
                    None => format!("{code}: {answer}"),
                }
            }
        })
    });
    let outcomes = join_all(sends).await;
    let count = |o: &str| outcomes.iter().filter(|x| *x == o).count();
    assert_eq!(
        (count("stored"), count("duplicate")),
        (callbacks.len(), callbacks.len()),
        "{outcomes:?}"
    );
    let snapshot = first.store.app_snapshot(3).await.unwrap();
    assert_eq!(
        (
            snapshot.events.len(),
            snapshot.sessions.len(),
            snapshot.intervals.len()
        ),
        (8 * SESSIONS, SESSIONS, 3 * SESSIONS)
    );
}

/// A fresh session's first login racing two re-signed copies of its
/// create, each callback in its own transaction or with several workers:
/// the login's transaction creates the session row while the first copy's
/// one-statement first steps run, and that copy locked the row only after
/// inserting its event, while the second copy locked the row first and
/// waited for that event: a deadlock, for about one session in ten (503s
/// without group commit). Now the first copy starts again step by step, so
/// PostgreSQL never picks a victim (`zrt_write_retries_total` stays absent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_login_racing_copies_of_its_create_never_deadlocks() {
    use futures::StreamExt;
    const SESSIONS: u64 = 300;
    for settings in [
        &[("GROUP_COMMIT", "false")][..],
        &[
            ("GROUP_COMMIT_WORKERS", "4"),
            ("GROUP_COMMIT_MAX_BATCH", "1"),
        ][..],
    ] {
        let db = crate::or_skip!(TestDb::new(Backend::Postgres).await);
        // Long enough that only a deadlock could fail a write here.
        let mut settings = settings.to_vec();
        settings.push(("DATABASE_TIMEOUT_MS", "20000"));
        let server = served::Served::with_settings(db, &settings);
        let sends = (0..SESSIONS).flat_map(|n| {
            let (_, mut login) = login(n, "u1", "s1", T0 + 10, 1);
            let (_, mut create) = create(n, T0);
            login.insert("appid".into(), json!(1));
            create.insert("appid".into(), json!(1));
            [
                ("/callbacks/room_login", login),
                ("/callbacks/room_create", create.clone()),
                ("/callbacks/room_create", create),
            ]
        });
        let answers: Vec<StatusCode> = futures::stream::iter(sends)
            .map(|(path, fields)| server.post(path, json_body(&signed(fields))))
            .buffer_unordered(48)
            .collect()
            .await;
        assert!(
            answers.iter().all(|s| *s == StatusCode::OK),
            "{settings:?}: {answers:?}"
        );
        let (_, _, metrics) = server.get_raw("/metrics").await;
        assert!(
            !metrics.contains("zrt_write_retries_total"),
            "{settings:?}: {}",
            metrics
                .lines()
                .filter(|l| l.starts_with("zrt_write_retries_total"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// `rebuild` with a callback in flight: the callback's transaction takes
/// `room_sessions` before `events` (as every write path does), so the
/// rebuild must lock them in that order too. It locked `events` first and
/// then waited for `room_sessions`, while the callback held that and
/// queued for `events`: PostgreSQL aborted one of them as a deadlock.
/// PostgreSQL's own deadlock and serialization errors (raised by the server,
/// so they arrive as the driver delivers a real victim's) are run again up
/// to three times; any other error is returned at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_conflict_victims_are_run_again_and_nothing_else_is() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let db = crate::or_skip!(TestDb::new(Backend::Postgres).await);
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    // Fails with `sqlstate` on the first `failures` attempts, then answers
    // the number of attempts made.
    let attempts_until =
        |sqlstate: &'static str, failures: u32| {
            let attempts = AtomicU32::new(0);
            let pool = pool.clone();
            async move {
                let (attempts, pool) = (&attempts, &pool);
                let result = store::retrying_lock_conflicts(|| async move {
                let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                if attempt <= failures {
                    let raise = format!(
                        "DO $$ BEGIN RAISE EXCEPTION 'victim' USING ERRCODE = '{sqlstate}'; END $$"
                    );
                    pool.execute(raise.as_str()).await.map_err(StoreError::from)?;
                }
                Ok::<_, StoreError>(attempt)
            })
            .await;
                (result, attempts.load(Ordering::SeqCst))
            }
        };
    for victim in ["40P01", "40001"] {
        let (result, _) = attempts_until(victim, 3).await;
        assert_eq!(result.unwrap(), 4, "{victim}: three reruns succeed");
        let (result, attempts) = attempts_until(victim, 4).await;
        let e = result.unwrap_err();
        assert!(e.is_lock_conflict(), "{victim}: {e:?}");
        assert_eq!(attempts, 4, "{victim}: one run and three reruns, no more");
    }
    // A lock timeout or a unique violation is not a victim's error.
    for other in ["55P03", "23505"] {
        let (result, attempts) = attempts_until(other, 1).await;
        let e = result.unwrap_err();
        assert!(!e.is_lock_conflict(), "{other}: {e:?}");
        assert_eq!(attempts, 1, "{other} is not run again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_and_a_callback_in_flight_take_tables_in_one_order() {
    let (store, db) = crate::or_skip!(fresh_store(Backend::Postgres).await);
    ingest_all(store.as_ref(), 1, &[create(1, T0), close(1, T0 + 1_000, 1)]).await;
    // A callback's transaction after its session rows, before its events:
    // the lock modes its writes take.
    let mut callback = sqlx::PgConnection::connect(&db.url).await.unwrap();
    callback
        .execute("BEGIN; LOCK TABLE room_sessions IN ROW EXCLUSIVE MODE")
        .await
        .unwrap();
    let rebuilding = tokio::spawn({
        let store = store.clone();
        async move { store.rebuild(&reassess, &|_| {}).await }
    });
    let waits = until_waiting_for_locks(&db.url, 1, || rebuilding.is_finished()).await;
    assert!(waits, "{:?}", rebuilding.await);
    // The callback goes on to its events, and commits.
    let events = callback
        .execute("LOCK TABLE events IN ROW EXCLUSIVE MODE")
        .await;
    assert!(events.is_ok(), "{events:?}");
    callback.execute("COMMIT").await.unwrap();
    let rebuilt = rebuilding.await.unwrap();
    assert!(rebuilt.is_ok(), "{rebuilt:?}");
}

/// A batch that only archives (here one forged callback) reaches its last
/// statement with no table locked, so that statement must name the tables
/// in the order `rebuild` locks them. It named `presence_intervals` before
/// `room_sessions`, and deadlocked with a rebuild between the two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_callback_and_rebuild_take_tables_in_one_order() {
    use zego_room_tracker::domain::EventKind;
    let (store, db) = crate::or_skip!(fresh_store(Backend::Postgres).await);
    // A rebuild after its first lock.
    let mut rebuild = sqlx::PgConnection::connect(&db.url).await.unwrap();
    rebuild
        .execute("BEGIN; LOCK TABLE room_sessions IN SHARE ROW EXCLUSIVE MODE")
        .await
        .unwrap();
    let forged = assessed(
        &sign_with(fixture("room_close.json"), "forged"),
        EventKind::RoomClose,
    );
    let writing = tokio::spawn(async move { store.record_deliveries(&[forged]).await });
    let waits = until_waiting_for_locks(&db.url, 1, || writing.is_finished()).await;
    assert!(waits, "{:?}", writing.await);
    // The rebuild goes on to its other tables, and commits.
    let rest = rebuild
        .execute(
            "LOCK TABLE events, presence_intervals, close_reason_hourly, deliveries \
             IN SHARE ROW EXCLUSIVE MODE",
        )
        .await;
    assert!(rest.is_ok(), "{rest:?}");
    rebuild.execute("COMMIT").await.unwrap();
    let written = writing.await.unwrap();
    assert!(
        matches!(written.as_deref(), Ok([outcome]) if outcome.as_str() == "rejected"),
        "{written:?}"
    );
}

/// `purge --sessions` whose first choice turned out recent once locked
/// chooses again: it must not still hold that choice's locks, which may
/// sort above the next one's. Here it chose B, waited for B's lock while a
/// callback batch for A and B held A's and queued for B's; B turned out
/// recent, and the purge, still holding B, waited for A: a deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_choosing_again_holds_no_lock_of_its_first_choice() {
    use sha2::Digest;
    let (store, db) = crate::or_skip!(fresh_store(Backend::Postgres).await);
    // Session lock keys as `store::advisory_locks` makes them: A's sorts first.
    let bits = |id: &str| {
        let d = sha2::Sha256::digest(id.as_bytes());
        i32::from_be_bytes([d[0], d[1], d[2], d[3]])
    };
    let (a, b) = match bits("1") < bits("2") {
        true => (1, 2),
        false => (2, 1),
    };
    // B is the older, so the purge (one session per batch) chooses it first.
    let old = [
        create(b, T0),
        close(b, T0 + 1_000, 1),
        create(a, T0 + 10_000),
        close(a, T0 + 11_000, 1),
    ];
    ingest_all(store.as_ref(), 1, &old).await;
    // A callback of B's in flight: its shared lock held, B made recent.
    let mut late = sqlx::PgConnection::connect(&db.url).await.unwrap();
    late.execute("BEGIN").await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock_shared(1, $1)")
        .bind(bits(&b.to_string()))
        .execute(&mut late)
        .await
        .unwrap();
    sqlx::query("UPDATE events SET event_at = now() WHERE appid = 1 AND room_session_id = $1")
        .bind(b.to_string())
        .execute(&mut late)
        .await
        .unwrap();
    let cutoff = chrono::Utc::now() - chrono::Duration::hours(1);
    let purging = tokio::spawn({
        let store = store.clone();
        async move { store.purge_sessions(cutoff, 1).await }
    });
    let waits = until_waiting_for_locks(&db.url, 1, || purging.is_finished()).await;
    assert!(waits, "{:?}", purging.await);
    // A batch with a login of each: A's lock taken, B's queued.
    let now = chrono::Utc::now().timestamp_millis();
    let logins = [login(a, "u", "s", now, 1), login(b, "u", "s", now, 1)].map(|(kind, mut f)| {
        f.insert("appid".into(), json!(1));
        assessed(&signed(f), kind)
    });
    let writing = tokio::spawn({
        let store = store.clone();
        async move { store.record_deliveries(&logins).await }
    });
    let waits = until_waiting_for_locks(&db.url, 2, || writing.is_finished()).await;
    assert!(waits, "{:?}", writing.await);
    late.execute("COMMIT").await.unwrap();
    let purged = purging.await.unwrap();
    let written = writing.await.unwrap();
    assert!(matches!(purged, Ok(0)), "{purged:?}");
    assert!(written.is_ok(), "{written:?}");
}

/// A session row another writer creates while a batch's first statement
/// runs (`recorder::record_at_once`): the statement's INSERT meets the row
/// and waits for that writer's commit, and its UPDATE, on the snapshot
/// from before, cannot see it. The batch sees that
/// (`FirstStepsFound::sessions_found`) and is recorded again step by step,
/// so the row still moves to the login's smaller room id and earlier time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_row_another_writer_creates_meanwhile_is_still_widened() {
    let app = crate::or_skip!(TestApp::spawn(Backend::Postgres).await);
    let mut other = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    other.execute("BEGIN").await.unwrap();
    let later = format!("to_timestamp({})", (T0 + 500) as f64 / 1000.0);
    other
        .execute(
            format!(
                "INSERT INTO room_sessions (appid, room_session_id, room_id, first_event_at, started_at)
                 VALUES (1, '7', 'room-z', {later}, {later})"
            )
            .as_str(),
        )
        .await
        .unwrap();

    let (kind, mut fields) = login(7, "u1", "s1", T0 + 100, 1);
    fields.insert("appid".into(), serde_json::json!(1));
    let body = json_body(&signed(fields));
    let path = format!("/callbacks/{}", kind.as_str());
    // Commit once the batch waits for the row (the tests' lock timeout is
    // 1.5 s, so not much later).
    let commit_when_waited_for = async {
        let mut watch = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
        let started = std::time::Instant::now();
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut watch)
            .await
            .unwrap();
            if waiting > 0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the login never waited"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        other.execute("COMMIT").await.unwrap();
    };
    let ((status, body), ()) = tokio::join!(app.post(&path, body), commit_when_waited_for);
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &"stored".into()),
        "{body}"
    );
    let snapshot = app.store.app_snapshot(1).await.unwrap();
    let session = &snapshot.sessions[0];
    assert_eq!(
        (
            session.room_id.as_str(),
            session.first_event_at.timestamp_millis()
        ),
        ("room-1", T0 + 100)
    );
    assert_eq!(session.started_at.timestamp_millis(), T0 + 100);
}

/// Every connection of the service killed by PostgreSQL while idle, as a
/// restart does: the group-commit writer's held connection and the read
/// pool's are dead. The writer's BEGIN fails and the batch runs on a new
/// connection, so the callback is stored, not answered 503
/// (`store::postgres::held`); a read on the dead pooled connection is run
/// again on another, so the query API, readiness and the store's snapshot
/// of every row answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_killed_while_idle_cost_no_callback_and_no_read() {
    let app = crate::or_skip!(TestApp::spawn(Backend::Postgres).await);
    let create = json_body(&signed(fixture("room_create.json")));
    assert_eq!(
        app.post("/callbacks/room_create", create).await.1["status"],
        "stored"
    );
    let killed = kill_every_idle_connection(&app).await;
    assert!(killed >= 2, "the service held {killed} connections");

    let close = json_body(&signed(fixture("room_close.json")));
    let (status, body) = app.post("/callbacks/room_close", close).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &"stored".into()),
        "{body}"
    );
    let (status, page) = app.get("/api/v1/rooms/closed").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);

    // The store's own read of every row (the suite's checks) too: once so
    // that its pool holds an idle connection, again after killing it.
    assert_eq!(app.store.app_snapshot(1).await.unwrap().events.len(), 2);
    assert!(kill_every_idle_connection(&app).await > 0);
    let snapshot = app.store.app_snapshot(1).await.expect("snapshot");
    assert_eq!(snapshot.events.len(), 2);
}

/// Every connection of the service killed while idle (a database
/// restart), before a rebuild and again before a purge: the operator's
/// commands run, not fail once per dead pooled connection
/// (`PgStore::begin`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_and_purge_after_connections_died_idle_still_run() {
    let app = crate::or_skip!(TestApp::spawn(Backend::Postgres).await);
    for (path, fixture_name) in [
        ("/callbacks/room_create", "room_create.json"),
        ("/callbacks/room_close", "room_close.json"),
    ] {
        let body = json_body(&signed(fixture(fixture_name)));
        assert_eq!(app.post(path, body).await.1["status"], "stored");
    }
    assert!(kill_every_idle_connection(&app).await > 0);
    let report = app
        .store
        .rebuild(&reassess, &|_| {})
        .await
        .expect("rebuild");
    assert_eq!(report.outcomes_changed, 0);

    assert!(kill_every_idle_connection(&app).await > 0);
    let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
    let purged =
        zego_room_tracker::retention::purge(app.store.as_ref(), tomorrow, true, 100, |_| {})
            .await
            .expect("purge");
    assert_eq!((purged.deliveries, purged.sessions), (2, 1));
}

/// A migrated store on `db` whose connections all go through a `Proxy`
/// the test can cut or silence.
/// Test options with a DATABASE_TIMEOUT_MS of one second: short, for a
/// short test; not so short that a busy machine's first write, or a wait
/// a test watches for, outlasts it.
fn one_second_timeout() -> store::ConnectOptions {
    store::ConnectOptions {
        timeout: Duration::from_millis(1000),
        ..test_connect_options()
    }
}

async fn store_behind_proxy(
    db: &TestDb,
    options: &zego_room_tracker::store::ConnectOptions,
) -> (Proxy, std::sync::Arc<dyn zego_room_tracker::store::Store>) {
    let server = db.pg_server.clone().expect("postgres server");
    let proxy = Proxy::start(server.clone()).await;
    let via_proxy = db.url.replace(&server, &proxy.addr.to_string());
    let store = store::connect(&via_proxy, options).await.unwrap();
    store.migrate().await.unwrap();
    (proxy, store)
}

/// Terminates every connection of the service's database, after a read so
/// that its pool holds an idle one to lose; how many it terminated.
async fn kill_every_idle_connection(app: &TestApp) -> usize {
    assert_eq!(app.get("/api/v1/rooms/closed").await.0, StatusCode::OK);
    let mut admin = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    killed.len()
}

/// `purge --sessions` on PostgreSQL while late closes and logouts of the
/// very sessions it deletes arrive (closes of one hour, so the purge and
/// the callbacks meet at the rollup rows as well as the session rows):
/// every callback is answered 2xx and the purge succeeds. A deadlock would
/// outlast the tests' 1.5 s statement timeout and answer 503. No event or
/// presence row outlives its session row: a logout that does not move its
/// session row does not lock it, and without the session locks
/// (`store::advisory_locks`) it could be stored while the purge deleted its
/// session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_sessions_while_their_late_callbacks_arrive_neither_deadlocks_nor_strands_rows() {
    use futures::future::join_all;
    const SESSIONS: u64 = 60;
    let app = crate::or_skip!(TestApp::spawn(Backend::Postgres).await);
    let sessions = 1..=SESSIONS;
    let mut early = Vec::new();
    for n in sessions.clone() {
        early.push(create(n, T0 + n as i64));
        early.push(close(n, T0 + 1_000 + n as i64, 1));
        early.push(login(n, "u", "s", T0 + 10 + n as i64, 2));
    }
    ingest_all(app.store.as_ref(), 1, &early).await;

    let late = sessions.flat_map(|n| {
        // Retries of the stored close, and the missing logout.
        [
            close(n, T0 + 1_000 + n as i64, 1),
            logout(n, "u", "s", T0 + 2_000 + n as i64, Some(T0 + 10 + n as i64)),
        ]
    });
    let sends = late.map(|(kind, mut fields)| {
        fields.insert("appid".into(), serde_json::json!(1));
        let app = &app;
        async move {
            let path = format!("/callbacks/{}", kind.as_str());
            let (status, answer) = app.post(&path, json_body(&signed(fields))).await;
            (status.is_success(), answer)
        }
    });
    let cutoff = chrono::DateTime::from_timestamp_millis(T0 + 86_400_000).unwrap();
    let purge = zego_room_tracker::retention::purge(app.store.as_ref(), cutoff, true, 7, |_| {});
    let (answers, purged) = tokio::join!(join_all(sends), purge);
    let purged = purged.expect("purge").sessions;
    let failed: Vec<_> = answers.iter().filter(|(ok, _)| !ok).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(purged >= 1, "the purge deleted nothing");

    let snapshot = app.store.app_snapshot(1).await.unwrap();
    let sessions: std::collections::BTreeSet<&str> = snapshot
        .sessions
        .iter()
        .map(|s| s.room_session_id.as_str())
        .collect();
    let orphan_events: Vec<_> = snapshot
        .events
        .iter()
        .filter(|e| !sessions.contains(e.room_session_id.as_str()))
        .map(|e| (&e.event, &e.room_session_id))
        .collect();
    let orphan_intervals: Vec<_> = snapshot
        .intervals
        .iter()
        .filter(|i| !sessions.contains(i.room_session_id.as_str()))
        .map(|i| &i.room_session_id)
        .collect();
    assert!(
        orphan_events.is_empty() && orphan_intervals.is_empty(),
        "rows without a session: events {orphan_events:?}, intervals {orphan_intervals:?}"
    );
}

/// A callback whose session a purge holds (here: another connection holds
/// the session's exclusive lock, as `purge --sessions` does) waits at most
/// the timeout, is answered 503, and leaves nothing behind: the write
/// connection it failed on serves the next batches, and the retry is
/// stored once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_held_up_by_a_purge_is_503_and_its_retry_is_stored() {
    let app = crate::or_skip!(TestApp::spawn(Backend::Postgres).await);
    let post = |(kind, mut fields): Callback| {
        fields.insert("appid".into(), serde_json::json!(1));
        let app = &app;
        async move {
            let path = format!("/callbacks/{}", kind.as_str());
            app.post(&path, json_body(&signed(fields))).await
        }
    };
    // The session's key, computed here in SQL from its documented recipe
    // (`store/advisory_locks.rs`): appid, then the first 4 bytes of the
    // SHA-256 of the session id.
    let mut purge = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    purge
        .execute(
            "SELECT pg_advisory_lock(1, ('x' || encode(substring(sha256('7'::bytea) FROM 1 FOR 4), 'hex'))::bit(32)::int4)",
        )
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let (status, body) = post(close(7, T0 + 1_000, 1)).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            &"storage_unavailable".into()
        ),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a 503, not a hang"
    );
    // Other sessions are stored meanwhile, on every write connection.
    for n in 100..108 {
        let (status, body) = post(create(n, T0 + n as i64)).await;
        assert_eq!(
            (status, &body["status"]),
            (StatusCode::OK, &"stored".into())
        );
    }

    purge
        .execute("SELECT pg_advisory_unlock_all()")
        .await
        .unwrap();
    let (status, body) = post(close(7, T0 + 1_000, 1)).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &"stored".into())
    );
    let snapshot = app.store.app_snapshot(1).await.unwrap();
    assert_eq!((snapshot.sessions.len(), snapshot.events.len()), (9, 9));
}
