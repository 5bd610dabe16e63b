//! Alliance statistics on PostgreSQL, derived from the ledger in SQL.

use async_trait::async_trait;
use xuefen_core::amount::Credits;
use xuefen_core::event::Millis;
use xuefen_core::ids::SiteId;
use xuefen_store::{Result, SiteYearStats, StatsRule, StatsStore, StoreError};

use crate::{Col, PgStore, db};

#[async_trait]
impl StatsStore for PgStore {
    async fn site_year_stats(&self, site: Option<&SiteId>, year: i32, rule: StatsRule) -> Result<Vec<SiteYearStats>> {
        let (start, end) = Millis::cst_year_bounds(year);
        // A scan of the year's entries: statistics are an admin report,
        // derived from the ledger rather than from per-event counters.
        let rows = sqlx::query(
            "with in_year as (
                 select site_id, learner_id, kind, credits_cents from ledger_entries
                  where occurred_at_ms >= $2 and occurred_at_ms < $3
             ),
             site_learner as (
                 select site_id, learner_id, sum(credits_cents)::bigint as credits,
                        max(case when kind <> 3 then 1 else 0 end) as active
                   from in_year group by site_id, learner_id
             ),
             learner_year as (
                 select learner_id, sum(credits_cents)::bigint as credits from in_year group by learner_id
             ),
             regs as (
                 select site_id, learner_id from learner_accounts group by site_id, learner_id
                 having min(coalesce(registered_at, created_at)) >= to_timestamp($2 / 1000.0)
                    and min(coalesce(registered_at, created_at)) < to_timestamp($3 / 1000.0)
             )
             select s.id,
                    (select count(*) from regs r where r.site_id = s.id) as registrations,
                    (select count(*) from regs r join learner_year y on y.learner_id = r.learner_id
                      where r.site_id = s.id and y.credits >= $4) as registrations_with_credits,
                    (select count(*) from site_learner l where l.site_id = s.id and l.active = 1) as learners_active,
                    (select count(*) from site_learner l where l.site_id = s.id and l.credits >= $4) as learners_with_credits,
                    (select coalesce(sum(l.credits), 0)::bigint from site_learner l where l.site_id = s.id) as credits,
                    (select count(*) from site_learner l where l.site_id = s.id and l.credits >= $5) as learning_stars
               from sites s
              where $1::text is null or s.id = $1::text
              order by s.id",
        )
        .bind(site.map(SiteId::as_str))
        .bind(start.0)
        .bind(end.0)
        .bind(rule.credits_each.cents())
        .bind(rule.star_credits.cents())
        .fetch_all(&self.read_pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                let id: String = r.col("id")?;
                let count = |name: &str| r.col::<i64>(name).map(|n| u64::try_from(n).unwrap_or_default());
                Ok(SiteYearStats {
                    site: SiteId::parse(id.clone()).map_err(|e| StoreError::Corrupt {
                        at: format!("site {id}"),
                        detail: e.to_string(),
                    })?,
                    registrations: count("registrations")?,
                    registrations_with_credits: count("registrations_with_credits")?,
                    learners_active: count("learners_active")?,
                    learners_with_credits: count("learners_with_credits")?,
                    credits: Credits::from_cents(r.col::<i64>("credits")?),
                    learning_stars: count("learning_stars")?,
                })
            })
            .collect()
    }

    async fn site_month_credits(&self, year: i32) -> Result<Vec<(SiteId, u8, Credits)>> {
        // Months are told apart by their bounds in China Standard Time
        // ($1 is January's start, $13 the next year's), not by the
        // database's date functions.
        let bounds = Millis::cst_month_bounds(year);
        let sql = "select site_id, (case when occurred_at_ms < $2 then 1 when occurred_at_ms < $3 then 2 when occurred_at_ms < $4 then 3 when occurred_at_ms < $5 then 4 when occurred_at_ms < $6 then 5 when occurred_at_ms < $7 then 6 when occurred_at_ms < $8 then 7 when occurred_at_ms < $9 then 8 when occurred_at_ms < $10 then 9 when occurred_at_ms < $11 then 10 when occurred_at_ms < $12 then 11 else 12 end)::bigint as month, sum(credits_cents)::bigint as credits
               from ledger_entries
              where occurred_at_ms >= $1 and occurred_at_ms < $13
                and site_id in (select id from sites)
              group by site_id, month
              order by site_id, month";
        let mut query = sqlx::query(sql);
        for b in bounds {
            query = query.bind(b.0);
        }
        let rows = query.fetch_all(&self.read_pool).await.map_err(db)?;
        rows.iter()
            .map(|r| {
                let id: String = r.col("site_id")?;
                let site = SiteId::parse(id.clone()).map_err(|e| StoreError::Corrupt {
                    at: format!("site {id}"),
                    detail: e.to_string(),
                })?;
                let month: i64 = r.col("month")?;
                let month = u8::try_from(month)
                    .ok()
                    .filter(|m| (1..=12).contains(m))
                    .ok_or_else(|| StoreError::Corrupt {
                        at: format!("site {id}"),
                        detail: format!("month {month} out of range"),
                    })?;
                Ok((site, month, Credits::from_cents(r.col::<i64>("credits")?)))
            })
            .collect()
    }
}
