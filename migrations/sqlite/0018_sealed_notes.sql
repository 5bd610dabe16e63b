-- Entry notes sealed at rest (docs/ledger-format.md, section 3d). Notes are
-- now written sealed under the learner's note key (`xfr1:…`); those written
-- in clear since migration 0007 are sealed by the service when it starts,
-- which needs one more change the ledger allows after writing: on a
-- version-2 entry, a note in clear may be replaced by a sealed one, with
-- every other column as written.
--
-- Table for table and column for column migrations/postgres/0018_sealed_notes.sql.

drop trigger if exists ledger_entries_append_only_update;
create trigger ledger_entries_append_only_update
    before update on ledger_entries
    when old.learner_commitment is null
      or (new.reason_note is not null
          and not (old.reason_note is not null and old.reason_note not like 'xfr1:%'
                   and new.reason_note like 'xfr1:%'
                   and new.learner_id is old.learner_id))
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

-- The notes still in clear: empty once the service has sealed them, and
-- never entered by an entry written since (its note is sealed).
create index ledger_entries_clear_notes on ledger_entries (chain_id, seq)
    where reason_note is not null and reason_note not like 'xfr1:%';
