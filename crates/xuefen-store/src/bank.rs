//! The credit bank feed over any [`Store`]: making signed checkpoints,
//! paging deposits with their proofs, and consistency proofs between
//! checkpoints.
//!
//! A backend provides the primitive reads and one atomic write per
//! checkpoint; everything decided here is the same on every backend. Several
//! service instances may run the checkpointer at once: each builds the next
//! checkpoint from the latest one it read, and the database's primary key on
//! the checkpoint number lets exactly one of them write it (the others find
//! the number taken and try again on their next tick).

use std::collections::{BTreeMap, HashMap};

use ed25519_dalek::SigningKey;
use xuefen_core::bank::{ChainState, Checkpoint, Decision, DepositProof, is_deposit};
use xuefen_core::entry::{Entry, EntryKind, entry_hash};
use xuefen_core::event::Millis;
use xuefen_core::ids::Position;
use xuefen_core::merkle::{self, Hash, NodeId};

use crate::{Result, Store, StoreError, Written};

/// A checkpoint as stored: the checkpoint and the service's signature of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub checkpoint: Checkpoint,
    pub signature: [u8; 64],
}

/// Everything one checkpoint writes, in one transaction.
#[derive(Debug, Clone)]
pub struct NewCheckpoint {
    pub stored: StoredCheckpoint,
    /// Merkle nodes above the leaves that became complete: `(chain, node, hash)`.
    pub nodes: Vec<(u32, NodeId, Hash)>,
    /// Deposits first covered by this checkpoint, numbered in feed order.
    pub deposits: Vec<(u64, Position)>,
}

/// A deposit as the feed serves it.
#[derive(Debug, Clone)]
pub struct DepositRecord {
    /// Its place in the feed (1, 2, 3, …).
    pub number: u64,
    /// The checkpoint that first covered it.
    pub checkpoint: u64,
    pub entry: Entry,
    /// The learner's keyed real-name hash (HMAC-SHA256 of the identity document).
    pub learner_hash: Option<[u8; 32]>,
}

/// One acknowledgement asked of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckRequest {
    pub deposit: Position,
    pub decision: Decision,
}

/// What became of one acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckOutcome {
    /// Recorded as the ledger entry at `position`.
    Recorded { position: Position },
    /// The same decision was already recorded at `position`: nothing written.
    Duplicate { position: Position },
    /// Another decision was already recorded at `position`; `field` is the
    /// first that differs. Nothing written.
    Conflict { field: &'static str, position: Position },
    /// No deposit (sealed under a checkpoint) is at this position.
    UnknownDeposit,
}

/// Encodes chain states as stored: per chain, `chain u32 ‖ size u64 ‖ head ‖ root`.
pub fn encode_chains(chains: &[ChainState]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chains.len() * 76);
    for c in chains {
        out.extend_from_slice(&c.chain.to_be_bytes());
        out.extend_from_slice(&c.size.to_be_bytes());
        out.extend_from_slice(&c.head);
        out.extend_from_slice(&c.root);
    }
    out
}

/// Decodes [`encode_chains`]; `at` names the checkpoint for errors.
pub fn decode_chains(bytes: &[u8], at: u64) -> Result<Vec<ChainState>> {
    let corrupt = |detail: &str| StoreError::Corrupt {
        at: format!("checkpoint {at}"),
        detail: detail.into(),
    };
    if bytes.len() % 76 != 0 {
        return Err(corrupt("chain states are not a multiple of 76 bytes"));
    }
    bytes
        .chunks_exact(76)
        .map(|c| {
            let (chain, rest) = c.split_first_chunk::<4>().ok_or_else(|| corrupt("short"))?;
            let (size, rest) = rest.split_first_chunk::<8>().ok_or_else(|| corrupt("short"))?;
            let (head, root) = rest.split_first_chunk::<32>().ok_or_else(|| corrupt("short"))?;
            Ok(ChainState {
                chain: u32::from_be_bytes(*chain),
                size: u64::from_be_bytes(*size),
                head: *head,
                root: root.try_into().map_err(|_| corrupt("short"))?,
            })
        })
        .collect()
}

/// A stored checkpoint row, column for column.
#[derive(Debug, Clone, Default)]
pub struct CheckpointRecord {
    pub number: i64,
    pub created_at_ms: i64,
    pub prev_hash: Vec<u8>,
    pub deposits_end: i64,
    pub chains: Vec<u8>,
    pub signature: Vec<u8>,
    pub hash: Vec<u8>,
}

impl From<&StoredCheckpoint> for CheckpointRecord {
    fn from(s: &StoredCheckpoint) -> Self {
        let c = &s.checkpoint;
        Self {
            number: c.number as i64,
            created_at_ms: c.created_at.0,
            prev_hash: c.prev_hash.to_vec(),
            deposits_end: c.deposits_end as i64,
            chains: encode_chains(&c.chains),
            signature: s.signature.to_vec(),
            hash: c.hash().to_vec(),
        }
    }
}

impl TryFrom<CheckpointRecord> for StoredCheckpoint {
    type Error = StoreError;

    fn try_from(r: CheckpointRecord) -> Result<Self> {
        let number = u64::try_from(r.number).unwrap_or(0);
        let corrupt = |detail: &str| StoreError::Corrupt {
            at: format!("checkpoint {}", r.number),
            detail: detail.into(),
        };
        let checkpoint = Checkpoint {
            number,
            created_at: Millis(r.created_at_ms),
            prev_hash: r
                .prev_hash
                .try_into()
                .map_err(|_| corrupt("prev_hash is not 32 bytes"))?,
            chains: decode_chains(&r.chains, number)?,
            deposits_end: u64::try_from(r.deposits_end).map_err(|_| corrupt("negative deposits_end"))?,
        };
        if checkpoint.hash().as_slice() != r.hash.as_slice() {
            return Err(corrupt("stored hash is not the hash of the checkpoint"));
        }
        Ok(Self {
            checkpoint,
            signature: r
                .signature
                .try_into()
                .map_err(|_| corrupt("signature is not 64 bytes"))?,
        })
    }
}

/// Settings of the checkpointer.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointLimits {
    /// Most entries of one chain that one checkpoint seals: a long backlog
    /// is sealed over several checkpoints, each a bounded transaction. With
    /// 64 chains, 10 000 keeps one checkpoint under ~1.3 M Merkle nodes
    /// (about 60 MB in memory) and still seals 640 000 entries per tick.
    pub chain_entries_max: u64,
}

impl Default for CheckpointLimits {
    fn default() -> Self {
        Self {
            chain_entries_max: 10_000,
        }
    }
}

/// Makes the next checkpoint if any chain head moved since the latest one.
/// Returns its number, or `None` when nothing moved or another instance
/// wrote that number first.
///
/// Before sealing, every new entry is checked against its predecessor and
/// its own content: a ledger altered since it was written is never sealed.
pub async fn make_checkpoint(
    store: &dyn Store,
    key: &SigningKey,
    now: Millis,
    limits: CheckpointLimits,
) -> Result<Option<u64>> {
    let prev = store.latest_checkpoint().await?;
    let heads = store.heads().await?;
    let prev_states: Vec<ChainState> = match &prev {
        Some(p) => p.checkpoint.chains.clone(),
        None => heads.iter().map(|(c, _)| ChainState::empty(*c)).collect(),
    };
    if prev_states.len() != heads.len() || heads.iter().enumerate().any(|(i, (c, _))| *c as usize != i) {
        return Err(StoreError::Corrupt {
            at: "chain_heads".into(),
            detail: "the chains are not numbered 0.. like the latest checkpoint's".into(),
        });
    }
    let mut states = prev_states.clone();
    let mut nodes = Vec::new();
    let mut deposit_positions = Vec::new();
    for ((chain, head), old) in heads.iter().zip(&prev_states) {
        if head.seq <= old.size {
            continue;
        }
        let upto = head.seq.min(old.size.saturating_add(limits.chain_entries_max.max(1)));
        let entries = store.chain_range(*chain, old.size, upto).await?;
        check_range(old, upto, &entries)?;
        let frontier = store.merkle_nodes(*chain, &merkle::root_nodes(old.size)).await?;
        let leaves: Vec<Hash> = entries.iter().map(|e| merkle::leaf_hash(&e.hash)).collect();
        let grown = merkle::extend(old.size, &frontier, &leaves).map_err(|e| StoreError::Corrupt {
            at: format!("merkle nodes of chain {chain}"),
            detail: e.to_string(),
        })?;
        let mut all: HashMap<NodeId, Hash> = frontier;
        all.extend(grown.iter().copied());
        let root = merkle::root(upto, &all).map_err(|e| StoreError::Corrupt {
            at: format!("merkle nodes of chain {chain}"),
            detail: e.to_string(),
        })?;
        let last = entries.last().map_or(old.head, |e| e.hash);
        states[*chain as usize] = ChainState {
            chain: *chain,
            size: upto,
            head: last,
            root,
        };
        // Leaves are not stored: a leaf is the leaf hash of its entry's
        // stored hash, which the backends read from the ledger itself. That
        // halves the nodes kept (n − 1 instead of 2n − 1 for n entries).
        nodes.extend(
            grown
                .into_iter()
                .filter(|(id, _)| id.level > 0)
                .map(|(id, h)| (*chain, id, h)),
        );
        deposit_positions.extend(deposits_in(store, &entries).await?);
    }
    if states == prev_states {
        return Ok(None);
    }
    let (number, prev_hash, deposits_before) = match &prev {
        Some(p) => (p.checkpoint.number + 1, p.checkpoint.hash(), p.checkpoint.deposits_end),
        None => (1, [0u8; 32], 0),
    };
    let deposits: Vec<(u64, Position)> = deposit_positions
        .into_iter()
        .enumerate()
        .map(|(i, p)| (deposits_before + 1 + i as u64, p))
        .collect();
    let checkpoint = Checkpoint {
        number,
        created_at: now,
        prev_hash,
        chains: states,
        deposits_end: deposits_before + deposits.len() as u64,
    };
    let signature = checkpoint.sign(key);
    let new = NewCheckpoint {
        stored: StoredCheckpoint { checkpoint, signature },
        nodes,
        deposits,
    };
    match store.write_checkpoint(&new).await? {
        Written::Created => Ok(Some(number)),
        Written::Existing => Ok(None),
    }
}

/// Checks that `entries` are exactly the entries `old.size + 1 ..= upto`,
/// each linked to the one before and hashing to its stored hash.
fn check_range(old: &ChainState, upto: u64, entries: &[Entry]) -> Result<()> {
    let mut last = old.head;
    let mut expected = old.size + 1;
    for e in entries {
        let at = Position {
            chain: old.chain,
            seq: expected,
        };
        let fault = |detail: &str| StoreError::Corrupt {
            at: format!("entry {at}"),
            detail: format!("{detail}; the ledger is not sealed until it verifies"),
        };
        if e.position != at {
            return Err(fault("entry missing"));
        }
        if e.prev_hash != last {
            return Err(fault("prev_hash does not match the previous entry"));
        }
        if entry_hash(e.position, &e.prev_hash, &e.body.encode()) != e.hash {
            return Err(fault("stored hash does not match the entry's content"));
        }
        last = e.hash;
        expected += 1;
    }
    if expected != upto + 1 {
        return Err(StoreError::Corrupt {
            at: format!("chain {}", old.chain),
            detail: format!("entries end at {} below the head {upto}", expected - 1),
        });
    }
    Ok(())
}

/// The deposits among `entries` (one chain's, in order): awards, and
/// reversals of awards (the award may be earlier in the chain).
async fn deposits_in(store: &dyn Store, entries: &[Entry]) -> Result<Vec<Position>> {
    let local: HashMap<Position, EntryKind> = entries.iter().map(|e| (e.position, e.body.kind)).collect();
    let outside: Vec<Position> = entries
        .iter()
        .filter(|e| e.body.kind == EntryKind::Reversal)
        .filter_map(|e| e.body.refers_to)
        .filter(|p| !local.contains_key(p))
        .collect();
    let earlier = if outside.is_empty() {
        HashMap::new()
    } else {
        store.entry_kinds(&outside).await?
    };
    Ok(entries
        .iter()
        .filter(|e| {
            let reversed = e
                .body
                .refers_to
                .and_then(|p| local.get(&p).or_else(|| earlier.get(&p)).copied());
            is_deposit(e.body.kind, reversed)
        })
        .map(|e| e.position)
        .collect())
}

/// A page of the feed.
#[derive(Debug, Clone)]
pub struct DepositPage {
    pub deposits: Vec<(DepositRecord, DepositProof)>,
    /// The checkpoints the page's proofs refer to, by number.
    pub checkpoints: BTreeMap<u64, StoredCheckpoint>,
    /// The number of the last deposit served (the `after` given when empty).
    pub last: u64,
}

/// The deposits after number `after`, at most `limit`, each with its proof.
/// Reads O(log n) Merkle nodes per deposit, in one query for the page.
pub async fn deposit_page(store: &dyn Store, after: u64, limit: u32) -> Result<DepositPage> {
    let rows = store.deposits_after(after, limit).await?;
    let mut checkpoints = BTreeMap::new();
    for r in &rows {
        if let std::collections::btree_map::Entry::Vacant(slot) = checkpoints.entry(r.checkpoint) {
            let cp = store
                .checkpoint(r.checkpoint)
                .await?
                .ok_or_else(|| StoreError::Corrupt {
                    at: format!("deposit {}", r.number),
                    detail: format!("names checkpoint {} which is missing", r.checkpoint),
                })?;
            slot.insert(cp);
        }
    }
    let mut chain_paths: HashMap<(u64, u32), Vec<Hash>> = HashMap::new();
    let mut by_chain: BTreeMap<u32, Vec<NodeId>> = BTreeMap::new();
    let mut sizes = Vec::with_capacity(rows.len());
    for r in &rows {
        let p = r.entry.position;
        let state = checkpoints
            .get(&r.checkpoint)
            .and_then(|c| c.checkpoint.chains.get(p.chain as usize).copied())
            .filter(|s| p.seq >= 1 && p.seq <= s.size)
            .ok_or_else(|| StoreError::Corrupt {
                at: format!("deposit {}", r.number),
                detail: format!("entry {p} is not under checkpoint {}", r.checkpoint),
            })?;
        by_chain
            .entry(p.chain)
            .or_default()
            .extend(merkle::inclusion_nodes(p.seq - 1, state.size));
        sizes.push(state);
    }
    let mut nodes: HashMap<u32, HashMap<NodeId, Hash>> = HashMap::new();
    for (chain, mut ids) in by_chain {
        ids.sort();
        ids.dedup();
        nodes.insert(chain, store.merkle_nodes(chain, &ids).await?);
    }
    let empty = HashMap::new();
    let mut deposits = Vec::with_capacity(rows.len());
    for (r, state) in rows.into_iter().zip(sizes) {
        let p = r.entry.position;
        let chain_nodes = nodes.get(&p.chain).unwrap_or(&empty);
        let entry_path =
            merkle::inclusion_proof(p.seq - 1, state.size, chain_nodes).map_err(|e| StoreError::Corrupt {
                at: format!("merkle nodes of chain {}", p.chain),
                detail: e.to_string(),
            })?;
        let chain_path = chain_paths
            .entry((r.checkpoint, p.chain))
            .or_insert_with(|| {
                checkpoints
                    .get(&r.checkpoint)
                    .map(|c| c.checkpoint.chain_path(p.chain))
                    .unwrap_or_default()
            })
            .clone();
        let proof = DepositProof {
            checkpoint: r.checkpoint,
            chain: state,
            entry_path,
            chain_path,
        };
        deposits.push((r, proof));
    }
    let last = deposits.last().map_or(after, |(r, _)| r.number);
    Ok(DepositPage {
        deposits,
        checkpoints,
        last,
    })
}

/// For each chain of `current`, the consistency proof from the tree of
/// checkpoint `from` (by default the previous one) to `current`'s (empty
/// for chains that did not move and from before the first checkpoint).
pub async fn consistency_proofs(store: &dyn Store, current: &Checkpoint, from: Option<u64>) -> Result<Vec<Vec<Hash>>> {
    let from = from.unwrap_or(current.number.saturating_sub(1));
    let prev = match from {
        0 => None,
        n if n >= current.number => return Err(StoreError::NotFound),
        n => store.checkpoint(n).await?,
    };
    let mut out = Vec::with_capacity(current.chains.len());
    for new in &current.chains {
        let old_size = prev
            .as_ref()
            .and_then(|p| p.checkpoint.chains.get(new.chain as usize))
            .map_or(0, |c| c.size);
        if old_size == 0 || old_size >= new.size {
            out.push(Vec::new());
            continue;
        }
        let nodes = store
            .merkle_nodes(new.chain, &merkle::consistency_nodes(old_size, new.size))
            .await?;
        out.push(
            merkle::consistency_proof(old_size, new.size, &nodes).map_err(|e| StoreError::Corrupt {
                at: format!("merkle nodes of chain {}", new.chain),
                detail: e.to_string(),
            })?,
        );
    }
    Ok(out)
}

/// What [`verify_checkpoints`] covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointReport {
    pub checkpoints: u64,
    /// Whether signatures were checked (a public key was given).
    pub signatures: bool,
}

/// Checks every stored checkpoint against its predecessor: the link, the
/// numbering, the consistency proof of every chain (built from the stored
/// Merkle nodes), and with `key` the signature. Returns the latest
/// checkpoint, which a caller checks against the entries
/// ([`crate::verify::verify_ledger_under`]).
pub async fn verify_checkpoints(
    store: &dyn Store,
    key: Option<&ed25519_dalek::VerifyingKey>,
) -> std::result::Result<(CheckpointReport, Option<Checkpoint>), String> {
    let latest = store.latest_checkpoint().await.map_err(|e| e.to_string())?;
    let Some(latest) = latest else {
        return Ok((CheckpointReport::default(), None));
    };
    let mut prev: Option<Checkpoint> = None;
    for number in 1..=latest.checkpoint.number {
        let stored = store
            .checkpoint(number)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("checkpoint {number} is missing"))?;
        let cp = stored.checkpoint;
        if let Some(key) = key {
            cp.verify_signature(key, &stored.signature).map_err(|e| e.to_string())?;
        }
        match &prev {
            None if cp.prev_hash != [0; 32] => return Err("checkpoint 1 names a predecessor".into()),
            None => {}
            Some(p) => {
                let proofs = consistency_proofs(store, &cp, None).await.map_err(|e| e.to_string())?;
                cp.verify_extends(p, &proofs).map_err(|e| e.to_string())?;
            }
        }
        prev = Some(cp);
    }
    let report = CheckpointReport {
        checkpoints: latest.checkpoint.number,
        signatures: key.is_some(),
    };
    Ok((report, prev))
}
