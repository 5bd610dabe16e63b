-- The ledger's per-chain tables, partitioned by chain: run on a freshly migrated, empty
-- database (`xuefen migrate`, before the first event), e.g. by ops/ha/partition-check.sh.
--   psql -v parts=8 -f ops/ha/partition-by-chain.sql "$DATABASE_URL"
--
-- ledger_entries becomes PARTITION BY HASH (chain_id) with :parts partitions: every chain lives
-- whole in one partition, so an append (the group commit locks one chain's head and appends to
-- it), a transcript (one learner, one chain), the sealer's read of a chain's new entries and
-- `xuefen verify` of a chain each touch one partition.
--
-- What does not carry over: a unique index of a partitioned table must contain the partition
-- key, and the two keys the ledger enforces across chains do not:
--   * the idempotency key (site_id, event_id, kind = 6): a site may send the same event id for
--     two learners, whose entries would fall in two chains;
--   * one reversal per target (site_id, target_event).
-- Both move to unpartitioned key tables filled by a row trigger in the same transaction, so a
-- second entry under a key still fails with a unique violation (SQLSTATE 23505), which the
-- service already treats as "another transaction committed this key": it rolls back, runs the
-- batch again and answers a conflict. Without them, two concurrent events with one id for two
-- learners would both be stored (ops/ha/partition-check.sh tests exactly that).
-- The log (docs/ledger-format.md section 7) is one tree over all chains and stays as it is:
-- log_tiles (keyed by level and tile index, at most one row per 256 entries per level),
-- log_segments (keyed by log index: one row per chain per seal), log_chain_tips (64 rows) and
-- log_checkpoints (one row per seal); chain_heads (64 rows) too.
\set ON_ERROR_STOP on
\if :{?parts}
\else
\set parts 8
\endif
begin;

do $$ begin
    if exists (select 1 from ledger_entries) or exists (select 1 from log_segments) then
        raise exception 'partition-by-chain.sql: the ledger is not empty';
    end if;
end $$;

alter table ledger_entries rename to ledger_entries_unpartitioned;
create table ledger_entries (like ledger_entries_unpartitioned including defaults including constraints)
    partition by hash (chain_id);
drop table ledger_entries_unpartitioned;
alter table ledger_entries add primary key (chain_id, seq);
create index ledger_entries_learner on ledger_entries (learner_id, seq);
create index ledger_entries_learner_group on ledger_entries (learner_id, recognition_group)
    where recognition_group is not null;
-- Lookups by key (entries_by_keys, GET /v1/events/{id}) read every partition's local index;
-- uniqueness is the key tables' job.
create index ledger_entries_event on ledger_entries (site_id, event_id);
create index ledger_entries_target on ledger_entries (site_id, target_event) where target_event is not null;

select format('create table ledger_entries_p%s partition of ledger_entries for values with (modulus %s, remainder %s)',
              r, :parts, r)
  from generate_series(0, :parts - 1) as r \gexec

create table ledger_event_keys (
    site_id text not null,
    event_id text not null,
    promotion boolean not null,
    chain_id integer not null,
    seq bigint not null,
    primary key (site_id, event_id, promotion)
);
create table ledger_reversal_keys (
    site_id text not null,
    target_event text not null,
    primary key (site_id, target_event)
);
create function ledger_entries_keys() returns trigger language plpgsql as $$
begin
    insert into ledger_event_keys (site_id, event_id, promotion, chain_id, seq)
        values (new.site_id, new.event_id, new.kind = 6, new.chain_id, new.seq);
    if new.target_event is not null then
        insert into ledger_reversal_keys (site_id, target_event) values (new.site_id, new.target_event);
    end if;
    return null;
end;
$$;
create trigger ledger_entries_keys after insert on ledger_entries
    for each row execute function ledger_entries_keys();

-- Append-only, on the parent and on every partition (a statement addressed to a partition
-- directly does not fire the parent's statement triggers), and on the key tables.
select format('create trigger %I before update or delete or truncate on %I for each statement '
              'execute function ledger_entries_append_only()', t || '_append_only', t)
  from unnest(array['ledger_entries', 'ledger_event_keys', 'ledger_reversal_keys']
              || array(select 'ledger_entries_p' || r from generate_series(0, :parts - 1) r)) as t \gexec

commit;
