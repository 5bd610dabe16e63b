-- Learner identity and erasure on SQLite: the per-learner secret under
-- which version-2 entries name their learner (docs/ledger-format.md,
-- section 3c), the two columns a version-2 entry adds, and the one change
-- the ledger allows after writing: an erasure (section 11).
--
-- Table for table and column for column migrations/postgres/0007_privacy.sql.

-- One random 32-byte secret per learner, in a table of its own: erasing the
-- learner deletes the row, after which no entry can be tied to anyone.
create table learner_secrets (
    learner_id text not null primary key references learners (id),
    secret blob not null check (length(secret) = 32)
) strict;
-- Learners registered before this migration get theirs now.
insert into learner_secrets (learner_id, secret) select id, randomblob(32) from learners;

-- Version 2: the learner commitment (null for a version-1 entry) and the
-- free text given with a reason code, kept outside the hash.
alter table ledger_entries add column learner_commitment blob
    check (learner_commitment is null or length(learner_commitment) = 32);
alter table ledger_entries add column reason_note text;

-- Append-only, except for an erasure: on a version-2 entry, whose learner
-- id is not hashed, the learner id may be replaced and the note removed;
-- every hashed column stays as written.
drop trigger ledger_entries_append_only_update;
create trigger ledger_entries_append_only_update
    before update on ledger_entries
    when old.learner_commitment is null
      or new.reason_note is not null
      or new.chain_id is not old.chain_id or new.seq is not old.seq
      or new.prev_hash is not old.prev_hash or new.hash is not old.hash
      or new.kind is not old.kind or new.site_id is not old.site_id
      or new.event_id is not old.event_id or new.course_code is not old.course_code
      or new.category is not old.category or new.credits_cents is not old.credits_cents
      or new.occurred_at_ms is not old.occurred_at_ms or new.recorded_at_ms is not old.recorded_at_ms
      or new.score_cents is not old.score_cents or new.hours_cents is not old.hours_cents
      or new.rule_version is not old.rule_version or new.refers_chain is not old.refers_chain
      or new.refers_seq is not old.refers_seq or new.target_event is not old.target_event
      or new.reason is not old.reason or new.recognition_group is not old.recognition_group
      or new.withheld_cents is not old.withheld_cents
      or new.learner_commitment is not old.learner_commitment
begin
    select raise(abort, 'ledger_entries is append-only');
end;
