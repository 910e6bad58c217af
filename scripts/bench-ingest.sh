#!/usr/bin/env bash
# The ingest benchmark of issue 6 (run it through scripts/bench.sh, which
# adds the query benchmark when there is one). Prints a Markdown report on
# stdout (progress on stderr): the machine, the versions, a table
# figure | target | result | pass/fail, the details of every run and the
# commands used.
#
# Load: `zego-room-tracker send` (unique, signed callbacks, fresh nonce each;
# per session one create, USERS logins, USERS logouts, one close, in order),
# no retries, on the same machine as the server and the database.
# References measured in the same run, in ROUNDS rounds (3; smoke 1) of
# pgbench, the Node.js peer and our service one after the other, the
# table taking the median of each; from a temporary copy of
# ANCHORS (../shared/bench-anchors, never written to): pgbench with
# c_event_plus_delivery.sql at 32 and at 64 clients, and the naive Node.js
# peer (npm ci in the copy) under `wrk -t1 -c64 -d10s --latency -s peer_unique.lua`,
# and, for the like-for-like comparison with the peer, our service under the
# same wrk command replaying requests from `send --write-requests`
# (bench/wrk-replay.lua). The p99 at half the median rate is measured ROUNDS
# times too, and the table takes the median.
#
# After every run of our service the database is checked against the
# sender's JSON summary: events rows = callbacks answered 2xx "stored", no
# two events with one identity, deliveries rows = requests answered (after
# the wrk run: against wrk's count of 2xx answers, each a new callback). A failed
# check makes the script exit 1; a missed performance target does not
# (BENCH_STRICT=1 makes it).
#
#   scripts/bench-ingest.sh            full: release build, 10 s per step, installs wrk
#   BENCH_SMOKE=1 scripts/bench-ingest.sh
#                                      smoke: debug build, 2 s per step, no apt-get
#                                      or npm (the Node peer is skipped)
# Settings (env): PG (postgres://postgres@127.0.0.1:5432), CLIENTS (64), USERS (4),
# DURATION (10s; smoke 2s), HOT_USERS (5000; smoke 200), STARTUP_RUNS (7; smoke 3),
# ROUNDS (3; smoke 1),
# ANCHORS, BIN (skip the build and use this binary), BENCH_STRICT.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/require.sh
require sqlite3 psql curl python3
ROOT=$(pwd)
for arg in "$@"; do
  case $arg in
    -h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (try --help; settings are environment variables)" >&2; exit 64 ;;
  esac
done

SMOKE=${BENCH_SMOKE:-0}
[ "$SMOKE" = 0 ] || SMOKE=1
PG=${PG:-postgres://postgres@127.0.0.1:5432}
CLIENTS=${CLIENTS:-64}
USERS=${USERS:-4}
if [ "$SMOKE" = 1 ]; then
  DURATION=${DURATION:-2s}; HOT_USERS=${HOT_USERS:-200}; STARTUP_RUNS=${STARTUP_RUNS:-3}
  ANCHOR_SECS=${ANCHOR_SECS:-2}; ROUNDS=${ROUNDS:-1}
else
  DURATION=${DURATION:-10s}; HOT_USERS=${HOT_USERS:-5000}; STARTUP_RUNS=${STARTUP_RUNS:-7}
  ANCHOR_SECS=${ANCHOR_SECS:-10}; ROUNDS=${ROUNDS:-3}
fi
ANCHORS=$(realpath -m "${ANCHORS:-$ROOT/../shared/bench-anchors}")
DBP=zrt_bench_ingest # prefix of every database this script creates (and drops)
export ZEGO_CALLBACK_SECRET=bench-secret

T0=$(date +%s)
WORK=$(mktemp -d)
SERVER_PID=""; PEER_PID=""; SAMPLER_PID=""
cleanup() {
  for pid in $SAMPLER_PID $SERVER_PID $PEER_PID; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -z "${KEEP_DBS:-}" ]; then
    for db in $(psql -tA "$PG/postgres" -c "SELECT datname FROM pg_database WHERE datname LIKE '${DBP}%'" 2>/dev/null); do
      psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" 2>/dev/null || true
    done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
log() { echo "[bench $(( $(date +%s) - T0 ))s] $*" >&2; }
COMMANDS=()
note_cmd() { COMMANDS+=("$*"); }
DETAILS=()
detail() { DETAILS+=("$*"); }
CHECK_FAILED=0; CHECKS_RUN=0; CHECKS_PASSED=0
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
jget() { # file, python expression over `s` (the parsed JSON)
  python3 -c "import json,sys; s=json.load(open(sys.argv[1])); v=$2; print('' if v is None else v)" "$1"
}
calc() { python3 -c "print($1)"; }
fresh_pg() {
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null 2>&1
}

# --- build -----------------------------------------------------------------
if [ -n "${BIN:-}" ]; then
  BUILD="given binary $BIN"
elif [ "$SMOKE" = 1 ]; then
  log "cargo build (debug, smoke mode)"
  cargo build -q; BIN=$ROOT/target/debug/zego-room-tracker; BUILD="debug build (cargo build)"
else
  log "cargo build --release"
  cargo build --release -q; BIN=$ROOT/target/release/zego-room-tracker; BUILD="release build (cargo build --release)"
fi

# --- the machine and versions ----------------------------------------------
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
MEM=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
PG_VERSION=$(psql -tA "$PG/postgres" -c 'SHOW server_version' 2>/dev/null || echo "not reachable")

# --- CPU per process over the middle of a run ------------------------------------
# What limits each rate, measured in the run itself: the CPU time of the
# service, of PostgreSQL's processes and of the load generator (utime + stime
# from /proc/PID/stat), and the machine's idle time (/proc/stat), from 1 s
# after the load starts to 1 s before it ends, in % of one core (each core
# makes 100%). Backends that start and end inside the window are missed;
# the pools' connections live through it.
CLK_TCK=$(getconf CLK_TCK)
ticks() { # pids... -> their CPU time so far, in clock ticks
  local t=0 p v
  for p in "$@"; do v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true); t=$(( t + ${v:-0} )); done
  echo "$t"
}
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat; } # busy idle
CPU_SERVICE=""; CPU_PG=""; CPU_LOAD=""; CPU_OTHER=""; CPU_IDLE=""
cpu_during() { # secs, service pid, load generator pid[, metrics url]: sleeps through the load's middle and sets CPU_* (empty for runs under 4 s)
  # With a metrics url, the load counts as started at the first callback it
  # reports (wrk reads its request file before it sends anything).
  local secs=$1 service=$2 load=$3 metrics=${4:-} pid s0 s1 pg=0 l0 l1 b0 b1 i0 i1 t0 t1
  local -A pg0=()
  CPU_SERVICE=""; CPU_PG=""; CPU_LOAD=""; CPU_OTHER=""; CPU_IDLE=""
  [ "$secs" -ge 4 ] || return 0
  if [ -n "$metrics" ]; then
    for _ in $(seq 600); do curl -s "$metrics" 2>/dev/null | grep -q '^zrt_callbacks_total' && break; sleep 0.05; done
  fi
  sleep 1
  # PostgreSQL: every postgres process alive at the end, from its ticks at
  # the start (or from nothing, if it started since).
  for pid in $(pgrep -x postgres); do pg0[$pid]=$(ticks "$pid"); done
  t0=$(date +%s.%N); s0=$(ticks "$service"); l0=$(ticks "$load"); read -r b0 i0 < <(machine_ticks)
  sleep $(( secs - 2 ))
  t1=$(date +%s.%N); s1=$(ticks "$service"); l1=$(ticks "$load"); read -r b1 i1 < <(machine_ticks)
  for pid in $(pgrep -x postgres); do pg=$(( pg + $(ticks "$pid") - ${pg0[$pid]:-0} )); done
  read -r CPU_SERVICE CPU_PG CPU_LOAD CPU_OTHER CPU_IDLE < <(python3 -c "
import sys
s, p, l, b, i, tick, secs = (float(x) for x in sys.argv[1:])
pct = lambda t: round(t * 100 / tick / secs)
print(pct(s), pct(p), pct(l), max(0, pct(b - s - p - l)), pct(i))" \
    $(( s1 - s0 )) "$pg" $(( l1 - l0 )) $(( b1 - b0 )) $(( i1 - i0 )) "$CLK_TCK" "$(calc "$t1 - $t0")")
}
CPU_PER_REQUEST=("" "" "" "")
cpu_per_request() { # requests/s -> CPU_PER_REQUEST=(service µs, PostgreSQL µs, load generator µs, idle %), empty if not measured
  CPU_PER_REQUEST=("" "" "" "")
  [ -n "$CPU_SERVICE" ] && [ -n "${1:-}" ] && [ "${1%.*}" -gt 0 ] || return 0
  read -r -a CPU_PER_REQUEST < <(python3 -c "
import sys
rps = float(sys.argv[1])
print(*(round(float(pct) * 1e4 / rps) for pct in sys.argv[2:5]), sys.argv[5])" \
    "$1" "$CPU_SERVICE" "$CPU_PG" "$CPU_LOAD" "$CPU_IDLE")
}
cpu_text() { # service name, load generator name -> the CPU_* and CPU_PER_REQUEST figures as a sentence
  [ -n "$CPU_SERVICE" ] || { echo "CPU not measured (run under 4 s)"; return; }
  local per=""
  [ -z "${CPU_PER_REQUEST[0]}" ] || per="; per request: $1 ${CPU_PER_REQUEST[0]} µs, PostgreSQL ${CPU_PER_REQUEST[1]} µs, $2 ${CPU_PER_REQUEST[2]} µs"
  echo "CPU in % of one core ($(nproc) cores: $(( $(nproc) * 100 ))%): $1 $CPU_SERVICE, PostgreSQL $CPU_PG, $2 $CPU_LOAD, other $CPU_OTHER, idle $CPU_IDLE$per"
}

# --- references: pgbench and the Node.js peer ----------------------------------
# Set up here, measured in the rounds below, side by side with our service.
ANCHOR_COPY=$WORK/anchors
ANCHOR_DB=${DBP}_anchor
PGBENCH_NOTE=""
if [ -f "$ANCHORS/c_event_plus_delivery.sql" ]; then
  mkdir -p "$ANCHOR_COPY"; cp -r "$ANCHORS"/. "$ANCHOR_COPY"/; chmod -R u+w "$ANCHOR_COPY"
fi
if [ -f "$ANCHOR_COPY/c_event_plus_delivery.sql" ] && command -v pgbench >/dev/null; then
  fresh_pg "$ANCHOR_DB"
else
  PGBENCH_NOTE="skipped: pgbench or $ANCHORS/c_event_plus_delivery.sql missing"
  detail "pgbench anchor $PGBENCH_NOTE"
fi
PGB_TPS=""
pgbench_run() { # clients, round; sets PGB_TPS (commits/s, empty if it failed)
  local c=$1 round=$2 out lat
  psql -q "$PG/$ANCHOR_DB" -f "$ANCHOR_COPY/schema.sql" >/dev/null 2>&1
  local cmd="pgbench -n -M prepared -f c_event_plus_delivery.sql -c $c -j 2 -T $ANCHOR_SECS $PG/$ANCHOR_DB"
  log "round $round: $cmd"; [ "$round" != 1 ] || note_cmd "$cmd"
  out=$(cd "$ANCHOR_COPY" && $cmd 2>&1) || true
  PGB_TPS=$(sed -n 's/^tps = \([0-9]*\).*/\1/p' <<<"$out" | head -n 1)
  lat=$(sed -n 's/^latency average = \(.*\)$/\1/p' <<<"$out")
  detail "round $round: pgbench c_event_plus_delivery.sql, $c clients, $ANCHOR_SECS s: ${PGB_TPS:-failed} commits/s (latency average ${lat:-?})"
}

# wrk's report: requests/s, p99 in ms, non-2xx answers, requests completed,
# socket errors (connect, read, write, timeout added up).
wrk_rps() { awk '/^Requests\/sec:/ {print $2}' <<<"$1"; }
wrk_p99() { awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; print v}' <<<"$1"; }
wrk_non2xx() { awk '/Non-2xx/ {n=$NF} END {print n+0}' <<<"$1"; }
wrk_requests() { awk '/requests in/ {print $1}' <<<"$1"; }
wrk_socket_errors() { awk '/Socket errors/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' <<<"$1" | tail -n 1; }
PEER_NOTE=""; PEER_READY=""
WRK_VERSION="not installed"
if [ "$SMOKE" = 1 ]; then
  PEER_NOTE="skipped in smoke mode (no npm ci, no apt-get)"
elif [ ! -f "$ANCHOR_COPY/server.js" ]; then
  PEER_NOTE="skipped: $ANCHORS/server.js missing"
elif ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  PEER_NOTE="skipped: node/npm not installed"
else
  if ! command -v wrk >/dev/null; then
    log "installing wrk (apt-get)"
    note_cmd "apt-get update && apt-get install -y wrk"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk) >"$WORK/apt.log" 2>&1 \
      || log "apt-get install wrk failed (see below)"
  fi
  if ! command -v wrk >/dev/null; then
    PEER_NOTE="skipped: wrk could not be installed: $(tail -n 1 "$WORK/apt.log" 2>/dev/null)"
  else
    log "npm ci in a temporary copy of the anchors"
    note_cmd "cp -r $ANCHORS \$TMP && cd \$TMP && npm ci --no-audit --no-fund"
    if (cd "$ANCHOR_COPY" && npm ci --no-audit --no-fund >"$WORK/npm.log" 2>&1); then
      PEER_READY=1
    else
      PEER_NOTE="skipped: npm ci failed: $(tail -n 3 "$WORK/npm.log" | tr '\n' ' ')"
    fi
  fi
fi
if command -v wrk >/dev/null; then WRK_VERSION=$( (wrk -v 2>&1 || true) | head -n 1 | awk '{print $1, $2}'); fi
if [ -n "$PEER_NOTE" ]; then detail "Node peer: $PEER_NOTE"; fi
PEER_RUN_RPS=""; PEER_RUN_P99=""; PEER_RUN_CPU=("" "" "" "")
peer_run() { # round; sets PEER_RUN_RPS and PEER_RUN_P99 (empty if it failed)
  local round=$1 out non2xx errors rows peer_port
  psql -q "$PG/$ANCHOR_DB" -f "$ANCHOR_COPY/schema.sql" >/dev/null 2>&1
  peer_port=$(free_port)
  (cd "$ANCHOR_COPY" && PORT=$peer_port DATABASE_URL="$PG/$ANCHOR_DB" exec node server.js) >"$WORK/peer.log" 2>&1 &
  PEER_PID=$!
  for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$peer_port/" && break; sleep 0.05; done
  local cmd="wrk -t1 -c$CLIENTS -d${ANCHOR_SECS}s --latency -s peer_unique.lua http://127.0.0.1:$peer_port"
  log "round $round: $cmd"
  [ "$round" != 1 ] || note_cmd "(cd \$TMP && PORT=$peer_port DATABASE_URL=$PG/$ANCHOR_DB node server.js &); $cmd"
  (cd "$ANCHOR_COPY" && exec $cmd) >"$WORK/peer.wrk" 2>&1 &
  local wrk_pid=$!
  cpu_during "$ANCHOR_SECS" "$PEER_PID" "$wrk_pid"
  wait "$wrk_pid" || true
  out=$(cat "$WORK/peer.wrk")
  kill "$PEER_PID" 2>/dev/null || true; wait "$PEER_PID" 2>/dev/null || true; PEER_PID=""
  PEER_RUN_RPS=$(wrk_rps "$out"); PEER_RUN_P99=$(wrk_p99 "$out")
  cpu_per_request "$PEER_RUN_RPS"; PEER_RUN_CPU=("${CPU_PER_REQUEST[@]}")
  non2xx=$(wrk_non2xx "$out"); errors=$(grep -m1 'Socket errors' <<<"$out" || true)
  rows=$(psql -tA "$PG/$ANCHOR_DB" -c 'SELECT count(*) FROM room_close_events' 2>/dev/null || echo "?")
  detail "round $round: Node peer (express + pg, POOL_SIZE 10) under wrk -t1 -c$CLIENTS -d${ANCHOR_SECS}s: ${PEER_RUN_RPS:-failed} req/s, p99 ${PEER_RUN_P99:-?} ms, non-2xx ${non2xx:-0}${errors:+, $errors}; $rows rows stored; $(cpu_text node wrk)"
  [ -n "$PEER_RUN_RPS" ] || detail "round $round: Node peer: wrk gave no figure: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
}

# --- our service ---------------------------------------------------------------
PEAK_HWM=0 # the server's VmHWM, KiB, highest over every run of it
declare -A RSS=() # run key -> the server's VmHWM in that run, KiB
start_server() { # database url, GROUP_COMMIT
  PORT=$(free_port)
  DATABASE_URL=$1 GROUP_COMMIT=$2 LISTEN_ADDR=127.0.0.1:$PORT RUST_LOG=warn "$BIN" >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "the server exited; its log:" >&2; tail -n 20 "$WORK/server.log" >&2; exit 1; }
    sleep 0.05
  done
  : >"$WORK/rss"
  ( peak=0; while kill -0 "$SERVER_PID" 2>/dev/null; do
      rss=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || true)
      if [ -n "$rss" ] && [ "$rss" -gt "$peak" ]; then peak=$rss; echo "$peak" >"$WORK/rss"; fi
      sleep 0.05; done ) &
  SAMPLER_PID=$!
}
stop_server() { # sets HWM_KIB (VmHWM: the kernel's peak) and SAMPLED_KIB (sampled VmRSS)
  HWM_KIB=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || true)
  kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=""
  SAMPLED_KIB=$(cat "$WORK/rss" 2>/dev/null || true)
  HWM_KIB=${HWM_KIB:-0}; SAMPLED_KIB=${SAMPLED_KIB:-0}
}

sql() { # kind (pg|sqlite), target (db name or file), query
  if [ "$1" = pg ]; then psql -tA "$PG/$2" -c "$3"; else sqlite3 "$2" "$3"; fi
}

check_db() { # label, kind, target, stored answers, requests answered, slack
  # Requests without a usable answer may or may not have been committed:
  # that is the slack, by which events and deliveries may exceed the answers.
  local label=$1 kind=$2 target=$3 stored=$4 answered=$5 slack=$6
  local events dupes deliveries del_stored verdict=pass why=""
  events=$(sql "$kind" "$target" "SELECT count(*) FROM events")
  dupes=$(sql "$kind" "$target" "SELECT count(*) FROM (SELECT 1 FROM events GROUP BY event, appid, room_session_id, user_account, session_id, event_at HAVING count(*) > 1) d")
  deliveries=$(sql "$kind" "$target" "SELECT count(*) FROM deliveries")
  del_stored=$(sql "$kind" "$target" "SELECT count(*) FROM deliveries WHERE outcome = 'stored'")
  if [ "$events" -lt "$stored" ] || [ "$events" -gt $(( stored + slack )) ]; then
    verdict=FAIL; why+=" events $events != stored answers $stored;"
  fi
  [ "$dupes" = 0 ] || { verdict=FAIL; why+=" $dupes duplicated event identities;"; }
  if [ "$deliveries" -lt "$answered" ] || [ "$deliveries" -gt $(( answered + slack )) ]; then
    verdict=FAIL; why+=" deliveries $deliveries != requests answered $answered;"
  fi
  [ "$del_stored" = "$events" ] || { verdict=FAIL; why+=" deliveries 'stored' $del_stored != events $events;"; }
  CHECKS_RUN=$(( CHECKS_RUN + 1 ))
  if [ "$verdict" = pass ]; then CHECKS_PASSED=$(( CHECKS_PASSED + 1 )); else CHECK_FAILED=1; fi
  detail "database check, $label: $verdict — events $events (stored answers $stored), duplicated identities $dupes, deliveries $deliveries (requests answered $answered${slack:+, slack $slack})${why:+; FAILED:$why}"
}

# --- where a write transaction's time goes ----------------------------------------
# From the server's own /metrics, read just before it stops: the mean
# transaction (a batch, with group commit) and what each of its steps took
# on average (zrt_write_step_duration_seconds over the transaction count:
# a step that runs in few of them shows its share); "in between" is the
# rest of a group-commit batch (decisions in memory, building statements).
declare -A STEPS=() # run key -> its steps_text
steps_text() { # metrics url -> one sentence, or nothing
  curl -s "$1" 2>/dev/null | python3 -c "
import re, sys
sums, counts, plain = {}, {}, {}
for line in sys.stdin:
    m = re.match(r'zrt_write_step_duration_seconds_(sum|count)\{step=\"(\w+)\"\} (\S+)', line)
    if m:
        (sums if m[1] == 'sum' else counts)[m[2]] = float(m[3])
    m = re.match(r'(zrt_group_commit_\w+) (\S+)', line)
    if m:
        plain[m[1]] = float(m[2])
txs = counts.get('begin', 0)
if not txs:
    sys.exit()
# The steps in the order a transaction runs them; only those that ran (on
# PostgreSQL first_steps stands for the four after it, which run only when
# a batch is recorded again step by step; find_events only for retries).
order = ['begin', 'first_steps', 'claim_replay_keys', 'touch_sessions', 'insert_events',
         'find_events', 'presence_groups', 'write_batch', 'commit']
steps = ', '.join(f'{k} {sums[k] * 1e3 / txs:.2f}' for k in order if counts.get(k))
batches = plain.get('zrt_group_commit_batch_size_count', 0)
if batches:
    size = plain['zrt_group_commit_batch_size_sum'] / batches
    took = plain['zrt_group_commit_duration_seconds_sum'] * 1e3 / batches
    rest = took - sum(sums.values()) * 1e3 / txs
    print(f'{int(txs)} transactions, mean batch {size:.1f} callbacks in {took:.2f} ms: {steps}, in between {rest:.2f} ms')
else:
    print(f'{int(txs)} transactions, mean ms: {steps}')
" 2>/dev/null || true
}

run_ours() { # key, label, kind, db url, check target, GROUP_COMMIT, send args...
  local key=$1 label=$2 kind=$3 url=$4 target=$5 gc=$6; shift 6
  log "$label: send $*"
  start_server "$url" "$gc"
  local json=$WORK/$key.json
  note_cmd "DATABASE_URL=$url GROUP_COMMIT=$gc RUST_LOG=warn $(basename "$BIN") &  # then:"
  note_cmd "  zego-room-tracker send --url http://127.0.0.1:PORT --no-retry --summary-json FILE $*"
  "$BIN" send --url "http://127.0.0.1:$PORT" --no-retry --summary-json "$json" "$@" \
    >"$WORK/$key.out" 2>"$WORK/$key.err" &
  local send_pid=$!
  # Only runs of a fixed duration have a middle to measure (not the hot room's).
  local secs=0; [[ " $* " =~ \ --duration\ ([0-9]+)s\  ]] && secs=${BASH_REMATCH[1]}
  cpu_during "$secs" "$SERVER_PID" "$send_pid" "http://127.0.0.1:$PORT/metrics"
  wait "$send_pid" || true
  local steps; steps=$(steps_text "http://127.0.0.1:$PORT/metrics")
  STEPS[$key]=$steps
  stop_server
  if [ ! -s "$json" ]; then
    echo "send wrote no summary for $label:" >&2; tail -n 5 "$WORK/$key.err" >&2
    CHECK_FAILED=1; detail "$label: send failed: $(tail -n 1 "$WORK/$key.err")"; return
  fi
  cpu_per_request "$(rps "$key")"
  detail "$label: $(head -n 1 "$WORK/$key.out"); server resident memory peak: sampled VmRSS $(( SAMPLED_KIB / 1024 )) MiB, VmHWM $(( HWM_KIB / 1024 )) MiB${CPU_SERVICE:+; $(cpu_text server send)}${steps:+; write transactions: $steps}"
  RSS[$key]=$HWM_KIB; [ "$HWM_KIB" -le "$PEAK_HWM" ] || PEAK_HWM=$HWM_KIB
  # Answers the server archives: all but 503 (storage unavailable: nothing
  # is archived) and 413 (refused before reading). No answer or a 503: slack.
  check_db "$label" "$kind" "$target" \
    "$(jget "$json" "s['outcomes'].get('stored', 0)")" \
    "$(jget "$json" "sum(v for k, v in s['status'].items() if k not in ('none', '503', '413'))")" \
    "$(jget "$json" "s['status'].get('none', 0) + s['status'].get('503', 0) + (s['requests'] - s['callbacks'])")"
}

# Our service under the client the Node.js peer is measured with: the same
# kind of sessions, written signed to a file by `send --write-requests`
# (enough for 40,000/s) and replayed once each by wrk (bench/wrk-replay.lua).
# `send` costs the shared cores more CPU per request than wrk does, so this
# is the like-for-like comparison with the peer. Every request is a new
# callback, so every 2xx is a stored one; requests still in flight when wrk
# stops (up to one per connection) are committed but not counted: slack.
WRK_RUN_RPS=""; WRK_RUN_P99=""; WRK_RUN_CPU=("" "" "" "")
run_ours_wrk() { # key, label, db url, check target; sets WRK_RUN_RPS and WRK_RUN_P99 (empty if skipped or failed)
  local key=$1 label=$2 url=$3 target=$4 secs=${DURATION%s}
  WRK_RUN_RPS=""; WRK_RUN_P99=""; WRK_RUN_CPU=("" "" "" "")
  if ! command -v wrk >/dev/null; then detail "$label: skipped: wrk not installed"; return; fi
  if ! [[ $secs =~ ^[0-9]+$ ]]; then detail "$label: skipped: DURATION $DURATION is not whole seconds (Ns)"; return; fi
  local sessions=$(( 40000 * secs / (2 + 2 * USERS) + 1 )) file=$WORK/$key.requests
  start_server "$url" true
  log "$label: send --write-requests ($sessions sessions), then wrk"
  if ! "$BIN" send --url "http://127.0.0.1:$PORT" --users "$USERS" --concurrency "$CLIENTS" \
      --sessions "$sessions" --write-requests "$file" >"$WORK/$key.gen" 2>&1; then
    stop_server; CHECK_FAILED=1; detail "$label: send --write-requests failed: $(tail -n 1 "$WORK/$key.gen")"; return
  fi
  local cmd="wrk -t1 -c$CLIENTS -d${secs}s --latency -s bench/wrk-replay.lua http://127.0.0.1:PORT -- FILE"
  note_cmd "zego-room-tracker send --url http://127.0.0.1:PORT --users $USERS --concurrency $CLIENTS --sessions $sessions --write-requests FILE"
  note_cmd "$cmd"
  local out
  wrk -t1 -c"$CLIENTS" -d"${secs}s" --latency -s "$ROOT/bench/wrk-replay.lua" "http://127.0.0.1:$PORT" -- "$file" >"$WORK/$key.wrk" 2>&1 &
  local wrk_pid=$!
  cpu_during "$secs" "$SERVER_PID" "$wrk_pid" "http://127.0.0.1:$PORT/metrics"
  wait "$wrk_pid" || true
  out=$(cat "$WORK/$key.wrk")
  local steps; steps=$(steps_text "http://127.0.0.1:$PORT/metrics")
  stop_server
  rm -f "$file"
  WRK_RUN_RPS=$(printf '%.0f' "$(wrk_rps "$out")" 2>/dev/null || true); WRK_RUN_P99=$(wrk_p99 "$out")
  cpu_per_request "$WRK_RUN_RPS"; WRK_RUN_CPU=("${CPU_PER_REQUEST[@]}")
  local requests non2xx errors
  requests=$(wrk_requests "$out"); non2xx=$(wrk_non2xx "$out"); errors=$(wrk_socket_errors "$out")
  if [ -z "$WRK_RUN_RPS" ] || [ -z "$requests" ]; then
    CHECK_FAILED=1; detail "$label: wrk gave no figure: $(tail -n 3 <<<"$out" | tr '\n' ' ')"; return
  fi
  detail "$label: $requests requests, ${WRK_RUN_RPS} req/s, p99 ${WRK_RUN_P99:-?} ms, non-2xx $non2xx, socket errors ${errors:-0} (the file held $(head -n 1 "$WORK/$key.gen" | cut -d' ' -f1)); server resident memory peak: VmHWM $(( HWM_KIB / 1024 )) MiB; $(cpu_text server wrk)${steps:+; write transactions: $steps}"
  RSS[$key]=$HWM_KIB; [ "$HWM_KIB" -le "$PEAK_HWM" ] || PEAK_HWM=$HWM_KIB
  local ok2xx=$(( requests - non2xx ))
  check_db "$label" pg "$target" "$ok2xx" "$requests" $(( CLIENTS + ${errors:-0} ))
}
rps() { jget "$WORK/$1.json" "round(s['requests_per_sec'])" 2>/dev/null || echo ""; }

LOAD=(--users "$USERS" --concurrency "$CLIENTS" --duration "$DURATION")
median() { # digits, values... -> their median (empty values left out), rounded
  python3 -c "import statistics, sys; d = int(sys.argv[1]); v = [float(x) for x in sys.argv[2:] if x]; print(round(statistics.median(v), d or None) if v else '')" "$@"
}
listed() { local IFS=,; echo "$*" | sed 's/,/, /g'; }

# The rounds: each reference and our service at full load, one after the
# other, ROUNDS times, so the machine's drift (±10–20% over minutes here)
# falls on all of them alike; the table takes the median of each.
PGB32S=(); PGB64S=(); PEERS=(); PEER_P99S=(); OURS=(); WRKS=(); WRK_P99S=()
# CPU per request (service µs, PostgreSQL µs) and the machine's idle %, per round.
PEER_SVC_US=(); PEER_PG_US=(); PEER_IDLE=(); WRK_SVC_US=(); WRK_PG_US=(); WRK_IDLE=()
for round in $(seq "$ROUNDS"); do
  if [ -z "$PGBENCH_NOTE" ]; then
    pgbench_run 32 "$round"; PGB32S+=("$PGB_TPS")
    pgbench_run 64 "$round"; PGB64S+=("$PGB_TPS")
  fi
  if [ -n "$PEER_READY" ]; then
    peer_run "$round"; PEERS+=("$PEER_RUN_RPS"); PEER_P99S+=("$PEER_RUN_P99")
    PEER_SVC_US+=("${PEER_RUN_CPU[0]}"); PEER_PG_US+=("${PEER_RUN_CPU[1]}"); PEER_IDLE+=("${PEER_RUN_CPU[3]}")
  fi
  fresh_pg ${DBP}_pg_gc
  run_ours pg_gc_$round "round $round: PostgreSQL, GROUP_COMMIT=true, $CLIENTS clients" pg "$PG/${DBP}_pg_gc" ${DBP}_pg_gc true "${LOAD[@]}"
  OURS+=("$(rps pg_gc_$round)")
  fresh_pg ${DBP}_pg_wrk
  run_ours_wrk pg_wrk_$round "round $round: PostgreSQL, GROUP_COMMIT=true, wrk -c$CLIENTS replaying send --write-requests" "$PG/${DBP}_pg_wrk" ${DBP}_pg_wrk
  WRKS+=("$WRK_RUN_RPS"); WRK_P99S+=("$WRK_RUN_P99")
  WRK_SVC_US+=("${WRK_RUN_CPU[0]}"); WRK_PG_US+=("${WRK_RUN_CPU[1]}"); WRK_IDLE+=("${WRK_RUN_CPU[3]}")
done
PGB32=$(median 0 "${PGB32S[@]}"); PGB64=$(median 0 "${PGB64S[@]}"); CEILING=""; CEILING_FROM=""
# The ceiling is the better of the two client counts (the stricter comparison).
if [ -n "$PGB32" ] || [ -n "$PGB64" ]; then
  if [ "${PGB64:-0}" -gt "${PGB32:-0}" ]; then CEILING=$PGB64; CEILING_FROM="c=64"; else CEILING=$PGB32; CEILING_FROM="c=32"; fi
fi
PEER_RPS=$(median 0 "${PEERS[@]}"); PEER_P99=$(median 1 "${PEER_P99S[@]}")
[ -n "$PEER_RPS" ] || [ -n "$PEER_NOTE" ] || PEER_NOTE="wrk gave no figure (see the details)"
P=$(median 0 "${OURS[@]}")
WRK_RPS=$(median 0 "${WRKS[@]}"); WRK_P99=$(median 1 "${WRK_P99S[@]}")
detail "medians of $ROUNDS round(s): pgbench c=32 ${PGB32:-?} (of $(listed "${PGB32S[@]}")), c=64 ${PGB64:-?} (of $(listed "${PGB64S[@]}"))${PEER_RPS:+; Node peer $PEER_RPS req/s (of $(listed "${PEERS[@]}"))}; ours with send ${P:-?}/s (of $(listed "${OURS[@]}")), with wrk ${WRK_RPS:-?}/s (of $(listed "${WRKS[@]}"))"

fresh_pg ${DBP}_pg_nogc
run_ours pg_nogc "PostgreSQL, GROUP_COMMIT=false, $CLIENTS clients" pg "$PG/${DBP}_pg_nogc" ${DBP}_pg_nogc false "${LOAD[@]}"

# The latency at half load, ROUNDS times like the headline rates: one run
# is at the mercy of a stall of the machine's own (half-second I/O stalls
# that hit the Node.js peer's runs as well were seen here); the table takes
# the median p99 and lists every round's.
MAX_RATE=$P; HALF=""; RATE_P99S=(); RATE_P99_SCHEDULES=(); RATE_RPSS=()
if [ -n "$MAX_RATE" ] && [ "$MAX_RATE" -gt 1 ]; then
  HALF=$(( MAX_RATE / 2 ))
  for round in $(seq "$ROUNDS"); do
    fresh_pg ${DBP}_pg_rate
    run_ours pg_rate_$round "round $round: PostgreSQL, GROUP_COMMIT=true, --rate $HALF (50% of $MAX_RATE/s)" pg "$PG/${DBP}_pg_rate" ${DBP}_pg_rate true \
      --users "$USERS" --rate "$HALF" --duration "$DURATION"
    if [ -f "$WORK/pg_rate_$round.json" ]; then
      RATE_P99S+=("$(jget "$WORK/pg_rate_$round.json" "round(s['latency_ms']['p99'], 1)")")
      RATE_P99_SCHEDULES+=("$(jget "$WORK/pg_rate_$round.json" "round(s['latency_from_schedule_ms']['p99'], 1)")")
      RATE_RPSS+=("$(rps pg_rate_$round)")
    fi
  done
fi
fresh_pg ${DBP}_pg_hot
run_ours pg_hot "PostgreSQL, GROUP_COMMIT=true, hot room of $HOT_USERS users, $CLIENTS in flight" pg "$PG/${DBP}_pg_hot" ${DBP}_pg_hot true \
  --hot-room --users "$HOT_USERS" --concurrency "$CLIENTS"

run_ours sq_gc "SQLite, GROUP_COMMIT=true, $CLIENTS clients" sqlite "sqlite://$WORK/gc.db" "$WORK/gc.db" true "${LOAD[@]}"
run_ours sq_nogc "SQLite, GROUP_COMMIT=false, $CLIENTS clients" sqlite "sqlite://$WORK/nogc.db" "$WORK/nogc.db" false "${LOAD[@]}"

# --- startup to ready on an existing database ---------------------------------
startup() { # database url -> JSON {median_ms, runs_ms}
  DATABASE_URL=$1 LISTEN_ADDR=127.0.0.1:$(free_port) RUST_LOG=warn python3 - "$BIN" "$STARTUP_RUNS" 2>>"$WORK/server.log" <<'PY'
import json, os, statistics, subprocess, sys, time, urllib.request
binary, runs = sys.argv[1], int(sys.argv[2])
url = "http://" + os.environ["LISTEN_ADDR"] + "/readyz"
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    p = subprocess.Popen([binary], stdout=subprocess.DEVNULL, stderr=sys.stderr)
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    break
        except Exception:
            pass
        if p.poll() is not None or time.perf_counter() - t0 > 30:
            sys.exit("the server exited or did not get ready")
        time.sleep(0.002)
    times.append((time.perf_counter() - t0) * 1000)
    p.terminate()
    p.wait()
print(f"{statistics.median(times):.1f}", "ms, runs:", " ".join(f"{t:.1f}" for t in times))
PY
}
log "startup to ready, $STARTUP_RUNS times per backend"
note_cmd "startup: spawn the binary, poll GET /readyz every 2 ms until 200 (python3), $STARTUP_RUNS times, median"
START_PG=$(startup "$PG/${DBP}_pg_gc" || true)
START_SQ=$(startup "sqlite://$WORK/gc.db" || true)
if [ -n "$START_PG" ]; then detail "startup to ready (spawn to first 200 from /readyz), PostgreSQL with the GROUP_COMMIT=true run's data: median $START_PG"; fi
if [ -n "$START_SQ" ]; then detail "startup to ready, SQLite with the GROUP_COMMIT=true run's data: median $START_SQ"; fi

# --- a model: the batch as one statement ----------------------------------------
# How long PostgreSQL alone takes for a batch of the same mix written as a
# single statement (bench/one-statement-batch.sql, one pgbench client on a
# migrated database): the one design docs/benchmarks.md names for the 3×
# target, modelled, not built. Context, no target.
MODEL=""
if command -v pgbench >/dev/null; then
  fresh_pg ${DBP}_model
  if DATABASE_URL="$PG/${DBP}_model" "$BIN" migrate >"$WORK/model.log" 2>&1; then
    for n in 32 64; do
      cmd="pgbench -n -M prepared -f bench/one-statement-batch.sql -D n=$n -c 1 -T $ANCHOR_SECS $PG/${DBP}_model"
      log "model: $cmd"; note_cmd "$cmd"
      lat=$(cd "$ROOT" && { $cmd 2>&1 || true; } | sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p')
      # A model that no longer runs against the schema fails the run, smoke too.
      [ -n "$lat" ] || { CHECK_FAILED=1; detail "model: pgbench failed for n=$n: $(cd "$ROOT" && { $cmd 2>&1 || true; } | grep -m1 -i 'error' || true)"; }
      MODEL+="${MODEL:+, }$n callbacks in ${lat:-? (pgbench failed)} ms"
    done
    detail "model: a batch as one statement, PostgreSQL alone: $MODEL"
  else
    CHECK_FAILED=1; MODEL="migrate failed: $(tail -n 1 "$WORK/model.log")"
  fi
fi

# --- the report -----------------------------------------------------------------
ok() { # python condition -> pass/fail, or n/a when the figure is missing
  python3 -c "import sys; print('pass' if ($1) else 'FAIL')" 2>/dev/null || echo "n/a"
}
ratio() { python3 -c "print(f'{$1 / $2:.2f}')" 2>/dev/null || echo ""; }
PN=$(rps pg_nogc); S=$(rps sq_gc); SN=$(rps sq_nogc); H=$(rps pg_hot)
rows=()
MED=""; [ "$ROUNDS" = 1 ] || MED=" (medians of $ROUNDS rounds)"
if [ -n "$P" ] && [ -n "$CEILING" ]; then
  r=$(ratio "$P" "$CEILING")
  rows+=("| PostgreSQL ingest, $CLIENTS clients, vs pgbench per-commit ceiling$MED | ≥ 1.0× | $P/s = ${r}× of $(printf '%.0f' "$CEILING")/s (pgbench $CEILING_FROM; c=32 ${PGB32:-?}, c=64 ${PGB64:-?}) | $(ok "$r >= 1.0") |")
else
  rows+=("| PostgreSQL ingest, $CLIENTS clients, vs pgbench per-commit ceiling$MED | ≥ 1.0× | ${P:-?}/s; pgbench not measured | n/a |")
fi
# Issue 6 names pgbench "at the same client count": the row above is the
# stricter reading (the better of 32 and 64), this one the issue's own.
SAME=""; [ "$CLIENTS" != 32 ] || SAME=$PGB32; [ "$CLIENTS" != 64 ] || SAME=$PGB64
if [ -n "$P" ] && [ -n "$SAME" ]; then
  r=$(ratio "$P" "$SAME")
  rows+=("| PostgreSQL ingest, $CLIENTS clients, vs pgbench at the same $CLIENTS clients$MED | ≥ 1.0× | $P/s = ${r}× of $SAME/s | $(ok "$r >= 1.0") |")
fi
if [ -n "$P" ] && [ -n "$PEER_RPS" ]; then
  r=$(ratio "$P" "$PEER_RPS")
  rows+=("| PostgreSQL ingest, $CLIENTS clients, vs Node.js peer$MED | ≥ 3× | $P/s = ${r}× of $(printf '%.0f' "$PEER_RPS") req/s (peer p99 ${PEER_P99:-?} ms) | $(ok "$r >= 3.0") |")
else
  rows+=("| PostgreSQL ingest, $CLIENTS clients, vs Node.js peer$MED | ≥ 3× | ${P:-?}/s; peer ${PEER_NOTE:-not measured} | n/a |")
fi
# The same two ratios with our service driven by wrk (run_ours_wrk).
if [ -n "$WRK_RPS" ] && [ -n "$CEILING" ]; then
  r=$(ratio "$WRK_RPS" "$CEILING")
  rows+=("| PostgreSQL ingest driven by wrk -c$CLIENTS instead of send, vs pgbench per-commit ceiling$MED | ≥ 1.0× | $(printf '%.0f' "$WRK_RPS")/s = ${r}× of $(printf '%.0f' "$CEILING")/s | $(ok "$r >= 1.0") |")
fi
if [ -n "$WRK_RPS" ] && [ -n "$PEER_RPS" ]; then
  r=$(ratio "$WRK_RPS" "$PEER_RPS")
  rows+=("| PostgreSQL ingest driven by wrk -c$CLIENTS (the peer's client), vs Node.js peer$MED | ≥ 3× | $(printf '%.0f' "$WRK_RPS")/s = ${r}× of $(printf '%.0f' "$PEER_RPS") req/s (p99 ${WRK_P99:-?} ms against the peer's ${PEER_P99:-?} ms) | $(ok "$r >= 3.0") |")
elif [ -n "$WRK_RPS" ] && [ -z "$CEILING" ]; then
  rows+=("| context: PostgreSQL ingest driven by wrk -c$CLIENTS | — | $(printf '%.0f' "$WRK_RPS")/s, p99 ${WRK_P99:-?} ms; peer ${PEER_NOTE:-not measured} | — |")
fi
# What limits each: CPU per request, and how idle the machine stayed.
W_SVC=$(median 0 "${WRK_SVC_US[@]}"); P_SVC=$(median 0 "${PEER_SVC_US[@]}")
if [ -n "$W_SVC" ] && [ -n "$P_SVC" ]; then
  rows+=("| context: CPU per request at full load under wrk$MED, ours vs the Node.js peer | — | ours: server $W_SVC µs + PostgreSQL $(median 0 "${WRK_PG_US[@]}") µs, machine $(median 0 "${WRK_IDLE[@]}")% idle (of $(( $(nproc) * 100 ))%); peer: node $P_SVC µs + PostgreSQL $(median 0 "${PEER_PG_US[@]}") µs, machine $(median 0 "${PEER_IDLE[@]}")% idle | — |")
fi
# What a batch's chain is made of, in the round whose send rate is the median.
for round in $(seq "$ROUNDS"); do
  if [ -n "$P" ] && [ "$(rps pg_gc_$round)" = "$P" ]; then
    steps=${STEPS[pg_gc_$round]:-}
    [ -z "$steps" ] || rows+=("| context: a PostgreSQL write transaction at full load under send (round $round, the median rate), mean ms per step | — | $steps | — |")
    break
  fi
done
if [ ${#RATE_P99S[@]} -gt 0 ]; then
  p99=$(median 1 "${RATE_P99S[@]}")
  p99s=$(median 1 "${RATE_P99_SCHEDULES[@]}")
  got=$(median 0 "${RATE_RPSS[@]}")
  rounds=""; [ ${#RATE_P99S[@]} -lt 2 ] || rounds=", median of $(listed "${RATE_P99S[@]}")"
  # Judged on send-to-answer; "from schedule" adds the time a callback waited
  # for the answer to its session's previous one (see send --help, --rate).
  rows+=("| p99 latency at 50% of max rate (--rate $HALF, achieved $got/s) | ≤ 20 ms | $p99 ms send to answer$rounds (from the schedule: $p99s ms) | $(ok "$p99 <= 20") |")
else
  rows+=("| p99 latency at 50% of max rate | ≤ 20 ms | not measured | n/a |")
fi
if [ -n "$H" ] && [ -n "$P" ]; then
  r=$(ratio "$H" "$P")
  rows+=("| hot room ($HOT_USERS users, $CLIENTS in flight) vs spread-out rate | within 2× (≥ 0.5×) | $H/s vs $P/s = ${r}× | $(ok "$r >= 0.5") |")
fi
rows+=("| server resident memory peak under full load (VmHWM, max over all runs) | ≤ 64 MiB | $(calc "round($PEAK_HWM / 1024, 1)") MiB (PostgreSQL GROUP_COMMIT=true, round 1: $(calc "round(${RSS[pg_gc_1]:-0} / 1024, 1)") MiB) | $(ok "$PEAK_HWM > 0 and $PEAK_HWM <= 65536") |")
if [ -n "$START_PG" ]; then
  m=${START_PG%% *}; ms=${START_SQ%% *}
  rows+=("| startup to ready, existing PostgreSQL database (median of $STARTUP_RUNS) | ≤ 300 ms | $m ms (SQLite: ${ms:-?} ms) | $(ok "$m <= 300") |")
fi
rows+=("| SQLite ingest, $CLIENTS clients | ≥ 5,000/s | ${S:-?}/s | $(ok "${S:-0} >= 5000") |")
rows+=("| context: PostgreSQL, GROUP_COMMIT=false | — | ${PN:-?}/s (true: ${P:-?}/s) | — |")
[ -z "$MODEL" ] || rows+=("| context: a batch as one statement, PostgreSQL alone (bench/one-statement-batch.sql, 1 client; a model, not the service) | — | $MODEL | — |")
rows+=("| context: SQLite, GROUP_COMMIT=false | — | ${SN:-?}/s (true: ${S:-?}/s) | — |")
rows+=("| post-run database checks (events = stored answers, no duplicates, deliveries = requests answered) | all pass | $CHECKS_PASSED of $CHECKS_RUN runs | $([ "$CHECK_FAILED" = 0 ] && echo pass || echo FAIL) |")

ELAPSED=$(( $(date +%s) - T0 ))
echo "## Ingest benchmark$([ "$SMOKE" = 1 ] && echo " (SMOKE mode: short runs, figures not meaningful)")"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); took ${ELAPSED} s; $BUILD"
echo "- machine: $(nproc) cores, $CPU, $MEM memory; server, database and load generator share them"
echo "- versions: $(rustc --version), PostgreSQL $PG_VERSION (default settings), $(pgbench --version 2>/dev/null || echo 'pgbench missing'), node $(node --version 2>/dev/null || echo missing), $WRK_VERSION, $(sqlite3 --version 2>/dev/null | cut -d' ' -f1 | sed 's/^/SQLite CLI /')"
echo "- load: zego-room-tracker send (and, where named, wrk replaying its requests), sessions of 1 create + $USERS logins + $USERS logouts + 1 close (unique, signed, fresh nonce each, in order), no retries, $DURATION per run, server with RUST_LOG=warn"
echo
echo "| figure | target | result | pass/fail |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "Details:"
echo
for d in "${DETAILS[@]}"; do echo "- $d"; done
echo
echo "Commands:"
echo
echo '```'
printf '%s\n' "${COMMANDS[@]}"
echo '```'

if [ "$CHECK_FAILED" != 0 ]; then
  echo "ingest benchmark: a post-run database check FAILED" >&2
  exit 1
fi
if [ "${BENCH_STRICT:-0}" = 1 ] && printf '%s\n' "${rows[@]}" | grep -q '| FAIL |'; then
  echo "ingest benchmark: a target was missed (BENCH_STRICT=1)" >&2
  exit 2
fi
