-- The xAPI door: statements exactly as stored, the site's account home
-- page, registered mbox_sha1sum links, and the activity IRI of a course.

-- One row per statement, keyed by (site, statement id). `body` holds the
-- exact JSON returned (text, not jsonb, so the bytes stay as received);
-- `seq` orders and pages the statement query; `fingerprint` is the hex
-- SHA-256 of the received content, compared on a re-send. A statement is
-- voided when a voiding statement of the same site names it in `voids`:
-- derived at read time, so rows are never updated.
create table xapi_statements (
    seq bigint generated always as identity primary key,
    site_id text not null references sites (id),
    statement_id text not null,
    fingerprint text not null,
    verb text not null,
    activity text,
    agent text,
    registration text,
    voids text,
    stored_ms bigint not null,
    body text not null,
    constraint xapi_statements_key unique (site_id, statement_id)
);
create index xapi_statements_site_seq on xapi_statements (site_id, seq);
create index xapi_statements_verb on xapi_statements (site_id, verb, seq);
create index xapi_statements_activity on xapi_statements (site_id, activity, seq) where activity is not null;
create index xapi_statements_agent on xapi_statements (site_id, agent, seq) where agent is not null;
create index xapi_statements_registration on xapi_statements (site_id, registration, seq)
    where registration is not null;
create index xapi_statements_stored on xapi_statements (site_id, stored_ms);
create index xapi_statements_voids on xapi_statements (site_id, voids) where voids is not null;

-- The home page under which a site's LMS names its accounts
-- (`actor.account.homePage`).
create table xapi_profiles (
    site_id text primary key references sites (id),
    home_page text not null
);

-- mbox_sha1sum values a site registered for its local accounts.
create table xapi_mbox_links (
    site_id text not null references sites (id),
    mbox_sha1sum text not null check (mbox_sha1sum ~ '^[0-9a-f]{40}$'),
    local_account text not null,
    primary key (site_id, mbox_sha1sum)
);

-- The activity IRI a site declared for one of its courses, unique per site.
create table xapi_course_activities (
    site_id text not null,
    course_code text not null,
    activity_id text not null,
    primary key (site_id, course_code),
    constraint xapi_course_activities_iri unique (site_id, activity_id),
    foreign key (site_id, course_code) references courses (site_id, code)
);
