-- Learner identity and erasure on PostgreSQL: the per-learner secret under
-- which version-2 entries name their learner (docs/ledger-format.md,
-- section 3c), the two columns a version-2 entry adds, and the one change
-- the ledger allows after writing: an erasure (section 11).
--
-- Table for table and column for column migrations/sqlite/0007_privacy.sql.

-- One random 32-byte secret per learner, in a table of its own: erasing the
-- learner deletes the row, after which no entry can be tied to anyone.
create table learner_secrets (
    learner_id text not null primary key references learners (id),
    secret bytea not null check (octet_length(secret) = 32)
);
-- Learners registered before this migration get theirs now (two version-4
-- UUIDs: 244 random bits from the server's strong random source).
insert into learner_secrets (learner_id, secret)
select id, uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()) from learners;

-- Version 2: the learner commitment (null for a version-1 entry) and the
-- free text given with a reason code, kept outside the hash.
alter table ledger_entries
    add column learner_commitment bytea
        check (learner_commitment is null or octet_length(learner_commitment) = 32),
    add column reason_note text;

-- Append-only, except for an erasure. An UPDATE statement is refused unless
-- the transaction declared itself an erasure (`set local xuefen.erasure =
-- 'on'`), and even then each row may change only as an erasure does: on a
-- version-2 entry, whose learner id is not hashed, the learner id may be
-- replaced and the note removed; every hashed column stays as written.
drop trigger ledger_entries_append_only on ledger_entries;
create trigger ledger_entries_append_only
    before delete or truncate on ledger_entries
    for each statement execute function ledger_entries_append_only();

create function ledger_entries_update_guard() returns trigger language plpgsql as $$
begin
    if coalesce(current_setting('xuefen.erasure', true), '') <> 'on' then
        raise exception 'ledger_entries is append-only (UPDATE refused)';
    end if;
    return null;
end;
$$;
create trigger ledger_entries_update_guard
    before update on ledger_entries
    for each statement execute function ledger_entries_update_guard();

create function ledger_entries_erasure_only() returns trigger language plpgsql as $$
begin
    if old.learner_commitment is not null
       and new.reason_note is null
       and (new.chain_id, new.seq, new.prev_hash, new.hash, new.kind, new.site_id, new.event_id,
            new.course_code, new.category, new.credits_cents, new.occurred_at_ms, new.recorded_at_ms,
            new.score_cents, new.hours_cents, new.rule_version, new.refers_chain, new.refers_seq,
            new.target_event, new.reason, new.recognition_group, new.withheld_cents, new.learner_commitment)
           is not distinct from
           (old.chain_id, old.seq, old.prev_hash, old.hash, old.kind, old.site_id, old.event_id,
            old.course_code, old.category, old.credits_cents, old.occurred_at_ms, old.recorded_at_ms,
            old.score_cents, old.hours_cents, old.rule_version, old.refers_chain, old.refers_seq,
            old.target_event, old.reason, old.recognition_group, old.withheld_cents, old.learner_commitment)
    then
        return new;
    end if;
    raise exception 'ledger_entries is append-only (an erasure may only replace a version-2 entry''s learner id and remove its note)';
end;
$$;
create trigger ledger_entries_erasure_only
    before update on ledger_entries
    for each row execute function ledger_entries_erasure_only();
