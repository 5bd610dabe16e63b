#!/usr/bin/env bash
# Declarative partitioning of a ledger-shaped table by chain, on a throwaway PostgreSQL:
#   scripts/with-postgres.sh ops/ha/partition-experiment.sh
# Checks that a per-chain append/read touches one partition (pruning) and that (chain_id, seq)
# stays unique per partition. Bounded: 200 000 rows.
set -euo pipefail
: "${DATABASE_URL:?run under scripts/with-postgres.sh}"
psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" <<'SQL'
create table pe (chain_id integer not null, seq bigint not null, hash bytea not null,
  event_id text not null, primary key (chain_id, seq)) partition by hash (chain_id);
select format('create table pe_%s partition of pe for values with (modulus 8, remainder %s)', r, r)
  from generate_series(0, 7) r \gexec
insert into pe select c, s, sha256(int8send(c * 100000 + s)), 'e' || c || '-' || s
  from generate_series(0, 63) c, generate_series(1, 3125) s;
SQL
total=$(psql -X -Atq "$DATABASE_URL" -c "select count(*) from pe")
plan=$(psql -X -Atq "$DATABASE_URL" -c "explain select max(seq) from pe where chain_id = 17")
parts=$(grep -o 'pe_[0-9]' <<<"$plan" | sort -u | wc -l)
size=$(psql -X -Atq "$DATABASE_URL" -c "select sum(pg_total_relation_size(c.oid)) from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'pe'::regclass")
echo "partition-experiment: rows=$total partitions_scanned_for_one_chain=$parts total_bytes=$size"
[ "$total" -eq 200000 ] && [ "$parts" -eq 1 ] || { echo "$plan"; echo "partition-experiment: FAIL"; exit 1; }
echo "partition-experiment: PASS"
