//! Transcripts on SQLite: a learner's entries and sums.

use async_trait::async_trait;
use sqlx::Row;
use xuefen_core::amount::Credits;
use xuefen_core::entry::Entry;
use xuefen_core::ids::{LearnerId, Position};
use xuefen_core::transcript::{Referrals, TotalRow};
use xuefen_store::{Result, StoreError, TranscriptStore};

use crate::rows::entry_from_row;
use crate::{SqliteStore, db, unreadable};

#[async_trait]
impl TranscriptStore for SqliteStore {
    async fn learner_entries(&self, learner: &LearnerId) -> Result<Vec<Entry>> {
        let rows = sqlx::query(concat!(
            "select ",
            entry_columns!(),
            " from ledger_entries l where learner_id = ?1 order by seq"
        ))
        .bind(learner.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn learner_entries_page(&self, learner: &LearnerId, after_seq: u64, limit: usize) -> Result<Vec<Entry>> {
        let rows = sqlx::query(concat!(
            "select ",
            entry_columns!(),
            " from ledger_entries l where learner_id = ?1 and seq > ?2 order by seq limit ?3"
        ))
        .bind(learner.as_str())
        .bind(i64::try_from(after_seq).unwrap_or(i64::MAX))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn learner_summary(&self, learner: &LearnerId) -> Result<(Vec<TotalRow>, Referrals)> {
        // One read of the learner's rows for both parts: the sums (part 0)
        // and what later entries say of earlier ones (part 1). Years in
        // China Standard Time: UTC+8 all year round (no DST).
        let rows = sqlx::query(
            "with l as materialized (
               select kind, occurred_at_ms, category, site_id, credits_cents, refers_chain, refers_seq
                 from ledger_entries where learner_id = ?1)
             select * from (
               select 0 as part,
                      cast(strftime('%Y', (occurred_at_ms + 28800000) / 1000, 'unixepoch') as integer) as year,
                      category, site_id, sum(credits_cents) as credits,
                      null as refers_chain, null as refers_seq, null as kind
                 from l where kind not in (10, 11)
                group by year, category, site_id)
             union all
             select 1, null, null, null, null, refers_chain, refers_seq, kind
               from l where kind in (3, 10, 11) and refers_seq is not null",
        )
        .bind(learner.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut totals = Vec::new();
        let mut referred = Referrals::default();
        for row in &rows {
            let read = |e| unreadable("ledger_entries", e);
            let part: i64 = row.try_get("part").map_err(read)?;
            if part == 0 {
                let year: i64 = row.try_get("year").map_err(read)?;
                totals.push(TotalRow {
                    year: i32::try_from(year).map_err(|_| StoreError::Corrupt {
                        at: format!("learner {learner}"),
                        detail: "year out of range".into(),
                    })?,
                    category: row.try_get("category").map_err(read)?,
                    site: row.try_get("site_id").map_err(read)?,
                    credits: Credits::from_cents(row.try_get("credits").map_err(read)?),
                });
                continue;
            }
            let (chain, seq, kind): (i64, i64, i64) = (
                row.try_get("refers_chain").map_err(read)?,
                row.try_get("refers_seq").map_err(read)?,
                row.try_get("kind").map_err(read)?,
            );
            if let (Ok(chain), Ok(seq)) = (u32::try_from(chain), u64::try_from(seq)) {
                xuefen_store::referral(&mut referred, Position { chain, seq }, kind);
            }
        }
        Ok((totals, referred))
    }
}
