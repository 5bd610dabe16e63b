#!/usr/bin/env bash
# Runs the ADL LRS conformance test suite against a real `xuefen serve`.
#   scripts/xapi-conformance.sh SUITE_PATH [--backend sqlite|postgres] [--versions "1.0.3 2.0.0"] [--debug]
# SUITE_PATH is a checkout of adlnet/lrs-conformance-test-suite (not vendored into this
# repository); its npm dependencies are installed there when missing. The script builds the
# service in release mode, starts it on a temp SQLite data dir (or a throwaway PostgreSQL cluster
# through scripts/with-postgres.sh), bootstraps one site, runs the whole suite at each version
# under a time limit (the suite waits forever for a missing header) and prints the pass/fail
# counts. Exit status: 0 when every version ran with zero failures, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "xapi-conformance: $*" >&2; exit 2; }
[ $# -ge 1 ] || die "usage: $0 SUITE_PATH [--backend sqlite|postgres] [--versions \"1.0.3 2.0.0\"]"
suite=$(cd "$1" && pwd) || die "no such suite folder: $1"
shift
backend=sqlite
versions="1.0.3 2.0.0"
profile=release
while [ $# -gt 0 ]; do
  case "$1" in
    --backend) backend=${2:?}; shift 2 ;;
    --versions) versions=${2:?}; shift 2 ;;
    --debug) profile=debug; shift ;;
    *) die "unknown argument: $1" ;;
  esac
done
[ -f "$suite/bin/console_runner.js" ] || die "$suite is not an LRS conformance suite checkout"
command -v node >/dev/null || die "node is not installed"

if [ "$backend" = postgres ] && [ -z "${XAPI_CONFORMANCE_IN_PG:-}" ]; then
  XAPI_CONFORMANCE_IN_PG=1 exec scripts/with-postgres.sh "$0" "$suite" --backend postgres --versions "$versions" $([ "$profile" = debug ] && echo --debug)
fi
case "$backend" in sqlite|postgres) ;; *) die "backend must be sqlite or postgres" ;; esac

if [ ! -d "$suite/node_modules" ]; then
  echo "xapi-conformance: npm install in $suite" >&2
  (cd "$suite" && npm install --no-audit --no-fund >&2)
fi

if [ "$profile" = release ]; then cargo build -q --release -p xuefen; else cargo build -q -p xuefen; fi
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server=
trap 'if [ -n "$server" ]; then kill $server 2>/dev/null; wait $server 2>/dev/null; fi; rm -rf "$work"' EXIT
# Each suite runs against the service answering its own version by default
# (`xapi_default_version`): the 1.0.3 and 2.0.0 suites ask opposite things
# of the version header on an answer to a request that names none. The
# data directory, and so the site and its key, is kept across restarts.
start_server() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; fi
  : >"$work/out"
  if [ "$backend" = sqlite ]; then
    env -u DATABASE_URL XUEFEN_XAPI_DEFAULT_VERSION="$1" XUEFEN_DATA_DIR="$work/data" target/$profile/xuefen serve --listen "127.0.0.1:$port" >>"$work/out" 2>"$work/err" &
  else
    XUEFEN_XAPI_DEFAULT_VERSION="$1" XUEFEN_DATA_DIR="$work/data" target/$profile/xuefen serve --listen "127.0.0.1:$port" >>"$work/out" 2>"$work/err" &
  fi
  server=$!
  for _ in $(seq 1 300); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
}
first_version=${versions%% *}
start_server "$first_version"
admin=$(sed -n 's/^bootstrap admin key (shown once): //p' "$work/out")
[ -n "$admin" ] || { cat "$work/err" >&2; die "the service printed no bootstrap admin key"; }
site=lrs-conformance
key=$(curl -sf -X POST "127.0.0.1:$port/v1/sites" -H "authorization: Bearer $admin" -H "content-type: application/json" \
  -d "{\"id\":\"$site\",\"name\":\"LRS conformance\",\"level\":\"county\",\"region_code\":\"330106\"}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"]["secret"])')
[ -n "$key" ] || die "could not bootstrap a site"

status=0
for version in $versions; do
  [ "$version" = "$first_version" ] || start_server "$version"
  log="$work/suite-$version.log"
  set +e
  (cd "$suite" && timeout -s INT 900 node bin/console_runner.js -e "http://127.0.0.1:$port/xapi" \
    -a -u "$site" -p "$key" -x "$version") >"$log" 2>&1
  rc=$?
  set -e
  # The runner prints its summary as a JSON line every 2 s; the last one holds the counts.
  read -r total pass fail < <(python3 -c '
import json, sys
last = {}
for line in open(sys.argv[1], errors="replace"):
    line = line.strip()
    if line.startswith("{") and "passed" in line:
        try:
            last = json.loads(line)
        except ValueError:
            pass
print(last.get("total", "?"), last.get("passed", "?"), last.get("failed", "?"))
' "$log")
  echo "xapi-conformance: backend $backend, xAPI $version: $pass pass / $fail fail of $total (runner exit $rc)"
  if [ -n "${XAPI_CONFORMANCE_LOG_DIR:-}" ]; then
    mkdir -p "$XAPI_CONFORMANCE_LOG_DIR" && cp "$log" "$XAPI_CONFORMANCE_LOG_DIR/"
  fi
  [ "$rc" -eq 0 ] || status=1
done
exit $status
