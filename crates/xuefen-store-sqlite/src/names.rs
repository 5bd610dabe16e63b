//! Learners' sealed names on SQLite (crates/xuefen-store/src/names.rs):
//! the rows the start-up check and `xuefen names reseal` read and rewrite,
//! and the learners' wrapped keys (`learner_keys`,
//! migrations/sqlite/0013_learner_keys.sql).

use async_trait::async_trait;
use sqlx::Row as _;
use xuefen_core::ids::{LearnerId, Position};
use xuefen_store::names::{ClearNote, KeyUse, NameStore, StoredName};
use xuefen_store::{Result, StoreError};

use crate::{SqliteStore, db};

fn stored(row: &sqlx::sqlite::SqliteRow) -> Result<StoredName> {
    let corrupt = |detail: String| StoreError::Corrupt {
        at: "learners".into(),
        detail,
    };
    let id: String = row.try_get("id").map_err(|e| corrupt(e.to_string()))?;
    let hash: Vec<u8> = row.try_get("document_hash").map_err(|e| corrupt(e.to_string()))?;
    Ok(StoredName {
        learner: LearnerId::parse(id).map_err(|e| corrupt(e.to_string()))?,
        document_hash: hash
            .try_into()
            .map_err(|_| corrupt("a document hash is not 32 bytes".into()))?,
        name: row.try_get("name").map_err(|e| corrupt(e.to_string()))?,
        key: row.try_get("wrapped").map_err(|e| corrupt(e.to_string()))?,
    })
}

#[async_trait]
impl NameStore for SqliteStore {
    async fn stored_names(&self, after: Option<&LearnerId>, limit: u32) -> Result<Vec<StoredName>> {
        let rows = sqlx::query(
            "select l.id, l.document_hash, l.name, k.wrapped
               from learners l left join learner_keys k on k.learner_id = l.id
              where ?1 is null or l.id > ?1 order by l.id limit ?2",
        )
        .bind(after.map(LearnerId::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(stored).collect()
    }

    async fn name_key_uses(&self) -> Result<Vec<KeyUse>> {
        // What the service's key opens: the wrapped key of a name under a
        // learner key (null when it is missing), else the name itself. The
        // key id lies between `xfn1:` and the next `:`; '' marks a value in
        // clear (or a missing learner key).
        let rows = sqlx::query(
            "with v as (
                 select l.id, substr(l.name, 1, 5) = 'xfl1:' as keyed,
                        case when substr(l.name, 1, 5) = 'xfl1:' then k.wrapped else l.name end as v
                 from learners l left join learner_keys k on k.learner_id = l.id),
             u as (
                 select id, keyed,
                        case when substr(v, 1, 5) = 'xfn1:'
                             then substr(v, 6, instr(substr(v, 6), ':') - 1) else '' end as key
                 from v)
             select g.key, g.keyed, g.rows, l.id, l.document_hash, l.name, k.wrapped
             from (select key, keyed, count(*) as rows, min(id) as first from u group by key, keyed) g
             join learners l on l.id = g.first
             left join learner_keys k on k.learner_id = l.id
             order by g.key, g.keyed",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                let key: String = row.try_get("key").map_err(db)?;
                let keyed: i64 = row.try_get("keyed").map_err(db)?;
                let rows: i64 = row.try_get("rows").map_err(db)?;
                Ok(KeyUse {
                    key: (!key.is_empty()).then_some(key),
                    keyed: keyed != 0,
                    rows: u64::try_from(rows).unwrap_or_default(),
                    sample: stored(row)?,
                })
            })
            .collect()
    }

    async fn replace_name(&self, learner: &LearnerId, expected: &str, name: &str) -> Result<bool> {
        let done = sqlx::query("update learners set name = ?3 where id = ?1 and name = ?2")
            .bind(learner.as_str())
            .bind(expected)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn key_learner(&self, learner: &LearnerId, expected: &str, wrapped: &str, name: &str) -> Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        let done = sqlx::query("update learners set name = ?3 where id = ?1 and name = ?2")
            .bind(learner.as_str())
            .bind(expected)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() != 1 {
            tx.rollback().await.map_err(db)?;
            return Ok(false);
        }
        sqlx::query(
            "insert into learner_keys (learner_id, wrapped) values (?1, ?2)
             on conflict (learner_id) do update set wrapped = excluded.wrapped",
        )
        .bind(learner.as_str())
        .bind(wrapped)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn replace_learner_key(&self, learner: &LearnerId, expected: &str, wrapped: &str) -> Result<bool> {
        let done = sqlx::query("update learner_keys set wrapped = ?3 where learner_id = ?1 and wrapped = ?2")
            .bind(learner.as_str())
            .bind(expected)
            .bind(wrapped)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn learner_key(&self, learner: &LearnerId) -> Result<Option<String>> {
        sqlx::query_scalar("select wrapped from learner_keys where learner_id = ?1")
            .bind(learner.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)
    }

    async fn clear_notes(&self, after: Option<Position>, limit: u32) -> Result<Vec<ClearNote>> {
        let rows = sqlx::query(
            "select l.chain_id, l.seq, l.reason_note, s.secret
               from ledger_entries l join learner_secrets s on s.learner_id = l.learner_id
              where l.reason_note is not null and l.reason_note not like 'xfr1:%'
                and l.learner_commitment is not null
                and (?1 is null or (l.chain_id, l.seq) > (?1, ?2))
              order by l.chain_id, l.seq
              limit ?3",
        )
        .bind(after.map(|p| i64::from(p.chain)))
        .bind(after.map_or(0, |p| p.seq as i64))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let (chain, seq): (i64, i64) = (row.try_get("chain_id").map_err(db)?, row.try_get("seq").map_err(db)?);
            let (note, secret): (String, Vec<u8>) = (
                row.try_get("reason_note").map_err(db)?,
                row.try_get("secret").map_err(db)?,
            );
            let corrupt = |detail: &str| StoreError::Corrupt {
                at: format!("ledger_entries ({chain}:{seq})"),
                detail: detail.into(),
            };
            out.push(ClearNote {
                position: Position {
                    chain: u32::try_from(chain).map_err(|_| corrupt("chain out of range"))?,
                    seq: u64::try_from(seq).map_err(|_| corrupt("seq out of range"))?,
                },
                note,
                secret: secret
                    .try_into()
                    .map_err(|_| corrupt("the learner's secret is not 32 bytes"))?,
            });
        }
        Ok(out)
    }

    async fn seal_note(&self, position: Position, expected: &str, sealed: &str) -> Result<bool> {
        let p = position;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        let done = sqlx::query(
            "update ledger_entries set reason_note = ?4 where chain_id = ?1 and seq = ?2 and reason_note = ?3",
        )
        .bind(i64::from(p.chain))
        .bind(p.seq as i64)
        .bind(expected)
        .bind(sealed)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() == 1)
    }
}
