#!/usr/bin/env bash
# Starts the service on a scratch SQLite file, plays one room's life as ZEGO
# would (signed callbacks, one of them late, one forged), then calls every
# query endpoint with curl and prints commands and real answers as Markdown.
# This is how docs/api.md's examples are made:  scripts/api-examples.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/require.sh
require curl python3

# A port no other process holds (PORT picks one): a fixed default could
# reach another server still listening there, and its /readyz would pass.
PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
SECRET=demo-secret
TOKEN=demo-token
DIR=$(mktemp -d)
# BIN skips the build and uses that binary, as in the other scripts.
BIN=${BIN:-target/release/zego-room-tracker}
[ "$BIN" = target/release/zego-room-tracker ] && cargo build --release -q
DATABASE_URL="sqlite://$DIR/demo.db" ZEGO_CALLBACK_SECRET=$SECRET API_TOKENS=$TOKEN \
  LISTEN_ADDR=127.0.0.1:$PORT "$BIN" 2>"$DIR/server.log" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 50); do curl -sf "localhost:$PORT/readyz" >/dev/null && break; sleep 0.2; done

# send PATH JSON-FIELDS [SECRET]: adds timestamp, nonce and signature like ZEGO.
send() {
  local ts nonce sig
  ts=$(date +%s); nonce=$RANDOM$RANDOM
  sig=$(printf '%s\n' "${3:-$SECRET}" "$ts" "$nonce" | LC_ALL=C sort | tr -d '\n' | sha1sum | cut -d' ' -f1)
  curl -s -X POST "localhost:$PORT$1" -H 'Content-Type: application/json' \
    -d "{\"appid\":1234567890,\"timestamp\":$ts,\"nonce\":\"$nonce\",\"signature\":\"$sig\",$2}" >/dev/null
}
t0=$(( ($(date +%s) - 3600) * 1000 ))
room='"room_id":"lobby-7"'
send /callbacks/room_create "\"event\":\"room_create\",$room,\"room_session_id\":6085791336856668982,\"room_create_time\":\"$t0\",\"id_name\":\"alice\""
send /callbacks/room_login "\"event\":\"room_login\",$room,\"room_seq\":\"6085791336856668982\",\"user_account\":\"alice\",\"user_nickname\":\"Alice\",\"session_id\":\"s-a1\",\"login_time\":\"$((t0 + 15))\",\"user_role\":\"1\""
send /callbacks/room_login "\"event\":\"room_login\",$room,\"room_seq\":\"6085791336856668982\",\"user_account\":\"bob\",\"user_nickname\":\"%E5%BC%A0%E4%B8%89\",\"session_id\":\"s-b1\",\"login_time\":\"$((t0 + 60000))\",\"user_role\":\"2\""
send /callbacks/room_login "\"event\":\"room_login\",$room,\"room_seq\":\"6085791336856668982\",\"user_account\":\"recorder\",\"session_id\":\"s-r1\",\"login_time\":\"$((t0 + 100))\",\"user_role\":\"4\""
send /callbacks/room_close "\"event\":\"room_close\",$room,\"room_session_id\":6085791336856668982,\"close_reason\":2,\"room_close_time\":\"$((t0 + 1800000))\""
# The logouts arrive after the close (late callbacks are normal).
send /callbacks/room_logout "\"event\":\"room_logout\",$room,\"room_seq\":\"6085791336856668982\",\"user_account\":\"bob\",\"session_id\":\"s-b1\",\"login_time\":\"$((t0 + 60000))\",\"logout_time\":\"$((t0 + 900000))\",\"reason\":\"0\""
send /callbacks/room_logout "\"event\":\"room_logout\",$room,\"room_seq\":\"6085791336856668982\",\"user_account\":\"alice\",\"session_id\":\"s-a1\",\"login_time\":\"$((t0 + 15))\",\"logout_time\":\"$((t0 + 1799000))\",\"reason\":\"2\""
send /callbacks/room_create "\"event\":\"room_create\",$room,\"room_session_id\":6085791336856669001,\"room_create_time\":\"$((t0 + 2000000))\",\"id_name\":\"carol\""
send /callbacks/room_close "\"event\":\"room_close\",$room,\"room_session_id\":1,\"close_reason\":0,\"room_close_time\":\"$t0\"" wrong-secret

# JSON with every object of plain values on one line: readable and short.
pretty() {
  python3 -c '
import json, sys
def fmt(v, ind=0):
    pad = "  " * (ind + 1)
    if isinstance(v, dict) and v and any(isinstance(x, (dict, list)) and x for x in v.values()):
        items = [pad + json.dumps(k) + ": " + fmt(x, ind + 1) for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * ind + "}"
    if isinstance(v, list) and v and any(isinstance(x, (dict, list)) for x in v):
        return "[\n" + ",\n".join(pad + fmt(x, ind + 1) for x in v) + "\n" + "  " * ind + "]"
    return json.dumps(v, ensure_ascii=False)
print(fmt(json.load(sys.stdin)))'
}

show() { # title, path, [accept]
  echo "### $1"; echo
  local accept=${3:-application/json}
  echo '```sh'
  echo "curl -H 'Authorization: Bearer $TOKEN'${3:+ -H 'Accept: $accept'} 'http://localhost:8080$2'"
  echo '```'; echo
  local body; body=$(curl -s -H "Authorization: Bearer $TOKEN" -H "Accept: $accept" "localhost:$PORT$2")
  if [ "$accept" = "text/csv" ]; then
    echo '```csv'; echo "$body"
  else
    echo '```json'; pretty <<<"$body"
  fi
  echo '```'; echo
}
show "Closed rooms" "/api/v1/rooms/closed"
show "Closed rooms as CSV" "/api/v1/rooms/closed?close_reason=1,2" text/csv
show "Close-reason statistics by day" "/api/v1/stats/close-reasons?bucket=day"
show "One room's history" "/api/v1/rooms/lobby-7/sessions"
show "One session with its participants" "/api/v1/sessions/6085791336856668982"
show "Open rooms" "/api/v1/rooms/open"
show "Rejected deliveries" "/api/v1/deliveries?outcome=rejected&limit=1"
echo "### Without a token"; echo
echo '```sh'; echo "curl 'http://localhost:8080/api/v1/rooms/open'"; echo '```'; echo
echo '```json'; curl -s "localhost:$PORT/api/v1/rooms/open"; echo; echo '```'
