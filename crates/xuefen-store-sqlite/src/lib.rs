//! The SQLite backend of the Xuefen store, for single-node deployments.
//!
//! It mirrors the PostgreSQL store table for table and column for column
//! (`migrations/sqlite`), and leaves every decision to
//! [`xuefen_core::plan`], so the same events give byte-identical entries and
//! hashes on both backends.
//!
//! SQLite has exactly one writer at a time, and the design leans on that
//! instead of fighting it:
//!
//! - Ingestion runs a whole batch in one transaction opened with
//!   `BEGIN IMMEDIATE`, which takes the write lock before the first read.
//!   Every lookup (learners, courses, entries under the batch's keys,
//!   reversals, chain heads) therefore sees a settled state that no other
//!   writer can change before commit. There is no head locking and no retry
//!   on idempotency races as on PostgreSQL: a competing batch waits for the
//!   lock (`busy_timeout`) and then sees what this one wrote.
//! - Write transactions run in a task of their own (`run_to_end`): a caller
//!   that stops waiting cannot leave one open on a pooled connection.
//! - The database runs in WAL mode, so readers (verification, statements,
//!   key checks) never block the writer nor are blocked by it.
//! - `synchronous = FULL` makes every commit fsync the WAL: when `ingest`
//!   returns `Ok` — and the API answers 2xx — the entries survive a crash or
//!   a power cut. (`NORMAL` would stay consistent but could lose the last
//!   commits.)
//!
//! Multi-row lookups and inserts bind their values as parameters in chunks
//! (`IN (?, ...)`, `VALUES (?, ...), (...)`), never one statement per row and
//! never with values spliced into the SQL.
//!
//! As on PostgreSQL, queries are built at run time with `sqlx::query`;
//! the tests run every one against a real database file.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use xuefen_core::amount::Credits;
use xuefen_core::entry::Entry;
use xuefen_core::entry::EntryKind;
use xuefen_core::event::{Event, EventBody, LearnerRef, Millis, Reason};
use xuefen_core::ids::{
    Category, CourseCode, EventId, GroupId, LearnerId, LocalAccount, Position, RegionCode, SiteId, SiteLevel,
    SiteStatus,
};
use xuefen_core::plan::{self, Head, Key, Lookups, Outcome};
use xuefen_core::site_log::{SiteChange, SiteChangeEntry};
use xuefen_core::tlog::{TileId, Tiles};
use xuefen_core::transcript::{Referrals, TotalRow};
use xuefen_store::bank::{AckOutcome, AckRequest, ChainTip, DepositRecord, LogHead, Seal, Segment};
use xuefen_store::records::{CourseRecord, EntryRecord, SiteChangeRecord};
use xuefen_store::{
    Course, Group, KeyRecord, NewKey, NewLearner, Principal, Result, Site, SiteAct, SiteYearStats, StatsRule, Store,
    StoreError, Written, site_change, site_transition,
};

mod bank;
mod witness;
mod xapi;
mod xapi_documents;

/// Migrations embedded from `migrations/sqlite`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// How long a connection waits for another one's write lock before failing
/// with `SQLITE_BUSY`. Batches queue on the lock; ten seconds is far longer
/// than any batch holds it.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Bound parameters per statement. SQLite refuses more than 32 766 (its
/// default `SQLITE_MAX_VARIABLE_NUMBER`); staying well below keeps each
/// statement small to prepare.
const PARAMS_PER_STATEMENT_MAX: usize = 10_000;

/// Columns of `ledger_entries`.
const ENTRY_COLUMNS: usize = 24;

/// Rows per multi-row insert of entries: 454 × 22 ≤ 10 000 parameters.
const ENTRY_ROWS_PER_INSERT: usize = PARAMS_PER_STATEMENT_MAX / ENTRY_COLUMNS;

/// The columns of an entry in [`EntryRecord`] order, as a literal so that
/// queries stay `&'static str`.
macro_rules! entry_columns {
    () => {
        "chain_id, seq, prev_hash, hash, kind, site_id, event_id, learner_id, course_code,
         category, credits_cents, occurred_at_ms, recorded_at_ms, score_cents, hours_cents,
         rule_version, refers_chain, refers_seq, target_event, reason, recognition_group, withheld_cents,
         learner_commitment, reason_note"
    };
}

/// The columns of a course in [`CourseRecord`] order, with its recognition
/// group; the caller's query ends with [`course_from!`].
macro_rules! course_columns {
    () => {
        "c.site_id, c.code, c.title, c.category, c.rule_kind, c.credits_cents,
         c.hours_per_credit_cents, c.cap_cents, c.pass_mark_cents, c.rule_version,
         m.group_id, c.offered_from_ms, c.credit_repeat"
    };
}

macro_rules! course_from {
    () => {
        " from courses c
          left join recognition_members m on m.site_id = c.site_id and m.course_code = c.code"
    };
}

/// A timestamp as the schema's defaults write it: ISO-8601 UTC, milliseconds.
macro_rules! now_sql {
    () => {
        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    };
}

/// Maps a driver error to the store's errors, once.
fn db(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            // SQLite does not report the constraint's name; its message names
            // the columns (`UNIQUE constraint failed: sites.id`).
            StoreError::Conflict(d.constraint().map_or_else(|| d.message().to_owned(), str::to_owned))
        }
        sqlx::Error::RowNotFound => StoreError::NotFound,
        _ => StoreError::Database(Box::new(e)),
    }
}

/// A row the service could not have written (a column of the wrong type).
fn unreadable(table: &str, e: sqlx::Error) -> StoreError {
    StoreError::Corrupt {
        at: table.to_owned(),
        detail: e.to_string(),
    }
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    chains: u32,
}

/// Connection settings of the SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteSettings {
    /// `sqlite://path/to/xuefen.db`; the file is created if missing.
    pub url: String,
    pub pool_connections_max: u32,
}

impl SqliteStore {
    /// Opens (creating if missing) the database, runs pending migrations
    /// when `migrate` is set, and reads the number of chains.
    pub async fn connect(settings: &SqliteSettings, migrate: bool) -> Result<Self> {
        let options: SqliteConnectOptions = settings.url.parse().map_err(db)?;
        private_file(options.get_filename()).map_err(|e| StoreError::Database(Box::new(e)))?;
        let options = options
            .create_if_missing(true)
            // Readers and the writer do not block each other.
            .journal_mode(SqliteJournalMode::Wal)
            // A 2xx must mean durable: FULL fsyncs the WAL at every commit.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Deleted content is overwritten with zeros, so that an erased
            // learner's rows do not linger in free pages of the file.
            .pragma("secure_delete", "on")
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.pool_connections_max.max(1))
            .connect_with(options)
            .await
            .map_err(db)?;
        if migrate {
            MIGRATOR
                .run(&pool)
                .await
                .map_err(|e| StoreError::Database(Box::new(e)))?;
        }
        let chains: i64 = sqlx::query_scalar("select count(*) from chain_heads")
            .fetch_one(&pool)
            .await
            .map_err(db)?;
        let chains = u32::try_from(chains)
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| StoreError::Corrupt {
                at: "chain_heads".into(),
                detail: "no chains".into(),
            })?;
        Ok(Self { pool, chains })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Creates the database file readable and writable by its owner only
/// (0600), in a directory that, when created here, only its owner may enter
/// (0700); an existing file is narrowed to 0600. SQLite creates the WAL and
/// shared-memory files with the database file's permissions. The learners'
/// data must not be world-readable on a shared machine.
fn private_file(path: &std::path::Path) -> std::io::Result<()> {
    if path.as_os_str().is_empty() || path == std::path::Path::new(":memory:") {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// `(?, ?), (?, ?)`: `rows` tuples of `width` placeholders.
fn tuples(rows: usize, width: usize) -> String {
    let one = format!("({})", vec!["?"; width].join(", "));
    vec![one; rows].join(", ")
}

/// `?, ?, ?`: `n` placeholders.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Every statement built by [`tuples`] or [`placeholders`] is run
/// unprepared-for-reuse: its text depends on the batch's size, and caching
/// each shape would evict the statements that do repeat.
const REUSE_DYNAMIC_STATEMENTS: bool = false;

fn batch_keys(events: &[Event]) -> Vec<Key> {
    let mut keys: Vec<Key> = events.iter().map(|e| (e.site.clone(), e.id.clone())).collect();
    for e in events {
        if let EventBody::Revocation(r) = &e.body {
            keys.push((e.site.clone(), r.target.clone()));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

fn revocation_targets(events: &[Event]) -> Vec<(String, String)> {
    let mut targets: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Revocation(r) => Some((e.site.as_str().to_owned(), r.target.as_str().to_owned())),
            EventBody::Completion(_) => None,
        })
        .collect();
    targets.sort();
    targets.dedup();
    targets
}

/// Plans and writes one batch inside the caller's `BEGIN IMMEDIATE`
/// transaction.
async fn ingest_locked(conn: &mut SqliteConnection, events: &[Event], now: Millis) -> Result<Vec<Outcome>> {
    let mut lookups = Lookups::default();
    lookup_learners(conn, events, &mut lookups).await?;
    lookup_courses(conn, events, &mut lookups).await?;
    for e in entries_by_keys(conn, &batch_keys(events)).await? {
        lookups.add_entry(e);
    }
    lookups.reversed = reversed_targets(conn, events).await?;
    let targets = plan::target_courses(events, &lookups);
    if !targets.is_empty() {
        let keys = targets.iter().map(|(s, c)| (s.as_str(), c.as_str())).collect();
        lookup_course_keys(conn, keys, &mut lookups).await?;
    }
    // Credited once: each learner's history of each course the batch names.
    lookups.course_entries = course_entries(conn, &plan::course_keys(events, &lookups)).await?;
    // Recognition and caps: only batches that touch a group or a capped
    // category run these.
    lookups.group_entries = group_entries(conn, &plan::group_keys(events, &lookups)).await?;
    lookups.year_totals = year_totals(conn, &plan::cap_keys(events, &lookups)).await?;
    lookups.learner_secrets = learner_secrets(conn, &lookups).await?;
    // The chains the batch may append to: its learners' and those of the
    // entries its revocations target, now in `lookups.entries`. We hold the
    // write lock, so these heads cannot move before commit.
    lookups.heads = heads_of(conn, &lookups.chains()).await?;
    let planned = plan::plan(events, now, &lookups);
    insert_entries(conn, &planned.entries).await?;
    update_heads(conn, &planned.heads).await?;
    Ok(planned.outcomes)
}

async fn lookup_learners(conn: &mut SqliteConnection, events: &[Event], lookups: &mut Lookups) -> Result<()> {
    let mut ids: BTreeSet<String> = BTreeSet::new();
    let mut accounts: BTreeSet<(&str, &str)> = BTreeSet::new();
    for e in events {
        if let EventBody::Completion(c) = &e.body {
            match &c.learner {
                LearnerRef::Id(id) => {
                    ids.insert(id.as_str().to_owned());
                }
                LearnerRef::Account(a) => {
                    accounts.insert((e.site.as_str(), a.as_str()));
                }
            }
        }
    }
    let accounts: Vec<(&str, &str)> = accounts.into_iter().collect();
    for chunk in accounts.chunks(PARAMS_PER_STATEMENT_MAX / 2) {
        let sql = format!(
            "select a.site_id, a.local_account, a.learner_id
               from (values {}) as k
               join learner_accounts a on a.site_id = k.column1 and a.local_account = k.column2",
            tuples(chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for (site, account) in chunk {
            q = q.bind(*site).bind(*account);
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db)? {
            let (Ok(site), Ok(acct), Ok(learner)) = (
                row.try_get::<String, _>(0),
                row.try_get::<String, _>(1),
                row.try_get::<String, _>(2),
            ) else {
                continue;
            };
            // A row the service could not have written is skipped, so its
            // events are rejected as naming an unknown learner.
            if let (Ok(site), Ok(acct), Ok(learner)) = (
                SiteId::parse(site),
                LocalAccount::parse(acct),
                LearnerId::parse(learner),
            ) {
                ids.insert(learner.as_str().to_owned());
                lookups.accounts.insert((site, acct), learner);
            }
        }
    }
    let ids: Vec<String> = ids.into_iter().collect();
    for chunk in ids.chunks(PARAMS_PER_STATEMENT_MAX) {
        let sql = format!(
            "select id, chain_id from learners where id in ({})",
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for id in chunk {
            q = q.bind(id.as_str());
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db)? {
            let (Ok(id), Ok(chain)) = (row.try_get::<String, _>(0), row.try_get::<i64, _>(1)) else {
                continue;
            };
            if let (Ok(id), Ok(chain)) = (LearnerId::parse(id), u32::try_from(chain)) {
                lookups.learner_chains.insert(id, chain);
            }
        }
    }
    Ok(())
}

/// The secrets of the learners the batch may write for (those it names and
/// those of its revocation targets); an erased learner has none.
async fn learner_secrets(conn: &mut SqliteConnection, lookups: &Lookups) -> Result<HashMap<LearnerId, [u8; 32]>> {
    let mut ids: BTreeSet<&str> = lookups.learner_chains.keys().map(LearnerId::as_str).collect();
    ids.extend(lookups.entries.values().map(|e| e.body.learner.as_str()));
    let ids: Vec<&str> = ids.into_iter().collect();
    let mut out = HashMap::new();
    for chunk in ids.chunks(PARAMS_PER_STATEMENT_MAX) {
        let sql = format!(
            "select learner_id, secret from learner_secrets where learner_id in ({})",
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for id in chunk {
            q = q.bind(*id);
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db)? {
            let id: String = row.try_get(0).map_err(db)?;
            let secret: Vec<u8> = row.try_get(1).map_err(db)?;
            if let (Ok(id), Ok(secret)) = (LearnerId::parse(id), <[u8; 32]>::try_from(secret)) {
                out.insert(id, secret);
            }
        }
    }
    Ok(out)
}

async fn lookup_courses(conn: &mut SqliteConnection, events: &[Event], lookups: &mut Lookups) -> Result<()> {
    let wanted: Vec<(&str, &str)> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Completion(c) => Some((e.site.as_str(), c.course.as_str())),
            EventBody::Revocation(_) => None,
        })
        .collect();
    lookup_course_keys(conn, wanted, lookups).await
}

/// Adds the terms of these courses (and their categories' caps) to `lookups`.
async fn lookup_course_keys(
    conn: &mut SqliteConnection,
    mut wanted: Vec<(&str, &str)>,
    lookups: &mut Lookups,
) -> Result<()> {
    wanted.sort();
    wanted.dedup();
    for chunk in wanted.chunks(PARAMS_PER_STATEMENT_MAX / 2) {
        // The course's group and its category's annual cap come with it:
        // no extra round trip for batches that use neither.
        let sql = format!(
            concat!(
                "select ",
                course_columns!(),
                ", cc.annual_cap_cents
                   from (values {}) as k
                   join courses c on c.site_id = k.column1 and c.code = k.column2
                   left join recognition_members m on m.site_id = c.site_id and m.course_code = c.code
                   left join category_caps cc on cc.category = c.category"
            ),
            tuples(chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for (site, code) in chunk {
            q = q.bind(*site).bind(*code);
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db)? {
            // A course row the service could not have written is skipped
            // here, so its events are rejected as naming an unknown course.
            if let Ok(course) = course_record(&row).and_then(Course::try_from) {
                if let Ok(Some(cap)) = row.try_get::<Option<i64>, _>(13) {
                    lookups.caps.insert(course.category.clone(), Credits::from_cents(cap));
                }
                lookups
                    .courses
                    .insert((course.site.clone(), course.code.clone()), course.terms());
            }
        }
    }
    Ok(())
}

async fn entries_by_keys(conn: &mut SqliteConnection, keys: &[Key]) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for chunk in keys.chunks(PARAMS_PER_STATEMENT_MAX / 2) {
        // The VALUES columns are named column1 and column2, so the entry's
        // own column names stay unambiguous in the join.
        let sql = format!(
            concat!(
                "select ",
                entry_columns!(),
                " from (values {}) as k
                  join ledger_entries l on l.site_id = k.column1 and l.event_id = k.column2"
            ),
            tuples(chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for (site, event) in chunk {
            q = q.bind(site.as_str()).bind(event.as_str());
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db)? {
            entries.push(entry_from_row(&row)?);
        }
    }
    Ok(entries)
}

async fn reversed_targets(conn: &mut SqliteConnection, events: &[Event]) -> Result<HashSet<Key>> {
    let targets = revocation_targets(events);
    let mut reversed = HashSet::new();
    for chunk in targets.chunks(PARAMS_PER_STATEMENT_MAX / 2) {
        // `target_event is not null` lets SQLite use the partial unique index.
        let sql = format!(
            "select l.site_id, l.target_event
               from (values {}) as k
               join ledger_entries l on l.site_id = k.column1 and l.target_event = k.column2
              where l.target_event is not null",
            tuples(chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for (site, target) in chunk {
            q = q.bind(site.as_str()).bind(target.as_str());
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db)? {
            let (Ok(site), Ok(event)) = (row.try_get::<String, _>(0), row.try_get::<String, _>(1)) else {
                continue;
            };
            if let (Ok(site), Ok(event)) = (SiteId::parse(site), EventId::parse(event)) {
                reversed.insert((site, event));
            }
        }
    }
    Ok(reversed)
}

/// Every entry of each (learner, group) pair, in sequence order.
async fn group_entries(
    conn: &mut SqliteConnection,
    keys: &BTreeSet<(LearnerId, GroupId)>,
) -> Result<HashMap<(LearnerId, GroupId), Vec<Entry>>> {
    let mut out: HashMap<(LearnerId, GroupId), Vec<Entry>> = keys.iter().map(|k| (k.clone(), Vec::new())).collect();
    let keys: Vec<&(LearnerId, GroupId)> = keys.iter().collect();
    for chunk in keys.chunks(PARAMS_PER_STATEMENT_MAX / 2) {
        let sql = format!(
            concat!(
                "select ",
                entry_columns!(),
                ", k.column2 as k_group from (values {}) as k
                  join ledger_entries l on l.learner_id = k.column1
                   and (l.recognition_group = k.column2
                        or exists (select 1 from recognition_members m
                                    where m.group_id = k.column2 and m.site_id = l.site_id
                                      and m.course_code = l.course_code))
                 order by l.chain_id, l.seq"
            ),
            tuples(chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for (learner, group) in chunk {
            q = q.bind(learner.as_str()).bind(group.as_str());
        }
        // A row can match two keys of one learner (tagged with one group,
        // its course now in another): the key columns say which.
        let sql_rows = q.fetch_all(&mut *conn).await.map_err(db)?;
        for row in sql_rows {
            let e = entry_from_row(&row)?;
            let group: String = row.try_get("k_group").map_err(|e| unreadable("ledger_entries", e))?;
            if let Ok(g) = GroupId::parse(group) {
                out.entry((e.body.learner.clone(), g)).or_default().push(e);
            }
        }
    }
    Ok(out)
}

/// Every entry of each (learner, site, course), or those dated at the
/// key's instant, in sequence order.
async fn course_entries(
    conn: &mut SqliteConnection,
    keys: &BTreeSet<plan::CourseKey>,
) -> Result<HashMap<(LearnerId, SiteId, CourseCode), Vec<Entry>>> {
    let mut out: HashMap<(LearnerId, SiteId, CourseCode), Vec<Entry>> = keys
        .iter()
        .map(|(l, s, c, _)| ((l.clone(), s.clone(), c.clone()), Vec::new()))
        .collect();
    let keys: Vec<&plan::CourseKey> = keys.iter().collect();
    for chunk in keys.chunks(PARAMS_PER_STATEMENT_MAX / 4) {
        let sql = format!(
            concat!(
                "select ",
                entry_columns!(),
                " from (values {}) as k
                  join ledger_entries l on l.learner_id = k.column1 and l.site_id = k.column2
                   and l.course_code = k.column3
                   and (k.column4 is null or l.occurred_at_ms = k.column4)
                 order by l.chain_id, l.seq"
            ),
            tuples(chunk.len(), 4)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for (learner, site, course, at) in chunk {
            q = q
                .bind(learner.as_str())
                .bind(site.as_str())
                .bind(course.as_str())
                .bind(at.map(|m| m.0));
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db)? {
            let e = entry_from_row(&row)?;
            let key = (e.body.learner.clone(), e.body.site.clone(), e.body.course.clone());
            out.entry(key).or_default().push(e);
        }
    }
    Ok(out)
}

/// The sum of signed credits of each (learner, category, CST year).
async fn year_totals(
    conn: &mut SqliteConnection,
    keys: &BTreeSet<(LearnerId, Category, i32)>,
) -> Result<HashMap<(LearnerId, Category, i32), Credits>> {
    let mut out = HashMap::new();
    let keys: Vec<&(LearnerId, Category, i32)> = keys.iter().collect();
    for chunk in keys.chunks(PARAMS_PER_STATEMENT_MAX / 5) {
        let sql = format!(
            "select k.column1, k.column2, k.column3, coalesce(sum(l.credits_cents), 0)
               from (values {}) as k
               join ledger_entries l on l.learner_id = k.column1 and l.category = k.column2
                and l.occurred_at_ms >= k.column4 and l.occurred_at_ms < k.column5
              group by k.column1, k.column2, k.column3",
            tuples(chunk.len(), 5)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for (learner, category, year) in chunk {
            let (start, end) = Millis::cst_year_bounds(*year);
            q = q
                .bind(learner.as_str())
                .bind(category.as_str())
                .bind(i64::from(*year))
                .bind(start.0)
                .bind(end.0);
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db)? {
            let read = |e| unreadable("ledger_entries", e);
            let learner: String = row.try_get(0).map_err(read)?;
            let category: String = row.try_get(1).map_err(read)?;
            let year: i64 = row.try_get(2).map_err(read)?;
            let sum: i64 = row.try_get(3).map_err(read)?;
            if let (Ok(l), Ok(c), Ok(y)) = (
                LearnerId::parse(learner),
                Category::parse(category),
                i32::try_from(year),
            ) {
                out.insert((l, c, y), Credits::from_cents(sum));
            }
        }
    }
    Ok(out)
}

fn head_from_row(row: &SqliteRow) -> Result<(u32, Head)> {
    let chain: i64 = row.try_get(0).map_err(|e| unreadable("chain_heads", e))?;
    let corrupt = |d: &str| StoreError::Corrupt {
        at: format!("chain head {chain}"),
        detail: d.into(),
    };
    let seq: i64 = row.try_get(1).map_err(|e| corrupt(&e.to_string()))?;
    let hash: Vec<u8> = row.try_get(2).map_err(|e| corrupt(&e.to_string()))?;
    Ok((
        u32::try_from(chain).map_err(|_| corrupt("chain out of range"))?,
        Head {
            seq: u64::try_from(seq).map_err(|_| corrupt("negative seq"))?,
            hash: hash.try_into().map_err(|_| corrupt("hash is not 32 bytes"))?,
        },
    ))
}

/// The heads of `chains`. Every chain must have one: the planner would take
/// a missing head for an empty chain.
async fn heads_of(conn: &mut SqliteConnection, chains: &BTreeSet<u32>) -> Result<HashMap<u32, Head>> {
    let mut heads = HashMap::new();
    let ids: Vec<u32> = chains.iter().copied().collect();
    for chunk in ids.chunks(PARAMS_PER_STATEMENT_MAX) {
        let sql = format!(
            "select chain_id, seq, hash from chain_heads where chain_id in ({})",
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for chain in chunk {
            q = q.bind(i64::from(*chain));
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db)? {
            let (chain, head) = head_from_row(&row)?;
            heads.insert(chain, head);
        }
    }
    if let Some(missing) = chains.iter().find(|c| !heads.contains_key(c)) {
        return Err(StoreError::Corrupt {
            at: format!("chain {missing}"),
            detail: "a learner or entry names a chain that has no head".into(),
        });
    }
    Ok(heads)
}

async fn insert_entries(conn: &mut SqliteConnection, entries: &[Entry]) -> Result<()> {
    for chunk in entries.chunks(ENTRY_ROWS_PER_INSERT) {
        // A plain insert, not `on conflict do nothing` as on PostgreSQL: under
        // the write lock no other batch can have taken one of these keys, so
        // a violation is a bug and must fail the whole batch.
        let sql = format!(
            "insert into ledger_entries (chain_id, seq, prev_hash, hash, kind, site_id, event_id,
                    learner_id, course_code, category, credits_cents, occurred_at_ms,
                    recorded_at_ms, score_cents, hours_cents, rule_version, refers_chain,
                    refers_seq, target_event, reason, recognition_group, withheld_cents,
                    learner_commitment, reason_note)
             values {}",
            tuples(chunk.len(), ENTRY_COLUMNS)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for e in chunk {
            let r = EntryRecord::from(e);
            q = q
                .bind(r.chain_id)
                .bind(r.seq)
                .bind(r.prev_hash)
                .bind(r.hash)
                .bind(r.kind)
                .bind(r.site_id)
                .bind(r.event_id)
                .bind(r.learner_id)
                .bind(r.course_code)
                .bind(r.category)
                .bind(r.credits_cents)
                .bind(r.occurred_at_ms)
                .bind(r.recorded_at_ms)
                .bind(r.score_cents)
                .bind(r.hours_cents)
                .bind(r.rule_version)
                .bind(r.refers_chain)
                .bind(r.refers_seq)
                .bind(r.target_event)
                .bind(r.reason)
                .bind(r.recognition_group)
                .bind(r.withheld_cents)
                .bind(r.learner_commitment)
                .bind(r.reason_note);
        }
        q.execute(&mut *conn).await.map_err(db)?;
    }
    Ok(())
}

async fn update_heads(conn: &mut SqliteConnection, heads: &BTreeMap<u32, Head>) -> Result<()> {
    if heads.is_empty() {
        return Ok(());
    }
    // At most one row per chain (64 by default), far below the parameter
    // limit: one statement. SQLite names VALUES columns column1, column2, ...
    let sql = format!(
        "update chain_heads set seq = v.column2, hash = v.column3
           from (values {}) as v
          where chain_heads.chain_id = v.column1",
        tuples(heads.len(), 3)
    );
    let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
    for (chain, head) in heads {
        q = q.bind(i64::from(*chain)).bind(head.seq as i64).bind(head.hash.to_vec());
    }
    let done = q.execute(&mut *conn).await.map_err(db)?;
    if done.rows_affected() != heads.len() as u64 {
        return Err(StoreError::Corrupt {
            at: "chain_heads".into(),
            detail: format!("{} of {} chain heads updated", done.rows_affected(), heads.len()),
        });
    }
    Ok(())
}

fn entry_record(row: &SqliteRow) -> sqlx::Result<EntryRecord> {
    Ok(EntryRecord {
        chain_id: row.try_get(0)?,
        seq: row.try_get(1)?,
        prev_hash: row.try_get(2)?,
        hash: row.try_get(3)?,
        kind: row.try_get(4)?,
        site_id: row.try_get(5)?,
        event_id: row.try_get(6)?,
        learner_id: row.try_get(7)?,
        course_code: row.try_get(8)?,
        category: row.try_get(9)?,
        credits_cents: row.try_get(10)?,
        occurred_at_ms: row.try_get(11)?,
        recorded_at_ms: row.try_get(12)?,
        score_cents: row.try_get(13)?,
        hours_cents: row.try_get(14)?,
        rule_version: row.try_get(15)?,
        refers_chain: row.try_get(16)?,
        refers_seq: row.try_get(17)?,
        target_event: row.try_get(18)?,
        reason: row.try_get(19)?,
        recognition_group: row.try_get(20)?,
        withheld_cents: row.try_get(21)?,
        learner_commitment: row.try_get(22)?,
        reason_note: row.try_get(23)?,
    })
}

/// An entry from a row; a row that cannot be one is corrupt data, which
/// verification reports as such.
fn entry_from_row(row: &SqliteRow) -> Result<Entry> {
    let record = entry_record(row).map_err(|e| unreadable("ledger_entries", e))?;
    Entry::try_from(record)
}

fn course_record(row: &SqliteRow) -> Result<CourseRecord> {
    let get = || -> sqlx::Result<CourseRecord> {
        Ok(CourseRecord {
            site_id: row.try_get(0)?,
            code: row.try_get(1)?,
            title: row.try_get(2)?,
            category: row.try_get(3)?,
            rule_kind: row.try_get(4)?,
            credits_cents: row.try_get(5)?,
            hours_per_credit_cents: row.try_get(6)?,
            cap_cents: row.try_get(7)?,
            pass_mark_cents: row.try_get(8)?,
            rule_version: row.try_get(9)?,
            recognition_group: row.try_get(10)?,
            offered_from_ms: row.try_get(11)?,
            credit_repeat: row.try_get(12)?,
        })
    };
    get().map_err(|e| unreadable("courses", e))
}

fn site_from_row(row: &SqliteRow) -> Result<Site> {
    let id: String = row.try_get(0).map_err(|e| unreadable("sites", e))?;
    let at = format!("site {id}");
    let read = |e: sqlx::Error| StoreError::Corrupt {
        at: at.clone(),
        detail: e.to_string(),
    };
    let corrupt = |e: xuefen_core::FieldError| StoreError::Corrupt {
        at: at.clone(),
        detail: e.to_string(),
    };
    Ok(Site {
        id: SiteId::parse(id.clone()).map_err(corrupt)?,
        name: row.try_get(1).map_err(read)?,
        level: SiteLevel::parse(row.try_get::<&str, _>(2).map_err(read)?).map_err(corrupt)?,
        region_code: RegionCode::parse(row.try_get::<String, _>(3).map_err(read)?).map_err(corrupt)?,
        status: SiteStatus::parse(row.try_get::<&str, _>(4).map_err(read)?).map_err(corrupt)?,
        agreement_starts_at: row.try_get::<Option<i64>, _>(5).map_err(read)?.map(Millis),
        agreement_ends_at: row.try_get::<Option<i64>, _>(6).map_err(read)?.map(Millis),
    })
}

/// Runs a write transaction to its end in a task of its own, so that it
/// commits or rolls back even when the caller stops waiting (a client
/// disconnecting, a timeout).
///
/// Dropping a transaction midway is not enough on SQLite: sqlx's
/// `begin_with` can be cancelled after its `BEGIN IMMEDIATE` ran but before
/// the transaction object exists, which leaves the transaction open on a
/// pooled connection. That connection would then hold the database's single
/// write lock (every other writer fails with "database is locked") and run
/// later autocommit writes inside a transaction that never commits. The
/// conformance scenario `a_batch_cancelled_at_any_instant_is_all_or_nothing`
/// caught it.
async fn run_to_end<T: Send + 'static>(work: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
    tokio::spawn(work)
        .await
        .map_err(|e| StoreError::Database(Box::new(e)))?
}

/// One write transaction for the whole batch, holding the database's single
/// write lock from its first read (see the module docs).
async fn ingest_batch(pool: &SqlitePool, events: &[Event], now: Millis) -> Result<Vec<Outcome>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    match ingest_locked(&mut tx, events, now).await {
        Ok(outcomes) => {
            tx.commit().await.map_err(db)?;
            Ok(outcomes)
        }
        Err(e) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rolling back a failed ingest failed");
            }
            Err(e)
        }
    }
}

/// Writes what declaring `group` plans ([`plan::plan_declaration`]) inside
/// the caller's write transaction, after its members were stored: the
/// reversals of earlier double payments among its courses.
async fn declare_group(conn: &mut SqliteConnection, group: &GroupId, now: Millis) -> Result<Vec<Entry>> {
    let rows = sqlx::query(concat!(
        "select ",
        entry_columns!(),
        " from ledger_entries
         where (site_id, course_code) in
               (select site_id, course_code from recognition_members where group_id = ?1)
         order by chain_id, seq"
    ))
    .bind(group.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut histories: BTreeMap<(u32, LearnerId), Vec<Entry>> = BTreeMap::new();
    for row in &rows {
        let e = entry_from_row(row)?;
        histories
            .entry((e.position.chain, e.body.learner.clone()))
            .or_default()
            .push(e);
    }
    let histories: Vec<(LearnerId, u32, Vec<Entry>)> =
        histories.into_iter().map(|((chain, l), h)| (l, chain, h)).collect();
    if histories.is_empty() {
        return Ok(Vec::new());
    }
    let per_year: bool = sqlx::query_scalar(
        "select not exists (select 1 from recognition_members m
                              join courses c on c.site_id = m.site_id and c.code = m.course_code
                             where m.group_id = ?1 and c.credit_repeat <> 'per_year')",
    )
    .bind(group.as_str())
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    let chains: BTreeSet<u32> = histories.iter().map(|(_, c, _)| *c).collect();
    let heads = heads_of(conn, &chains).await?;
    let mut named = Lookups::default();
    for (learner, chain, _) in &histories {
        named.learner_chains.insert(learner.clone(), *chain);
    }
    let secrets = learner_secrets(conn, &named).await?;
    let planned = plan::plan_declaration(group, per_year, &histories, &heads, &secrets, now);
    insert_entries(conn, &planned.entries).await?;
    update_heads(conn, &planned.heads).await?;
    Ok(planned.entries)
}

async fn put_course_locked(pool: &SqlitePool, course: &Course) -> Result<(Course, Written)> {
    // BEGIN IMMEDIATE takes the write lock before the read, as
    // `for update` does on PostgreSQL: two concurrent updates cannot both
    // derive their rule version from the same old row.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let row = sqlx::query(concat!(
        "select ",
        course_columns!(),
        course_from!(),
        " where c.site_id = ?1 and c.code = ?2"
    ))
    .bind(course.site.as_str())
    .bind(course.code.as_str())
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    let existing = row
        .as_ref()
        .map(|r| course_record(r).and_then(Course::try_from))
        .transpose()?;
    let (version, written) = match &existing {
        None => (1, Written::Created),
        Some(old) if old.terms_differ(course) => (old.rule_version + 1, Written::Existing),
        Some(old) => (old.rule_version, Written::Existing),
    };
    let stored = Course {
        rule_version: version,
        recognition_group: existing.as_ref().and_then(|c| c.recognition_group.clone()),
        ..course.clone()
    };
    let r = CourseRecord::from(&stored);
    sqlx::query(concat!(
        "insert into courses (site_id, code, title, category, rule_kind, credits_cents,
                hours_per_credit_cents, cap_cents, pass_mark_cents, rule_version, offered_from_ms,
                credit_repeat)
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         on conflict (site_id, code) do update set title = excluded.title,
             category = excluded.category, rule_kind = excluded.rule_kind,
             credits_cents = excluded.credits_cents,
             hours_per_credit_cents = excluded.hours_per_credit_cents,
             cap_cents = excluded.cap_cents, pass_mark_cents = excluded.pass_mark_cents,
             rule_version = excluded.rule_version, offered_from_ms = excluded.offered_from_ms,
             credit_repeat = excluded.credit_repeat, updated_at = ",
        now_sql!()
    ))
    .bind(&r.site_id)
    .bind(&r.code)
    .bind(&r.title)
    .bind(&r.category)
    .bind(&r.rule_kind)
    .bind(r.credits_cents)
    .bind(r.hours_per_credit_cents)
    .bind(r.cap_cents)
    .bind(r.pass_mark_cents)
    .bind(r.rule_version)
    .bind(r.offered_from_ms)
    .bind(&r.credit_repeat)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok((stored, written))
}

const SITE_COLUMNS: &str = "id, name, level, region_code, status, agreement_starts_at_ms, agreement_ends_at_ms";

fn site_change_from_row(row: &SqliteRow) -> Result<SiteChangeEntry> {
    let get = || -> sqlx::Result<SiteChangeRecord> {
        Ok(SiteChangeRecord {
            seq: row.try_get(0)?,
            prev_hash: row.try_get(1)?,
            hash: row.try_get(2)?,
            site_id: row.try_get(3)?,
            from_status: row.try_get(4)?,
            to_status: row.try_get(5)?,
            actor: row.try_get(6)?,
            reason: row.try_get(7)?,
            at_ms: row.try_get(8)?,
            agreement_starts_at_ms: row.try_get(9)?,
            agreement_ends_at_ms: row.try_get(10)?,
        })
    };
    SiteChangeEntry::try_from(get().map_err(|e| unreadable("site_changes", e))?)
}

const SITE_CHANGE_COLUMNS: &str = "seq, prev_hash, hash, site_id, from_status, to_status, actor, reason, at_ms,
     agreement_starts_at_ms, agreement_ends_at_ms";

/// Seals `change` after the alliance chain's head and writes both, inside
/// the caller's write transaction.
async fn append_site_change(conn: &mut SqliteConnection, change: SiteChange) -> Result<SiteChangeEntry> {
    let row = sqlx::query("select seq, hash from alliance_head where id = 1")
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    let corrupt = |d: &str| StoreError::Corrupt {
        at: "alliance_head".into(),
        detail: d.into(),
    };
    let seq: i64 = row.try_get(0).map_err(|e| unreadable("alliance_head", e))?;
    let hash: Vec<u8> = row.try_get(1).map_err(|e| unreadable("alliance_head", e))?;
    let seq = u64::try_from(seq).map_err(|_| corrupt("negative seq"))?;
    let hash: [u8; 32] = hash.try_into().map_err(|_| corrupt("hash is not 32 bytes"))?;
    let entry = SiteChangeEntry::seal(seq + 1, hash, change);
    let r = SiteChangeRecord::from(&entry);
    sqlx::query(
        "insert into site_changes (seq, prev_hash, hash, site_id, from_status, to_status, actor, reason, at_ms,
                agreement_starts_at_ms, agreement_ends_at_ms)
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .bind(r.seq)
    .bind(r.prev_hash)
    .bind(&r.hash)
    .bind(r.site_id)
    .bind(r.from_status)
    .bind(r.to_status)
    .bind(r.actor)
    .bind(r.reason)
    .bind(r.at_ms)
    .bind(r.agreement_starts_at_ms)
    .bind(r.agreement_ends_at_ms)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    sqlx::query("update alliance_head set seq = ?1, hash = ?2 where id = 1")
        .bind(r.seq)
        .bind(r.hash)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(entry)
}

#[async_trait]
impl Store for SqliteStore {
    fn pool_stats(&self) -> xuefen_store::PoolStats {
        xuefen_store::PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }
    }

    async fn ready(&self) -> Result<()> {
        let applied: Option<i64> = sqlx::query_scalar("select max(version) from _sqlx_migrations where success")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        let latest = MIGRATOR.iter().map(|m| m.version).max();
        if applied != latest {
            return Err(StoreError::Conflict(format!(
                "schema at migration {applied:?}, expected {latest:?}"
            )));
        }
        Ok(())
    }

    async fn create_site(&self, site: &Site, act: &SiteAct) -> Result<SiteChangeEntry> {
        if !matches!(site.status, SiteStatus::Pending | SiteStatus::Active) {
            return Err(StoreError::Conflict(format!(
                "invalid_transition: a site starts pending or active, not {}",
                site.status
            )));
        }
        let change = site_change(site, None, act);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        sqlx::query(
            "insert into sites (id, name, level, region_code, status, agreement_starts_at_ms, agreement_ends_at_ms)
             values (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(site.id.as_str())
        .bind(&site.name)
        .bind(site.level.as_str())
        .bind(site.region_code.as_str())
        .bind(site.status.as_str())
        .bind(change.agreement_starts_at.0)
        .bind(change.agreement_ends_at.0)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let entry = append_site_change(&mut tx, change).await?;
        tx.commit().await.map_err(db)?;
        Ok(entry)
    }

    async fn site(&self, id: &SiteId) -> Result<Option<Site>> {
        let row = sqlx::query(&format!("select {SITE_COLUMNS} from sites where id = ?1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(site_from_row).transpose()
    }

    async fn sites(&self) -> Result<Vec<Site>> {
        let rows = sqlx::query(&format!("select {SITE_COLUMNS} from sites order by id"))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(site_from_row).collect()
    }

    async fn set_site_status(
        &self,
        id: &SiteId,
        status: SiteStatus,
        agreement_ends_at: Option<Millis>,
        act: &SiteAct,
    ) -> Result<(Site, SiteChangeEntry)> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        let row = sqlx::query(&format!("select {SITE_COLUMNS} from sites where id = ?1"))
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let current = row
            .as_ref()
            .map(site_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)?;
        let (site, change) = site_transition(&current, status, agreement_ends_at, act)?;
        sqlx::query(
            "update sites set status = ?2, agreement_starts_at_ms = ?3, agreement_ends_at_ms = ?4 where id = ?1",
        )
        .bind(id.as_str())
        .bind(status.as_str())
        .bind(change.agreement_starts_at.0)
        .bind(change.agreement_ends_at.0)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let entry = append_site_change(&mut tx, change).await?;
        tx.commit().await.map_err(db)?;
        Ok((site, entry))
    }

    async fn site_changes(&self, id: &SiteId) -> Result<Vec<SiteChangeEntry>> {
        let rows = sqlx::query(&format!(
            "select {SITE_CHANGE_COLUMNS} from site_changes where site_id = ?1 order by seq"
        ))
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(site_change_from_row).collect()
    }

    async fn alliance_head(&self) -> Result<Head> {
        let row = sqlx::query("select 0, seq, hash from alliance_head where id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(head_from_row(&row)?.1)
    }

    fn alliance_entries(&self) -> BoxStream<'_, Result<SiteChangeEntry>> {
        sqlx::query(
            "select seq, prev_hash, hash, site_id, from_status, to_status, actor, reason, at_ms,
                    agreement_starts_at_ms, agreement_ends_at_ms from site_changes order by seq",
        )
        .fetch(&self.pool)
        .map_err(db)
        .and_then(|r| async move { site_change_from_row(&r) })
        .boxed()
    }

    async fn create_key(&self, key: &NewKey) -> Result<()> {
        let (role, site) = match &key.principal {
            Principal::Admin => ("admin", None),
            Principal::Site(s) => ("site", Some(s.as_str())),
            Principal::Bank => ("bank", None),
        };
        sqlx::query("insert into api_keys (id, role, site_id, secret_hash) values (?1, ?2, ?3, ?4)")
            .bind(&key.id)
            .bind(role)
            .bind(site)
            .bind(&key.secret_hash[..])
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn revoke_key(&self, id: &str) -> Result<()> {
        let done = sqlx::query(concat!(
            "update api_keys set revoked_at = coalesce(revoked_at, ",
            now_sql!(),
            ") where id = ?1"
        ))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn key_by_hash(&self, secret_hash: &[u8; 32]) -> Result<Option<KeyRecord>> {
        let row = sqlx::query(
            "select k.id, k.role, k.site_id, k.revoked_at is not null, s.status, s.agreement_ends_at_ms
               from api_keys k left join sites s on s.id = k.site_id
              where k.secret_hash = ?1",
        )
        .bind(&secret_hash[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get(0).map_err(|e| unreadable("api_keys", e))?;
        let corrupt = |detail: String| StoreError::Corrupt {
            at: format!("key {id}"),
            detail,
        };
        let read = |e: sqlx::Error| corrupt(e.to_string());
        let role: &str = row.try_get(1).map_err(read)?;
        let site: Option<String> = row.try_get(2).map_err(read)?;
        let principal = match (role, site) {
            ("admin", _) => Principal::Admin,
            ("bank", None) => Principal::Bank,
            ("site", Some(site)) => Principal::Site(SiteId::parse(site).map_err(|e| corrupt(e.to_string()))?),
            (role, _) => return Err(corrupt(format!("role {role}"))),
        };
        let site_status = row
            .try_get::<Option<&str>, _>(4)
            .map_err(read)?
            .map(SiteStatus::parse)
            .transpose()
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(KeyRecord {
            id: id.clone(),
            principal,
            revoked: row.try_get(3).map_err(read)?,
            site_status,
            agreement_ends_at: row.try_get::<Option<i64>, _>(5).map_err(read)?.map(Millis),
        }))
    }

    async fn admin_key_exists(&self) -> Result<bool> {
        sqlx::query_scalar("select exists (select 1 from api_keys where role = 'admin')")
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }

    async fn register_learner(&self, learner: &NewLearner) -> Result<(LearnerId, Written)> {
        let chain = learner.candidate.chain(self.chains);
        // Insert-or-find: the unique document hash decides, so two sites
        // registering the same person concurrently reach the same learner.
        // The learner and their secret are written together.
        let mut tx = self.pool.begin().await.map_err(db)?;
        let inserted: Option<String> = sqlx::query_scalar(
            "insert into learners (id, chain_id, document_kind, document_hash, name)
             values (?1, ?2, ?3, ?4, ?5)
             on conflict (document_hash) do nothing returning id",
        )
        .bind(learner.candidate.as_str())
        .bind(i64::from(chain))
        .bind(learner.document_kind.as_str())
        .bind(&learner.document_hash[..])
        .bind(&learner.name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if inserted.is_some() {
            sqlx::query("insert into learner_secrets (learner_id, secret) values (?1, ?2)")
                .bind(learner.candidate.as_str())
                .bind(&learner.secret[..])
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            return Ok((learner.candidate.clone(), Written::Created));
        }
        tx.rollback().await.map_err(db)?;
        let id: String = sqlx::query_scalar("select id from learners where document_hash = ?1")
            .bind(&learner.document_hash[..])
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        let id = LearnerId::parse(id).map_err(|e| StoreError::Corrupt {
            at: "learners".into(),
            detail: e.to_string(),
        })?;
        Ok((id, Written::Existing))
    }

    async fn link_account(
        &self,
        site: &SiteId,
        account: &LocalAccount,
        learner: &LearnerId,
        registered_at: Option<Millis>,
    ) -> Result<Written> {
        let inserted = sqlx::query(
            "insert into learner_accounts (site_id, local_account, learner_id, registered_at)
             values (?1, ?2, ?3, ?4)
             on conflict (site_id, local_account) do nothing",
        )
        .bind(site.as_str())
        .bind(account.as_str())
        .bind(learner.as_str())
        .bind(registered_at.map(Millis::to_rfc3339))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if inserted.rows_affected() == 1 {
            return Ok(Written::Created);
        }
        let linked: String =
            sqlx::query_scalar("select learner_id from learner_accounts where site_id = ?1 and local_account = ?2")
                .bind(site.as_str())
                .bind(account.as_str())
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        if linked == learner.as_str() {
            Ok(Written::Existing)
        } else {
            Err(StoreError::Conflict("the account is linked to another learner".into()))
        }
    }

    async fn learner_exists(&self, learner: &LearnerId) -> Result<bool> {
        sqlx::query_scalar("select exists (select 1 from learners where id = ?1)")
            .bind(learner.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }

    async fn learner_by_document(&self, document_hash: &[u8; 32]) -> Result<Option<(LearnerId, String)>> {
        let row: Option<(String, String)> = sqlx::query_as("select id, name from learners where document_hash = ?1")
            .bind(&document_hash[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|(id, name)| {
            let id = LearnerId::parse(id).map_err(|e| StoreError::Corrupt {
                at: "learners".into(),
                detail: e.to_string(),
            })?;
            Ok((id, name))
        })
        .transpose()
    }

    async fn site_knows_learner(&self, site: &SiteId, learner: &LearnerId) -> Result<bool> {
        sqlx::query_scalar(
            "select exists (select 1 from learner_accounts where learner_id = ?2 and site_id = ?1)
                 or exists (select 1 from ledger_entries where learner_id = ?2 and site_id = ?1)",
        )
        .bind(site.as_str())
        .bind(learner.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(db)
    }

    async fn put_course(&self, course: &Course) -> Result<(Course, Written)> {
        let pool = self.pool.clone();
        let course = course.clone();
        run_to_end(async move { put_course_locked(&pool, &course).await }).await
    }

    async fn course(&self, site: &SiteId, code: &CourseCode) -> Result<Option<Course>> {
        let row = sqlx::query(concat!(
            "select ",
            course_columns!(),
            course_from!(),
            " where c.site_id = ?1 and c.code = ?2"
        ))
        .bind(site.as_str())
        .bind(code.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref()
            .map(|r| course_record(r).and_then(Course::try_from))
            .transpose()
    }

    async fn put_group(&self, group: &Group, now: Millis) -> Result<(Written, Vec<Entry>)> {
        // Under the write lock, so that two admins cannot both claim a course.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        let existed: bool = sqlx::query_scalar("select exists (select 1 from recognition_groups where id = ?1)")
            .bind(group.id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        for chunk in group.courses.chunks(PARAMS_PER_STATEMENT_MAX / 2) {
            let sql = format!(
                "select m.site_id, m.course_code, m.group_id
                   from (values {}) as k
                   join recognition_members m on m.site_id = k.column1 and m.course_code = k.column2
                  where m.group_id <> ?",
                tuples(chunk.len(), 2)
            );
            let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
            for (site, code) in chunk {
                q = q.bind(site.as_str()).bind(code.as_str());
            }
            if let Some(row) = q.bind(group.id.as_str()).fetch_optional(&mut *tx).await.map_err(db)? {
                let read = |e| unreadable("recognition_members", e);
                let (site, code, other): (String, String, String) = (
                    row.try_get(0).map_err(read)?,
                    row.try_get(1).map_err(read)?,
                    row.try_get(2).map_err(read)?,
                );
                return Err(StoreError::Conflict(format!(
                    "course {site}/{code} is already in group {other}"
                )));
            }
        }
        sqlx::query(concat!(
            "insert into recognition_groups (id, title) values (?1, ?2)
             on conflict (id) do update set title = excluded.title, updated_at = ",
            now_sql!()
        ))
        .bind(group.id.as_str())
        .bind(&group.title)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("delete from recognition_members where group_id = ?1")
            .bind(group.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        for chunk in group.courses.chunks(PARAMS_PER_STATEMENT_MAX / 3) {
            let sql = format!(
                "insert into recognition_members (site_id, course_code, group_id) values {}",
                tuples(chunk.len(), 3)
            );
            let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
            for (site, code) in chunk {
                q = q.bind(site.as_str()).bind(code.as_str()).bind(group.id.as_str());
            }
            q.execute(&mut *tx).await.map_err(db)?;
        }
        let declared = declare_group(&mut tx, &group.id, now).await?;
        tx.commit().await.map_err(db)?;
        let written = if existed { Written::Existing } else { Written::Created };
        Ok((written, declared))
    }

    async fn group(&self, id: &GroupId) -> Result<Option<Group>> {
        let title: Option<String> = sqlx::query_scalar("select title from recognition_groups where id = ?1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        let Some(title) = title else { return Ok(None) };
        let rows = sqlx::query(
            "select site_id, course_code from recognition_members where group_id = ?1 order by site_id, course_code",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let corrupt = |e: xuefen_core::FieldError| StoreError::Corrupt {
            at: format!("group {id}"),
            detail: e.to_string(),
        };
        let mut courses = Vec::with_capacity(rows.len());
        for row in rows {
            let read = |e| unreadable("recognition_members", e);
            let site: String = row.try_get(0).map_err(read)?;
            let code: String = row.try_get(1).map_err(read)?;
            courses.push((
                SiteId::parse(site).map_err(corrupt)?,
                CourseCode::parse(code).map_err(corrupt)?,
            ));
        }
        Ok(Some(Group {
            id: id.clone(),
            title,
            courses,
        }))
    }

    async fn set_cap(&self, category: &Category, annual: Option<Credits>) -> Result<()> {
        match annual {
            Some(cap) => sqlx::query(concat!(
                "insert into category_caps (category, annual_cap_cents) values (?1, ?2)
                 on conflict (category) do update set annual_cap_cents = excluded.annual_cap_cents,
                     updated_at = ",
                now_sql!()
            ))
            .bind(category.as_str())
            .bind(cap.cents()),
            None => sqlx::query("delete from category_caps where category = ?1").bind(category.as_str()),
        }
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn caps(&self) -> Result<Vec<(Category, Credits)>> {
        let rows = sqlx::query("select category, annual_cap_cents from category_caps order by category")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter()
            .map(|row| {
                let read = |e| unreadable("category_caps", e);
                let category: String = row.try_get(0).map_err(read)?;
                let cents: i64 = row.try_get(1).map_err(read)?;
                let category = Category::parse(category).map_err(|e| StoreError::Corrupt {
                    at: "category_caps".into(),
                    detail: e.to_string(),
                })?;
                Ok((category, Credits::from_cents(cents)))
            })
            .collect()
    }

    async fn ingest(&self, events: &[Event], now: Millis) -> Result<Vec<Outcome>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let pool = self.pool.clone();
        let events = events.to_vec();
        run_to_end(async move { ingest_batch(&pool, &events, now).await }).await
    }

    async fn entry_by_event(&self, site: &SiteId, event: &EventId) -> Result<Option<Entry>> {
        let row = sqlx::query(concat!(
            "select ",
            entry_columns!(),
            " from ledger_entries where site_id = ?1 and event_id = ?2 and kind <> 6"
        ))
        .bind(site.as_str())
        .bind(event.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(entry_from_row).transpose()
    }

    async fn learner_entries(&self, learner: &LearnerId) -> Result<Vec<Entry>> {
        let rows = sqlx::query(concat!(
            "select ",
            entry_columns!(),
            " from ledger_entries where learner_id = ?1 order by seq"
        ))
        .bind(learner.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn learner_entries_page(&self, learner: &LearnerId, after_seq: u64, limit: usize) -> Result<Vec<Entry>> {
        let rows = sqlx::query(concat!(
            "select ",
            entry_columns!(),
            " from ledger_entries where learner_id = ?1 and seq > ?2 order by seq limit ?3"
        ))
        .bind(learner.as_str())
        .bind(i64::try_from(after_seq).unwrap_or(i64::MAX))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn learner_summary(&self, learner: &LearnerId) -> Result<(Vec<TotalRow>, Referrals)> {
        // Years in China Standard Time: UTC+8 all year round (no DST).
        let rows = sqlx::query(
            "select cast(strftime('%Y', (occurred_at_ms + 28800000) / 1000, 'unixepoch') as integer) as year,
                    category, site_id, sum(credits_cents)
               from ledger_entries where learner_id = ?1 and kind not in (10, 11)
              group by year, category, site_id",
        )
        .bind(learner.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut totals = Vec::with_capacity(rows.len());
        for row in &rows {
            let read = |e| unreadable("ledger_entries", e);
            let year: i64 = row.try_get(0).map_err(read)?;
            totals.push(TotalRow {
                year: i32::try_from(year).map_err(|_| StoreError::Corrupt {
                    at: format!("learner {learner}"),
                    detail: "year out of range".into(),
                })?,
                category: row.try_get(1).map_err(read)?,
                site: row.try_get(2).map_err(read)?,
                credits: Credits::from_cents(row.try_get(3).map_err(read)?),
            });
        }
        let rows = sqlx::query(
            "select refers_chain, refers_seq, kind from ledger_entries
              where learner_id = ?1 and kind in (3, 10, 11) and refers_seq is not null",
        )
        .bind(learner.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut referred = Referrals::default();
        for row in &rows {
            let read = |e| unreadable("ledger_entries", e);
            let (chain, seq, kind): (i64, i64, i64) = (
                row.try_get(0).map_err(read)?,
                row.try_get(1).map_err(read)?,
                row.try_get(2).map_err(read)?,
            );
            if let (Ok(chain), Ok(seq)) = (u32::try_from(chain), u64::try_from(seq)) {
                xuefen_store::referral(&mut referred, Position { chain, seq }, kind);
            }
        }
        Ok((totals, referred))
    }

    async fn site_year_stats(&self, site: Option<&SiteId>, year: i32, rule: StatsRule) -> Result<Vec<SiteYearStats>> {
        let (start, end) = Millis::cst_year_bounds(year);
        // `created_at` is ISO-8601 UTC text with milliseconds, the format
        // of `Millis::to_rfc3339`, so the bounds compare as text.
        let rows = sqlx::query(
            "with in_year as (
                 select site_id, learner_id, kind, credits_cents from ledger_entries
                  where occurred_at_ms >= ?2 and occurred_at_ms < ?3
             ),
             site_learner as (
                 select site_id, learner_id, sum(credits_cents) as credits,
                        max(case when kind <> 3 then 1 else 0 end) as active
                   from in_year group by site_id, learner_id
             ),
             learner_year as (
                 select learner_id, sum(credits_cents) as credits from in_year group by learner_id
             ),
             regs as (
                 select site_id, learner_id from learner_accounts group by site_id, learner_id
                 having min(coalesce(registered_at, created_at)) >= ?6
                    and min(coalesce(registered_at, created_at)) < ?7
             )
             select s.id,
                    (select count(*) from regs r where r.site_id = s.id),
                    (select count(*) from regs r join learner_year y on y.learner_id = r.learner_id
                      where r.site_id = s.id and y.credits >= ?4),
                    (select count(*) from site_learner l where l.site_id = s.id and l.active = 1),
                    (select count(*) from site_learner l where l.site_id = s.id and l.credits >= ?4),
                    (select coalesce(sum(l.credits), 0) from site_learner l where l.site_id = s.id),
                    (select count(*) from site_learner l where l.site_id = s.id and l.credits >= ?5)
               from sites s
              where ?1 is null or s.id = ?1
              order by s.id",
        )
        .bind(site.map(SiteId::as_str))
        .bind(start.0)
        .bind(end.0)
        .bind(rule.credits_each.cents())
        .bind(rule.star_credits.cents())
        .bind(start.to_rfc3339())
        .bind(end.to_rfc3339())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                let read = |e| unreadable("statistics", e);
                let id: String = r.try_get(0).map_err(read)?;
                let count = |i: usize| -> Result<u64> {
                    Ok(u64::try_from(r.try_get::<i64, _>(i).map_err(read)?).unwrap_or_default())
                };
                Ok(SiteYearStats {
                    site: SiteId::parse(id.clone()).map_err(|e| StoreError::Corrupt {
                        at: format!("site {id}"),
                        detail: e.to_string(),
                    })?,
                    registrations: count(1)?,
                    registrations_with_credits: count(2)?,
                    learners_active: count(3)?,
                    learners_with_credits: count(4)?,
                    credits: Credits::from_cents(r.try_get::<i64, _>(5).map_err(read)?),
                    learning_stars: count(6)?,
                })
            })
            .collect()
    }

    async fn site_month_credits(&self, year: i32) -> Result<Vec<(SiteId, u8, Credits)>> {
        // Months are told apart by their bounds in China Standard Time
        // (?1 is January's start, ?13 the next year's), not by the
        // database's date functions.
        let bounds = Millis::cst_month_bounds(year);
        let sql = "select site_id, case when occurred_at_ms < ?2 then 1 when occurred_at_ms < ?3 then 2 when occurred_at_ms < ?4 then 3 when occurred_at_ms < ?5 then 4 when occurred_at_ms < ?6 then 5 when occurred_at_ms < ?7 then 6 when occurred_at_ms < ?8 then 7 when occurred_at_ms < ?9 then 8 when occurred_at_ms < ?10 then 9 when occurred_at_ms < ?11 then 10 when occurred_at_ms < ?12 then 11 else 12 end as month, sum(credits_cents)
               from ledger_entries
              where occurred_at_ms >= ?1 and occurred_at_ms < ?13
                and site_id in (select id from sites)
              group by site_id, month
              order by site_id, month";
        let mut query = sqlx::query(sql);
        for b in bounds {
            query = query.bind(b.0);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(db)?;
        rows.iter()
            .map(|r| {
                let read = |e| unreadable("monthly credits", e);
                let id: String = r.try_get(0).map_err(read)?;
                let site = SiteId::parse(id.clone()).map_err(|e| StoreError::Corrupt {
                    at: format!("site {id}"),
                    detail: e.to_string(),
                })?;
                let month: i64 = r.try_get(1).map_err(read)?;
                let month = u8::try_from(month)
                    .ok()
                    .filter(|m| (1..=12).contains(m))
                    .ok_or_else(|| StoreError::Corrupt {
                        at: format!("site {id}"),
                        detail: format!("month {month} out of range"),
                    })?;
                Ok((site, month, Credits::from_cents(r.try_get::<i64, _>(2).map_err(read)?)))
            })
            .collect()
    }

    async fn heads(&self) -> Result<Vec<(u32, Head)>> {
        let rows = sqlx::query("select chain_id, seq, hash from chain_heads order by chain_id")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(head_from_row).collect()
    }

    async fn stray_entry(&self, chains: u32) -> Result<Option<(i64, i64)>> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("select chain_id, seq from ledger_entries where chain_id < 0 or chain_id >= ?1 limit 1")
                .bind(i64::from(chains))
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        Ok(row)
    }

    fn chain_count(&self) -> u32 {
        self.chains
    }

    /// SQLite has one writer at a time (`BEGIN IMMEDIATE`).
    fn parallel_writes(&self) -> bool {
        false
    }

    fn chain_entries(&self, chain: u32) -> BoxStream<'_, Result<Entry>> {
        // Rows are stepped one at a time through a bounded channel from the
        // connection's worker: memory stays flat however long the chain is.
        // In WAL mode this read does not hold up ingestion.
        sqlx::query(concat!(
            "select ",
            entry_columns!(),
            " from ledger_entries where chain_id = ?1 order by seq"
        ))
        .bind(i64::from(chain))
        .fetch(&self.pool)
        .map_err(db)
        .and_then(|r| async move { entry_from_row(&r) })
        .boxed()
    }

    async fn log_head(&self) -> Result<Option<LogHead>> {
        bank::log_head(&self.pool).await
    }

    async fn log_tips(&self) -> Result<Vec<ChainTip>> {
        bank::log_tips(&self.pool).await
    }

    async fn log_tiles(&self, ids: &[TileId]) -> Result<Tiles> {
        bank::log_tiles(&self.pool, ids).await
    }

    async fn log_segments(&self, from: u64, to: u64) -> Result<Vec<Segment>> {
        bank::log_segments(&self.pool, from, to).await
    }

    async fn segment_entries(&self, chain: u32, after: u64, upto: u64) -> Result<Vec<DepositRecord>> {
        bank::segment_entries(&self.pool, chain, after, upto).await
    }

    async fn legacy_checkpoint_chains(&self) -> Result<Vec<Vec<u8>>> {
        bank::legacy_checkpoint_chains(&self.pool).await
    }

    async fn write_seal(&self, seal: &Seal) -> Result<Written> {
        bank::write_seal(&self.pool, seal).await
    }

    async fn chain_range(&self, chain: u32, after: u64, upto: u64) -> Result<Vec<Entry>> {
        bank::chain_range(&self.pool, chain, after, upto).await
    }

    async fn entry_kinds(&self, positions: &[Position]) -> Result<HashMap<Position, EntryKind>> {
        bank::entry_kinds(&self.pool, positions).await
    }

    async fn ack_deposits(&self, acks: &[AckRequest], now: Millis) -> Result<Vec<AckOutcome>> {
        bank::ack_deposits(&self.pool, acks, now).await
    }

    async fn erase_learner(&self, learner: &LearnerId, reason: &Reason, now: Millis) -> Result<Position> {
        bank::erase_learner(&self.pool, learner, reason, now).await
    }
}
