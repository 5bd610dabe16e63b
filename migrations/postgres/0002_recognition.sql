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
