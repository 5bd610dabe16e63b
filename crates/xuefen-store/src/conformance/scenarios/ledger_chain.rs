//! Scenarios of the append-only ledger and its hash chain: direct SQL that alters, deletes,
//! swaps or appends rows is named by verification; heads follow the last entry.

use super::*;

/// A small ledger on learner 0's chain: entries 1..=5.
async fn five_on_one_chain<B: Backend>(db: &B) -> (World, u32) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 2).await;
    let batch: Vec<Event> = (0..5)
        .map(|i| completion(&w.site, &format!("e{i}"), w.by_id(0), 5_00 * (i + 1)))
        .chain([completion(&w.site, "other", w.by_id(1), 10_00)])
        .collect();
    let out = store.ingest(&batch, NOW).await.expect("ingest");
    assert!(out.iter().all(|o| matches!(o, Outcome::Accepted { .. })));
    verify_ledger(store.as_ref(), |_| {})
        .await
        .expect("verifies before tampering");
    let chain = w.chain(0);
    (w, chain)
}

/// Removes the append-only guard, as someone with direct database access
/// could; verification must still catch what they do next.
async fn allow_tampering<B: Backend>(db: &B) {
    let sql = match db.dialect() {
        Dialect::Postgres => "alter table ledger_entries disable trigger user",
        Dialect::Sqlite => {
            "drop trigger ledger_entries_append_only_update; drop trigger ledger_entries_append_only_delete"
        }
    };
    db.execute(sql).await.expect("disable the append-only triggers");
}

async fn expect_fault(store: &dyn Store, position: Position, fault: Fault) {
    match verify_ledger(store, |_| {}).await {
        Err(VerifyFailure::Chain(e)) => {
            assert_eq!((e.position, &e.fault), (position, &fault), "{e}");
            assert!(
                e.to_string()
                    .contains(&format!("chain {} position {}", position.chain, position.seq)),
                "the message names the position: {e}"
            );
        }
        other => panic!("expected {fault:?} at {position}, got {other:?}"),
    }
}

pub async fn the_ledger_refuses_update_and_delete<B: Backend>(db: &B) {
    let (_, chain) = five_on_one_chain(db).await;
    let statements = [
        "update ledger_entries set credits_cents = 0".to_owned(),
        format!("update ledger_entries set reason = 'x' where chain_id = {chain} and seq = 2"),
        format!("delete from ledger_entries where chain_id = {chain} and seq = 5"),
        "delete from ledger_entries".to_owned(),
    ];
    for sql in &statements {
        match db.execute(sql).await {
            Err(e) => assert!(e.contains("append-only"), "{sql}: {e}"),
            Ok(n) => panic!("{sql} was allowed ({n} rows)"),
        }
    }
    if db.dialect() == Dialect::Postgres {
        let e = db
            .execute("truncate ledger_entries")
            .await
            .expect_err("truncate is refused");
        assert!(e.contains("append-only"), "{e}");
    }
    assert_eq!(entry_count(db).await, 6);
    verify_ledger(db.store().as_ref(), |_| {}).await.expect("untouched");
}

pub async fn verify_names_an_entry_altered_by_direct_sql<B: Backend>(db: &B) {
    let (_, chain) = five_on_one_chain(db).await;
    allow_tampering(db).await;
    let n = db
        .execute(&format!(
            "update ledger_entries set credits_cents = credits_cents + 1 where chain_id = {chain} and seq = 3"
        ))
        .await
        .expect("tamper");
    assert_eq!(n, 1);
    expect_fault(db.store().as_ref(), Position { chain, seq: 3 }, Fault::HashMismatch).await;
}

pub async fn verify_names_a_deleted_middle_entry<B: Backend>(db: &B) {
    let (_, chain) = five_on_one_chain(db).await;
    allow_tampering(db).await;
    db.execute(&format!(
        "delete from ledger_entries where chain_id = {chain} and seq = 2"
    ))
    .await
    .expect("tamper");
    expect_fault(db.store().as_ref(), Position { chain, seq: 2 }, Fault::Gap { found: 3 }).await;
}

pub async fn verify_names_a_deleted_last_entry<B: Backend>(db: &B) {
    let (_, chain) = five_on_one_chain(db).await;
    allow_tampering(db).await;
    db.execute(&format!(
        "delete from ledger_entries where chain_id = {chain} and seq = 5"
    ))
    .await
    .expect("tamper");
    expect_fault(
        db.store().as_ref(),
        Position { chain, seq: 5 },
        Fault::HeadMismatch { head_seq: 5 },
    )
    .await;
}

pub async fn verify_names_the_first_of_two_swapped_entries<B: Backend>(db: &B) {
    let (_, chain) = five_on_one_chain(db).await;
    allow_tampering(db).await;
    // Three steps, so that no step collides on the primary key.
    for (from, to) in [(2, -1), (4, 2), (-1, 4)] {
        let n = db
            .execute(&format!(
                "update ledger_entries set seq = {to} where chain_id = {chain} and seq = {from}"
            ))
            .await
            .expect("swap");
        assert_eq!(n, 1);
    }
    expect_fault(db.store().as_ref(), Position { chain, seq: 2 }, Fault::BrokenLink).await;
}

pub async fn verify_names_a_chain_head_moved_by_direct_sql<B: Backend>(db: &B) {
    let (_, chain) = five_on_one_chain(db).await;
    // The heads are not append-only (the store moves them); rewinding one
    // hides the last entry from appends and must be caught.
    let hash_of_4 = format!(
        "update chain_heads set seq = 4, hash = (select hash from ledger_entries
           where chain_id = {chain} and seq = 4) where chain_id = {chain}"
    );
    db.execute(&hash_of_4).await.expect("rewind head");
    expect_fault(
        db.store().as_ref(),
        Position { chain, seq: 4 },
        Fault::HeadMismatch { head_seq: 4 },
    )
    .await;
}

/// A row appended after a chain's last entry without moving its head (a
/// write behind the service's back) fails the chain at its head.
pub async fn verify_names_rows_appended_behind_the_head<B: Backend>(db: &B) {
    let (_, chain) = five_on_one_chain(db).await;
    let n = db
        .execute(&format!(
            "insert into ledger_entries (chain_id, seq, prev_hash, hash, kind, site_id, event_id, learner_id,
                    course_code, category, credits_cents, occurred_at_ms, recorded_at_ms, score_cents,
                    hours_cents, rule_version, refers_chain, refers_seq, target_event, reason)
             select chain_id, seq + 1, hash, hash, kind, site_id, event_id || '-forged', learner_id,
                    course_code, category, credits_cents, occurred_at_ms, recorded_at_ms, score_cents,
                    hours_cents, rule_version, refers_chain, refers_seq, target_event, reason
               from ledger_entries where chain_id = {chain} and seq = 5"
        ))
        .await
        .expect("forge a row");
    assert_eq!(n, 1);
    expect_fault(
        db.store().as_ref(),
        Position { chain, seq: 5 },
        Fault::HeadMismatch { head_seq: 5 },
    )
    .await;
}

/// Verification while the service writes reports no fault: every chain is
/// checked up to the head it read, and later commits are not mistaken for
/// tampering.
pub async fn verify_while_batches_commit_reports_no_fault<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 8).await;
    let writer = {
        let store = Arc::clone(&store);
        let batches: Vec<Vec<Event>> = (0..40)
            .map(|b| {
                (0..50)
                    .map(|i| completion(&w.site, &format!("v{b}-{i}"), w.by_id(i % 8), 10_00))
                    .collect()
            })
            .collect();
        tokio::spawn(async move {
            for batch in batches {
                store.ingest(&batch, NOW).await.expect("ingest");
            }
        })
    };
    let mut runs = 0;
    let mut last = 0;
    while !writer.is_finished() {
        let report = verify_ledger(store.as_ref(), |_| {})
            .await
            .expect("a live ledger verifies");
        assert!(report.entries >= last, "entries only grow");
        last = report.entries;
        runs += 1;
    }
    writer.await.expect("writer");
    let report = verify_ledger(store.as_ref(), |_| {}).await.expect("verifies");
    assert_eq!(report.entries, 2_000);
    assert!(runs > 0, "verification ran while batches committed");
}

/// After several batches over several learners, every chain's head is its
/// last entry, and untouched chains stay empty.
pub async fn heads_follow_the_last_entry_of_every_chain<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 6).await;
    let mut lookups = w.lookups();
    for round in 0..4 {
        let batch: Vec<Event> = (0..12)
            .map(|i| {
                completion(
                    &w.site,
                    &format!("e{round}-{i}"),
                    w.by_id((i + round) % 6),
                    3_00 * (i as i64 + 1),
                )
            })
            .collect();
        let keys = plan::course_keys(&batch, &lookups);
        for (l, s, c, _) in keys {
            lookups.course_entries.entry((l, s, c)).or_default();
        }
        let expected = plan::plan(&batch, NOW, &lookups);
        assert_eq!(store.ingest(&batch, NOW).await.expect("ingest"), expected.outcomes);
        lookups.heads.extend(expected.heads.iter().map(|(c, h)| (*c, *h)));
        remember(&mut lookups, &expected.entries);
    }
    let heads = store.heads().await.expect("heads");
    let touched: BTreeSet<u32> = (0..6).map(|i| w.chain(i)).collect();
    for (chain, head) in heads {
        let entries = all_entries(store.as_ref())
            .await
            .into_iter()
            .filter(|e| e.position.chain == chain)
            .collect::<Vec<_>>();
        match entries.last() {
            Some(last) => {
                assert!(touched.contains(&chain));
                assert_eq!(
                    head,
                    Head {
                        seq: last.position.seq,
                        hash: last.hash
                    }
                );
                assert_eq!(lookups.heads.get(&chain), Some(&head), "chain {chain}");
            }
            None => assert_eq!(head, Head::EMPTY, "chain {chain} untouched"),
        }
    }
}

/// A learner's entries are exactly theirs, in sequence order, across
/// batches and kinds; a learner with none gets an empty list.
pub async fn learner_entries_are_that_learners_own_in_sequence_order<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 3).await;
    for round in 0..3 {
        let mut batch: Vec<Event> = (0..10)
            .map(|i| completion(&w.site, &format!("e{round}-{i}"), w.by_id(i % 2), 2_00 * (i as i64 + 1)))
            .collect();
        batch.push(scored(&w.site, &format!("s{round}"), w.by_account(0), 50_00));
        batch.push(revocation(&w.site, &format!("r{round}"), &format!("e{round}-0")));
        store.ingest(&batch, NOW).await.expect("ingest");
    }
    let all = all_entries(store.as_ref()).await;
    for i in 0..2 {
        let mine = store.learner_entries(&w.learners[i]).await.expect("entries");
        let expected: Vec<_> = {
            let mut v: Vec<_> = all
                .iter()
                .filter(|e| e.body.learner == w.learners[i])
                .cloned()
                .collect();
            v.sort_by_key(|e| e.position.seq);
            v
        };
        assert!(!mine.is_empty());
        assert_eq!(mine, expected, "learner {i}");
        assert!(mine.windows(2).all(|p| p[0].position.seq < p[1].position.seq));
    }
    assert!(store.learner_entries(&w.learners[2]).await.expect("entries").is_empty());
    let kinds: BTreeSet<&str> = store
        .learner_entries(&w.learners[0])
        .await
        .expect("entries")
        .iter()
        .map(|e| e.body.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["awarded", "not_passed", "promoted", "recognised", "reversal"])
    );
}

/// The idempotency key is `(site, event_id)`: the same event id at two
/// sites is two events, and each site's entry is found under its own key.
pub async fn entries_are_found_by_their_own_sites_key_only<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 1).await;
    let other = other_site_id();
    store
        .create_site(&site(other.clone()), &act("joined"))
        .await
        .expect("site");
    store.put_course(&hours_course(other.clone())).await.expect("course");
    let a = store
        .ingest(&[completion(&w.site, "e1", w.by_id(0), 10_00)], NOW)
        .await
        .expect("ingest");
    let b = store
        .ingest(&[completion(&other, "e1", w.by_id(0), 20_00)], NOW)
        .await
        .expect("ingest");
    assert!(matches!(a[0], Outcome::Accepted { .. }) && matches!(b[0], Outcome::Accepted { .. }));
    let mine = store
        .entry_by_event(&w.site, &event_id("e1"))
        .await
        .expect("entry")
        .expect("found");
    let theirs = store
        .entry_by_event(&other, &event_id("e1"))
        .await
        .expect("entry")
        .expect("found");
    assert_eq!(mine.body.site, w.site);
    assert_eq!(theirs.body.site, other);
    assert_ne!(mine.body.credits, theirs.body.credits);
    let nowhere = SiteId::parse("nowhere").expect("id");
    assert!(
        store
            .entry_by_event(&nowhere, &event_id("e1"))
            .await
            .expect("entry")
            .is_none()
    );
    assert!(
        store
            .entry_by_event(&w.site, &event_id("e2"))
            .await
            .expect("entry")
            .is_none()
    );
    // Another site cannot revoke this site's event.
    let out = store
        .ingest(&[revocation(&other, "r1", "e1")], NOW)
        .await
        .expect("ingest");
    assert!(matches!(out[0], Outcome::Accepted { .. }), "revokes its own e1");
    assert_eq!(
        store
            .entry_by_event(&other, &event_id("r1"))
            .await
            .expect("entry")
            .and_then(|e| e.body.refers_to),
        Some(theirs.position)
    );
}
