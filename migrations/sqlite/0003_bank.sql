-- The credit bank feed: bank keys, signed checkpoints, Merkle nodes of the
-- chains, and the numbered deposits (docs/ledger-format.md, sections 7-9).
-- The same tables as migrations/postgres/0003_bank.sql.

-- The credit bank is a principal of its own, with no site. SQLite cannot
-- alter a CHECK constraint, so the table is rebuilt (nothing refers to it).
create table api_keys_v3 (
    id text not null primary key,
    role text not null check (role in ('admin', 'site', 'bank')),
    site_id text references sites (id),
    secret_hash blob not null unique,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    revoked_at text,
    check ((role = 'site') = (site_id is not null))
) strict;
insert into api_keys_v3 (id, role, site_id, secret_hash, created_at, revoked_at)
    select id, role, site_id, secret_hash, created_at, revoked_at from api_keys;
drop table api_keys;
alter table api_keys_v3 rename to api_keys;

create table checkpoints (
    number integer not null primary key check (number > 0),
    created_at_ms integer not null,
    prev_hash blob not null,
    deposits_end integer not null,
    chains blob not null,
    signature blob not null,
    hash blob not null
) strict;

create table merkle_nodes (
    chain_id integer not null,
    level integer not null,
    idx integer not null,
    hash blob not null,
    primary key (chain_id, level, idx)
) strict, without rowid;

create table deposits (
    number integer not null primary key check (number > 0),
    checkpoint integer not null references checkpoints (number),
    chain_id integer not null,
    seq integer not null,
    unique (chain_id, seq)
) strict;

create trigger checkpoints_append_only_update before update on checkpoints
begin
    select raise(abort, 'checkpoints is append-only');
end;
create trigger checkpoints_append_only_delete before delete on checkpoints
begin
    select raise(abort, 'checkpoints is append-only');
end;
create trigger deposits_append_only_update before update on deposits
begin
    select raise(abort, 'deposits is append-only');
end;
create trigger deposits_append_only_delete before delete on deposits
begin
    select raise(abort, 'deposits is append-only');
end;
