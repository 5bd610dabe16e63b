//! The credit bank feed: signed checkpoints, deposit proofs, cursors and
//! acknowledgements, all pure.
//!
//! A **checkpoint** binds every chain at one moment: for each chain its size,
//! head hash and the Merkle root ([`crate::merkle`]) of its entry hashes. The
//! chains become the leaves of a small tree whose root, with the checkpoint's
//! number, time and its predecessor's hash, is the **signed head**
//! ([`Checkpoint::signed_bytes`], Ed25519). A **deposit proof** leads from an
//! entry's hash to that root in two inclusion paths: the entry in its chain's
//! tree, then the chain in the checkpoint's tree. An **acknowledgement** of a
//! deposit by the bank is itself a ledger entry in the learner's chain
//! ([`ack_body`]). The byte formats are specified in `docs/ledger-format.md`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::FieldError;
use crate::amount::Credits;
use crate::entry::{Entry, EntryBody, EntryKind};
use crate::event::{Millis, Reason};
use crate::ids::{EventId, Position, SiteId};
use crate::merkle::{self, Hash};

/// Domain tag of a checkpoint's signed bytes: `xuefen/checkpoint/v1` and a zero byte.
pub const CHECKPOINT_TAG: &[u8; 21] = b"xuefen/checkpoint/v1\0";

/// The site id under which the credit bank's acknowledgements are recorded.
/// No alliance site may take it.
pub const BANK_SITE: &str = "credit-bank";

/// Longest reason code of a rejection, in bytes.
pub const REASON_CODE_BYTES_MAX: usize = 32;

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

fn all_nodes(leaves: &[Hash]) -> std::collections::HashMap<merkle::NodeId, Hash> {
    // Growing from empty can only fail on a missing frontier, and the empty
    // tree has none.
    merkle::extend(0, &std::collections::HashMap::new(), leaves)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn small_root(leaves: &[Hash]) -> Hash {
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

/// A position in the deposit feed, opaque to clients: base64url (no padding)
/// of `"xfl1"` and the log index the next page starts from, as a `u64`.
/// (Cursors of the earlier numbering, `"xfd1"`, are refused.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cursor(pub u64);

impl Cursor {
    const MAGIC: &'static [u8; 4] = b"xfl1";

    pub fn encode(self) -> String {
        let mut bytes = Self::MAGIC.to_vec();
        bytes.extend_from_slice(&self.0.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn parse(value: &str) -> Result<Self, FieldError> {
        let bad = || FieldError::new("after", "is not a cursor this service issued");
        if value.len() > 32 {
            return Err(bad());
        }
        let bytes = URL_SAFE_NO_PAD.decode(value).map_err(|_| bad())?;
        match bytes.split_first_chunk::<4>() {
            Some((magic, rest)) if magic == Self::MAGIC => {
                let n: [u8; 8] = rest.try_into().map_err(|_| bad())?;
                Ok(Self(u64::from_be_bytes(n)))
            }
            _ => Err(bad()),
        }
    }
}

/// Whether an entry is a deposit, given the kind of the entry a reversal
/// refers to: every entry that pays credits (an award, a capped award, a
/// promotion within a recognition group), and every reversal of one.
/// Recognised and not-passed completions pay nothing and are not deposits.
pub fn is_deposit(kind: EntryKind, reversed_kind: Option<EntryKind>) -> bool {
    match kind {
        EntryKind::Reversal => reversed_kind.is_some_and(EntryKind::pays),
        k => k.pays(),
    }
}

/// What the bank decided about a deposit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accepted,
    Rejected { code: String, text: String },
}

impl Decision {
    /// `code` is `[a-z0-9_]`, 1 to 32 bytes; `text` free text. Code and text
    /// are recorded in the entry's `reason` as `code: text`, within its limit.
    pub fn rejected(code: &str, text: &str) -> Result<Self, FieldError> {
        if code.is_empty()
            || code.len() > REASON_CODE_BYTES_MAX
            || !code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(FieldError::new(
                "reason_code",
                format!("must be [a-z0-9_], 1 to {REASON_CODE_BYTES_MAX} bytes"),
            ));
        }
        let d = Self::Rejected {
            code: code.to_owned(),
            text: text.trim().to_owned(),
        };
        Reason::parse(d.reason(), "reason")?;
        Ok(d)
    }

    fn reason(&self) -> String {
        match self {
            Decision::Accepted => String::new(),
            Decision::Rejected { code, text } if text.is_empty() => code.clone(),
            Decision::Rejected { code, text } => format!("{code}: {text}"),
        }
    }

    /// Reads the decision back from an acknowledgement entry.
    pub fn of(body: &EntryBody) -> Option<Self> {
        match body.kind {
            EntryKind::BankAccepted => Some(Decision::Accepted),
            EntryKind::BankRejected if body.commitment.is_some() => Some(Decision::Rejected {
                code: body.reason.as_str().to_owned(),
                text: body.note.as_ref().map(|n| n.as_str().to_owned()).unwrap_or_default(),
            }),
            EntryKind::BankRejected => {
                let r = body.reason.as_str();
                let (code, text) = r.split_once(": ").unwrap_or((r, ""));
                Some(Decision::Rejected {
                    code: code.to_owned(),
                    text: text.to_owned(),
                })
            }
            _ => None,
        }
    }

    /// The first field in which `self` differs from `other`.
    pub fn first_difference(&self, other: &Decision) -> Option<&'static str> {
        match (self, other) {
            (Decision::Accepted, Decision::Accepted) => None,
            (Decision::Rejected { code: a, text: x }, Decision::Rejected { code: b, text: y }) => {
                if a != b {
                    Some("reason_code")
                } else if x != y {
                    Some("reason")
                } else {
                    None
                }
            }
            _ => Some("outcome"),
        }
    }
}

/// The event id of the acknowledgement of the deposit at `deposit`:
/// `deposit-<chain>-<seq>`. With [`BANK_SITE`] it is the ledger's
/// idempotency key, so a deposit is acknowledged at most once.
pub fn ack_event_id(deposit: Position) -> EventId {
    // Digits and dashes, at most 41 bytes: always a valid event id.
    EventId::parse(format!("deposit-{}-{}", deposit.chain, deposit.seq))
        .unwrap_or_else(|_| unreachable!("a numeric event id is valid"))
}

/// The ledger entry body that records the bank's decision on `deposit`: in
/// the deposit's chain, naming the deposit by `refers_to`, with zero credits
/// and the deposit's learner, course, category, rule version and date. It
/// is written in the deposit's format version: a version-2 deposit's
/// acknowledgement repeats its commitment (`refers_to` links the two
/// anyway) and hashes the reason code alone, the text going to the note; a
/// version-1 deposit's is a version-1 entry with `code: text` as before.
pub fn ack_body(deposit: &Entry, decision: &Decision, now: Millis) -> EntryBody {
    let d = &deposit.body;
    let (reason, note) = match (d.commitment, decision) {
        (Some(_), Decision::Rejected { code, text }) => (
            Reason::code(code.clone(), "reason_code").unwrap_or_default(),
            (!text.is_empty()).then(|| Reason::parse(text.clone(), "reason").unwrap_or_default()),
        ),
        (Some(_), Decision::Accepted) => (Reason::default(), None),
        // Checked by `Decision::rejected`.
        (None, _) => (Reason::parse(decision.reason(), "reason").unwrap_or_default(), None),
    };
    EntryBody {
        kind: match decision {
            Decision::Accepted => EntryKind::BankAccepted,
            Decision::Rejected { .. } => EntryKind::BankRejected,
        },
        site: SiteId::parse(BANK_SITE).unwrap_or_else(|_| unreachable!("the bank's site id is valid")),
        event_id: ack_event_id(deposit.position),
        learner: d.learner.clone(),
        commitment: d.commitment,
        course: d.course.clone(),
        category: d.category.clone(),
        credits: Credits::ZERO,
        occurred_at: d.occurred_at,
        recorded_at: now,
        score: None,
        hours: None,
        rule_version: d.rule_version,
        refers_to: Some(deposit.position),
        target_event: None,
        reason,
        note,
        recognition_group: d.recognition_group.clone(),
        withheld: None,
    }
}

/// A fresh signing key from 32 secret bytes.
pub fn signing_key(secret: &[u8; 32]) -> SigningKey {
    SigningKey::from_bytes(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::GENESIS;
    use crate::entry::tests::arb_body;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn chain_of(chain: u32, bodies: Vec<EntryBody>) -> (Vec<Entry>, HashMap<merkle::NodeId, Hash>) {
        let mut prev = GENESIS;
        let entries: Vec<Entry> = bodies
            .into_iter()
            .enumerate()
            .map(|(i, b)| {
                let e = Entry::seal(
                    Position {
                        chain,
                        seq: i as u64 + 1,
                    },
                    prev,
                    b,
                );
                prev = e.hash;
                e
            })
            .collect();
        let leaves: Vec<Hash> = entries.iter().map(|e| merkle::leaf_hash(&e.hash)).collect();
        (entries, all_nodes(&leaves))
    }

    fn checkpoint(chains: u32, chain: u32, entries: &[Entry], nodes: &HashMap<merkle::NodeId, Hash>) -> Checkpoint {
        let mut states: Vec<ChainState> = (0..chains).map(ChainState::empty).collect();
        let size = entries.len() as u64;
        states[chain as usize] = ChainState {
            chain,
            size,
            head: entries.last().map_or(GENESIS, |e| e.hash),
            root: merkle::root(size, nodes).expect("root"),
        };
        Checkpoint {
            number: 1,
            created_at: Millis(1),
            prev_hash: [0; 32],
            chains: states,
            deposits_end: size,
        }
    }

    fn proof_for(cp: &Checkpoint, e: &Entry, nodes: &HashMap<merkle::NodeId, Hash>) -> DepositProof {
        let state = cp.chains[e.position.chain as usize];
        DepositProof {
            checkpoint: cp.number,
            chain: state,
            entry_path: merkle::inclusion_proof(e.position.seq - 1, state.size, nodes).expect("path"),
            chain_path: cp.chain_path(e.position.chain),
        }
    }

    proptest! {
        /// Every entry of a checkpointed chain has a deposit proof that
        /// verifies; altering the entry's content, its hash or any bit of
        /// either path makes it fail naming the entry.
        #[test]
        fn deposit_proofs_verify_and_name_a_tampered_entry(
            bodies in proptest::collection::vec(arb_body(), 1..12), chain in 0u32..64,
            at in any::<prop::sample::Index>(), bit in 0u8..8,
        ) {
            let (entries, nodes) = chain_of(chain, bodies);
            let cp = checkpoint(64, chain, &entries, &nodes);
            let e = &entries[at.index(entries.len())];
            let proof = proof_for(&cp, e, &nodes);
            prop_assert_eq!(proof.chain_path.len(), 6);
            prop_assert_eq!(proof.verify(e, &cp), Ok(()));

            let mut altered = e.clone();
            altered.body.credits = Credits::from_cents(altered.body.credits.cents().wrapping_add(1));
            let err = proof.verify(&altered, &cp).expect_err("altered content");
            let named = matches!(err, ProofFailure::Entry { position, .. } if position == e.position);
            prop_assert!(named);

            let mut rehashed = altered.clone();
            rehashed.hash = crate::entry::entry_hash(e.position, &e.prev_hash, &rehashed.body.encode());
            prop_assert!(proof.verify(&rehashed, &cp).is_err());

            let mut bad = proof.clone();
            bad.chain_path[usize::from(bit) % 6][usize::from(bit)] ^= 1 << bit;
            prop_assert!(bad.verify(e, &cp).is_err());
            if !proof.entry_path.is_empty() {
                let mut bad = proof.clone();
                let j = usize::from(bit) % bad.entry_path.len();
                bad.entry_path[j][0] ^= 1 << bit;
                prop_assert!(bad.verify(e, &cp).is_err());
            }
        }
    }

    #[test]
    fn a_signed_checkpoint_verifies_only_unchanged_and_with_its_key() {
        let key = signing_key(&[7; 32]);
        let cp = Checkpoint {
            number: 3,
            created_at: Millis(1_760_000_000_000),
            prev_hash: [9; 32],
            chains: (0..64).map(ChainState::empty).collect(),
            deposits_end: 0,
        };
        assert_eq!(cp.signed_bytes().len(), 121, "as documented in docs/ledger-format.md");
        let sig = cp.sign(&key);
        assert_eq!(cp.verify_signature(&key.verifying_key(), &sig), Ok(()));
        let mut changed = cp.clone();
        changed.chains[5].size = 1;
        assert_eq!(
            changed.verify_signature(&key.verifying_key(), &sig),
            Err(ProofFailure::Signature(3))
        );
        let other = signing_key(&[8; 32]);
        assert!(cp.verify_signature(&other.verifying_key(), &sig).is_err());
    }

    #[test]
    fn consecutive_checkpoints_are_checked_for_consistency() {
        let bodies: Vec<EntryBody> = (0..5).map(|_| sample_body()).collect();
        let (entries, nodes) = chain_of(2, bodies);
        let mut old = checkpoint(4, 2, &entries[..3], &nodes);
        old.chains[2].root = merkle::root(3, &nodes).expect("root");
        let mut new = checkpoint(4, 2, &entries, &nodes);
        new.number = 2;
        new.prev_hash = old.hash();
        let mut proofs = vec![Vec::new(); 4];
        proofs[2] = merkle::consistency_proof(3, 5, &nodes).expect("proof");
        assert_eq!(new.verify_extends(&old, &proofs), Ok(()));
        let mut forked = new.clone();
        forked.chains[2].root[0] ^= 1;
        assert!(forked.verify_extends(&old, &proofs).is_err());
        let mut unlinked = new.clone();
        unlinked.prev_hash = [0; 32];
        assert!(unlinked.verify_extends(&old, &proofs).is_err());
    }

    fn sample_body() -> EntryBody {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        arb_body().new_tree(&mut runner).expect("tree").current()
    }

    fn sample_body_of(version: u8) -> EntryBody {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = if version == crate::entry::FORMAT_V1 {
            crate::entry::tests::arb_body_v1().boxed()
        } else {
            crate::entry::tests::arb_body_v2().boxed()
        };
        strategy.new_tree(&mut runner).expect("tree").current()
    }

    #[test]
    fn cursors_round_trip_and_foreign_strings_are_refused() {
        for n in [0, 1, 99, u64::MAX] {
            assert_eq!(Cursor::parse(&Cursor(n).encode()), Ok(Cursor(n)));
        }
        for bad in [
            "",
            "abc",
            "eGZsMQ",
            &"A".repeat(40),
            "eGZkMQAAAAAAAAAA",
            "eGZkMgAAAAAAAAAB",
        ] {
            assert_eq!(Cursor::parse(bad).expect_err(bad).field, "after");
        }
    }

    #[test]
    fn decisions_round_trip_through_an_ack_entry_and_differences_are_named() {
        let rejected = Decision::rejected("duplicate_record", "已在本行登记").expect("valid");
        for version in [crate::entry::FORMAT_V1, crate::entry::FORMAT_VERSION] {
            let deposit = Entry::seal(Position { chain: 1, seq: 4 }, GENESIS, sample_body_of(version));
            let body = ack_body(&deposit, &rejected, Millis(5));
            assert_eq!(body.version(), version, "an ack is written in its deposit's version");
            assert_eq!(body.commitment, deposit.body.commitment);
            assert_eq!(body.kind, EntryKind::BankRejected);
            assert_eq!(body.event_id.as_str(), "deposit-1-4");
            assert_eq!(body.refers_to, Some(deposit.position));
            assert_eq!(Decision::of(&body), Some(rejected.clone()));
            let without_note = EntryBody {
                note: None,
                ..body.clone()
            };
            let mut decoded = EntryBody::decode(&body.encode()).expect("decodes");
            decoded.learner = body.learner.clone();
            assert_eq!(decoded, without_note);
            if version == crate::entry::FORMAT_VERSION {
                // The text is the note, outside the hashed bytes.
                assert_eq!(body.reason.as_str(), "duplicate_record");
                assert!(!String::from_utf8_lossy(&body.encode()).contains("已在本行登记"));
            }
        }
        assert_eq!(rejected.first_difference(&Decision::Accepted), Some("outcome"));
        let other = Decision::rejected("duplicate_record", "other").expect("valid");
        assert_eq!(rejected.first_difference(&other), Some("reason"));
        assert_eq!(
            Decision::rejected("Bad Code", "").expect_err("invalid").field,
            "reason_code"
        );
    }
}
