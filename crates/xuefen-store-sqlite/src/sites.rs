//! Sites on SQLite: the register and the alliance chain of its changes.

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use xuefen_core::event::Millis;
use xuefen_core::ids::{RegionCode, SiteId, SiteLevel, SiteStatus};
use xuefen_core::plan::Head;
use xuefen_core::site_log::{SiteChange, SiteChangeEntry};
use xuefen_store::records::SiteChangeRecord;
use xuefen_store::{ConflictKind, Result, Site, SiteAct, SiteStore, StoreError, site_change, site_transition};

use crate::ledger::head_from_row;
use crate::{SqliteStore, db, unreadable};

fn site_from_row(row: &SqliteRow) -> Result<Site> {
    let id: String = row.try_get("id").map_err(|e| unreadable("sites", e))?;
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
        name: row.try_get("name").map_err(read)?,
        level: SiteLevel::parse(row.try_get::<&str, _>("level").map_err(read)?).map_err(corrupt)?,
        region_code: RegionCode::parse(row.try_get::<String, _>("region_code").map_err(read)?).map_err(corrupt)?,
        status: SiteStatus::parse(row.try_get::<&str, _>("status").map_err(read)?).map_err(corrupt)?,
        agreement_starts_at: row
            .try_get::<Option<i64>, _>("agreement_starts_at_ms")
            .map_err(read)?
            .map(Millis),
        agreement_ends_at: row
            .try_get::<Option<i64>, _>("agreement_ends_at_ms")
            .map_err(read)?
            .map(Millis),
    })
}

const SITE_COLUMNS: &str = "id, name, level, region_code, status, agreement_starts_at_ms, agreement_ends_at_ms";

fn site_change_from_row(row: &SqliteRow) -> Result<SiteChangeEntry> {
    let get = || -> sqlx::Result<SiteChangeRecord> {
        Ok(SiteChangeRecord {
            seq: row.try_get("seq")?,
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
            site_id: row.try_get("site_id")?,
            from_status: row.try_get("from_status")?,
            to_status: row.try_get("to_status")?,
            actor: row.try_get("actor")?,
            reason: row.try_get("reason")?,
            at_ms: row.try_get("at_ms")?,
            agreement_starts_at_ms: row.try_get("agreement_starts_at_ms")?,
            agreement_ends_at_ms: row.try_get("agreement_ends_at_ms")?,
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
impl SiteStore for SqliteStore {
    async fn create_site(&self, site: &Site, act: &SiteAct) -> Result<SiteChangeEntry> {
        if !matches!(site.status, SiteStatus::Pending | SiteStatus::Active) {
            return Err(StoreError::conflict(
                ConflictKind::InvalidTransition,
                format!(
                    "invalid_transition: a site starts pending or active, not {}",
                    site.status
                ),
            ));
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
}
