-- Two lifecycles of one room can share a started_at (two creates in one
-- millisecond, or a session known only from logins that began in the
-- millisecond another was created). "Superseded" compared started_at alone,
-- strictly, so both such lifecycles showed as open. A later lifecycle is now
-- the greater (started_at, room_session_id), the room history's order, newest
-- first: at most one lifecycle of a room per appid is open, the first listed.
-- The id compares as bytes, SQLite's default (PostgreSQL says COLLATE "C").
-- Paired with migrations/postgres/0005_lifecycle_tie_break.sql.

-- The index serves that comparison as an index-only range. (SQLite cannot
-- rename an index, and its readers keep their snapshot while this runs.)
DROP INDEX room_sessions_by_room;
CREATE INDEX room_sessions_by_room ON room_sessions (appid, room_id, started_at, room_session_id);

DROP VIEW session_summary;
CREATE VIEW session_summary AS
SELECT s.appid, s.room_id, s.room_session_id,
       CASE WHEN s.closed_at IS NOT NULL THEN 'closed'
            WHEN EXISTS (SELECT 1 FROM room_sessions l
                         WHERE l.appid = s.appid AND l.room_id = s.room_id
                           AND (l.started_at, l.room_session_id) > (s.started_at, s.room_session_id))
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
