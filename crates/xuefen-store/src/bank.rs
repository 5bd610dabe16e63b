//! The credit bank feed over any [`Store`]: sealing entries into the one
//! log (`docs/ledger-format.md`, section 7), signing its checkpoints, and
//! paging deposits with inclusion proofs computed from the log's tiles.
//!
//! A backend provides the primitive reads and one atomic write per seal;
//! everything decided here is the same on every backend. Several service
//! instances may run the sealer at once: each continues the log from the
//! size it read, and the primary key on a segment's first log index lets
//! exactly one of them write that continuation (the others find it taken
//! and try again on their next tick).

use async_trait::async_trait;
use xuefen_core::tlog::Tiles;

use std::collections::{BTreeSet, HashMap};

use ed25519_dalek::SigningKey;
use xuefen_core::bank::{ChainState, Decision, is_deposit};
use xuefen_core::entry::{Entry, EntryKind, entry_hash};
use xuefen_core::event::Millis;
use xuefen_core::ids::Position;
use xuefen_core::merkle::Hash;
use xuefen_core::tlog::{self, LogCheckpoint, TileId};

use crate::row::{Columns, ReadRow};
use crate::{Result, Store, StoreError, Written};

/// The latest signed checkpoint of the log, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogHead {
    pub size: u64,
    pub created_at_ms: i64,
    /// The C2SP signed note (`origin\nsize\nroot\n\n— origin sig\n`).
    pub note: String,
}

impl LogHead {
    /// A row of `log_checkpoints` (`size`, `created_at_ms`, `note`).
    pub fn read<R: ReadRow + ?Sized>(row: &R) -> Result<Self> {
        let c = Columns::of("log_checkpoints", row);
        let size: i64 = c.get("size")?;
        Ok(Self {
            size: u64::try_from(size).map_err(|_| StoreError::Corrupt {
                at: "log_checkpoints".into(),
                detail: format!("size {size}"),
            })?,
            created_at_ms: c.get("created_at_ms")?,
            note: c.get("note")?,
        })
    }
}

/// A run of one chain's entries in the log: log indexes `start ..
/// start + count` are the entries `first_seq .. first_seq + count` of `chain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start: u64,
    pub chain: u32,
    pub first_seq: u64,
    pub count: u64,
}

/// How far a chain is sealed: its last sealed entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainTip {
    pub chain: u32,
    pub seq: u64,
    pub hash: Hash,
}

/// Everything one seal writes, in one transaction.
#[derive(Debug, Clone)]
pub struct Seal {
    /// The log size it continues from: the first segment starts there.
    pub old_size: u64,
    pub segments: Vec<Segment>,
    /// Tiles that changed: new partial tiles and tiles that became full.
    pub tiles: Vec<(TileId, Vec<Hash>)>,
    /// The new tips of the chains sealed.
    pub tips: Vec<ChainTip>,
    pub head: LogHead,
}

/// An entry of the log as the feed serves it.
#[derive(Debug, Clone)]
pub struct DepositRecord {
    /// Its log index.
    pub index: u64,
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

/// Decodes the chain list of a checkpoint of the earlier format (per chain
/// `chain u32 ‖ size u64 ‖ head ‖ root`), kept in `legacy_checkpoints`.
pub fn decode_chains(bytes: &[u8], at: u64) -> Result<Vec<ChainState>> {
    let corrupt = |detail: &str| StoreError::Corrupt {
        at: format!("legacy checkpoint {at}"),
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

/// Settings of the sealer.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointLimits {
    /// Most entries of one chain that one seal takes: a long backlog is
    /// sealed over several seals, each a bounded transaction.
    pub chain_entries_max: u64,
}

impl Default for CheckpointLimits {
    fn default() -> Self {
        Self {
            chain_entries_max: 10_000,
        }
    }
}

fn corrupt_tiles(e: tlog::TileError) -> StoreError {
    StoreError::Corrupt {
        at: "log_tiles".into(),
        detail: e.to_string(),
    }
}

/// The chain ranges `(chain, after, upto)` to seal next, in log order.
///
/// A log that has never been sealed but whose store holds checkpoints of
/// the earlier per-chain format (`legacy_checkpoints`) is first sealed in
/// the order those checkpoints numbered their entries (checkpoint, chain,
/// seq), so the deposits keep their order; then every chain's entries past
/// its tip follow, in chain order.
async fn plan(store: &dyn Store, size: u64, tips: &HashMap<u32, ChainTip>) -> Result<Vec<(u32, u64, u64)>> {
    let mut sealed: HashMap<u32, u64> = tips.iter().map(|(c, t)| (*c, t.seq)).collect();
    let mut out = Vec::new();
    if size == 0 {
        for (i, blob) in store.legacy_checkpoint_chains().await?.iter().enumerate() {
            for state in decode_chains(blob, i as u64 + 1)? {
                let done = sealed.entry(state.chain).or_insert(0);
                if state.size > *done {
                    out.push((state.chain, *done, state.size));
                    *done = state.size;
                }
            }
        }
    }
    for (chain, head) in store.heads().await? {
        let done = sealed.get(&chain).copied().unwrap_or(0);
        if head.seq > done {
            out.push((chain, done, head.seq));
        }
    }
    Ok(out)
}

/// Seals the entries committed since the last seal into the log, signs the
/// new checkpoint and writes both. Returns the new log size, or `None` when
/// nothing moved or another instance sealed first.
///
/// Before sealing, every new entry is checked against its predecessor and
/// its own content: a ledger altered since it was written is never sealed.
pub async fn make_checkpoint(
    store: &dyn Store,
    key: &SigningKey,
    origin: &str,
    now: Millis,
    limits: CheckpointLimits,
) -> Result<Option<u64>> {
    let size = store.log_head().await?.map_or(0, |h| h.size);
    let mut tips: HashMap<u32, ChainTip> = store.log_tips().await?.into_iter().map(|t| (t.chain, t)).collect();
    let ranges = plan(store, size, &tips).await?;
    let mut budget: HashMap<u32, u64> = HashMap::new();
    let mut leaves = Vec::new();
    let mut segments = Vec::new();
    let mut moved = BTreeSet::new();
    for (chain, after, upto) in ranges {
        let used = budget.entry(chain).or_insert(0);
        let room = limits.chain_entries_max.max(1).saturating_sub(*used);
        let upto = upto.min(after.saturating_add(room));
        if upto <= after {
            continue;
        }
        *used += upto - after;
        let entries = store.chain_range(chain, after, upto).await?;
        let tip = tips.get(&chain).copied().unwrap_or(ChainTip {
            chain,
            seq: 0,
            hash: xuefen_core::entry::GENESIS,
        });
        if tip.seq != after {
            return Err(StoreError::Corrupt {
                at: format!("chain {chain}"),
                detail: format!("sealed up to {} but asked to continue after {after}", tip.seq),
            });
        }
        check_range(&tip, upto, &entries)?;
        segments.push(Segment {
            start: size + leaves.len() as u64,
            chain,
            first_seq: after + 1,
            count: upto - after,
        });
        leaves.extend(entries.iter().map(|e| tlog::leaf(&e.hash)));
        let last = entries.last().map_or(tip.hash, |e| e.hash);
        tips.insert(
            chain,
            ChainTip {
                chain,
                seq: upto,
                hash: last,
            },
        );
        moved.insert(chain);
    }
    if leaves.is_empty() {
        return Ok(None);
    }
    let edge_ids = tlog::edge_tiles(size);
    let mut tiles = store.log_tiles(&edge_ids).await?;
    let changed = tlog::append(size, &tiles, &leaves).map_err(corrupt_tiles)?;
    tiles.extend(changed.iter().cloned());
    let new_size = size + leaves.len() as u64;
    let root = tlog::root(new_size, &tiles).map_err(corrupt_tiles)?;
    let checkpoint = LogCheckpoint {
        origin: origin.to_owned(),
        size: new_size,
        root,
    };
    let note = checkpoint.sign(key).map_err(|e| StoreError::Corrupt {
        at: "checkpoint".into(),
        detail: e.to_string(),
    })?;
    let seal = Seal {
        old_size: size,
        segments,
        tiles: changed,
        tips: moved.iter().filter_map(|c| tips.get(c).copied()).collect(),
        head: LogHead {
            size: new_size,
            created_at_ms: now.0,
            note,
        },
    };
    match store.write_seal(&seal).await? {
        Written::Created => Ok(Some(new_size)),
        Written::Existing => Ok(None),
    }
}

/// Checks that `entries` are exactly the entries `tip.seq + 1 ..= upto`,
/// each linked to the one before and hashing to its stored hash.
fn check_range(tip: &ChainTip, upto: u64, entries: &[Entry]) -> Result<()> {
    let mut last = tip.hash;
    let mut expected = tip.seq + 1;
    for e in entries {
        let at = Position {
            chain: tip.chain,
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
            at: format!("chain {}", tip.chain),
            detail: format!("entries end at {} below the head {upto}", expected - 1),
        });
    }
    Ok(())
}

/// Whether `entry` is a deposit (an entry that pays, or the reversal of
/// one), given the kinds of the entries reversals refer to.
fn deposit(entry: &Entry, kinds: &HashMap<Position, EntryKind>) -> bool {
    let reversed = entry.body.refers_to.and_then(|p| kinds.get(&p).copied());
    is_deposit(entry.body.kind, reversed)
}

/// Log entries a page may scan for each deposit it can hold: pages that
/// cross many non-paying entries end early, with a cursor past them.
const SCAN_PER_DEPOSIT: u64 = 16;

/// A page of the feed.
#[derive(Debug, Clone)]
pub struct DepositPage {
    /// The checkpoint every proof of the page leads to.
    pub head: Option<LogHead>,
    /// Each deposit with its inclusion proof in the tree of `head.size`.
    pub deposits: Vec<(DepositRecord, Vec<Hash>)>,
    /// The log index the next page starts from.
    pub next: u64,
}

/// The deposits at log index `from` or later, at most `limit`, each with its
/// inclusion proof under the latest checkpoint, computed from the tiles.
pub async fn deposit_page(store: &dyn BankStore, from: u64, limit: u32) -> Result<DepositPage> {
    let head = store.log_head().await?;
    deposit_page_at(store, head, from, limit).await
}

/// As [`deposit_page`], under the checkpoint `head` (such as the latest one
/// witnesses cosigned) instead of the latest: only entries below its size.
pub async fn deposit_page_at(
    store: &dyn BankStore,
    head: Option<LogHead>,
    from: u64,
    limit: u32,
) -> Result<DepositPage> {
    let Some(head) = head else {
        return Ok(DepositPage {
            head: None,
            deposits: Vec::new(),
            next: from,
        });
    };
    let size = head.size;
    let end = size.min(from.saturating_add(u64::from(limit.max(1)) * SCAN_PER_DEPOSIT));
    let mut found: Vec<DepositRecord> = Vec::new();
    let mut next = from;
    if from < end {
        next = end;
        'segments: for seg in store.log_segments(from, end).await? {
            let lo = seg.start.max(from);
            let hi = (seg.start + seg.count).min(end);
            if lo >= hi {
                continue;
            }
            let after = seg.first_seq + (lo - seg.start) - 1;
            let upto = seg.first_seq + (hi - seg.start) - 1;
            let rows = store.segment_entries(seg.chain, after, upto).await?;
            if rows.len() as u64 != hi - lo {
                return Err(StoreError::Corrupt {
                    at: format!("log index {lo}"),
                    detail: format!(
                        "the log names {} entries of chain {}, {} are stored",
                        hi - lo,
                        seg.chain,
                        rows.len()
                    ),
                });
            }
            let refs: Vec<Position> = rows
                .iter()
                .filter(|r| r.entry.body.kind == EntryKind::Reversal)
                .filter_map(|r| r.entry.body.refers_to)
                .collect();
            let kinds = if refs.is_empty() {
                HashMap::new()
            } else {
                store.entry_kinds(&refs).await?
            };
            for (i, mut r) in rows.into_iter().enumerate() {
                r.index = lo + i as u64;
                if deposit(&r.entry, &kinds) {
                    let index = r.index;
                    found.push(r);
                    if found.len() as u32 >= limit {
                        next = index + 1;
                        break 'segments;
                    }
                }
            }
        }
    }
    let mut ids: BTreeSet<TileId> = BTreeSet::new();
    for r in &found {
        ids.extend(tlog::inclusion_tiles(r.index, size).into_iter().map(|(t, _)| t));
    }
    let ids: Vec<TileId> = ids.into_iter().collect();
    let tiles = store.log_tiles(&ids).await?;
    let mut deposits = Vec::with_capacity(found.len());
    for r in found {
        let path = tlog::inclusion_proof(r.index, size, &tiles).map_err(corrupt_tiles)?;
        deposits.push((r, path));
    }
    Ok(DepositPage {
        head: Some(head),
        deposits,
        next,
    })
}

/// The consistency proof between two sizes of the log, from the tiles.
pub async fn consistency_proof(store: &dyn Store, from: u64, to: u64) -> Result<Vec<Hash>> {
    let ids: Vec<TileId> = tlog::consistency_tiles(from, to).into_iter().map(|(t, _)| t).collect();
    let tiles = store.log_tiles(&ids).await?;
    tlog::consistency_proof(from, to, &tiles).map_err(corrupt_tiles)
}

/// Whether the entry at `position` is a sealed deposit, given its tip.
pub fn sealed_deposit(entry: &Entry, tip_seq: u64, reversed: Option<EntryKind>) -> bool {
    entry.position.seq <= tip_seq && is_deposit(entry.body.kind, reversed)
}

/// The tiles a tree of `size` has, with their widths: what verification
/// recomputes.
pub fn all_tiles(size: u64) -> impl Iterator<Item = (TileId, u64)> {
    (0..8u8).flat_map(move |level| {
        let n = if u32::from(level) * 8 >= 64 {
            0
        } else {
            size >> (u32::from(level) * 8)
        };
        (0..n.div_ceil(tlog::TILE_WIDTH)).map(move |index| {
            let id = TileId { level, index };
            (id, tlog::tile_width(id, size))
        })
    })
}

/// A tile row read back: refused unless its level and index are in range
/// and it holds 1 to 256 whole hashes.
pub fn tile_from_row(level: i64, idx: i64, bytes: &[u8]) -> Result<(TileId, Vec<Hash>)> {
    let corrupt = || StoreError::Corrupt {
        at: format!("log tile {level}/{idx}"),
        detail: "out of range or not whole hashes".into(),
    };
    let id = TileId {
        level: u8::try_from(level).map_err(|_| corrupt())?,
        index: u64::try_from(idx).map_err(|_| corrupt())?,
    };
    let hashes = tlog::tile_from_bytes(bytes)
        .filter(|h| !h.is_empty())
        .ok_or_else(corrupt)?;
    Ok((id, hashes))
}

/// A segment row read back: `(start, chain_id, first_seq, count)`.
pub fn segment_from_row((start, chain, first_seq, count): (i64, i64, i64, i64)) -> Result<Segment> {
    let corrupt = || StoreError::Corrupt {
        at: format!("log segment at {start}"),
        detail: "out of range".into(),
    };
    Ok(Segment {
        start: u64::try_from(start).map_err(|_| corrupt())?,
        chain: u32::try_from(chain).map_err(|_| corrupt())?,
        first_seq: u64::try_from(first_seq).map_err(|_| corrupt())?,
        count: u64::try_from(count).map_err(|_| corrupt())?,
    })
}

/// The credit bank feed's port: the primitives of this module; the
/// decisions are made here, over any store.
#[async_trait]
pub trait BankStore: Send + Sync {
    /// The latest checkpoint of the log (the one of the largest size).
    async fn log_head(&self) -> Result<Option<LogHead>>;
    /// How far each chain is sealed into the log (chains never sealed are absent).
    async fn log_tips(&self) -> Result<Vec<ChainTip>>;
    /// The stored tiles among `ids` (each as wide as the log has made it).
    async fn log_tiles(&self, ids: &[TileId]) -> Result<Tiles>;
    /// The log's segments that overlap log indexes `from .. to`, in order.
    async fn log_segments(&self, from: u64, to: u64) -> Result<Vec<Segment>>;
    /// The entries of `chain` with `after < seq <= upto`, in order, with
    /// their learners' keyed real-name hashes (`index` is left 0).
    async fn segment_entries(&self, chain: u32, after: u64, upto: u64) -> Result<Vec<DepositRecord>>;
    /// The chain lists of the checkpoints of the earlier per-chain format,
    /// in number order (empty on a store that never had them).
    async fn legacy_checkpoint_chains(&self) -> Result<Vec<Vec<u8>>>;
    /// Writes a seal in one transaction. `Existing` when a segment already
    /// starts at its `old_size` (another instance sealed first).
    async fn write_seal(&self, seal: &Seal) -> Result<Written>;
    /// The entries of `chain` with `after < seq <= upto`, in sequence order.
    async fn chain_range(&self, chain: u32, after: u64, upto: u64) -> Result<Vec<Entry>>;
    /// The kinds of the entries at `positions` (those that exist).
    async fn entry_kinds(&self, positions: &[Position]) -> Result<HashMap<Position, EntryKind>>;
    /// Records the bank's decisions, one outcome per request, in one
    /// transaction. Each is a ledger entry in the deposit's chain written
    /// under that chain's head; the ledger's idempotency index on the bank's
    /// event id (`deposit-<chain>-<seq>`) allows one decision per deposit.
    async fn ack_deposits(&self, acks: &[AckRequest], now: Millis) -> Result<Vec<AckOutcome>>;
}
