#!/usr/bin/env bash
# Seeds a scratch PostgreSQL database with synthetic history (bench/seed-postgres.sql),
# serves it with PostgreSQL's auto_explain on, calls every query API endpoint once,
# and prints each endpoint's query plans (EXPLAIN ANALYZE, as the server ran them)
# as Markdown. This is how docs/queries.md is made:
#   SESSIONS=1000000 scripts/explain-queries.sh > docs/queries.md
set -euo pipefail
cd "$(dirname "$0")/.."

SESSIONS=${SESSIONS:-1000000}
PGHOST_URL=${PGHOST_URL:-postgres://postgres@127.0.0.1:5432}
DB=zrt_explain
PORT=${PORT:-18080}
URL="$PGHOST_URL/$DB"
LOG=$(mktemp)

cargo build --release -q
BIN=target/release/zego-room-tracker
if [ "${REUSE:-0}" = 1 ]; then  # keep the database a previous run seeded
  DATABASE_URL=$URL "$BIN" migrate 2>/dev/null
  psql -q "$URL" -c "ANALYZE" >&2
else
  psql -q "$PGHOST_URL/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >&2
  DATABASE_URL=$URL "$BIN" migrate 2>/dev/null
  echo "seeding $SESSIONS sessions ..." >&2
  seed_start=$(date +%s)
  psql -q "$URL" -v sessions="$SESSIONS" -v users_per_session=3 -f bench/seed-postgres.sql >&2
  echo "seeded in $(( $(date +%s) - seed_start )) s" >&2
fi

# auto_explain logs each statement's plan as a NOTICE, which sqlx writes to our log.
opts="-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=0"
opts="$opts -c auto_explain.log_analyze=on -c auto_explain.log_level=notice"
DATABASE_URL="$URL?options=$(python3 -c 'import sys,urllib.parse;print(urllib.parse.quote(sys.argv[1]))' "$opts")" \
  ZEGO_CALLBACK_SECRET=unused LISTEN_ADDR=127.0.0.1:$PORT LOG_FORMAT=json \
  RUST_LOG=warn,sqlx::postgres::notice=info,zego_room_tracker=info "$BIN" 2>>"$LOG" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 50); do curl -sf "localhost:$PORT/readyz" >/dev/null && break; sleep 0.2; done

call() { # name, path
  printf '{"mark":"%s","path":"%s"}\n' "$1" "$2" >>"$LOG"
  local t; t=$(curl -s -o /dev/null -w '%{time_total}' "localhost:$PORT$2")
  printf '{"timing":"%s"}\n' "$t" >>"$LOG"
}
deep_cursor() {
  local cursor="" page
  for _ in $(seq 20); do
    page=$(curl -s "localhost:$PORT/api/v1/rooms/closed?limit=1000${cursor:+&cursor=$cursor}")
    cursor=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"])' <<<"$page")
  done
  echo "$cursor"
}
cursor=$(deep_cursor)
sleep 0.5; echo '{"start":true}' >>"$LOG"   # report only the calls below
call "Closed rooms, first page" "/api/v1/rooms/closed"
call "Closed rooms, page after 20,000 rows" "/api/v1/rooms/closed?cursor=$cursor"
call "Closed rooms of one room id" "/api/v1/rooms/closed?room_id=room-1234"
call "Closed rooms by reason" "/api/v1/rooms/closed?close_reason=2"
call "Closed rooms of one appid" "/api/v1/rooms/closed?appid=2"
call "Close reasons over one day" "/api/v1/stats/close-reasons?from=2026-10-10T00:00:00Z&to=2026-10-11T00:00:00Z"
call "Close reasons over 30 days by day" "/api/v1/stats/close-reasons?from=2026-10-01T00:00:00Z&to=2026-10-31T00:00:00Z&bucket=day"
call "Close reasons, all time" "/api/v1/stats/close-reasons"
call "Room history" "/api/v1/rooms/room-1234/sessions"
call "Session detail" "/api/v1/sessions/1000000001233"
call "Open rooms" "/api/v1/rooms/open"
call "Deliveries, rejected" "/api/v1/deliveries?outcome=rejected"
sleep 0.5

python3 - "$LOG" "$SESSIONS" <<'PY'
import json, sys, re
log, sessions = sys.argv[1], int(sys.argv[2])
print(f"# Query plans\n")
print(f"Every query of the query API, as PostgreSQL ran it (`EXPLAIN ANALYZE` through")
print(f"`auto_explain`), on a database seeded by `bench/seed-postgres.sql` with {sessions:,} room sessions,")
print(f"{sessions*3:,} presence intervals and their events. Regenerate with")
print(f"`SESSIONS={sessions} scripts/explain-queries.sh > docs/queries.md`.\n")
started = False
for line in open(log):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    started = started or "start" in rec
    if not started:
        continue
    if "mark" in rec:
        print(f"## {rec['mark']}\n\n`GET {rec['path'][:120]}`\n")
    elif "timing" in rec:
        print(f"HTTP round trip: {float(rec['timing'])*1000:.1f} ms\n")
    elif "plan:" in str(rec.get("message", "")):
        msg = rec["message"]
        text = msg.split("plan:", 1)[1].strip()
        query, _, plan = text.partition("\n")
        # Query Text may span lines; the plan starts at the first line with "  (cost" or "->".
        lines = text.splitlines()
        i = next((k for k, l in enumerate(lines) if re.search(r"\(cost=|\(actual", l) ), 0)
        print("```sql\n" + "\n".join(lines[:i]).replace("Query Text: ", "").strip() + "\n```\n")
        print("```\n" + "\n".join(lines[i:]) + "\n```\n")
PY
