//! Scenario of the log-index lookup ([`crate::log_index`]): the learner's
//! record asks for the log index of its lines' positions, and the answer
//! must be the one the log's segments give when read in full.

use std::collections::HashMap;

use ed25519_dalek::SigningKey;
use xuefen_core::event::Event;
use xuefen_core::ids::Position;

use super::{Backend, NOW, World, completion, site_id};
use crate::bank::{CheckpointLimits, make_checkpoint};

pub async fn log_indexes_are_those_of_the_segments_and_only_of_sealed_entries<B: Backend>(db: &B) {
    let store = db.store();
    let world = World::build(store.as_ref(), site_id(), 3).await;
    let course = crate::Course {
        repeat: xuefen_core::rule::Repeat::EveryCompletion,
        ..super::hours_course(site_id())
    };
    store.put_course(&course).await.expect("course repeats");
    // Nothing sealed yet: nothing has an index.
    let key = SigningKey::from_bytes(&[5; 32]);
    let limits = CheckpointLimits { chain_entries_max: 2 };
    let seal_all = || async {
        while make_checkpoint(store.as_ref(), &key, "conformance.example/log", NOW, limits)
            .await
            .expect("seal")
            .is_some()
        {}
    };
    let batch: Vec<Event> = (0..9)
        .map(|i| completion(&site_id(), &format!("e{i}"), world.by_id(i % 3), 10_00))
        .collect();
    store.ingest(&batch, NOW).await.expect("ingest");
    let all_positions = |store: std::sync::Arc<dyn crate::ServiceStore>| {
        let learners = world.learners.clone();
        async move {
            let mut out = Vec::new();
            for l in &learners {
                out.extend(
                    store
                        .learner_entries(l)
                        .await
                        .expect("entries")
                        .into_iter()
                        .map(|e| e.position),
                );
            }
            out
        }
    };
    let positions = all_positions(store.clone()).await;
    assert_eq!(positions.len(), 9);
    assert!(store.log_indexes(&positions).await.expect("lookup").is_empty());
    assert!(store.log_indexes(&[]).await.expect("lookup").is_empty());
    // Sealed two entries per chain per seal: each chain lies in several
    // segments, interleaved with the other chains'.
    seal_all().await;
    // Three more, not sealed.
    let later: Vec<Event> = (9..12)
        .map(|i| completion(&site_id(), &format!("e{i}"), world.by_id(i % 3), 10_00))
        .collect();
    store.ingest(&later, NOW).await.expect("ingest");
    let positions = all_positions(store.clone()).await;
    assert_eq!(positions.len(), 12);
    let size = store.log_head().await.expect("head").expect("a checkpoint").size;
    assert_eq!(size, 9);
    let segments = store.log_segments(0, size).await.expect("segments");
    assert!(segments.len() >= 6, "several segments per chain: {segments:?}");
    // The reference: every index of every segment, read in full.
    let mut expected: HashMap<Position, u64> = HashMap::new();
    for s in &segments {
        for k in 0..s.count {
            expected.insert(
                Position {
                    chain: s.chain,
                    seq: s.first_seq + k,
                },
                s.start + k,
            );
        }
    }
    assert_eq!(expected.len(), 9);
    // Asked with duplicates, the unsealed ones, and positions of no entry
    // (past a chain's end, before its start, a chain never written).
    let mut asked = positions.clone();
    asked.extend(positions.iter().take(4).copied());
    let unused_chain = (0..super::CHAINS)
        .find(|c| !positions.iter().any(|p| p.chain == *c))
        .expect("a chain no learner here writes");
    asked.push(Position {
        chain: positions[0].chain,
        seq: 1_000,
    });
    asked.push(Position {
        chain: positions[0].chain,
        seq: 0,
    });
    asked.push(Position {
        chain: unused_chain,
        seq: 1,
    });
    let got = store.log_indexes(&asked).await.expect("lookup");
    assert_eq!(got, expected, "the lookup gives the segments' indexes");
    let unsealed: Vec<&Position> = positions.iter().filter(|p| !expected.contains_key(p)).collect();
    assert_eq!(unsealed.len(), 3, "the later three are not sealed");
    // Each entry's hash is the log's leaf at its index.
    let sealed: Vec<Position> = positions.iter().filter(|p| expected.contains_key(p)).copied().collect();
    for p in &sealed {
        let entry = store
            .chain_range(p.chain, p.seq - 1, p.seq)
            .await
            .expect("entry")
            .pop()
            .expect("one entry");
        let index = got[p];
        let ids = xuefen_core::tlog::inclusion_tiles(index, size);
        let tiles = store
            .log_tiles(&ids.iter().map(|(t, _)| *t).collect::<Vec<_>>())
            .await
            .expect("tiles");
        let proof = xuefen_core::tlog::inclusion_proof(index, size, &tiles).expect("proof");
        let cp = xuefen_core::tlog::LogCheckpoint::open(
            &store.log_head().await.expect("head").expect("a checkpoint").note,
            "conformance.example/log",
            &key.verifying_key(),
        )
        .expect("signed");
        assert!(
            xuefen_core::merkle::verify_inclusion(index, size, &xuefen_core::tlog::leaf(&entry.hash), &proof, &cp.root),
            "entry {p} is the leaf at index {index}"
        );
    }
    // Once sealed, the later three have the next indexes.
    seal_all().await;
    let got = store.log_indexes(&positions).await.expect("lookup");
    let mut indexes: Vec<u64> = got.values().copied().collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..12).collect::<Vec<_>>());
}
