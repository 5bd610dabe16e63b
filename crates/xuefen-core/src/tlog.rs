//! One append-only log over every sealed entry, in the C2SP `tlog-tiles`
//! layout, with C2SP `tlog-checkpoint` signed-note checkpoints.
//!
//! When the checkpointer seals entries it gives each a **log index** (0, 1,
//! 2, … in the order it seals them) and appends `leaf = SHA-256(0x00 ‖
//! entry hash)` to one RFC 9162 Merkle tree ([`crate::merkle`] hashes it).
//! The tree is stored as **tiles**: a tile at level `L`, index `N` holds up
//! to 256 consecutive hashes of tree level `8·L` (level 0: the leaves). A
//! tile of 256 hashes is *full* and never changes; the last tile of a level
//! is *partial*, named by its width, and only ever grows. Every complete
//! subtree hash a proof needs is one tile hash or the hash of a power-of-two
//! run of them, so proofs are computed from at most a few tiles per level.
//!
//! The checkpoint is the note text `origin\nsize\nbase64(root)\n`, signed as
//! a C2SP signed note with Ed25519 (the [`signed_note`] crate). The byte
//! layout and a worked example are in `docs/ledger-format.md`, section 11.

use std::collections::{BTreeSet, HashMap};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{SigningKey, VerifyingKey};
use signed_note::{Note, StandardVerifier, VerifierList};

use crate::merkle::{self, Hash, NodeId};

/// Tree levels per tile level.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes in a full tile.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// A tile's place: tile level and index within the level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    pub level: u8,
    pub index: u64,
}

/// Tiles by place, each the hashes it holds (up to 256).
pub type Tiles = HashMap<TileId, Vec<Hash>>;

/// The leaf of an entry in the log: `SHA-256(0x00 ‖ entry hash)`.
pub fn leaf(entry_hash: &Hash) -> Hash {
    merkle::leaf_hash(entry_hash)
}

/// The width of tile `id` in the tree of `size` leaves (0: it does not exist yet).
pub fn tile_width(id: TileId, size: u64) -> u64 {
    let hashes = level_hashes(id.level, size);
    hashes
        .saturating_sub(id.index.saturating_mul(TILE_WIDTH))
        .min(TILE_WIDTH)
}

/// How many hashes tile level `level` holds in a tree of `size` leaves.
fn level_hashes(level: u8, size: u64) -> u64 {
    let shift = u32::from(level) * u32::from(TILE_HEIGHT);
    if shift >= 64 { 0 } else { size >> shift }
}

/// The partial (rightmost, not full) tiles of a tree of `size` leaves: what
/// an append must read to continue the tree.
pub fn edge_tiles(size: u64) -> Vec<TileId> {
    let mut out = Vec::new();
    for level in 0..8u8 {
        let n = level_hashes(level, size);
        if n == 0 {
            break;
        }
        if n % TILE_WIDTH != 0 {
            out.push(TileId {
                level,
                index: n / TILE_WIDTH,
            });
        }
    }
    out
}

/// Why the log could not be grown or a proof made from the tiles given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    #[error("tile {}/{} is missing or narrower than {width}", .id.level, .id.index)]
    Missing { id: TileId, width: u64 },
    #[error("{0}")]
    Proof(#[from] merkle::ProofError),
}

/// The hash of the perfect subtree over `hashes` (a power-of-two count):
/// for a full tile, the hash it contributes to the tile level above.
pub fn subtree(hashes: &[Hash]) -> Hash {
    perfect(hashes)
}

fn perfect(hashes: &[Hash]) -> Hash {
    let mut level: Vec<Hash> = hashes.to_vec();
    while level.len() > 1 {
        level = level.chunks(2).map(|p| merkle::node_hash(&p[0], &p[1])).collect();
    }
    level.first().copied().unwrap_or_else(merkle::empty_root)
}

/// Appends `leaves` to the tree of `size` leaves whose partial tiles
/// ([`edge_tiles`]) are in `edge`. Returns every tile that changed, with its
/// new contents, in (level, index) order: the new partial tiles and the
/// tiles that became full.
pub fn append(size: u64, edge: &Tiles, leaves: &[Hash]) -> Result<Vec<(TileId, Vec<Hash>)>, TileError> {
    let mut open: Vec<(TileId, Vec<Hash>)> = Vec::new();
    for level in 0..8u8 {
        let n = level_hashes(level, size);
        let id = TileId {
            level,
            index: n / TILE_WIDTH,
        };
        let width = n % TILE_WIDTH;
        let hashes = if width == 0 {
            Vec::new()
        } else {
            let t = edge
                .get(&id)
                .filter(|t| t.len() as u64 >= width)
                .ok_or(TileError::Missing { id, width })?;
            t[..width as usize].to_vec()
        };
        open.push((id, hashes));
    }
    let mut changed: std::collections::BTreeMap<TileId, Vec<Hash>> = std::collections::BTreeMap::new();
    for leaf in leaves {
        let mut carry = Some(*leaf);
        let mut level = 0usize;
        while let Some(h) = carry.take() {
            let Some((id, hashes)) = open.get_mut(level) else {
                break;
            };
            hashes.push(h);
            if hashes.len() as u64 == TILE_WIDTH {
                carry = Some(perfect(hashes));
                changed.insert(*id, std::mem::take(hashes));
                id.index += 1;
                level += 1;
            } else {
                changed.insert(*id, hashes.clone());
            }
        }
    }
    // A tile that filled and then restarted is reported full; its
    // successor, if any hash went in, is the partial one.
    Ok(changed.into_iter().filter(|(_, h)| !h.is_empty()).collect())
}

/// The tile that holds tree node `id`'s hash, or the run of hashes it is
/// the perfect subtree of: `(tile, first offset, count)`.
fn locate(id: NodeId) -> (TileId, u64, u64) {
    let level = id.level / TILE_HEIGHT;
    let r = id.level % TILE_HEIGHT;
    let start = id.index << r;
    (
        TileId {
            level,
            index: start / TILE_WIDTH,
        },
        start % TILE_WIDTH,
        1u64 << r,
    )
}

/// The tiles (with the widths a tree of `size` gives them) that hold the nodes `ids`.
pub fn tiles_for(ids: &[NodeId], size: u64) -> Vec<(TileId, u64)> {
    let set: BTreeSet<TileId> = ids.iter().map(|id| locate(*id).0).collect();
    set.into_iter().map(|t| (t, tile_width(t, size))).collect()
}

/// The hash of the complete subtree `id` from the tiles.
pub fn node(id: NodeId, tiles: &Tiles) -> Result<Hash, TileError> {
    let (tile, offset, count) = locate(id);
    let hashes = tiles
        .get(&tile)
        .filter(|t| (t.len() as u64) >= offset + count)
        .ok_or(TileError::Missing {
            id: tile,
            width: offset + count,
        })?;
    Ok(perfect(&hashes[offset as usize..(offset + count) as usize]))
}

fn node_map(ids: &[NodeId], tiles: &Tiles) -> Result<HashMap<NodeId, Hash>, TileError> {
    ids.iter().map(|id| Ok((*id, node(*id, tiles)?))).collect()
}

/// The tiles needed for the root of a tree of `size` leaves.
pub fn root_tiles(size: u64) -> Vec<(TileId, u64)> {
    tiles_for(&merkle::root_nodes(size), size)
}

/// The root of the tree of `size` leaves.
pub fn root(size: u64, tiles: &Tiles) -> Result<Hash, TileError> {
    let map = node_map(&merkle::root_nodes(size), tiles)?;
    Ok(merkle::root(size, &map)?)
}

/// The tiles an inclusion proof of leaf `index` in the tree of `size` needs.
pub fn inclusion_tiles(index: u64, size: u64) -> Vec<(TileId, u64)> {
    tiles_for(&merkle::inclusion_nodes(index, size), size)
}

/// RFC 9162 inclusion proof of leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof(index: u64, size: u64, tiles: &Tiles) -> Result<Vec<Hash>, TileError> {
    let map = node_map(&merkle::inclusion_nodes(index, size), tiles)?;
    Ok(merkle::inclusion_proof(index, size, &map)?)
}

/// The tiles a consistency proof from `from` to `to` leaves needs.
pub fn consistency_tiles(from: u64, to: u64) -> Vec<(TileId, u64)> {
    tiles_for(&merkle::consistency_nodes(from, to), to)
}

/// RFC 9162 consistency proof from the tree of `from` leaves to that of `to`.
pub fn consistency_proof(from: u64, to: u64, tiles: &Tiles) -> Result<Vec<Hash>, TileError> {
    let map = node_map(&merkle::consistency_nodes(from, to), tiles)?;
    Ok(merkle::consistency_proof(from, to, &map)?)
}

// ------------------------------------------------------------------ paths

/// The C2SP path of a tile of `width` hashes: `tile/<L>/<N>` for a full
/// tile, `tile/<L>/<N>.p/<W>` for a partial one, where `N` is written in
/// groups of three digits, every group but the last prefixed with `x`
/// (`1234067` is `x001/x234/067`).
pub fn tile_path(id: TileId, width: u64) -> String {
    let mut n = id.index;
    let mut groups = vec![format!("{:03}", n % 1000)];
    while n >= 1000 {
        n /= 1000;
        groups.push(format!("x{:03}", n % 1000));
    }
    groups.reverse();
    let partial = if width == TILE_WIDTH {
        String::new()
    } else {
        format!(".p/{width}")
    };
    format!("tile/{}/{}{partial}", id.level, groups.join("/"))
}

/// Parses the part of a tile path after `tile/`: `(tile, width)`. Refuses
/// anything [`tile_path`] would not write (leading zeros, a `.p/256`,
/// `.p/0`, a group out of place, entry bundles).
pub fn parse_tile_path(rest: &str) -> Option<(TileId, u64)> {
    if rest.len() > 64 {
        return None;
    }
    let (body, width) = match rest.split_once(".p/") {
        Some((b, w)) => {
            let w: u64 = w.parse().ok()?;
            (b, w)
        }
        None => (rest, TILE_WIDTH),
    };
    let mut parts = body.split('/');
    let level: u8 = parts.next()?.parse().ok()?;
    let mut index: u64 = 0;
    for g in parts {
        let digits = g.strip_prefix('x').unwrap_or(g);
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        index = index.checked_mul(1000)?.checked_add(digits.parse().ok()?)?;
    }
    if !(1..=TILE_WIDTH).contains(&width) || level >= 8 {
        return None;
    }
    let id = TileId { level, index };
    (format!("tile/{rest}") == tile_path(id, width)).then_some((id, width))
}

/// The bytes of a tile as served: its hashes, 32 bytes each, concatenated.
pub fn tile_bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.concat()
}

/// Splits served tile bytes into hashes; `None` unless a whole number of hashes.
pub fn tile_from_bytes(bytes: &[u8]) -> Option<Vec<Hash>> {
    if bytes.len() % 32 != 0 || bytes.len() as u64 > 32 * TILE_WIDTH {
        return None;
    }
    bytes.chunks_exact(32).map(|c| c.try_into().ok()).collect()
}

// ------------------------------------------------------------------ checkpoints

/// A checkpoint: the log named by its origin, at a size, with its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCheckpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// Why a checkpoint note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteFailure {
    #[error("the checkpoint is not a well-formed signed note: {0}")]
    Malformed(String),
    #[error("the checkpoint is not signed by the log's key `{0}`")]
    Unsigned(String),
    #[error("the checkpoint is for the log `{found}`, not `{expected}`")]
    Origin { expected: String, found: String },
}

impl LogCheckpoint {
    /// The note text: `origin\nsize\nbase64(root)\n` (C2SP tlog-checkpoint, no extension lines).
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, STANDARD.encode(self.root))
    }

    /// Parses a note text; `None` unless exactly three lines as [`Self::body`] writes them.
    pub fn parse_body(text: &str) -> Option<Self> {
        let mut lines = text.strip_suffix('\n')?.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty())?.to_owned();
        let size_s = lines.next()?;
        let size: u64 = size_s.parse().ok()?;
        if size.to_string() != size_s {
            return None;
        }
        let root: Hash = STANDARD.decode(lines.next()?).ok()?.try_into().ok()?;
        if lines.next().is_some() {
            return None;
        }
        Some(Self { origin, size, root })
    }

    /// The signed note: the body, a blank line, and one signature line of the
    /// log's key (named by the origin).
    pub fn sign(&self, key: &SigningKey) -> Result<String, NoteFailure> {
        let signer = LogSigner::new(&self.origin, key.clone());
        let mut note = Note::new(self.body().as_bytes(), &[]).map_err(|e| NoteFailure::Malformed(e.to_string()))?;
        note.add_sigs(&[&signer])
            .map_err(|e| NoteFailure::Malformed(e.to_string()))?;
        String::from_utf8(note.to_bytes()).map_err(|e| NoteFailure::Malformed(e.to_string()))
    }

    /// Opens a signed checkpoint: the log's signature must verify (other
    /// signatures, such as witnesses' cosignatures, are ignored here) and the
    /// origin must be `origin`.
    pub fn open(note: &str, origin: &str, key: &VerifyingKey) -> Result<Self, NoteFailure> {
        let vkey = verifier_key(origin, key);
        let verifier = StandardVerifier::new(&vkey).map_err(|e| NoteFailure::Malformed(e.to_string()))?;
        let parsed = Note::from_bytes(note.as_bytes()).map_err(|e| NoteFailure::Malformed(e.to_string()))?;
        let list = VerifierList::new(vec![Box::new(verifier)]);
        let (verified, _) = parsed.verify(&list).map_err(|_| NoteFailure::Unsigned(vkey.clone()))?;
        if verified.is_empty() {
            return Err(NoteFailure::Unsigned(vkey));
        }
        let text = std::str::from_utf8(parsed.text()).map_err(|e| NoteFailure::Malformed(e.to_string()))?;
        let cp = Self::parse_body(text).ok_or_else(|| NoteFailure::Malformed("not a checkpoint body".into()))?;
        if cp.origin != origin {
            return Err(NoteFailure::Origin {
                expected: origin.to_owned(),
                found: cp.origin,
            });
        }
        Ok(cp)
    }
}

/// The C2SP verifier key of the log: `origin+<key id hex>+base64(0x01 ‖ public key)`.
pub fn verifier_key(origin: &str, key: &VerifyingKey) -> String {
    signed_note::new_ed25519_verifier_key(origin, key)
}

/// The signed-note key ID of an Ed25519 key: the first 4 bytes of
/// `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)`, big-endian.
pub fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    let mut encoded = vec![0x01];
    encoded.extend_from_slice(key.as_bytes());
    signed_note::key_id(name, &encoded)
}

/// The log's note signer: Ed25519 over the note text.
struct LogSigner {
    name: String,
    id: u32,
    key: SigningKey,
}

impl LogSigner {
    fn new(name: &str, key: SigningKey) -> Self {
        let id = key_id(name, &key.verifying_key());
        Self {
            name: name.to_owned(),
            id,
            key,
        }
    }
}

impl signed_note::Signer for LogSigner {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        use ed25519_dalek::Signer;
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests;
