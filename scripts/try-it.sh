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
# The CLI lines (dev-token, verify) find the server's data through its settings.
export XUEFEN_DATA_DIR="$work/data"
unset DATABASE_URL
# Twice against the same data: every line must be safe to run again.
for run in 1 2; do
out=$(bash -euo pipefail "$work/try.sh") || { echo "try-it: run $run failed" >&2; cat "$work/err" >&2; exit 1; }
# One bank pull: the deposit accepted once, over both runs.
echo "$out" | grep -q "1 in all (1 accepted, 0 rejected, 0 decided elsewhere)" \
  || { echo "try-it: run $run: the bank pull did not accept the deposit once" >&2; echo "$out" >&2; exit 1; }
# The curl lines print bodies without newlines: read them as a stream of JSON
# values; other lines (verify's report) are skipped.
echo "$out" | RUN=$run python3 -c '
import json, os, sys
text, values, at = sys.stdin.read(), [], 0
dec = json.JSONDecoder()
while at < len(text):
    if text[at].isspace():
        at += 1
        continue
    try:
        value, at = dec.raw_decode(text, at)
        values.append(value)
    except json.JSONDecodeError:
        nl = text.find("\n", at)
        at = len(text) if nl < 0 else nl + 1
transcripts = [v for v in values if isinstance(v, dict) and "totals" in v]
assert len(transcripts) == 2, values
for t in transcripts:
    # Run 2 posts evt-1 again: the same entry, paid once.
    assert t["totals"]["total"] == "1.25", t["totals"]
    # Run 1 pulls the deposit and accepts it: run 2 shows it deposited.
    want = "awarded" if os.environ["RUN"] == "1" else "deposited"
    assert len(t["entries"]) == 1 and t["entries"][0]["status"] == want, t["entries"]
t = transcripts[0]
print("try-it: run", os.environ["RUN"], "of the README lines; transcript total", t["totals"]["total"], "at", t["entries"][0]["position"])
'
done
