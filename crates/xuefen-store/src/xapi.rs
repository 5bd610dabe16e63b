//! The storage port of the xAPI door: statements as received, and the
//! links that let a statement name a learner and a course.
//!
//! A statement row keeps the exact JSON the door prepared
//! ([`xuefen_core::xapi::Prepared`]) under `(site, statement id)`, with a
//! per-database sequence number for ordering and paging and the columns the
//! statement query filters on. Whether a statement is voided is derived at
//! read time from the voiding statements stored (`voids`), so no row is ever
//! updated and a voiding statement that arrives before its target still
//! voids it.

use async_trait::async_trait;
use xuefen_core::entry::Entry;
use xuefen_core::event::Millis;
use xuefen_core::ids::{CourseCode, EventId, LocalAccount, SiteId};

use crate::row::{Columns, ReadRow};
use crate::{Result, Written};

/// A statement to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStatement {
    /// Lower-case UUID.
    pub id: String,
    pub json: String,
    /// Hex SHA-256 of the received content (the idempotency comparison).
    pub fingerprint: String,
    pub verb: String,
    pub activity: Option<String>,
    pub agent: Option<String>,
    /// The agent key of the statement's `authority`, the agent the LRS
    /// stores it under: the statement query matches it as a related agent
    /// in the statement's own row, so it costs no related row.
    pub authority: Option<String>,
    pub registration: Option<String>,
    pub voids: Option<String>,
    pub stored: Millis,
    /// The agent keys the statement relates to (`related_agents=true`).
    pub related_agents: Vec<String>,
    /// The activity ids the statement relates to (`related_activities=true`).
    pub related_activities: Vec<String>,
}

impl NewStatement {
    /// The (kind, value) rows of `xapi_statement_related`: the related
    /// agents (`agent`) and activities (`activity`) other than the actor
    /// (`agent`), the authority and the object (`activity`), which the
    /// statement query matches in the statement's own columns.
    pub fn related_rows(&self) -> impl Iterator<Item = (&'static str, &str)> {
        related_rows(
            [self.agent.as_deref(), self.authority.as_deref()],
            self.activity.as_deref(),
            &self.related_agents,
            &self.related_activities,
        )
    }
}

/// The rows of `xapi_statement_related` for a statement whose actor and
/// authority keys are `in_row` and object id `activity`: its related agents
/// and activities without those. One rule for a statement written now and
/// one re-indexed ([`backfill_related`]).
fn related_rows<'a>(
    in_row: [Option<&'a str>; 2],
    activity: Option<&'a str>,
    agents: &'a [String],
    activities: &'a [String],
) -> impl Iterator<Item = (&'static str, &'a str)> {
    let agents = agents
        .iter()
        .filter(move |a| !in_row.contains(&Some(a.as_str())))
        .map(|a| ("agent", a.as_str()));
    let activities = activities
        .iter()
        .filter(move |a| activity != Some(a.as_str()))
        .map(|a| ("activity", a.as_str()));
    agents.chain(activities)
}

/// A stored statement as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRow {
    /// Position in the store's statement order (the paging cursor).
    pub seq: i64,
    pub id: String,
    pub json: String,
    pub fingerprint: String,
    pub verb: String,
    /// Whether a stored voiding statement of the same site names it.
    pub voided: bool,
}

impl StatementRow {
    /// A row of `xapi_statements` (`seq`, `statement_id`, `body`,
    /// `fingerprint`, `verb`, `voided`).
    pub fn read<R: ReadRow + ?Sized>(row: &R) -> Result<Self> {
        let c = Columns::of("xapi_statements", row);
        Ok(Self {
            seq: c.get("seq")?,
            id: c.get("statement_id")?,
            json: c.get("body")?,
            fingerprint: c.get("fingerprint")?,
            verb: c.get("verb")?,
            voided: c.get("voided")?,
        })
    }
}

/// The key of a stored statement, as the write path checks a request
/// against it: no body, no voided flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub id: String,
    pub fingerprint: String,
    pub verb: String,
}

/// The filters of the statement query (`GET /xapi/statements`). Voided
/// statements are never returned. `verb`, `activity`, `agent` and
/// `registration` match a statement, or a voiding statement whose target
/// matches them all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatementQuery {
    pub verb: Option<String>,
    pub activity: Option<String>,
    pub agent: Option<String>,
    pub registration: Option<String>,
    /// `agent` matches any agent the statement relates to, not only the actor.
    pub related_agents: bool,
    /// `activity` matches any activity the statement relates to, not only
    /// the object.
    pub related_activities: bool,
    /// Stored strictly after.
    pub since: Option<Millis>,
    /// Stored at or before.
    pub until: Option<Millis>,
    pub ascending: bool,
    /// Continue after (ascending) or before (descending) this sequence number.
    pub cursor: Option<i64>,
    pub limit: usize,
}

/// A value [`statement_query`] binds, in placeholder order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlValue<'a> {
    Text(&'a str),
    Int(i64),
}

/// The text of a statement query and the values it binds: both backends
/// run the same SQL, each with its own placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementSql<'a> {
    pub sql: String,
    pub values: Vec<SqlValue<'a>>,
}

/// `select {columns} from xapi_statements s` for `site` filtered by `q`,
/// with `placeholder(n)` as the `n`th bound value (from 1). Each filter
/// adds a condition only when given, so that the planner can pick the
/// matching partial index. The filters other than since, until and limit
/// also match a voiding statement through the statement it targets (xAPI
/// 1.0.3 §2.1.3 "Filter Conditions for StatementRefs"); voided statements
/// are never answered.
pub fn statement_query<'a>(
    columns: &str,
    site: &'a SiteId,
    q: &'a StatementQuery,
    placeholder: impl Fn(usize) -> String,
) -> StatementSql<'a> {
    let mut values = vec![SqlValue::Text(site.as_str())];
    let mut sql = format!(
        "select {columns} from xapi_statements s where s.site_id = {}",
        placeholder(1)
    );
    let mut bind = |sql: &mut String, value: SqlValue<'a>| {
        values.push(value);
        sql.push_str(&placeholder(values.len()));
    };
    let filters: Vec<(&str, &'a str)> = [
        ("verb", &q.verb),
        ("activity", &q.activity),
        ("agent", &q.agent),
        ("registration", &q.registration),
    ]
    .into_iter()
    .filter_map(|(column, value)| value.as_deref().map(|v| (column, v)))
    .collect();
    if !filters.is_empty() {
        let related = |column: &str| match column {
            "agent" if q.related_agents => Some("agent"),
            "activity" if q.related_activities => Some("activity"),
            _ => None,
        };
        for alias in ["s", "t"] {
            sql.push_str(if alias == "s" {
                " and ((true"
            } else {
                ") or exists (select 1 from xapi_statements t where t.site_id = s.site_id and t.statement_id = s.voids"
            });
            for &(column, v) in &filters {
                match related(column) {
                    // The actor, the authority and the object are in the
                    // row's own columns; the related rows hold the other
                    // agents and activities.
                    Some(kind) => {
                        sql.push_str(&format!(" and ({alias}.{column} = "));
                        bind(&mut sql, SqlValue::Text(v));
                        if kind == "agent" {
                            sql.push_str(&format!(" or {alias}.authority = "));
                            bind(&mut sql, SqlValue::Text(v));
                        }
                        sql.push_str(&format!(
                            " or exists (select 1 from xapi_statement_related r where r.site_id = {alias}.site_id
                                   and r.kind = '{kind}' and r.statement_id = {alias}.statement_id and r.value = "
                        ));
                        bind(&mut sql, SqlValue::Text(v));
                        sql.push_str("))");
                    }
                    None => {
                        sql.push_str(&format!(" and {alias}.{column} = "));
                        bind(&mut sql, SqlValue::Text(v));
                    }
                }
            }
        }
        sql.push_str("))");
    }
    if let Some(since) = q.since {
        sql.push_str(" and s.stored_ms > ");
        bind(&mut sql, SqlValue::Int(since.0));
    }
    if let Some(until) = q.until {
        sql.push_str(" and s.stored_ms <= ");
        bind(&mut sql, SqlValue::Int(until.0));
    }
    if let Some(cursor) = q.cursor {
        sql.push_str(if q.ascending { " and s.seq > " } else { " and s.seq < " });
        bind(&mut sql, SqlValue::Int(cursor));
    }
    sql.push_str(
        " and not exists (select 1 from xapi_statements v where v.site_id = s.site_id and v.voids = s.statement_id)",
    );
    sql.push_str(if q.ascending {
        " order by s.seq asc limit "
    } else {
        " order by s.seq desc limit "
    });
    bind(&mut sql, SqlValue::Int(i64::try_from(q.limit).unwrap_or(i64::MAX)));
    StatementSql { sql, values }
}

/// The xAPI part of the storage port. Every method is scoped to one site.
#[async_trait]
pub trait XapiStore: Send + Sync {
    /// Stores statements in one transaction. A statement whose id is
    /// already stored with the same fingerprint is left as it is
    /// (`Existing`); with another fingerprint the whole call writes nothing
    /// and fails with `Conflict(<statement id>)`.
    async fn insert_statements(&self, site: &SiteId, statements: &[NewStatement]) -> Result<Vec<Written>> {
        self.insert_statements_folding(site, statements, &[]).await
    }
    /// [`XapiStore::insert_statements`], and in the same transaction folds
    /// `objects[i]`, the Activity Object (JSON) of `statements[i]` (whose
    /// `activity` is its id), into the stored canonical one
    /// ([`crate::xapi_documents::fold_activities`]) when that statement is
    /// created; a missing or `None` entry folds nothing. Only Activity
    /// Objects the fold changes are written.
    async fn insert_statements_folding(
        &self,
        site: &SiteId,
        statements: &[NewStatement],
        objects: &[Option<String>],
    ) -> Result<Vec<Written>>;
    /// The stored statements among `ids` (lower-case), in no particular order.
    async fn statements_by_ids(&self, site: &SiteId, ids: &[String]) -> Result<Vec<StatementRow>>;
    /// The keys of the stored statements among `ids` (lower-case), in no
    /// particular order: what a write compares a request with, read from
    /// the unique key's index and the row alone.
    async fn statement_keys(&self, site: &SiteId, ids: &[String]) -> Result<Vec<StoredKey>>;
    /// At most `query.limit` statements that are not voided, newest first
    /// unless `ascending`.
    async fn query_statements(&self, site: &SiteId, query: &StatementQuery) -> Result<Vec<StatementRow>>;

    /// Sets the home page under which the site's LMS names its accounts.
    async fn set_xapi_home_page(&self, site: &SiteId, home_page: &str) -> Result<()>;
    async fn xapi_home_page(&self, site: &SiteId) -> Result<Option<String>>;
    /// Registers the `mbox_sha1sum` under which the site's LMS names a local
    /// account. A sum already registered for another account is a `Conflict`.
    async fn link_mbox_sha1sum(&self, site: &SiteId, account: &LocalAccount, sha1sum: &str) -> Result<Written>;
    /// The local accounts registered under these sums (unknown ones left out).
    async fn mbox_accounts(&self, site: &SiteId, sha1sums: &[String]) -> Result<Vec<(String, LocalAccount)>>;
    /// Sets (or with `None` removes) the activity IRI of one of the site's
    /// courses. An IRI another course of the site holds is a `Conflict`.
    async fn set_course_activity(&self, site: &SiteId, course: &CourseCode, activity: Option<&str>) -> Result<()>;
    async fn course_activity(&self, site: &SiteId, course: &CourseCode) -> Result<Option<String>>;
    /// The courses of these activity IRIs (unknown ones left out).
    async fn activity_courses(&self, site: &SiteId, activities: &[String]) -> Result<Vec<(String, CourseCode)>>;
    /// The ledger entries of the site's events with these ids (every entry
    /// carrying one of the ids, in no particular order): a request checks
    /// them before it writes, so that a POST is refused whole.
    async fn entries_by_events(&self, site: &SiteId, ids: &[EventId]) -> Result<Vec<Entry>>;
    /// Up to `limit` statements of every site still to be re-indexed for
    /// their related agents (`xapi_related_backfill`), in (site, id) order,
    /// each with its stored body (`None` when the statement has been
    /// deleted since it was listed).
    async fn related_backfill_page(&self, limit: u32) -> Result<Vec<PendingReindex>>;
    /// In one transaction: adds the (kind, value) `rows` to the statement's
    /// related rows if the statement is still stored, and takes it off the
    /// re-indexing list.
    async fn finish_related_backfill(&self, site: &SiteId, id: &str, rows: &[(&'static str, String)]) -> Result<()>;
}

/// A statement listed for re-indexing ([`XapiStore::related_backfill_page`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReindex {
    pub site: SiteId,
    pub id: String,
    /// The stored statement: its body, actor key (`agent`) and object id
    /// (`activity`); `None` when it has been deleted since it was listed.
    pub stored: Option<StoredForReindex>,
}

/// What re-indexing reads of a listed statement that is still stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredForReindex {
    pub body: String,
    pub agent: Option<String>,
    pub activity: Option<String>,
}

impl PendingReindex {
    /// A listed statement as a store reads it back (the statement's columns
    /// from a left join: `body` is `None` when it is gone); a site id that
    /// does not parse is a corrupt row.
    pub fn from_row(
        site: String,
        id: String,
        body: Option<String>,
        agent: Option<String>,
        activity: Option<String>,
    ) -> Result<Self> {
        let parsed = SiteId::parse(site.clone()).map_err(|e| crate::StoreError::Corrupt {
            at: format!("xapi_related_backfill {site}"),
            detail: e.to_string(),
        })?;
        let stored = body.map(|body| StoredForReindex { body, agent, activity });
        Ok(PendingReindex {
            site: parsed,
            id,
            stored,
        })
    }
}

/// Re-indexes, `page` at a time, the statements stored before a release
/// that counted the 2.0.0 context agents and groups among a statement's
/// related agents (migration 0015 lists them): each gets the related rows
/// a write of it would make now ([`xuefen_core::xapi::related::related`]
/// over its stored body, without its actor and object), and leaves the
/// list. The service runs it when it starts, before it serves;
/// a run after the list is empty reads one empty page. Answers how many
/// statements left the list.
pub async fn backfill_related<S: XapiStore + ?Sized>(store: &S, page: u32) -> Result<u64> {
    let mut done = 0;
    loop {
        let pending = store.related_backfill_page(page.max(1)).await?;
        if pending.is_empty() {
            return Ok(done);
        }
        for p in pending {
            let rows = p.stored.as_ref().map(related_rows_of_stored).unwrap_or_default();
            store.finish_related_backfill(&p.site, &p.id, &rows).await?;
            done += 1;
        }
    }
}

/// The (kind, value) related rows of a stored statement. A body that does
/// not parse (none does: bodies are stored after validation) relates to
/// nothing.
fn related_rows_of_stored(s: &StoredForReindex) -> Vec<(&'static str, String)> {
    let Ok(statement) = serde_json::from_str::<serde_json::Value>(&s.body) else {
        return Vec::new();
    };
    let (agents, activities) = xuefen_core::xapi::related::related(&statement);
    // A listed statement was stored before the authority had a column
    // (migration 0015 listed them; 0017 added it): its authority is a
    // related row like any other agent.
    related_rows([s.agent.as_deref(), None], s.activity.as_deref(), &agents, &activities)
        .map(|(kind, value)| (kind, value.to_owned()))
        .collect()
}
