-- The API leaves a user out of a session's counts when any of their stays
-- there carries role 4 (a recorder that also joined as audience is still
-- the session's admin). The presence view's is_admin judges one stay; its
-- new last column, admin_in_session, is the API's rule, so reports and
-- people's own SQL can leave admins out as the API does.
-- Paired with migrations/postgres/0006_presence_admin_in_session.sql.

DROP VIEW presence;
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
       CASE WHEN p.logout_event_id IS NULL THEN 0 ELSE 1 END AS has_logout_event,
       CASE WHEN EXISTS (SELECT 1 FROM presence_intervals a
                         WHERE a.appid = p.appid AND a.room_session_id = p.room_session_id
                           AND a.user_account = p.user_account AND a.user_role = 4)
            THEN 1 ELSE 0 END AS admin_in_session
FROM presence_intervals p;
