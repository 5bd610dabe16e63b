//! Pairwise learner pseudonyms on SQLite (migration 0010).

use async_trait::async_trait;
use xuefen_core::ids::LearnerId;
use xuefen_core::pseudonym::{Audience, Pseudonym};
use xuefen_store::pseudonyms::{PseudonymRow, PseudonymStore};
use xuefen_store::{Result, StoreError};

use crate::{SqliteStore, db, run_to_end};

#[async_trait]
impl PseudonymStore for SqliteStore {
    async fn remember_pseudonyms(&self, rows: &[PseudonymRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let pool = self.pool.clone();
        let rows = rows.to_vec();
        // One write transaction, run to its end even if the caller goes away
        // (see `run_to_end`).
        run_to_end(async move {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
            for row in &rows {
                sqlx::query(
                    "insert into learner_pseudonyms (audience, pseudonym, learner_id)
                     select ?1, ?2, id from learners where id = ?3
                     on conflict (audience, pseudonym) do nothing",
                )
                .bind(row.audience.key())
                .bind(row.pseudonym.as_str())
                .bind(row.learner.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            tx.commit().await.map_err(db)
        })
        .await
    }

    async fn learner_by_pseudonym(
        &self,
        audience: Option<&Audience>,
        pseudonym: &Pseudonym,
    ) -> Result<Option<LearnerId>> {
        let id: Option<String> = sqlx::query_scalar(
            "select p.learner_id from learner_pseudonyms p join learners l on l.id = p.learner_id
              where (?1 is null or p.audience = ?1) and p.pseudonym = ?2
              limit 1",
        )
        .bind(audience.map(Audience::key))
        .bind(pseudonym.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        id.map(|id| {
            LearnerId::parse(id).map_err(|e| StoreError::Corrupt {
                at: format!("learner_pseudonyms {pseudonym}"),
                detail: e.to_string(),
            })
        })
        .transpose()
    }

    async fn learner_by_sso_subject(&self, subject_hash: &[u8; 32]) -> Result<Option<LearnerId>> {
        let id: Option<String> = sqlx::query_scalar(
            "select b.learner_id from learner_sso_bindings b join learners l on l.id = b.learner_id
              where b.subject_hash = ?1",
        )
        .bind(subject_hash.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        id.map(|id| {
            LearnerId::parse(id).map_err(|e| StoreError::Corrupt {
                at: "learner_sso_bindings".into(),
                detail: e.to_string(),
            })
        })
        .transpose()
    }

    async fn bind_sso_subject(&self, subject_hash: &[u8; 32], learner: &LearnerId) -> Result<()> {
        sqlx::query(
            "insert into learner_sso_bindings (subject_hash, learner_id)
             select ?1, id from learners where id = ?2
             on conflict (subject_hash) do nothing",
        )
        .bind(subject_hash.to_vec())
        .bind(learner.as_str())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }
}
