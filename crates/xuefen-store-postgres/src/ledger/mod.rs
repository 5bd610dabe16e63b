//! The ledger on PostgreSQL: ingest (`ingest`), the lookups it plans
//! with (`lookups`), entries by event, chains and their heads.

use async_trait::async_trait;
use futures::stream::BoxStream;
use xuefen_core::entry::Entry;
use xuefen_core::event::{Event, Millis};
use xuefen_core::ids::{EventId, LearnerId, LocalAccount, SiteId};
use xuefen_core::plan::{Head, Outcome};
use xuefen_store::{ChainLink, LedgerScan, LedgerStore, Result, StoreError};

use crate::{Col, PgStore, db};
use xuefen_store::records::EntryRecord;

mod chain_read;
pub(crate) mod ingest;
pub(crate) mod lookups;

#[async_trait]
impl LedgerStore for PgStore {
    async fn ingest(&self, events: &[Event], now: Millis) -> Result<Vec<Outcome>> {
        // The transaction runs to its end in its own task: a caller that
        // stops waiting (a client gone, a timeout) must not drop it halfway
        // through a `COPY` on a connection that goes back to the pool.
        let store = self.clone();
        let events = events.to_vec();
        tokio::spawn(async move { store.ingest_to_end(&events, now).await })
            .await
            .map_err(|e| StoreError::Database(Box::new(e)))?
    }

    async fn entry_by_event(&self, site: &SiteId, event: &EventId) -> Result<Option<Entry>> {
        let row = sqlx::query(concat!(
            "select ",
            entry_columns!(),
            " from ledger_entries l where site_id = $1 and event_id = $2 and kind <> 6"
        ))
        .bind(site.as_str())
        .bind(event.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(|r| EntryRecord::read(&r).and_then(Entry::try_from)).transpose()
    }

    async fn heads(&self) -> Result<Vec<(u32, Head)>> {
        let rows = sqlx::query(HEADS_SQL).fetch_all(&self.pool).await.map_err(db)?;
        heads_of(&rows)
    }

    async fn stray_entry(&self, chains: u32) -> Result<Option<(i64, i64)>> {
        let row = sqlx::query(
            "select chain_id::bigint as chain_id, seq from ledger_entries where chain_id < 0 or chain_id >= $1 limit 1",
        )
        .bind(i64::from(chains))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(|r| Ok((r.col("chain_id")?, r.col("seq")?))).transpose()
    }

    fn chain_count(&self) -> u32 {
        self.chains
    }

    async fn chain_links(&self, chain: u32, after: u64, upto: u64) -> Result<Vec<ChainLink>> {
        self.copy_chain_links(chain, after, upto).await
    }

    async fn ranges_links(&self, ranges: &[(u32, u64, u64)]) -> Result<Vec<Vec<ChainLink>>> {
        self.copy_ranges_links(ranges).await
    }

    async fn account_learners(
        &self,
        accounts: &[(SiteId, LocalAccount)],
    ) -> Result<Vec<((SiteId, LocalAccount), LearnerId)>> {
        let mut found = Vec::with_capacity(accounts.len());
        let mut missing = Vec::new();
        for key in accounts {
            match self.known.accounts.get(key) {
                Some((learner, _)) => found.push((key.clone(), learner)),
                None => missing.push(key.clone()),
            }
        }
        if !missing.is_empty() {
            for (key, learner, _) in self.read_learners(&self.pool, &missing, &[]).await.map_err(db)? {
                if let Some(key) = key {
                    found.push((key, learner));
                }
            }
        }
        Ok(found)
    }

    async fn event_chains(&self, keys: &[(SiteId, EventId)]) -> Result<Vec<((SiteId, EventId), u32)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (sites, ids): (Vec<&str>, Vec<&str>) = keys.iter().map(|(s, e)| (s.as_str(), e.as_str())).unzip();
        let rows = sqlx::query(
            "select l.site_id, l.event_id, l.chain_id
               from unnest($1::text[], $2::text[]) as k(k_site, k_event)
               cross join lateral (select site_id, event_id, chain_id from ledger_entries e
                                    where e.site_id = k.k_site and e.event_id = k.k_event) l",
        )
        .bind(&sites)
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut found = Vec::with_capacity(rows.len());
        for row in rows {
            let (site, event, chain): (String, String, i32) =
                (row.col("site_id")?, row.col("event_id")?, row.col("chain_id")?);
            if let (Ok(site), Ok(event), Ok(chain)) = (SiteId::parse(site), EventId::parse(event), u32::try_from(chain))
            {
                found.push(((site, event), chain));
            }
        }
        Ok(found)
    }

    async fn ledger_scan(&self) -> Result<Option<LedgerScan>> {
        self.scan_ledger().await.map(Some)
    }

    fn chain_entries(&self, chain: u32) -> BoxStream<'_, Result<Entry>> {
        // A binary `COPY` streams the rows: memory stays flat however long
        // the chain is.
        self.copy_chain_entries(chain)
    }
}

/// The chain heads in chain order.
pub(crate) const HEADS_SQL: &str = "select chain_id, seq, hash from chain_heads order by chain_id";

/// The rows of [`HEADS_SQL`] as heads.
pub(crate) fn heads_of(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<(u32, Head)>> {
    rows.iter()
        .map(|r| {
            let (chain, seq, hash): (i32, i64, Vec<u8>) = (r.col("chain_id")?, r.col("seq")?, r.col("hash")?);
            let corrupt = |d: &str| StoreError::Corrupt {
                at: format!("chain head {chain}"),
                detail: d.into(),
            };
            Ok((
                u32::try_from(chain).map_err(|_| corrupt("negative chain"))?,
                Head {
                    seq: u64::try_from(seq).map_err(|_| corrupt("negative seq"))?,
                    hash: hash.try_into().map_err(|_| corrupt("hash is not 32 bytes"))?,
                },
            ))
        })
        .collect()
}
