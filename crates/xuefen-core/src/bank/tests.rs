//! Checkpoint signing and proofs, cursors, decisions and acknowledgement
//! bodies, against tampered inputs and random entries.

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
        let at = Position { chain: 1, seq: 5 };
        let body = ack_body(&deposit, &rejected, Millis(5), at, Some(&[9; 32]));
        assert_eq!(body.version(), version, "an ack is written in its deposit's version");
        assert_eq!(body.commitment, deposit.body.commitment);
        assert_eq!(body.kind, EntryKind::BankRejected);
        assert_eq!(body.event_id.as_str(), "deposit-1-4");
        assert_eq!(body.refers_to, Some(deposit.position));
        let open = |n: &crate::note::Note| n.open(Some(&[9; 32]), at);
        assert_eq!(Decision::of(&body, open), Some(rejected.clone()));
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
            // And the note is sealed: no words in clear, none after erasure.
            let note = body.note.as_ref().expect("the text is kept");
            assert!(!note.stored().contains("已在本行登记"), "{note:?}");
            let erased = Decision::of(&body, |n| n.open(None, at));
            assert_eq!(rejected.first_difference(&erased.expect("a decision")), Some("reason"));
            let gone = ack_body(&deposit, &rejected, Millis(5), at, None);
            assert_eq!(gone.note, None, "without the learner's secret the words are not kept");
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
