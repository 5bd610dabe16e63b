//! The ledger: ingest, entries by event, chains and their heads.

use async_trait::async_trait;
use futures::stream::BoxStream;
use xuefen_core::entry::Entry;
use xuefen_core::event::{Event, Millis};
use xuefen_core::ids::{EventId, LearnerId, LocalAccount, SiteId};
use xuefen_core::plan::{Head, Outcome};

use crate::Result;

pub mod ingest;

/// The ledger port: ingest, entries by event, chains and their heads.
#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// Plans and writes a batch of events in one transaction, returning one
    /// outcome per event. Durable when it returns `Ok`.
    async fn ingest(&self, events: &[Event], now: Millis) -> Result<Vec<Outcome>>;
    /// The entry written for an event.
    async fn entry_by_event(&self, site: &SiteId, event: &EventId) -> Result<Option<Entry>>;
    /// The recorded head of every chain, in chain order.
    async fn heads(&self) -> Result<Vec<(u32, Head)>>;
    /// How many chains the ledger has (fixed when the schema is created).
    fn chain_count(&self) -> u32;
    /// Whether transactions on disjoint chains can commit side by side. When
    /// they cannot (one writer at a time), the committer keeps one queue.
    fn parallel_writes(&self) -> bool {
        true
    }

    /// Routing hint for the group committer: the learners linked to these
    /// accounts (unknown accounts are left out). A link never changes once
    /// made, so a caller may cache the answer. Backends that write one
    /// transaction at a time never route, and need not answer.
    async fn account_learners(
        &self,
        accounts: &[(SiteId, LocalAccount)],
    ) -> Result<Vec<((SiteId, LocalAccount), LearnerId)>> {
        let _ = accounts;
        Ok(Vec::new())
    }
    /// Routing hint for the group committer: the chains holding these events
    /// (unknown events are left out). An entry never moves once written.
    async fn event_chains(&self, keys: &[(SiteId, EventId)]) -> Result<Vec<((SiteId, EventId), u32)>> {
        let _ = keys;
        Ok(Vec::new())
    }
    /// The entries of one chain in sequence order, streamed.
    fn chain_entries(&self, chain: u32) -> BoxStream<'_, Result<Entry>>;
    /// One ledger entry whose chain is outside `0 .. chains`, as
    /// `(chain, seq)`, if any: an entry no chain verification would read.
    async fn stray_entry(&self, chains: u32) -> Result<Option<(i64, i64)>>;
    /// The links of the entries of `chain` with `after < seq <= upto`, in
    /// sequence order: only what the log is recomputed from, no entry is
    /// decoded.
    async fn chain_links(&self, chain: u32, after: u64, upto: u64) -> Result<Vec<ChainLink>>;
    /// The links of several ranges at once, as [`LedgerStore::chain_links`]
    /// of each `(chain, after, upto)`, in the order of `ranges`. A backend
    /// may read them in one pass over the rows (the ranges of one stretch of
    /// the log lie on the same pages).
    async fn ranges_links(&self, ranges: &[(u32, u64, u64)]) -> Result<Vec<Vec<ChainLink>>> {
        let mut out = Vec::with_capacity(ranges.len());
        for &(chain, after, upto) in ranges {
            out.push(self.chain_links(chain, after, upto).await?);
        }
        Ok(out)
    }
    /// Every entry of the ledger in storage order, with the chain heads of
    /// the same snapshot: the read of a verifier that takes the whole ledger
    /// at once, visiting each stored page once rather than once per chain
    /// whose rows lie on it. `None` when the backend has no such read (the
    /// verifier then walks chain by chain with [`LedgerStore::chain_entries`]).
    async fn ledger_scan(&self) -> Result<Option<LedgerScan>> {
        Ok(None)
    }
}

/// What [`LedgerStore::ledger_scan`] reads: the heads, then the entries.
pub struct LedgerScan {
    /// The recorded head of every chain, in chain order, in the snapshot the
    /// entries are read in: no entry of the scan is newer than its head.
    pub heads: Vec<(u32, Head)>,
    /// The entries in the order they are stored, in batches. Within a chain
    /// the order is mostly, not always, sequence order. Dropping the stream
    /// ends the read.
    pub entries: BoxStream<'static, Result<Vec<Entry>>>,
}

impl std::fmt::Debug for LedgerScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerScan")
            .field("heads", &self.heads)
            .finish_non_exhaustive()
    }
}

/// An entry's place in its chain: its sequence number, the hash it follows
/// and its own hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainLink {
    pub seq: u64,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

impl ChainLink {
    /// A stored row's link; `None` when the row cannot be an entry's
    /// (negative seq, hashes not 32 bytes).
    pub fn from_row(seq: i64, prev_hash: Vec<u8>, hash: Vec<u8>) -> Option<Self> {
        Some(Self {
            seq: u64::try_from(seq).ok()?,
            prev_hash: prev_hash.try_into().ok()?,
            hash: hash.try_into().ok()?,
        })
    }
}
