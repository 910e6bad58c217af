#!/usr/bin/env bash
# Arrival order must not matter, under real concurrency and group commit:
# one set of signed callbacks (`send --write-requests`: shuffled sessions,
# 30% sent twice) is replayed into a fresh database three times, as
# written, shuffled and reversed (`send --replay`, 64 in flight), on SQLite
# and on PostgreSQL. Every replay must store each distinct event once and
# leave the same events, room sessions, presence intervals, close-reason
# rollup and delivery outcomes, row for row. Prints one line per replay and
# a summary line; exits 1 on any difference.
#   scripts/order-check.sh           (BIN: default a release build; SESSIONS 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/require.sh
require sqlite3 psql curl python3

BIN=${BIN:-target/release/zego-room-tracker}
SESSIONS=${SESSIONS:-1000}
USERS=5
# A port no other process holds (PORT picks one): a fixed default could
# reach another server still listening there, and its /readyz would pass.
PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
DB=zrt_order_check
export ZEGO_CALLBACK_SECRET=order-secret
[ "$BIN" = target/release/zego-room-tracker ] && cargo build --release -q
WORK=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The derived state, in a form that does not depend on the order rows were
# written in (no ids): one line per row, sorted.
STATE_SQL=(
  "SELECT event, appid, room_session_id, user_account, session_id, event_at, content_sha256 FROM events ORDER BY 1, 2, 3, 4, 5, 6"
  "SELECT appid, room_session_id, room_id, created_at, creator, closed_at, close_reason, first_event_at, started_at FROM room_sessions ORDER BY 1, 2"
  "SELECT appid, room_session_id, user_account, session_id, room_id, user_nickname, user_role, login_at, logout_at, logout_reason, duration_ms, login_event_id IS NULL, logout_event_id IS NULL FROM presence_intervals ORDER BY 1, 2, 3, 4, 8, 9"
  "SELECT appid, hour_start, close_reason, closed_count FROM close_reason_hourly ORDER BY 1, 2, 3"
  "SELECT outcome, count(*) FROM deliveries GROUP BY outcome ORDER BY 1"
)
dump_state() { # backend, target -> stdout
  for q in "${STATE_SQL[@]}"; do
    if [ "$1" = postgres ]; then psql -tA "$PG/$2" -c "$q"; else sqlite3 "$2" "$q"; fi
    echo "--"
  done
}

"$BIN" send --users $USERS --sessions "$SESSIONS" --shuffle --duplicates 0.3 \
  --write-requests "$WORK/as-written.tsv" >/dev/null
shuf "$WORK/as-written.tsv" >"$WORK/shuffled.tsv"
tac "$WORK/as-written.tsv" >"$WORK/reversed.tsv"
lines=$(wc -l <"$WORK/as-written.tsv")
distinct=$(( SESSIONS * (2 + 2 * USERS) ))

failed=0
for backend in sqlite postgres; do
  reference=""
  for order in as-written shuffled reversed; do
    if [ "$backend" = postgres ]; then
      psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" 2>/dev/null
      url="$PG/$DB"; target=$DB
    else
      rm -f "$WORK"/order.db*; url="sqlite://$WORK/order.db"; target="$WORK/order.db"
    fi
    DATABASE_URL=$url LISTEN_ADDR=127.0.0.1:$PORT RUST_LOG=warn "$BIN" >>"$WORK/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do curl -sf "localhost:$PORT/readyz" >/dev/null && break; sleep 0.1; done
    summary=$("$BIN" send --url "http://127.0.0.1:$PORT" --replay "$WORK/$order.tsv" --concurrency 64 2>&1) \
      || { echo "$backend $order: send --replay failed: $summary"; failed=1; }
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
    dump_state "$backend" "$target" >"$WORK/$backend-$order.state"
    events=$(awk '/^--$/ {exit} {n++} END {print n + 0}' "$WORK/$backend-$order.state")
    verdict=same
    if [ -z "$reference" ]; then
      reference=$order; verdict="reference"
    elif ! cmp -s "$WORK/$backend-$reference.state" "$WORK/$backend-$order.state"; then
      verdict=DIFFERENT; failed=1
      diff "$WORK/$backend-$reference.state" "$WORK/$backend-$order.state" | head -n 20
    fi
    stored=$(sed -n 's/.*stored=\([0-9]*\).*/\1/p' <<<"$summary")
    if [ "${stored:-0}" != "$distinct" ] || [ "$events" != "$distinct" ]; then
      verdict="$verdict, WRONG COUNT"; failed=1
    fi
    echo "$backend, $order: ${summary%%;*}; events $events of $distinct distinct; state $verdict"
  done
done
echo "order-check: $lines requests ($distinct distinct callbacks) in 3 orders on 2 backends: $([ "$failed" = 0 ] && echo "same state everywhere" || echo FAILED)"
exit "$failed"
