-- Close-reason counts per appid, UTC hour and reason, maintained at ingest
-- (one increment when a session's close is stored; a session closes once),
-- so close-reason statistics read thousands of rows, not millions.
-- Paired with migrations/sqlite/0002_close_reason_rollup.sql.
CREATE TABLE close_reason_hourly (
    appid        BIGINT      NOT NULL,
    hour_start   TIMESTAMPTZ NOT NULL,
    close_reason BIGINT      NOT NULL,
    closed_count BIGINT      NOT NULL,
    PRIMARY KEY (appid, hour_start, close_reason)
);

CREATE INDEX close_reason_hourly_by_hour ON close_reason_hourly (hour_start);

INSERT INTO close_reason_hourly (appid, hour_start, close_reason, closed_count)
SELECT appid, date_trunc('hour', closed_at, 'UTC'), close_reason, count(*)
FROM room_sessions WHERE closed_at IS NOT NULL
GROUP BY 1, 2, 3;
