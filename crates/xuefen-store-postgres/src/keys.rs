//! API keys on PostgreSQL.

use async_trait::async_trait;
use xuefen_store::{KeyRecord, KeyStore, NewKey, Result, StoreError};

use crate::{PgStore, db};

#[async_trait]
impl KeyStore for PgStore {
    async fn create_key(&self, key: &NewKey) -> Result<()> {
        let (role, site) = key.principal.role_and_site();
        sqlx::query("insert into api_keys (id, role, site_id, secret_hash) values ($1, $2, $3, $4)")
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
        let done = sqlx::query("update api_keys set revoked_at = coalesce(revoked_at, now()) where id = $1")
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
              where k.secret_hash = $1",
        )
        .bind(&secret_hash[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(KeyRecord::read).transpose()
    }

    async fn admin_key_exists(&self) -> Result<bool> {
        sqlx::query_scalar("select exists (select 1 from api_keys where role = 'admin')")
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }
}
