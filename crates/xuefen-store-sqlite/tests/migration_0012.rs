//! Migration 0012 (the course-history index ends with the completion
//! instant) on a fresh database and on one migrated to 0011 that already
//! holds entries: the index is rebuilt over them, nothing else changes, and
//! credited once still reads right through it.

use std::borrow::Cow;
use std::path::PathBuf;
use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use xuefen_core::entry::EntryKind;
use xuefen_core::plan::Outcome;
use xuefen_store::conformance::{NOW, World, completion, revocation, site_id};
use xuefen_store::verify::verify_ledger;
use xuefen_store::{LedgerStore, Store};
use xuefen_store_sqlite::{MIGRATOR, SqliteSettings, SqliteStore};

struct TempDb(PathBuf);

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

fn temp_db() -> (TempDb, SqliteSettings) {
    let path = std::env::temp_dir().join(format!("xuefen-0012-{}.db", rand::random::<u64>()));
    let settings = SqliteSettings {
        url: format!("sqlite://{}", path.display()),
        pool_connections_max: 1,
    };
    (TempDb(path), settings)
}

async fn index_columns(store: &SqliteStore) -> String {
    sqlx::query_scalar(
        "select group_concat(name, ',') from
           (select name from pragma_index_info('ledger_entries_learner_course') order by seqno)",
    )
    .fetch_one(store.pool())
    .await
    .expect("index columns")
}

async fn scalar(store: &SqliteStore, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(store.pool()).await.expect(sql)
}

#[tokio::test]
async fn a_fresh_database_has_the_course_history_index_ending_with_the_instant() {
    let (_file, settings) = temp_db();
    let store = SqliteStore::connect(&settings, true).await.expect("migrate");
    assert_eq!(
        index_columns(&store).await,
        "learner_id,site_id,course_code,occurred_at_ms"
    );
}

#[tokio::test]
async fn migrating_a_ledger_with_entries_from_0011_rebuilds_the_index_and_keeps_every_entry() {
    let (_file, settings) = temp_db();
    let up_to_0011 = Migrator {
        migrations: Cow::Owned(
            MIGRATOR
                .migrations
                .iter()
                .filter(|m| m.version <= 11)
                .cloned()
                .collect(),
        ),
        ..Migrator::DEFAULT
    };
    let options = SqliteConnectOptions::from_str(&settings.url)
        .expect("url")
        .create_if_missing(true);
    let pool = SqlitePool::connect_with(options).await.expect("create");
    up_to_0011.run(&pool).await.expect("migrate to 0011");
    pool.close().await;
    let store = SqliteStore::connect(&settings, false).await.expect("open at 0011");
    assert_eq!(index_columns(&store).await, "learner_id,site_id,course_code");

    // A ledger written under 0011: awards, a reversal, a recognised repeat.
    let w = World::build(&store, site_id(), 2).await;
    let batch = [
        completion(&w.site, "a-1", w.by_id(0), 10_00),
        completion(&w.site, "b-1", w.by_id(1), 10_00),
    ];
    store.ingest(&batch, NOW).await.expect("awards");
    store
        .ingest(&[revocation(&w.site, "b-r", "b-1")], NOW)
        .await
        .expect("reversal");
    store
        .ingest(&[completion(&w.site, "a-2", w.by_id(0), 5_00)], NOW)
        .await
        .expect("repeat");
    let entries = scalar(&store, "select count(*) from ledger_entries").await;
    assert_eq!(entries, 4);
    drop(store);

    let store = SqliteStore::connect(&settings, true).await.expect("migrate from 0011");
    store.ready().await.expect("schema is current");
    assert_eq!(
        index_columns(&store).await,
        "learner_id,site_id,course_code,occurred_at_ms"
    );
    assert_eq!(scalar(&store, "select count(*) from ledger_entries").await, entries);
    assert!(scalar(&store, "select max(version) from _sqlx_migrations").await >= 12);
    let report = verify_ledger(&store, |_| {}).await.expect("verify");
    assert_eq!(report.entries, 4);

    // Through the rebuilt index: learner 0 is paid (a re-send at the same
    // instant is recognised and reported), learner 1's payment was reversed.
    let out = store
        .ingest(
            &[
                completion(&w.site, "a-3", w.by_id(0), 10_00),
                completion(&w.site, "b-2", w.by_id(1), 10_00),
            ],
            NOW,
        )
        .await
        .expect("after the migration");
    let kinds: Vec<(EntryKind, Option<String>)> = out
        .iter()
        .map(|o| match o {
            Outcome::Accepted {
                kind,
                likely_duplicate_of,
                ..
            } => (*kind, likely_duplicate_of.as_ref().map(|e| e.as_str().to_owned())),
            other => panic!("not accepted: {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (EntryKind::Recognised, Some("a-1".to_owned())),
            (EntryKind::Awarded, Some("b-1".to_owned())),
        ]
    );
}
