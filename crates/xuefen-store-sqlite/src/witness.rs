//! The log's witnessing on SQLite: the witnesses' cosignatures
//! (`migrations/sqlite/0011_cosignatures.sql`).

use async_trait::async_trait;
use sqlx::Row;
use xuefen_core::witness::Cosignature;
use xuefen_store::Result;
use xuefen_store::bank::LogHead;
use xuefen_store::witness::WitnessStore;

use crate::{SqliteStore, db, unreadable};

#[async_trait]
impl WitnessStore for SqliteStore {
    async fn checkpoint_at(&self, size: u64) -> Result<Option<LogHead>> {
        let row = sqlx::query("select size, created_at_ms, note from log_checkpoints where size = ?")
            .bind(size as i64)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(LogHead::read).transpose()
    }

    async fn put_cosignature(&self, size: u64, c: &Cosignature) -> Result<()> {
        sqlx::query(
            "insert into log_cosignatures (size, witness, signed_at, line) values (?, ?, ?, ?)
             on conflict (size, witness) do update set signed_at = excluded.signed_at, line = excluded.line
             where log_cosignatures.signed_at < excluded.signed_at",
        )
        .bind(size as i64)
        .bind(&c.witness)
        .bind(c.timestamp as i64)
        .bind(&c.line)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn cosignatures_at(&self, size: u64) -> Result<Vec<Cosignature>> {
        let rows = sqlx::query("select witness, signed_at, line from log_cosignatures where size = ? order by witness")
            .bind(size as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                let read = |e: sqlx::Error| unreadable("log_cosignatures", e);
                let ts: i64 = r.try_get("signed_at").map_err(read)?;
                Ok(Cosignature {
                    witness: r.try_get("witness").map_err(read)?,
                    timestamp: ts as u64,
                    line: r.try_get("line").map_err(read)?,
                })
            })
            .collect()
    }

    async fn cosigned_by(&self, witness: &str) -> Result<Option<u64>> {
        let size: Option<i64> = sqlx::query_scalar("select max(size) from log_cosignatures where witness = ?")
            .bind(witness)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(size.map(|s| s as u64))
    }

    async fn latest_cosigned(&self) -> Result<Option<u64>> {
        let size: Option<i64> = sqlx::query_scalar("select max(size) from log_cosignatures")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(size.map(|s| s as u64))
    }
}
