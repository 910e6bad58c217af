-- Ingestion schema: events (exactly once), the delivery archive, the replay
-- guard, and the merged room sessions and presence intervals.
-- Paired with migrations/sqlite/0001_ingestion.sql; docs/schema.md explains why.

-- Every accepted callback once. Identity (what makes a retry a duplicate) is
-- enforced by the partial unique indexes below, one per event kind.
CREATE TABLE events (
    id              BIGSERIAL PRIMARY KEY,
    event           TEXT        NOT NULL CHECK (event IN ('room_create', 'room_close', 'room_login', 'room_logout')),
    appid           BIGINT      NOT NULL,
    room_id         TEXT        NOT NULL,
    -- room_session_id (create/close) = room_seq (login/logout): UInt64 as canonical decimal text.
    room_session_id TEXT        NOT NULL,
    -- ZEGO's event time: room_create_time, room_close_time, login_time or logout_time.
    event_at        TIMESTAMPTZ NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL,
    user_account    TEXT,
    session_id      TEXT,
    user_nickname   TEXT,
    user_role       BIGINT,
    -- room_logout only: the login_time the logout carries (current payloads).
    login_at        TIMESTAMPTZ,
    -- close_reason of a close, reason of a logout.
    reason          BIGINT,
    creator         TEXT,
    room_name       TEXT,
    content_sha256  TEXT        NOT NULL,
    CHECK ((event IN ('room_login', 'room_logout')) = (user_account IS NOT NULL AND session_id IS NOT NULL))
);

CREATE UNIQUE INDEX events_room_create_identity ON events (appid, room_session_id) WHERE event = 'room_create';
CREATE UNIQUE INDEX events_room_close_identity ON events (appid, room_session_id) WHERE event = 'room_close';
CREATE UNIQUE INDEX events_room_login_identity
    ON events (appid, room_session_id, user_account, session_id, event_at) WHERE event = 'room_login';
CREATE UNIQUE INDEX events_room_logout_identity
    ON events (appid, room_session_id, user_account, session_id, event_at) WHERE event = 'room_logout';
CREATE INDEX events_by_session ON events (appid, room_session_id, event_at);

-- Every delivery that reached a handler, accepted or not, with its raw body.
CREATE TABLE deliveries (
    id              BIGSERIAL PRIMARY KEY,
    received_at     TIMESTAMPTZ NOT NULL,
    remote_addr     TEXT,
    endpoint        TEXT        NOT NULL,
    content_type    TEXT,
    body            BYTEA       NOT NULL,
    body_sha256     TEXT        NOT NULL,
    -- Best-effort fields read from the body, even when it was rejected.
    event           TEXT,
    appid           BIGINT,
    room_id         TEXT,
    room_session_id TEXT,
    outcome         TEXT        NOT NULL CHECK (outcome IN ('stored', 'duplicate', 'conflict', 'ignored', 'rejected')),
    reason          TEXT,
    detail          TEXT,
    -- The event this delivery stored, duplicated or conflicted with.
    event_id        BIGINT
);

CREATE INDEX deliveries_by_received_at ON deliveries (received_at, id);
CREATE INDEX deliveries_by_outcome ON deliveries (outcome, id);

-- The signature covers only (secret, timestamp, nonce), not the body: each
-- signed triple is bound to the first body seen with it.
CREATE TABLE replay_guard (
    sent_timestamp TEXT        NOT NULL,
    nonce          TEXT        NOT NULL,
    signature      TEXT        NOT NULL,
    body_sha256    TEXT        NOT NULL,
    first_seen_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (sent_timestamp, nonce, signature)
);

CREATE INDEX replay_guard_by_first_seen ON replay_guard (first_seen_at);

-- One row per room lifecycle, merged from all its events in any order.
CREATE TABLE room_sessions (
    appid           BIGINT      NOT NULL,
    room_session_id TEXT        NOT NULL,
    room_id         TEXT        NOT NULL,
    created_at      TIMESTAMPTZ,
    creator         TEXT,
    closed_at       TIMESTAMPTZ,
    close_reason    BIGINT,
    -- Earliest event time of any event of the session.
    first_event_at  TIMESTAMPTZ NOT NULL,
    -- created_at when the create arrived, else first_event_at.
    started_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (appid, room_session_id)
);

-- Supersession ("a later lifecycle of the same room exists") and room history.
CREATE INDEX room_sessions_by_room ON room_sessions (appid, room_id, started_at);
CREATE INDEX room_sessions_by_room_id ON room_sessions (room_id, started_at, appid, room_session_id);
-- Session detail by id alone (appid optional in the API).
CREATE INDEX room_sessions_by_session_id ON room_sessions (room_session_id);
-- Closed rooms newest first: all, per appid, per room, per reason. close_reason
-- rides along so close-reason statistics are index-only scans.
CREATE INDEX room_sessions_closed ON room_sessions (closed_at, appid, room_session_id, close_reason) WHERE closed_at IS NOT NULL;
CREATE INDEX room_sessions_closed_by_app ON room_sessions (appid, closed_at, room_session_id) WHERE closed_at IS NOT NULL;
CREATE INDEX room_sessions_closed_by_room ON room_sessions (room_id, closed_at, close_reason) WHERE closed_at IS NOT NULL;
CREATE INDEX room_sessions_closed_by_reason ON room_sessions (close_reason, closed_at) WHERE closed_at IS NOT NULL;
-- Open rooms newest first.
CREATE INDEX room_sessions_unclosed ON room_sessions (started_at, appid, room_session_id) WHERE closed_at IS NULL;

-- Logins paired with logouts, recomputed per (appid, room_session_id,
-- user_account, session_id) group whenever one of its events arrives.
CREATE TABLE presence_intervals (
    id              BIGSERIAL PRIMARY KEY,
    appid           BIGINT      NOT NULL,
    room_session_id TEXT        NOT NULL,
    user_account    TEXT        NOT NULL,
    session_id      TEXT        NOT NULL,
    room_id         TEXT        NOT NULL,
    user_nickname   TEXT,
    user_role       BIGINT,
    login_at        TIMESTAMPTZ,
    logout_at       TIMESTAMPTZ,
    logout_reason   BIGINT,
    duration_ms     BIGINT,
    login_event_id  BIGINT,
    logout_event_id BIGINT
);

CREATE INDEX presence_intervals_by_group ON presence_intervals (appid, room_session_id, user_account, session_id);
