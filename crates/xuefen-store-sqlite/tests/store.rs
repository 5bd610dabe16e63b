//! The SQLite store against real database files.

use std::path::PathBuf;
use std::sync::Arc;

use xuefen_core::amount::{Credits, Hours, Score};
use xuefen_core::entry::EntryKind;
use xuefen_core::event::{Completion, Event, EventBody, LearnerRef, Millis, Reason, Revocation};
use xuefen_core::identity::DocumentKind;
use xuefen_core::ids::{
    Category, CourseCode, EventId, LearnerId, LocalAccount, Position, RegionCode, SiteId, SiteLevel, SiteStatus,
};
use xuefen_core::plan::{self, Head, Lookups, Outcome};
use xuefen_core::rule::CreditRule;
use xuefen_core::verify::Fault;
use xuefen_store::verify::{VerifyFailure, verify_ledger};
use xuefen_store::{Course, NewKey, NewLearner, Principal, Site, Store, StoreError, Written};
use xuefen_store_sqlite::{SqliteSettings, SqliteStore};

const NOW: Millis = Millis(1_760_000_000_000);

/// A database file of its own, removed (with its WAL files) on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("xuefen-store-sqlite-{}.db", rand::random::<u64>())))
    }

    fn settings(&self, pool_connections_max: u32) -> SqliteSettings {
        SqliteSettings {
            url: format!("sqlite://{}", self.0.display()),
            pool_connections_max,
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

async fn open(db: &TempDb, pool: u32) -> SqliteStore {
    SqliteStore::connect(&db.settings(pool), true)
        .await
        .expect("connect and migrate")
}

fn site_id() -> SiteId {
    SiteId::parse("xihu").expect("site id")
}

fn site() -> Site {
    Site {
        id: site_id(),
        name: "Xihu community college".into(),
        level: SiteLevel::County,
        region_code: RegionCode::parse("330106").expect("region"),
        status: SiteStatus::Active,
    }
}

fn course() -> Course {
    Course {
        site: site_id(),
        code: CourseCode::parse("c1").expect("code"),
        title: "Tea culture".into(),
        category: Category::parse("community").expect("category"),
        rule: CreditRule::PerHours {
            hours_per_credit: Hours::from_cents(5_00),
            cap: Credits::from_cents(4_00),
        },
        pass_mark: None,
        rule_version: 1,
    }
}

fn new_learner(name: &str) -> NewLearner {
    NewLearner {
        candidate: LearnerId::from_random(rand::random()),
        document_kind: DocumentKind::Passport,
        document_hash: rand::random(),
        name: name.into(),
    }
}

/// A site with a course and `n` learners.
async fn fixture(store: &SqliteStore, n: usize) -> Vec<LearnerId> {
    store.create_site(&site()).await.expect("site");
    store.put_course(&course()).await.expect("course");
    let mut learners = Vec::new();
    for i in 0..n {
        let (id, written) = store
            .register_learner(&new_learner(&format!("learner {i}")))
            .await
            .expect("learner");
        assert_eq!(written, Written::Created);
        learners.push(id);
    }
    learners
}

fn completion(id: &str, learner: LearnerRef, hours: i64) -> Event {
    Event {
        site: site_id(),
        id: EventId::parse(id).expect("event id"),
        body: EventBody::Completion(Completion {
            course: CourseCode::parse("c1").expect("code"),
            learner,
            completed_at: Millis(NOW.0 - 1000),
            score: None,
            hours: Some(Hours::from_cents(hours)),
        }),
    }
}

fn revocation(id: &str, target: &str) -> Event {
    Event {
        site: site_id(),
        id: EventId::parse(id).expect("event id"),
        body: EventBody::Revocation(Revocation {
            target: EventId::parse(target).expect("event id"),
            reason: Reason::parse("entered in error", "reason").expect("reason"),
        }),
    }
}

async fn entry_count(store: &SqliteStore) -> i64 {
    sqlx::query_scalar("select count(*) from ledger_entries")
        .fetch_one(store.pool())
        .await
        .expect("count")
}

#[tokio::test]
async fn migrations_create_64_empty_chains_and_the_schema_is_ready() {
    let db = TempDb::new();
    // Without migrations the schema is not there.
    let empty = SqliteStore::connect(&db.settings(1), false).await;
    assert!(empty.is_err(), "a fresh file has no chains");

    let store = open(&db, 2).await;
    store.ready().await.expect("ready");
    let heads = store.heads().await.expect("heads");
    assert_eq!(heads.len(), 64);
    assert!(
        heads
            .iter()
            .enumerate()
            .all(|(i, (chain, head))| *chain == i as u32 && *head == Head::EMPTY)
    );
    // Opening again runs nothing new.
    let again = open(&db, 2).await;
    again.ready().await.expect("ready");
    let report = verify_ledger(&again, |_| {}).await.expect("empty ledger");
    assert_eq!((report.chains, report.entries), (64, 0));
}

#[tokio::test]
async fn sites_keys_learners_accounts_and_courses() {
    let db = TempDb::new();
    let store = open(&db, 2).await;

    store.create_site(&site()).await.expect("site");
    assert!(matches!(store.create_site(&site()).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.site(&site_id()).await.expect("site"), Some(site()));
    assert_eq!(store.sites().await.expect("sites"), vec![site()]);
    let suspended = store
        .set_site_status(&site_id(), SiteStatus::Suspended)
        .await
        .expect("status");
    assert_eq!(suspended.status, SiteStatus::Suspended);
    let nowhere = SiteId::parse("nowhere").expect("id");
    assert!(matches!(
        store.set_site_status(&nowhere, SiteStatus::Active).await,
        Err(StoreError::NotFound)
    ));

    assert!(!store.admin_key_exists().await.expect("admin?"));
    let admin = NewKey {
        id: "k_admin".into(),
        principal: Principal::Admin,
        secret_hash: [1; 32],
    };
    let site_key = NewKey {
        id: "k_site".into(),
        principal: Principal::Site(site_id()),
        secret_hash: [2; 32],
    };
    store.create_key(&admin).await.expect("admin key");
    store.create_key(&site_key).await.expect("site key");
    assert!(store.admin_key_exists().await.expect("admin?"));
    let found = store.key_by_hash(&[2; 32]).await.expect("lookup").expect("found");
    assert_eq!(found.principal, Principal::Site(site_id()));
    assert_eq!(found.site_status, Some(SiteStatus::Suspended));
    assert!(!found.revoked);
    store.revoke_key("k_site").await.expect("revoke");
    store.revoke_key("k_site").await.expect("revoke again");
    assert!(matches!(store.revoke_key("k_none").await, Err(StoreError::NotFound)));
    let found = store.key_by_hash(&[2; 32]).await.expect("lookup");
    assert!(found.is_some_and(|k| k.revoked));
    let admin_found = store.key_by_hash(&[1; 32]).await.expect("lookup");
    assert!(admin_found.is_some_and(|k| k.principal == Principal::Admin && k.site_status.is_none()));
    assert!(store.key_by_hash(&[3; 32]).await.expect("lookup").is_none());

    let person = new_learner("Wang Fang");
    let (id, written) = store.register_learner(&person).await.expect("register");
    assert_eq!((&id, written), (&person.candidate, Written::Created));
    let same_person = NewLearner {
        candidate: LearnerId::from_random(rand::random()),
        ..person.clone()
    };
    let (again, written) = store.register_learner(&same_person).await.expect("register");
    assert_eq!((again, written), (id.clone(), Written::Existing));
    assert!(store.learner_exists(&id).await.expect("exists"));
    assert!(!store.learner_exists(&same_person.candidate).await.expect("exists"));
    let (other, _) = store.register_learner(&new_learner("Li Lei")).await.expect("register");

    let account = LocalAccount::parse("u-1").expect("account");
    assert!(!store.site_knows_learner(&site_id(), &id).await.expect("knows"));
    assert_eq!(
        store.link_account(&site_id(), &account, &id).await.expect("link"),
        Written::Created
    );
    assert_eq!(
        store.link_account(&site_id(), &account, &id).await.expect("link"),
        Written::Existing
    );
    assert!(matches!(
        store.link_account(&site_id(), &account, &other).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.site_knows_learner(&site_id(), &id).await.expect("knows"));
    assert!(!store.site_knows_learner(&site_id(), &other).await.expect("knows"));

    let (stored, written) = store.put_course(&course()).await.expect("course");
    assert_eq!((stored.rule_version, written), (1, Written::Created));
    let retitled = Course {
        title: "Tea culture, revised".into(),
        ..course()
    };
    let (stored, written) = store.put_course(&retitled).await.expect("course");
    assert_eq!((stored.rule_version, written), (1, Written::Existing));
    let with_pass_mark = Course {
        pass_mark: Some(Score::from_cents(60_00)),
        ..retitled.clone()
    };
    let (stored, _) = store.put_course(&with_pass_mark).await.expect("course");
    assert_eq!(stored.rule_version, 2);
    let fixed = Course {
        rule: CreditRule::Fixed {
            credits: Credits::from_cents(1_50),
        },
        ..with_pass_mark.clone()
    };
    store.put_course(&fixed).await.expect("course");
    let read = store
        .course(&site_id(), &course().code)
        .await
        .expect("course")
        .expect("found");
    assert_eq!(
        read,
        Course {
            rule_version: 3,
            ..fixed
        }
    );
}

#[tokio::test]
async fn a_batch_is_written_once_verifies_and_tampering_is_named() {
    let db = TempDb::new();
    let store = open(&db, 4).await;
    let learners = fixture(&store, 2).await;
    let account = LocalAccount::parse("u-2").expect("account");
    store
        .link_account(&site_id(), &account, &learners[1])
        .await
        .expect("link");

    let batch = [
        completion("e1", LearnerRef::Id(learners[0].clone()), 10_00),
        completion("e2", LearnerRef::Account(account.clone()), 25_00),
        completion("e1", LearnerRef::Id(learners[0].clone()), 10_00),
        completion("e1", LearnerRef::Id(learners[0].clone()), 11_00),
        revocation("r1", "e1"),
        completion("e3", LearnerRef::Id(learners[0].clone()), 5_00),
    ];

    // What the pure planner makes of the batch on an empty ledger, to check
    // that the store writes and reads back exactly those entries.
    let mut lookups = Lookups::default();
    for l in &learners {
        lookups.learner_chains.insert(l.clone(), l.chain(64));
    }
    lookups
        .accounts
        .insert((site_id(), account.clone()), learners[1].clone());
    lookups.courses.insert((site_id(), course().code), course().terms());
    let expected = plan::plan(&batch, NOW, &lookups);

    let outcomes = store.ingest(&batch, NOW).await.expect("ingest");
    assert_eq!(outcomes, expected.outcomes);
    let chain0 = learners[0].chain(64);
    assert!(matches!(
        outcomes[0],
        Outcome::Accepted { position: Position { chain, seq: 1 }, kind: EntryKind::Awarded, credits }
            if chain == chain0 && credits == Credits::from_cents(2_00)
    ));
    assert!(matches!(
        outcomes[1],
        Outcome::Accepted { credits, .. } if credits == Credits::from_cents(4_00)
    ));
    assert!(matches!(outcomes[2], Outcome::Duplicate { .. }));
    assert!(matches!(outcomes[3], Outcome::Conflict { field: "hours", .. }));
    assert!(matches!(
        outcomes[4],
        Outcome::Accepted { kind: EntryKind::Reversal, credits, .. }
            if credits == Credits::from_cents(-2_00)
    ));
    assert!(matches!(
        outcomes[5],
        Outcome::Accepted {
            position: Position { seq: 3, .. },
            ..
        }
    ));

    let mut stored = store.learner_entries(&learners[0]).await.expect("entries");
    stored.extend(store.learner_entries(&learners[1]).await.expect("entries"));
    stored.sort_by_key(|e| e.position);
    let mut planned = expected.entries.clone();
    planned.sort_by_key(|e| e.position);
    assert_eq!(stored, planned, "entries round-trip byte for byte");
    let by_event = store
        .entry_by_event(&site_id(), &EventId::parse("r1").expect("id"))
        .await
        .expect("entry")
        .expect("found");
    assert_eq!(by_event.body.target_event.map(EventId::into_string), Some("e1".into()));
    let heads = store.heads().await.expect("heads");
    assert_eq!(heads[chain0 as usize].1, expected.heads[&chain0]);

    // The same batch again writes nothing: every key is found, the
    // revocation's included. A new revocation of `e1` is refused.
    let again = store.ingest(&batch, NOW).await.expect("ingest");
    assert!(matches!(again[0], Outcome::Duplicate { .. }));
    assert!(matches!(
        again[4],
        Outcome::Duplicate {
            kind: EntryKind::Reversal,
            ..
        }
    ));
    let late = store.ingest(&[revocation("r2", "e1")], NOW).await.expect("ingest");
    assert!(matches!(&late[0], Outcome::Rejected(r) if r.code == "already_revoked"));
    assert_eq!(entry_count(&store).await, 4);

    let report = verify_ledger(&store, |_| {}).await.expect("verifies");
    assert_eq!((report.chains, report.entries), (64, 4));

    // The ledger refuses updates and deletes...
    let update = sqlx::query("update ledger_entries set credits_cents = 0")
        .execute(store.pool())
        .await;
    assert!(update.is_err_and(|e| e.to_string().contains("append-only")));
    let delete = sqlx::query("delete from ledger_entries").execute(store.pool()).await;
    assert!(delete.is_err_and(|e| e.to_string().contains("append-only")));
    assert_eq!(entry_count(&store).await, 4);

    // ...and verification names an entry altered behind the trigger's back.
    sqlx::query("drop trigger ledger_entries_append_only_update")
        .execute(store.pool())
        .await
        .expect("drop trigger");
    sqlx::query("update ledger_entries set credits_cents = credits_cents + 1 where chain_id = ?1 and seq = 3")
        .bind(i64::from(chain0))
        .execute(store.pool())
        .await
        .expect("tamper");
    match verify_ledger(&store, |_| {}).await {
        Err(VerifyFailure::Chain(e)) => {
            assert_eq!(e.position, Position { chain: chain0, seq: 3 });
            assert_eq!(e.fault, Fault::HashMismatch);
            assert!(e.to_string().contains(&format!("chain {chain0} position 3")));
        }
        other => panic!("expected a chain fault, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_ingests_of_one_event_write_it_once() {
    let db = TempDb::new();
    let store = Arc::new(open(&db, 8).await);
    let learners = fixture(&store, 1).await;
    let learner = learners[0].clone();

    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = Arc::clone(&store);
        let event = completion("same", LearnerRef::Id(learner.clone()), 10_00);
        tasks.push(tokio::spawn(async move { store.ingest(&[event], NOW).await }));
    }
    let mut accepted = 0;
    for task in tasks {
        let outcomes = task.await.expect("task").expect("ingest");
        match outcomes[0] {
            Outcome::Accepted { .. } => accepted += 1,
            Outcome::Duplicate { .. } => {}
            ref other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!(entry_count(&store).await, 1);

    // Distinct events racing for the same chain all land, in one chain.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = Arc::clone(&store);
        let event = completion(&format!("e{i}"), LearnerRef::Id(learner.clone()), 10_00);
        tasks.push(tokio::spawn(async move { store.ingest(&[event], NOW).await }));
    }
    for task in tasks {
        let outcomes = task.await.expect("task").expect("ingest");
        assert!(matches!(outcomes[0], Outcome::Accepted { .. }));
    }
    let report = verify_ledger(store.as_ref(), |_| {}).await.expect("verifies");
    assert_eq!(report.entries, 17);
}

#[tokio::test]
async fn a_large_batch_spans_several_statements() {
    let db = TempDb::new();
    let store = open(&db, 2).await;
    let learners = fixture(&store, 40).await;
    // 1 300 completions and 200 revocations: three entry inserts of up to
    // 500 rows each.
    let mut batch: Vec<Event> = (0..1300)
        .map(|i| {
            let learner = LearnerRef::Id(learners[i % learners.len()].clone());
            completion(&format!("e{i}"), learner, 10_00)
        })
        .collect();
    batch.extend((0..200).map(|i| revocation(&format!("r{i}"), &format!("e{i}"))));

    let outcomes = store.ingest(&batch, NOW).await.expect("ingest");
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Accepted { .. })));
    assert_eq!(entry_count(&store).await, 1500);

    let again = store.ingest(&batch, NOW).await.expect("ingest");
    assert!(again.iter().all(|o| matches!(o, Outcome::Duplicate { .. })));
    assert_eq!(entry_count(&store).await, 1500);

    let report = verify_ledger(&store, |_| {}).await.expect("verifies");
    assert_eq!(report.entries, 1500);
}

#[tokio::test]
async fn a_failed_batch_leaves_nothing_behind() {
    let db = TempDb::new();
    // One connection: the retry below must reuse the one that failed.
    let store = open(&db, 1).await;
    let learners = fixture(&store, 1).await;
    // Fail the batch after its entries are inserted, at the heads update.
    sqlx::query(
        "create trigger test_heads_fail before update on chain_heads
         begin select raise(abort, 'heads refused'); end",
    )
    .execute(store.pool())
    .await
    .expect("trigger");
    let batch = [completion("e1", LearnerRef::Id(learners[0].clone()), 10_00)];
    let failed = store.ingest(&batch, NOW).await;
    assert!(matches!(failed, Err(StoreError::Database(_))));
    assert_eq!(entry_count(&store).await, 0);

    sqlx::query("drop trigger test_heads_fail")
        .execute(store.pool())
        .await
        .expect("drop trigger");
    let outcomes = store.ingest(&batch, NOW).await.expect("ingest");
    assert!(matches!(
        outcomes[0],
        Outcome::Accepted {
            position: Position { seq: 1, .. },
            ..
        }
    ));
    let report = verify_ledger(&store, |_| {}).await.expect("verifies");
    assert_eq!(report.entries, 1);
}

/// A checkpoint seals what moved, numbers the deposits (awards and
/// reversals of awards) in order, is written by one writer only, and is
/// never made over an entry that no longer verifies.
#[tokio::test]
async fn checkpoints_number_deposits_and_refuse_an_altered_ledger() {
    use xuefen_store::bank::{CheckpointLimits, make_checkpoint};
    let db = TempDb::new();
    let store = open(&db, 2).await;
    let learners = fixture(&store, 3).await;
    let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let limits = CheckpointLimits { chain_entries_max: 2 };
    assert_eq!(make_checkpoint(&store, &key, NOW, limits).await.expect("empty"), None);
    let mut batch: Vec<Event> = (0..5)
        .map(|i| completion(&format!("e{i}"), LearnerRef::Id(learners[i % 3].clone()), 10_00))
        .collect();
    batch.push(revocation("r1", "e1"));
    store.ingest(&batch, NOW).await.expect("ingest");
    // A backlog is sealed over several checkpoints of at most 2 entries per chain.
    let mut made = Vec::new();
    while let Some(n) = make_checkpoint(&store, &key, NOW, limits).await.expect("checkpoint") {
        made.push(n);
    }
    assert!(made.len() >= 2, "{made:?}");
    let latest = store.latest_checkpoint().await.expect("read").expect("latest");
    assert_eq!(latest.checkpoint.entries(), 6);
    assert_eq!(
        latest.checkpoint.deposits_end, 6,
        "5 awards and the reversal of an award"
    );
    let page = store.deposits_after(0, 100).await.expect("page");
    let numbers: Vec<u64> = page.iter().map(|d| d.number).collect();
    assert_eq!(numbers, (1..=6).collect::<Vec<_>>());
    assert!(
        page.windows(2)
            .all(|w| (w[0].checkpoint, w[0].entry.position) < (w[1].checkpoint, w[1].entry.position))
    );

    // Another instance writing the same number loses quietly.
    let again = xuefen_store::bank::NewCheckpoint {
        stored: latest.clone(),
        nodes: Vec::new(),
        deposits: Vec::new(),
    };
    assert_eq!(store.write_checkpoint(&again).await.expect("write"), Written::Existing);

    // An entry altered before it is sealed is never sealed.
    store
        .ingest(&[completion("e9", LearnerRef::Id(learners[0].clone()), 10_00)], NOW)
        .await
        .expect("ingest");
    let altered = store
        .entry_by_event(&site_id(), &EventId::parse("e9").expect("id"))
        .await
        .expect("read")
        .expect("entry");
    sqlx::query("drop trigger ledger_entries_append_only_update")
        .execute(store.pool())
        .await
        .expect("drop guard");
    sqlx::query("update ledger_entries set credits_cents = 99 where event_id = 'e9'")
        .execute(store.pool())
        .await
        .expect("tamper");
    let err = make_checkpoint(&store, &key, NOW, limits).await.expect_err("refused");
    assert!(
        err.to_string().contains(&format!("entry {}", altered.position)),
        "{err}"
    );
    let still = store.latest_checkpoint().await.expect("read").expect("latest");
    assert_eq!(still.checkpoint.number, latest.checkpoint.number);
}
