//! Scenarios of ingestion and idempotency: a batch is stored as the pure planner plans it,
//! a repeat writes nothing, a conflict names its field, a rejection leaves the key free.

use super::*;

/// A mixed batch (completions by id and by account, a repeat, a conflict,
/// a revocation, a below-pass-mark score) is stored entry for entry, byte
/// for byte, as the pure planner plans it.
pub async fn a_batch_is_stored_exactly_as_planned<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 3).await;
    let s = &w.site;
    let batch = [
        completion(s, "e1", w.by_id(0), 10_00),
        completion(s, "e2", w.by_account(1), 25_00),
        completion(s, "e1", w.by_id(0), 10_00),
        completion(s, "e1", w.by_id(0), 11_00),
        revocation(s, "r1", "e1"),
        completion(s, "e3", w.by_id(0), 5_00),
        scored(s, "e4", w.by_account(2), 59_99),
        scored(s, "e5", w.by_account(2), 60_00),
    ];
    let expected = plan::plan(&batch, NOW, &w.lookups());
    let outcomes = store.ingest(&batch, NOW).await.expect("ingest");
    assert_eq!(outcomes, expected.outcomes);

    let c0 = w.chain(0);
    assert!(matches!(
        outcomes[0],
        Outcome::Accepted { position: Position { chain, seq: 1 }, kind: EntryKind::Awarded, credits, .. }
            if chain == c0 && credits == Credits::from_cents(2_00)
    ));
    assert!(matches!(outcomes[1], Outcome::Accepted { credits, .. } if credits == Credits::from_cents(4_00)));
    assert!(matches!(outcomes[2], Outcome::Duplicate { .. }));
    assert!(matches!(outcomes[3], Outcome::Conflict { field: "hours", .. }));
    assert!(matches!(
        outcomes[4],
        Outcome::Accepted { kind: EntryKind::Reversal, credits, .. } if credits == Credits::from_cents(-2_00)
    ));
    assert!(matches!(
        outcomes[6],
        Outcome::Accepted { kind: EntryKind::NotPassed, credits, .. } if credits == Credits::ZERO
    ));
    assert!(matches!(
        outcomes[7],
        Outcome::Accepted { kind: EntryKind::Awarded, credits, .. } if credits == Credits::from_cents(1_50)
    ));

    let mut planned = expected.entries.clone();
    planned.sort_by_key(|e| e.position);
    assert_eq!(all_entries(store.as_ref()).await, planned, "entries round-trip exactly");
    assert_eq!(
        moved_heads(store.as_ref()).await,
        expected.heads,
        "heads are the planned ones"
    );
    for e in &expected.entries {
        let found = store
            .entry_by_event(&e.body.site, &e.body.event_id)
            .await
            .expect("entry by event");
        assert_eq!(found.as_ref(), Some(e));
    }
    let reversal = store
        .entry_by_event(s, &event_id("r1"))
        .await
        .expect("entry")
        .expect("found");
    assert_eq!(reversal.body.target_event, Some(event_id("e1")));
    assert_eq!(reversal.body.refers_to, Some(Position { chain: c0, seq: 1 }));
    assert_eq!(entry_count(db).await, expected.entries.len() as i64);
    let report = verify_ledger(store.as_ref(), |_| {}).await.expect("verifies");
    assert_eq!(report.entries, expected.entries.len() as u64);
}

/// Posting the same events again returns the original outcomes (same
/// positions) and writes nothing, in one batch or item by item.
pub async fn the_same_events_twice_write_nothing_and_answer_the_same<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 2).await;
    let s = &w.site;
    let batch = [
        completion(s, "e1", w.by_id(0), 10_00),
        completion(s, "e2", w.by_account(1), 12_50),
        scored(s, "e3", w.by_id(1), 40_00),
        revocation(s, "r1", "e1"),
    ];
    let first = store.ingest(&batch, NOW).await.expect("ingest");
    assert!(first.iter().all(|o| matches!(o, Outcome::Accepted { .. })), "{first:?}");
    let count = entry_count(db).await;
    let heads = store.heads().await.expect("heads");
    let entries = all_entries(store.as_ref()).await;

    let as_duplicates: Vec<Outcome> = first
        .iter()
        .map(|o| match *o {
            Outcome::Accepted {
                position,
                kind,
                credits,
                ..
            } => Outcome::Duplicate {
                position,
                kind,
                credits,
            },
            ref other => other.clone(),
        })
        .collect();
    // Later, and recorded at another time: the original outcome stands.
    let later = Millis(NOW.0 + 3_600_000);
    assert_eq!(store.ingest(&batch, later).await.expect("again"), as_duplicates);
    for (event, expected) in batch.iter().zip(&as_duplicates) {
        let one = store.ingest(std::slice::from_ref(event), later).await.expect("one");
        assert_eq!(&one[0], expected, "event {} alone", event.id);
    }
    assert_eq!(entry_count(db).await, count);
    assert_eq!(store.heads().await.expect("heads"), heads);
    assert_eq!(all_entries(store.as_ref()).await, entries, "nothing rewritten");
    // An already-revoked award cannot be revoked again under a new key.
    let late = store.ingest(&[revocation(s, "r2", "e1")], later).await.expect("ingest");
    assert!(
        matches!(&late[0], Outcome::Rejected(r) if r.code == "already_revoked"),
        "{late:?}"
    );
    assert_eq!(entry_count(db).await, count);
}

/// The same key with other content is a conflict naming the first field
/// that differs, in the documented order, and writes nothing.
pub async fn a_conflict_names_the_first_differing_field_and_writes_nothing<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 2).await;
    let s = &w.site;
    let original = scored(s, "e1", w.by_id(0), 70_00);
    let reversal = revocation(s, "r1", "e1");
    let target2 = completion(s, "e2", w.by_id(0), 10_00);
    let first = store
        .ingest(&[original.clone(), target2, reversal.clone()], NOW)
        .await
        .expect("ingest");
    assert!(first.iter().all(|o| matches!(o, Outcome::Accepted { .. })), "{first:?}");
    let Outcome::Accepted { position: at, .. } = first[0] else {
        unreachable!()
    };
    let Outcome::Accepted { position: r_at, .. } = first[2] else {
        unreachable!()
    };
    let count = entry_count(db).await;

    let edit = |f: &dyn Fn(&mut Completion)| {
        let mut e = original.clone();
        if let EventBody::Completion(c) = &mut e.body {
            f(c);
        }
        e
    };
    let edit_rev = |f: &dyn Fn(&mut Revocation)| {
        let mut e = reversal.clone();
        if let EventBody::Revocation(r) = &mut e.body {
            f(r);
        }
        e
    };
    let cases: Vec<(&str, Event, Position)> = vec![
        ("course", edit(&|c| c.course = crate::conformance::code("c1")), at),
        // The same learner named by account instead of id is no difference.
        ("learner", edit(&|c| c.learner = w.by_id(1)), at),
        (
            "completed_at",
            edit(&|c| c.completed_at = Millis(c.completed_at.0 - 1)),
            at,
        ),
        ("score", edit(&|c| c.score = Some(Score::from_cents(70_01))), at),
        ("hours", edit(&|c| c.hours = Some(Hours::from_cents(1_00))), at),
        // Several differences: the first in order is named.
        (
            "course",
            edit(&|c| {
                c.course = crate::conformance::code("c1");
                c.hours = Some(Hours::from_cents(1_00));
            }),
            at,
        ),
        (
            "completed_at",
            edit(&|c| {
                c.completed_at = Millis(c.completed_at.0 + 1);
                c.score = None;
            }),
            at,
        ),
        ("kind", revocation(s, "e1", "e2"), at),
        ("target_event_id", edit_rev(&|r| r.target = event_id("e2")), r_at),
        (
            "reason",
            edit_rev(&|r| r.reason = Reason::parse("another reason", "reason").expect("reason")),
            r_at,
        ),
        ("kind", completion(s, "r1", w.by_id(0), 10_00), r_at),
    ];
    for (field, event, position) in &cases {
        let out = store.ingest(std::slice::from_ref(event), NOW).await.expect("ingest");
        assert_eq!(
            out[0],
            Outcome::Conflict {
                field,
                position: *position
            },
            "{event:?}"
        );
    }
    // No difference at all when the learner is named by the linked account.
    let same = edit(&|c| c.learner = w.by_account(0));
    let out = store.ingest(&[same], NOW).await.expect("ingest");
    assert!(
        matches!(out[0], Outcome::Duplicate { position, .. } if position == at),
        "{out:?}"
    );

    // In a batch: the conflict is per item and the other items are written.
    let batch: Vec<Event> = cases
        .iter()
        .map(|(_, e, _)| e.clone())
        .chain([completion(s, "e9", w.by_id(1), 10_00)])
        .collect();
    let out = store.ingest(&batch, NOW).await.expect("ingest");
    for ((field, _, position), o) in cases.iter().zip(&out) {
        assert_eq!(
            *o,
            Outcome::Conflict {
                field,
                position: *position
            }
        );
    }
    assert!(matches!(out.last(), Some(Outcome::Accepted { .. })), "{out:?}");
    assert_eq!(entry_count(db).await, count + 1, "only the new event was written");
    let stored = store
        .entry_by_event(s, &event_id("e1"))
        .await
        .expect("entry")
        .expect("found");
    assert_eq!(stored.body.score, Some(Score::from_cents(70_00)), "the original stands");
}

/// An item rejected by validation writes nothing, so the same key,
/// corrected, is judged afresh and accepted.
pub async fn rejected_items_write_nothing_and_a_corrected_retry_is_judged_afresh<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 2).await;
    let s = &w.site;
    store
        .ingest(
            &[completion(s, "done", w.by_id(0), 10_00), revocation(s, "rev", "done")],
            NOW,
        )
        .await
        .expect("ingest");
    let count = entry_count(db).await;
    let heads = store.heads().await.expect("heads");

    let unlinked = account("u-new");
    let stranger = xuefen_core::ids::LearnerId::from_random([0x99; 16]);
    let mut unknown_course = completion(s, "e2", w.by_id(0), 10_00);
    if let EventBody::Completion(c) = &mut unknown_course.body {
        c.course = crate::conformance::code("nope");
    }
    let mut future = completion(s, "e3", w.by_id(0), 10_00);
    if let EventBody::Completion(c) = &mut future.body {
        c.completed_at = Millis(NOW.0 + COMPLETED_AT_FUTURE_SKEW_MS + 1);
    }
    let mut old = completion(s, "e4", w.by_id(0), 10_00);
    if let EventBody::Completion(c) = &mut old.body {
        c.completed_at = Millis(0);
    }
    let mut no_hours = completion(s, "e5", w.by_id(0), 10_00);
    if let EventBody::Completion(c) = &mut no_hours.body {
        c.hours = None;
    }
    let mut no_score = scored(s, "e6", w.by_id(0), 70_00);
    if let EventBody::Completion(c) = &mut no_score.body {
        c.score = None;
    }
    let rejected = [
        (
            completion(s, "e0", LearnerRef::Account(unlinked.clone()), 10_00),
            "unknown_learner",
            "learner/local_account",
        ),
        (
            completion(s, "e1", LearnerRef::Id(stranger), 10_00),
            "unknown_learner",
            "learner/id",
        ),
        (unknown_course, "unknown_course", "course"),
        (future, "completed_at_out_of_range", "completed_at"),
        (old, "completed_at_out_of_range", "completed_at"),
        (no_hours, "rule_needs_field", "hours"),
        (no_score, "rule_needs_field", "score"),
        (revocation(s, "e7", "missing"), "unknown_target", "target_event_id"),
        (revocation(s, "e8", "rev"), "target_not_revocable", "target_event_id"),
        (revocation(s, "e9", "done"), "already_revoked", "target_event_id"),
    ];
    let batch: Vec<Event> = rejected.iter().map(|(e, _, _)| e.clone()).collect();
    let out = store.ingest(&batch, NOW).await.expect("ingest");
    for ((event, code, field), o) in rejected.iter().zip(&out) {
        match o {
            Outcome::Rejected(r) => {
                assert_eq!((r.code, r.error.field.as_ref()), (*code, *field), "{}", event.id);
            }
            other => panic!("{} should be rejected, got {other:?}", event.id),
        }
    }
    assert_eq!(entry_count(db).await, count, "rejections write nothing");
    assert_eq!(store.heads().await.expect("heads"), heads);
    for (event, _, _) in &rejected {
        assert!(
            store.entry_by_event(s, &event.id).await.expect("entry").is_none(),
            "no entry under {}",
            event.id
        );
    }

    // Corrected: the account gets linked, the course named rightly, the
    // date fixed. The same keys are now accepted.
    store
        .link_account(s, &unlinked, &w.learners[1], None)
        .await
        .expect("link");
    let corrected = [
        completion(s, "e0", LearnerRef::Account(unlinked), 10_00),
        completion(s, "e2", w.by_id(0), 10_00),
        completion(s, "e3", w.by_id(0), 10_00),
        completion(s, "e5", w.by_id(0), 10_00),
        revocation(s, "e7", "e2"),
    ];
    let out = store.ingest(&corrected, NOW).await.expect("ingest");
    assert!(out.iter().all(|o| matches!(o, Outcome::Accepted { .. })), "{out:?}");
    // Revoking e2, the paid completion of c1, promotes e3 (one entry more).
    assert_eq!(entry_count(db).await, count + corrected.len() as i64 + 1);
    verify_ledger(store.as_ref(), |_| {}).await.expect("verifies");
}

/// Sixteen identical single-event requests at once: one `Accepted`, the
/// rest `Duplicate` at the same position, one entry.
pub async fn concurrent_identical_single_events_are_written_once<B: Backend>(db: &B) {
    let store = db.store();
    let w = Arc::new(World::build(store.as_ref(), site_id(), 1).await);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = Arc::clone(&store);
        // Half name the learner by id, half by account: the same event.
        let who = if i % 2 == 0 { w.by_id(0) } else { w.by_account(0) };
        let event = completion(&w.site, "same", who, 10_00);
        tasks.push(tokio::spawn(async move { store.ingest(&[event], NOW).await }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("task").expect("ingest").remove(0));
    }
    let accepted: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Accepted { .. }))
        .collect();
    assert_eq!(accepted.len(), 1, "{outcomes:?}");
    let Outcome::Accepted {
        position,
        kind,
        credits,
        ..
    } = *accepted[0]
    else {
        unreachable!()
    };
    for o in &outcomes {
        assert!(
            *o == Outcome::Duplicate {
                position,
                kind,
                credits
            } || matches!(o, Outcome::Accepted { .. }),
            "{o:?}"
        );
    }
    assert_eq!(
        position,
        Position {
            chain: w.chain(0),
            seq: 1
        }
    );
    assert_eq!(entry_count(db).await, 1);
}
