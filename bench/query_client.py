#!/usr/bin/env python3
"""Times the query API over HTTP for scripts/bench-queries.sh.

One keep-alive connection (http.client), sequential requests, each timed from
sending the request to reading the last byte of the answer (time.perf_counter),
so the client adds a few tens of microseconds. Prints one Markdown table row
per query. Exit status 1 on errors only (a non-200 answer, a wrong answer, the
rollup disagreeing with a recount), never on a missed target.

Arguments come from the environment: PORT, TOKEN, REQUESTS, WARMUP,
DEEP_PAGES, and the ids `zego-room-tracker seed` prints (BIG_SESSION_ID,
BIG_SESSION_PARTICIPANTS, HOT_ROOM, ORDINARY_ROOM, HISTORY_START).
"""
import datetime
import http.client
import json
import os
import sys
import time
import urllib.parse

env = os.environ
PORT = int(env["PORT"])
TOKEN = env.get("TOKEN", "")
REQUESTS = int(env.get("REQUESTS", "200"))
WARMUP = int(env.get("WARMUP", "20"))
DEEP_PAGES = int(env.get("DEEP_PAGES", "100"))
errors = []
conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=120)
headers = {"Authorization": f"Bearer {TOKEN}"} if TOKEN else {}


def get(path):
    """(status, body bytes, seconds)."""
    global conn
    for attempt in range(2):
        try:
            start = time.perf_counter()
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, body, time.perf_counter() - start
        except (http.client.HTTPException, ConnectionError):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=120)
            if attempt:
                raise
    raise AssertionError("unreachable")


def get_json(path):
    status, body, _ = get(path)
    if status != 200:
        errors.append(f"GET {path} answered {status}: {body[:200]!r}")
        return None
    return json.loads(body)


def day(offset_days, extra_seconds=0):
    start = datetime.datetime.fromisoformat(env["HISTORY_START"])
    t = start + datetime.timedelta(days=offset_days, seconds=extra_seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def q(**params):
    return urllib.parse.urlencode(params)


# Cursors from deep in the closed set, obtained the way a client would.
cursor, rows_deep = None, 0
for _ in range(DEEP_PAGES):
    page = get_json("/api/v1/rooms/closed?" + q(limit=1000, **({"cursor": cursor} if cursor else {})))
    if not page or not page["next_cursor"]:
        break
    cursor, rows_deep = page["next_cursor"], rows_deep + len(page["items"])
mid = get_json("/api/v1/rooms/closed?" + q(limit=1, to=day(45)))
mid_cursor = mid["next_cursor"] if mid else None

big = env["BIG_SESSION_ID"]
queries = [
    ("Closed rooms, first page", "/api/v1/rooms/closed", 10),
    (f"Closed rooms, page after {rows_deep:,} rows (followed cursors)",
     "/api/v1/rooms/closed?" + q(cursor=cursor or ""), 10),
    ("Closed rooms, page from mid-history (day 45)", "/api/v1/rooms/closed?" + q(cursor=mid_cursor or ""), 10),
    (f"Closed rooms of room {env['HOT_ROOM']} (hot room)", "/api/v1/rooms/closed?" + q(room_id=env["HOT_ROOM"]), 10),
    (f"Closed rooms of room {env['ORDINARY_ROOM']}", "/api/v1/rooms/closed?" + q(room_id=env["ORDINARY_ROOM"]), 10),
    ("Closed rooms by reason 3 (rarest)", "/api/v1/rooms/closed?close_reason=3", 10),
    ("Closed rooms by reasons 1,2", "/api/v1/rooms/closed?close_reason=1,2", 10),
    ("Closed rooms of one appid", "/api/v1/rooms/closed?appid=3456789012", 10),
    ("Close reasons, one day", "/api/v1/stats/close-reasons?" + q(**{"from": day(44), "to": day(45)}), 100),
    ("Close reasons, one day, bounds off the hour (rollup + recount of the partial hours)",
     "/api/v1/stats/close-reasons?" + q(**{"from": day(44, 30), "to": day(45, 30)}), 100),
    ("Close reasons, 30 days by day", "/api/v1/stats/close-reasons?" + q(**{"from": day(30), "to": day(60), "bucket": "day"}), 100),
    ("Close reasons, all time", "/api/v1/stats/close-reasons", 500),
    ("Close reasons, all time by day", "/api/v1/stats/close-reasons?bucket=day", 500),
    (f"Room history of {env['HOT_ROOM']} (hot room)", f"/api/v1/rooms/{env['HOT_ROOM']}/sessions", 10),
    (f"Room history of {env['ORDINARY_ROOM']}", f"/api/v1/rooms/{env['ORDINARY_ROOM']}/sessions", 10),
    (f"Session detail, {env['BIG_SESSION_PARTICIPANTS']} participants", f"/api/v1/sessions/{big}", 10),
    ("Open rooms, first page", "/api/v1/rooms/open", 10),
]
if cursor is None or mid_cursor is None:
    errors.append("could not get a deep cursor (too few closed sessions?)")

# Sanity of the answers, once each, before timing.
detail = get_json(f"/api/v1/sessions/{big}")
if detail is not None:
    want = int(env["BIG_SESSION_PARTICIPANTS"])
    if len(detail["participants"]) != want or len(detail["timeline"]) != 2 * want + 2:
        errors.append(f"session detail has {len(detail['participants'])} participants and "
                      f"{len(detail['timeline'])} timeline events, expected {want} and {2 * want + 2}")
# Whole-hour bounds (rollup only) and bounds off the hour (rollup plus a recount of the
# partial hour) must agree; `seed --check` already compared the rollup with a full SQL recount.
for bucket in ("none", "day"):
    rollup = get_json("/api/v1/stats/close-reasons?" + q(bucket=bucket))
    recount = get_json("/api/v1/stats/close-reasons?" + q(bucket=bucket, **{"from": "1"}))
    if rollup is not None and recount is not None and rollup != recount:
        errors.append(f"close-reason statistics (bucket={bucket}) differ between whole-hour and off-hour bounds")
if rollup is not None and rollup["total"] <= 0:
    errors.append("no closed sessions")

print("| query | target | p50 | p95 | max | pass/fail |")
print("|---|---|---|---|---|---|")
for name, path, target in queries:
    times, failed = [], None
    for k in range(WARMUP + REQUESTS):
        status, body, secs = get(path)
        if status != 200:
            failed = f"GET {path} answered {status}: {body[:200]!r}"
            break
        if k >= WARMUP:
            times.append(secs * 1000)
    if failed:
        errors.append(failed)
        print(f"| {name} | {target} ms | - | - | - | ERROR |")
        continue
    times.sort()
    p50 = times[len(times) // 2]
    p95 = times[min(len(times) - 1, (len(times) * 95 + 99) // 100 - 1)]
    verdict = "pass" if p95 <= target else "FAIL"
    print(f"| {name} | {target} ms | {p50:.1f} | {p95:.1f} | {times[-1]:.1f} | {verdict} |", flush=True)

for e in errors:
    print(f"error: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
