#!/usr/bin/env bash
# Ingest throughput of the release build on PostgreSQL and SQLite, group
# commit on and off, driven by `zego-room-tracker send` (unique, signed
# callbacks: per session one create, N logins, N logouts, one close; each
# session's callbacks in order, CONCURRENCY sessions at once) from the same
# machine. Prints a Markdown row per configuration: the sender's summary, the
# server's peak resident memory, and the events found in the database after.
# With ANCHORS (default ../shared/bench-anchors, the workplace's reference
# instruments, run from where they are) it first measures PostgreSQL's own
# per-commit ceiling for this write pattern with pgbench, and prints our
# PostgreSQL figures as a ratio of it.
#   scripts/bench-ingest.sh            (SESSIONS=1000 USERS=4 CONCURRENCY=64)
set -euo pipefail
cd "$(dirname "$0")/.."
SESSIONS=${SESSIONS:-1000}; USERS=${USERS:-4}; CONCURRENCY=${CONCURRENCY:-64}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
PORT=${PORT:-18100}
cargo build --release -q
BIN=target/release/zego-room-tracker
DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT
export ZEGO_CALLBACK_SECRET=bench
expected=$(( SESSIONS * (2 + 2 * USERS) ))

run() { # label, database url, GROUP_COMMIT, command that prints the event count
  DATABASE_URL=$2 GROUP_COMMIT=$3 LISTEN_ADDR=127.0.0.1:$PORT RUST_LOG=warn "$BIN" 2>>"$DIR/server.log" &
  local pid=$!
  for _ in $(seq 100); do curl -sf "localhost:$PORT/readyz" >/dev/null && break; sleep 0.1; done
  ( peak=0; while kill -0 $pid 2>/dev/null; do
      rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
      [ "${rss:-0}" -gt "$peak" ] && peak=$rss && echo "$peak" >"$DIR/rss"
      sleep 0.1; done ) &
  local sampler=$!
  local summary
  summary=$("$BIN" send --url "http://127.0.0.1:$PORT" --sessions "$SESSIONS" --users "$USERS" \
    --concurrency "$CONCURRENCY" 2>/dev/null | tail -n 1)
  kill $pid; wait $pid 2>/dev/null || true
  wait $sampler 2>/dev/null || true
  local ratio=""
  local rps; rps=$(sed -n 's/.*(\([0-9]*\)\/s).*/\1/p' <<<"$summary")
  if [ -n "$ceiling" ] && [[ $1 == PostgreSQL* ]]; then
    ratio=" (x$(python3 -c "print(f'{$rps / $ceiling:.2f}')") of pgbench)"
  fi
  echo "| $1 | $summary$ratio | $(( $(cat "$DIR/rss") / 1024 )) MiB | $(eval "$4") of $expected |"
}

ANCHORS=${ANCHORS:-../shared/bench-anchors}
ceiling=""
if [ -f "$ANCHORS/c_event_plus_delivery.sql" ] && command -v pgbench >/dev/null; then
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS anchor WITH (FORCE)" -c "CREATE DATABASE anchor" 2>/dev/null
  psql -q "$PG/anchor" -f "$ANCHORS/schema.sql" >/dev/null 2>&1
  ceiling=$(cd "$ANCHORS" && pgbench -n -M prepared -f c_event_plus_delivery.sql -c 32 -j 2 -T 10 \
    -h 127.0.0.1 -U postgres anchor 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
  echo "pgbench anchor (one event row + one archive row per commit, 32 clients, 10 s): ${ceiling} commits/s"
  echo
fi

echo "| configuration | sender summary | server peak RSS | events stored |"
echo "|---|---|---|---|"
for gc in true false; do
  db=zrt_bench_$gc
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" 2>/dev/null
  run "PostgreSQL, GROUP_COMMIT=$gc" "$PG/$db" $gc "psql -tA $PG/$db -c 'SELECT count(*) FROM events'"
done
for gc in true false; do
  run "SQLite, GROUP_COMMIT=$gc" "sqlite://$DIR/$gc.db" $gc "sqlite3 $DIR/$gc.db 'SELECT count(*) FROM events'"
done
