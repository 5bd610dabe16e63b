//! The ledger on SQLite: ingest (`ingest`), the lookups it plans with
//! (`lookups`), entries by event, chains and their heads.

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use xuefen_core::entry::Entry;
use xuefen_core::event::{Event, Millis};
use xuefen_core::ids::{EventId, SiteId};
use xuefen_core::plan::{Head, Outcome};
use xuefen_store::{ChainLink, LedgerStore, Result, StoreError};

use crate::ledger::ingest::ingest_batch;
use crate::rows::entry_from_row;
use crate::{SqliteStore, db, run_to_end, unreadable};

pub(crate) mod ingest;
pub(crate) mod lookups;

pub(crate) fn head_from_row(row: &SqliteRow) -> Result<(u32, Head)> {
    let chain: i64 = row.try_get("chain_id").map_err(|e| unreadable("chain_heads", e))?;
    let corrupt = |d: &str| StoreError::Corrupt {
        at: format!("chain head {chain}"),
        detail: d.into(),
    };
    let seq: i64 = row.try_get("seq").map_err(|e| corrupt(&e.to_string()))?;
    let hash: Vec<u8> = row.try_get("hash").map_err(|e| corrupt(&e.to_string()))?;
    Ok((
        u32::try_from(chain).map_err(|_| corrupt("chain out of range"))?,
        Head {
            seq: u64::try_from(seq).map_err(|_| corrupt("negative seq"))?,
            hash: hash.try_into().map_err(|_| corrupt("hash is not 32 bytes"))?,
        },
    ))
}

#[async_trait]
impl LedgerStore for SqliteStore {
    async fn ingest(&self, events: &[Event], now: Millis) -> Result<Vec<Outcome>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let pool = self.pool.clone();
        let events = events.to_vec();
        run_to_end(async move { ingest_batch(&pool, &events, now).await }).await
    }

    async fn entry_by_event(&self, site: &SiteId, event: &EventId) -> Result<Option<Entry>> {
        let row = sqlx::query(concat!(
            "select ",
            entry_columns!(),
            " from ledger_entries l where site_id = ?1 and event_id = ?2 and kind <> 6"
        ))
        .bind(site.as_str())
        .bind(event.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(entry_from_row).transpose()
    }

    async fn heads(&self) -> Result<Vec<(u32, Head)>> {
        let rows = sqlx::query("select chain_id, seq, hash from chain_heads order by chain_id")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(head_from_row).collect()
    }

    async fn stray_entry(&self, chains: u32) -> Result<Option<(i64, i64)>> {
        let row = sqlx::query("select chain_id, seq from ledger_entries where chain_id < 0 or chain_id >= ?1 limit 1")
            .bind(i64::from(chains))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|r| Ok((r.try_get("chain_id").map_err(db)?, r.try_get("seq").map_err(db)?)))
            .transpose()
    }

    fn chain_count(&self) -> u32 {
        self.chains
    }

    async fn chain_links(&self, chain: u32, after: u64, upto: u64) -> Result<Vec<ChainLink>> {
        let rows = sqlx::query(
            "select seq, prev_hash, hash from ledger_entries
              where chain_id = ?1 and seq > ?2 and seq <= ?3 order by seq",
        )
        .bind(i64::from(chain))
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::try_from(upto).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get("seq").map_err(db)?;
                let prev: Vec<u8> = row.try_get("prev_hash").map_err(db)?;
                let hash: Vec<u8> = row.try_get("hash").map_err(db)?;
                ChainLink::from_row(seq, prev, hash).ok_or_else(|| StoreError::Corrupt {
                    at: format!("chain {chain} position {seq}"),
                    detail: "negative seq, or a hash that is not 32 bytes".into(),
                })
            })
            .collect()
    }

    /// SQLite has one writer at a time (`BEGIN IMMEDIATE`).
    fn parallel_writes(&self) -> bool {
        false
    }

    fn chain_entries(&self, chain: u32) -> BoxStream<'_, Result<Entry>> {
        // Rows are stepped one at a time through a bounded channel from the
        // connection's worker: memory stays flat however long the chain is.
        // In WAL mode this read does not hold up ingestion.
        sqlx::query(concat!(
            "select ",
            entry_columns!(),
            " from ledger_entries l where chain_id = ?1 order by seq"
        ))
        .bind(i64::from(chain))
        .fetch(&self.pool)
        .map_err(db)
        .and_then(|r| async move { entry_from_row(&r) })
        .boxed()
    }
}
