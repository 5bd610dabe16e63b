-- The xAPI document resources (State, Activity Profile, Agent Profile),
-- each site's document usage, and the canonical Activity Objects of the
-- Activities resource. Not part of the ledger: documents are not credits.

-- One row per document, keyed by its site and the parameters that name
-- it; a parameter the resource does not take is ''. `etag` is the hex
-- SHA-1 of `body`.
create table xapi_documents (
    site_id text not null references sites (id),
    kind text not null check (kind in ('state', 'activity_profile', 'agent_profile')),
    activity_id text not null,
    agent text not null,
    registration text not null,
    document_id text not null,
    content_type text not null,
    body bytea not null,
    etag text not null,
    updated_ms bigint not null,
    primary key (site_id, kind, activity_id, agent, registration, document_id)
);

-- The documents and bytes a site holds (the per-site limit). Every
-- document write locks its site's row first, so the limit holds under
-- concurrent writes.
create table xapi_document_usage (
    site_id text primary key references sites (id),
    documents bigint not null check (documents >= 0),
    bytes bigint not null check (bytes >= 0)
);

-- The canonical Activity Object of each activity a site's statements
-- named, merged statement by statement.
create table xapi_activities (
    site_id text not null references sites (id),
    activity_id text not null,
    object text not null,
    primary key (site_id, activity_id)
);

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
);

-- Attachment bytes received in multipart/mixed statement requests, by
-- their SHA-256 (what statements name in `attachments[].sha2`), for
-- `GET /xapi/statements?attachments=true`.
create table xapi_attachments (
    site_id text not null references sites (id),
    sha2 text not null,
    content_type text not null,
    body bytea not null,
    primary key (site_id, sha2)
);
