//! Learners' sealed names on PostgreSQL (crates/xuefen-store/src/names.rs):
//! the rows the start-up check and `xuefen names reseal` read and rewrite.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use xuefen_core::ids::LearnerId;
use xuefen_store::names::{KeyUse, NameStore, StoredName};
use xuefen_store::{Result, StoreError};

use crate::{Col as _, PgStore, db};

fn stored(row: &PgRow) -> Result<StoredName> {
    let corrupt = |detail: String| StoreError::Corrupt {
        at: "learners".into(),
        detail,
    };
    let id: String = row.col("id")?;
    let hash: Vec<u8> = row.col("document_hash")?;
    Ok(StoredName {
        learner: LearnerId::parse(id).map_err(|e| corrupt(e.to_string()))?,
        document_hash: hash
            .try_into()
            .map_err(|_| corrupt("a document hash is not 32 bytes".into()))?,
        name: row.col("name")?,
    })
}

#[async_trait]
impl NameStore for PgStore {
    async fn stored_names(&self, after: Option<&LearnerId>, limit: u32) -> Result<Vec<StoredName>> {
        let rows = sqlx::query(
            "select id, document_hash, name from learners where $1::text is null or id > $1
             order by id limit $2",
        )
        .bind(after.map(LearnerId::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(stored).collect()
    }

    async fn name_key_uses(&self) -> Result<Vec<KeyUse>> {
        // The key id lies between `xfn1:` and the next `:`; '' marks a name
        // in clear.
        let rows = sqlx::query(
            "with k as (
                 select id, case when left(name, 5) = 'xfn1:' then split_part(name, ':', 2) else '' end as key
                 from learners)
             select g.key, g.rows, l.id, l.document_hash, l.name
             from (select key, count(*) as rows, min(id) as first from k group by key) g
             join learners l on l.id = g.first
             order by g.key",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                let key: String = row.col("key")?;
                let rows: i64 = row.col("rows")?;
                Ok(KeyUse {
                    key: (!key.is_empty()).then_some(key),
                    rows: u64::try_from(rows).unwrap_or_default(),
                    sample: stored(row)?,
                })
            })
            .collect()
    }

    async fn replace_name(&self, learner: &LearnerId, expected: &str, name: &str) -> Result<bool> {
        let done = sqlx::query("update learners set name = $3 where id = $1 and name = $2")
            .bind(learner.as_str())
            .bind(expected)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }
}
