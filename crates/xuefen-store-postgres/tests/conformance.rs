//! The conformance suite of `xuefen-store` on PostgreSQL: every scenario on
//! a database of its own, created on the cluster named by
//! `XUEFEN_TEST_PG_ADMIN_URL` (scripts/test.sh and scripts/with-postgres.sh
//! set it). Without it the tests fail: they never pass without a database.

#[path = "../../xuefen/tests/support/pg.rs"]
mod pg;

use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use xuefen_store::ServiceStore;
use xuefen_store::conformance::{Backend, Dialect};
use xuefen_store_postgres::{PgSettings, PgStore};

/// A fresh, migrated database; dropped by `close`.
struct Pg {
    store: PgStore,
    name: String,
}

#[async_trait::async_trait]
impl Backend for Pg {
    async fn fresh() -> Self {
        let (name, url) = pg::create_database().await;
        let settings = PgSettings {
            url,
            read_url: None,
            pool_connections_max: 8,
            acquire_timeout: Duration::from_secs(30),
        };
        let store = PgStore::connect(&settings, true)
            .await
            .expect("connect to and migrate the test database");
        Self { store, name }
    }

    fn store(&self) -> Arc<dyn ServiceStore> {
        Arc::new(self.store.clone())
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
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
        pg::drop_database(&self.name).await;
    }
}

xuefen_store::conformance_tests!(Pg);
