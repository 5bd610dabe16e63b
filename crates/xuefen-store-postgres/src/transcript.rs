//! Transcripts on PostgreSQL: a learner's entries and sums.

use async_trait::async_trait;
use xuefen_core::amount::Credits;
use xuefen_core::entry::Entry;
use xuefen_core::ids::{LearnerId, Position};
use xuefen_core::transcript::{Referrals, TotalRow};
use xuefen_store::{Result, TranscriptStore};

use crate::{Col, PgStore, db};
use xuefen_store::records::EntryRecord;

#[async_trait]
impl TranscriptStore for PgStore {
    async fn learner_entries(&self, learner: &LearnerId) -> Result<Vec<Entry>> {
        let rows = sqlx::query(concat!(
            "select ",
            entry_columns!(),
            " from ledger_entries l where learner_id = $1 order by seq"
        ))
        .bind(learner.as_str())
        .fetch_all(&self.read_pool)
        .await
        .map_err(db)?;
        rows.into_iter()
            .map(|r| EntryRecord::read(&r).and_then(Entry::try_from))
            .collect()
    }

    async fn learner_entries_page(&self, learner: &LearnerId, after_seq: u64, limit: usize) -> Result<Vec<Entry>> {
        let rows = sqlx::query(concat!(
            "select ",
            entry_columns!(),
            " from ledger_entries l where learner_id = $1 and seq > $2 order by seq limit $3"
        ))
        .bind(learner.as_str())
        .bind(i64::try_from(after_seq).unwrap_or(i64::MAX))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.read_pool)
        .await
        .map_err(db)?;
        rows.into_iter()
            .map(|r| EntryRecord::read(&r).and_then(Entry::try_from))
            .collect()
    }

    async fn learner_summary(&self, learner: &LearnerId) -> Result<(Vec<TotalRow>, Referrals)> {
        // One read of the learner's rows for both parts: the sums (part 0)
        // and what later entries say of earlier ones (part 1). Years in
        // China Standard Time: UTC+8 all year round (no DST).
        let rows = sqlx::query(
            "with l as materialized (
               select kind, occurred_at_ms, category, site_id, credits_cents, refers_chain, refers_seq
                 from ledger_entries where learner_id = $1)
             select 0 as part,
                    extract(year from to_timestamp((occurred_at_ms + 28800000) / 1000.0) at time zone 'UTC')::int
                        as year,
                    category, site_id, sum(credits_cents)::bigint as credits,
                    null::bigint as refers_chain, null::bigint as refers_seq, null::bigint as kind
               from l where kind not in (10, 11)
              group by year, category, site_id
             union all
             select 1, null, null, null, null, refers_chain::bigint, refers_seq, kind::bigint
               from l where kind in (3, 10, 11) and refers_seq is not null",
        )
        .bind(learner.as_str())
        .fetch_all(&self.read_pool)
        .await
        .map_err(db)?;
        let mut totals = Vec::new();
        let mut referred = Referrals::default();
        for r in &rows {
            let part: i32 = r.col("part")?;
            if part == 0 {
                totals.push(TotalRow {
                    year: r.col("year")?,
                    category: r.col("category")?,
                    site: r.col("site_id")?,
                    credits: Credits::from_cents(r.col("credits")?),
                });
                continue;
            }
            let (chain, seq, kind): (i64, i64, i64) = (r.col("refers_chain")?, r.col("refers_seq")?, r.col("kind")?);
            if let (Ok(chain), Ok(seq)) = (u32::try_from(chain), u64::try_from(seq)) {
                xuefen_store::referral(&mut referred, Position { chain, seq }, kind);
            }
        }
        Ok((totals, referred))
    }
}
