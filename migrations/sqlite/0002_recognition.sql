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

-- Site lifecycle: the agreement in force, and every status change with who
-- and why in the alliance chain.
alter table sites add column agreement_starts_at_ms integer;
alter table sites add column agreement_ends_at_ms integer;

create table site_changes (
    seq integer not null primary key,
    prev_hash blob not null,
    hash blob not null,
    site_id text not null references sites (id),
    from_status text,
    to_status text not null,
    actor text not null,
    reason text not null,
    at_ms integer not null,
    agreement_starts_at_ms integer not null,
    agreement_ends_at_ms integer not null
) strict;
create index site_changes_site on site_changes (site_id, seq);

create table alliance_head (
    id integer not null primary key check (id = 1),
    seq integer not null,
    hash blob not null
) strict;
insert into alliance_head (id, seq, hash) values (1, 0, zeroblob(32));

create trigger site_changes_append_only_update
    before update on site_changes
begin
    select raise(abort, 'site_changes is append-only');
end;
create trigger site_changes_append_only_delete
    before delete on site_changes
begin
    select raise(abort, 'site_changes is append-only');
end;
