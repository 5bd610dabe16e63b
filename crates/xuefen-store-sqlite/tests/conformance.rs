//! The conformance suite of `xuefen-store` on SQLite: every scenario on a
//! database file of its own, with the pool size the service uses by default.

#[path = "../../xuefen/tests/support/migrations.rs"]
mod migrations;

use std::path::PathBuf;
use std::sync::Arc;

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use xuefen_store::ServiceStore;
use xuefen_store::conformance::{Backend, Dialect};
use xuefen_store_sqlite::{MIGRATOR, SqliteSettings, SqliteStore};

/// A migrated database file; removed with its WAL files on drop.
struct Lite {
    store: SqliteStore,
    path: PathBuf,
}

/// A new database file's path and the settings that open it.
fn new_file() -> (PathBuf, SqliteSettings) {
    let path = std::env::temp_dir().join(format!("xuefen-conformance-{}.db", rand::random::<u64>()));
    let settings = SqliteSettings {
        url: format!("sqlite://{}", path.display()),
        pool_connections_max: 8,
    };
    (path, settings)
}

#[async_trait::async_trait]
impl Backend for Lite {
    async fn fresh() -> Self {
        let (path, settings) = new_file();
        let store = SqliteStore::connect(&settings, true)
            .await
            .expect("open and migrate SQLite");
        Self { store, path }
    }

    async fn fresh_at_version(version: i64) -> Self {
        let (path, settings) = new_file();
        let up_to = migrations::up_to(&MIGRATOR, version);
        let options: SqliteConnectOptions = settings.url.parse().expect("url");
        let pool = SqlitePool::connect_with(options.create_if_missing(true))
            .await
            .expect("create SQLite");
        up_to.run(&pool).await.expect("migrate to the version");
        pool.close().await;
        let store = SqliteStore::connect(&settings, false)
            .await
            .expect("open SQLite at the version");
        Self { store, path }
    }

    async fn migrate(&self) {
        MIGRATOR.run(self.store.pool()).await.expect("migrate SQLite");
    }

    fn store(&self) -> Arc<dyn ServiceStore> {
        Arc::new(self.store.clone())
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn execute(&self, sql: &str) -> Result<u64, String> {
        sqlx::raw_sql(sql)
            .execute(self.store.pool())
            .await
            .map(|done| done.rows_affected())
            .map_err(|e| e.to_string())
    }

    async fn query_i64(&self, sql: &str) -> Result<i64, String> {
        first_column(self.store.pool(), sql).await
    }

    async fn query_text(&self, sql: &str) -> Result<String, String> {
        first_column(self.store.pool(), sql).await
    }

    async fn close(self) {
        self.store.pool().close().await;
    }
}

impl Drop for Lite {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.path.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The first column of the first row `sql` returns.
async fn first_column<T>(pool: &sqlx::SqlitePool, sql: &str) -> Result<T, String>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    let row = sqlx::query(sql).fetch_one(pool).await.map_err(|e| e.to_string())?;
    row.try_get(0).map_err(|e| e.to_string())
}

xuefen_store::conformance_tests!(Lite);
