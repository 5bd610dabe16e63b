//! The log index of ledger positions on SQLite: one statement, one probe
//! of `log_segments`' `(chain_id, first_seq)` index per position (the
//! positions are passed as one JSON array of `[chain, seq]` pairs).

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use sqlx::Row;
use xuefen_core::ids::Position;
use xuefen_store::Result;
use xuefen_store::bank::segment_from_row;
use xuefen_store::log_index::{LogIndexStore, index_in};

use crate::{SqliteStore, db, unreadable};

#[async_trait]
impl LogIndexStore for SqliteStore {
    async fn log_indexes(&self, positions: &[Position]) -> Result<HashMap<Position, u64>> {
        let wanted: BTreeSet<Position> = positions.iter().copied().collect();
        if wanted.is_empty() {
            return Ok(HashMap::new());
        }
        // Integers only, so the JSON is written directly.
        let pairs: Vec<String> = wanted.iter().map(|p| format!("[{},{}]", p.chain, p.seq)).collect();
        let json = format!("[{}]", pairs.join(","));
        // For each position, the start of the segment of its chain that
        // begins at or before it (the limit-1 probe of the index); whether
        // the position lies inside it is checked below.
        let rows = sqlx::query(
            "with p(chain, seq) as (
                 select json_extract(value, '$[0]'), json_extract(value, '$[1]') from json_each(?1)),
             c(seq, start) as (
                 select p.seq, (select s.start from log_segments s
                                 where s.chain_id = p.chain and s.first_seq <= p.seq
                                 order by s.first_seq desc limit 1)
                   from p)
             select c.seq, s.start, s.chain_id, s.first_seq, s.count
               from c join log_segments s on s.start = c.start",
        )
        .bind(json)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in rows {
            let read = |e: sqlx::Error| unreadable("log_segments", e);
            let seq: i64 = row.try_get(0).map_err(read)?;
            let segment = segment_from_row((
                row.try_get(1).map_err(read)?,
                row.try_get(2).map_err(read)?,
                row.try_get(3).map_err(read)?,
                row.try_get(4).map_err(read)?,
            ))?;
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
