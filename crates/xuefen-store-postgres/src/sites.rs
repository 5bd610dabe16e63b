//! Sites on PostgreSQL: the register and the alliance chain of its changes.

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use sqlx::{Postgres, Transaction};
use xuefen_core::event::Millis;
use xuefen_core::ids::{SiteId, SiteStatus};
use xuefen_core::plan::Head;
use xuefen_core::site_log::{SiteChange, SiteChangeEntry};
use xuefen_store::records::{SiteChangeRecord, read_site_change};
use xuefen_store::sites::{SITE_COLUMNS, alliance_head_from_row, read_site, seal_after_alliance_head, site_creation};
use xuefen_store::{Result, Site, SiteAct, SiteStore, StoreError, site_transition};

use crate::{Col, PgStore, db};

const SITE_CHANGE_COLUMNS: &str = "seq, prev_hash, hash, site_id, from_status, to_status, actor, reason, at_ms,
     agreement_starts_at_ms, agreement_ends_at_ms";

/// Seals `change` after the alliance chain's head, which it locks, and
/// writes both inside the caller's transaction.
async fn append_site_change(tx: &mut Transaction<'_, Postgres>, change: SiteChange) -> Result<SiteChangeEntry> {
    let row = sqlx::query("select seq, hash from alliance_head where id for update")
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?;
    let entry = seal_after_alliance_head(row.col("seq")?, row.col("hash")?, change)?;
    let r = SiteChangeRecord::from(&entry);
    sqlx::query(
        "insert into site_changes (seq, prev_hash, hash, site_id, from_status, to_status, actor, reason, at_ms,
                agreement_starts_at_ms, agreement_ends_at_ms)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    sqlx::query("update alliance_head set seq = $1, hash = $2 where id")
        .bind(r.seq)
        .bind(r.hash)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(entry)
}

#[async_trait]
impl SiteStore for PgStore {
    async fn create_site(&self, site: &Site, act: &SiteAct) -> Result<SiteChangeEntry> {
        let change = site_creation(site, act)?;
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "insert into sites (id, name, level, region_code, status, agreement_starts_at_ms, agreement_ends_at_ms)
             values ($1, $2, $3, $4, $5, $6, $7)",
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
        let row = sqlx::query(&format!("select {SITE_COLUMNS} from sites where id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(read_site).transpose()
    }

    async fn sites(&self) -> Result<Vec<Site>> {
        let rows = sqlx::query(&format!("select {SITE_COLUMNS} from sites order by id"))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(read_site).collect()
    }

    async fn set_site_status(
        &self,
        id: &SiteId,
        status: SiteStatus,
        agreement_ends_at: Option<Millis>,
        act: &SiteAct,
    ) -> Result<(Site, SiteChangeEntry)> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let row = sqlx::query(&format!("select {SITE_COLUMNS} from sites where id = $1 for update"))
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let current = row.as_ref().map(read_site).transpose()?.ok_or(StoreError::NotFound)?;
        let (site, change) = site_transition(&current, status, agreement_ends_at, act)?;
        sqlx::query(
            "update sites set status = $2, agreement_starts_at_ms = $3, agreement_ends_at_ms = $4 where id = $1",
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
            "select {SITE_CHANGE_COLUMNS} from site_changes where site_id = $1 order by seq"
        ))
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(read_site_change).collect()
    }

    async fn alliance_head(&self) -> Result<Head> {
        let row = sqlx::query("select seq, hash from alliance_head where id")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        alliance_head_from_row(row.col("seq")?, row.col("hash")?)
    }

    fn alliance_entries(&self) -> BoxStream<'_, Result<SiteChangeEntry>> {
        sqlx::query(
            "select seq, prev_hash, hash, site_id, from_status, to_status, actor, reason, at_ms,
                    agreement_starts_at_ms, agreement_ends_at_ms from site_changes order by seq",
        )
        .fetch(&self.pool)
        .map_err(db)
        .and_then(|r| async move { read_site_change(&r) })
        .boxed()
    }
}
