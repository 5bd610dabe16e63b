//! Learners on SQLite: registration, account links and erasure.

use async_trait::async_trait;
use sqlx::Row;
use xuefen_core::event::{Millis, Reason};
use xuefen_core::ids::{LearnerId, LocalAccount, Position, SiteId};
use xuefen_store::learners::{ACCOUNT_LINK_COLUMNS, LEARNER_INSERT_COLUMNS, existing_link, stored_learner_id};
use xuefen_store::{LearnerStore, NewLearner, Result, Written};

use crate::{SqliteStore, bank, db};

#[async_trait]
impl LearnerStore for SqliteStore {
    async fn register_learner(&self, learner: &NewLearner) -> Result<(LearnerId, Written)> {
        let row = learner.record(self.chains);
        // Insert-or-find: the unique document hash decides, so two sites
        // registering the same person concurrently reach the same learner.
        // The learner, their secret and their key are written together.
        let mut tx = self.pool.begin().await.map_err(db)?;
        let inserted: Option<String> = sqlx::query_scalar(&format!(
            "insert into learners ({LEARNER_INSERT_COLUMNS}) values (?1, ?2, ?3, ?4, ?5)
             on conflict (document_hash) do nothing returning id"
        ))
        .bind(row.id)
        .bind(i64::from(row.chain_id))
        .bind(row.document_kind)
        .bind(row.document_hash)
        .bind(row.name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if inserted.is_some() {
            sqlx::query("insert into learner_secrets (learner_id, secret) values (?1, ?2)")
                .bind(learner.candidate.as_str())
                .bind(&learner.secret[..])
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            if let Some(wrapped) = &learner.wrapped_key {
                sqlx::query("insert into learner_keys (learner_id, wrapped) values (?1, ?2)")
                    .bind(learner.candidate.as_str())
                    .bind(wrapped)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            tx.commit().await.map_err(db)?;
            return Ok((learner.candidate.clone(), Written::Created));
        }
        tx.rollback().await.map_err(db)?;
        let id: String = sqlx::query_scalar("select id from learners where document_hash = ?1")
            .bind(&learner.document_hash[..])
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok((stored_learner_id(id)?, Written::Existing))
    }

    async fn link_account(
        &self,
        site: &SiteId,
        account: &LocalAccount,
        learner: &LearnerId,
        registered_at: Option<Millis>,
    ) -> Result<Written> {
        let inserted = sqlx::query(&format!(
            "insert into learner_accounts ({ACCOUNT_LINK_COLUMNS}) values (?1, ?2, ?3, ?4)
             on conflict (site_id, local_account) do nothing"
        ))
        .bind(site.as_str())
        .bind(account.as_str())
        .bind(learner.as_str())
        .bind(registered_at.map(Millis::to_rfc3339))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if inserted.rows_affected() == 1 {
            return Ok(Written::Created);
        }
        let linked: String =
            sqlx::query_scalar("select learner_id from learner_accounts where site_id = ?1 and local_account = ?2")
                .bind(site.as_str())
                .bind(account.as_str())
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        existing_link(&linked, learner)
    }

    async fn learner_exists(&self, learner: &LearnerId) -> Result<bool> {
        sqlx::query_scalar("select exists (select 1 from learners where id = ?1)")
            .bind(learner.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }

    async fn learner_by_document(&self, document_hash: &[u8; 32]) -> Result<Option<(LearnerId, String)>> {
        let row = sqlx::query("select id, name from learners where document_hash = ?1")
            .bind(&document_hash[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|r| {
            Ok((
                stored_learner_id(r.try_get("id").map_err(db)?)?,
                r.try_get("name").map_err(db)?,
            ))
        })
        .transpose()
    }

    async fn site_knows_learner(&self, site: &SiteId, learner: &LearnerId) -> Result<bool> {
        sqlx::query_scalar(
            "select exists (select 1 from learner_accounts where learner_id = ?2 and site_id = ?1)
                 or exists (select 1 from ledger_entries where learner_id = ?2 and site_id = ?1)",
        )
        .bind(site.as_str())
        .bind(learner.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(db)
    }

    async fn erase_learner(&self, learner: &LearnerId, reason: &Reason, now: Millis) -> Result<Position> {
        bank::erase_learner(&self.pool, learner, reason, now).await
    }
}
