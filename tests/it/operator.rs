//! The operator's tools on both backends: reports on a known data set,
//! `send` against the real server, `import` twice, `purge` at a cut-off.

use std::time::Duration;

use serde_json::{Value, json};
use zego_room_tracker::ingest::{self, RawCallback};
use zego_room_tracker::reports::{REPORTS, Report, ReportParams, ReportTable};
use zego_room_tracker::retention;
use zego_room_tracker::sender::{Sender, load, request_file, traffic};
use zego_room_tracker::store::{Backend, Store};

use crate::support::callbacks::*;
use crate::support::*;
use crate::{conformance, or_skip};

/// Three sessions of room-1 and one of room-2, with known durations, users,
/// an admin, a lost create, a logout whose login never came, and a conflict.
async fn seed_known(store: &dyn Store) {
    let events = [
        create(1, T0),
        login(1, "alice", "a1", T0 + 1_000, 2),
        logout(1, "alice", "a1", T0 + 61_000, Some(T0 + 1_000)),
        login(1, "rec", "r1", T0 + 500, 4),
        logout(1, "rec", "r1", T0 + 90_000, Some(T0 + 500)),
        // The admin again, on another device without role 4: still an
        // admin of this session, as the API counts users.
        login(1, "rec", "r2", T0 + 91_000, 2),
        logout(1, "rec", "r2", T0 + 95_000, Some(T0 + 91_000)),
        close(1, T0 + 100_000, 1),
        create(2, T0 + 200_000),
        login(2, "bob", "b1", T0 + 201_000, 2),
        logout(2, "bob", "b1", T0 + 221_000, None),
        close(2, T0 + 400_000, 2),
        // Session 3: no create arrived; a logout without its login.
        logout(3, "carol", "c1", T0 + 500_000, None),
        in_room(create(4, T0 + 450_000), "room-2"),
    ];
    ingest_all(store, 1, &events).await;
    let (kind, mut changed) = close(2, T0 + 400_000, 3);
    changed.insert("appid".into(), json!(1));
    assert_eq!(
        ingest_direct(store, &signed(changed), kind).await.as_str(),
        "conflict"
    );
}

async fn run(store: &dyn Store, name: &str, params: &ReportParams) -> ReportTable {
    let report = Report::find(name).unwrap();
    store
        .run_report(&report.bindable_sql(), params)
        .await
        .unwrap()
}

fn column(table: &ReportTable, name: &str) -> Vec<Value> {
    let i = table
        .columns
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    table.rows.iter().map(|r| r[i].clone()).collect()
}

/// A report with no rows still names its columns (an empty CSV printed
/// `""`, no header), the same ones it has with rows.
async fn every_report_names_its_columns_when_it_has_no_rows(backend: Backend) {
    let (empty, _empty_db) = or_skip!(fresh_store(backend).await);
    let (seeded, _seeded_db) = or_skip!(fresh_store(backend).await);
    seed_known(seeded.as_ref()).await;
    for report in zego_room_tracker::reports::REPORTS {
        let none = run(empty.as_ref(), report.name, &ReportParams::default()).await;
        let some = run(seeded.as_ref(), report.name, &ReportParams::default()).await;
        assert!(none.rows.is_empty(), "{}", report.name);
        assert!(
            !some.rows.is_empty(),
            "{}: seed_known gives it rows",
            report.name
        );
        assert_eq!(none.columns, some.columns, "{}", report.name);
    }
}

async fn each_report_gives_known_rows(backend: Backend) {
    let (store, _db) = or_skip!(fresh_store(backend).await);
    seed_known(store.as_ref()).await;
    let all = ReportParams::default();
    let s = store.as_ref();

    let by_day = run(s, "close-reasons-by-day", &all).await;
    assert_eq!(
        column(&by_day, "day"),
        [json!("2023-11-14"), json!("2023-11-14")]
    );
    assert_eq!(
        column(&by_day, "close_reason_name"),
        [json!("heartbeat_timeout"), json!("last_user_disconnected")]
    );
    assert_eq!(column(&by_day, "closed"), [json!(1), json!(1)]);

    let longest = run(s, "longest-sessions", &all).await;
    assert_eq!(
        column(&longest, "room_session_id"),
        [json!("2"), json!("1")]
    );
    assert_eq!(
        column(&longest, "duration_ms"),
        [json!(200_000), json!(100_000)]
    );
    assert_eq!(
        column(&longest, "unique_users"),
        [json!(1), json!(1)],
        "the admin is left out"
    );
    // Times read alike on both backends: milliseconds and `Z`.
    for time in column(&longest, "created_at")
        .into_iter()
        .chain(column(&longest, "closed_at"))
    {
        let text = time.as_str().unwrap_or_default().to_owned();
        assert!(text.len() == 24 && text.ends_with(".000Z"), "{time}");
    }

    let busiest = run(s, "busiest-rooms", &all).await;
    assert_eq!(
        column(&busiest, "room_id"),
        [json!("room-1"), json!("room-2")]
    );
    assert_eq!(column(&busiest, "sessions"), [json!(3), json!(1)]);

    let open = run(s, "open-sessions", &all).await;
    assert_eq!(column(&open, "room_session_id"), [json!("4"), json!("3")]);

    let users = run(s, "top-users", &all).await;
    assert_eq!(
        column(&users, "user_account"),
        [json!("alice"), json!("bob")]
    );
    assert_eq!(column(&users, "total_ms"), [json!(60_000), json!(20_000)]);

    let missing = run(s, "missing-lifecycle-events", &all).await;
    assert_eq!(column(&missing, "room_session_id"), [json!("3")]);
    assert_eq!(column(&missing, "missing"), [json!("no create")]);

    let orphans = run(s, "logouts-without-login", &all).await;
    assert_eq!(column(&orphans, "user_account"), [json!("carol")]);

    let conflicts = run(s, "conflicts", &all).await;
    assert_eq!(column(&conflicts, "room_session_id"), [json!("2")]);

    // Parameters filter: only the first session closed before T0 + 150 s.
    let early = ReportParams {
        to: chrono::DateTime::from_timestamp_millis(T0 + 150_000),
        appid: Some(1),
        ..Default::default()
    };
    assert_eq!(
        column(&run(s, "longest-sessions", &early).await, "room_session_id"),
        [json!("1")]
    );
    let other_app = ReportParams {
        appid: Some(2),
        ..Default::default()
    };
    for report in REPORTS {
        assert!(
            run(s, report.name, &other_app).await.rows.is_empty(),
            "{}",
            report.name
        );
    }
}

async fn send_stores_what_it_sent(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let sender = Sender::new(&format!("http://{}", app.addr), SECRET).unwrap();
    for callback in traffic::fixtures() {
        assert!(sender.send(&callback).await.succeeded());
    }
    // Eight deliveries, two of them the FORM twins of JSON ones: six events.
    assert_eq!(app.store.app_snapshot(1).await.unwrap().events.len(), 6);
    let plan = traffic::Plan {
        appid: 9,
        users: 2,
        shuffle: true,
        duplicates: 0.5,
        run_id: "t".into(),
    };
    for n in 0..5 {
        for callback in traffic::session(&plan, n, &mut rand::rng()) {
            let sent = sender.send(&callback).await;
            assert!(
                matches!(sent.outcome().as_str(), "stored" | "duplicate"),
                "{sent:?}"
            );
        }
    }
    let snapshot = app.store.app_snapshot(9).await.unwrap();
    assert_eq!(
        (
            snapshot.events.len(),
            snapshot.sessions.len(),
            snapshot.intervals.len()
        ),
        (30, 5, 10)
    );
    assert!(
        snapshot
            .sessions
            .iter()
            .all(|s| s.closed_at.is_some() && s.created_at.is_some())
    );
}

/// `send --write-requests` then `send --replay`: every line of the file,
/// posted as written (a few at once), is a callback the server stores.
async fn a_written_request_file_replays_as_new_callbacks(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let mut sender = Sender::new(&format!("http://{}", app.addr), SECRET).unwrap();
    let plan = traffic::Plan {
        appid: 11,
        users: 3,
        shuffle: false,
        duplicates: 0.0,
        run_id: "file".into(),
    };
    let mut file = Vec::new();
    for encoding in [Encoding::Json, Encoding::Form] {
        sender.encoding = encoding;
        let mut plan = plan.clone();
        plan.run_id = format!("file-{encoding:?}");
        request_file::write(&mut file, &sender, &plan, 4, 4).unwrap();
    }
    let file = String::from_utf8(file).unwrap();
    let requests: Vec<request_file::Request> = file
        .lines()
        .map(|line| request_file::parse_line(line).unwrap())
        .collect();
    let done = std::sync::atomic::AtomicU64::new(0);
    let sent = load::replay(&sender, &requests, 4, &done).await;
    assert_eq!(sent.len(), 2 * 4 * (2 + 2 * 3));
    for record in &sent {
        assert_eq!(record.sent.outcome(), "stored", "{:?}", record.sent);
    }
    let snapshot = app.store.app_snapshot(11).await.unwrap();
    assert_eq!(
        (
            snapshot.events.len(),
            snapshot.sessions.len(),
            snapshot.intervals.len()
        ),
        (64, 8, 24)
    );
    assert!(snapshot.sessions.iter().all(|s| s.closed_at.is_some()));
    assert!(snapshot.intervals.iter().all(|i| i.duration_ms.is_some()));
}

/// ZEGO's retry schedule (shortened) carries a callback over an outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_retries_until_a_temporarily_failing_server_succeeds() {
    use sqlx::{Connection, Executor, SqliteConnection};
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let mut blocker = SqliteConnection::connect(&app.db.url).await.unwrap();
    blocker.execute("BEGIN EXCLUSIVE").await.unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        blocker.execute("ROLLBACK").await.unwrap();
    });
    let mut sender = Sender::new(&format!("http://{}", app.addr), SECRET).unwrap();
    sender.retry_schedule = vec![Duration::from_millis(100); 10];
    let sent = sender.send(&traffic::fixtures()[0]).await;
    release.await.unwrap();
    assert!(sent.succeeded(), "{sent:?}");
    assert!(
        sent.attempts >= 2,
        "the first attempt met the locked database: {sent:?}"
    );
    assert_eq!(app.store.app_snapshot(1).await.unwrap().sessions.len(), 1);
}

async fn import_twice_stores_once(backend: Backend) {
    let (store, db) = or_skip!(fresh_store(backend).await);
    let dir = tempfile::tempdir().unwrap();
    let plan = traffic::Plan {
        appid: 5,
        users: 2,
        shuffle: true,
        duplicates: 0.0,
        run_id: "imp".into(),
    };
    let mut lines: Vec<String> = (0..4)
        .flat_map(|n| traffic::session(&plan, n, &mut rand::rng()))
        .map(|c| serde_json::Value::Object(c.fields).to_string())
        .collect();
    // One bad line is rejected alone, named on stderr; the others are stored.
    lines.insert(3, "not json".into());
    std::fs::write(dir.path().join("a.jsonl"), lines.join("\n")).unwrap();
    std::fs::write(
        dir.path().join("b.form"),
        std::fs::read(format!(
            "{}/fixtures/room_close.form",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("c.json"), "{\"event\": \"room_close\"}").unwrap();
    let import = || {
        let out = zego_room_tracker_on(&db.url)
            .args(["import", dir.path().to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains("a.jsonl:4: rejected (malformed_body)")
                && stderr.contains("c.json:1: rejected (missing_field)"),
            "{stderr}"
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        import().trim(),
        "imported 27 callbacks from 3 files: stored 25, duplicate 0, conflict 0, ignored 0, rejected 2"
    );
    let first = store.app_snapshot(5).await.unwrap();
    assert_eq!((first.events.len(), first.sessions.len()), (24, 4));
    // Arrival times in whole milliseconds, as for HTTP deliveries: SQLite
    // kept every nanosecond digit, PostgreSQL microseconds.
    let archived = store
        .list_deliveries(&zego_room_tracker::store::DeliveryFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(archived.len(), 27);
    assert!(
        archived
            .iter()
            .all(|d| d.received_at.timestamp_subsec_nanos() % 1_000_000 == 0),
        "{:?}",
        archived.iter().map(|d| d.received_at).collect::<Vec<_>>()
    );
    assert_eq!(
        import().trim(),
        "imported 27 callbacks from 3 files: stored 0, duplicate 25, conflict 0, ignored 0, rejected 2"
    );
    assert_eq!(store.app_snapshot(5).await.unwrap(), first);
}

/// `import` and `rebuild` read display fields by DISPLAY_FIELD_DECODING,
/// like `serve`: `rebuild` under another setting re-reads the history by it.
async fn import_and_rebuild_read_display_fields_by_the_setting(backend: Backend) {
    let (store, db) = or_skip!(fresh_store(backend).await);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("login.json");
    let mut body = fixture("room_login_current.json");
    body.insert("user_nickname".into(), json!("50%25+off"));
    std::fs::write(&file, Value::Object(body).to_string()).unwrap();
    let run = |args: &[&str], decoding: &str| {
        let out = zego_room_tracker_on(&db.url)
            .args(args)
            .env("DISPLAY_FIELD_DECODING", decoding)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        String::from_utf8(out.stdout).unwrap()
    };
    let nickname = || async {
        let snapshot = store.app_snapshot(1).await.unwrap();
        snapshot.events[0].user_nickname.clone().unwrap()
    };
    let import = run(&["import", file.to_str().unwrap()], "none");
    assert!(import.contains("stored 1,"), "{import}");
    assert_eq!(nickname().await, "50%25+off");
    let rebuilt = run(&["rebuild"], "percent");
    assert!(
        rebuilt.contains("0 outcomes changed; events +1 -1"),
        "{rebuilt}"
    );
    assert_eq!(nickname().await, "50%+off");
    run(&["rebuild"], "none");
    assert_eq!(nickname().await, "50%25+off");
}

/// `report` only reads: it neither creates a database (run in the wrong
/// directory, it made an empty `./data/…` file) nor migrates one (it
/// applied every migration, which can take minutes on a large database);
/// each refusal says what to run.
async fn report_neither_creates_nor_migrates_a_database(backend: Backend) {
    let db = or_skip!(TestDb::new(backend).await);
    let run = |args: &[&str]| zego_room_tracker_on(&db.url).args(args).output().unwrap();
    let refused = run(&["report", "top-users"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    let expected = match backend {
        Backend::Sqlite => "there is no database file there",
        Backend::Postgres => {
            "lacks 6 of this version's migrations: run `zego-room-tracker migrate`"
        }
    };
    assert!(stderr.contains(expected), "{stderr}");
    if backend == Backend::Sqlite {
        let file = db.url.strip_prefix("sqlite://").unwrap();
        assert!(!std::path::Path::new(file).exists(), "{file} was created");
    }
    if backend == Backend::Postgres {
        // Another error is itself, not "run migrate" (which cannot fix it).
        let gone = format!("{}_gone", db.url);
        let out = zego_room_tracker_on(&gone)
            .args(["report", "top-users"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("does not exist") && !stderr.contains("lacks"),
            "{stderr}"
        );
    }
    assert!(run(&["migrate"]).status.success());
    let answered = run(&["report", "top-users"]);
    assert!(
        answered.status.success(),
        "{}",
        String::from_utf8_lossy(&answered.stderr)
    );
}

async fn purge_removes_exactly_what_is_older_than_the_cutoff(backend: Backend) {
    let (store, _db) = or_skip!(fresh_store(backend).await);
    let day = 86_400_000;
    let old = T0;
    let new = T0 + 100 * day;
    // Old: two sessions closed for one reason in one hour (the rollup row
    // loses both) and an open one; new: a closed one, and an old session
    // that is still active (a login after the cut-off).
    let events = [
        create(1, old),
        close(1, old + 1_000, 1),
        create(5, old + 10),
        close(5, old + 2_000, 1),
        create(2, old + 5),
        create(3, new),
        close(3, new + 1_000, 2),
        in_room(create(4, old), "room-4"),
        in_room(login(4, "late", "l", new, 2), "room-4"),
    ];
    for (kind, fields) in &events {
        let mut fields = fields.clone();
        fields.insert("appid".into(), json!(1));
        // Each delivery "received" when its event happened.
        let at = ["room_create_time", "room_close_time", "login_time"]
            .iter()
            .find_map(|f| fields.get(*f))
            .and_then(Value::as_str)
            .unwrap()
            .parse::<i64>()
            .unwrap();
        let raw = RawCallback {
            received_at: chrono::DateTime::from_timestamp_millis(at).unwrap(),
            remote_addr: None,
            endpoint: format!("/callbacks/{kind}"),
            content_type: None,
            body: serde_json::to_vec(&fields).unwrap().into(),
        };
        let outcome = store
            .record_delivery(&ingest::assess_unsigned(
                Default::default(),
                ingest::PathEvent::Any,
                raw,
            ))
            .await
            .unwrap();
        assert_eq!(outcome.as_str(), "stored");
    }
    let cutoff = chrono::DateTime::from_timestamp_millis(T0 + 50 * day).unwrap();
    let purged = retention::purge(store.as_ref(), cutoff, true, 2, |_| {})
        .await
        .unwrap();
    assert_eq!((purged.deliveries, purged.sessions), (6, 3));
    let left: Vec<String> = deliveries(store.as_ref())
        .await
        .iter()
        .map(|d| d.room_session_id.clone().unwrap())
        .collect();
    assert_eq!(left, ["4", "3", "3"]);
    let snapshot = store.app_snapshot(1).await.unwrap();
    let sessions: Vec<&str> = snapshot
        .sessions
        .iter()
        .map(|s| s.room_session_id.as_str())
        .collect();
    assert_eq!(sessions, ["3", "4"]);
    assert_eq!(snapshot.events.len(), 4);
    // The rollup lost the purged closes and still equals a recount.
    use zego_room_tracker::store::query::{Bucket, StatsQuery};
    let query = |from| StatsQuery {
        appid: None,
        room_id: None,
        from,
        to: None,
        bucket: Bucket::None,
    };
    let rollup = store.close_reason_counts(&query(None)).await.unwrap();
    let recount = store
        .close_reason_counts(&query(chrono::DateTime::from_timestamp_millis(1)))
        .await
        .unwrap();
    assert_eq!(rollup, recount);
    assert_eq!(rollup.iter().map(|c| c.count).sum::<i64>(), 1);
    // Nothing older is left: a second purge deletes nothing.
    assert_eq!(
        retention::purge(store.as_ref(), cutoff, true, 2, |_| {})
            .await
            .unwrap(),
        Default::default()
    );
}

/// Deliveries of every kind: scrambled, retried, conflicting, rejected, ignored.
async fn seed_archive(app: &TestApp) {
    let (store, path) = (app.store.as_ref(), "/callbacks");
    seed_known(store).await;
    let scenario = [
        logout(8, "u", "s", T0 + 5_000, None),
        close(8, T0 + 9_000, 0),
        login(8, "u", "s", T0 + 1_000, 2),
        create(8, T0),
    ];
    ingest_all(store, 1, &scenario).await;
    ingest_all(store, 1, &scenario[..2]).await;
    app.post(
        path,
        json_body(&sign_with(fixture("room_close.json"), "forged")),
    )
    .await;
    let stream = json!({"event": "stream_create", "appid": 1, "room_id": "r"});
    app.post(
        path,
        json_body(&signed(stream.as_object().unwrap().clone())),
    )
    .await;
    // No `event`: the path names it, percent-encoded. Archived as it came,
    // so `rebuild` must decode it as the router did (it used to reject it).
    let mut unnamed = fixture("room_create.json");
    unnamed.remove("event");
    unnamed.insert("room_session_id".into(), json!("9"));
    let answer = app
        .post("/callbacks/room%5Fcreate", json_body(&signed(unnamed)))
        .await;
    assert_eq!(answer.1["status"], "stored");
}

async fn rebuild_on_an_untouched_database_changes_nothing(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    seed_archive(&app).await;
    let before = app.store.app_snapshot(1).await.unwrap();
    let archive = app.deliveries().await;
    let out = zego_room_tracker_on(&app.db.url)
        .arg("rebuild")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed = archive.iter().filter(|d| d.outcome != "rejected").count();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "replayed {replayed} deliveries; 0 outcomes changed; events +0 -0, sessions +0 -0, \
             presence intervals +0 -0, close counts +0 -0 (nothing changed)"
        )
    );
    assert_eq!(app.store.app_snapshot(1).await.unwrap(), before);
    let outcomes = |d: &[zego_room_tracker::store::DeliveryRecord]| {
        d.iter()
            .map(|d| (d.id, d.outcome.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(outcomes(&app.deliveries().await), outcomes(&archive));
}

async fn rebuild_restores_derived_state_from_the_archive(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    seed_archive(&app).await;
    let before = app.store.app_snapshot(1).await.unwrap();
    // Lose every session, event and presence row; the archive stays.
    let future = chrono::DateTime::from_timestamp_millis(T0 + 1_000 * 86_400_000).unwrap();
    while app.store.purge_sessions(future, 100).await.unwrap() > 0 {}
    assert!(app.store.app_snapshot(1).await.unwrap().sessions.is_empty());
    let report = app.store.rebuild(&reassess, &|_| {}).await.unwrap();
    assert_eq!(
        (report.sessions.added, report.sessions.removed),
        (before.sessions.len() as i64, 0)
    );
    assert_eq!(report.events.added, before.events.len() as i64);
    assert_eq!(report.outcomes_changed, 0);
    assert_eq!(app.store.app_snapshot(1).await.unwrap(), before);
}

/// After `ARCHIVE_RETENTION` (here `purge --older-than`, deliveries only)
/// the archive no longer holds what made the stored events: a rebuild
/// refuses, naming why, and changes nothing (it used to replay what was
/// left and so delete the older sessions and their close counts).
async fn rebuild_refuses_when_the_archive_no_longer_holds_every_event(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    seed_archive(&app).await;
    let before = app.store.app_snapshot(1).await.unwrap();
    let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
    let purged =
        zego_room_tracker::retention::purge(app.store.as_ref(), tomorrow, false, 100, |_| {})
            .await
            .unwrap();
    assert!(purged.deliveries > 0);
    let refused = app
        .store
        .rebuild(&reassess, &|_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("have no archived delivery") && refused.contains("ARCHIVE_RETENTION"),
        "{refused}"
    );
    assert_eq!(app.store.app_snapshot(1).await.unwrap(), before);
    // Writes go on as before: the refusal rolled its transaction back.
    let (status, _) = app
        .post(
            "/callbacks/room_create",
            json_body(&signed(fixture("room_create.json"))),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
}

/// The delivery that stored a close is purged, a later conflicting copy of
/// it (same identity, another close reason) survives: the rebuild refuses
/// too (it used to replay the copy as the first, and change the event, the
/// session's close reason and the close counts).
async fn rebuild_refuses_when_only_a_later_copy_of_an_event_is_archived(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let first = fixture("room_close.json");
    let (_, answer) = app
        .post("/callbacks/room_close", json_body(&signed(first.clone())))
        .await;
    assert_eq!(answer["status"], "stored");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut other = first;
    other.insert("close_reason".into(), json!(3));
    let (_, answer) = app
        .post("/callbacks/room_close", json_body(&signed(other)))
        .await;
    assert_eq!(answer["status"], "conflict");
    let before = app.store.app_snapshot(1).await.unwrap();
    let purged =
        zego_room_tracker::retention::purge(app.store.as_ref(), between, false, 100, |_| {})
            .await
            .unwrap();
    assert_eq!(purged.deliveries, 1);
    let refused = app.store.rebuild(&reassess, &|_| {}).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("ARCHIVE_RETENTION")),
        "{refused:?}"
    );
    assert_eq!(app.store.app_snapshot(1).await.unwrap(), before);
}

/// `seed --check` (which `bench-queries.sh` runs to reuse a database) tells
/// a database seeded with these flags from one seeded with any other flag.
async fn seed_check_tells_which_flags_seeded_a_database(backend: Backend) {
    use zego_room_tracker::seed::{self, Params, Plan, SeededCounts};
    let (store, db) = or_skip!(fresh_store(backend).await);
    store.close().await;
    let params = Params {
        sessions: 400,
        users_per_session: 3,
        seed: 7,
        big_session_users: 25,
    };
    let check = async |plan: &Plan| -> SeededCounts {
        match backend {
            Backend::Postgres => seed::check_postgres(&db.url, plan).await,
            Backend::Sqlite => seed::check_sqlite(&db.url, plan).await,
        }
        .unwrap()
    };
    let plan = Plan::new(params);
    let seeded = match backend {
        Backend::Postgres => seed::seed_postgres(&db.url, &plan, false).await,
        Backend::Sqlite => seed::seed_sqlite(&db.url, &plan, false).await,
    }
    .unwrap();
    assert_eq!(seeded.intervals, plan.expected_intervals());
    assert_eq!(check(&plan).await.mismatch(&plan), None);

    let others = [
        (
            Params {
                sessions: 401,
                ..params
            },
            "--sessions",
        ),
        (Params { seed: 8, ..params }, "--seed"),
        (
            Params {
                users_per_session: 4,
                ..params
            },
            "--users-per-session",
        ),
        (
            Params {
                big_session_users: 26,
                ..params
            },
            "--big-session-users",
        ),
    ];
    for (other, flag) in others {
        let plan = Plan::new(other);
        let why = check(&plan).await.mismatch(&plan);
        assert!(
            why.as_ref().is_some_and(|w| w.contains(flag)),
            "{flag}: {why:?}"
        );
    }
}

conformance!(
    rebuild_refuses_when_only_a_later_copy_of_an_event_is_archived,
    rebuild_refuses_when_the_archive_no_longer_holds_every_event,
    rebuild_on_an_untouched_database_changes_nothing,
    rebuild_restores_derived_state_from_the_archive,
    each_report_gives_known_rows,
    every_report_names_its_columns_when_it_has_no_rows,
    send_stores_what_it_sent,
    a_written_request_file_replays_as_new_callbacks,
    import_twice_stores_once,
    report_neither_creates_nor_migrates_a_database,
    import_and_rebuild_read_display_fields_by_the_setting,
    purge_removes_exactly_what_is_older_than_the_cutoff,
    seed_check_tells_which_flags_seeded_a_database,
);
