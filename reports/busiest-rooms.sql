-- The 20 room ids with the most sessions (lifecycles).
-- Parameters (NULL = no filter): :from, :to (on session start), :appid.
SELECT appid, room_id, count(*) AS sessions,
       CAST(sum(duration_ms) AS BIGINT) AS total_duration_ms,
       max(started_at) AS last_started_at
FROM session_summary
WHERE (:from IS NULL OR started_at >= :from)
  AND (:to IS NULL OR started_at < :to)
  AND (:appid IS NULL OR appid = :appid)
GROUP BY appid, room_id
ORDER BY sessions DESC, appid, room_id COLLATE "C"
LIMIT 20;
