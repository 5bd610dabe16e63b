-- The credit bank feed: bank keys, signed checkpoints, Merkle nodes of the
-- chains, and the numbered deposits (docs/ledger-format.md, sections 7-9).

-- The credit bank is a principal of its own, with no site.
alter table api_keys drop constraint api_keys_role_check;
alter table api_keys add constraint api_keys_role_check check (role in ('admin', 'site', 'bank'));

-- Checkpoints, append-only and numbered without gaps; each names its
-- predecessor's hash. `chains` holds, in chain order, 76 bytes per chain:
-- chain (u32) ‖ size (u64) ‖ head hash ‖ Merkle root.
create table checkpoints (
    number bigint primary key check (number > 0),
    created_at_ms bigint not null,
    prev_hash bytea not null,
    deposits_end bigint not null,
    chains bytea not null,
    signature bytea not null,
    hash bytea not null
);

-- The hash of every complete aligned subtree of every chain's Merkle tree
-- above the leaves: `2^level` leaves from `idx * 2^level`, level >= 1 (a
-- leaf is the leaf hash of its entry's hash, read from ledger_entries).
-- Written once, when the subtree's last leaf is checkpointed, and never
-- changed; any proof reads O(log n) rows.
create table merkle_nodes (
    chain_id integer not null,
    level smallint not null,
    idx bigint not null,
    hash bytea not null,
    primary key (chain_id, level, idx)
);

-- Deposits in feed order: numbered when the checkpoint that first covers
-- them is written, so numbering follows (checkpoint, chain, seq) and never
-- changes. The cursor of the feed is a deposit number.
create table deposits (
    number bigint primary key check (number > 0),
    checkpoint bigint not null references checkpoints (number),
    chain_id integer not null,
    seq bigint not null,
    unique (chain_id, seq)
);

create function bank_append_only() returns trigger language plpgsql as $$
begin
    raise exception '% is append-only (% refused)', tg_table_name, tg_op;
end;
$$;
create trigger checkpoints_append_only
    before update or delete or truncate on checkpoints
    for each statement execute function bank_append_only();
create trigger deposits_append_only
    before update or delete or truncate on deposits
    for each statement execute function bank_append_only();
