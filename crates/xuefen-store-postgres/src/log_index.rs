//! The log index of ledger positions on PostgreSQL: one statement, one
//! probe of `log_segments`' `(chain_id, first_seq)` index per position.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use xuefen_core::ids::Position;
use xuefen_store::Result;
use xuefen_store::bank::segment_from_row;
use xuefen_store::log_index::{LogIndexStore, index_in};

use crate::{Col, PgStore, db};

#[async_trait]
impl LogIndexStore for PgStore {
    async fn log_indexes(&self, positions: &[Position]) -> Result<HashMap<Position, u64>> {
        let wanted: BTreeSet<Position> = positions.iter().copied().collect();
        if wanted.is_empty() {
            return Ok(HashMap::new());
        }
        let chains: Vec<i32> = wanted.iter().map(|p| p.chain as i32).collect();
        let seqs: Vec<i64> = wanted.iter().map(|p| p.seq as i64).collect();
        // For each position, the segment of its chain that starts at or
        // before it; whether the position lies inside it is checked below.
        let rows = sqlx::query(
            "select p.seq, s.start, s.chain_id::bigint, s.first_seq, s.count
               from unnest($1::int[], $2::bigint[]) as p(chain, seq)
               cross join lateral (
                 select start, chain_id, first_seq, count from log_segments
                  where chain_id = p.chain and first_seq <= p.seq
                  order by first_seq desc limit 1) s",
        )
        .bind(&chains)
        .bind(&seqs)
        .fetch_all(&self.read_pool)
        .await
        .map_err(db)?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.col(0)?;
            let segment = segment_from_row((row.col(1)?, row.col(2)?, row.col(3)?, row.col(4)?))?;
            let p = Position {
                chain: segment.chain,
                seq: seq as u64,
            };
            if let Some(index) = index_in(&segment, p) {
                out.insert(p, index);
            }
        }
        Ok(out)
    }
}
