#!/usr/bin/env bash
# The service on ledger tables partitioned by chain gives the same answers as on the plain ones:
#   scripts/with-postgres.sh ops/ha/partition-check.sh [--events N]
# Two databases on the throwaway PostgreSQL: `plain` (the migrations as they are) and `parted`
# (the migrations, then ops/ha/partition-by-chain.sql). ops/ha/partition-check.py runs the same
# workload through a `xuefen serve` on each and compares ingest answers, transcripts, site
# statistics, the deposit feed and `xuefen verify`; then races one event id across learners on
# both; then prints the plan of a one-chain read and the bytes per entry of each layout.
# PARTS (default 8) sets the number of partitions. Bounded: a few thousand events.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${XUEFEN_TEST_PG_ADMIN_URL:?run under scripts/with-postgres.sh}"
bin=${XUEFEN_BIN:-target/debug/xuefen}
[ -x "$bin" ] || cargo build -p xuefen --locked --quiet
base=${XUEFEN_TEST_PG_ADMIN_URL%/postgres}
for db in plain parted; do
  psql -X -q -v ON_ERROR_STOP=1 "$XUEFEN_TEST_PG_ADMIN_URL" -c "drop database if exists $db" -c "create database $db"
  DATABASE_URL="$base/$db" "$bin" migrate >/dev/null
done
psql -X -q -v ON_ERROR_STOP=1 -v parts="${PARTS:-8}" -f ops/ha/partition-by-chain.sql "$base/parted"
exec python3 ops/ha/partition-check.py --plain "$base/plain" --parted "$base/parted" --bin "$bin" "$@"
