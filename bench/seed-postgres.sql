-- Fills a migrated zego-room-tracker PostgreSQL database with synthetic
-- history through bulk SQL (no HTTP): :sessions room sessions over 30 days
-- across 3 appids and :sessions/5 rooms, 95% closed, each with
-- :users_per_session users who log in and out once (one in 50 is an admin
-- recorder), and the matching events.
--   psql -v sessions=1000000 -v users_per_session=3 -f bench/seed-postgres.sql DB
\set ON_ERROR_STOP on
BEGIN;
SET LOCAL synchronous_commit = off;

INSERT INTO room_sessions (appid, room_session_id, room_id, created_at, creator, closed_at, close_reason,
                           first_event_at, started_at)
SELECT 1 + i % 3, (1000000000000 + i)::text, 'room-' || (i % (:sessions / 5)),
       t, 'u' || i, CASE WHEN i % 20 <> 0 THEN t + ((i * 7919) % 3600 + 1) * interval '1 second' END,
       CASE WHEN i % 20 <> 0 THEN (i * 31) % 4 END, t, t
FROM generate_series(1::bigint, :sessions) AS i,
     LATERAL (SELECT timestamptz '2026-10-01 00:00:00+00' + (i::float8 / :sessions) * interval '30 days' AS t) s;

INSERT INTO presence_intervals (appid, room_session_id, user_account, session_id, room_id, user_nickname,
                                user_role, login_at, logout_at, logout_reason, duration_ms)
SELECT s.appid, s.room_session_id, 'user-' || ((i * 104729 + u) % 500000), 'ls-' || i || '-' || u, s.room_id,
       'nick', CASE WHEN (i + u) % 50 = 0 THEN 4 ELSE 2 END,
       s.started_at + u * interval '1 second',
       s.started_at + (u + 60 + (i * u) % 1800) * interval '1 second', (i + u) % 5,
       (60 + (i * u) % 1800) * 1000
FROM generate_series(1::bigint, :sessions) AS i
JOIN room_sessions s ON s.appid = 1 + i % 3 AND s.room_session_id = (1000000000000 + i)::text
CROSS JOIN generate_series(1, :users_per_session) AS u;

INSERT INTO events (event, appid, room_id, room_session_id, event_at, received_at, creator, reason, content_sha256)
SELECT 'room_create', appid, room_id, room_session_id, created_at, created_at, creator, NULL, md5(room_session_id)
FROM room_sessions
UNION ALL
SELECT 'room_close', appid, room_id, room_session_id, closed_at, closed_at, NULL, close_reason, md5(room_session_id)
FROM room_sessions WHERE closed_at IS NOT NULL;

INSERT INTO events (event, appid, room_id, room_session_id, event_at, received_at, user_account, session_id,
                    user_nickname, user_role, login_at, reason, content_sha256)
SELECT 'room_login', appid, room_id, room_session_id, login_at, login_at, user_account, session_id,
       user_nickname, user_role, NULL, NULL, md5(session_id)
FROM presence_intervals
UNION ALL
SELECT 'room_logout', appid, room_id, room_session_id, logout_at, logout_at, user_account, session_id,
       user_nickname, user_role, login_at, logout_reason, md5(session_id)
FROM presence_intervals;

-- The close-reason rollup that ingest maintains.
INSERT INTO close_reason_hourly (appid, hour_start, close_reason, closed_count)
SELECT appid, date_trunc('hour', closed_at, 'UTC'), close_reason, count(*)
FROM room_sessions WHERE closed_at IS NOT NULL
GROUP BY 1, 2, 3;

COMMIT;
ANALYZE;

-- The delivery archive: one delivery per create, one in a hundred rejected.
INSERT INTO deliveries (received_at, endpoint, content_type, body, body_sha256, event, appid, room_id,
                        room_session_id, outcome, reason, event_id)
SELECT received_at, '/callbacks/room_create', 'application/json',
       convert_to('{"event":"room_create","room_session_id":' || room_session_id || '}', 'UTF8'),
       md5(room_session_id), 'room_create', appid, room_id, room_session_id,
       CASE WHEN id % 100 = 0 THEN 'rejected' ELSE 'stored' END,
       CASE WHEN id % 100 = 0 THEN 'invalid_signature' END, id
FROM events WHERE event = 'room_create' ORDER BY id;
ANALYZE deliveries;
