-- Close-reason counts per appid, UTC hour and reason, maintained at ingest
-- (one increment when a session's close is stored; a session closes once),
-- so close-reason statistics read thousands of rows, not millions.
-- Paired with migrations/postgres/0002_close_reason_rollup.sql. hour_start is
-- text in the same form as every other time ('2026-10-01T05:00:00+00:00').
CREATE TABLE close_reason_hourly (
    appid        INTEGER NOT NULL,
    hour_start   TEXT    NOT NULL,
    close_reason INTEGER NOT NULL,
    closed_count INTEGER NOT NULL,
    PRIMARY KEY (appid, hour_start, close_reason)
);

CREATE INDEX close_reason_hourly_by_hour ON close_reason_hourly (hour_start);

INSERT INTO close_reason_hourly (appid, hour_start, close_reason, closed_count)
SELECT appid, strftime('%Y-%m-%dT%H:00:00+00:00', closed_at), close_reason, count(*)
FROM room_sessions WHERE closed_at IS NOT NULL
GROUP BY 1, 2, 3;
