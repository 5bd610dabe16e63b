-- Pairwise learner pseudonyms on SQLite (crates/xuefen-core/src/pseudonym.rs):
-- every pseudonym handed to an audience (`site:<id>` or `bank`), so that
-- the audience's requests can name the learner by it. A pseudonym is a
-- keyed hash and cannot be inverted; a row is written the first time an
-- answer shows the learner to the audience, so a pseudonym resolves only
-- for the audience it was shown to. Erasing the learner deletes the rows.
-- Several rows may name one learner for one audience: the pseudonyms of an
-- earlier identity key keep resolving after it is replaced.
--
-- Table for table and column for column migrations/postgres/0010_pseudonyms.sql.

create table learner_pseudonyms (
    audience text not null,
    pseudonym text not null check (length(pseudonym) = 36 and substr(pseudonym, 1, 4) = 'psn_'),
    learner_id text not null references learners (id) on delete cascade,
    primary key (audience, pseudonym)
) strict, without rowid;
create index learner_pseudonyms_learner on learner_pseudonyms (learner_id);
create index learner_pseudonyms_pseudonym on learner_pseudonyms (pseudonym);

-- Single sign-on subjects bound to learners, for an SSO that names a person
-- by its own id (crates/xuefen-api/src/sso.rs): the keyed hash of issuer and
-- subject, never the subject in clear. Erasing the learner deletes the row.
create table learner_sso_bindings (
    subject_hash blob not null primary key check (length(subject_hash) = 32),
    learner_id text not null references learners (id) on delete cascade
) strict;
create index learner_sso_bindings_learner on learner_sso_bindings (learner_id);
