#!/usr/bin/env bash
# Fault runs against a real server and PostgreSQL, with `send` retrying on a
# shortened ZEGO schedule. Each prints a Markdown table row, then a summary line.
#   scripts/faults.sh kill          # SIGKILL the server mid-load, restart it
#   scripts/faults.sh db-restart    # restart PostgreSQL mid-load (stops the system cluster briefly)
#   scripts/faults.sh all
# BIN picks the binary (default: a release build); SESSIONS the load size.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/require.sh
require psql curl python3

BIN=${BIN:-target/release/zego-room-tracker}
SESSIONS=${SESSIONS:-300}
USERS=3
# A port no other process holds (PORT picks one): a fixed default could
# reach another server still listening there, and its /readyz would pass.
PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
SECRET=fault-secret
[ "$BIN" = target/release/zego-room-tracker ] && cargo build --release -q
WORK=$(mktemp -d)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

start_server() { # db
  DATABASE_URL="$PG/$1" ZEGO_CALLBACK_SECRET=$SECRET LISTEN_ADDR=127.0.0.1:$PORT DATABASE_TIMEOUT_MS=1000 \
    "$BIN" >>"$WORK/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do curl -sf "localhost:$PORT/healthz" >/dev/null && return; sleep 0.1; done
  echo "server did not start" >&2; exit 1
}

fresh_db() {
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" 2>/dev/null
}

load() { # starts send in the background; its summary goes to $WORK/send.out
  ZEGO_CALLBACK_SECRET=$SECRET "$BIN" send --url "http://127.0.0.1:$PORT" --sessions "$SESSIONS" \
    --users $USERS --concurrency 16 --shuffle --duplicates 0.1 --retry-schedule 0.5,1,2,4,8,16,32 \
    >"$WORK/send.out" 2>/dev/null &
  send_pid=$!
}

mid_load() { # db: returns once the load is under way (a quarter of its events
  # stored) with the sender still running, and prints how many are stored. A
  # fault after the load ended would prove nothing (every callback already
  # acknowledged, none retried), so that fails the run.
  local expected=$(( SESSIONS * (2 + 2 * USERS) )) n=0
  for _ in $(seq 600); do
    n=$(psql -tA "$PG/$1" -c "SELECT count(*) FROM events" 2>/dev/null || echo 0)
    if [ "$n" -ge $(( expected / 4 )) ]; then
      if kill -0 "$send_pid" 2>/dev/null && [ "$n" -lt "$expected" ]; then
        echo "$n"; return 0
      fi
      echo "the load ended before the fault ($n of $expected events stored); raise SESSIONS" >&2
      return 1
    fi
    sleep 0.05
  done
  echo "the load did not get under way ($n events stored in 30 s)" >&2
  return 1
}

verdict() { # name, what, db
  local sent_ok=0
  wait "$send_pid" && sent_ok=1
  local summary; summary=$(tail -n 1 "$WORK/send.out")
  local sent; sent=$(sed -n 's/^[0-9]* sessions, \([0-9]*\) callbacks.*/\1/p' <<<"$summary")
  local acked=$(( $(grep -o 'stored=[0-9]*' <<<"$summary" | cut -d= -f2) + $(grep -o 'duplicate=[0-9]*' <<<"$summary" | cut -d= -f2 || echo 0) ))
  local expected=$(( SESSIONS * (2 + 2 * USERS) ))
  local stored; stored=$(psql -tA "$PG/$3" -c "SELECT count(*) FROM events")
  local dupes; dupes=$(psql -tA "$PG/$3" -c "SELECT count(*) - count(DISTINCT (event, appid, room_session_id, user_account, session_id, event_at)) FROM events")
  local lost=$(( expected - stored ))
  local result=FAIL
  [ "$sent_ok" = 1 ] && [ "$lost" = 0 ] && [ "$dupes" = 0 ] && [ "$acked" = "${sent:-x}" ] && result=PASS
  echo "| $1 | $2 | ${sent:-?} | $acked | $stored of $expected distinct | $lost | $result |"
  [ "$result" = PASS ]
}

run_kill() {
  local db=zrt_fault_kill at; fresh_db $db; start_server $db
  load; at=$(mid_load $db) || return 1
  kill -9 "$server_pid"; wait "$server_pid" 2>/dev/null || true
  sleep 1; start_server $db
  verdict "SIGKILL mid-load" "server killed with SIGKILL with $at events stored and the load running, restarted 1 s later" $db
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
}

run_db_restart() {
  local db=zrt_fault_restart; fresh_db $db; start_server $db
  local version at; version=$(ls /etc/postgresql | sort -V | tail -n 1)
  load; at=$(mid_load $db) || return 1
  pg_ctlcluster --skip-systemctl-redirect "$version" main stop -m fast
  sleep 2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  verdict "PostgreSQL restart mid-load" "cluster stopped (fast) with $at events stored and the load running, started 2 s later" $db
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
}

echo "| run | what was done | callbacks sent | acknowledged (2xx) | events stored | lost | result |"
echo "|---|---|---|---|---|---|---|"
failed=0; passed=0
for run in ${1:-all}; do
  case $run in
    kill) runs=(run_kill) ;;
    db-restart) runs=(run_db_restart) ;;
    all) runs=(run_kill run_db_restart) ;;
    *) echo "unknown run $run" >&2; exit 2 ;;
  esac
  for r in "${runs[@]}"; do
    if $r; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  done
done
echo
echo "faults: $passed passed, $failed failed"
[ "$failed" = 0 ]
