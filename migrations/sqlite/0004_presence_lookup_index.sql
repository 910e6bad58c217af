-- A login's or logout's identity leads with the user and user session, so
-- group commit's lookup of a presence group's stored logins and logouts
-- (store/write.rs, presence_groups) can use no index but these. With
-- (appid, room_session_id) first, the planner saw two equally cheap indexes
-- on a young table (before its first ANALYZE): this one and events_by_session,
-- which in a busy room reads every event of the session for each user.
-- Same columns, so the same identity; paired with the other backend's 0004.
DROP INDEX events_room_login_identity;
CREATE UNIQUE INDEX events_room_login_identity
    ON events (user_account, session_id, appid, room_session_id, event_at) WHERE event = 'room_login';
DROP INDEX events_room_logout_identity;
CREATE UNIQUE INDEX events_room_logout_identity
    ON events (user_account, session_id, appid, room_session_id, event_at) WHERE event = 'room_logout';
