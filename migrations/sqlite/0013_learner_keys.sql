-- Per-learner keys on SQLite (crypto-shredding; crates/xuefen-core/src/names.rs):
-- each learner's personal fields (their name) are sealed under a random
-- key of their own, kept here only wrapped (sealed) by the service's name
-- keys and bound to the learner id. Erasing the learner deletes the row,
-- after which no copy of their sealed values (an old page of the file, a
-- WAL, a dump's `learners` rows) opens, not even with the service's keys.
-- A learner registered before this migration gets a key when the service
-- next starts, which moves their name under it (crates/xuefen/src/names.rs).
--
-- Table for table and column for column migrations/postgres/0013_learner_keys.sql.

create table learner_keys (
    learner_id text not null primary key references learners (id) on delete cascade,
    wrapped text not null check (substr(wrapped, 1, 5) = 'xfn1:')
) strict;
