-- The 20 users with the most time in rooms (admins, role 4, left out).
-- Finished stays only (an open one has no length yet). A user any of whose
-- stays in a session carries role 4 is that session's admin, as in the API.
-- Parameters (NULL = no filter): :from, :to (on login time), :appid.
SELECT p.appid, p.user_account, count(*) AS stays,
       count(DISTINCT p.room_session_id) AS sessions,
       CAST(sum(p.duration_ms) AS BIGINT) AS total_ms
FROM presence p
WHERE p.duration_ms IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM presence admin
                  WHERE admin.appid = p.appid
                    AND admin.room_session_id = p.room_session_id
                    AND admin.user_account = p.user_account
                    AND admin.is_admin = 1)
  AND (:from IS NULL OR p.login_at >= :from)
  AND (:to IS NULL OR p.login_at < :to)
  AND (:appid IS NULL OR p.appid = :appid)
GROUP BY p.appid, p.user_account
ORDER BY total_ms DESC, p.appid, p.user_account
LIMIT 20;
