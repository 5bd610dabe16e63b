#!/usr/bin/env bash
# Where ingestion time goes: runs the ingestion scenarios (no ledgers) on a
# throwaway cluster with pg_stat_statements loaded, then prints the
# statements by total execution time. With PERF=1 it also records the
# whole machine's CPU profile during the run (perf record -a -g) and prints
# the perf report command that shows the server's share. Build first:
#   cargo build --release -p xuefen -p xuefen-loadtest
# Usage: loadtests/profile.sh [extra xuefen-loadtest flags]
set -euo pipefail
cd "$(dirname "$0")/.."
export XUEFEN_PG_OPTIONS="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
export PROFILE_SQL="
  select round(total_exec_time::numeric, 0) as total_ms, calls, rows,
         round((total_exec_time / greatest(rows, 1) * 1000)::numeric, 2) as us_per_row,
         regexp_replace(left(query, 100), '\s+', ' ', 'g') as query
    from pg_stat_statements order by total_exec_time desc limit 15"
exec scripts/with-postgres.sh bash -c '
  set -euo pipefail
  run=(target/release/xuefen-loadtest --no-ledgers --single-conns 64 --single-events 10000 "$@")
  if [ "${PERF:-0}" = 1 ]; then
    perf record -q -a -g -F 299 -o /tmp/xuefen-perf.data -- "${run[@]}"
    echo "perf: perf report -i /tmp/xuefen-perf.data --comm xuefen --no-children --percent-limit 1.5" >&2
  else
    "${run[@]}"
  fi
  psql "$DATABASE_URL" -qc "create extension if not exists pg_stat_statements" >/dev/null
  psql "$DATABASE_URL" -P pager=off -c "$PROFILE_SQL"
  wait
' profile "$@"
