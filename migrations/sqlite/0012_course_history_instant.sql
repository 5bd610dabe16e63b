-- The course-history index ends with the completion instant. Ingest's
-- credited-once read asks, per completion, for two bounded things of the
-- learner's history of the course: the first completion at the same
-- instant (an equality on this last column) and the last paying entry of
-- the completion's period (a range on it: the CST year, or all time), each
-- with `limit 1`. With the index ending at the course, both read every
-- entry of the learner's course and fetched each row to test the time, so
-- a back-fill onto learners with history slowed down with the history.
drop index ledger_entries_learner_course;
create index ledger_entries_learner_course
    on ledger_entries (learner_id, site_id, course_code, occurred_at_ms);
