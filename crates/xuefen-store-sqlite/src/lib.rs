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

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use xuefen_store::{ConflictKind, Result, Store, StoreError};

#[macro_use]
mod rows;

mod bank;
mod courses;
mod keys;
mod learners;
mod ledger;
mod log_index;
mod names;
mod pseudonyms;
mod recognition;
mod sites;
mod stats;
mod transcript;
mod witness;
mod xapi;

/// Migrations embedded from `migrations/sqlite`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// How long a connection waits for another one's write lock before failing
/// with `SQLITE_BUSY`. Batches queue on the lock; ten seconds is far longer
/// than any batch holds it.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Maps a driver error to the store's errors, once.
fn db(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            // SQLite does not report the constraint's name; its message names
            // the columns (`UNIQUE constraint failed: sites.id`).
            StoreError::conflict(
                ConflictKind::Exists,
                d.constraint().map_or_else(|| d.message().to_owned(), str::to_owned),
            )
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
            return Err(StoreError::conflict(
                ConflictKind::Schema,
                format!("schema at migration {applied:?}, expected {latest:?}"),
            ));
        }
        Ok(())
    }
}
