//! The conformance suite of `xuefen-store` on PostgreSQL: every scenario on
//! a database of its own, created on the cluster named by
//! `XUEFEN_TEST_PG_ADMIN_URL` (scripts/test.sh and scripts/with-postgres.sh
//! set it). Without it the tests fail: they never pass without a database.

#[path = "../../xuefen/tests/support/migrations.rs"]
mod migrations;
#[path = "../../xuefen/tests/support/pg.rs"]
mod pg;

use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use xuefen_store::ServiceStore;
use xuefen_store::conformance::{Backend, Dialect};
use xuefen_store_postgres::{MIGRATOR, PgSettings, PgStore};

/// A fresh, migrated database; dropped by `close`.
struct Pg {
    store: PgStore,
    name: String,
}

fn settings(url: String) -> PgSettings {
    PgSettings {
        url,
        read_url: None,
        pool_connections_max: 8,
        acquire_timeout: Duration::from_secs(30),
    }
}

#[async_trait::async_trait]
impl Backend for Pg {
    async fn fresh() -> Self {
        let (name, url) = pg::create_database().await;
        let store = PgStore::connect(&settings(url), true)
            .await
            .expect("connect to and migrate the test database");
        Self { store, name }
    }

    async fn fresh_at_version(version: i64) -> Self {
        let (name, url) = pg::create_database().await;
        let up_to = migrations::up_to(&MIGRATOR, version);
        let pool = sqlx::PgPool::connect(&url).await.expect("connect");
        up_to.run(&pool).await.expect("migrate to the version");
        pool.close().await;
        let store = PgStore::connect(&settings(url), false)
            .await
            .expect("connect to the test database at the version");
        Self { store, name }
    }

    async fn migrate(&self) {
        MIGRATOR
            .run(self.store.pool())
            .await
            .expect("migrate the test database");
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
        first_column(self.store.pool(), sql).await
    }

    async fn query_text(&self, sql: &str) -> Result<String, String> {
        first_column(self.store.pool(), sql).await
    }

    async fn close(self) {
        self.store.pool().close().await;
        pg::drop_database(&self.name).await;
    }
}

/// The first column of the first row `sql` returns.
async fn first_column<T>(pool: &sqlx::PgPool, sql: &str) -> Result<T, String>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    let row = sqlx::query(sql).fetch_one(pool).await.map_err(|e| e.to_string())?;
    row.try_get(0).map_err(|e| e.to_string())
}

xuefen_store::conformance_tests!(Pg);
