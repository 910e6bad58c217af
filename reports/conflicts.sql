-- Data quality: deliveries that reused a stored event's identity with different content.
-- Parameters (NULL = no filter): :from, :to (on receive time), :appid.
SELECT d.received_at, d.event, d.appid, d.room_id, d.room_session_id, d.event_id, d.remote_addr
FROM deliveries d
WHERE d.outcome = 'conflict'
  AND (:from IS NULL OR d.received_at >= :from)
  AND (:to IS NULL OR d.received_at < :to)
  AND (:appid IS NULL OR d.appid = :appid)
ORDER BY d.received_at DESC, d.id DESC;
