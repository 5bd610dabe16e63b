//! Scenarios of concurrent ingestion: racing clients write each key once, chains stay
//! gap-free, racing revocations reverse an award once.

use super::*;

/// A tiny deterministic generator for orders and batch sizes.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n.max(1) as u64) as usize
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.next(i + 1));
        }
    }
}

/// Runs each task's batches in order, all tasks at once; returns every
/// (event id, outcome) pair.
async fn race(store: &Arc<dyn ServiceStore>, tasks: Vec<Vec<Vec<Event>>>) -> Vec<(String, Outcome)> {
    let mut handles = Vec::new();
    for batches in tasks {
        let store = Arc::clone(store);
        handles.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for batch in batches {
                let out = store.ingest(&batch, NOW).await.expect("ingest");
                assert_eq!(out.len(), batch.len());
                seen.extend(batch.iter().map(|e| e.id.as_str().to_owned()).zip(out));
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("task"));
    }
    all
}

/// Checks that each key was accepted exactly once and every other answer
/// for it is a duplicate at the same position; returns the positions.
fn once_per_key(all: &[(String, Outcome)]) -> BTreeMap<String, Position> {
    let mut by_key: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for (k, o) in all {
        by_key.entry(k).or_default().push(o);
    }
    let mut positions = BTreeMap::new();
    for (key, outs) in by_key {
        let accepted: Vec<_> = outs
            .iter()
            .filter_map(|o| match **o {
                Outcome::Accepted {
                    position,
                    kind,
                    credits,
                    ..
                } => Some((position, kind, credits)),
                _ => None,
            })
            .collect();
        assert_eq!(accepted.len(), 1, "{key} accepted once: {outs:?}");
        let (position, kind, credits) = accepted[0];
        for o in &outs {
            let same = **o
                == Outcome::Duplicate {
                    position,
                    kind,
                    credits,
                };
            assert!(same || matches!(o, Outcome::Accepted { .. }), "{key}: {o:?}");
        }
        positions.insert(key.to_owned(), position);
    }
    positions
}

/// Asserts that the accepted positions fill every touched chain from 1
/// without gaps, and that the ledger verifies.
async fn gap_free(store: &dyn Store, positions: &BTreeMap<String, Position>) {
    let mut per_chain: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for p in positions.values() {
        per_chain.entry(p.chain).or_default().push(p.seq);
    }
    let heads: HashMap<u32, Head> = store.heads().await.expect("heads").into_iter().collect();
    for (chain, mut seqs) in per_chain {
        seqs.sort_unstable();
        let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "chain {chain} is gap-free");
        assert_eq!(heads[&chain].seq, seqs.len() as u64, "chain {chain}'s head");
    }
    let report = verify_ledger(store, |_| {}).await.expect("verifies");
    assert_eq!(report.entries, positions.len() as u64);
}

/// Eight clients post overlapping sets of the same 60 events, each in its
/// own order and batching, all at once: every key is written once, every
/// answer for a key names the same position, chains are gap-free.
pub async fn concurrent_overlapping_batches_write_each_key_once_without_gaps<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 4).await;
    let events: Vec<Event> = (0..60)
        .map(|k| {
            let who = if k % 3 == 0 {
                w.by_account(k % 4)
            } else {
                w.by_id(k % 4)
            };
            completion(&w.site, &format!("e{k}"), who, 1_00 + 25 * k as i64)
        })
        .collect();
    let mut rng = Lcg(0x5eed);
    let tasks: Vec<Vec<Vec<Event>>> = (0..8)
        .map(|_| {
            let mut mine: Vec<Event> = events.iter().filter(|_| rng.next(3) != 0).cloned().collect();
            rng.shuffle(&mut mine);
            let mut batches = Vec::new();
            while !mine.is_empty() {
                let n = (1 + rng.next(9)).min(mine.len());
                batches.push(mine.drain(..n).collect());
            }
            batches
        })
        .collect();
    let sent: BTreeSet<String> = tasks
        .iter()
        .flatten()
        .flatten()
        .map(|e| e.id.as_str().to_owned())
        .collect();
    let all = race(&store, tasks).await;
    let positions = once_per_key(&all);
    assert_eq!(positions.keys().cloned().collect::<BTreeSet<_>>(), sent);
    assert_eq!(entry_count(db).await, sent.len() as i64, "each key written once");
    gap_free(store.as_ref(), &positions).await;
}

/// Revocations racing for the same awards: under one key each is written
/// once; under two keys for one award, one reverses it and the other is
/// rejected as already revoked.
pub async fn concurrent_revocations_of_one_award_reverse_it_once<B: Backend>(db: &B) {
    let store = db.store();
    // One learner per award: a course is paid once per learner, so awards
    // of one learner would promote each other as they are revoked.
    let w = World::build(store.as_ref(), site_id(), 12).await;
    let awards: Vec<Event> = (0..12)
        .map(|k| completion(&w.site, &format!("e{k}"), w.by_id(k), 10_00))
        .collect();
    let out = store.ingest(&awards, NOW).await.expect("ingest");
    assert!(out.iter().all(|o| matches!(o, Outcome::Accepted { .. })));
    let mut rng = Lcg(7);
    let tasks: Vec<Vec<Vec<Event>>> = (0..6)
        .map(|t| {
            let mut mine: Vec<Event> = (0..12)
                .map(|k| {
                    // Tasks 0..3 send `r<k>`; tasks 3..6 send `x<k>`.
                    let prefix = if t < 3 { "r" } else { "x" };
                    revocation(&w.site, &format!("{prefix}{k}"), &format!("e{k}"))
                })
                .collect();
            rng.shuffle(&mut mine);
            mine.chunks(1 + t % 3).map(<[Event]>::to_vec).collect()
        })
        .collect();
    let all = race(&store, tasks).await;
    let mut accepted_per_award: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_key: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for (k, o) in &all {
        by_key.entry(k).or_default().push(o);
        if matches!(o, Outcome::Accepted { .. }) {
            *accepted_per_award.entry(k[1..].to_owned()).or_default() += 1;
        }
    }
    for k in 0..12 {
        assert_eq!(
            accepted_per_award.get(&k.to_string()),
            Some(&1),
            "award e{k} reversed once: {all:?}"
        );
        let (r, x) = (&by_key[format!("r{k}").as_str()], &by_key[format!("x{k}").as_str()]);
        // The losing key is rejected every time it is posted; the winning
        // key is accepted once and then a duplicate.
        let (winner, loser) = if r.iter().any(|o| matches!(o, Outcome::Accepted { .. })) {
            (r, x)
        } else {
            (x, r)
        };
        assert!(
            loser
                .iter()
                .all(|o| matches!(o, Outcome::Rejected(rej) if rej.code == "already_revoked")),
            "e{k}: {loser:?}"
        );
        assert!(
            winner.iter().all(|o| matches!(
                o,
                Outcome::Accepted {
                    kind: EntryKind::Reversal,
                    ..
                } | Outcome::Duplicate {
                    kind: EntryKind::Reversal,
                    ..
                }
            )),
            "e{k}: {winner:?}"
        );
    }
    assert_eq!(entry_count(db).await, 24);
    let positions: BTreeMap<String, Position> = all_entries(store.as_ref())
        .await
        .into_iter()
        .map(|e| (e.body.event_id.as_str().to_owned(), e.position))
        .collect();
    gap_free(store.as_ref(), &positions).await;
}

/// Two versions of one key posted at once, for the same learner (same
/// chain) and for two learners (two chains): one is written, the other is a
/// conflict naming the field, whichever wins.
pub async fn concurrent_conflicting_events_write_one_and_name_the_field<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 4).await;
    // Two learners on different chains, for the cross-chain race.
    let (a, b) = (0..4)
        .flat_map(|i| (0..4).map(move |j| (i, j)))
        .find(|&(i, j)| w.chain(i) != w.chain(j))
        .expect("two of four learners on different chains");
    for round in 0..8 {
        let hours_key = format!("h{round}");
        let learner_key = format!("l{round}");
        let variants = [
            (completion(&w.site, &hours_key, w.by_id(a), 10_00), "hours"),
            (completion(&w.site, &hours_key, w.by_id(a), 20_00), "hours"),
            (completion(&w.site, &learner_key, w.by_id(a), 10_00), "learner"),
            (completion(&w.site, &learner_key, w.by_id(b), 10_00), "learner"),
        ];
        let tasks: Vec<Vec<Vec<Event>>> = variants.iter().map(|(e, _)| vec![vec![e.clone()]]).collect();
        let all = race(&store, tasks).await;
        for pair in [&all[0..2], &all[2..4]] {
            let field = variants[if pair[0].0.starts_with('h') { 0 } else { 2 }].1;
            let accepted: Vec<Position> = pair
                .iter()
                .filter_map(|(_, o)| match o {
                    Outcome::Accepted { position, .. } => Some(*position),
                    _ => None,
                })
                .collect();
            assert_eq!(accepted.len(), 1, "one version written: {pair:?}");
            assert!(
                pair.iter().any(|(_, o)| *o
                    == Outcome::Conflict {
                        field,
                        position: accepted[0]
                    }),
                "the other is a conflict on {field} at the winner's position: {pair:?}"
            );
        }
    }
    assert_eq!(entry_count(db).await, 16);
    let positions: BTreeMap<String, Position> = all_entries(store.as_ref())
        .await
        .into_iter()
        .map(|e| (e.body.event_id.as_str().to_owned(), e.position))
        .collect();
    gap_free(store.as_ref(), &positions).await;
}
