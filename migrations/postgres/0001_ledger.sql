-- The ledger foundation: sites and keys, learners and their accounts,
-- courses, and the hash-chained ledger itself.

create table sites (
    id text primary key,
    name text not null,
    level text not null check (level in ('province', 'city', 'county', 'township')),
    region_code text not null check (region_code ~ '^[0-9]{6}$'),
    status text not null check (status in ('pending', 'active', 'suspended', 'terminated')),
    created_at timestamptz not null default now()
);

-- Keys are stored only as SHA-256 of the secret.
create table api_keys (
    id text primary key,
    role text not null check (role in ('admin', 'site')),
    site_id text references sites (id),
    secret_hash bytea not null unique,
    created_at timestamptz not null default now(),
    revoked_at timestamptz,
    check ((role = 'site') = (site_id is not null))
);

-- One row per real person: the document number is held only as an
-- HMAC-SHA256 under the service's identity key.
create table learners (
    id text primary key,
    chain_id integer not null,
    document_kind text not null,
    document_hash bytea not null unique,
    name text not null,
    created_at timestamptz not null default now()
);

create table learner_accounts (
    site_id text not null references sites (id),
    local_account text not null,
    learner_id text not null references learners (id),
    created_at timestamptz not null default now(),
    primary key (site_id, local_account)
);
create index learner_accounts_learner on learner_accounts (learner_id, site_id);

create table courses (
    site_id text not null references sites (id),
    code text not null,
    title text not null,
    category text not null,
    rule_kind text not null check (rule_kind in ('fixed', 'per_hours')),
    credits_cents bigint,
    hours_per_credit_cents bigint,
    cap_cents bigint,
    pass_mark_cents bigint,
    rule_version integer not null,
    updated_at timestamptz not null default now(),
    primary key (site_id, code)
);

-- A fixed set of chains; a learner's entries all live in one of them.
-- A chain's head row is locked once per group commit, never per request.
create table chain_heads (
    chain_id integer primary key,
    seq bigint not null,
    hash bytea not null
);
insert into chain_heads (chain_id, seq, hash)
select g, 0, decode(repeat('00', 32), 'hex') from generate_series(0, 63) as g;

-- Column for column the fields of docs/ledger-format.md.
create table ledger_entries (
    chain_id integer not null,
    seq bigint not null,
    prev_hash bytea not null,
    hash bytea not null,
    kind smallint not null,
    site_id text not null,
    event_id text not null,
    learner_id text not null,
    course_code text not null,
    category text not null,
    credits_cents bigint not null,
    occurred_at_ms bigint not null,
    recorded_at_ms bigint not null,
    score_cents bigint,
    hours_cents bigint,
    rule_version integer not null,
    refers_chain integer,
    refers_seq bigint,
    target_event text,
    reason text not null,
    primary key (chain_id, seq)
);
-- The idempotency key, enforced in the same transaction as the entry.
create unique index ledger_entries_event_key on ledger_entries (site_id, event_id);
-- An award is reversed at most once.
create unique index ledger_entries_one_reversal on ledger_entries (site_id, target_event)
    where target_event is not null;
create index ledger_entries_learner on ledger_entries (learner_id, seq);

-- Append-only: the service never updates or deletes an entry.
create function ledger_entries_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'ledger_entries is append-only (% refused)', tg_op;
end;
$$;
create trigger ledger_entries_append_only
    before update or delete or truncate on ledger_entries
    for each statement execute function ledger_entries_append_only();
