//! The storage port of a lookup the learner's record needs: the log index
//! of given ledger positions (`docs/ledger-format.md`, section 7), read
//! from `log_segments` by its `(chain_id, first_seq)` key: one probe per
//! position, never a read of the whole log.

use std::collections::HashMap;

use async_trait::async_trait;
use xuefen_core::ids::Position;

use crate::Result;
use crate::bank::Segment;

#[async_trait]
pub trait LogIndexStore: Send + Sync {
    /// The log index of each of `positions` that is sealed into the log
    /// (positions not sealed, or of no entry, are absent).
    async fn log_indexes(&self, positions: &[Position]) -> Result<HashMap<Position, u64>>;
}

/// The log index of `p` within `segment`, the segment of `p`'s chain with
/// the largest `first_seq <= p.seq` (`None` when `p` lies past its end).
pub fn index_in(segment: &Segment, p: Position) -> Option<u64> {
    (segment.chain == p.chain && p.seq >= segment.first_seq && p.seq - segment.first_seq < segment.count)
        .then(|| segment.start + (p.seq - segment.first_seq))
}
