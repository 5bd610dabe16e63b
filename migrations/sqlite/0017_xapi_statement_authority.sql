-- The agent key of a statement's authority, in its row. The LRS sets the
-- authority of every statement it stores (the site, under its home page),
-- so it was one related row per statement; the statement query's
-- `related_agents` now matches it here. Statements stored before keep
-- their authority's related row (the column is null for them).
alter table xapi_statements add column authority text;
