-- Sessions still open (no close, no later lifecycle of the room), oldest first.
-- Parameters (NULL = no filter): :from, :to (on session start), :appid.
SELECT appid, room_id, room_session_id, started_at, created_at, creator, unique_users
FROM session_summary
WHERE state = 'open'
  AND (:from IS NULL OR started_at >= :from)
  AND (:to IS NULL OR started_at < :to)
  AND (:appid IS NULL OR appid = :appid)
ORDER BY started_at, appid, room_session_id COLLATE "C";
