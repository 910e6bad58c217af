-- The 20 users with the most time in rooms (admins, role 4, left out).
-- Finished stays only (an open one has no length yet). A user any of whose
-- stays in a session carries role 4 is that session's admin, as in the API.
-- Parameters (NULL = no filter): :from, :to (on login time), :appid.
SELECT appid, user_account, count(*) AS stays, count(DISTINCT room_session_id) AS sessions,
       CAST(sum(duration_ms) AS BIGINT) AS total_ms
FROM presence
WHERE admin_in_session = 0 AND duration_ms IS NOT NULL
  AND (:from IS NULL OR login_at >= :from)
  AND (:to IS NULL OR login_at < :to)
  AND (:appid IS NULL OR appid = :appid)
GROUP BY appid, user_account
ORDER BY total_ms DESC, appid, user_account COLLATE "C"
LIMIT 20;
