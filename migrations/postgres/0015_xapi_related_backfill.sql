-- Statements stored before the 2.0.0 context agents were indexed as related
-- agents (`context.contextAgents[].agent`, `context.contextGroups[].group`
-- and its members): the service re-indexes each of them once when it
-- starts (`xuefen_store::xapi::backfill_related`) and takes it off this
-- list. Only statements whose body names either member are listed.
create table xapi_related_backfill (
    site_id text not null,
    statement_id text not null,
    primary key (site_id, statement_id)
);

insert into xapi_related_backfill (site_id, statement_id)
select site_id, statement_id from xapi_statements
 where body like '%"contextAgents"%' or body like '%"contextGroups"%';
