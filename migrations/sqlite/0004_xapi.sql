-- The xAPI door: statements exactly as stored, the site's account home
-- page, registered mbox_sha1sum links, and the activity IRI of a course.
-- The same tables as migrations/postgres/0004_xapi.sql.

create table xapi_statements (
    seq integer primary key autoincrement,
    site_id text not null references sites (id),
    statement_id text not null,
    fingerprint text not null,
    verb text not null,
    activity text,
    agent text,
    registration text,
    voids text,
    stored_ms integer not null,
    body text not null,
    unique (site_id, statement_id)
) strict;
create index xapi_statements_site_seq on xapi_statements (site_id, seq);
create index xapi_statements_verb on xapi_statements (site_id, verb, seq);
create index xapi_statements_activity on xapi_statements (site_id, activity, seq) where activity is not null;
create index xapi_statements_agent on xapi_statements (site_id, agent, seq) where agent is not null;
create index xapi_statements_registration on xapi_statements (site_id, registration, seq)
    where registration is not null;
create index xapi_statements_stored on xapi_statements (site_id, stored_ms);
create index xapi_statements_voids on xapi_statements (site_id, voids) where voids is not null;

create table xapi_profiles (
    site_id text not null primary key references sites (id),
    home_page text not null
) strict;

create table xapi_mbox_links (
    site_id text not null references sites (id),
    mbox_sha1sum text not null,
    local_account text not null,
    primary key (site_id, mbox_sha1sum)
) strict;

create table xapi_course_activities (
    site_id text not null,
    course_code text not null,
    activity_id text not null,
    primary key (site_id, course_code),
    unique (site_id, activity_id),
    foreign key (site_id, course_code) references courses (site_id, code)
) strict;
