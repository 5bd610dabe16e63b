//! Verifies a whole stored ledger, chain by chain, streaming.

use futures::StreamExt;
use xuefen_core::bank::Checkpoint;
use xuefen_core::ids::Position;
use xuefen_core::merkle;
use xuefen_core::plan::Head;
use xuefen_core::site_log::ALLIANCE_CHAIN;
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
/// It may run while the service writes: each chain is checked up to the
/// head read at the start (entries and heads are written in one
/// transaction, so every entry up to that head is committed). Entries past
/// that head are newer commits when the head has moved since; when it has
/// not, they were put there behind the service's back, and the chain fails
/// at its recorded head.
pub async fn verify_ledger(
    store: &dyn Store,
    progress: impl FnMut(&VerifyReport),
) -> Result<VerifyReport, VerifyFailure> {
    verify_ledger_under(store, None, progress).await
}

/// As [`verify_ledger`], and in the same pass recomputes the Merkle root of
/// every chain at the size `checkpoint` binds, which must be its root and
/// head there (`docs/ledger-format.md`, sections 7 and 8).
pub async fn verify_ledger_under(
    store: &dyn Store,
    checkpoint: Option<&Checkpoint>,
    mut progress: impl FnMut(&VerifyReport),
) -> Result<VerifyReport, VerifyFailure> {
    let mut report = VerifyReport::default();
    for (chain, head) in store.heads().await.map_err(VerifyFailure::Store)? {
        let bound = match checkpoint {
            None => None,
            Some(cp) => Some((
                cp.number,
                *cp.chains.get(chain as usize).ok_or_else(|| {
                    VerifyFailure::Checkpoint(format!("checkpoint {} has no chain {chain}", cp.number))
                })?,
            )),
        };
        let mut frontier = merkle::Frontier::new();
        let mut verifier = ChainVerifier::new(chain);
        let mut entries = store.chain_entries(chain);
        let mut seen = 0u64;
        let mut beyond_head = false;
        while let Some(entry) = entries.next().await {
            let entry = match entry {
                Ok(e) => e,
                Err(StoreError::Corrupt { at, detail }) => {
                    return Err(VerifyFailure::Unreadable(format!(
                        "{at}: stored entry is not valid: {detail}"
                    )));
                }
                Err(e) => return Err(VerifyFailure::Store(e)),
            };
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
            if let Some((number, state)) = bound
                && seen <= state.size
            {
                frontier.push(merkle::leaf_hash(&entry.hash));
                if seen == state.size && (frontier.root() != state.root || entry.hash != state.head) {
                    return Err(VerifyFailure::Checkpoint(format!(
                        "checkpoint {number}: chain {chain} at size {} does not match its entries (root or head differs)",
                        state.size
                    )));
                }
            }
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
        if let Some((number, state)) = bound
            && seen < state.size
        {
            return Err(VerifyFailure::Checkpoint(format!(
                "checkpoint {number} binds {} entries of chain {chain}, the chain holds {seen} (entries removed)",
                state.size
            )));
        }
        report.chains += 1;
        report.entries += seen;
        progress(&report);
    }
    // The alliance chain of site changes, by the same rule.
    let head = store.alliance_head().await.map_err(VerifyFailure::Store)?;
    let mut verifier = ChainVerifier::new(ALLIANCE_CHAIN);
    let mut entries = store.alliance_entries();
    let mut seen = 0u64;
    while let Some(entry) = entries.next().await {
        let entry = match entry {
            Ok(e) => e,
            Err(StoreError::Corrupt { at, detail }) => {
                return Err(VerifyFailure::Unreadable(format!(
                    "{at}: stored site change is not valid: {detail}"
                )));
            }
            Err(e) => return Err(VerifyFailure::Store(e)),
        };
        verifier.push_sealed(entry.position, &entry.prev_hash, &entry.hash, &entry.change.encode())?;
        seen += 1;
    }
    verifier.finish(head.seq, &head.hash)?;
    report.site_changes = seen;
    progress(&report);
    Ok(report)
}

/// The head of `chain` as it is now.
async fn head_now(store: &dyn Store, chain: u32) -> Result<Option<Head>, VerifyFailure> {
    let heads = store.heads().await.map_err(VerifyFailure::Store)?;
    Ok(heads.into_iter().find(|(c, _)| *c == chain).map(|(_, h)| h))
}
