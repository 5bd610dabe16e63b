//! Opening the store named by `database_url`: PostgreSQL, or the embedded
//! SQLite database in `data_dir` when the URL is unset. Every subcommand that
//! reads or writes the ledger opens it here, so the refusal to create an
//! empty database behind an operator's back is written once.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use xuefen_store::ServiceStore;
use xuefen_store_postgres::{PgSettings, PgStore};
use xuefen_store_sqlite::{SqliteSettings, SqliteStore};

use crate::secrets::private_dir;
use crate::settings::Settings;

/// The store of a server that already ran: a command other than `serve` and
/// `migrate` run from another directory (or with other settings) refuses
/// instead of creating an empty embedded database and answering from it.
pub(crate) async fn open_existing_store(db: &Settings, migrate: bool) -> anyhow::Result<Arc<dyn ServiceStore>> {
    if db.database_url.is_none() {
        let path = db.data_dir.join("xuefen.db");
        anyhow::ensure!(
            path.exists(),
            "no Xuefen database at {}: run this command with the server's settings (from the directory \
             `xuefen serve` runs in, or with its XUEFEN_DATA_DIR or DATABASE_URL)",
            path.display()
        );
    }
    open_store(db, migrate).await
}

pub(crate) async fn open_store(db: &Settings, migrate: bool) -> anyhow::Result<Arc<dyn ServiceStore>> {
    let url = match &db.database_url {
        Some(url) => url.expose().to_owned(),
        None => {
            private_dir(&db.data_dir)?;
            let path = db.data_dir.join("xuefen.db");
            tracing::info!(path = %path.display(), "database_url is unset: using the embedded SQLite database");
            format!("sqlite://{}", path.display())
        }
    };
    if url.starts_with("sqlite:") {
        if db.database_read_url.is_some() {
            tracing::warn!("database_read_url is ignored with SQLite: every read is served by the one database");
        }
        let settings = SqliteSettings {
            url,
            pool_connections_max: db.pool_connections_max.min(8),
        };
        let store = SqliteStore::connect(&settings, migrate).await.context("open SQLite")?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let settings = PgSettings {
            url,
            read_url: db.database_read_url.as_ref().map(|u| u.expose().to_owned()),
            pool_connections_max: db.pool_connections_max,
            acquire_timeout: Duration::from_secs(db.db_acquire_timeout_seconds),
        };
        let store = PgStore::connect(&settings, migrate)
            .await
            .context("connect to PostgreSQL")?;
        Ok(Arc::new(store))
    } else {
        bail!("database_url must start with postgres://, postgresql:// or sqlite://")
    }
}
