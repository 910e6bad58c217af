-- Data quality: sessions whose create never arrived, or whose close was lost (superseded).
-- Parameters (NULL = no filter): :from, :to (on session start), :appid.
SELECT appid, room_id, room_session_id, state, started_at,
       CASE WHEN created_at IS NULL AND state = 'superseded' THEN 'no create, no close'
            WHEN created_at IS NULL THEN 'no create'
            ELSE 'no close' END AS missing
FROM session_summary
WHERE (created_at IS NULL OR state = 'superseded')
  AND (:from IS NULL OR started_at >= :from)
  AND (:to IS NULL OR started_at < :to)
  AND (:appid IS NULL OR appid = :appid)
ORDER BY started_at, appid, room_session_id COLLATE "C";
