-- A site's document usage in 16 shards, so that concurrent document writes
-- of one site do not all wait on one row (each write locks the shard of
-- its document's scope; see crates/xuefen-store-postgres/src/xapi/documents.rs
-- for how the per-site byte limit stays exact). A shard's counts may go
-- below zero (documents counted before the shards began, in shard 0, can be
-- deleted from another); the site's sums cannot.
create table xapi_document_usage_shards (
    site_id text not null references sites (id),
    shard smallint not null check (shard between 0 and 15),
    documents bigint not null,
    bytes bigint not null,
    primary key (site_id, shard)
);
insert into xapi_document_usage_shards (site_id, shard, documents, bytes)
    select site_id, 0, documents, bytes from xapi_document_usage;
drop table xapi_document_usage;

-- The documents and bytes a site holds (the sums of its shards), read as
-- the table was.
create view xapi_document_usage as
    select site_id, sum(documents)::bigint as documents, sum(bytes)::bigint as bytes
      from xapi_document_usage_shards
     group by site_id;
