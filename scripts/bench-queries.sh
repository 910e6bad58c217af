#!/usr/bin/env bash
# Query API at scale: seeds PostgreSQL (10M sessions, ~50M presence intervals)
# and SQLite (1M sessions) with `zego-room-tracker seed`, serves each with the
# release binary, and times every query endpoint over HTTP
# (bench/query_client.py: WARMUP then REQUESTS sequential requests each, one
# keep-alive connection), printing a Markdown table per backend.
#
#   scripts/bench-queries.sh                 # full run
#   BENCH_SMOKE=1 scripts/bench-queries.sh   # 20k sessions, few requests, < 1 min
#
# A database already seeded with the same flags is reused (checked with
# `seed --check`, which also verifies close_reason_hourly equals a recount);
# RESEED=1 seeds again. Exits non-zero on errors (a non-200 answer, a wrong
# answer, the rollup differing from a recount), never on a missed target.
# BIN skips the build and uses that binary. Settings: BACKENDS ("postgres sqlite"), PG_SESSIONS, SQLITE_SESSIONS,
# USERS_PER_SESSION, REQUESTS, WARMUP, DEEP_PAGES, PGHOST_URL (default PG, as in bench-ingest.sh), PORT, BENCH_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/require.sh
require psql curl python3

for arg in "$@"; do
  case $arg in
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (try --help; settings are environment variables)" >&2; exit 64 ;;
  esac
done

if [ "${BENCH_SMOKE:-0}" = 1 ]; then
  PG_SESSIONS=${PG_SESSIONS:-20000} SQLITE_SESSIONS=${SQLITE_SESSIONS:-20000}
  REQUESTS=${REQUESTS:-10} WARMUP=${WARMUP:-2} DEEP_PAGES=${DEEP_PAGES:-5} suffix=_smoke
else
  PG_SESSIONS=${PG_SESSIONS:-10000000} SQLITE_SESSIONS=${SQLITE_SESSIONS:-1000000}
  REQUESTS=${REQUESTS:-200} WARMUP=${WARMUP:-20} DEEP_PAGES=${DEEP_PAGES:-100} suffix=
fi
USERS_PER_SESSION=${USERS_PER_SESSION:-5}
BACKENDS=${BACKENDS:-postgres sqlite}
PGHOST_URL=${PGHOST_URL:-${PG:-postgres://postgres@127.0.0.1:5432}}
# A port no other process holds (PORT picks one): a fixed default could
# reach another server still listening there, and its /readyz would pass.
PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
BENCH_DIR=${BENCH_DIR:-target/bench-queries}
TOKEN=bench-token
export PORT TOKEN REQUESTS WARMUP DEEP_PAGES
mkdir -p "$BENCH_DIR"

# Smoke mode (CI) reuses the debug build the tests made; timings then mean
# little, the run only proves the scripts and the answers still work.
if [ -n "${BIN:-}" ]; then
  :
elif [ "${BENCH_SMOKE:-0}" = 1 ]; then
  cargo build -q; BIN=target/debug/zego-room-tracker
else
  cargo build --release -q; BIN=target/release/zego-room-tracker
fi
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; true' EXIT
status=0

for backend in $BACKENDS; do
  case $backend in
    postgres) sessions=$PG_SESSIONS db=zrt_bench_queries$suffix url=$PGHOST_URL/$db label=PostgreSQL ;;
    sqlite) sessions=$SQLITE_SESSIONS file=$BENCH_DIR/queries-$SQLITE_SESSIONS.db url=sqlite://$file label=SQLite ;;
    *) echo "unknown backend $backend" >&2; exit 2 ;;
  esac
  flags=(--sessions "$sessions" --users-per-session "$USERS_PER_SESSION")
  ids=$BENCH_DIR/$backend$suffix.ids
  # Reuse a database seeded with the same flags; `seed --check` fails on
  # counts or a big session other flags would give, and on a rollup that
  # differs from a recount.
  if [ "${RESEED:-0}" != 1 ] && DATABASE_URL=$url "$BIN" seed --check "${flags[@]}" >"$ids" 2>"$ids.err"; then
    echo "$label: reusing the database seeded with ${sessions} sessions ($url)" >&2
  else
    if grep -q "^sessions=$sessions$" "$ids" 2>/dev/null; then
      cat "$ids.err" >&2; status=1; continue   # right size but the rollup differs: an error, not a reseed
    fi
    echo "$label: seeding ${sessions} sessions ($url) ..." >&2
    if [ "$backend" = postgres ]; then
      psql -q "$PGHOST_URL/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >&2
    else
      rm -f "$file" "$file-wal" "$file-shm"
    fi
    start=$(date +%s.%N)
    DATABASE_URL=$url "$BIN" seed "${flags[@]}" | tee "$ids" >&2
    echo "$label: seeded in $(python3 -c "print(round($(date +%s.%N) - $start, 1))") s" >&2
  fi
  # Export the ids the seed printed (big_session_id=..., hot_room=...) in upper case.
  while IFS='=' read -r key value; do
    case $key in *[!a-z_]*|'') ;; *) export "${key^^}=$value" ;; esac
  done < <(grep -E '^[a-z_]+=' "$ids")

  # DATABASE_TIMEOUT_MS: the client compares all-time statistics from the rollup with a
  # recount of every session (one request, untimed), which at 10M takes longer than the 5 s default.
  DATABASE_URL=$url DATABASE_TIMEOUT_MS=60000 LISTEN_ADDR=127.0.0.1:$PORT ZEGO_CALLBACK_SECRET=bench-secret API_TOKENS=$TOKEN \
    RUST_LOG=warn "$BIN" serve >"$BENCH_DIR/server-$backend.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -sf "127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done

  intervals=$(grep -m1 -oE 'intervals=[0-9]+|[0-9]+ presence intervals' "$ids" | grep -oE '[0-9]+')
  echo
  echo "### $label, $(printf "%'d" "$sessions") sessions, $(printf "%'d" "$intervals") presence intervals"
  echo
  python3 bench/query_client.py || status=1
  kill "$server"; wait "$server" 2>/dev/null || true; server=
done
exit $status
