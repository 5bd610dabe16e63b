//! Pairwise learner pseudonyms on PostgreSQL (migration 0010).

use async_trait::async_trait;
use xuefen_core::ids::LearnerId;
use xuefen_core::pseudonym::{Audience, Pseudonym};
use xuefen_store::pseudonyms::{PseudonymRow, PseudonymStore};
use xuefen_store::{Result, StoreError};

use crate::{PgStore, db};

#[async_trait]
impl PseudonymStore for PgStore {
    async fn remember_pseudonyms(&self, rows: &[PseudonymRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let audiences: Vec<String> = rows.iter().map(|r| r.audience.key()).collect();
        let pseudonyms: Vec<&str> = rows.iter().map(|r| r.pseudonym.as_str()).collect();
        let learners: Vec<&str> = rows.iter().map(|r| r.learner.as_str()).collect();
        // One statement, so one transaction; a learner erased meanwhile is
        // left out by the join (and its rows by the foreign key).
        sqlx::query(
            "insert into learner_pseudonyms (audience, pseudonym, learner_id)
             select r.audience, r.pseudonym, l.id
               from unnest($1::text[], $2::text[], $3::text[]) as r (audience, pseudonym, learner_id)
               join learners l on l.id = r.learner_id
             on conflict (audience, pseudonym) do nothing",
        )
        .bind(&audiences)
        .bind(&pseudonyms)
        .bind(&learners)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn learner_by_pseudonym(
        &self,
        audience: Option<&Audience>,
        pseudonym: &Pseudonym,
    ) -> Result<Option<LearnerId>> {
        let id: Option<String> = sqlx::query_scalar(
            "select p.learner_id from learner_pseudonyms p join learners l on l.id = p.learner_id
              where ($1::text is null or p.audience = $1) and p.pseudonym = $2
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
              where b.subject_hash = $1",
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
             select $1, id from learners where id = $2
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
