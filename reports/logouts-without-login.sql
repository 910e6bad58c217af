-- Data quality: presence intervals with a logout but no login callback.
-- login_at is still known when the logout carried login_time.
-- Parameters (NULL = no filter): :from, :to (on logout time), :appid.
SELECT appid, room_id, room_session_id, user_account, session_id, login_at, logout_at, logout_reason_name
FROM presence
WHERE has_login_event = 0 AND has_logout_event = 1
  AND (:from IS NULL OR logout_at >= :from)
  AND (:to IS NULL OR logout_at < :to)
  AND (:appid IS NULL OR appid = :appid)
ORDER BY logout_at, appid, room_session_id COLLATE "C", user_account COLLATE "C",
         session_id COLLATE "C";
