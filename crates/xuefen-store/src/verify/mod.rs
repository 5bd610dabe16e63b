//! Verifies a whole stored ledger, chain by chain, streaming.

use futures::StreamExt;

use xuefen_core::entry::Entry;
use xuefen_core::ids::Position;
use xuefen_core::plan::Head;
use xuefen_core::site_log::ALLIANCE_CHAIN;
use xuefen_core::tlog::LogCheckpoint;
use xuefen_core::verify::{ChainVerifier, Fault, VerifyError};

use crate::{Store, StoreError};

/// What a successful verification covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Learner chains verified.
    pub chains: u64,
    /// Entries in them.
    pub entries: u64,
    /// Site changes in the alliance chain.
    pub site_changes: u64,
}

/// Why verification failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    /// The ledger is not what the service wrote; names the first bad position.
    #[error(transparent)]
    Chain(#[from] VerifyError),
    /// A stored row cannot be an entry at all.
    #[error("{0}")]
    Unreadable(String),
    /// A checkpoint does not match the entries it claims to bind.
    #[error("{0}")]
    Checkpoint(String),
    #[error(transparent)]
    Store(StoreError),
}

/// Walks every chain from genesis and checks it against its recorded head.
/// `progress` is called after each chain with the running totals.
///
/// Where the store has a [`ledger_scan`](crate::LedgerStore::ledger_scan),
/// the whole ledger is read once in storage order, in the snapshot its
/// heads are read in; else (or when its rows lie too far from chain order)
/// chain by chain, as below.
///
/// It may run while the service writes: each chain is checked up to the
/// head read at the start (entries and heads are written in one
/// transaction, so every entry up to that head is committed). Entries past
/// that head are newer commits when the head has moved since; when it has
/// not, they were put there behind the service's back, and the chain fails
/// at its recorded head.
pub async fn verify_ledger(
    store: &dyn Store,
    mut progress: impl FnMut(&VerifyReport),
) -> Result<VerifyReport, VerifyFailure> {
    let mut report = VerifyReport::default();
    // One read of the whole ledger where the backend has it; else (or when
    // its rows are too far from chain order) chain by chain.
    let (heads, scan) = match store.ledger_scan().await.map_err(VerifyFailure::Store)? {
        Some(scan) => (scan.heads, Some(scan.entries)),
        None => (store.heads().await.map_err(VerifyFailure::Store)?, None),
    };
    // One head row per chain 0 .. chain_count, no more, no fewer: a chain
    // without its head row would otherwise not be verified at all.
    let chains = store.chain_count();
    let listed: std::collections::BTreeSet<u32> = heads.iter().map(|(c, _)| *c).collect();
    if let Some(extra) = listed.iter().find(|c| **c >= chains) {
        return Err(VerifyFailure::Unreadable(format!(
            "chain_heads: a head row for chain {extra}, but the ledger has chains 0 to {}",
            chains.saturating_sub(1)
        )));
    }
    if let Some(missing) = (0..chains).find(|c| !listed.contains(c)) {
        return Err(VerifyFailure::Unreadable(format!(
            "chain_heads: chain {missing} has no head row (removed?)"
        )));
    }
    if let Some((chain, seq)) = store.stray_entry(chains).await.map_err(VerifyFailure::Store)? {
        return Err(VerifyFailure::Unreadable(format!(
            "entry {chain}:{seq} is in no chain of the ledger (chains are 0 to {})",
            chains.saturating_sub(1)
        )));
    }
    let scanned = match scan {
        Some(entries) => scan_chains(&heads, entries, SCAN_PENDING_MAX).await?,
        None => None,
    };
    if let Some(counts) = scanned {
        for seen in counts {
            report.chains += 1;
            report.entries += seen;
            progress(&report);
        }
    } else {
        // Chains are independent: read several at once, each streamed, and
        // report in chain order (the first bad chain is named).
        let mut checks = futures::stream::iter(heads)
            .map(|(chain, head)| async move { verify_chain(store, chain, head).await })
            .buffered(CHAINS_IN_PARALLEL);
        while let Some(seen) = checks.next().await {
            report.chains += 1;
            report.entries += seen?;
            progress(&report);
        }
    }
    // The alliance chain of site changes, by the same rule.
    let head = store.alliance_head().await.map_err(VerifyFailure::Store)?;
    let mut verifier = ChainVerifier::new(ALLIANCE_CHAIN);
    let mut entries = store.alliance_entries();
    let mut seen = 0u64;
    while let Some(entry) = entries.next().await {
        let entry = entry.map_err(|e| read_failure(e, "site change"))?;
        verifier.push_sealed(entry.position, &entry.prev_hash, &entry.hash, &entry.change.encode())?;
        seen += 1;
    }
    verifier.finish(head.seq, &head.hash)?;
    report.site_changes = seen;
    progress(&report);
    Ok(report)
}

/// [`verify_ledger`] and [`verify_log`] side by side (they read different
/// rows, and each waits on the database part of the time), with the
/// verdict of the two run one after the other: a fault of the chains comes
/// first, so that an altered entry is named as such rather than as the
/// log's tile or segment it makes differ. When the chains fail first, the
/// log is not waited for.
pub async fn verify_all(
    store: &dyn Store,
    key: Option<&ed25519_dalek::VerifyingKey>,
    held: Option<&LogCheckpoint>,
) -> Result<(VerifyReport, LogReport), VerifyFailure> {
    let chains = verify_ledger(store, |_| {});
    let log = verify_log(store, key, held);
    tokio::pin!(chains, log);
    tokio::select! {
        biased;
        report = &mut chains => Ok((report?, log.await?)),
        log = &mut log => {
            let report = chains.await?;
            Ok((report, log?))
        }
    }
}

/// A failed read of stored `what`s: a row that cannot be one is named as
/// such, anything else is the store's error.
fn read_failure(e: StoreError, what: &str) -> VerifyFailure {
    match e {
        StoreError::Corrupt { at, detail } => {
            VerifyFailure::Unreadable(format!("{at}: stored {what} is not valid: {detail}"))
        }
        e => VerifyFailure::Store(e),
    }
}

/// Chains verified at once, each on a connection of its own.
const CHAINS_IN_PARALLEL: usize = 4;

/// Entries of a [`LedgerStore::ledger_scan`](crate::LedgerStore::ledger_scan)
/// held at once because they came before the entries they follow. Rows
/// written side by side by several transactions lie a few pages apart (a
/// million-entry ledger written by four clients needed about 4,000); a
/// ledger whose rows were moved far from chain order (a table rewritten in
/// another order) is walked chain by chain instead.
const SCAN_PENDING_MAX: usize = 65_536;

/// One chain's state in [`scan_chains`].
struct ScanChain {
    chain: u32,
    verifier: ChainVerifier,
    head: Head,
    /// Entries read before the one they follow, by sequence number.
    pending: std::collections::BTreeMap<u64, Entry>,
    /// The chain's first fault: the rest of it is not checked.
    fault: Option<VerifyError>,
    /// An entry past the head was read (in the heads' own snapshot).
    beyond_head: bool,
    seen: u64,
}

impl ScanChain {
    /// Checks `entry`, the next of the chain, and the held ones after it.
    /// Returns how many held entries it used.
    fn push(&mut self, entry: &Entry) -> usize {
        if let Err(e) = self.verifier.push(entry) {
            self.fault = Some(e);
            return 0;
        }
        self.seen += 1;
        let mut used = 0;
        while let Some(next) = self.pending.remove(&self.verifier.next_seq()) {
            used += 1;
            if let Err(e) = self.verifier.push(&next) {
                self.fault = Some(e);
                break;
            }
            self.seen += 1;
        }
        if self.fault.is_some() {
            used += self.pending.len();
            self.pending.clear();
        }
        used
    }

    /// The chain's verdict once every entry is read, as the walk in chain
    /// order gives it: the first fault, an entry missing before one held, an
    /// entry past the head, or the head itself.
    fn finish(mut self) -> Result<u64, VerifyError> {
        if let Some(fault) = self.fault {
            return Err(fault);
        }
        if let Some((_, first)) = self.pending.pop_first() {
            // Not the next entry: the verifier names the gap.
            self.verifier.push(&first)?;
        }
        if self.beyond_head {
            return Err(VerifyError {
                position: Position {
                    chain: self.chain,
                    seq: self.head.seq.max(1),
                },
                fault: Fault::HeadMismatch {
                    head_seq: self.head.seq,
                },
            });
        }
        self.verifier.finish(self.head.seq, &self.head.hash)?;
        Ok(self.seen)
    }
}

/// Checks every chain from one read of the whole ledger in storage order:
/// each entry goes to its chain's verifier, and one that comes before the
/// entry it follows is held until that one is read. The entries of each
/// chain, one per chain in chain order; `None` when more than
/// `pending_max` entries would be held at once (the caller walks chain by
/// chain). The first bad chain is named, as by the walk.
async fn scan_chains(
    heads: &[(u32, Head)],
    mut entries: futures::stream::BoxStream<'static, Result<Vec<Entry>, StoreError>>,
    pending_max: usize,
) -> Result<Option<Vec<u64>>, VerifyFailure> {
    let mut chains: Vec<ScanChain> = heads
        .iter()
        .map(|(chain, head)| ScanChain {
            chain: *chain,
            verifier: ChainVerifier::new(*chain),
            head: *head,
            pending: std::collections::BTreeMap::new(),
            fault: None,
            beyond_head: false,
            seen: 0,
        })
        .collect();
    let mut pending = 0usize;
    while let Some(batch) = entries.next().await {
        let batch = batch.map_err(|e| read_failure(e, "entry"))?;
        for entry in batch {
            let Position { chain, seq } = entry.position;
            // The heads are those of chains 0 .. n, in order (checked).
            let Some(state) = usize::try_from(chain).ok().and_then(|c| chains.get_mut(c)) else {
                return Err(VerifyFailure::Unreadable(format!(
                    "entry {chain}:{seq} is in no chain of the ledger (chains are 0 to {})",
                    heads.len().saturating_sub(1)
                )));
            };
            if state.fault.is_some() {
                continue;
            }
            if seq > state.head.seq {
                state.beyond_head = true;
            } else if seq <= state.verifier.next_seq() {
                // The next entry, or one read twice (the verifier names it).
                pending -= state.push(&entry);
            } else {
                state.pending.insert(seq, entry);
                pending += 1;
                if pending > pending_max {
                    return Ok(None);
                }
            }
        }
    }
    let mut counts = Vec::with_capacity(chains.len());
    for state in chains {
        counts.push(state.finish()?);
    }
    Ok(Some(counts))
}

/// Verifies one chain up to `head`; the number of entries it holds.
async fn verify_chain(store: &dyn Store, chain: u32, head: Head) -> Result<u64, VerifyFailure> {
    let mut verifier = ChainVerifier::new(chain);
    let mut entries = store.chain_entries(chain);
    let mut seen = 0u64;
    let mut beyond_head = false;
    while let Some(entry) = entries.next().await {
        let entry = entry.map_err(|e| read_failure(e, "entry"))?;
        if entry.position.chain != chain {
            return Err(VerifyFailure::Unreadable(format!(
                "{}: entry listed under chain {chain}",
                Position {
                    chain: entry.position.chain,
                    seq: entry.position.seq
                }
            )));
        }
        if entry.position.seq > head.seq {
            beyond_head = true;
            break;
        }
        verifier.push(&entry)?;
        seen += 1;
    }
    drop(entries);
    if beyond_head && head_now(store, chain).await? == Some(head) {
        return Err(VerifyFailure::Chain(VerifyError {
            position: Position {
                chain,
                seq: head.seq.max(1),
            },
            fault: Fault::HeadMismatch { head_seq: head.seq },
        }));
    }
    verifier.finish(head.seq, &head.hash)?;
    Ok(seen)
}

/// The head of `chain` as it is now.
async fn head_now(store: &dyn Store, chain: u32) -> Result<Option<Head>, VerifyFailure> {
    let heads = store.heads().await.map_err(VerifyFailure::Store)?;
    Ok(heads.into_iter().find(|(c, _)| *c == chain).map(|(_, h)| h))
}

mod log;

pub use self::log::{LogReport, verify_log};

#[cfg(test)]
mod tests {
    use super::*;
    use xuefen_core::entry::GENESIS;
    use xuefen_core::event::{Millis, Reason};
    use xuefen_core::ids::LearnerId;

    /// A chain of `len` sealed entries.
    fn chain(chain: u32, len: u64) -> Vec<Entry> {
        let mut prev = GENESIS;
        (1..=len)
            .map(|seq| {
                let reason = Reason::parse("test", "reason").expect("reason");
                let e = xuefen_core::entry::erasure_entry(
                    &[7; 32],
                    Position { chain, seq },
                    prev,
                    reason,
                    Millis(1_700_000_000_000),
                    [seq as u8; 16],
                    LearnerId::from_random([chain as u8; 16]),
                );
                prev = e.hash;
                e
            })
            .collect()
    }

    fn head(entries: &[Entry]) -> Head {
        entries.last().map_or(Head { seq: 0, hash: GENESIS }, |e| Head {
            seq: e.position.seq,
            hash: e.hash,
        })
    }

    /// Runs [`scan_chains`] over `order` (entries in "storage" order) in batches of 3.
    fn scan(heads: &[(u32, Head)], order: Vec<Entry>, pending_max: usize) -> Result<Option<Vec<u64>>, VerifyFailure> {
        let batches: Vec<Result<Vec<Entry>, StoreError>> = order.chunks(3).map(|c| Ok(c.to_vec())).collect();
        let entries = futures::stream::iter(batches).boxed();
        futures::executor::block_on(scan_chains(heads, entries, pending_max))
    }

    /// Two chains interleaved, each a little out of order: entry k of a
    /// chain is stored after entry k + 1 for odd k.
    fn interleaved(a: &[Entry], b: &[Entry]) -> Vec<Entry> {
        let mut out = Vec::new();
        for pair in a.chunks(2).zip(b.chunks(2)) {
            for half in [pair.0, pair.1] {
                out.extend(half.iter().rev().cloned());
            }
        }
        out
    }

    #[test]
    fn entries_stored_out_of_chain_order_verify_and_count() {
        let (a, b) = (chain(0, 8), chain(1, 8));
        let heads = [(0, head(&a)), (1, head(&b))];
        let counts = scan(&heads, interleaved(&a, &b), 16).expect("verifies");
        assert_eq!(counts, Some(vec![8, 8]));
    }

    #[test]
    fn too_many_entries_held_gives_the_walk_the_ledger() {
        let (a, b) = (chain(0, 8), chain(1, 8));
        let heads = [(0, head(&a)), (1, head(&b))];
        let mut order: Vec<Entry> = a.iter().rev().cloned().collect();
        order.extend(b.iter().cloned());
        assert_eq!(
            scan(&heads, order.clone(), 6).expect("no fault"),
            None,
            "7 held, at most 6"
        );
        assert_eq!(scan(&heads, order, 7).expect("no fault"), Some(vec![8, 8]));
    }

    #[test]
    fn a_missing_entry_is_the_gap_the_walk_names() {
        let (a, b) = (chain(0, 8), chain(1, 8));
        let heads = [(0, head(&a)), (1, head(&b))];
        let mut order = interleaved(&a, &b);
        order.retain(|e| e.position != Position { chain: 1, seq: 5 });
        let Err(VerifyFailure::Chain(e)) = scan(&heads, order, 16) else {
            panic!("a gap must fail");
        };
        let mut walk = ChainVerifier::new(1);
        let first_fault = b
            .iter()
            .filter(|e| e.position.seq != 5)
            .find_map(|e| walk.push(e).err())
            .expect("the walk fails too");
        assert_eq!(e, first_fault);
    }

    #[test]
    fn the_lowest_bad_chain_is_named_and_an_entry_past_its_head_fails() {
        let (a, b) = (chain(0, 8), chain(1, 8));
        // Chain 1's head says 6: entries 7 and 8 are past it; chain 0's entry 3 is altered.
        let heads_b = [(0, head(&a)), (1, head(&b[..6]))];
        let Err(VerifyFailure::Chain(e)) = scan(&heads_b, interleaved(&a, &b), 16) else {
            panic!("entries past the head must fail");
        };
        assert_eq!(e.position, Position { chain: 1, seq: 6 });
        assert_eq!(e.fault, Fault::HeadMismatch { head_seq: 6 });
        let mut altered = a.clone();
        altered[2].hash[0] ^= 1;
        let Err(VerifyFailure::Chain(e)) = scan(&heads_b, interleaved(&altered, &b), 16) else {
            panic!("an altered entry must fail");
        };
        assert_eq!(e.position.chain, 0, "chain 0 is named before chain 1");
    }

    #[test]
    fn an_entry_of_no_chain_is_unreadable() {
        let a = chain(0, 2);
        let stray = chain(5, 1);
        let heads = [(0, head(&a))];
        let mut order = a.clone();
        order.extend(stray);
        assert!(matches!(scan(&heads, order, 16), Err(VerifyFailure::Unreadable(m)) if m.contains("in no chain")));
    }
}
