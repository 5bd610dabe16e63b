//! Scenarios of the one log over sealed entries (`docs/ledger-format.md`,
//! sections 7 to 9): sealing, tiles, checkpoints, the deposit feed, and
//! verification of the log against the entries.

use ed25519_dalek::SigningKey;
use xuefen_core::event::Event;
use xuefen_core::merkle;
use xuefen_core::tlog::{self, LogCheckpoint};

use super::{Backend, Dialect, NOW, World, completion, revocation, site_id};
use crate::Written;
use crate::bank::{CheckpointLimits, Seal, deposit_page, make_checkpoint};
use crate::verify::{VerifyFailure, verify_log};

const ORIGIN: &str = "conformance.example/log";

fn key() -> SigningKey {
    SigningKey::from_bytes(&[3; 32])
}

/// Five awards over three learners (a course that pays every completion)
/// and the reversal of one, sealed in steps of at most two entries per chain.
async fn sealed_six<B: Backend>(db: &B) -> (World, Vec<u64>) {
    let store = db.store();
    let world = World::build(store.as_ref(), site_id(), 3).await;
    // Every completion of the course pays, so the batch writes six entries
    // (under the default, a second completion would be recognised and the
    // reversal would promote it).
    let course = crate::Course {
        repeat: xuefen_core::rule::Repeat::EveryCompletion,
        ..super::hours_course(site_id())
    };
    store.put_course(&course).await.expect("course repeats");
    let limits = CheckpointLimits { chain_entries_max: 2 };
    assert_eq!(
        make_checkpoint(store.as_ref(), &key(), ORIGIN, NOW, limits)
            .await
            .expect("empty"),
        None
    );
    let mut batch: Vec<Event> = (0..5)
        .map(|i| completion(&site_id(), &format!("e{i}"), world.by_id(i % 3), 10_00))
        .collect();
    batch.push(revocation(&site_id(), "r1", "e1"));
    store.ingest(&batch, NOW).await.expect("ingest");
    let mut sizes = Vec::new();
    while let Some(n) = make_checkpoint(store.as_ref(), &key(), ORIGIN, NOW, limits)
        .await
        .expect("seal")
    {
        sizes.push(n);
    }
    (world, sizes)
}

pub async fn sealing_gives_log_indexes_tiles_and_a_signed_checkpoint<B: Backend>(db: &B) {
    let store = db.store();
    let (world, sizes) = sealed_six(db).await;
    assert!(sizes.len() >= 2, "a backlog is sealed over several seals: {sizes:?}");
    assert_eq!(sizes.last(), Some(&6));
    let head = store.log_head().await.expect("read").expect("a checkpoint");
    let cp = LogCheckpoint::open(&head.note, ORIGIN, &key().verifying_key()).expect("signed by the log");
    assert_eq!(cp.size, 6);
    assert!(head.note.starts_with(&format!("{ORIGIN}\n6\n")), "{}", head.note);
    // No row per node and none per deposit: one partial tile of 6 leaves.
    assert_eq!(db.query_i64("select count(*) from log_tiles").await, Ok(1));
    // The root is the RFC 9162 root of the entry hashes in log order.
    let segments = store.log_segments(0, 6).await.expect("segments");
    let mut frontier = merkle::Frontier::new();
    let mut order = Vec::new();
    for s in &segments {
        for e in store
            .chain_range(s.chain, s.first_seq - 1, s.first_seq - 1 + s.count)
            .await
            .expect("entries")
        {
            frontier.push(tlog::leaf(&e.hash));
            order.push(e.position);
        }
    }
    assert_eq!(frontier.root(), cp.root);
    assert_eq!(order.len(), 6);
    // Every entry is a deposit here; the feed serves them in log order with
    // proofs that verify, in pages of any size, and a cursor replays.
    let all = deposit_page(store.as_ref(), 0, 100).await.expect("page");
    let indexes: Vec<u64> = all.deposits.iter().map(|(r, _)| r.index).collect();
    assert_eq!(indexes, (0..6).collect::<Vec<_>>());
    for (r, path) in &all.deposits {
        assert_eq!(r.entry.position, order[r.index as usize]);
        assert!(merkle::verify_inclusion(
            r.index,
            6,
            &tlog::leaf(&r.entry.hash),
            path,
            &cp.root
        ));
    }
    let first = deposit_page(store.as_ref(), 0, 4).await.expect("page");
    assert_eq!(first.deposits.len(), 4);
    assert_eq!(first.next, 4);
    let rest = deposit_page(store.as_ref(), first.next, 4).await.expect("page");
    assert_eq!(
        rest.deposits.iter().map(|(r, _)| r.index).collect::<Vec<_>>(),
        vec![4, 5]
    );
    let again = deposit_page(store.as_ref(), first.next, 4).await.expect("page");
    assert_eq!(again.next, rest.next);
    // Another instance continuing from a size already continued loses quietly.
    let lost = Seal {
        old_size: 0,
        segments: vec![crate::bank::Segment {
            start: 0,
            chain: world.chain(0),
            first_seq: 1,
            count: 1,
        }],
        tiles: Vec::new(),
        tips: Vec::new(),
        head: head.clone(),
    };
    assert_eq!(store.write_seal(&lost).await.expect("write"), Written::Existing);
    let report = verify_log(store.as_ref(), Some(&key().verifying_key()), Some(&cp))
        .await
        .expect("the log verifies");
    assert_eq!(report.size, 6);
    // The tiles and checkpoints are append-only.
    for sql in [
        "delete from log_tiles",
        "delete from log_checkpoints",
        "delete from log_segments",
    ] {
        assert!(db.execute(sql).await.is_err(), "{sql} was allowed");
    }
}

pub async fn an_entry_altered_before_it_is_sealed_is_never_sealed<B: Backend>(db: &B) {
    let store = db.store();
    let (world, _) = sealed_six(db).await;
    store
        .ingest(&[completion(&site_id(), "e9", world.by_id(0), 10_00)], NOW)
        .await
        .expect("ingest");
    let sql = match db.dialect() {
        Dialect::Postgres => "alter table ledger_entries disable trigger user",
        Dialect::Sqlite => "drop trigger ledger_entries_append_only_update",
    };
    db.execute(sql).await.expect("allow tampering");
    db.execute("update ledger_entries set credits_cents = 99 where event_id = 'e9'")
        .await
        .expect("tamper");
    let limits = CheckpointLimits::default();
    let err = make_checkpoint(store.as_ref(), &key(), ORIGIN, NOW, limits)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("does not match the entry's content"), "{err}");
    assert_eq!(store.log_head().await.expect("read").map(|h| h.size), Some(6));
}

async fn unguard_log<B: Backend>(db: &B) {
    let sql = match db.dialect() {
        Dialect::Postgres => {
            "alter table log_tiles disable trigger user; alter table log_segments disable trigger user;
             alter table log_checkpoints disable trigger user"
        }
        Dialect::Sqlite => {
            "drop trigger log_tiles_grow_only; drop trigger log_tiles_no_delete;
             drop trigger log_segments_append_only_delete; drop trigger log_checkpoints_append_only_delete"
        }
    };
    db.execute(sql).await.expect("unguard the log");
}

async fn log_fails<B: Backend>(db: &B, held: Option<&LogCheckpoint>, expect: &str) {
    match verify_log(db.store().as_ref(), Some(&key().verifying_key()), held).await {
        Err(VerifyFailure::Checkpoint(m)) => assert!(m.contains(expect), "expected {expect:?} in {m:?}"),
        other => panic!("expected a failure naming {expect:?}, got {other:?}"),
    }
}

pub async fn verify_catches_an_altered_or_missing_tile<B: Backend>(db: &B) {
    sealed_six(db).await;
    unguard_log(db).await;
    let flip = match db.dialect() {
        Dialect::Postgres => "update log_tiles set hashes = overlay(hashes placing '\\x00'::bytea from 1 for 1)",
        Dialect::Sqlite => "update log_tiles set hashes = cast(zeroblob(32) || substr(hashes, 33) as blob)",
    };
    db.execute(flip).await.expect("tamper");
    log_fails(db, None, "tile tile/0/000.p/6").await;
    db.execute("delete from log_tiles").await.expect("tamper");
    log_fails(db, None, "tile tile/0/000.p/6").await;
}

pub async fn verify_catches_a_log_cut_short_behind_a_held_checkpoint<B: Backend>(db: &B) {
    let store = db.store();
    let (_, sizes) = sealed_six(db).await;
    let head = store.log_head().await.expect("read").expect("head");
    let held = LogCheckpoint::open(&head.note, ORIGIN, &key().verifying_key()).expect("open");
    let earlier = sizes[sizes.len() - 2];
    unguard_log(db).await;
    db.execute(&format!(
        "delete from log_checkpoints where size > {earlier}; delete from log_segments where start >= {earlier}"
    ))
    .await
    .expect("cut the log short");
    log_fails(db, Some(&held), "cut short").await;
    // A held checkpoint of the same size with another root: rewritten.
    let mut other = held.clone();
    other.size = earlier;
    other.root[0] ^= 1;
    log_fails(db, Some(&other), "rewritten").await;
}

async fn ledger_fails<B: Backend>(db: &B, expect: &str) {
    match crate::verify::verify_ledger(db.store().as_ref(), |_| {}).await {
        Err(VerifyFailure::Unreadable(m)) => assert!(m.contains(expect), "expected {expect:?} in {m:?}"),
        other => panic!("expected a failure naming {expect:?}, got {other:?}"),
    }
}

/// A correctly hashed row put in a chain outside the ledger's, a removed
/// head row and an extra one are each named.
pub async fn verify_catches_entries_in_unknown_chains_and_missing_or_extra_heads<B: Backend>(db: &B) {
    sealed_six(db).await;
    crate::verify::verify_ledger(db.store().as_ref(), |_| {})
        .await
        .expect("verifies before tampering");
    let (unguard, copy) = match db.dialect() {
        Dialect::Postgres => (
            "alter table ledger_entries disable trigger user",
            "create temp table stray as select * from ledger_entries limit 1;
             update stray set chain_id = -1, event_id = 'stray-1'; insert into ledger_entries select * from stray",
        ),
        Dialect::Sqlite => (
            "drop trigger ledger_entries_append_only_update; drop trigger ledger_entries_append_only_delete",
            "create temp table stray as select * from ledger_entries limit 1;
             update stray set chain_id = -1, event_id = 'stray-1'; insert into ledger_entries select * from stray",
        ),
    };
    db.execute(unguard).await.expect("allow tampering");
    db.execute(copy).await.expect("tamper");
    ledger_fails(db, "is in no chain").await;
    db.execute("delete from ledger_entries where chain_id = -1")
        .await
        .expect("undo");
    db.execute("delete from chain_heads where chain_id = 7")
        .await
        .expect("tamper");
    ledger_fails(db, "chain 7 has no head row").await;
    db.execute(
        "insert into chain_heads (chain_id, seq, hash) select 64, seq, hash from chain_heads where chain_id = 0",
    )
    .await
    .expect("tamper");
    ledger_fails(db, "a head row for chain 64").await;
}
