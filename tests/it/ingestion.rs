//! Callback ingestion, over HTTP, on both backends: every fixture in every
//! encoding, duplicates, conflicts, concurrency, and every rejection.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use zego_room_tracker::domain::EventKind;
use zego_room_tracker::retention;
use zego_room_tracker::zego::fields::DisplayDecoding;

use crate::support::callbacks::{T0, ingest_all, login, logout};
use crate::support::*;
use crate::{conformance, or_skip};

const FIXTURES: [(&str, EventKind); 8] = [
    ("room_create.json", EventKind::RoomCreate),
    ("room_close.json", EventKind::RoomClose),
    ("room_close.form", EventKind::RoomClose),
    ("room_login.json", EventKind::RoomLogin),
    ("room_login_current.json", EventKind::RoomLogin),
    ("room_logout.json", EventKind::RoomLogout),
    ("room_logout.form", EventKind::RoomLogout),
    ("room_logout_current.json", EventKind::RoomLogout),
];

async fn every_fixture_in_every_encoding_is_stored_then_duplicate(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    for (f, (file, kind)) in FIXTURES.into_iter().enumerate() {
        for (n, encoding) in ENCODINGS.into_iter().enumerate() {
            // A distinct appid per fixture and encoding keeps each first delivery new.
            let mut fields = fixture(file);
            fields.insert("appid".into(), json!(100 + 10 * f + n));
            let path = format!("/callbacks/{kind}");
            let (status, body) = app
                .post(&path, encode(&signed(fields.clone()), encoding))
                .await;
            assert_eq!(
                (status, &body),
                (StatusCode::OK, &json!({"status": "stored"})),
                "{file} {encoding:?}"
            );
            // A retry, re-signed with a new nonce, through the generic endpoint.
            let (status, body) = app
                .post("/callbacks", encode(&signed(fields), encoding))
                .await;
            assert_eq!(
                (status, &body),
                (StatusCode::OK, &json!({"status": "duplicate"})),
                "{file} {encoding:?}"
            );
        }
    }
    let archive = app.deliveries().await;
    assert_eq!(archive.len(), FIXTURES.len() * ENCODINGS.len() * 2);
    assert!(
        archive
            .iter()
            .all(|d| d.event_id.is_some() && d.reason.is_none())
    );
}

async fn json_and_form_of_one_callback_are_one_event(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    for (json_file, form_file, kind) in [
        ("room_close.json", "room_close.form", "room_close"),
        ("room_logout.json", "room_logout.form", "room_logout"),
    ] {
        let path = format!("/callbacks/{kind}");
        let first = app
            .post(&path, encode(&signed(fixture(json_file)), Encoding::Json))
            .await;
        let second = app
            .post(&path, encode(&signed(fixture(form_file)), Encoding::Form))
            .await;
        assert_eq!(
            (first.1["status"].as_str(), second.1["status"].as_str()),
            (Some("stored"), Some("duplicate"))
        );
    }
}

async fn u64_ids_round_trip_exactly(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    for id in [
        "18446744073709551615",
        "858012925204410400",
        "6085791336856668982",
    ] {
        let mut close = fixture("room_close.json");
        close.insert("room_session_id".into(), serde_json::from_str(id).unwrap());
        let mut login = fixture("room_login_current.json");
        login.insert("room_seq".into(), json!(id));
        assert_eq!(
            app.post("/callbacks/room_close", json_body(&signed(close)))
                .await
                .0,
            StatusCode::OK
        );
        assert_eq!(
            app.post("/callbacks/room_login", json_body(&signed(login)))
                .await
                .0,
            StatusCode::OK
        );
    }
    let snapshot = app.store.app_snapshot(1).await.unwrap();
    let ids: Vec<&str> = snapshot
        .sessions
        .iter()
        .map(|s| s.room_session_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "18446744073709551615",
            "6085791336856668982",
            "858012925204410400"
        ]
    );
    // The number (close) and the string (login) of one id meet in one session.
    assert!(snapshot.sessions.iter().all(|s| s.closed_at.is_some()));
}

async fn display_fields_are_decoded_and_identifiers_kept_as_sent(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let mut login = fixture("room_login_current.json");
    login.insert("user_nickname".into(), json!("%E5%BC%A0%E4%B8%89"));
    login.insert("room_name".into(), json!("room%23123"));
    login.insert("user_account".into(), json!("u%41+1"));
    assert_eq!(
        app.post("/callbacks/room_login", json_body(&signed(login)))
            .await
            .0,
        StatusCode::OK
    );
    let snapshot = app.store.app_snapshot(1).await.unwrap();
    let event = &snapshot.events[0];
    assert_eq!(event.user_nickname.as_deref(), Some("张三"));
    assert_eq!(event.room_name.as_deref(), Some("room#123"));
    assert_eq!(event.user_account.as_deref(), Some("u%41+1"));
}

/// DISPLAY_FIELD_DECODING=none keeps a JSON body's display fields as sent.
/// A copy with the text decoded reads differently, so it is a conflict (the
/// first stays); a `rebuild` under `percent` re-reads the history by that
/// setting, where the two read the same: one event, the copy a duplicate.
async fn display_fields_are_kept_as_sent_when_decoding_is_none(backend: Backend) {
    let app = or_skip!(TestApp::spawn_reading(backend, DisplayDecoding::AsSent).await);
    let mut login = fixture("room_login_current.json");
    login.insert("user_nickname".into(), json!("%E5%BC%A0+1"));
    login.insert("room_name".into(), json!("room%23123"));
    let mut decoded = login.clone();
    decoded.insert("user_nickname".into(), json!("张+1"));
    decoded.insert("room_name".into(), json!("room#123"));
    for (fields, status) in [(login, "stored"), (decoded, "conflict")] {
        assert_eq!(
            app.post("/callbacks/room_login", json_body(&signed(fields)))
                .await,
            (StatusCode::OK, json!({"status": status}))
        );
    }
    let shown = |snapshot: &zego_room_tracker::store::AppSnapshot| {
        let event = &snapshot.events[0];
        (event.user_nickname.clone(), event.room_name.clone())
    };
    let snapshot = app.store.app_snapshot(1).await.unwrap();
    assert_eq!(snapshot.events.len(), 1);
    assert_eq!(
        shown(&snapshot),
        (Some("%E5%BC%A0+1".into()), Some("room%23123".into()))
    );
    let report = app.store.rebuild(&reassess, &|_| {}).await.unwrap();
    assert_eq!((report.events.added, report.events.removed), (1, 1));
    assert_eq!(report.outcomes_changed, 1);
    let outcomes: Vec<String> = app
        .deliveries()
        .await
        .into_iter()
        .map(|d| d.outcome)
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| *o == "duplicate").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        shown(&app.store.app_snapshot(1).await.unwrap()),
        (Some("张+1".into()), Some("room#123".into()))
    );
}

/// One JSON callback sent as JSON and as JSON URL-encoded as a whole: with
/// `%E5%BC%A0` inside, the first reads `张` (a JSON string's percent-
/// encoding decoded), the second `%E5%BC%A0` (its one URL decoding was the
/// body's). They read differently, so the second is a conflict and the
/// first stays, in either order; they used to be duplicates, and whichever
/// came first decided the name stored.
async fn copies_whose_display_fields_read_differently_conflict(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    for (session, order) in [
        (71, [Encoding::Json, Encoding::UrlencodedJson]),
        (72, [Encoding::UrlencodedJson, Encoding::Json]),
    ] {
        let mut login = fixture("room_login_current.json");
        login.insert("room_seq".into(), json!(session.to_string()));
        login.insert("user_nickname".into(), json!("%E5%BC%A0"));
        let mut statuses = Vec::new();
        for encoding in order {
            let (status, body) = app
                .post(
                    "/callbacks/room_login",
                    encode(&signed(login.clone()), encoding),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            statuses.push(body["status"].clone());
        }
        assert_eq!(statuses, [json!("stored"), json!("conflict")], "{order:?}");
    }
    let snapshot = app.store.app_snapshot(1).await.unwrap();
    let nicknames: Vec<_> = snapshot
        .events
        .iter()
        .map(|e| e.user_nickname.clone())
        .collect();
    assert_eq!(nicknames, [Some("张".into()), Some("%E5%BC%A0".into())]);
}

/// An optional code sent as `""` (`user_role`, a logout's `reason` and
/// `login_time`) is read as absent: it used to be a 400 for the whole
/// event, which ZEGO retries and then drops (zego-callbacks.md §14: be
/// lenient with every numeric-ish field).
async fn empty_optional_codes_are_absent_not_invalid(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let mut login = fixture("room_login_current.json");
    login.insert("user_role".into(), json!(""));
    let mut logout = fixture("room_logout_current.json");
    for name in ["reason", "login_time", "user_role"] {
        logout.insert(name.into(), json!(""));
    }
    for (path, fields) in [
        ("/callbacks/room_login", login),
        ("/callbacks/room_logout", logout),
    ] {
        for encoding in [Encoding::Json, Encoding::Form] {
            let (status, body) = app
                .post(path, encode(&signed(fields.clone()), encoding))
                .await;
            assert_eq!(status, StatusCode::OK, "{path} {encoding:?}: {body}");
        }
    }
    let snapshot = app.store.app_snapshot(1).await.unwrap();
    let codes: Vec<_> = snapshot
        .events
        .iter()
        .map(|e| (e.event.as_str(), e.user_role, e.reason, e.login_at))
        .collect();
    assert_eq!(
        codes,
        [
            ("room_login", None, None, None),
            ("room_logout", None, None, None)
        ],
        "{snapshot:?}"
    );
}

/// User ids go into the text of PostgreSQL's BEGIN (as the hex of their
/// presence group's lock name): quotes, backslashes, separators and emoji
/// must come back as sent, and nothing of them may run as SQL.
async fn identifiers_that_look_like_sql_are_stored_as_sent(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let user = "o'brien'); DROP TABLE events; --";
    let sid = "s\\'1\u{1f}😀";
    ingest_all(
        app.store.as_ref(),
        1,
        &[
            login(7, user, sid, T0 + 10, 2),
            logout(7, user, sid, T0 + 20, Some(T0 + 10)),
        ],
    )
    .await;
    let snapshot = app.store.app_snapshot(1).await.unwrap();
    assert_eq!(snapshot.events.len(), 2);
    let interval = &snapshot.intervals[..];
    assert_eq!(interval.len(), 1, "{interval:?}");
    assert_eq!(
        (
            interval[0].user_account.as_str(),
            interval[0].session_id.as_str()
        ),
        (user, sid)
    );
}

async fn same_identity_with_other_content_is_a_conflict_and_the_first_stays(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let close = fixture("room_close.json");
    assert_eq!(
        app.post("/callbacks/room_close", json_body(&signed(close.clone())))
            .await
            .1["status"],
        "stored"
    );
    let mut changed = close;
    changed.insert("close_reason".into(), json!(3));
    let (status, body) = app
        .post("/callbacks/room_close", json_body(&signed(changed)))
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "conflict"}))
    );
    let snapshot = app.store.app_snapshot(1).await.unwrap();
    assert_eq!(snapshot.sessions[0].close_reason, Some(1));
    let last = app.deliveries().await.remove(0);
    assert_eq!(
        (last.outcome.as_str(), last.reason.as_deref()),
        ("conflict", Some("content_differs"))
    );
    assert!(last.event_id.is_some());
}

/// A conflicting login (same identity, another room id) keeps the first
/// copy in the session as in the events: the session stays in its room,
/// whether the copy comes in a later batch or in the same one. The copy's
/// smaller room id moved the session to a room it was never in.
async fn a_conflicting_login_does_not_move_its_session(backend: Backend) {
    use crate::support::callbacks::in_room;
    use zego_room_tracker::domain::Outcome;
    let app = or_skip!(TestApp::spawn(backend).await);
    let copy = |session: u64, room: &str| {
        let (kind, mut fields) = in_room(login(session, "u1", "s1", T0, 2), room);
        fields.insert("appid".into(), json!(1));
        assessed(&signed(fields), kind)
    };
    let store = app.store.as_ref();
    // In a later batch, and in the same batch.
    assert_eq!(
        store.record_deliveries(&[copy(1, "lobby")]).await.unwrap(),
        [Outcome::Stored]
    );
    assert_eq!(
        store.record_deliveries(&[copy(1, "AAA")]).await.unwrap(),
        [Outcome::Conflict]
    );
    assert_eq!(
        store
            .record_deliveries(&[copy(2, "lobby"), copy(2, "AAA")])
            .await
            .unwrap(),
        [Outcome::Stored, Outcome::Conflict]
    );
    let snapshot = app.store.app_snapshot(1).await.unwrap();
    let rooms: Vec<_> = snapshot
        .sessions
        .iter()
        .map(|s| s.room_id.as_str())
        .collect();
    assert_eq!(rooms, ["lobby", "lobby"]);
    let (status, history) = app.get("/api/v1/rooms/lobby/sessions").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["items"].as_array().unwrap().len(), 2, "{history}");
    assert_eq!(
        app.get("/api/v1/rooms/AAA/sessions").await.1["items"],
        json!([])
    );
}

async fn identical_concurrent_deliveries_store_one_event(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    concurrent_identical_deliveries(&app).await;
}

async fn without_group_commit_identical_concurrent_deliveries_store_one_event(backend: Backend) {
    let app = or_skip!(TestApp::spawn_unbatched(backend).await);
    concurrent_identical_deliveries(&app).await;
}

async fn concurrent_identical_deliveries(app: &TestApp) {
    // The very same body 32 times at once (same nonce: a network-level retry),
    // then the same event re-signed 32 times at once (ZEGO-level retries).
    let same = json_body(&signed(fixture("room_login_current.json")));
    let requests = (0..32).map(|_| app.post_as_zego("/callbacks/room_login", same.clone()));
    let first = join_all(requests).await;
    let resigned = (0..32).map(|_| {
        app.post_as_zego(
            "/callbacks/room_login",
            json_body(&signed(fixture("room_login_current.json"))),
        )
    });
    let second = join_all(resigned).await;
    let statuses: Vec<String> = first
        .iter()
        .chain(&second)
        .map(|(code, body)| format!("{code} {}", body["status"]))
        .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| *s == "200 OK \"stored\"")
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| *s == "200 OK \"duplicate\"")
            .count(),
        63,
        "{statuses:?}"
    );
    let snapshot = app.store.app_snapshot(1).await.unwrap();
    assert_eq!(
        (
            snapshot.events.len(),
            snapshot.sessions.len(),
            snapshot.intervals.len()
        ),
        (1, 1, 1)
    );
    assert_eq!(app.deliveries().await.len(), 64);
}

async fn forged_signature_is_401_and_archived(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let forged = sign_with(fixture("room_close.json"), "not-the-secret");
    let (status, body) = app.post("/callbacks/room_close", json_body(&forged)).await;
    assert_rejected(
        &app,
        (status, body),
        StatusCode::UNAUTHORIZED,
        "invalid_signature",
    )
    .await;
    let mut unsigned = signed(fixture("room_close.json"));
    unsigned.remove("nonce");
    let (status, body) = app
        .post("/callbacks/room_close", json_body(&unsigned))
        .await;
    assert_rejected(
        &app,
        (status, body),
        StatusCode::UNAUTHORIZED,
        "missing_signature",
    )
    .await;
    assert!(app.store.app_snapshot(1).await.unwrap().events.is_empty());
}

async fn stale_timestamp_is_401_and_archived(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let mut stale = fixture("room_close.json");
    let ts = (now_secs() - 301).to_string();
    stale.insert("timestamp".into(), json!(ts));
    stale.insert("nonce".into(), json!("1"));
    stale.insert(
        "signature".into(),
        json!(zego_room_tracker::zego::signature::sign(SECRET, &ts, "1")),
    );
    let response = app.post("/callbacks/room_close", json_body(&stale)).await;
    assert_rejected(&app, response, StatusCode::UNAUTHORIZED, "stale_timestamp").await;
}

async fn a_signature_reused_with_another_body_is_a_replay(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let original = signed(fixture("room_close.json"));
    assert_eq!(
        app.post("/callbacks/room_close", json_body(&original))
            .await
            .1["status"],
        "stored"
    );
    // Same timestamp, nonce and signature; another appid and room. The
    // signature's hex verifies in either case, so in upper case it is the
    // same triple too, not a fresh one (it used to be: another body stored).
    let signature = original["signature"].as_str().unwrap().to_owned();
    for spelling in [signature.clone(), signature.to_ascii_uppercase()] {
        let mut swapped = original.clone();
        swapped.insert("appid".into(), json!(2));
        swapped.insert("room_id".into(), json!("someone-elses-room"));
        swapped.insert("signature".into(), json!(spelling));
        assert_replay_refused(&app, &swapped).await;
        assert!(app.store.app_snapshot(2).await.unwrap().sessions.is_empty());
    }
    // The untouched body with the same triple is still just a duplicate.
    assert_eq!(
        app.post("/callbacks/room_close", json_body(&original))
            .await
            .1["status"],
        "duplicate"
    );
}

/// With the timestamp check off a signed triple never expires, so the
/// replay guard must keep its entry whatever the archive's retention: a
/// purge deletes deliveries, not guard entries (it used to delete both at
/// its cut-off, and the replay with another body was then stored), and so
/// does `serve`'s hourly upkeep.
async fn retention_keeps_the_replay_guard_when_timestamps_never_expire(backend: Backend) {
    let (store, db) = or_skip!(fresh_store(backend).await);
    let verify = zego_room_tracker::ingest::VerifyPolicy {
        timestamp_tolerance: None,
        ..policy()
    };
    let app = TestApp::with_store(store, db, verify, Vec::new()).await;
    let original = signed(fixture("room_close.json"));
    let response = app
        .post("/callbacks/room_close", json_body(&original))
        .await;
    assert_eq!(response.1["status"], "stored");
    let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
    let purged = retention::purge(app.store.as_ref(), tomorrow, false, 100, |_| {})
        .await
        .unwrap();
    assert_eq!(purged.deliveries, 1);
    let mut swapped = original.clone();
    swapped.insert("appid".into(), json!(2));
    assert_replay_refused(&app, &swapped).await;
    let hour = Some(std::time::Duration::from_secs(3600));
    let next_year = chrono::Utc::now() + chrono::Duration::days(365);
    let upkept = retention::upkeep(app.store.as_ref(), next_year, hour, None).await;
    assert_eq!(
        upkept,
        retention::Upkept {
            replay_guard: 0,
            deliveries: 1
        }
    );
    assert_replay_refused(&app, &swapped).await;
}

/// `serve`'s upkeep deletes a guard entry only once its triple can no
/// longer pass the timestamp check: first seen more than twice the
/// tolerance and a second ago (the check compares whole seconds). Until
/// then a replay with another body is refused; the archive is left alone
/// unless a retention is set, and then only what is older than it.
async fn upkeep_purges_a_guard_entry_only_past_twice_the_tolerance(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let tolerance = policy().timestamp_tolerance;
    let guarded_for = chrono::Duration::seconds(2 * 300 + 1);
    let ms = chrono::Duration::milliseconds(1);
    let upkeep = |now, keep| retention::upkeep(app.store.as_ref(), now, keep, tolerance);

    // Arrival times are whole milliseconds (`RawCallback::arrival_now`).
    let before = zego_room_tracker::ingest::RawCallback::arrival_now();
    let original = signed(fixture("room_close.json"));
    let response = app
        .post("/callbacks/room_close", json_body(&original))
        .await;
    assert_eq!(response.1["status"], "stored");
    let after = chrono::Utc::now();
    let mut swapped = original.clone();
    swapped.insert("appid".into(), json!(2));

    assert_eq!(upkeep(before + guarded_for, None).await, Default::default());
    assert_replay_refused(&app, &swapped).await;
    let upkept = upkeep(after + guarded_for + ms, None).await;
    assert_eq!(upkept.replay_guard, 1);
    assert_eq!(upkept.deliveries, 0);
    assert_eq!(app.deliveries().await.len(), 2);
    // The entry is gone, so the triple is free again: only a timestamp
    // still inside the window (as in this test) could reuse it.
    let response = app.post("/callbacks/room_close", json_body(&swapped)).await;
    assert_eq!(response.1["status"], "stored");

    let hour = Some(std::time::Duration::from_secs(3600));
    let last = chrono::Utc::now();
    let in_an_hour = chrono::Duration::hours(1);
    assert_eq!(upkeep(before + in_an_hour, hour).await.deliveries, 0);
    assert_eq!(upkeep(last + in_an_hour + ms, hour).await.deliveries, 3);
    assert!(app.deliveries().await.is_empty());
}

/// `fields`, a stored close's signed triple with another body, is a 401
/// `replayed_signature`, archived.
async fn assert_replay_refused(app: &TestApp, fields: &Map<String, Value>) {
    let response = app.post("/callbacks/room_close", json_body(fields)).await;
    assert_rejected(
        app,
        response,
        StatusCode::UNAUTHORIZED,
        "replayed_signature",
    )
    .await;
}

async fn malformed_bodies_are_400_and_archived(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    for bytes in [
        &b"{\"event\": "[..],
        b"",
        b"[1, 2]",
        b"not a callback",
        b"{\"a\":1,\"a\":2}",
        b"{\xff}",
        // NUL in the text the error quotes: PostgreSQL text cannot hold it,
        // so the archive row failed there (a 500, and its batch re-run one
        // by one) while SQLite archived it.
        b"x\0y",
        b"{\"a\\u0000\":1,\"a\\u0000\":2}",
    ] {
        let body = Encoded {
            bytes: bytes.to_vec(),
            content_type: "application/json",
        };
        let response = app.post("/callbacks/room_close", body).await;
        assert_rejected(&app, response, StatusCode::BAD_REQUEST, "malformed_body").await;
    }
}

async fn an_event_posted_to_another_events_path_is_400(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let login = || json_body(&signed(fixture("room_login.json")));
    // Another modelled event's path, and the path of an event we do not
    // model: each takes only its own event.
    for path in ["/callbacks/room_close", "/callbacks/room_nonsense"] {
        let response = app.post(path, login()).await;
        assert_rejected(&app, response, StatusCode::BAD_REQUEST, "event_mismatch").await;
    }
    // An `event` that is not text cannot match the path: it used to be
    // read as absent, and the path named the event.
    for (path, odd) in [
        ("/callbacks/room_close", json!(["room_login"])),
        ("/callbacks/room_close", json!({"event": "room_close"})),
        ("/callbacks/room_close", json!(true)),
        ("/callbacks/room_close", json!("room_close\u{0}")),
        ("/callbacks", json!(["room_close"])),
    ] {
        let mut close = fixture("room_close.json");
        close.insert("event".into(), odd.clone());
        let response = app.post(path, json_body(&signed(close))).await;
        assert_eq!(
            response.1["error"]["message"],
            "the field `event` must be a string without NUL characters",
            "{odd}"
        );
        assert_rejected(&app, response, StatusCode::BAD_REQUEST, "invalid_field").await;
    }
    // A path no ZEGO event could have is a 404, in the one error shape
    // also when its segment does not even decode to UTF-8.
    for path in ["/callbacks/Room-Close!", "/callbacks/%FF"] {
        let response = app.post(path, login()).await;
        assert_eq!(response.0, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(response.1["error"]["code"], "not_found", "{path}");
    }
}

async fn missing_and_invalid_fields_are_400_naming_the_field(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    for (file, kind, field) in [
        ("room_create.json", "room_create", "room_create_time"),
        ("room_close.json", "room_close", "close_reason"),
        ("room_close.json", "room_close", "room_session_id"),
        ("room_login_current.json", "room_login", "user_account"),
        ("room_logout_current.json", "room_logout", "logout_time"),
        ("room_logout_current.json", "room_logout", "appid"),
    ] {
        let mut fields = fixture(file);
        fields.remove(field);
        let response = app
            .post(&format!("/callbacks/{kind}"), json_body(&signed(fields)))
            .await;
        assert_rejected_naming(&app, response, "missing_field", field).await;
    }
    let mut bad = fixture("room_close.json");
    bad.insert("room_session_id".into(), json!(-5));
    let response = app
        .post("/callbacks/room_close", json_body(&signed(bad)))
        .await;
    assert_rejected(&app, response, StatusCode::BAD_REQUEST, "invalid_field").await;
}

/// A key field (or the signed nonce) over `MAX_KEY_BYTES` is a 400 on both
/// backends, archived; at the limit it is stored on both. (Over about 1,300
/// bytes PostgreSQL's identity index refused the row: a 500 on every retry,
/// where SQLite stored it.)
async fn key_fields_over_the_limit_are_400_on_both_backends(backend: Backend) {
    use zego_room_tracker::zego::fields::MAX_KEY_BYTES;

    let app = or_skip!(TestApp::spawn(backend).await);
    for field in ["user_account", "session_id", "room_id"] {
        for (len, stored) in [(MAX_KEY_BYTES, true), (3_000, false)] {
            let mut fields = fixture("room_login_current.json");
            fields.insert(field.into(), json!("u".repeat(len)));
            let response = app
                .post("/callbacks/room_login", json_body(&signed(fields)))
                .await;
            if stored {
                assert_eq!(response.1["status"], "stored", "{field}: {response:?}");
            } else {
                assert_rejected_naming(&app, response, "invalid_field", field).await;
            }
        }
    }
    let mut long_nonce = signed(fixture("room_close.json"));
    let nonce = "7".repeat(3_000);
    let timestamp = long_nonce["timestamp"].to_string().replace('"', "");
    long_nonce.insert("nonce".into(), json!(nonce));
    long_nonce.insert(
        "signature".into(),
        json!(zego_room_tracker::zego::signature::sign(
            SECRET, &timestamp, &nonce
        )),
    );
    let response = app
        .post("/callbacks/room_close", json_body(&long_nonce))
        .await;
    assert_rejected(&app, response, StatusCode::BAD_REQUEST, "invalid_field").await;
}

async fn oversize_bodies_are_413_and_the_exact_limit_passes(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let mut fields = signed(fixture("room_close.json"));
    fields.insert("pad".into(), json!(""));
    let base = json_body(&fields).bytes.len();
    fields.insert("pad".into(), json!("x".repeat(BODY_LIMIT - base)));
    let exact = json_body(&fields);
    assert_eq!(exact.bytes.len(), BODY_LIMIT);
    assert_eq!(
        app.post("/callbacks/room_close", exact.clone()).await.1["status"],
        "stored"
    );
    let mut over = exact;
    over.bytes.push(b' ');
    let (status, body) = app.post("/callbacks/room_close", over).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "body_too_large");
    // Refused before it is read, so not archived: only the exact one is.
    assert_eq!(app.deliveries().await.len(), 1);
}

async fn unmodelled_signed_events_are_ignored_and_archived(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let stream = json!({"event": "stream_create", "appid": "1", "room_id": "r", "stream_id": "s"});
    let fields = signed(stream.as_object().unwrap().clone());
    let (status, body) = app.post("/callbacks", json_body(&fields)).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "ignored"}))
    );
    let last = app.deliveries().await.remove(0);
    assert_eq!(
        (last.outcome.as_str(), last.event.as_deref()),
        ("ignored", Some("stream_create"))
    );
    // On a path of its own (a stream callback URL pointed at us), with or
    // without `event` in the body: archived and ignored, not a 404 that
    // nothing keeps while ZEGO retries it. Unsigned, a 401, archived.
    let close = json!({"appid": "1", "room_id": "r", "stream_id": "s"});
    let mut named = close.as_object().unwrap().clone();
    named.insert("event".into(), json!("stream_close"));
    for fields in [close.as_object().unwrap().clone(), named] {
        let (status, body) = app
            .post("/callbacks/stream_close", json_body(&signed(fields)))
            .await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({"status": "ignored"}))
        );
        let last = app.deliveries().await.remove(0);
        assert_eq!(
            (last.outcome.as_str(), last.endpoint.as_str()),
            ("ignored", "/callbacks/stream_close")
        );
    }
    let unsigned = json_body(close.as_object().unwrap());
    let response = app.post("/callbacks/stream_close", unsigned).await;
    assert_rejected(
        &app,
        response,
        StatusCode::UNAUTHORIZED,
        "missing_signature",
    )
    .await;
    // ZIM's `room_create` (In-app Chat: same event name, its own schema)
    // on either endpoint: ignored and archived, not a 400 ZEGO retries.
    let zim = json!({"event": "room_create", "appid": "1", "room_id": "chat-1",
                     "operator_account": "u1", "room_name": "Chat", "attributes": {}});
    for path in ["/callbacks", "/callbacks/room_create"] {
        let (status, body) = app
            .post(path, json_body(&signed(zim.as_object().unwrap().clone())))
            .await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({"status": "ignored"})),
            "{path}"
        );
        assert_eq!(app.deliveries().await.remove(0).outcome, "ignored");
    }
    assert!(app.store.app_snapshot(1).await.unwrap().sessions.is_empty());
}

async fn per_app_secrets_and_rotation(backend: Backend) {
    let (store, db) = or_skip!(fresh_store(backend).await);
    let mut verify = policy();
    let mut per_app = std::collections::HashMap::new();
    per_app.insert(7, vec![Secret::new("app7-old"), Secret::new("app7-new")]);
    verify.secrets = SecretBook::new(vec![Secret::new(SECRET), Secret::new("rotated")], per_app);
    let app = TestApp::with_store(store, db, verify, Vec::new()).await;
    let mut seven = fixture("room_close.json");
    seven.insert("appid".into(), json!(7));
    for (secret, expected) in [("app7-new", "stored"), ("app7-old", "duplicate")] {
        let response = app
            .post(
                "/callbacks/room_close",
                json_body(&sign_with(seven.clone(), secret)),
            )
            .await;
        assert_eq!(response.1["status"], expected);
    }
    // The shared secret does not sign for an appid that has its own.
    let response = app
        .post(
            "/callbacks/room_close",
            json_body(&sign_with(seven, SECRET)),
        )
        .await;
    assert_eq!(response.0, StatusCode::UNAUTHORIZED);
    let response = app
        .post(
            "/callbacks/room_close",
            json_body(&sign_with(fixture("room_close.json"), "rotated")),
        )
        .await;
    assert_eq!(response.1["status"], "stored");
}

async fn health_and_readiness_answer(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    assert_eq!(
        app.get("/healthz").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(
        app.get("/readyz").await,
        (StatusCode::OK, json!({"status": "ready"}))
    );
}

/// Asserts status and error code, and that the archive's newest row is this
/// rejection with the same code.
/// A 400 rejection with `code` whose message names `field`, archived.
async fn assert_rejected_naming(
    app: &TestApp,
    response: (StatusCode, Value),
    code: &str,
    field: &str,
) {
    let message = response.1["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(field), "{field}: {response:?}");
    assert_rejected(app, response, StatusCode::BAD_REQUEST, code).await;
}

async fn assert_rejected(
    app: &TestApp,
    (status, body): (StatusCode, Value),
    expected: StatusCode,
    code: &str,
) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let last = last_delivery(app.store.as_ref()).await;
    assert_eq!(
        (last.outcome.as_str(), last.reason.as_deref()),
        ("rejected", Some(code))
    );
    assert!(last.detail.is_some());
}

use zego_room_tracker::store::Backend;
use zego_room_tracker::zego::{Secret, SecretBook};

conformance!(
    every_fixture_in_every_encoding_is_stored_then_duplicate,
    json_and_form_of_one_callback_are_one_event,
    u64_ids_round_trip_exactly,
    display_fields_are_decoded_and_identifiers_kept_as_sent,
    display_fields_are_kept_as_sent_when_decoding_is_none,
    copies_whose_display_fields_read_differently_conflict,
    empty_optional_codes_are_absent_not_invalid,
    identifiers_that_look_like_sql_are_stored_as_sent,
    same_identity_with_other_content_is_a_conflict_and_the_first_stays,
    a_conflicting_login_does_not_move_its_session,
    identical_concurrent_deliveries_store_one_event,
    without_group_commit_identical_concurrent_deliveries_store_one_event,
    forged_signature_is_401_and_archived,
    stale_timestamp_is_401_and_archived,
    a_signature_reused_with_another_body_is_a_replay,
    retention_keeps_the_replay_guard_when_timestamps_never_expire,
    upkeep_purges_a_guard_entry_only_past_twice_the_tolerance,
    malformed_bodies_are_400_and_archived,
    an_event_posted_to_another_events_path_is_400,
    missing_and_invalid_fields_are_400_naming_the_field,
    key_fields_over_the_limit_are_400_on_both_backends,
    oversize_bodies_are_413_and_the_exact_limit_passes,
    unmodelled_signed_events_are_ignored_and_archived,
    per_app_secrets_and_rotation,
    health_and_readiness_answer,
);
