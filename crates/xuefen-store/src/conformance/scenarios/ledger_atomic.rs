//! Scenarios of atomic batches: a batch the database refuses or the caller abandons is in
//! the ledger whole or not at all; no personal data enters a row.

use super::*;

/// Installs (or removes) a trigger that makes the database refuse one of
/// the store's writes, as a full disk or a lost connection would.
async fn refuse<B: Backend>(db: &B, table: &str, when: &str) {
    let sql = match db.dialect() {
        Dialect::Sqlite => {
            let event = if table == "ledger_entries" { "insert" } else { "update" };
            format!(
                "create trigger conformance_refuse before {event} on {table} when {when}
                 begin select raise(abort, 'conformance: write refused'); end"
            )
        }
        Dialect::Postgres => {
            let event = if table == "ledger_entries" { "insert" } else { "update" };
            format!(
                "create function conformance_refuse() returns trigger language plpgsql as $$
                 begin raise exception 'conformance: write refused'; end $$;
                 create trigger conformance_refuse before {event} on {table}
                 for each row when ({when}) execute function conformance_refuse();"
            )
        }
    };
    db.execute(&sql).await.expect("install the refusing trigger");
}

async fn stop_refusing<B: Backend>(db: &B, table: &str) {
    let sql = match db.dialect() {
        Dialect::Sqlite => "drop trigger conformance_refuse".to_owned(),
        Dialect::Postgres => {
            format!("drop trigger conformance_refuse on {table}; drop function conformance_refuse();")
        }
    };
    db.execute(&sql).await.expect("remove the refusing trigger");
}

/// After a failed batch: nothing of it is in the ledger, the heads did not
/// move, and the same batch then goes through whole.
async fn nothing_then_whole<B: Backend>(db: &B, w: &World, batch: &[Event], table: &str) {
    let store = db.store();
    let before_count = entry_count(db).await;
    let before_heads = store.heads().await.expect("heads");
    let failed = store.ingest(batch, NOW).await;
    assert!(
        matches!(failed, Err(StoreError::Database(_))),
        "the refused write fails the batch: {failed:?}"
    );
    assert_eq!(entry_count(db).await, before_count, "a failed batch leaves no entry");
    assert_eq!(store.heads().await.expect("heads"), before_heads, "nor a moved head");
    for e in batch {
        assert!(store.entry_by_event(&w.site, &e.id).await.expect("entry").is_none());
    }
    verify_ledger(store.as_ref(), |_| {}).await.expect("still verifies");

    stop_refusing(db, table).await;
    let mut lookups = w.lookups();
    for (chain, head) in &before_heads {
        lookups.heads.insert(*chain, *head);
    }
    for e in all_entries(store.as_ref()).await {
        remember(&mut lookups, std::slice::from_ref(&e));
        lookups
            .entries
            .insert((e.body.site.clone(), e.body.event_id.clone()), e);
    }
    let expected = plan::plan(batch, NOW, &lookups);
    let out = store.ingest(batch, NOW).await.expect("the retry goes through");
    assert_eq!(out, expected.outcomes, "the retry is judged afresh");
    assert_eq!(entry_count(db).await, before_count + expected.entries.len() as i64);
    verify_ledger(store.as_ref(), |_| {}).await.expect("verifies");
}

/// A batch of 1 200 events whose very last entry the database refuses
/// (after the first statements of the batch went through, on stores that
/// write in several statements) leaves nothing behind.
pub async fn a_batch_whose_insert_fails_midway_writes_nothing<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 5).await;
    store
        .ingest(&[completion(&w.site, "before", w.by_id(0), 10_00)], NOW)
        .await
        .expect("ingest");
    let mut batch: Vec<Event> = (0..1_199)
        .map(|i| completion(&w.site, &format!("e{i}"), w.by_id(i % 5), 10_00))
        .collect();
    batch.push(completion(&w.site, "poison", w.by_id(0), 10_00));
    refuse(db, "ledger_entries", "new.event_id = 'poison'").await;
    nothing_then_whole(db, &w, &batch, "ledger_entries").await;
}

/// A batch whose entries are all inserted but whose chain-head update is
/// refused leaves nothing behind either.
pub async fn a_batch_whose_head_update_fails_writes_nothing<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 3).await;
    store
        .ingest(&[completion(&w.site, "before", w.by_id(0), 10_00)], NOW)
        .await
        .expect("ingest");
    let batch: Vec<Event> = (0..30)
        .map(|i| completion(&w.site, &format!("e{i}"), w.by_id(i % 3), 10_00))
        .chain([revocation(&w.site, "r-before", "before")])
        .collect();
    let last_chain = w.chain(2);
    refuse(db, "chain_heads", &format!("new.chain_id = {last_chain}")).await;
    nothing_then_whole(db, &w, &batch, "chain_heads").await;
}

/// 1 300 completions and 200 revocations in one batch: all written once,
/// and all duplicates the second time.
pub async fn a_large_batch_is_written_whole<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 40).await;
    let mut batch: Vec<Event> = (0..1_300)
        .map(|i| completion(&w.site, &format!("e{i}"), w.by_id(i % 40), 10_00))
        .collect();
    batch.extend((0..200).map(|i| revocation(&w.site, &format!("r{i}"), &format!("e{i}"))));
    let expected = plan::plan(&batch, NOW, &w.lookups());
    let out = store.ingest(&batch, NOW).await.expect("ingest");
    assert_eq!(out, expected.outcomes);
    assert!(out.iter().all(|o| matches!(o, Outcome::Accepted { .. })));
    // 1 500 events, and a promotion for each revocation: e0..e199 are the
    // first five c1 completions of each of the 40 learners, revoked in
    // order, so each reverses the paid one and promotes the next.
    assert_eq!(expected.entries.len(), 1_700);
    assert_eq!(entry_count(db).await, 1_700);
    let again = store.ingest(&batch, NOW).await.expect("again");
    assert!(again.iter().all(|o| matches!(o, Outcome::Duplicate { .. })));
    assert_eq!(entry_count(db).await, 1_700);
    let report = verify_ledger(store.as_ref(), |_| {}).await.expect("verifies");
    assert_eq!(report.entries, 1_700);
}

/// A batch abandoned at any instant (the caller gone, the process
/// stopping) is in the ledger whole or not at all, the chain still
/// verifies, and the store keeps working.
pub async fn a_batch_cancelled_at_any_instant_is_all_or_nothing<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 8).await;
    let batch_of = |round: usize| -> Vec<Event> {
        (0..400)
            .map(|i| completion(&w.site, &format!("c{round}-{i}"), w.by_id(i % 8), 10_00))
            .collect()
    };
    // How long one such batch takes here, to abandon the next ones at
    // instants spread over their whole run, the commit included.
    let started = std::time::Instant::now();
    store.ingest(&batch_of(0), NOW).await.expect("ingest");
    let full = started.elapsed();
    let mut written = 400i64;
    let mut seen = BTreeSet::new();
    for round in 1..=30u32 {
        let batch = batch_of(round as usize);
        let wait = full * (round - 1) / 20;
        let attempt = tokio::time::timeout(wait, store.ingest(&batch, NOW)).await;
        // Whatever happened, the batch is whole or absent, right away and
        // once a commit already on its way to the database has had time to
        // finish (abandoning the caller does not stop the database).
        let whole_or_nothing = |landed: i64, when: &str| {
            assert!(
                landed == 0 || landed == batch.len() as i64,
                "abandoned after {wait:?}, {when}: {landed} of {} entries are in the ledger",
                batch.len()
            );
        };
        whole_or_nothing(entry_count(db).await - written, "at once");
        // A store that finishes abandoned work does so in the background;
        // on a busy machine that can take far longer than the batch did, so
        // wait for it (bounded) rather than for a fixed time.
        let settle_until = std::time::Instant::now() + (full * 20).max(std::time::Duration::from_secs(3));
        let mut landed = entry_count(db).await - written;
        while landed == 0 && std::time::Instant::now() < settle_until {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            landed = entry_count(db).await - written;
            whole_or_nothing(landed, "settling");
        }
        whole_or_nothing(landed, "settled");
        if let Ok(done) = &attempt {
            assert_eq!(
                landed,
                batch.len() as i64,
                "an acknowledged batch is in the ledger: {done:?}"
            );
        }
        seen.insert(match (&attempt, landed) {
            (Ok(_), _) => "committed",
            (Err(_), 0) => "nothing landed",
            (Err(_), _) => "landed, answer lost",
        });
        verify_ledger(store.as_ref(), |_| {})
            .await
            .expect("verifies after a cancelled batch");
        // ...and posting it again completes it, judged against what landed.
        let out = store.ingest(&batch, NOW).await.expect("the store still works");
        let fresh = out.iter().filter(|o| matches!(o, Outcome::Accepted { .. })).count() as i64;
        let repeats = out.iter().filter(|o| matches!(o, Outcome::Duplicate { .. })).count() as i64;
        let expected = if landed == 0 {
            (batch.len() as i64, 0)
        } else {
            (0, landed)
        };
        assert_eq!((fresh, repeats), expected);
        written += batch.len() as i64;
        assert_eq!(entry_count(db).await, written);
    }
    eprintln!("a batch takes {full:?}; abandoned batches: {seen:?}");
    // A store may finish an abandoned batch on its own (both do now) or
    // roll it back; either way some batches must have been abandoned before
    // they answered.
    assert!(
        seen.contains("nothing landed") || seen.contains("landed, answer lost"),
        "no batch was abandoned midway: {seen:?}"
    );
    let report = verify_ledger(store.as_ref(), |_| {}).await.expect("verifies");
    assert_eq!(report.entries, written as u64);
}

/// No personal data enters the ledger: a learner's name and identity
/// document (even its keyed hash) appear nowhere in the stored rows or the
/// hashed bytes, only the unified learner id does.
pub async fn entries_hold_no_personal_data<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 2).await;
    let out = store
        .ingest(
            &[
                completion(&w.site, "e1", w.by_id(0), 10_00),
                scored(&w.site, "e2", w.by_account(1), 80_00),
                revocation(&w.site, "r1", "e1"),
            ],
            NOW,
        )
        .await
        .expect("ingest");
    assert!(out.iter().all(|o| matches!(o, Outcome::Accepted { .. })));
    for (i, e) in all_entries(store.as_ref()).await.iter().enumerate() {
        let p = person(if e.body.learner == w.learners[0] { 1 } else { 2 });
        let bytes = e.body.encode();
        let holds = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        // Version 2: the learner is a commitment under their secret, at
        // this position; neither the id nor the secret is in the bytes.
        assert_eq!(
            e.body.commitment,
            Some(xuefen_core::entry::learner_commitment(&p.secret, e.position)),
            "entry {i} names its learner by a commitment"
        );
        assert!(
            !holds(e.body.learner.as_str().as_bytes()),
            "entry {i} holds the learner id"
        );
        assert!(!holds(&p.secret), "entry {i} holds the learner's secret");
        assert!(!holds(p.name.as_bytes()), "entry {i} holds the learner's name");
        assert!(!holds(&p.document_hash), "entry {i} holds the document hash");
        assert!(
            !holds(&p.document_hash[..8]),
            "entry {i} holds part of the document hash"
        );
    }
    let named = db
        .query_i64(
            "select count(*) from ledger_entries l join learners p on p.id = l.learner_id
              where l.reason like '%' || p.name || '%' or l.event_id like '%' || p.name || '%'",
        )
        .await
        .expect("search names");
    assert_eq!(named, 0);
}
