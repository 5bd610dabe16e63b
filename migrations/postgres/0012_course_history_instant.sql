-- The course-history index ends with the completion instant. Ingest's
-- credited-once probe of an `every_completion` course asks only for the
-- entries of (learner, site, course) at one instant; with the index ending
-- at the course it found every entry of that learner's course and fetched
-- each row to test the time, so a back-fill onto learners with history
-- slowed down with the history. The full-history probe of `once` and
-- `per_year` courses reads the same index by its prefix.
drop index ledger_entries_learner_course;
create index ledger_entries_learner_course
    on ledger_entries (learner_id, site_id, course_code, occurred_at_ms);
