//! Streaming verification of hash chains.
//!
//! A [`ChainVerifier`] is fed the entries of one chain in sequence order and
//! keeps only the last hash, so memory stays flat however long the chain is.
//! It names the first position where the stored ledger stops being the one
//! the service wrote: an altered byte, a missing row, rows out of place, or a
//! chain head that does not match the last entry.

use crate::entry::{Entry, GENESIS, entry_hash};
use crate::ids::Position;

/// What is wrong at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The stored hash is not the hash of the stored content.
    HashMismatch,
    /// The stored `prev_hash` is not the hash of the previous entry.
    BrokenLink,
    /// An entry is missing: this sequence number was expected, another found.
    Gap { found: u64 },
    /// The recorded head of the chain is not its last entry.
    HeadMismatch { head_seq: u64 },
}

/// The first fault found, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chain {} position {}: {}", .position.chain, .position.seq, describe(.fault))]
pub struct VerifyError {
    pub position: Position,
    pub fault: Fault,
}

fn describe(fault: &Fault) -> String {
    match fault {
        Fault::HashMismatch => "stored hash does not match the entry's content (entry altered)".into(),
        Fault::BrokenLink => "prev_hash does not match the previous entry (entries altered, swapped or removed)".into(),
        Fault::Gap { found } => format!("entry missing (next stored entry is at {found})"),
        Fault::HeadMismatch { head_seq } => {
            format!("chain head records position {head_seq} with another hash (entries removed or altered at the end)")
        }
    }
}

/// Verifies one chain from genesis, one entry at a time.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    chain: u32,
    next_seq: u64,
    last_hash: [u8; 32],
}

impl ChainVerifier {
    pub fn new(chain: u32) -> Self {
        Self {
            chain,
            next_seq: 1,
            last_hash: GENESIS,
        }
    }

    /// Checks the next entry of the chain.
    pub fn push(&mut self, entry: &Entry) -> Result<(), VerifyError> {
        self.push_sealed(entry.position, &entry.prev_hash, &entry.hash, &entry.body.encode())
    }

    /// Checks the next entry given as its position, stored hashes and
    /// canonical bytes (for entries of another layout, e.g. site changes).
    pub fn push_sealed(
        &mut self,
        position: Position,
        prev_hash: &[u8; 32],
        hash: &[u8; 32],
        canonical: &[u8],
    ) -> Result<(), VerifyError> {
        let expected = Position {
            chain: self.chain,
            seq: self.next_seq,
        };
        if position != expected {
            return Err(VerifyError {
                position: expected,
                fault: Fault::Gap { found: position.seq },
            });
        }
        if *prev_hash != self.last_hash {
            return Err(VerifyError {
                position: expected,
                fault: Fault::BrokenLink,
            });
        }
        if entry_hash(position, prev_hash, canonical) != *hash {
            return Err(VerifyError {
                position: expected,
                fault: Fault::HashMismatch,
            });
        }
        self.last_hash = *hash;
        self.next_seq += 1;
        Ok(())
    }

    /// Checks the chain's recorded head against the last entry seen and
    /// returns the number of entries checked.
    pub fn finish(self, head_seq: u64, head_hash: &[u8; 32]) -> Result<u64, VerifyError> {
        let last = self.next_seq - 1;
        if head_seq != last || *head_hash != self.last_hash {
            let seq = head_seq.min(last + 1).max(1);
            return Err(VerifyError {
                position: Position { chain: self.chain, seq },
                fault: Fault::HeadMismatch { head_seq },
            });
        }
        Ok(last)
    }

    /// The sequence number the next entry must have.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The hash of the last entry checked (the genesis hash before any).
    pub fn last_hash(&self) -> [u8; 32] {
        self.last_hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::EntryBody;
    use crate::entry::tests::arb_body;
    use proptest::prelude::*;

    fn build(chain: u32, bodies: Vec<EntryBody>) -> Vec<Entry> {
        let mut prev = GENESIS;
        bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| {
                let e = Entry::seal(
                    Position {
                        chain,
                        seq: i as u64 + 1,
                    },
                    prev,
                    body,
                );
                prev = e.hash;
                e
            })
            .collect()
    }

    fn verify(chain: u32, entries: &[Entry], head: (u64, [u8; 32])) -> Result<u64, VerifyError> {
        let mut v = ChainVerifier::new(chain);
        for e in entries {
            v.push(e)?;
        }
        v.finish(head.0, &head.1)
    }

    fn head_of(entries: &[Entry]) -> (u64, [u8; 32]) {
        entries.last().map_or((0, GENESIS), |e| (e.position.seq, e.hash))
    }

    proptest! {
        /// A chain built by sealing verifies, and reports its length.
        #[test]
        fn a_sealed_chain_verifies(bodies in proptest::collection::vec(arb_body(), 0..20)) {
            let entries = build(7, bodies);
            prop_assert_eq!(verify(7, &entries, head_of(&entries)), Ok(entries.len() as u64));
        }

        /// Altering any entry's content is caught at exactly that entry.
        #[test]
        fn an_altered_entry_is_named(bodies in proptest::collection::vec(arb_body(), 1..20), at in any::<prop::sample::Index>(), cents in any::<i64>()) {
            let mut entries = build(3, bodies);
            let head = head_of(&entries);
            let i = at.index(entries.len());
            prop_assume!(entries[i].body.credits.cents() != cents);
            entries[i].body.credits = crate::amount::Credits::from_cents(cents);
            let err = verify(3, &entries, head).expect_err("altered");
            prop_assert_eq!(err.position.seq, i as u64 + 1);
            prop_assert_eq!(err.fault, Fault::HashMismatch);
        }

        /// Removing any entry is caught at that position, or at the head when it was the last.
        #[test]
        fn a_removed_entry_is_named(bodies in proptest::collection::vec(arb_body(), 1..20), at in any::<prop::sample::Index>()) {
            let mut entries = build(3, bodies);
            let head = head_of(&entries);
            let i = at.index(entries.len());
            entries.remove(i);
            let err = verify(3, &entries, head).expect_err("removed");
            prop_assert_eq!(err.position.seq, i as u64 + 1);
        }

        /// Swapping the contents of two positions is caught at the first of them.
        #[test]
        fn swapped_entries_are_named(bodies in proptest::collection::vec(arb_body(), 2..20), a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
            let mut entries = build(3, bodies);
            let head = head_of(&entries);
            let (i, j) = (a.index(entries.len()), b.index(entries.len()));
            prop_assume!(i != j && entries[i].body != entries[j].body);
            let (pi, pj) = (entries[i].position, entries[j].position);
            entries.swap(i, j);
            entries[i].position = pi;
            entries[j].position = pj;
            let err = verify(3, &entries, head).expect_err("swapped");
            prop_assert_eq!(err.position.seq, i.min(j) as u64 + 1);
        }
    }
}
