-- The xAPI document resources (State, Activity Profile, Agent Profile),
-- each site's document usage, and the canonical Activity Objects of the
-- Activities resource. Not part of the ledger. The same tables as
-- migrations/postgres/0006_xapi_documents.sql.

create table xapi_documents (
    site_id text not null references sites (id),
    kind text not null check (kind in ('state', 'activity_profile', 'agent_profile')),
    activity_id text not null,
    agent text not null,
    registration text not null,
    document_id text not null,
    content_type text not null,
    body blob not null,
    etag text not null,
    updated_ms integer not null,
    primary key (site_id, kind, activity_id, agent, registration, document_id)
) strict;

create table xapi_document_usage (
    site_id text not null primary key references sites (id),
    documents integer not null check (documents >= 0),
    bytes integer not null check (bytes >= 0)
) strict;

create table xapi_activities (
    site_id text not null references sites (id),
    activity_id text not null,
    object text not null,
    primary key (site_id, activity_id)
) strict;

-- The agents and activities each statement relates to (actor, object,
-- authority, instructor, team, group members, context activities, and
-- those of a SubStatement): what the statement query's related_agents and
-- related_activities match. `kind` is 'agent' (an agent key) or
-- 'activity' (an activity id). An index of xapi_statements (the query
-- joins it to a stored statement), without a foreign key so that a
-- statement row can be removed on its own.
create table xapi_statement_related (
    site_id text not null,
    statement_id text not null,
    kind text not null check (kind in ('agent', 'activity')),
    value text not null,
    primary key (site_id, kind, value, statement_id)
) strict;

-- Attachment bytes received in multipart/mixed statement requests, by
-- their SHA-256 (what statements name in `attachments[].sha2`), for
-- `GET /xapi/statements?attachments=true`.
create table xapi_attachments (
    site_id text not null references sites (id),
    sha2 text not null,
    content_type text not null,
    body blob not null,
    primary key (site_id, sha2)
) strict;
