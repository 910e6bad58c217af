#!/usr/bin/env bash
# Seeds a scratch PostgreSQL database with synthetic history (bench/seed-postgres.sql),
# serves it with PostgreSQL's auto_explain on, calls every query API endpoint once,
# and prints each endpoint's query plans (EXPLAIN ANALYZE, as the server ran them)
# as Markdown. This is how docs/queries.md is made:
#   SESSIONS=1000000 scripts/explain-queries.sh > docs/queries.md
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/require.sh
require psql curl python3

SESSIONS=${SESSIONS:-1000000}
PGHOST_URL=${PGHOST_URL:-postgres://postgres@127.0.0.1:5432}
DB=zrt_explain
# A port no other process holds (PORT picks one): a fixed default could
# reach another server still listening there, and its /readyz would pass.
PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
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
sections, started = [], False
for line in open(log):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    started = started or "start" in rec
    if not started:
        continue
    if "mark" in rec:
        sections.append({"name": rec["mark"], "path": rec["path"], "plans": [], "ms": None})
    elif "timing" in rec and sections:
        sections[-1]["ms"] = float(rec["timing"]) * 1000
    elif "plan:" in str(rec.get("message", "")) and sections:
        lines = rec["message"].split("plan:", 1)[1].strip().splitlines()
        i = next((k for k, l in enumerate(lines) if re.search(r"\(cost=|\(actual", l)), 0)
        query = "\n".join(lines[:i]).replace("Query Text: ", "").strip()
        sections[-1]["plans"].append((query, lines[i:]))

def access(plans):
    """The scans that read the main table of each statement."""
    found = []
    for _, plan in plans:
        for l in plan:
            m = re.search(r"((?:Parallel )?(?:Index Only Scan|Index Scan|Bitmap Index Scan|Seq Scan)(?: Backward)?) (?:using (\S+) )?on (\S+)", l)
            if m and m.group(3) not in ("l", "l_1", "p"):
                found.append(f"{m.group(1)} `{m.group(2) or m.group(3)}`")
                break
    return "; ".join(found)

print("# Query plans\n")
print("Every query of the query API as PostgreSQL ran it (`EXPLAIN ANALYZE` through")
print(f"`auto_explain`), on a database seeded by `bench/seed-postgres.sql` with {sessions:,} room")
print(f"sessions, {sessions*3:,} presence intervals, their events and one archived delivery per session.")
print("Machine: 2 cores, 24 GiB, PostgreSQL 15 with default settings, the server and database on the same")
print("machine; round trips are one `curl` each, cold-ish, with `auto_explain` timing every plan node "
      "(slower than the service runs: `docs/benchmarks.md` has its timings). "
      f"Regenerate: `SESSIONS={sessions} scripts/explain-queries.sh > docs/queries.md`.\n")
print("Each list is a backward scan of the index whose order is its ORDER BY's time (and appid),")
print("stopping after `limit + 1` rows, with the keyset cursor's time (and appid) as an index")
print("condition, so a deep page costs what the first does; an incremental sort orders the rare")
print("sessions that tie on them by `room_session_id` as bytes (`COLLATE \"C\"`, the order SQLite")
print("uses, whatever the database's collation). Close-reason statistics read the hourly rollup (`close_reason_hourly`, one row")
print("per appid, hour and reason) for every whole hour of the range, and count `room_sessions`")
print("through the close-time index only for the partial hours at either end when `from`/`to`")
print("are off the hour; a room filter counts everything from `room_sessions` through the room's")
print("index. A scan of the whole rollup is a few thousand rows. Session detail's two lists come")
print("unsorted: the store sorts them (`store::query::in_*_order`).\n")
print("| endpoint | main access path | HTTP round trip (ms) |\n|---|---|---|")
for s in sections:
    print(f"| {s['name']} | {access(s['plans'])} | {s['ms']:.1f} |")
print()
for s in sections:
    print(f"## {s['name']}\n\n`GET {s['path'][:140]}`\n")
    for query, plan in s["plans"]:
        print("```sql\n" + query + "\n```\n")
        print("```\n" + "\n".join(plan) + "\n```\n")
PY

# The seed and the benchmark that use these queries (static text).
cat <<'MD'
## Seeding and query benchmarks

`zego-room-tracker seed` fills a freshly migrated database (it runs the
migrations, and refuses one that holds sessions, events or deliveries unless
`--force`, which empties it) with deterministic synthetic history through the
bulk paths, not HTTP: PostgreSQL `COPY` of generated rows (sessions and
presence intervals on two connections at once, into tables whose indexes and
primary keys are dropped for the load and recreated from their own
definitions, then `VACUUM ANALYZE`), SQLite prepared 64-row inserts in
100,000-session transactions with the journal and syncing off (no `ANALYZE`:
the service never runs it). It then fills `close_reason_hourly` from a
recount and checks that the schema is exactly the migrated one and that the
rollup equals a recount of `room_sessions`.

```sh
DATABASE_URL=postgres://postgres@127.0.0.1:5432/zrt_bench zego-room-tracker seed --sessions 10000000 --users-per-session 5
DATABASE_URL=sqlite://target/bench.db zego-room-tracker seed --sessions 1000000
DATABASE_URL=... zego-room-tracker seed --check --sessions 1000000   # the flags' counts and big session, rollup = recount, ids
```

The history: 90 days from 2026-09-01 across three appids; ordinary rooms
(`room-N`) have about five lifecycles each, hot rooms (`hot-N`, one session
in ten) hundreds; 95% closed (reason 0 70%, 1 10%, 2 15%, 3 5%), 0.5% without
a create; 4–6 presence intervals per session (hosts, audience, 2% admins,
reconnects, open stays in unclosed sessions). The middle session has 1,000
participants; `seed` prints its ids. Only that session has `events` rows (its
timeline); no deliveries are seeded: the lists and statistics read
`room_sessions`, `presence_intervals` and the rollup, and session detail
reads `events` only for the one session asked about.

`scripts/bench-queries.sh` builds the release binary, seeds PostgreSQL (10M
sessions, 50M intervals, database `zrt_bench_queries`) and SQLite (1M
sessions, under `target/bench-queries/`) or reuses databases a previous run
seeded with the same flags (`RESEED=1` to seed again), serves each, and times
every query endpoint over HTTP with `bench/query_client.py` (one keep-alive
connection, 20 warm-up then 200 sequential requests per query), printing
`query | target | p50 | p95 | max | pass/fail` per backend. Targets: p95 ≤ 10
ms for pages and session detail, ≤ 100 ms for one-day and 30-day statistics,
≤ 500 ms for all-time statistics. `BENCH_SMOKE=1` seeds 20,000 sessions
(separate databases) and sends a few requests per query. It exits non-zero
only on errors (a non-200 answer, a wrong session detail, the rollup
differing from a recount, checked in SQL by `seed --check` and through the
API), never on a missed target. `BACKENDS=postgres` or `BACKENDS=sqlite` runs
one backend.
MD
