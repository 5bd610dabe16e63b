-- Entry notes sealed at rest (docs/ledger-format.md, section 3d). Notes are
-- now written sealed under the learner's note key (`xfr1:…`); those written
-- in clear since migration 0007 are sealed by the service when it starts,
-- which needs one more change the ledger allows after writing: on a
-- version-2 entry, a note in clear may be replaced by a sealed one, in a
-- transaction that declared itself a note sealing (`set local
-- xuefen.note_seal = 'on'`), with every other column as written.
--
-- Table for table and column for column migrations/sqlite/0018_sealed_notes.sql.

create or replace function ledger_entries_update_guard() returns trigger language plpgsql as $$
begin
    if coalesce(current_setting('xuefen.erasure', true), '') <> 'on'
       and coalesce(current_setting('xuefen.note_seal', true), '') <> 'on' then
        raise exception 'ledger_entries is append-only (UPDATE refused)';
    end if;
    return null;
end;
$$;

create or replace function ledger_entries_erasure_only() returns trigger language plpgsql as $$
declare
    hashed_kept boolean :=
        (new.chain_id, new.seq, new.prev_hash, new.hash, new.kind, new.site_id, new.event_id,
         new.course_code, new.category, new.credits_cents, new.occurred_at_ms, new.recorded_at_ms,
         new.score_cents, new.hours_cents, new.rule_version, new.refers_chain, new.refers_seq,
         new.target_event, new.reason, new.recognition_group, new.withheld_cents, new.learner_commitment)
        is not distinct from
        (old.chain_id, old.seq, old.prev_hash, old.hash, old.kind, old.site_id, old.event_id,
         old.course_code, old.category, old.credits_cents, old.occurred_at_ms, old.recorded_at_ms,
         old.score_cents, old.hours_cents, old.rule_version, old.refers_chain, old.refers_seq,
         old.target_event, old.reason, old.recognition_group, old.withheld_cents, old.learner_commitment);
begin
    if old.learner_commitment is not null and hashed_kept then
        if coalesce(current_setting('xuefen.erasure', true), '') = 'on' and new.reason_note is null then
            return new;
        end if;
        if coalesce(current_setting('xuefen.note_seal', true), '') = 'on'
           and old.reason_note is not null and old.reason_note not like 'xfr1:%'
           and new.reason_note like 'xfr1:%'
           and new.learner_id is not distinct from old.learner_id then
            return new;
        end if;
    end if;
    raise exception 'ledger_entries is append-only (an erasure may only replace a version-2 entry''s learner id and remove its note; a note sealing may only seal a note in clear)';
end;
$$;

-- The notes still in clear: empty once the service has sealed them, and
-- never entered by an entry written since (its note is sealed), so the
-- start-up check reads an empty index instead of the ledger.
create index ledger_entries_clear_notes on ledger_entries (chain_id, seq)
    where reason_note is not null and reason_note not like 'xfr1:%';
