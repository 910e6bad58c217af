-- Closed sessions per UTC day and close reason.
-- Parameters (NULL = no filter): :from, :to pick whole UTC days by their start
-- (a day starting at or after :from and before :to: give midnights), :appid.
-- psql: psql -v from=NULL -v to=NULL -v appid=NULL -f reports/close-reasons-by-day.sql
SELECT day, close_reason, close_reason_name, CAST(sum(closed) AS BIGINT) AS closed
FROM daily_close_reasons
WHERE (:from IS NULL OR day_start >= :from)
  AND (:to IS NULL OR day_start < :to)
  AND (:appid IS NULL OR appid = :appid)
GROUP BY day, close_reason, close_reason_name
ORDER BY day, close_reason;
