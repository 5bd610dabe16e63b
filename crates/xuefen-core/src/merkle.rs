//! Merkle trees over a chain's entry hashes, in the style of RFC 9162
//! (Certificate Transparency v2), section 2.1.
//!
//! Leaves are hashed as `SHA-256(0x00 ‖ data)` and interior nodes as
//! `SHA-256(0x01 ‖ left ‖ right)`; the tree of `n` leaves splits at the
//! largest power of two below `n`, so a tree only ever grows on its right
//! edge and every older tree is a prefix of every newer one.
//!
//! A store keeps the hash of every *complete aligned subtree* (a [`NodeId`]:
//! level `l`, index `i`, covering leaves `i·2^l .. (i+1)·2^l`). Such a node
//! never changes once its last leaf exists, and every hash a proof needs is
//! one of them or a short combination of them. Proofs are therefore built in
//! two pure passes: [`inclusion_nodes`] / [`consistency_nodes`] say which
//! nodes to read (O(log n)), and [`inclusion_proof`] / [`consistency_proof`]
//! assemble the proof from what was read. Verification follows the
//! algorithms of RFC 9162 sections 2.1.3.2 and 2.1.4.2 to the letter.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// A complete aligned subtree: `2^level` leaves starting at `index · 2^level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

/// `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly below `n` (`n` ≥ 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Where the hashes of complete subtrees come from. The two passes of proof
/// construction use a recorder (which notes what is asked) and a map.
trait Nodes {
    fn node(&mut self, id: NodeId) -> Hash;
}

struct Recorder(Vec<NodeId>);

impl Nodes for Recorder {
    fn node(&mut self, id: NodeId) -> Hash {
        self.0.push(id);
        [0; 32]
    }
}

struct Lookup<'a> {
    map: &'a HashMap<NodeId, Hash>,
    missing: Option<NodeId>,
}

impl Nodes for Lookup<'_> {
    fn node(&mut self, id: NodeId) -> Hash {
        match self.map.get(&id) {
            Some(h) => *h,
            None => {
                self.missing.get_or_insert(id);
                [0; 32]
            }
        }
    }
}

/// `MTH(D[start : start + n])` for a range the RFC recursion produces: `start`
/// is a multiple of the smallest power of two ≥ `n`, so a power-of-two range
/// is one stored node and any other range splits into stored nodes.
fn range_hash(nodes: &mut impl Nodes, start: u64, n: u64) -> Hash {
    if n == 0 {
        return empty_root();
    }
    if n.is_power_of_two() {
        let level = n.trailing_zeros() as u8;
        return nodes.node(NodeId {
            level,
            index: start >> level,
        });
    }
    let k = split(n);
    let left = range_hash(nodes, start, k);
    let right = range_hash(nodes, start + k, n - k);
    node_hash(&left, &right)
}

/// RFC 9162 `PATH(m, D[start : start + n])`, leaf side first.
fn path(nodes: &mut impl Nodes, m: u64, start: u64, n: u64, out: &mut Vec<Hash>) {
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(nodes, m, start, k, out);
        out.push(range_hash(nodes, start + k, n - k));
    } else {
        path(nodes, m - k, start + k, n - k, out);
        out.push(range_hash(nodes, start, k));
    }
}

/// RFC 9162 `SUBPROOF(m, D[start : start + n], b)`.
fn subproof(nodes: &mut impl Nodes, m: u64, start: u64, n: u64, complete: bool, out: &mut Vec<Hash>) {
    if m == n {
        if !complete {
            out.push(range_hash(nodes, start, n));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(nodes, m, start, k, complete, out);
        out.push(range_hash(nodes, start + k, n - k));
    } else {
        subproof(nodes, m - k, start + k, n - k, false, out);
        out.push(range_hash(nodes, start, k));
    }
}

/// Why a proof could not be built from the nodes given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf {index} is not in a tree of {size} leaves")]
    OutOfRange { index: u64, size: u64 },
    #[error("sizes {from} → {to} do not make a consistency proof")]
    BadSizes { from: u64, to: u64 },
    #[error("node at level {} index {} is not stored", .0.level, .0.index)]
    MissingNode(NodeId),
}

fn from_map(
    map: &HashMap<NodeId, Hash>,
    run: impl FnOnce(&mut Lookup<'_>) -> Vec<Hash>,
) -> Result<Vec<Hash>, ProofError> {
    let mut lookup = Lookup { map, missing: None };
    let out = run(&mut lookup);
    match lookup.missing {
        Some(id) => Err(ProofError::MissingNode(id)),
        None => Ok(out),
    }
}

/// The stored nodes an inclusion proof of leaf `index` in a tree of `size` needs.
pub fn inclusion_nodes(index: u64, size: u64) -> Vec<NodeId> {
    let mut r = Recorder(Vec::new());
    if index < size {
        path(&mut r, index, 0, size, &mut Vec::new());
    }
    r.0
}

/// The inclusion proof (audit path, leaf side first) of leaf `index` in a
/// tree of `size` leaves.
pub fn inclusion_proof(index: u64, size: u64, nodes: &HashMap<NodeId, Hash>) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange { index, size });
    }
    from_map(nodes, |l| {
        let mut out = Vec::new();
        path(l, index, 0, size, &mut out);
        out
    })
}

/// The stored nodes a consistency proof from `from` to `to` leaves needs.
pub fn consistency_nodes(from: u64, to: u64) -> Vec<NodeId> {
    let mut r = Recorder(Vec::new());
    if 0 < from && from < to {
        subproof(&mut r, from, 0, to, true, &mut Vec::new());
    }
    r.0
}

/// The consistency proof between the tree of `from` leaves and the tree of
/// `to` leaves (`0 < from < to`); the proof between equal sizes is empty.
pub fn consistency_proof(from: u64, to: u64, nodes: &HashMap<NodeId, Hash>) -> Result<Vec<Hash>, ProofError> {
    if from == to {
        return Ok(Vec::new());
    }
    if from == 0 || from > to {
        return Err(ProofError::BadSizes { from, to });
    }
    from_map(nodes, |l| {
        let mut out = Vec::new();
        subproof(l, from, 0, to, true, &mut out);
        out
    })
}

/// The stored nodes whose hashes make the root of a tree of `size` leaves:
/// one per set bit of `size`, left to right (the tree's "frontier").
pub fn root_nodes(size: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut start = 0u64;
    for level in (0..64u8).rev() {
        if size & (1u64 << level) != 0 {
            out.push(NodeId {
                level,
                index: start >> level,
            });
            start += 1u64 << level;
        }
    }
    out
}

/// The root of a tree of `size` leaves from its [`root_nodes`].
pub fn root(size: u64, nodes: &HashMap<NodeId, Hash>) -> Result<Hash, ProofError> {
    let mut lookup = Lookup {
        map: nodes,
        missing: None,
    };
    let root = range_hash(&mut lookup, 0, size);
    match lookup.missing {
        Some(id) => Err(ProofError::MissingNode(id)),
        None => Ok(root),
    }
}

/// The nodes that become complete when a tree of `old_size` leaves grows by
/// `new_leaves` (leaf hashes). `frontier` holds the hashes of
/// [`root_nodes`]`(old_size)`. Returns every new complete node, leaves
/// (level 0) included, so a store can keep them.
pub fn extend(
    old_size: u64,
    frontier: &HashMap<NodeId, Hash>,
    new_leaves: &[Hash],
) -> Result<Vec<(NodeId, Hash)>, ProofError> {
    let mut known: HashMap<NodeId, Hash> = HashMap::new();
    for id in root_nodes(old_size) {
        let h = frontier.get(&id).ok_or(ProofError::MissingNode(id))?;
        known.insert(id, *h);
    }
    let mut out = Vec::with_capacity(new_leaves.len() * 2);
    for (i, leaf) in new_leaves.iter().enumerate() {
        let mut id = NodeId {
            level: 0,
            index: old_size + i as u64,
        };
        let mut hash = *leaf;
        out.push((id, hash));
        // Climb while this node is a right child: its left sibling is known.
        while id.index & 1 == 1 {
            let sibling = NodeId {
                level: id.level,
                index: id.index - 1,
            };
            let left = known.remove(&sibling).ok_or(ProofError::MissingNode(sibling))?;
            hash = node_hash(&left, &hash);
            id = NodeId {
                level: id.level + 1,
                index: id.index >> 1,
            };
            out.push((id, hash));
        }
        known.insert(id, hash);
    }
    Ok(out)
}

/// The root of a growing tree in O(log n) memory: the hashes of its
/// complete subtrees, left to right. A verifier streaming a chain uses it to
/// recompute the roots a checkpoint claims.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    size: u64,
    stack: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut index = self.size;
        let mut hash = leaf;
        while index & 1 == 1 {
            // The left sibling is complete: a right child always has one.
            let Some(left) = self.stack.pop() else { break };
            hash = node_hash(&left, &hash);
            index >>= 1;
        }
        self.stack.push(hash);
        self.size += 1;
    }

    /// The root of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        match it.next() {
            None => empty_root(),
            Some(last) => it.fold(*last, |right, left| node_hash(left, &right)),
        }
    }
}

/// RFC 9162 2.1.3.2: whether `path` proves leaf `index` (hash `leaf`) is in
/// the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// RFC 9162 2.1.4.2: whether `proof` shows that the tree of `to` leaves
/// (root `to_root`) extends the tree of `from` leaves (root `from_root`).
/// An empty tree is extended by every tree; equal sizes need equal roots and
/// an empty proof.
pub fn verify_consistency(from: u64, to: u64, from_root: &Hash, to_root: &Hash, proof: &[Hash]) -> bool {
    if from > to {
        return false;
    }
    if from == to {
        return proof.is_empty() && from_root == to_root;
    }
    if from == 0 {
        return proof.is_empty() && *from_root == empty_root();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if from.is_power_of_two() {
        path.push(*from_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fnode, mut snode) = (from - 1, to - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == *from_root && sr == *to_root && snode == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The RFC's recursive MTH over leaf hashes, the reference.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// Every node of the tree, built by growing it in two steps.
    fn grown(all: &[Hash], cut: usize) -> HashMap<NodeId, Hash> {
        let first = extend(0, &HashMap::new(), &all[..cut]).expect("extend from empty");
        let mut map: HashMap<NodeId, Hash> = first.into_iter().collect();
        let second = extend(cut as u64, &map, &all[cut..]).expect("extend");
        map.extend(second);
        map
    }

    #[test]
    fn the_rfc_test_vector_sizes_agree_with_the_reference() {
        for n in 0..40u64 {
            let all = leaves(n);
            let map = grown(&all, (n / 3) as usize);
            assert_eq!(root(n, &map), Ok(mth(&all)), "size {n}");
        }
    }

    proptest! {
        /// Growing a tree in two steps stores exactly the complete aligned
        /// subtrees, and its root from stored nodes equals the recursive MTH.
        #[test]
        fn extending_gives_the_reference_root(n in 0u64..300, cut in any::<prop::sample::Index>()) {
            let all = leaves(n);
            let cut = if n == 0 { 0 } else { cut.index(n as usize + 1) };
            let map = grown(&all, cut);
            prop_assert_eq!(root(n, &map), Ok(mth(&all)));
            let complete: usize = (0..64).map(|l| (n >> l) as usize).sum();
            prop_assert_eq!(map.len(), complete);
        }

        /// The streaming frontier gives the reference root at every size.
        #[test]
        fn a_frontier_gives_the_reference_root(n in 0u64..300) {
            let all = leaves(n);
            let mut f = Frontier::new();
            for (i, leaf) in all.iter().enumerate() {
                prop_assert_eq!(f.root(), mth(&all[..i]));
                f.push(*leaf);
            }
            prop_assert_eq!(f.root(), mth(&all));
            prop_assert_eq!(f.size(), n);
        }

        /// An inclusion proof verifies for every index and size, needs only
        /// O(log n) stored nodes, and fails for a wrong index, another size (with its root),
        /// a wrong leaf or any flipped bit of the path.
        #[test]
        fn inclusion_proofs_verify_and_fail_when_altered(
            n in 1u64..300, at in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8,
        ) {
            let all = leaves(n);
            let map = grown(&all, 0);
            let i = at.index(n as usize) as u64;
            let root = mth(&all);
            let needed = inclusion_nodes(i, n);
            prop_assert!(needed.len() <= 2 * 64);
            let only: HashMap<NodeId, Hash> = needed.iter().map(|id| (*id, map[id])).collect();
            let proof = inclusion_proof(i, n, &only).expect("proof from the needed nodes");
            prop_assert!(verify_inclusion(i, n, &all[i as usize], &proof, &root));
            if n > 1 {
                let other = (i + 1) % n;
                prop_assert!(!verify_inclusion(other, n, &all[i as usize], &proof, &root));
                prop_assert!(!verify_inclusion(i, n, &all[other as usize], &proof, &root));
            }
            // A size is only meaningful with the root of that size.
            let bigger = mth(&leaves(n + 1));
            prop_assert!(!verify_inclusion(i, n + 1, &all[i as usize], &proof, &bigger));
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let j = flip.index(bad.len());
                bad[j][(bit as usize * 3) % 32] ^= 1 << bit;
                prop_assert!(!verify_inclusion(i, n, &all[i as usize], &bad, &root));
            }
            prop_assert!(!verify_inclusion(n, n, &all[i as usize], &proof, &root));
        }

        /// A consistency proof verifies between every pair of sizes, and
        /// fails for swapped roots, wrong sizes or any flipped bit.
        #[test]
        fn consistency_proofs_verify_and_fail_when_altered(
            to in 1u64..300, from in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8,
        ) {
            let all = leaves(to);
            let map = grown(&all, 0);
            let from = from.index(to as usize + 1) as u64;
            let (old, new) = (mth(&all[..from as usize]), mth(&all));
            let needed = consistency_nodes(from, to);
            let only: HashMap<NodeId, Hash> = needed.iter().map(|id| (*id, map[id])).collect();
            let proof = if from == 0 { Vec::new() } else { consistency_proof(from, to, &only).expect("proof") };
            prop_assert!(verify_consistency(from, to, &old, &new, &proof));
            if 0 < from && from < to {
                prop_assert!(!verify_consistency(from, to, &new, &old, &proof));
                prop_assert!(!verify_consistency(from, to + 1, &old, &mth(&leaves(to + 1)), &proof));
                prop_assert!(!verify_consistency(from - 1, to, &mth(&all[..from as usize - 1]), &new, &proof) || from == 1);
                let mut bad = proof.clone();
                let j = flip.index(bad.len());
                bad[j][(bit as usize * 5) % 32] ^= 1 << bit;
                prop_assert!(!verify_consistency(from, to, &old, &new, &bad));
            }
        }
    }
}
