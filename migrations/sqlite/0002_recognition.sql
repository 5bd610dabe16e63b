-- Recognition groups (学分互认), annual credit caps per category, course
-- start dates, and the two entry fields they add to the ledger format.
-- Table for table the schema of migrations/postgres/0002_recognition.sql.

alter table ledger_entries add column recognition_group text;
alter table ledger_entries add column withheld_cents integer;

-- A promotion (kind 6) repeats the key of the recognised completion it
-- promotes; that key stays the completion's.
drop index ledger_entries_event_key;
create unique index ledger_entries_event_key on ledger_entries (site_id, event_id, kind = 6);

create index ledger_entries_learner_group on ledger_entries (learner_id, recognition_group)
    where recognition_group is not null;

alter table courses add column offered_from_ms integer;

create table recognition_groups (
    id text not null primary key,
    title text not null,
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) strict;

create table recognition_members (
    site_id text not null references sites (id),
    course_code text not null,
    group_id text not null references recognition_groups (id),
    primary key (site_id, course_code)
) strict;
create index recognition_members_group on recognition_members (group_id);

create table category_caps (
    category text not null primary key,
    annual_cap_cents integer not null check (annual_cap_cents >= 0),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) strict;
