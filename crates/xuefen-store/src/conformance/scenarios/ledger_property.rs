//! Property: batching does not change the ledger. Random event streams, cut into random
//! batches, give the ledger the pure planner plans for the whole stream.

use super::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// An event of a small universe in which keys, learners, courses and
/// targets collide often: duplicates, conflicts, rejections and
/// reversals all happen.
#[derive(Debug, Clone)]
enum Ev {
    Completion {
        id: u8,
        learner: usize,
        by_account: bool,
        course: u8,
        at: i64,
        hours: Option<i64>,
        score: Option<i64>,
    },
    Revocation {
        id: u8,
        target: u8,
        reason: bool,
    },
}

fn arb_ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        3 => (0u8..12, 0usize..4, any::<bool>(), 0u8..3, 0i64..2,
              prop::option::of(prop::sample::select(vec![2_50, 10_00, 33_33])),
              prop::option::of(prop::sample::select(vec![40_00, 60_00, 95_50])))
            .prop_map(|(id, learner, by_account, course, at, hours, score)| Ev::Completion {
                id, learner, by_account, course, at, hours, score
            }),
        1 => (0u8..12, 0u8..13, any::<bool>())
            .prop_map(|(id, target, reason)| Ev::Revocation { id, target, reason }),
    ]
}

/// Learners 0..3 are registered and linked; learner 3 is neither.
fn to_event(w: &World, ev: &Ev) -> Event {
    match ev {
        Ev::Completion {
            id,
            learner,
            by_account,
            course,
            at,
            hours,
            score,
        } => {
            let who = match (learner, by_account) {
                (3, false) => LearnerRef::Id(xuefen_core::ids::LearnerId::from_random([0x77; 16])),
                (3, true) => LearnerRef::Account(account("unlinked")),
                (i, false) => w.by_id(*i),
                (i, true) => w.by_account(*i),
            };
            Event {
                site: w.site.clone(),
                id: event_id(&format!("k{id}")),
                body: EventBody::Completion(Completion {
                    course: crate::conformance::code(["c1", "c2", "c3"][usize::from(*course)]),
                    learner: who,
                    completed_at: Millis(NOW.0 - 86_400_000 * (1 + at)),
                    score: score.map(Score::from_cents),
                    hours: hours.map(Hours::from_cents),
                }),
            }
        }
        Ev::Revocation { id, target, reason } => Event {
            site: w.site.clone(),
            id: event_id(&format!("k{id}")),
            body: EventBody::Revocation(Revocation {
                target: event_id(&format!("k{target}")),
                code: Reason::code("entered_in_error", "reason_code").expect("code"),
                reason: Reason::parse(if *reason { "duplicate" } else { "error" }, "reason").expect("reason"),
            }),
        },
    }
}

/// One case: a fresh database, the stream posted in the given batch
/// sizes; the result must be what the planner makes of the whole stream
/// as one batch.
async fn case<B: Backend>(evs: &[Ev], sizes: &[usize]) -> Result<(), String> {
    let db = B::fresh().await;
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 3).await;
    let events: Vec<Event> = evs.iter().map(|e| to_event(&w, e)).collect();
    let expected = plan::plan(&events, NOW, &w.lookups());
    let mut outcomes = Vec::new();
    let mut rest = &events[..];
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        let (batch, tail) = rest.split_at(n);
        outcomes.extend(store.ingest(batch, NOW).await.map_err(|e| e.to_string())?);
        rest = tail;
    }
    if outcomes != expected.outcomes {
        return Err(format!(
            "outcomes differ from one-batch planning:\n got {outcomes:?}\nwant {:?}",
            expected.outcomes
        ));
    }
    let mut planned = expected.entries.clone();
    planned.sort_by_key(|e| e.position);
    let stored = all_entries(store.as_ref()).await;
    if stored != planned {
        return Err(format!("entries differ:\n got {stored:?}\nwant {planned:?}"));
    }
    if moved_heads(store.as_ref()).await != expected.heads {
        return Err("heads differ".into());
    }
    let report = verify_ledger(store.as_ref(), |_| {}).await.map_err(|e| e.to_string())?;
    if report.entries != planned.len() as u64 {
        return Err(format!("verify saw {} entries", report.entries));
    }
    db.close().await;
    Ok(())
}

/// Any stream of events, posted in any batching, gives the ledger (and
/// the per-event outcomes) that the planner gives for the stream as one
/// batch: positions, hashes and decisions do not depend on how a site
/// groups its events. Cases: `PROPTEST_CASES`, default 16.
pub async fn random_streams_in_random_batchings_give_the_planned_ledger<B: Backend>(probe: &B) {
    // The probe database only shows that databases can be had at all.
    probe.store().ready().await.expect("ready");
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(16);
    let handle = tokio::runtime::Handle::current();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            max_shrink_iters: 200,
            ..Config::default()
        });
        let strategy = (
            prop::collection::vec(arb_ev(), 1..40),
            prop::collection::vec(1usize..8, 1..6),
        );
        runner
            .run(&strategy, |(evs, sizes)| {
                handle.block_on(case::<B>(&evs, &sizes)).map_err(TestCaseError::fail)
            })
            .map_err(|e| e.to_string())
    })
    .await
    .expect("property task");
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
