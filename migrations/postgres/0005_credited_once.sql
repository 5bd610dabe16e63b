-- Credited once: how often a course may credit the same learner, the index
-- the planner reads a learner's history of one course through, and the
-- index a recognition group's declaration reads its courses' entries by.
-- Registrations carry when they happened (a back-fill brings old ones);
-- `created_at` stays when the service recorded them.

alter table courses add column credit_repeat text not null default 'once'
    check (credit_repeat in ('once', 'per_year', 'every_completion'));

create index ledger_entries_learner_course on ledger_entries (learner_id, site_id, course_code);
create index ledger_entries_course on ledger_entries (site_id, course_code);

alter table learner_accounts add column registered_at timestamptz;
