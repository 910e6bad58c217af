//! The query API over HTTP, on both backends: every endpoint, filter,
//! pagination edge, CSV, auth, and the 400/404/409 cases.

use reqwest::StatusCode;
use serde_json::{Value, json};
use zego_room_tracker::store::Backend;
use zego_room_tracker::zego::Secret;

use crate::support::callbacks::*;
use crate::support::*;
use crate::{conformance, or_skip};

/// Closed sessions 1..=n of room `room-<i % 3>`, closed at T0 + i minutes
/// with reason i % 4, each created a minute earlier.
async fn seed_closed(app: &TestApp, appid: u32, n: u64) {
    let mut events = Vec::new();
    for i in 1..=n {
        let at = T0 + i as i64 * 60_000;
        let room = format!("room-{}", i % 3);
        events.push(in_room(create(i, at - 60_000), &room));
        events.push(in_room(close(i, at, (i % 4) as i64), &room));
    }
    ingest_all(app.store.as_ref(), appid, &events).await;
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["room_session_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The ids the `open-sessions` report lists (users' SQL over the
/// `session_summary` view).
async fn open_sessions_report(app: &TestApp) -> Vec<String> {
    let report = zego_room_tracker::reports::Report::find("open-sessions").unwrap();
    let table = app
        .store
        .run_report(&report.bindable_sql(), &Default::default())
        .await
        .unwrap();
    let id = table.columns.iter().position(|c| c == "room_session_id");
    table
        .rows
        .iter()
        .map(|r| r[id.unwrap()].as_str().unwrap().to_owned())
        .collect()
}

/// A page's sessions as (room_session_id, state).
fn states(page: &Value) -> Vec<(&str, &str)> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["room_session_id"].as_str().unwrap(),
                i["state"].as_str().unwrap(),
            )
        })
        .collect()
}

async fn closed_rooms_are_newest_first_with_every_field(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    seed_closed(&app, 1, 3).await;
    ingest_all(
        app.store.as_ref(),
        1,
        &[
            login(3, "alice", "s", T0 + 130_000, 2),
            login(3, "bot", "s", T0 + 130_000, 4),
        ],
    )
    .await;
    let (status, page) = app.get("/api/v1/rooms/closed").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&page), ["3", "2", "1"]);
    assert_eq!(page["next_cursor"], Value::Null);
    assert_eq!(
        page["items"][0],
        json!({
            "appid": 1, "room_id": "room-0", "room_session_id": "3", "state": "closed",
            "started_at": "2023-11-14T22:15:20.000Z", "created_at": "2023-11-14T22:15:20.000Z",
            "closed_at": "2023-11-14T22:16:20.000Z", "close_reason": 3,
            "close_reason_name": "last_user_kicked_out", "duration_ms": 60000, "creator": "u0",
            "unique_users": 1
        })
    );
    let (_, with_admins) = app
        .get("/api/v1/rooms/closed?include_admins=true&limit=1")
        .await;
    assert_eq!(with_admins["items"][0]["unique_users"], 2);
}

async fn closed_rooms_filter_by_app_room_reason_and_half_open_time(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    seed_closed(&app, 1, 8).await;
    seed_closed(&app, 2, 2).await;
    let get = |q: &'static str| {
        let app = &app;
        async move { ids(&app.get(&format!("/api/v1/rooms/closed?{q}")).await.1) }
    };
    assert_eq!(get("appid=2").await, ["2", "1"]);
    assert_eq!(get("appid=1&room_id=room-1").await, ["7", "4", "1"]);
    assert_eq!(get("appid=1&close_reason=1,2").await, ["6", "5", "2", "1"]);
    // Closes at T0+2min (inclusive) up to T0+4min (exclusive), as ms and RFC 3339.
    let from = T0 + 120_000;
    assert_eq!(
        get_owned(&app, &format!("appid=1&from={from}&to={}", from + 120_000)).await,
        ["3", "2"]
    );
    assert_eq!(
        get("appid=1&from=2023-11-14T22:16:20Z&to=2023-11-14T22:18:20.000Z").await,
        ["4", "3"]
    );
}

async fn get_owned(app: &TestApp, query: &str) -> Vec<String> {
    ids(&app.get(&format!("/api/v1/rooms/closed?{query}")).await.1)
}

async fn pagination_covers_every_row_once_and_ends_with_a_null_cursor(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    // Empty.
    let (_, empty) = app.get("/api/v1/rooms/closed?limit=2").await;
    assert_eq!(
        (ids(&empty).len(), &empty["next_cursor"]),
        (0, &Value::Null)
    );
    // An exact multiple of the limit: the last full page has no next cursor.
    seed_closed(&app, 1, 4).await;
    let (_, first) = app.get("/api/v1/rooms/closed?limit=2").await;
    assert_eq!(ids(&first), ["4", "3"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = app
        .get(&format!("/api/v1/rooms/closed?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(ids(&second), ["2", "1"]);
    assert_eq!(second["next_cursor"], Value::Null);
    // A short last page.
    let (_, first) = app.get("/api/v1/rooms/closed?limit=3").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, last) = app
        .get(&format!("/api/v1/rooms/closed?limit=3&cursor={cursor}"))
        .await;
    assert_eq!(
        (ids(&last), &last["next_cursor"]),
        (vec!["1".to_owned()], &Value::Null)
    );
}

async fn closed_rooms_as_csv_stream_all_or_page_with_a_header_cursor(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    seed_closed(&app, 1, 3).await;
    let (status, headers, body) = app.get_raw("/api/v1/rooms/closed?format=csv", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines[0],
        "appid,room_id,room_session_id,close_reason,close_reason_name,closed_at,created_at,duration_ms,unique_users"
    );
    assert_eq!(
        lines[1],
        "1,room-0,3,3,last_user_kicked_out,2023-11-14T22:16:20.000Z,2023-11-14T22:15:20.000Z,60000,0"
    );
    assert_eq!(lines.len(), 4);
    let (_, headers, body) = app
        .get_raw("/api/v1/rooms/closed?limit=2", &[("accept", "text/csv")])
        .await;
    assert_eq!(body.lines().count(), 3);
    let cursor = headers["x-next-cursor"].to_str().unwrap();
    let (_, headers, body) = app
        .get_raw(
            &format!("/api/v1/rooms/closed?format=csv&limit=2&cursor={cursor}"),
            &[],
        )
        .await;
    assert_eq!(body.lines().nth(1).unwrap().split(',').nth(2), Some("1"));
    assert!(headers.get("x-next-cursor").is_none());
}

async fn bad_parameters_are_400_naming_the_parameter(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    for (path, param) in [
        ("/api/v1/rooms/closed?limit=0", "limit"),
        ("/api/v1/rooms/closed?limit=1001", "limit"),
        ("/api/v1/rooms/closed?from=yesterday", "from"),
        ("/api/v1/rooms/closed?cursor=nonsense", "cursor"),
        ("/api/v1/rooms/closed?close_reason=x", "close_reason"),
        ("/api/v1/rooms/closed?appid=-1", "appid"),
        ("/api/v1/rooms/closed?format=xml", "format"),
        ("/api/v1/stats/close-reasons?bucket=week", "bucket"),
        ("/api/v1/rooms/open?include_admins=yes", "include_admins"),
        ("/api/v1/deliveries?outcome=lost", "outcome"),
        ("/api/v1/sessions/not-a-number", "room_session_id"),
        // A NUL: PostgreSQL refused it as a parameter (a 500 there).
        ("/api/v1/rooms/closed?room_id=a%00b", "room_id"),
        ("/api/v1/rooms/%00/sessions", "room_id"),
        ("/api/v1/stats/close-reasons?room_id=%00", "room_id"),
        // Not UTF-8 once decoded: axum's plain-text 400 before.
        ("/api/v1/rooms/%FF/sessions", "path"),
        ("/api/v1/sessions/%FF", "path"),
        // A query string the parameters cannot be read from at all.
        ("/api/v1/rooms/closed?limit=1&limit=2", "query"),
    ] {
        assert_invalid_parameter(&app, path, param).await;
    }
}

/// `path` answers a 400 `invalid_parameter` whose message starts with
/// `` `param` ``.
async fn assert_invalid_parameter(app: &TestApp, path: &str, param: &str) {
    let (status, body) = app.get(path).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
    assert_eq!(body["error"]["code"], "invalid_parameter", "{path}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with(&format!("`{param}`")), "{path}: {body}");
}

/// Cursors this API never writes: a time far outside the years 0000–9999
/// (a 500 on PostgreSQL; past 9999 the backends answered differently) or an
/// id that is not digits (a NUL was a 500 on PostgreSQL).
async fn forged_cursors_are_400(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    seed_closed(&app, 1, 3).await;
    for forged in [
        "-8000000000000000000:1:5",
        "8000000000000000000:1:5",
        "1709251200000000:2:1\0",
        "1709251200000000:2:-1",
    ] {
        for (list, tag) in [
            ("/api/v1/rooms/closed", "c1:"),
            ("/api/v1/rooms/open", "s1:"),
            ("/api/v1/rooms/room-1/sessions", "s1:"),
        ] {
            let path = format!("{list}?cursor={}", hex::encode(format!("{tag}{forged}")));
            let (status, body) = app.get(&path).await;
            assert_eq!(
                (status, &body["error"]["code"]),
                (StatusCode::BAD_REQUEST, &json!("invalid_parameter")),
                "{forged:?} {list}: {body}"
            );
        }
    }
}

/// A cursor is a place in its list's order: `/rooms/closed`'s (a close
/// time) cut `/rooms/open` and a room's history at the wrong time, and was
/// taken. Lists of one order (newest start first) share their cursors.
async fn a_cursor_from_a_list_of_another_order_is_400(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    seed_closed(&app, 1, 6).await;
    // Open sessions that started after room-1's first, before its second.
    let opens: Vec<_> = (100..103)
        .map(|i| in_room(create(i, T0 + i as i64), &format!("open-{i}")))
        .collect();
    ingest_all(app.store.as_ref(), 1, &opens).await;
    let cursor = |path: &'static str| {
        let app = &app;
        async move {
            let (_, page) = app.get(path).await;
            page["next_cursor"].as_str().unwrap().to_owned()
        }
    };
    let by_close = cursor("/api/v1/rooms/closed?limit=1").await;
    let by_start = cursor("/api/v1/rooms/room-1/sessions?limit=1").await;
    for path in [
        format!("/api/v1/rooms/open?cursor={by_close}"),
        format!("/api/v1/rooms/room-1/sessions?cursor={by_close}"),
        format!("/api/v1/rooms/closed?cursor={by_start}"),
    ] {
        assert_invalid_parameter(&app, &path, "cursor").await;
    }
    // A room history's cursor (room-1's second session) is a place among
    // open sessions too.
    let (status, open) = app
        .get(&format!("/api/v1/rooms/open?cursor={by_start}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&open), ["102", "101", "100"]);
}

/// What a client sends in a query string arrives as it meant it: a time's
/// `+08:00` not percent-encoded (form decoding makes it a space) is that
/// offset, and a value that is not UTF-8 once decoded is a 400 naming it
/// (it was read as U+FFFD and matched a room of that name). The closed list
/// answers JSON or CSV by `Accept`, so it says so to caches.
async fn query_strings_mean_what_the_client_sent(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    seed_closed(&app, 1, 3).await;
    ingest_all(
        app.store.as_ref(),
        1,
        &[
            in_room(create(50, T0), "\u{FFFD}"),
            in_room(close(50, T0 + 1, 0), "\u{FFFD}"),
        ],
    )
    .await;
    // T0 + 2 minutes, 2023-11-14T22:15:20Z, written at +08:00.
    let encoded = app
        .get("/api/v1/rooms/closed?from=2023-11-15T06:15:20%2B08:00")
        .await;
    let unencoded = app
        .get("/api/v1/rooms/closed?from=2023-11-15T06:15:20+08:00")
        .await;
    assert_eq!(encoded.0, StatusCode::OK, "{}", encoded.1);
    assert_eq!(ids(&encoded.1), ["3", "2"]);
    assert_eq!(unencoded, encoded);

    for (path, name) in [
        ("/api/v1/rooms/closed?room_id=%FF", "room_id"),
        ("/api/v1/rooms/open?appid=1&cursor=%C3", "cursor"),
        ("/api/v1/deliveries?outcome=stored%80", "outcome"),
    ] {
        assert_invalid_parameter(&app, path, name).await;
    }
    let (_, replacement) = app.get("/api/v1/rooms/closed?room_id=%EF%BF%BD").await;
    assert_eq!(
        ids(&replacement),
        ["50"],
        "U+FFFD sent as UTF-8 is a room id"
    );

    for accept in ["application/json", "text/csv"] {
        let (status, headers, _) = app
            .get_raw("/api/v1/rooms/closed?limit=1", &[("accept", accept)])
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["vary"], "accept", "{accept}");
    }
}

/// DESIGN.md: user counts leave out users whose events carry role 4. A
/// logout saying 4 after a login saying 2 (ZEGO's current logout carries
/// `user_role`) was counted, the stay taking the login's role.
async fn a_user_whose_logout_says_admin_is_left_out_of_user_counts(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let (kind, mut admin_out) = logout(90, "bot", "b", T0 + 500, Some(T0 + 10));
    admin_out.insert("user_role".into(), json!("4"));
    ingest_all(
        app.store.as_ref(),
        1,
        &[
            create(90, T0),
            login(90, "bot", "b", T0 + 10, 2),
            (kind, admin_out),
            login(90, "ann", "a", T0 + 20, 2),
            close(90, T0 + 1_000, 0),
        ],
    )
    .await;
    let (_, detail) = app.get("/api/v1/sessions/90").await;
    let counts = |v: &Value| {
        (
            v["unique_users"].clone(),
            v["peak_concurrent_users"].clone(),
        )
    };
    assert_eq!(counts(&detail), (json!(1), json!(1)), "{detail}");
    let (_, with_admins) = app.get("/api/v1/sessions/90?include_admins=true").await;
    assert_eq!(counts(&with_admins), (json!(2), json!(2)));
    let bot = detail["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user_account"] == "bot")
        .unwrap();
    assert_eq!(bot["user_role"], 4);
    let (_, listed) = app.get("/api/v1/rooms/closed").await;
    assert_eq!(listed["items"][0]["unique_users"], 1);
}

/// A leap second in a bound (`…23:59:60.5Z`) is the next second's moment on
/// both backends; SQLite compared its text and selected other rows.
async fn a_leap_second_bound_means_the_same_on_both_backends(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let midnight = 1_700_006_400_000; // 2023-11-15T00:00:00Z
    ingest_all(
        app.store.as_ref(),
        1,
        &[create(1, midnight - 60_000), close(1, midnight, 1)],
    )
    .await;
    let count = async |query: &str| {
        let (_, page) = app.get(&format!("/api/v1/rooms/closed?{query}")).await;
        ids(&page).len()
    };
    assert_eq!(count("from=2023-11-14T23:59:60.000001Z").await, 0);
    assert_eq!(count("from=2023-11-14T23:59:60Z").await, 1);
    assert_eq!(count("to=2023-11-14T23:59:60.5Z").await, 1);
    assert_eq!(count("to=2023-11-14T23:59:60Z").await, 0);
}

async fn close_reason_stats_count_name_and_fill_empty_buckets(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    // Two closes in the first hour, none in the second, one in the third.
    let events = [
        close(1, T0, 1),
        close(2, T0 + 1_000, 1),
        close(3, T0 + 2 * 3_600_000 + 5, 7),
    ];
    ingest_all(app.store.as_ref(), 1, &events).await;
    let (_, stats) = app.get("/api/v1/stats/close-reasons").await;
    assert_eq!(stats["total"], 3);
    assert!(stats.get("buckets").is_none());
    let reasons = stats["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 5, "0-3 always, plus the unknown 7: {stats}");
    assert_eq!(
        reasons[1],
        json!({"close_reason": 1, "name": "heartbeat_timeout", "count": 2})
    );
    assert_eq!(
        reasons[4],
        json!({"close_reason": 7, "name": "unknown", "count": 1})
    );

    let (_, hourly) = app.get("/api/v1/stats/close-reasons?bucket=hour").await;
    let buckets = hourly["buckets"].as_array().unwrap();
    let starts: Vec<&str> = buckets
        .iter()
        .map(|b| b["start"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2023-11-14T22:00:00.000Z",
            "2023-11-14T23:00:00.000Z",
            "2023-11-15T00:00:00.000Z"
        ]
    );
    assert!(
        buckets[1]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["count"] == 0)
    );
    assert_eq!(buckets[0]["reasons"][1]["count"], 2);
    let (_, daily) = app
        .get("/api/v1/stats/close-reasons?bucket=day&room_id=room-1")
        .await;
    assert_eq!(daily["buckets"].as_array().unwrap().len(), 2);
    let (_, none) = app.get("/api/v1/stats/close-reasons?appid=2").await;
    assert_eq!(none["total"], 0);

    // Buckets run from the first to the last non-empty one, whatever the
    // range asked for: years of hours around three hours of closes is fine.
    let (status, wide) = app
        .get("/api/v1/stats/close-reasons?bucket=hour&from=2010-01-01T00:00:00Z&to=2030-01-01T00:00:00Z")
        .await;
    assert_eq!(status, StatusCode::OK, "{wide}");
    assert_eq!(wide["buckets"], hourly["buckets"]);
    // Closes 10,000 hours apart would give 10,001 buckets: a 400.
    ingest_all(
        app.store.as_ref(),
        3,
        &[close(4, T0, 1), close(5, T0 + 10_000 * 3_600_000, 1)],
    )
    .await;
    let (status, body) = app
        .get("/api/v1/stats/close-reasons?bucket=hour&appid=3")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("10001 buckets"),
        "{body}"
    );
    let (status, _) = app
        .get("/api/v1/stats/close-reasons?bucket=day&appid=3")
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// Event times run to year 9999, past April 2262, where chrono's
/// nanosecond-based `duration_trunc` gave up: the rollup's hour of such a
/// close panicked the group-commit writer (every later callback then got a
/// 503), and such a `from` panicked the stats handler.
async fn closes_and_stats_after_2262_work_like_any_other(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let far = 10_000_000_000_000; // 2286-11-20T17:46:40Z
    let last_ms = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    for (session, at) in [(1, far), (2, last_ms), (3, T0)] {
        let (_, mut fields) = close(session, at, 1);
        fields.insert("appid".into(), json!(1));
        let (status, answer) = app
            .post("/callbacks/room_close", json_body(&signed(fields)))
            .await;
        assert_eq!(
            (status, &answer["status"]),
            (StatusCode::OK, &json!("stored"))
        );
    }
    let (status, stats) = app.get("/api/v1/stats/close-reasons").await;
    assert_eq!(
        (status, &stats["total"]),
        (StatusCode::OK, &json!(3)),
        "{stats}"
    );
    // Off the hour on both ends: partial hours recounted, whole ones from the rollup.
    let (status, stats) = app
        .get("/api/v1/stats/close-reasons?bucket=hour&from=10000000000000&to=2286-11-20T19:30:00Z")
        .await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["total"], 1, "{stats}");
    assert_eq!(stats["buckets"][0]["start"], "2286-11-20T17:00:00.000Z");
    let (status, stats) = app
        .get("/api/v1/stats/close-reasons?from=9999-12-31T23:30:00Z")
        .await;
    assert_eq!(
        (status, &stats["total"]),
        (StatusCode::OK, &json!(1)),
        "{stats}"
    );
    let (_, closed) = app.get("/api/v1/rooms/closed").await;
    assert_eq!(
        closed["items"][0]["closed_at"], "9999-12-31T23:59:59.999Z",
        "{closed}"
    );
    // Past year 9999 no event can be: a clear 400, not a wrong count.
    let (status, body) = app
        .get("/api/v1/stats/close-reasons?to=253402300800000")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_parameter", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("`to`"),
        "{body}"
    );
}

/// The hourly rollup (used without a room filter and with whole-hour bounds)
/// always equals a recount of the sessions (used otherwise), whatever
/// retries and conflicting resends arrived.
async fn close_reason_rollup_equals_a_full_recount(backend: Backend) {
    use zego_room_tracker::store::query::{Bucket, StatsQuery};
    let app = or_skip!(TestApp::spawn(backend).await);
    let mut events = Vec::new();
    for i in 0..60u64 {
        let at = T0 + (i as i64 * 7_919_000) % (3 * 86_400_000);
        events.push(close(i, at, (i % 5) as i64));
        if i % 7 == 0 {
            events.push(close(i, at, (i % 5) as i64)); // a retry
        }
    }
    ingest_all(app.store.as_ref(), 1, &events).await;
    ingest_all(app.store.as_ref(), 2, &events[..10]).await;
    for (i, conflicting) in [(3u64, 2i64), (4, 0)] {
        let (kind, mut fields) = close(i, T0, conflicting);
        fields.insert("appid".into(), json!(1));
        let outcome = ingest_direct(app.store.as_ref(), &signed(fields), kind).await;
        assert_eq!(outcome.as_str(), "conflict");
    }
    let not_whole_hour = chrono::DateTime::from_timestamp_millis(T0 - 1).unwrap();
    for bucket in [Bucket::None, Bucket::Hour, Bucket::Day] {
        for appid in [None, Some(1)] {
            let query = |from| StatsQuery {
                appid,
                room_id: None,
                from,
                to: None,
                bucket,
            };
            let rollup = app.store.close_reason_counts(&query(None)).await.unwrap();
            let recount = app
                .store
                .close_reason_counts(&query(Some(not_whole_hour)))
                .await
                .unwrap();
            assert_eq!(rollup, recount, "{bucket:?} {appid:?}");
            assert_eq!(
                rollup.iter().map(|c| c.count).sum::<i64>(),
                if appid.is_some() { 60 } else { 68 }
            ); // appid 2 has sessions 0..=7

            // Bounds off the hour: whole hours from the rollup, the partial
            // ones from the sessions; a room filter (every test session is
            // in room-1) counts everything from the sessions.
            let at = |ms: i64| chrono::DateTime::from_timestamp_millis(T0 + ms);
            let ranges = [
                (at(-1), at(86_400_000 + 1_234_567)),
                (at(1_800_000), at(2_000_000)), // within one hour
                (at(3_599_999), at(2 * 86_400_000)),
                (None, at(100_000_000 + 17)),
                (at(55_555_555), None),
                (at(86_400_000), at(172_800_000)), // whole hours
            ];
            for (from, to) in ranges {
                let query = |room_id: Option<&str>| StatsQuery {
                    appid,
                    room_id: room_id.map(str::to_owned),
                    from,
                    to,
                    bucket,
                };
                let mixed = app.store.close_reason_counts(&query(None)).await.unwrap();
                let recount = app
                    .store
                    .close_reason_counts(&query(Some("room-1")))
                    .await
                    .unwrap();
                assert_eq!(mixed, recount, "{bucket:?} {appid:?} {from:?}..{to:?}");
            }
        }
    }
}

async fn room_history_shows_open_closed_and_superseded_lifecycles(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let events = [
        create(1, T0),
        close(1, T0 + 10, 0),
        create(2, T0 + 100),                   // its close was lost
        login(3, "alice", "s", T0 + 1_000, 2), // no create arrived
        in_room(create(9, T0), "elsewhere"),
    ];
    ingest_all(app.store.as_ref(), 1, &events).await;
    let (_, page) = app.get("/api/v1/rooms/room-1/sessions").await;
    assert_eq!(
        states(&page),
        [("3", "open"), ("2", "superseded"), ("1", "closed")]
    );
    assert_eq!(page["items"][0]["created_at"], Value::Null);
    assert_eq!(page["items"][0]["unique_users"], 1);
    let (_, paged) = app.get("/api/v1/rooms/room-1/sessions?limit=2").await;
    let cursor = paged["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get(&format!(
            "/api/v1/rooms/room-1/sessions?limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(ids(&rest), ["1"]);
    let (_, unknown) = app.get("/api/v1/rooms/nobody-here/sessions").await;
    assert_eq!(ids(&unknown).len(), 0);

    let (_, open) = app.get("/api/v1/rooms/open").await;
    assert_eq!(ids(&open), ["3", "9"]);
}

/// Two lifecycles of one room that start in the same millisecond: the one
/// listed first (greater `room_session_id` as text, the history's order) is
/// open and the other superseded, in the API and in the `session_summary`
/// view under users' own SQL, not both open.
async fn lifecycles_starting_in_one_millisecond_leave_one_open(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let events = [
        in_room(create(40, T0), "room-tie"),
        in_room(login(5, "alice", "a", T0, 2), "room-tie"), // no create arrived
    ];
    ingest_all(app.store.as_ref(), 1, &events).await;

    let (_, history) = app.get("/api/v1/rooms/room-tie/sessions").await;
    assert_eq!(states(&history), [("5", "open"), ("40", "superseded")]);
    let (_, open) = app.get("/api/v1/rooms/open").await;
    assert_eq!(ids(&open), ["5"]);

    assert_eq!(
        open_sessions_report(&app).await,
        ["5"],
        "the session_summary view agrees"
    );
}

/// Where sessions tie on time, the id decides as bytes ("9" after "10") on
/// both backends and in every PostgreSQL collation: which lifecycle is open,
/// the lists' order and their cursors. A numeric ICU collation ("10" after
/// "9") made PostgreSQL open and list the other one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ties_on_time_are_broken_by_the_id_as_bytes_in_every_collation() {
    let mut databases = vec![("sqlite", TestDb::sqlite())];
    // PostgreSQL unavailable outside CI: the banner said so; SQLite still runs.
    if let Some(numeric) = TestDb::postgres_icu("en-US-u-kn-true").await {
        databases.push(("postgres, ICU numeric", numeric));
    }
    for (name, db) in databases {
        let store = zego_room_tracker::store::connect(&db.url, &test_connect_options())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let app = TestApp::with_store(store, db, policy(), Vec::new()).await;
        let events = [
            in_room(create(9, T0), "tie"),
            in_room(create(10, T0), "tie"),
            in_room(create(8, T0 - 60_000), "closing"),
            in_room(create(11, T0 - 60_000), "closing"),
            in_room(close(8, T0, 0), "closing"),
            in_room(close(11, T0, 0), "closing"),
        ];
        ingest_all(app.store.as_ref(), 1, &events).await;

        let (_, history) = app.get("/api/v1/rooms/tie/sessions").await;
        assert_eq!(
            states(&history),
            [("9", "open"), ("10", "superseded")],
            "{name}"
        );
        let (_, open) = app.get("/api/v1/rooms/open").await;
        assert_eq!(ids(&open), ["9"], "{name}");
        let mut paged = Vec::new();
        let mut path = "/api/v1/rooms/closed?limit=1".to_owned();
        loop {
            let (_, page) = app.get(&path).await;
            paged.extend(ids(&page));
            let Some(cursor) = page["next_cursor"].as_str() else {
                break;
            };
            path = format!("/api/v1/rooms/closed?limit=1&cursor={cursor}");
        }
        assert_eq!(paged, ["8", "11"], "{name}");
        assert_eq!(
            open_sessions_report(&app).await,
            ["9"],
            "{name}: the session_summary view"
        );
        // The reports order ties as bytes too ("11" before "8").
        let longest = zego_room_tracker::reports::Report::find("longest-sessions").unwrap();
        let table = app
            .store
            .run_report(&longest.bindable_sql(), &Default::default())
            .await
            .unwrap();
        let id = table
            .columns
            .iter()
            .position(|c| c == "room_session_id")
            .unwrap();
        let listed: Vec<_> = table.rows.iter().map(|r| r[id].clone()).collect();
        assert_eq!(
            listed,
            [json!("11"), json!("8")],
            "{name}: longest-sessions"
        );
    }
}

/// ZEGO's own out-of-order example (room user list): u1 logs in (c1), u2
/// logs in (c2), u1 logs out (c3), u1 logs in again (c4); delivered as c1,
/// c4, c2, c3. Plus create, close and an admin recorder.
fn zego_user_list_scenario() -> Vec<Callback> {
    vec![
        create(77, T0),
        login(77, "u1", "u1-a", T0 + 1_000, 2), // c1
        login(77, "u2", "u2-a", T0 + 2_000, 2), // c2
        logout(77, "u1", "u1-a", T0 + 5_000, Some(T0 + 1_000)), // c3
        login(77, "u1", "u1-b", T0 + 6_000, 2), // c4
        login(77, "rec", "rec-a", T0 + 500, 4),
        logout(77, "u2", "u2-a", T0 + 9_000, Some(T0 + 2_000)),
        close(77, T0 + 10_000, 0),
    ]
}

async fn session_detail_correlates_participants_in_any_arrival_order(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let in_order = zego_user_list_scenario();
    let [create, c1, c2, c3, c4, rec, u2_out, close] = in_order.clone().try_into().unwrap();
    let scrambled = vec![close, c1, c4, u2_out, c2, rec, c3, create];
    ingest_all(app.store.as_ref(), 1, &in_order).await;
    ingest_all(app.store.as_ref(), 2, &scrambled).await;

    let (status, ordered) = app.get("/api/v1/sessions/77?appid=1").await;
    assert_eq!(status, StatusCode::OK);
    let (_, shuffled) = app.get("/api/v1/sessions/77?appid=2").await;
    let strip = |mut v: Value| {
        v["appid"] = Value::Null;
        for e in v["timeline"].as_array_mut().unwrap() {
            e["received_at"] = Value::Null;
        }
        v
    };
    assert_eq!(strip(ordered.clone()), strip(shuffled));

    assert_eq!(ordered["state"], "closed");
    assert_eq!(ordered["unique_users"], 2, "the admin recorder is left out");
    assert_eq!(ordered["peak_concurrent_users"], 2);
    let participants = ordered["participants"].as_array().unwrap();
    let spans: Vec<(&str, Value)> = participants
        .iter()
        .map(|p| {
            (
                p["user_account"].as_str().unwrap(),
                p["duration_ms"].clone(),
            )
        })
        .collect();
    assert_eq!(
        spans,
        [
            ("rec", Value::Null),
            ("u1", json!(4000)),
            ("u2", json!(7000)),
            ("u1", Value::Null)
        ]
    );
    assert_eq!(participants[1]["logout_reason_name"], "heartbeat_timeout");
    assert_eq!(participants[0]["user_role"], 4);
    let timeline: Vec<&str> = ordered["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        timeline,
        [
            "room_create",
            "room_login",
            "room_login",
            "room_login",
            "room_logout",
            "room_login",
            "room_logout",
            "room_close"
        ]
    );
    let (_, with_admins) = app
        .get("/api/v1/sessions/77?appid=1&include_admins=true")
        .await;
    assert_eq!(
        (
            with_admins["unique_users"].clone(),
            with_admins["peak_concurrent_users"].clone()
        ),
        (json!(3), json!(3))
    );
    // The lists count users in SQL, the detail from the participants it
    // shows: one rule, so the same numbers.
    for flag in ["false", "true"] {
        let (_, detail) = app
            .get(&format!(
                "/api/v1/sessions/77?appid=1&include_admins={flag}"
            ))
            .await;
        let (_, listed) = app
            .get(&format!(
                "/api/v1/rooms/closed?appid=1&include_admins={flag}"
            ))
            .await;
        let item = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["room_session_id"] == "77")
            .unwrap();
        assert_eq!(item["unique_users"], detail["unique_users"], "{flag}");
    }
}

async fn a_session_id_known_under_two_appids_is_409_and_unknown_is_404(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    ingest_all(app.store.as_ref(), 1, &[create(5, T0)]).await;
    ingest_all(app.store.as_ref(), 2, &[create(5, T0)]).await;
    let (status, body) = app.get("/api/v1/sessions/5").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("1, 2"),
        "{body}"
    );
    // A session with no login yet: no participants (the store's "no rows"
    // path), its create in the timeline.
    let (status, body) = app.get("/api/v1/sessions/5?appid=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["participants"], json!([]), "{body}");
    assert_eq!(body["timeline"].as_array().unwrap().len(), 1, "{body}");
    let (status, body) = app.get("/api/v1/sessions/6").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );
    // Leading zeros name the same id; ids are always strings in answers.
    let (_, body) = app.get("/api/v1/sessions/0005?appid=1").await;
    assert_eq!(body["room_session_id"], "5");
}

async fn deliveries_list_filters_by_outcome_and_pages(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let close = signed(fixture("room_close.json"));
    app.post("/callbacks/room_close", json_body(&close)).await;
    app.post(
        "/callbacks/room_close",
        json_body(&signed(fixture("room_close.json"))),
    )
    .await;
    app.post(
        "/callbacks/room_close",
        json_body(&sign_with(fixture("room_close.json"), "wrong")),
    )
    .await;
    let (_, all) = app.get("/api/v1/deliveries").await;
    let outcomes: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["rejected", "duplicate", "stored"]);
    assert_eq!(
        all["items"][2]["body"].as_str().unwrap(),
        serde_json::to_string(&close).unwrap()
    );
    let (_, rejected) = app.get("/api/v1/deliveries?outcome=rejected").await;
    assert_eq!(rejected["items"][0]["reason"], "invalid_signature");
    let (_, first) = app.get("/api/v1/deliveries?limit=2").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get(&format!("/api/v1/deliveries?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(rest["items"][0]["outcome"], "stored");
    assert_eq!(rest["next_cursor"], Value::Null);
    let (_, future) = app
        .get("/api/v1/deliveries?from=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(future["items"], json!([]));
}

async fn tokens_guard_the_query_api_but_not_callbacks_or_probes(backend: Backend) {
    let (store, db) = or_skip!(fresh_store(backend).await);
    let app = TestApp::with_store(
        store,
        db,
        policy(),
        vec![Secret::new("t0k3n"), Secret::new("other")],
    )
    .await;
    let (status, headers, body) = app.get_raw("/api/v1/rooms/open", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert!(body.contains("\"code\":\"unauthorized\""), "{body}");
    let wrong = app
        .get_raw("/api/v1/rooms/open", &[("authorization", "Bearer nope")])
        .await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    let right = app
        .get_raw("/api/v1/rooms/open", &[("authorization", "Bearer other")])
        .await;
    assert_eq!(right.0, StatusCode::OK);
    // Callbacks have signatures instead; probes and the spec are open.
    let (status, _) = app
        .post(
            "/callbacks/room_close",
            json_body(&signed(fixture("room_close.json"))),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        assert_eq!(app.get_raw(path, &[]).await.0, StatusCode::OK, "{path}");
    }
}

async fn openapi_covers_every_endpoint(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let (_, spec) = app.get("/openapi.json").await;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/callbacks",
        "/callbacks/{event}",
        "/api/v1/rooms/closed",
        "/api/v1/rooms/open",
        "/api/v1/rooms/{room_id}/sessions",
        "/api/v1/sessions/{room_session_id}",
        "/api/v1/stats/close-reasons",
        "/api/v1/deliveries",
        "/healthz",
        "/readyz",
        "/openapi.json",
    ] {
        assert!(
            spec["paths"].get(path).is_some(),
            "{path} missing from the spec"
        );
        // Every operation that reads the database may answer 503 (retry).
        if path != "/healthz" && path != "/openapi.json" {
            let operation = spec["paths"][path]
                .as_object()
                .and_then(|ops| ops.values().next())
                .unwrap();
            assert!(operation["responses"].get("503").is_some(), "{path}");
        }
    }
    let appid = &spec["components"]["schemas"]["CallbackBody"]["properties"]["appid"];
    assert_eq!(appid["maximum"], u32::MAX);
    // A session id's pattern admits every UInt64, 20 digits at the most.
    let parameters = &spec["paths"]["/api/v1/sessions/{room_session_id}"]["get"]["parameters"];
    let id = parameters
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "room_session_id"))
        .expect("the path parameter is documented");
    assert_eq!(id["schema"]["pattern"], "^[0-9]{1,20}$");
    ingest_all(app.store.as_ref(), 1, &[create(u64::MAX, T0)]).await;
    let (status, _) = app.get("/api/v1/sessions/18446744073709551615").await;
    assert_eq!(status, StatusCode::OK);
}

/// Every object in the answers carries exactly the fields its schema in
/// `/openapi.json` documents: the spec is generated from the Rust types,
/// the answers partly from SQL, and a renamed or added column must show up
/// in both.
async fn answers_have_exactly_the_fields_the_spec_documents(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    ingest_all(app.store.as_ref(), 1, &zego_user_list_scenario()).await;
    let (_, spec) = app.get("/openapi.json").await;
    let documented = |schema: &str| -> Vec<String> {
        let mut keys: Vec<String> = spec["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{schema} has no properties in the spec"))
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    let fields = |object: &Value| -> Vec<String> {
        let mut keys: Vec<String> = object.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };

    let (_, detail) = app.get("/api/v1/sessions/77?appid=1").await;
    assert_eq!(detail["participants"].as_array().unwrap().len(), 4);
    assert_eq!(detail["timeline"].as_array().unwrap().len(), 8);
    for participant in detail["participants"].as_array().unwrap() {
        assert_eq!(fields(participant), documented("ParticipantView"));
    }
    for entry in detail["timeline"].as_array().unwrap() {
        assert_eq!(fields(entry), documented("TimelineEntry"));
    }
    let (_, closed) = app.get("/api/v1/rooms/closed").await;
    let items = closed["items"].as_array().unwrap();
    assert!(!items.is_empty());
    for item in items {
        assert_eq!(fields(item), documented("SessionView"));
    }
    let (_, stats) = app.get("/api/v1/stats/close-reasons?bucket=day").await;
    assert_eq!(
        fields(&stats),
        documented("CloseReasonStats"),
        "with buckets, every documented field is present"
    );
}

/// On the real binary: the Prometheus recorder is one per process, so in
/// this test binary every other test's callbacks would be in it too.
async fn metrics_count_callbacks_rejections_latency_pool_and_write_steps(backend: Backend) {
    let server = served::Served::start(or_skip!(TestDb::new(backend).await));
    let close = fixture("room_close.json");
    let mut create_without_event = fixture("room_create.json");
    create_without_event.remove("event");
    let answers = [
        server
            .post("/callbacks/room_close", json_body(&signed(close.clone())))
            .await,
        server
            .post("/callbacks/room_close", json_body(&signed(close.clone())))
            .await,
        server
            .post(
                "/callbacks/room_close",
                json_body(&sign_with(close, "forged")),
            )
            .await,
        server
            .post(
                "/callbacks/room_login",
                json_body(&signed(fixture("room_login.json"))),
            )
            .await,
        // Without `event` it is the path's event, stored and counted so.
        server
            .post(
                "/callbacks/room_create",
                json_body(&signed(create_without_event)),
            )
            .await,
    ];
    assert_eq!(answers.map(|s| s.as_u16()), [200, 200, 401, 200, 200]);
    // Any token is a method to HTTP: unknown ones share one series.
    let odd = reqwest::Method::from_bytes(b"FOOBAR").unwrap();
    let answer = reqwest::Client::new()
        .request(odd, server.url("/healthz"))
        .send()
        .await;
    assert_eq!(answer.unwrap().status(), StatusCode::METHOD_NOT_ALLOWED);
    let (status, headers, text) = server.get_raw("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    for expected in [
        "zrt_callbacks_total{event=\"room_close\",outcome=\"stored\"} 1\n",
        "zrt_callbacks_total{event=\"room_close\",outcome=\"duplicate\"} 1\n",
        "zrt_callbacks_total{event=\"room_login\",outcome=\"stored\"} 1\n",
        "zrt_callbacks_total{event=\"room_create\",outcome=\"stored\"} 1\n",
        "zrt_callback_rejections_total{reason=\"invalid_signature\"} 1\n",
        "zrt_http_request_duration_seconds_bucket{method=\"POST\",route=\"/callbacks/{event}\",status=\"200\"",
        "zrt_callback_lag_seconds_bucket{event=\"room_close\"",
        "zrt_db_pool_connections{state=\"open\"}",
        "zrt_http_request_duration_seconds_bucket{method=\"other\",route=\"/healthz\",status=\"405\"",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    assert!(!text.contains("FOOBAR"), "a sender's method made a series");
    // Every step a write transaction went through (the duplicate close
    // looked its event up; the login read its presence group). PostgreSQL
    // runs the first ones as one statement (`recorder::record_at_once`).
    let first_steps: &[&str] = match backend {
        Backend::Postgres => &["first_steps"],
        Backend::Sqlite => &[
            "claim_replay_keys",
            "touch_sessions",
            "insert_events",
            "presence_groups",
        ],
    };
    let steps = [
        &["begin"],
        first_steps,
        &["find_events", "write_batch", "commit"],
    ];
    for step in steps.concat() {
        let expected = format!("zrt_write_step_duration_seconds_bucket{{step=\"{step}\",le=");
        assert!(text.contains(&expected), "missing {expected} in\n{text}");
    }
    // Every histogram has buckets: a summary keeps its samples and cost
    // megabytes to render after a busy minute.
    assert!(!text.contains("quantile="), "a summary in\n{text}");
}

/// SQL-looking text in every parameter and path segment is data: a 400 or
/// an empty answer, never a 5xx, and the tables are still there afterwards.
async fn sql_looking_input_is_only_data(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    seed_closed(&app, 1, 2).await;
    let nasty = urlencoding::encode("x' OR '1'='1'; DROP TABLE events; --").into_owned();
    let paths = [
        format!("/api/v1/rooms/closed?room_id={nasty}"),
        format!("/api/v1/rooms/closed?appid={nasty}"),
        format!("/api/v1/rooms/closed?close_reason={nasty}"),
        format!("/api/v1/rooms/closed?from={nasty}"),
        format!("/api/v1/rooms/closed?cursor={nasty}"),
        format!("/api/v1/rooms/closed?format=csv&room_id={nasty}"),
        format!("/api/v1/rooms/{nasty}/sessions"),
        format!("/api/v1/rooms/open?appid={nasty}"),
        format!("/api/v1/sessions/{nasty}"),
        format!("/api/v1/stats/close-reasons?room_id={nasty}&bucket=day"),
        format!("/api/v1/deliveries?outcome={nasty}"),
    ];
    for path in &paths {
        let (status, _, body) = app.get_raw(path, &[]).await;
        assert!(
            status == StatusCode::OK
                || status == StatusCode::BAD_REQUEST
                || status == StatusCode::NOT_FOUND,
            "{path}: {status} {body}"
        );
        assert!(
            !body.contains("\"room_session_id\":\"1\""),
            "{path} leaked rows: {body}"
        );
    }
    let mut close = fixture("room_close.json");
    close.insert(
        "room_id".into(),
        json!("x'); DELETE FROM room_sessions; --"),
    );
    assert_eq!(
        app.post("/callbacks/room_close", json_body(&signed(close)))
            .await
            .1["status"],
        "stored"
    );
    assert_eq!(
        ids(&app.get("/api/v1/rooms/closed?appid=1").await.1).len(),
        3
    );
}

/// A stay of no length (a logout in its login's millisecond; a login after
/// the close, which an open interval would end at the close) is no presence:
/// the detail answers, with the peak not counting it. (It used to subtract
/// a leave before its own join, a 500 in debug builds.)
async fn a_stay_of_no_length_is_no_presence_in_the_session_detail(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    ingest_all(
        app.store.as_ref(),
        1,
        &[
            create(1, T0),
            login(1, "quick", "s", T0 + 1_000, 2),
            logout(1, "quick", "s", T0 + 1_000, Some(T0 + 1_000)),
            close(1, T0 + 5_000, 0),
            login(1, "late", "s", T0 + 6_000, 2),
        ],
    )
    .await;
    let (status, body) = app.get("/api/v1/sessions/1?appid=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["unique_users"], &body["peak_concurrent_users"]),
        (&json!(2), &json!(0)),
        "{body}"
    );
}

/// A re-login in the millisecond of a logout without `login_time` (old
/// payloads): the logout ends the earlier stay, the re-login stays open,
/// whichever arrives first (the re-login used to take the logout).
async fn a_logout_ends_the_earlier_stay_not_a_login_of_its_millisecond(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    let (first, relogin, out) = (
        login(1, "bob", "b1", T0 + 20, 2),
        login(1, "bob", "b1", T0 + 100, 2),
        logout(1, "bob", "b1", T0 + 100, None),
    );
    ingest_all(app.store.as_ref(), 1, &[relogin, out]).await;
    ingest_all(app.store.as_ref(), 1, &[first]).await;
    let (status, body) = app.get("/api/v1/sessions/1?appid=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stays: Vec<(Value, Value)> = body["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["duration_ms"].clone(), p["logout_reason_name"].clone()))
        .collect();
    assert_eq!(
        stays,
        [
            (json!(80), json!("heartbeat_timeout")),
            (json!(null), json!(null))
        ],
        "{body}"
    );
}

/// `from`/`to` with digits below the microsecond: a close at exactly
/// 22:13:20.000 is before `…20.0000001Z` on both backends (PostgreSQL binds
/// whole microseconds, and used to cut the bound down to `…20Z`).
async fn bounds_below_the_microsecond_mean_the_same_on_both_backends(backend: Backend) {
    let app = or_skip!(TestApp::spawn(backend).await);
    ingest_all(
        app.store.as_ref(),
        1,
        &[create(1, T0 - 1_000), close(1, T0, 0)],
    )
    .await;
    let bound = "2023-11-14T22:13:20.0000001Z"; // T0 plus 100 ns
    let (_, from) = app.get(&format!("/api/v1/rooms/closed?from={bound}")).await;
    let (_, to) = app.get(&format!("/api/v1/rooms/closed?to={bound}")).await;
    let (_, stats) = app
        .get(&format!("/api/v1/stats/close-reasons?from={bound}"))
        .await;
    assert_eq!(
        (ids(&from).len(), ids(&to).len(), &stats["total"]),
        (0, 1, &json!(0)),
        "from {from} to {to} stats {stats}"
    );
}

conformance!(
    closes_and_stats_after_2262_work_like_any_other,
    sql_looking_input_is_only_data,
    metrics_count_callbacks_rejections_latency_pool_and_write_steps,
    closed_rooms_are_newest_first_with_every_field,
    closed_rooms_filter_by_app_room_reason_and_half_open_time,
    pagination_covers_every_row_once_and_ends_with_a_null_cursor,
    closed_rooms_as_csv_stream_all_or_page_with_a_header_cursor,
    bad_parameters_are_400_naming_the_parameter,
    close_reason_stats_count_name_and_fill_empty_buckets,
    close_reason_rollup_equals_a_full_recount,
    room_history_shows_open_closed_and_superseded_lifecycles,
    lifecycles_starting_in_one_millisecond_leave_one_open,
    session_detail_correlates_participants_in_any_arrival_order,
    a_session_id_known_under_two_appids_is_409_and_unknown_is_404,
    deliveries_list_filters_by_outcome_and_pages,
    tokens_guard_the_query_api_but_not_callbacks_or_probes,
    openapi_covers_every_endpoint,
    answers_have_exactly_the_fields_the_spec_documents,
    a_stay_of_no_length_is_no_presence_in_the_session_detail,
    a_logout_ends_the_earlier_stay_not_a_login_of_its_millisecond,
    bounds_below_the_microsecond_mean_the_same_on_both_backends,
    forged_cursors_are_400,
    a_cursor_from_a_list_of_another_order_is_400,
    query_strings_mean_what_the_client_sent,
    a_user_whose_logout_says_admin_is_left_out_of_user_counts,
    a_leap_second_bound_means_the_same_on_both_backends,
);

/// The router's state for a request sent without a socket (`oneshot`):
/// the tests' policy, no API tokens, group commit off.
fn unbatched_state(
    store: std::sync::Arc<dyn zego_room_tracker::store::Store>,
    request_timeout: std::time::Duration,
) -> zego_room_tracker::http::AppState {
    zego_room_tracker::http::AppState {
        store,
        verify: std::sync::Arc::new(policy()),
        display_decoding: Default::default(),
        body_limit: BODY_LIMIT,
        api_tokens: std::sync::Arc::new(Vec::new()),
        request_timeout,
        group_commit: None,
    }
}

/// A callback whose body stops arriving is the sender's doing: a 408
/// `body_timeout` a tenth before REQUEST_TIMEOUT_SECS, whose 503 would say
/// the service was slow (and page whoever watches 5xx).
#[tokio::test]
async fn a_body_that_stops_arriving_is_408_not_503() {
    use tower::ServiceExt;
    let (store, _db) = fresh_store(Backend::Sqlite).await.unwrap();
    let state = unbatched_state(store.clone(), std::time::Duration::from_millis(500));
    let first_bytes = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
        b"{\"event\":",
    ))]);
    let stalled = axum::body::Body::from_stream(futures::StreamExt::chain(
        first_bytes,
        futures::stream::pending(),
    ));
    let request = axum::http::Request::post("/callbacks/room_close")
        .header("content-type", "application/json")
        .body(stalled)
        .unwrap();
    let answer = zego_room_tracker::http::app(state)
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::REQUEST_TIMEOUT);
    let body = axum::body::to_bytes(answer.into_body(), 10_000)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "body_timeout", "{body}");
    assert!(deliveries(store.as_ref()).await.is_empty());
}

/// Without `API_TOKENS`, a client that is not on this machine is refused.
#[tokio::test]
async fn without_tokens_only_loopback_clients_are_answered() {
    use tower::ServiceExt;
    let (store, _db) = fresh_store(Backend::Sqlite).await.unwrap();
    let state = unbatched_state(store, std::time::Duration::from_secs(30));
    let request = |ip: &str| {
        let mut r = axum::http::Request::get("/api/v1/rooms/open")
            .body(axum::body::Body::empty())
            .unwrap();
        let addr: std::net::SocketAddr = format!("{ip}:5000").parse().unwrap();
        r.extensions_mut().insert(axum::extract::ConnectInfo(addr));
        r
    };
    let app = zego_room_tracker::http::app(state);
    let remote = app.clone().oneshot(request("203.0.113.9")).await.unwrap();
    assert_eq!(remote.status(), StatusCode::UNAUTHORIZED);
    // Anyone can write X-Forwarded-For: it does not make a client local.
    let mut forwarded = request("203.0.113.9");
    forwarded
        .headers_mut()
        .insert("x-forwarded-for", "127.0.0.1".parse().unwrap());
    let forwarded = app.clone().oneshot(forwarded).await.unwrap();
    assert_eq!(forwarded.status(), StatusCode::UNAUTHORIZED);
    let body = axum::body::to_bytes(remote.into_body(), 10_000)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&body).contains("API_TOKENS"));
    // An IPv4 client of a dual-stack `[::]` listener is `::ffff:127.0.0.1`.
    for local in ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]"] {
        let answer = app.clone().oneshot(request(local)).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{local}");
    }
    let mapped_remote = app.oneshot(request("[::ffff:203.0.113.9]")).await.unwrap();
    assert_eq!(mapped_remote.status(), StatusCode::UNAUTHORIZED);
}
