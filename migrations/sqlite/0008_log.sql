-- One append-only log over every sealed entry, in the C2SP tlog-tiles
-- layout. The same tables as migrations/postgres/0008_log.sql, which
-- explains them.

drop table deposits;
drop table merkle_nodes;
alter table checkpoints rename to legacy_checkpoints;

create table log_segments (
    start integer not null primary key check (start >= 0),
    chain_id integer not null,
    first_seq integer not null check (first_seq >= 1),
    count integer not null check (count >= 1),
    unique (chain_id, first_seq)
) strict;

create table log_tiles (
    level integer not null check (level >= 0 and level < 8),
    idx integer not null check (idx >= 0),
    hashes blob not null check (length(hashes) % 32 = 0 and length(hashes) between 32 and 8192),
    primary key (level, idx)
) strict, without rowid;

create table log_chain_tips (
    chain_id integer not null primary key,
    seq integer not null,
    hash blob not null
) strict;

create table log_checkpoints (
    size integer not null primary key check (size > 0),
    created_at_ms integer not null,
    note text not null
) strict;

create trigger log_segments_append_only_update before update on log_segments
begin
    select raise(abort, 'log_segments is append-only');
end;
create trigger log_segments_append_only_delete before delete on log_segments
begin
    select raise(abort, 'log_segments is append-only');
end;
create trigger log_checkpoints_append_only_update before update on log_checkpoints
begin
    select raise(abort, 'log_checkpoints is append-only');
end;
create trigger log_checkpoints_append_only_delete before delete on log_checkpoints
begin
    select raise(abort, 'log_checkpoints is append-only');
end;
create trigger log_tiles_grow_only before update on log_tiles
    when length(old.hashes) = 8192 or substr(new.hashes, 1, length(old.hashes)) <> old.hashes
begin
    select raise(abort, 'a tile may only grow');
end;
create trigger log_tiles_no_delete before delete on log_tiles
begin
    select raise(abort, 'log_tiles is append-only');
end;
