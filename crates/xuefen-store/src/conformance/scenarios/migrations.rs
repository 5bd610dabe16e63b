//! Scenarios of schema migrations over a database that already holds a
//! ledger: a deployment upgraded in place keeps every entry, its chains
//! still verify, and the store reads right through the rebuilt indexes.
//! Each starts from [`Backend::fresh_at_version`] and upgrades with
//! [`Backend::migrate`], as `xuefen migrate` does.

use super::*;

/// The columns of the course-history index, in order, as the catalogue of
/// each dialect lists them.
async fn course_history_index<B: Backend>(db: &B) -> String {
    let sql = match db.dialect() {
        Dialect::Sqlite => {
            "select group_concat(name, ',') from
               (select name from pragma_index_info('ledger_entries_learner_course') order by seqno)"
        }
        Dialect::Postgres => {
            "select string_agg(a.attname, ',' order by k.n)
               from pg_index i
               join pg_class c on c.oid = i.indexrelid
               cross join unnest(i.indkey::int2[]) with ordinality as k(attnum, n)
               join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
              where c.relname = 'ledger_entries_learner_course'"
        }
    };
    db.query_text(sql).await.expect("index columns")
}

/// The course-history index of a current schema: ending with the entry
/// kind, then the completion instant.
const COURSE_HISTORY_INDEX: &str = "learner_id,site_id,course_code,kind,occurred_at_ms";

/// Migrations 0012 and 0016: a fresh database has the course-history index
/// ending with the entry kind and the completion instant.
pub async fn a_fresh_database_has_the_course_history_index_ending_with_kind_and_instant<B: Backend>(db: &B) {
    assert_eq!(course_history_index(db).await, COURSE_HISTORY_INDEX);
}

/// Migrations 0012 and 0016 on a ledger written under 0011 (awards, a
/// reversal, a recognised repeat): the index is rebuilt over the entries, nothing else
/// changes, and credited once still reads right through it.
pub async fn migrating_a_ledger_with_entries_from_0011_rebuilds_the_index_and_keeps_every_entry<B: Backend>(
    _fresh: &B,
) {
    let db = B::fresh_at_version(11).await;
    assert_eq!(course_history_index(&db).await, "learner_id,site_id,course_code");
    let store = db.store();

    // A ledger written under 0011: awards, a reversal, a recognised repeat.
    let w = World::build(&*store, site_id(), 2).await;
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
    let entries = entry_count(&db).await;
    assert_eq!(entries, 4);

    db.migrate().await;
    store.ready().await.expect("schema is current");
    assert_eq!(course_history_index(&db).await, COURSE_HISTORY_INDEX);
    assert_eq!(entry_count(&db).await, entries);
    let version = db
        .query_i64("select max(version) from _sqlx_migrations")
        .await
        .expect("migration version");
    assert!(version >= 16, "migrated to {version}");
    let report = verify_ledger(&*store, |_| {}).await.expect("verify");
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
    db.close().await;
}
