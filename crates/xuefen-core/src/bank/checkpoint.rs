//! Checkpoints and deposit proofs: the chains' states bound under one signed
//! head, and the two inclusion paths that lead an entry's hash to it.

use super::*;

/// One chain as a checkpoint binds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainState {
    pub chain: u32,
    /// Entries covered: `seq` 1 to `size`.
    pub size: u64,
    /// Hash of the entry at `size` (the genesis hash when empty).
    pub head: Hash,
    /// Merkle root of the hashes of entries 1..=`size`.
    pub root: Hash,
}

impl ChainState {
    pub fn empty(chain: u32) -> Self {
        Self {
            chain,
            size: 0,
            head: crate::entry::GENESIS,
            root: merkle::empty_root(),
        }
    }

    /// The chain's leaf in the checkpoint tree:
    /// `SHA-256(0x00 ‖ chain u32 ‖ size u64 ‖ head ‖ root)`.
    pub fn leaf(&self) -> Hash {
        let mut data = Vec::with_capacity(76);
        data.extend_from_slice(&self.chain.to_be_bytes());
        data.extend_from_slice(&self.size.to_be_bytes());
        data.extend_from_slice(&self.head);
        data.extend_from_slice(&self.root);
        merkle::leaf_hash(&data)
    }
}

/// A checkpoint: its signed head and the chains it binds (chain `i` at index `i`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// 1, 2, 3, … without gaps.
    pub number: u64,
    pub created_at: Millis,
    /// [`Checkpoint::hash`] of checkpoint `number - 1`; 32 zero bytes for the first.
    pub prev_hash: Hash,
    pub chains: Vec<ChainState>,
    /// Deposits numbered up to and including this checkpoint (the feed's end).
    pub deposits_end: u64,
}

/// Why a checkpoint or a proof does not check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofFailure {
    #[error("checkpoint {0}: signature does not verify with the service's public key")]
    Signature(u64),
    #[error("checkpoint {number}: {detail}")]
    Checkpoint { number: u64, detail: String },
    #[error("checkpoint {number} does not extend checkpoint {prev}: {detail}")]
    Inconsistent { number: u64, prev: u64, detail: String },
    #[error("entry {position}: {detail}")]
    Entry { position: Position, detail: String },
}

impl Checkpoint {
    /// The root of the tree whose leaves are the chains' [`ChainState::leaf`].
    pub fn root(&self) -> Hash {
        let leaves: Vec<Hash> = self.chains.iter().map(ChainState::leaf).collect();
        small_root(&leaves)
    }

    /// The bytes the service signs (section 8 of `docs/ledger-format.md`):
    /// `TAG ‖ number u64 ‖ created_at i64 ‖ prev_hash ‖ chain count u32 ‖
    /// entries u64 ‖ deposits_end u64 ‖ root`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CHECKPOINT_TAG.len() + 92);
        out.extend_from_slice(CHECKPOINT_TAG);
        out.extend_from_slice(&self.number.to_be_bytes());
        out.extend_from_slice(&self.created_at.0.to_be_bytes());
        out.extend_from_slice(&self.prev_hash);
        out.extend_from_slice(&(self.chains.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.entries().to_be_bytes());
        out.extend_from_slice(&self.deposits_end.to_be_bytes());
        out.extend_from_slice(&self.root());
        out
    }

    /// Entries covered, over all chains.
    pub fn entries(&self) -> u64 {
        self.chains.iter().map(|c| c.size).sum()
    }

    /// `SHA-256` of the signed bytes; the next checkpoint names it.
    pub fn hash(&self) -> Hash {
        Sha256::digest(self.signed_bytes()).into()
    }

    pub fn sign(&self, key: &SigningKey) -> [u8; 64] {
        key.sign(&self.signed_bytes()).to_bytes()
    }

    /// Checks the signature and that chain `i` sits at index `i`.
    pub fn verify_signature(&self, key: &VerifyingKey, signature: &[u8; 64]) -> Result<(), ProofFailure> {
        if let Some((i, c)) = self.chains.iter().enumerate().find(|(i, c)| c.chain as usize != *i) {
            return Err(ProofFailure::Checkpoint {
                number: self.number,
                detail: format!("chain {} listed at index {i}", c.chain),
            });
        }
        key.verify(&self.signed_bytes(), &Signature::from_bytes(signature))
            .map_err(|_| ProofFailure::Signature(self.number))
    }

    /// Checks that `self` directly follows `prev`: the next number, `prev`'s
    /// hash, the same chains, no chain shorter, and for each chain a
    /// consistency proof (`proofs[chain]`) from `prev`'s tree to this one.
    pub fn verify_extends(&self, prev: &Checkpoint, proofs: &[Vec<Hash>]) -> Result<(), ProofFailure> {
        if self.number != prev.number + 1 {
            return Err(ProofFailure::Inconsistent {
                number: self.number,
                prev: prev.number,
                detail: "numbers are not consecutive".into(),
            });
        }
        self.verify_extends_from(prev, proofs)
    }

    /// Checks that `self` extends an earlier checkpoint `prev`, consecutive or
    /// not: a higher number, the same chains, no chain shorter, and for each
    /// chain a consistency proof from `prev`'s tree to this one. When the
    /// two are consecutive, `prev_hash` must also name `prev`. A consumer
    /// that skips checkpoints nobody referred to checks this.
    pub fn verify_extends_from(&self, prev: &Checkpoint, proofs: &[Vec<Hash>]) -> Result<(), ProofFailure> {
        let fail = |detail: String| ProofFailure::Inconsistent {
            number: self.number,
            prev: prev.number,
            detail,
        };
        if self.number <= prev.number {
            return Err(fail("it is not later".into()));
        }
        if self.number == prev.number + 1 && self.prev_hash != prev.hash() {
            return Err(fail("prev_hash is not the hash of the previous checkpoint".into()));
        }
        if self.chains.len() != prev.chains.len() || proofs.len() != self.chains.len() {
            return Err(fail("the number of chains differs".into()));
        }
        if self.deposits_end < prev.deposits_end {
            return Err(fail("the deposit count went down".into()));
        }
        for ((new, old), proof) in self.chains.iter().zip(&prev.chains).zip(proofs) {
            if !merkle::verify_consistency(old.size, new.size, &old.root, &new.root, proof) {
                return Err(fail(format!(
                    "chain {} at size {} does not extend size {}",
                    new.chain, new.size, old.size
                )));
            }
            if new.size == old.size && new.head != old.head {
                return Err(fail(format!("chain {} changed its head without growing", new.chain)));
            }
        }
        Ok(())
    }

    /// The inclusion path of chain `chain` in the checkpoint tree.
    pub fn chain_path(&self, chain: u32) -> Vec<Hash> {
        let leaves: Vec<Hash> = self.chains.iter().map(ChainState::leaf).collect();
        let map: std::collections::HashMap<merkle::NodeId, Hash> = all_nodes(&leaves);
        merkle::inclusion_proof(u64::from(chain), leaves.len() as u64, &map).unwrap_or_default()
    }
}

pub(super) fn all_nodes(leaves: &[Hash]) -> std::collections::HashMap<merkle::NodeId, Hash> {
    // Growing from empty can only fail on a missing frontier, and the empty
    // tree has none.
    merkle::extend(0, &std::collections::HashMap::new(), leaves)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

pub(super) fn small_root(leaves: &[Hash]) -> Hash {
    merkle::root(leaves.len() as u64, &all_nodes(leaves)).unwrap_or_else(|_| merkle::empty_root())
}

/// The proof that an entry is in the ledger under a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepositProof {
    pub checkpoint: u64,
    /// The entry's chain as the checkpoint binds it.
    pub chain: ChainState,
    /// Inclusion path of the entry's leaf (index `seq - 1`) in the chain tree of `chain.size`.
    pub entry_path: Vec<Hash>,
    /// Inclusion path of the chain's leaf (index `chain`) in the checkpoint tree.
    pub chain_path: Vec<Hash>,
}

impl DepositProof {
    /// Checks that `entry` is intact (its hash is the hash of its content)
    /// and lies under `checkpoint`, which the caller has verified.
    pub fn verify(&self, entry: &Entry, checkpoint: &Checkpoint) -> Result<(), ProofFailure> {
        let position = entry.position;
        let fail = |detail: &str| ProofFailure::Entry {
            position,
            detail: detail.to_owned(),
        };
        let computed = crate::entry::entry_hash(position, &entry.prev_hash, &entry.body.encode());
        if computed != entry.hash {
            return Err(fail("the entry's hash does not match its content (entry altered)"));
        }
        if self.checkpoint != checkpoint.number {
            return Err(fail("the proof names another checkpoint"));
        }
        if self.chain.chain != position.chain || checkpoint.chains.get(position.chain as usize) != Some(&self.chain) {
            return Err(fail("the proof's chain is not the checkpoint's"));
        }
        let leaf = merkle::leaf_hash(&entry.hash);
        let index = position.seq.checked_sub(1).ok_or_else(|| fail("seq 0"))?;
        if !merkle::verify_inclusion(index, self.chain.size, &leaf, &self.entry_path, &self.chain.root) {
            return Err(fail("the entry is not in its chain's tree under the checkpoint"));
        }
        let chains = checkpoint.chains.len() as u64;
        if !merkle::verify_inclusion(
            u64::from(position.chain),
            chains,
            &self.chain.leaf(),
            &self.chain_path,
            &checkpoint.root(),
        ) {
            return Err(fail("the chain is not in the checkpoint's tree"));
        }
        Ok(())
    }
}
