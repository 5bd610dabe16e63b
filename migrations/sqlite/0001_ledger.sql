-- The ledger foundation on SQLite: sites and keys, learners and their
-- accounts, courses, and the hash-chained ledger itself.
--
-- Table for table and column for column the schema of
-- migrations/postgres/0001_ledger.sql, so that the same events give the same
-- entries on both backends. Differences are only of dialect:
--
-- * every integer is INTEGER (64-bit), every hash BLOB;
-- * tables are STRICT, so a value of the wrong type is refused instead of
--   being stored under SQLite's type affinity (the ledger's integers, bytes
--   and text must come back exactly as they were written);
-- * timestamps the service never reads back (created_at, updated_at,
--   revoked_at) are ISO-8601 text in UTC with milliseconds.

create table sites (
    id text not null primary key,
    name text not null,
    level text not null check (level in ('province', 'city', 'county', 'township')),
    region_code text not null
        check (length(region_code) = 6 and region_code not glob '*[^0-9]*'),
    status text not null check (status in ('pending', 'active', 'suspended', 'terminated')),
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) strict;

-- Keys are stored only as SHA-256 of the secret.
create table api_keys (
    id text not null primary key,
    role text not null check (role in ('admin', 'site')),
    site_id text references sites (id),
    secret_hash blob not null unique,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    revoked_at text,
    check ((role = 'site') = (site_id is not null))
) strict;

-- One row per real person: the document number is held only as an
-- HMAC-SHA256 under the service's identity key.
create table learners (
    id text not null primary key,
    chain_id integer not null,
    document_kind text not null,
    document_hash blob not null unique,
    name text not null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) strict;

create table learner_accounts (
    site_id text not null references sites (id),
    local_account text not null,
    learner_id text not null references learners (id),
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    primary key (site_id, local_account)
) strict;
create index learner_accounts_learner on learner_accounts (learner_id, site_id);

create table courses (
    site_id text not null references sites (id),
    code text not null,
    title text not null,
    category text not null,
    rule_kind text not null check (rule_kind in ('fixed', 'per_hours')),
    credits_cents integer,
    hours_per_credit_cents integer,
    cap_cents integer,
    pass_mark_cents integer,
    rule_version integer not null,
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    primary key (site_id, code)
) strict;

-- A fixed set of chains; a learner's entries all live in one of them.
create table chain_heads (
    chain_id integer not null primary key,
    seq integer not null,
    hash blob not null
) strict;
insert into chain_heads (chain_id, seq, hash)
with recursive g (n) as (select 0 union all select n + 1 from g where n < 63)
select n, 0, zeroblob(32) from g;

-- Column for column the fields of docs/ledger-format.md.
create table ledger_entries (
    chain_id integer not null,
    seq integer not null,
    prev_hash blob not null,
    hash blob not null,
    kind integer not null,
    site_id text not null,
    event_id text not null,
    learner_id text not null,
    course_code text not null,
    category text not null,
    credits_cents integer not null,
    occurred_at_ms integer not null,
    recorded_at_ms integer not null,
    score_cents integer,
    hours_cents integer,
    rule_version integer not null,
    refers_chain integer,
    refers_seq integer,
    target_event text,
    reason text not null,
    primary key (chain_id, seq)
) strict;
-- The idempotency key, enforced in the same transaction as the entry.
create unique index ledger_entries_event_key on ledger_entries (site_id, event_id);
-- An award is reversed at most once.
create unique index ledger_entries_one_reversal on ledger_entries (site_id, target_event)
    where target_event is not null;
create index ledger_entries_learner on ledger_entries (learner_id, seq);

-- Append-only: the service never updates or deletes an entry. (SQLite has no
-- TRUNCATE; a DELETE without WHERE still fires the delete trigger.)
create trigger ledger_entries_append_only_update
    before update on ledger_entries
begin
    select raise(abort, 'ledger_entries is append-only');
end;
create trigger ledger_entries_append_only_delete
    before delete on ledger_entries
begin
    select raise(abort, 'ledger_entries is append-only');
end;
