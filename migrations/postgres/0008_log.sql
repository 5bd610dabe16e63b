-- One append-only log over every sealed entry, in the C2SP tlog-tiles
-- layout (docs/ledger-format.md, section 7). It replaces the per-chain
-- Merkle nodes (a row per node) and the deposit numbering (a row per
-- deposit): an entry's log index is given by the segment it lies in, the
-- Merkle tree is kept as tiles of 256 hashes, and the feed's cursor is a
-- log index. The checkpoints of the earlier format are kept, renamed, so
-- that the first seal numbers the entries they covered in their order.

drop table deposits;
drop table merkle_nodes;
alter table checkpoints rename to legacy_checkpoints;

-- A run of one chain's entries in the log: log indexes start .. start +
-- count - 1 are entries first_seq .. first_seq + count - 1 of chain_id.
-- One row per chain per seal. The primary key on start lets one instance
-- win a race to continue the log.
create table log_segments (
    start bigint primary key check (start >= 0),
    chain_id integer not null,
    first_seq bigint not null check (first_seq >= 1),
    count bigint not null check (count >= 1),
    unique (chain_id, first_seq)
);

-- Tiles of the log's Merkle tree: tile level L, index idx holds up to 256
-- hashes (32 bytes each) of tree level 8 * L. A full tile (8192 bytes) is
-- never changed; the last tile of a level grows in place.
create table log_tiles (
    level smallint not null check (level >= 0 and level < 8),
    idx bigint not null check (idx >= 0),
    hashes bytea not null check (length(hashes) % 32 = 0 and length(hashes) between 32 and 8192),
    primary key (level, idx)
);

-- How far each chain is sealed: its last sealed entry.
create table log_chain_tips (
    chain_id integer primary key,
    seq bigint not null,
    hash bytea not null
);

-- The signed checkpoints, one per seal (C2SP signed notes).
create table log_checkpoints (
    size bigint primary key check (size > 0),
    created_at_ms bigint not null,
    note text not null
);

create trigger log_segments_append_only
    before update or delete or truncate on log_segments
    for each statement execute function bank_append_only();
create trigger log_checkpoints_append_only
    before update or delete or truncate on log_checkpoints
    for each statement execute function bank_append_only();

-- A full tile never changes.
create function log_full_tile_frozen() returns trigger language plpgsql as $$
begin
    if length(old.hashes) = 8192 or substring(new.hashes from 1 for length(old.hashes)) <> old.hashes then
        raise exception 'tile %/% may only grow', old.level, old.idx;
    end if;
    return new;
end;
$$;
create trigger log_tiles_grow_only before update on log_tiles
    for each row execute function log_full_tile_frozen();
create trigger log_tiles_no_delete
    before delete or truncate on log_tiles
    for each statement execute function bank_append_only();
