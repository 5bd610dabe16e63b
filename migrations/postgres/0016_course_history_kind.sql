-- The course-history index puts the entry kind before the completion
-- instant. Ingest's credited-once read asks, per completion of a course
-- credited once per period, for the last paying entry of the period that
-- no reversal refers to (a range on the instant). A learner who completes
-- such a course again gets a non-paying entry each time, and with the
-- index ending at the instant the read visited every one of them (and
-- fetched its row to test the kind) to find the one paying entry. With the
-- kind in the key, the read visits the paying entries of the period only;
-- the read of the completion at the same instant still tests the instant
-- on the key's index entries, without fetching their rows.
drop index ledger_entries_learner_course;
create index ledger_entries_learner_course
    on ledger_entries (learner_id, site_id, course_code, kind, occurred_at_ms);
