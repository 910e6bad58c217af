-- Views for people's own SQL: stable names and columns across versions, with
-- reason names and derived values spelled out. Paired with
-- migrations/postgres/0003_report_views.sql (same columns; times are text here).

-- One row per room session.
CREATE VIEW session_summary AS
SELECT s.appid, s.room_id, s.room_session_id,
       CASE WHEN s.closed_at IS NOT NULL THEN 'closed'
            WHEN EXISTS (SELECT 1 FROM room_sessions l
                         WHERE l.appid = s.appid AND l.room_id = s.room_id AND l.started_at > s.started_at)
            THEN 'superseded'
            ELSE 'open' END AS state,
       s.started_at, s.created_at, s.closed_at, s.close_reason,
       CASE WHEN s.close_reason IS NULL THEN NULL
            WHEN s.close_reason = 0 THEN 'normal' WHEN s.close_reason = 1 THEN 'heartbeat_timeout'
            WHEN s.close_reason = 2 THEN 'last_user_disconnected' WHEN s.close_reason = 3 THEN 'last_user_kicked_out'
            ELSE 'unknown' END AS close_reason_name,
       CAST(round((julianday(s.closed_at) - julianday(s.created_at)) * 86400000.0) AS INTEGER) AS duration_ms,
       s.creator,
       (SELECT count(*) FROM (SELECT p.user_account FROM presence_intervals p
                              WHERE p.appid = s.appid AND p.room_session_id = s.room_session_id
                              GROUP BY p.user_account
                              HAVING max(CASE WHEN p.user_role = 4 THEN 1 ELSE 0 END) = 0) u) AS unique_users,
       (SELECT count(DISTINCT p.user_account) FROM presence_intervals p
        WHERE p.appid = s.appid AND p.room_session_id = s.room_session_id) AS unique_users_with_admins
FROM room_sessions s;

-- One row per presence interval (a user's stay in a session).
CREATE VIEW presence AS
SELECT p.appid, p.room_id, p.room_session_id, p.user_account, p.user_nickname, p.user_role,
       CASE WHEN p.user_role = 4 THEN 1 ELSE 0 END AS is_admin,
       p.session_id, p.login_at, p.logout_at, p.logout_reason,
       CASE WHEN p.logout_reason IS NULL THEN NULL
            WHEN p.logout_reason = 0 THEN 'normal' WHEN p.logout_reason = 1 THEN 'heartbeat_timeout'
            WHEN p.logout_reason = 2 THEN 'disconnected' WHEN p.logout_reason = 3 THEN 'kicked_out'
            WHEN p.logout_reason = 4 THEN 'token_expired'
            ELSE 'unknown' END AS logout_reason_name,
       p.duration_ms,
       CASE WHEN p.login_event_id IS NULL THEN 0 ELSE 1 END AS has_login_event,
       CASE WHEN p.logout_event_id IS NULL THEN 0 ELSE 1 END AS has_logout_event
FROM presence_intervals p;

-- Closed sessions per appid, UTC day and close reason (from the rollup).
CREATE VIEW daily_close_reasons AS
SELECT appid,
       substr(hour_start, 1, 10) AS day,
       strftime('%Y-%m-%dT00:00:00+00:00', hour_start) AS day_start,
       close_reason,
       CASE WHEN close_reason = 0 THEN 'normal' WHEN close_reason = 1 THEN 'heartbeat_timeout'
            WHEN close_reason = 2 THEN 'last_user_disconnected' WHEN close_reason = 3 THEN 'last_user_kicked_out'
            ELSE 'unknown' END AS close_reason_name,
       sum(closed_count) AS closed
FROM close_reason_hourly
GROUP BY 1, 2, 3, 4;
