-- The 20 longest closed sessions (create to close).
-- Parameters (NULL = no filter): :from, :to (on close time), :appid.
SELECT appid, room_id, room_session_id, created_at, closed_at, duration_ms, close_reason_name, unique_users
FROM session_summary
WHERE duration_ms IS NOT NULL
  AND (:from IS NULL OR closed_at >= :from)
  AND (:to IS NULL OR closed_at < :to)
  AND (:appid IS NULL OR appid = :appid)
ORDER BY duration_ms DESC, appid, room_session_id COLLATE "C"
LIMIT 20;
