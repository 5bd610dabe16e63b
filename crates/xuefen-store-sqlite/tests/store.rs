//! What only the SQLite store has: opening and migrating a database file,
//! the connection settings that make a commit durable, STRICT tables, and a
//! one-connection pool surviving a failed batch. Everything both backends
//! must do is in the conformance suite (`tests/conformance.rs`).

use std::path::PathBuf;

use xuefen_core::event::{Completion, Event, EventBody, LearnerRef, Millis};
use xuefen_core::identity::DocumentKind;
use xuefen_core::ids::{CourseCode, EventId, LearnerId, Position, SiteId};
use xuefen_core::plan::Outcome;
use xuefen_store::conformance::{NOW, act, hours_course, site, site_id};
use xuefen_store::verify::verify_ledger;
use xuefen_store::{CourseStore, LearnerStore, LedgerStore, NewLearner, SiteStore, Store, StoreError};
use xuefen_store_sqlite::{SqliteSettings, SqliteStore};

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

async fn entry_count(store: &SqliteStore) -> i64 {
    sqlx::query_scalar("select count(*) from ledger_entries")
        .fetch_one(store.pool())
        .await
        .expect("count")
}

#[tokio::test]
async fn a_new_file_needs_migrating_and_reopening_migrates_nothing() {
    let db = TempDb::new();
    // Without migrations the file is created but has no chains.
    let empty = SqliteStore::connect(&db.settings(1), false).await;
    assert!(empty.is_err(), "a fresh file has no chains");

    let store = open(&db, 2).await;
    store.ready().await.expect("ready");
    let migrations: i64 = sqlx::query_scalar("select count(*) from _sqlx_migrations")
        .fetch_one(store.pool())
        .await
        .expect("migrations");
    store.pool().close().await;

    // Opening again, with or without migrating, runs nothing new.
    let again = SqliteStore::connect(&db.settings(2), false).await.expect("reopen");
    again.ready().await.expect("ready");
    let again = open(&db, 2).await;
    let after: i64 = sqlx::query_scalar("select count(*) from _sqlx_migrations")
        .fetch_one(again.pool())
        .await
        .expect("migrations");
    assert_eq!(after, migrations);
    let report = verify_ledger(&again, |_| {}).await.expect("empty ledger");
    assert_eq!((report.chains, report.entries), (64, 0));
}

/// Every pooled connection runs in WAL mode with `synchronous = FULL`
/// (a commit fsyncs the WAL, so a 2xx is durable) and enforces foreign keys.
#[tokio::test]
async fn every_connection_is_durable_wal_with_foreign_keys() {
    let db = TempDb::new();
    let store = open(&db, 4).await;
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(store.pool().acquire().await.expect("connection"));
    }
    for conn in &mut conns {
        let journal: String = sqlx::query_scalar("pragma journal_mode")
            .fetch_one(&mut **conn)
            .await
            .expect("journal_mode");
        let synchronous: i64 = sqlx::query_scalar("pragma synchronous")
            .fetch_one(&mut **conn)
            .await
            .expect("synchronous");
        let foreign_keys: i64 = sqlx::query_scalar("pragma foreign_keys")
            .fetch_one(&mut **conn)
            .await
            .expect("foreign_keys");
        // synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
        assert_eq!((journal.as_str(), synchronous, foreign_keys), ("wal", 2, 1));
    }
    drop(conns);
    // A course of a site that does not exist is refused by the foreign key.
    let orphan = store.put_course(&hours_course(site_id())).await;
    assert!(matches!(orphan, Err(StoreError::Database(_))), "{orphan:?}");
}

/// STRICT tables refuse a value of the wrong type instead of storing it
/// under SQLite's type affinity, so that integers and bytes come back as
/// they were written.
#[tokio::test]
async fn strict_tables_refuse_values_of_the_wrong_type() {
    let db = TempDb::new();
    let store = open(&db, 1).await;
    let wrong = sqlx::query(
        "insert into learners (id, chain_id, document_kind, document_hash, name)
         values ('lrn_x', 'seven', 'passport', x'00', 'n')",
    )
    .execute(store.pool())
    .await;
    assert!(wrong.is_err_and(|e| e.to_string().contains("cannot store TEXT value in INTEGER column")));
    let wrong = sqlx::query("update chain_heads set hash = 'not bytes' where chain_id = 0")
        .execute(store.pool())
        .await;
    assert!(wrong.is_err_and(|e| e.to_string().contains("cannot store TEXT value in BLOB column")));
}

/// With a single pooled connection, a batch that fails inside its
/// transaction leaves that connection usable: the retry runs on it and
/// starts from a clean state.
#[tokio::test]
async fn a_failed_batch_leaves_its_connection_usable() {
    let db = TempDb::new();
    let store = open(&db, 1).await;
    store.create_site(&site(site_id()), &act("joined")).await.expect("site");
    store.put_course(&hours_course(site_id())).await.expect("course");
    let person = NewLearner {
        candidate: LearnerId::from_random([1; 16]),
        document_kind: DocumentKind::Passport,
        document_hash: [1; 32],
        name: "Wang Fang".into(),
        secret: [7; 32],
        wrapped_key: None,
    };
    let (learner, _) = store.register_learner(&person).await.expect("learner");
    // Fail the batch after its entries are inserted, at the heads update.
    sqlx::query(
        "create trigger test_heads_fail before update on chain_heads
         begin select raise(abort, 'heads refused'); end",
    )
    .execute(store.pool())
    .await
    .expect("trigger");
    let batch = [Event {
        site: SiteId::parse("xihu").expect("site"),
        id: EventId::parse("e1").expect("event id"),
        body: EventBody::Completion(Completion {
            course: CourseCode::parse("c1").expect("code"),
            learner: LearnerRef::Id(learner),
            completed_at: Millis(NOW.0 - 1000),
            score: None,
            hours: Some(xuefen_core::amount::Hours::from_cents(10_00)),
        }),
    }];
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
