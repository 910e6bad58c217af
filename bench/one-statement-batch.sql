-- An optimistic model of a write batch in ONE round trip, for pgbench:
-- the rows and index work of :n callbacks of the benchmark's mix (per
-- session one create, four logins, four logouts, one close) as a single
-- statement of data-modifying CTEs, committed on its own. It measures how
-- long PostgreSQL alone needs for a batch if the service sent it as one
-- statement (docs/benchmarks.md, "The 3× Node.js target"). Optimistic:
-- no advisory locks, no rows returned to a client, presence rows inserted
-- rather than recomputed, no decisions between steps (replays, duplicates,
-- conflicts). scripts/bench-ingest.sh runs it (n = 32 and 64); by hand,
-- on a database `zego-room-tracker migrate` has set up:
--   pgbench -n -M prepared -f bench/one-statement-batch.sql -D n=32 -c 1 -T 10 -h 127.0.0.1 -U postgres DB
\set base random(1, 900000000000)
WITH cb AS (
  SELECT g, (:base::bigint * 100 + g / 10)::text AS sid,
         CASE WHEN g % 10 = 0 THEN 'room_create' WHEN g % 10 = 9 THEN 'room_close'
              WHEN g % 10 <= 4 THEN 'room_login' ELSE 'room_logout' END AS ev
  FROM generate_series(0, :n - 1) g
), rg AS (
  INSERT INTO replay_guard (sent_timestamp, nonce, signature, body_sha256, first_seen_at)
  SELECT '1764331200', 'n' || :base || '-' || g, md5(g::text || :base) || 'abcdefgh', md5(:base::text || g) || md5(g::text), now() FROM cb
  ON CONFLICT (sent_timestamp, nonce, signature) DO UPDATE SET body_sha256 = replay_guard.body_sha256
  RETURNING 1
), ss AS (
  INSERT INTO room_sessions (appid, room_session_id, room_id, first_event_at, started_at, created_at, creator)
  SELECT 1234567890, sid, 'room-' || sid, now(), now(), now(), 'creator' FROM cb WHERE ev = 'room_create'
  ON CONFLICT (appid, room_session_id) DO NOTHING RETURNING 1
), inserted_events AS (
  INSERT INTO events (event, appid, room_id, room_session_id, event_at, received_at, user_account, session_id, user_nickname, user_role, login_at, reason, creator, room_name, content_sha256)
  SELECT ev, 1234567890, 'room-' || sid, sid, now() + g * interval '1 ms', now(),
         CASE WHEN ev IN ('room_login','room_logout') THEN 'user-' || (g % 5) END,
         CASE WHEN ev IN ('room_login','room_logout') THEN 'sess-' || (g % 5) END,
         'nick', 1, NULL, CASE WHEN ev = 'room_close' THEN 1 END, NULL, NULL, md5(g::text || :base) || md5(:base::text)
  FROM cb ON CONFLICT DO NOTHING RETURNING id
), gr AS (
  SELECT count(x.id) AS n FROM cb CROSS JOIN LATERAL (
    SELECT e.id FROM events e WHERE e.event = 'room_login' AND e.appid = 1234567890 AND e.room_session_id = cb.sid
      AND e.user_account = 'user-' || (cb.g % 5) AND e.session_id = 'sess-' || (cb.g % 5) OFFSET 0) x
  WHERE cb.ev = 'room_logout'
), gp AS (
  SELECT count(p.id) AS n FROM cb CROSS JOIN LATERAL (
    SELECT p.id FROM presence_intervals p WHERE p.appid = 1234567890 AND p.room_session_id = cb.sid
      AND p.user_account = 'user-' || (cb.g % 5) AND p.session_id = 'sess-' || (cb.g % 5) OFFSET 0) p
  WHERE cb.ev IN ('room_login', 'room_logout')
), sc AS (
  UPDATE room_sessions s SET closed_at = now(), close_reason = 1
  FROM (SELECT appid, room_session_id FROM room_sessions WHERE closed_at IS NULL ORDER BY started_at LIMIT (:n / 10)) o
  WHERE s.appid = o.appid AND s.room_session_id = o.room_session_id RETURNING 1
), pi AS (
  INSERT INTO presence_intervals (appid, room_session_id, user_account, session_id, room_id, user_nickname, user_role, login_at, logout_at, logout_reason, duration_ms)
  SELECT 1234567890, sid, 'user-' || (g % 5), 'sess-' || (g % 5), 'room-' || sid, 'nick', 1, now(), now(), 0, 1000 FROM cb WHERE ev IN ('room_login', 'room_logout')
  RETURNING 1
), cl AS (
  INSERT INTO close_reason_hourly (appid, hour_start, close_reason, closed_count)
  SELECT 1234567890, date_trunc('hour', now()), 1, count(*) FROM cb WHERE ev = 'room_close'
  ON CONFLICT (appid, hour_start, close_reason) DO UPDATE SET closed_count = close_reason_hourly.closed_count + excluded.closed_count
  RETURNING 1
), dl AS (
  INSERT INTO deliveries (received_at, remote_addr, endpoint, content_type, body, body_sha256, event, appid, room_id, room_session_id, outcome, event_id)
  SELECT now(), '127.0.0.1:40000', '/callbacks/' || ev, 'application/json', convert_to(repeat('{"x":' || g || '}', 40), 'UTF8'), md5(g::text || :base) || md5(g::text), ev, 1234567890, 'room-' || sid, sid, 'stored', NULL FROM cb
  RETURNING 1
)
SELECT (SELECT n FROM gr), (SELECT n FROM gp), (SELECT count(*) FROM sc), (SELECT count(*) FROM rg), (SELECT count(*) FROM ss), (SELECT count(*) FROM inserted_events), (SELECT count(*) FROM pi), (SELECT count(*) FROM cl), (SELECT count(*) FROM dl);
