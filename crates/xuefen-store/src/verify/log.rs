//! The log's half of verification: the tiles, segments and checkpoint
//! recomputed from the entries (C2SP tlog-tiles).

use std::collections::HashMap;

use xuefen_core::entry::GENESIS;
use xuefen_core::ids::Position;
use xuefen_core::tlog::{LogCheckpoint, TileId};

use super::VerifyFailure;
use crate::Store;

/// What [`verify_log`] covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogReport {
    /// Entries in the log (its latest checkpoint's size).
    pub size: u64,
    /// Tiles recomputed and found as stored.
    pub tiles: u64,
    /// Whether the checkpoint's signature was checked (a key was given).
    pub signature: bool,
    /// The size of the checkpoint held elsewhere that the log was found to extend.
    pub held: Option<u64>,
}

/// Log indexes read per round of [`verify_log`] (its links in one read, about
/// 72 bytes each held).
const LOG_READ_STEP: u64 = 65_536;

/// Recomputes the log from the entries: every segment must continue the
/// one before, every chain's segments must continue each other and end at
/// the chain's recorded tip, every tile recomputed from the entries' hashes
/// must be the stored tile, and the root must be the latest checkpoint's
/// (signed with `key` when given). With `held`, a checkpoint kept
/// elsewhere, the log must contain it: the root at its size must be its
/// root, so a log cut short, or rewritten, behind it fails. Memory stays
/// flat: one partial tile per level.
pub async fn verify_log(
    store: &dyn Store,
    key: Option<&ed25519_dalek::VerifyingKey>,
    held: Option<&LogCheckpoint>,
) -> Result<LogReport, VerifyFailure> {
    let fail = |m: String| Err(VerifyFailure::Checkpoint(m));
    let (head, tips) = head_and_tips(store).await?;
    let Some(head) = head else {
        if let Some(h) = held {
            return fail(format!("the log is empty, but a checkpoint of size {} is held", h.size));
        }
        if !tips.is_empty() {
            return fail("no checkpoint, yet chains are recorded as sealed".into());
        }
        return Ok(LogReport::default());
    };
    let body = head
        .note
        .split_once("\n\n")
        .map(|(b, _)| format!("{b}\n"))
        .unwrap_or_default();
    let Some(cp) = LogCheckpoint::parse_body(&body) else {
        return fail(format!("the checkpoint of size {} is not a checkpoint note", head.size));
    };
    if let Some(key) = key {
        LogCheckpoint::open(&head.note, &cp.origin, key)
            .map_err(|e| VerifyFailure::Checkpoint(format!("checkpoint of size {}: {e}", head.size)))?;
    }
    if cp.size != head.size {
        return fail(format!(
            "the checkpoint stored at size {} says size {}",
            head.size, cp.size
        ));
    }
    if let Some(h) = held {
        if h.origin != cp.origin {
            return fail(format!(
                "the held checkpoint is of the log `{}`, not `{}`",
                h.origin, cp.origin
            ));
        }
        if h.size > cp.size {
            return fail(format!(
                "the log holds {} entries, but a checkpoint of {} is held: the log was cut short",
                cp.size, h.size
            ));
        }
    }
    let mut walk = LogWalk::new();
    let mut report = LogReport {
        size: cp.size,
        signature: key.is_some(),
        ..LogReport::default()
    };
    walk.check_held(held)?;
    while walk.index < cp.size {
        let to = cp.size.min(walk.index + LOG_READ_STEP);
        // The tiles this round filled are checked with one read at its end,
        // also when it failed: a tile that differs comes first in the log.
        let round = walk.round(store, &cp, held, to).await;
        walk.check_tiles(store, &mut report).await?;
        round?;
    }
    let LogWalk {
        frontier, open, sealed, ..
    } = walk;
    report.held = held.map(|h| h.size);
    if frontier.root() != cp.root {
        return fail(format!("the log's root at size {} is not the checkpoint's", cp.size));
    }
    // The partial tiles left open must be stored as they are (at least as wide).
    let ids: Vec<TileId> = xuefen_core::tlog::edge_tiles(cp.size);
    let stored = store.log_tiles(&ids).await.map_err(VerifyFailure::Store)?;
    for id in ids {
        let want = &open[usize::from(id.level)];
        match stored.get(&id) {
            Some(t) if t.len() >= want.len() && t[..want.len()] == want[..] => report.tiles += 1,
            _ => {
                return fail(format!(
                    "tile {}: stored tile differs from the entries or is missing",
                    tile_name(id, want.len())
                ));
            }
        }
    }
    let mut tips_seen = 0;
    for t in &tips {
        match sealed.get(&t.chain) {
            Some((seq, hash)) if *seq == t.seq && *hash == t.hash => tips_seen += 1,
            _ => {
                return fail(format!(
                    "chain {}: recorded as sealed up to {}, the log says otherwise",
                    t.chain, t.seq
                ));
            }
        }
    }
    if tips_seen != sealed.len() {
        return fail("a chain in the log has no recorded tip".into());
    }
    Ok(report)
}

/// Rounds of [`head_and_tips`] before it gives up waiting for a quiet log.
const SNAPSHOT_TRIES: usize = 16;

/// The latest checkpoint and the chain tips it seals. The service may seal
/// while they are read, in two statements: the tips belong to the
/// checkpoint only when the checkpoint read after them is the one read
/// before them (a seal writes both in one transaction, and every seal grows
/// the log). Under a sealer that never pauses, the last pair read is
/// returned and a mismatch is reported as it is.
async fn head_and_tips(
    store: &dyn Store,
) -> Result<(Option<crate::bank::LogHead>, Vec<crate::bank::ChainTip>), VerifyFailure> {
    let mut head = store.log_head().await.map_err(VerifyFailure::Store)?;
    for _ in 0..SNAPSHOT_TRIES {
        let tips = store.log_tips().await.map_err(VerifyFailure::Store)?;
        let after = store.log_head().await.map_err(VerifyFailure::Store)?;
        if after.as_ref().map(|h| h.size) == head.as_ref().map(|h| h.size) {
            return Ok((head, tips));
        }
        head = after;
    }
    let tips = store.log_tips().await.map_err(VerifyFailure::Store)?;
    Ok((head, tips))
}

fn tile_name(id: TileId, width: usize) -> String {
    xuefen_core::tlog::tile_path(id, width as u64)
}

/// The state of [`verify_log`]'s walk over the log, in log-index order.
struct LogWalk {
    /// The next log index.
    index: u64,
    frontier: xuefen_core::merkle::Frontier,
    /// The open (partial) tile of each level.
    open: Vec<Vec<xuefen_core::merkle::Hash>>,
    /// Each chain's last sealed entry so far: (seq, hash).
    sealed: HashMap<u32, (u64, xuefen_core::merkle::Hash)>,
    /// Full tiles recomputed and not yet compared with the stored ones.
    pending: Vec<(TileId, Vec<xuefen_core::merkle::Hash>)>,
}

impl LogWalk {
    fn new() -> Self {
        Self {
            index: 0,
            frontier: xuefen_core::merkle::Frontier::new(),
            open: vec![Vec::new(); 8],
            sealed: HashMap::new(),
            pending: Vec::new(),
        }
    }

    /// Fails if a checkpoint is held at the current size and the root there is not its.
    fn check_held(&self, held: Option<&LogCheckpoint>) -> Result<(), VerifyFailure> {
        if let Some(h) = held
            && h.size == self.index
            && self.frontier.root() != h.root
        {
            return Err(VerifyFailure::Checkpoint(format!(
                "the log at size {} is not the held checkpoint's (root differs): the log was rewritten",
                h.size
            )));
        }
        Ok(())
    }

    /// Walks the segments from the current index up to `to`: each must
    /// continue the one before and its chain's previous segment, and hold
    /// the stored entries' links.
    async fn round(
        &mut self,
        store: &dyn Store,
        cp: &LogCheckpoint,
        held: Option<&LogCheckpoint>,
        to: u64,
    ) -> Result<(), VerifyFailure> {
        let fail = |m: String| Err(VerifyFailure::Checkpoint(m));
        let segments = store.log_segments(self.index, to).await.map_err(VerifyFailure::Store)?;
        // The links of the round's segments in one read: the segments of one
        // stretch of the log lie on the same pages.
        let ranges: Vec<(u32, u64, u64)> = segments
            .iter()
            .map(|seg| {
                let after = seg.first_seq.saturating_sub(1);
                (seg.chain, after, after.saturating_add(seg.count))
            })
            .collect();
        let mut reads = store
            .ranges_links(&ranges)
            .await
            .map_err(VerifyFailure::Store)?
            .into_iter();
        for seg in &segments {
            let read = reads.next();
            let index = self.index;
            if seg.start + seg.count <= index {
                continue;
            }
            if seg.start != index {
                return fail(format!(
                    "log index {index}: no segment starts there (the log has a gap or overlap)"
                ));
            }
            if seg.start + seg.count > cp.size {
                return fail(format!(
                    "log segment at {} runs past the checkpoint's size {}",
                    seg.start, cp.size
                ));
            }
            let (last_seq, last_hash) = self.sealed.get(&seg.chain).copied().unwrap_or((0, GENESIS));
            if seg.first_seq != last_seq + 1 {
                return fail(format!(
                    "log index {index}: chain {} continues at seq {} after {last_seq}",
                    seg.chain, seg.first_seq
                ));
            }
            let links = read.ok_or_else(|| {
                VerifyFailure::Checkpoint(format!("log index {index}: the links of its segment were not read"))
            })?;
            if links.len() as u64 != seg.count {
                return fail(format!(
                    "log index {index}: the log names {} entries of chain {}, {} are stored",
                    seg.count,
                    seg.chain,
                    links.len()
                ));
            }
            let mut prev = last_hash;
            for link in &links {
                if link.prev_hash != prev {
                    return fail(format!(
                        "log index {}: entry {} does not follow the one sealed before it",
                        self.index,
                        Position {
                            chain: seg.chain,
                            seq: link.seq
                        }
                    ));
                }
                prev = link.hash;
                let leaf = xuefen_core::tlog::leaf(&link.hash);
                self.frontier.push(leaf);
                self.push_tile(leaf);
                self.index += 1;
                self.check_held(held)?;
            }
            self.sealed.insert(seg.chain, (seg.first_seq - 1 + seg.count, prev));
        }
        if self.index < to {
            return fail(format!("log index {}: no segment covers it", self.index));
        }
        Ok(())
    }

    /// Adds one leaf to the tiles being recomputed; each tile that becomes
    /// full is kept for [`LogWalk::check_tiles`].
    fn push_tile(&mut self, leaf: xuefen_core::merkle::Hash) {
        let mut carry = Some(leaf);
        let mut level = 0usize;
        let mut at = self.index;
        while let Some(h) = carry.take() {
            let Some(tile) = self.open.get_mut(level) else { break };
            tile.push(h);
            if tile.len() as u64 == xuefen_core::tlog::TILE_WIDTH {
                let id = TileId {
                    level: level as u8,
                    index: at / xuefen_core::tlog::TILE_WIDTH,
                };
                carry = Some(xuefen_core::tlog::subtree(tile));
                self.pending.push((id, std::mem::take(tile)));
                at /= xuefen_core::tlog::TILE_WIDTH;
                level += 1;
            }
        }
    }

    /// Compares the full tiles recomputed since the last call with the
    /// stored ones (one read), in log order.
    async fn check_tiles(&mut self, store: &dyn Store, report: &mut LogReport) -> Result<(), VerifyFailure> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let ids: Vec<TileId> = self.pending.iter().map(|(id, _)| *id).collect();
        let stored = store.log_tiles(&ids).await.map_err(VerifyFailure::Store)?;
        for (id, tile) in self.pending.drain(..) {
            if stored.get(&id) != Some(&tile) {
                return Err(VerifyFailure::Checkpoint(format!(
                    "tile {}: stored tile differs from the entries or is missing",
                    tile_name(id, tile.len())
                )));
            }
            report.tiles += 1;
        }
        Ok(())
    }
}
