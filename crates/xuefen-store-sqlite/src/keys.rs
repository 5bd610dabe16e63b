//! API keys on SQLite.

use async_trait::async_trait;
use sqlx::Row;
use xuefen_core::event::Millis;
use xuefen_core::ids::{SiteId, SiteStatus};
use xuefen_store::{KeyRecord, KeyStore, NewKey, Principal, Result, StoreError};

use crate::{SqliteStore, db, unreadable};

#[async_trait]
impl KeyStore for SqliteStore {
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
            "select k.id, k.role, k.site_id, k.revoked_at is not null as revoked, s.status as site_status,
                    s.agreement_ends_at_ms
               from api_keys k left join sites s on s.id = k.site_id
              where k.secret_hash = ?1",
        )
        .bind(&secret_hash[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get("id").map_err(|e| unreadable("api_keys", e))?;
        let corrupt = |detail: String| StoreError::Corrupt {
            at: format!("key {id}"),
            detail,
        };
        let read = |e: sqlx::Error| corrupt(e.to_string());
        let role: &str = row.try_get("role").map_err(read)?;
        let site: Option<String> = row.try_get("site_id").map_err(read)?;
        let principal = match (role, site) {
            ("admin", _) => Principal::Admin,
            ("bank", None) => Principal::Bank,
            ("site", Some(site)) => Principal::Site(SiteId::parse(site).map_err(|e| corrupt(e.to_string()))?),
            (role, _) => return Err(corrupt(format!("role {role}"))),
        };
        let site_status = row
            .try_get::<Option<&str>, _>("site_status")
            .map_err(read)?
            .map(SiteStatus::parse)
            .transpose()
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(KeyRecord {
            id: id.clone(),
            principal,
            revoked: row.try_get("revoked").map_err(read)?,
            site_status,
            agreement_ends_at: row
                .try_get::<Option<i64>, _>("agreement_ends_at_ms")
                .map_err(read)?
                .map(Millis),
        }))
    }

    async fn admin_key_exists(&self) -> Result<bool> {
        sqlx::query_scalar("select exists (select 1 from api_keys where role = 'admin')")
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }
}
