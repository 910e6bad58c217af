#!/usr/bin/env bash
# The whole benchmark (issue 6) in one command: the ingest benchmark
# (scripts/bench-ingest.sh: our service against pgbench and the Node.js peer,
# PostgreSQL and SQLite, with a database check after every run), then the
# query benchmark, scripts/bench-queries.sh, when that file exists and is
# executable. Prints Markdown on stdout, progress on stderr.
#
#   scripts/bench.sh            full run: release build, 10 s per step, installs wrk
#                               (apt-get) and the Node peer's packages (npm ci in a
#                               temporary copy of ../shared/bench-anchors)
#   scripts/bench.sh --smoke    or BENCH_SMOKE=1: a few seconds per step, debug build,
#                               no apt-get or npm (the Node peer is skipped), for CI
#
# Exit status: 1 when a post-run database check fails (also in smoke mode),
# or when a sub-script fails; missed performance targets do not fail the run
# unless BENCH_STRICT=1. Settings: see scripts/bench-ingest.sh.
set -uo pipefail
cd "$(dirname "$0")/.."

for arg in "$@"; do
  case $arg in
    --smoke) export BENCH_SMOKE=1 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 64 ;;
  esac
done
export BENCH_SMOKE=${BENCH_SMOKE:-0}

status=0
started=$(date +%s)
scripts/bench-ingest.sh || status=$?

if [ -x scripts/bench-queries.sh ]; then
  echo
  scripts/bench-queries.sh || { rc=$?; echo "scripts/bench-queries.sh failed (exit $rc)" >&2; [ "$status" = 0 ] && status=$rc; }
else
  echo
  echo "(scripts/bench-queries.sh not present or not executable: query benchmark skipped)"
fi
echo
echo "scripts/bench.sh$([ "$BENCH_SMOKE" = 1 ] && echo " --smoke") took $(( $(date +%s) - started )) s, exit status $status"
exit "$status"
