#!/usr/bin/env bash
# Runs the README's "try it" lines, as written, against a real `xuefen serve`
# on the embedded SQLite default, and checks the transcript they print.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p xuefen
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
env -u DATABASE_URL XUEFEN_DATA_DIR="$work/data" target/debug/xuefen serve --listen "127.0.0.1:$port" >"$work/out" 2>"$work/err" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
ADMIN=$(sed -n 's/^bootstrap admin key (shown once): //p' "$work/out")
[ -n "$ADMIN" ] || { cat "$work/err" >&2; echo "try-it: no admin key printed" >&2; exit 1; }
export ADMIN
sed -n '/<!-- try-it -->/,/<!-- \/try-it -->/p' README.md | sed '/^```/d;/^<!--/d' \
  | sed "s/localhost:8080/127.0.0.1:$port/g" >"$work/try.sh"
out=$(bash -euo pipefail "$work/try.sh")
# The curl lines print bodies without newlines: read them as a stream of JSON values.
echo "$out" | python3 -c '
import json, sys
text, values, at = sys.stdin.read(), [], 0
dec = json.JSONDecoder()
while at < len(text.strip()):
    value, at = dec.raw_decode(text, at)
    values.append(value)
    while at < len(text) and text[at].isspace():
        at += 1
t = values[-1]
assert t["totals"]["total"] == "1.25", t["totals"]
assert t["entries"][0]["status"] == "awarded", t["entries"][0]
print("try-it: README lines ran; transcript total", t["totals"]["total"], "at", t["entries"][0]["position"])
'
