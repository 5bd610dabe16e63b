//! The conformance suite of `xuefen-store` on SQLite: every scenario on a
//! database file of its own, with the pool size the service uses by default.

use std::path::PathBuf;
use std::sync::Arc;

use sqlx::Row;
use xuefen_store::ServiceStore;
use xuefen_store::conformance::{Backend, Dialect};
use xuefen_store_sqlite::{SqliteSettings, SqliteStore};

/// A migrated database file; removed with its WAL files on drop.
struct Lite {
    store: SqliteStore,
    path: PathBuf,
}

#[async_trait::async_trait]
impl Backend for Lite {
    async fn fresh() -> Self {
        let path = std::env::temp_dir().join(format!("xuefen-conformance-{}.db", rand::random::<u64>()));
        let settings = SqliteSettings {
            url: format!("sqlite://{}", path.display()),
            pool_connections_max: 8,
        };
        let store = SqliteStore::connect(&settings, true)
            .await
            .expect("open and migrate SQLite");
        Self { store, path }
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
        let row = sqlx::query(sql)
            .fetch_one(self.store.pool())
            .await
            .map_err(|e| e.to_string())?;
        row.try_get(0).map_err(|e| e.to_string())
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

xuefen_store::conformance_tests!(Lite);
