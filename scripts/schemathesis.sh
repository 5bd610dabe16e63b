#!/usr/bin/env bash
# Runs schemathesis (pinned below) against openapi/xuefen.json on a real
# `xuefen serve`, once on SQLite and once on PostgreSQL (when DATABASE_URL is
# a postgres URL, as under scripts/with-postgres.sh), with every check,
# negative data included, a bounded number of examples per operation and a
# time cap per run. Any server error, schema violation or undocumented
# status fails it. Installs schemathesis from PyPI into a venv under this
# run's folder; where PyPI cannot be reached it says so and skips.
#
#   SCHEMATHESIS_EXAMPLES  examples per operation and phase (default 15)
#   SCHEMATHESIS_MAX_TIME  seconds per run (default 40; 4 runs: two keys on two backends)
#
# Every run's log and JUnit report are kept in target/schemathesis/ (the
# temporary folder is removed), so a failure or a runtime error reported by
# schemathesis can be read after the run.
set -euo pipefail
cd "$(dirname "$0")/.."
version=4.32.5
examples=${SCHEMATHESIS_EXAMPLES:-15}
max_time=${SCHEMATHESIS_MAX_TIME:-40}
work=$(mktemp -d "${TMPDIR:-/tmp}/xuefen-schemathesis.XXXXXX")
server=
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

st="$work/venv/bin/schemathesis"
if [ -n "${SCHEMATHESIS_VENV:-}" ] && [ -x "$SCHEMATHESIS_VENV/bin/schemathesis" ]; then
    st="$SCHEMATHESIS_VENV/bin/schemathesis" # a venv of an earlier run, for trying things by hand
elif ! python3 -m venv "$work/venv" >/dev/null 2>&1; then
    echo "SKIPPED: schemathesis: python3 cannot make a virtual environment here"
    exit 0
elif ! timeout 300 "$work/venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$version" >"$work/pip.log" 2>&1; then
    echo "SKIPPED: schemathesis: could not install schemathesis==$version from PyPI (not reachable?):"
    tail -3 "$work/pip.log"
    exit 0
fi
"$st" --version | grep -q "$version" || { echo "schemathesis: $("$st" --version) is not $version" >&2; exit 1; }

cargo build -q -p xuefen --locked

pg_url=
case "${DATABASE_URL:-}" in postgres://* | postgresql://*) pg_url=$DATABASE_URL ;; esac
backends=sqlite
if [ -n "$pg_url" ]; then backends="sqlite postgres"; else echo "note: schemathesis: DATABASE_URL is not PostgreSQL; SQLite only"; fi

failed=0
spec="$PWD/openapi/xuefen.json"
for backend in $backends; do
    data="$work/$backend"
    mkdir -p "$data"
    if [ "$backend" = sqlite ]; then url="sqlite://$data/xuefen.db"; else url=$pg_url; fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    env -u XUEFEN_CONFIG DATABASE_URL="$url" XUEFEN_DATA_DIR="$data" \
        target/debug/xuefen serve --listen "127.0.0.1:$port" >"$data/out" 2>"$data/err" &
    server=$!
    for _ in $(seq 1 300); do grep -q "listening on" "$data/out" 2>/dev/null && break; sleep 0.1; done
    admin=$(sed -n 's/^bootstrap admin key (shown once): //p' "$data/out")
    if [ -z "$admin" ]; then
        cat "$data/err" >&2
        echo "schemathesis: the $backend server printed no admin key (a PostgreSQL database that was used before?)" >&2
        exit 1
    fi
    base="http://127.0.0.1:$port"
    # A site with a course and a learner, so that operations reach past
    # authentication and lookups.
    site=$(curl -sf -X POST "$base/v1/sites" -H "authorization: Bearer $admin" -H 'content-type: application/json' \
        -d '{"id":"st","name":"测试学习网","level":"county","region_code":"330106"}' \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"]["secret"])')
    curl -sf -o /dev/null -X PUT "$base/v1/courses/C1" -H "authorization: Bearer $site" -H 'content-type: application/json' \
        -d '{"title":"课程","category":"community","rule":{"kind":"per_hours","hours_per_credit":"5","cap":"4"}}'
    curl -sf -o /dev/null -X POST "$base/v1/learners" -H "authorization: Bearer $site" -H 'content-type: application/json' \
        -d '{"name":"测试","document":{"kind":"resident_id","number":"11010519491231002X"},"local_account":"u1"}'
    for who in site admin; do
        if [ "$who" = site ]; then key=$site; else key=$admin; fi
        echo "== schemathesis $version on $backend with the $who key (at most $examples examples per operation, ${max_time}s)"
        # Run from the temporary folder, where schemathesis keeps its cache.
        # One worker: with two threads, hypothesis's lambda descriptions call
        # `ast.parse` concurrently, which CPython 3.11 does not survive
        # ("AST constructor recursion depth mismatch", a runtime error of the
        # tool, not a finding about the API).
        if ! (cd "$work" && "$st" run "$spec" --url "$base" \
            --checks all --exclude-checks positive_data_acceptance,use_after_free,ensure_resource_availability,object_level_authorization \
            --mode all --phases examples,coverage,fuzzing \
            --max-examples "$examples" --max-time "$max_time" --seed 14 --workers 1 \
            --suppress-health-check all --request-timeout 20 \
            --exclude-path /metrics \
            -H "Authorization: Bearer $key" \
            --report junit --report-dir "$work/report-$backend-$who") >"$work/st-$backend-$who.log" 2>&1; then
            failed=1
            # The failures and the summary (schemathesis repeats itself at length).
            if grep -q "= FAILURES =" "$work/st-$backend-$who.log"; then
                sed -n '/= FAILURES =/,$p' "$work/st-$backend-$who.log" | head -c 30000
            else
                tail -n 40 "$work/st-$backend-$who.log" | cut -c1-400
            fi
            echo "schemathesis: failures on $backend with the $who key" >&2
        else
            grep -E "^(Test cases|API Operations|Seed|No issues|Test Phases)|passed|failed" "$work/st-$backend-$who.log" | tail -6 || true
        fi
        mkdir -p target/schemathesis
        rm -rf "target/schemathesis/report-$backend-$who"
        cp -r "$work/st-$backend-$who.log" "$work/report-$backend-$who" target/schemathesis/ 2>/dev/null || true
        if grep -qi "runtime error\|errored" "$work/st-$backend-$who.log"; then
            echo "schemathesis: its log reports an error on $backend with the $who key: target/schemathesis/st-$backend-$who.log" >&2
        fi
    done
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=
done
exit $failed
