-- Recognition groups (学分互认), annual credit caps per category, course
-- start dates, and the two entry fields they add to the ledger format
-- (docs/ledger-format.md, fields 17 and 18).

alter table ledger_entries add column recognition_group text;
alter table ledger_entries add column withheld_cents bigint;

-- A promotion (kind 6) repeats the key of the recognised completion it
-- promotes; that key stays the completion's. The key is still unique per
-- kind class, and lookups by (site_id, event_id) still use the index's
-- leading columns.
drop index ledger_entries_event_key;
create unique index ledger_entries_event_key on ledger_entries (site_id, event_id, (kind = 6));

-- A learner's history in a group, read only when a batch touches a group.
-- Partial: entries of courses without a group (most of them) cost nothing.
create index ledger_entries_learner_group on ledger_entries (learner_id, recognition_group)
    where recognition_group is not null;

-- Completions dated before a course was first offered are refused.
alter table courses add column offered_from_ms bigint;

create table recognition_groups (
    id text primary key,
    title text not null,
    updated_at timestamptz not null default now()
);

-- A course is in at most one group. Members need not exist as courses yet:
-- the admin may declare a group before every site has registered its course.
create table recognition_members (
    site_id text not null references sites (id),
    course_code text not null,
    group_id text not null references recognition_groups (id),
    primary key (site_id, course_code)
);
create index recognition_members_group on recognition_members (group_id);

-- Per-learner annual caps per category, in calendar years of China Standard
-- Time. Read with the courses of a batch, never updated per event.
create table category_caps (
    category text primary key,
    annual_cap_cents bigint not null check (annual_cap_cents >= 0),
    updated_at timestamptz not null default now()
);

-- Site lifecycle: the agreement in force, and every status change with who
-- and why in the alliance chain (docs/ledger-format.md, section 3b), chained
-- like a learner chain but kept in its own table and head.
alter table sites add column agreement_starts_at_ms bigint;
alter table sites add column agreement_ends_at_ms bigint;

create table site_changes (
    seq bigint primary key,
    prev_hash bytea not null,
    hash bytea not null,
    site_id text not null references sites (id),
    from_status text,
    to_status text not null,
    actor text not null,
    reason text not null,
    at_ms bigint not null,
    agreement_starts_at_ms bigint not null,
    agreement_ends_at_ms bigint not null
);
create index site_changes_site on site_changes (site_id, seq);

-- One row; locked by each status change (an admin act, never on the ingest path).
create table alliance_head (
    id boolean primary key default true check (id),
    seq bigint not null,
    hash bytea not null
);
insert into alliance_head (id, seq, hash) values (true, 0, decode(repeat('00', 32), 'hex'));

create trigger site_changes_append_only
    before update or delete or truncate on site_changes
    for each statement execute function ledger_entries_append_only();
