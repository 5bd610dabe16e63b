-- The statement table: one index fewer to write per statement, no per-row
-- trigger, and the authority's agent key in the row.
--
-- The primary key becomes (site_id, seq). Every read of the table is
-- scoped to one site and pages by `seq` within it, which the separate
-- (site_id, seq) index served while the key on `seq` alone served nothing;
-- the key now serves it, and that index goes. `seq` stays an identity
-- column, so it is still unique on its own.
--
-- The foreign key to `sites` goes, as `ledger_entries` has none: a
-- statement is written only by an authenticated site, sites are never
-- deleted (they close), and the key's check was one `select ... for key
-- share` on `sites` per statement row.
alter table xapi_statements drop constraint xapi_statements_site_id_fkey;
alter table xapi_statements drop constraint xapi_statements_pkey;
alter table xapi_statements add constraint xapi_statements_pkey primary key (site_id, seq);
drop index xapi_statements_site_seq;

-- The agent key of a statement's authority, in its row. The LRS sets the
-- authority of every statement it stores (the site, under its home page),
-- so it was one related row per statement; the statement query's
-- `related_agents` now matches it here. Statements stored before keep
-- their authority's related row (the column is null for them).
alter table xapi_statements add column authority text;
