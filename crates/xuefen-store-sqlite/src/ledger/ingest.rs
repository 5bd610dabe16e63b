//! Ingest on SQLite: one `BEGIN IMMEDIATE` transaction per batch (the
//! database's single write lock held from the first read), entries written
//! with chunked multi-row inserts. The order of the lookups is the common
//! driver's ([`xuefen_store::ledger::ingest`]); this file holds the SQLite
//! side of its steps.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Row, SqlitePool};
use xuefen_core::entry::Entry;
use xuefen_core::event::{Event, Millis};
use xuefen_core::ids::{Category, GroupId, LearnerId};
use xuefen_core::plan::{self, Head, Key, Lookups, Outcome, Plan};
use xuefen_store::ledger::ingest::{CourseHistories, GroupHistories, IngestTx, Secrets, YearTotals, ingest};
use xuefen_store::records::EntryRecord;
use xuefen_store::{Result, StoreError};

use crate::db;
use crate::ledger::head_from_row;
use crate::ledger::lookups::{
    course_entries, entries_by_keys, group_entries, lookup_course_keys, lookup_learners, reversed_targets, year_totals,
};
use crate::rows::{ENTRY_COLUMNS, PARAMS_PER_STATEMENT_MAX, REUSE_DYNAMIC_STATEMENTS, placeholders, tuples};

/// Rows per multi-row insert of entries: 416 × 24 ≤ 10 000 parameters.
const ENTRY_ROWS_PER_INSERT: usize = PARAMS_PER_STATEMENT_MAX / ENTRY_COLUMNS;

/// One batch's transaction under the database's write lock: the heads are
/// read last (no other writer can move them before commit), entries are
/// written with chunked multi-row inserts.
struct LockedIngest<'c> {
    conn: &'c mut SqliteConnection,
}

#[async_trait]
impl IngestTx for LockedIngest<'_> {
    type Error = StoreError;

    const HEADS_FIRST: bool = false;

    async fn learners(&mut self, events: &[Event], lookups: &mut Lookups) -> Result<()> {
        lookup_learners(self.conn, events, lookups).await
    }

    async fn courses(&mut self, wanted: Vec<(&str, &str)>, lookups: &mut Lookups) -> Result<()> {
        lookup_course_keys(self.conn, &wanted, lookups).await
    }

    /// The chains the batch may append to: its learners' and those of the
    /// entries its revocations target, by now in `lookups.entries`.
    async fn heads(&mut self, _targets: &[Key], lookups: &mut Lookups) -> Result<()> {
        lookups.heads = heads_of(self.conn, &lookups.chains()).await?;
        Ok(())
    }

    async fn entries(&mut self, keys: &[Key]) -> Result<Vec<Entry>> {
        entries_by_keys(self.conn, keys).await
    }

    async fn reversed(&mut self, targets: &[Key]) -> Result<HashSet<Key>> {
        reversed_targets(self.conn, targets).await
    }

    async fn course_entries(&mut self, keys: &BTreeSet<plan::CourseKey>) -> Result<CourseHistories> {
        course_entries(self.conn, keys).await
    }

    async fn group_entries(&mut self, keys: &BTreeSet<(LearnerId, GroupId)>) -> Result<GroupHistories> {
        group_entries(self.conn, keys).await
    }

    async fn year_totals(&mut self, keys: &BTreeSet<(LearnerId, Category, i32)>) -> Result<YearTotals> {
        year_totals(self.conn, keys).await
    }

    async fn secrets(&mut self, lookups: &Lookups) -> Result<Secrets> {
        learner_secrets(self.conn, lookups).await
    }

    async fn write(&mut self, planned: &Plan) -> Result<()> {
        insert_entries(self.conn, &planned.entries).await?;
        update_heads(self.conn, &planned.heads).await
    }
}

/// The secrets of the learners the batch may write for (those it names and
/// those of its revocation targets); an erased learner has none.
pub(crate) async fn learner_secrets(
    conn: &mut SqliteConnection,
    lookups: &Lookups,
) -> Result<HashMap<LearnerId, [u8; 32]>> {
    let mut ids: BTreeSet<&str> = lookups.learner_chains.keys().map(LearnerId::as_str).collect();
    ids.extend(lookups.entries.values().map(|e| e.body.learner.as_str()));
    let ids: Vec<&str> = ids.into_iter().collect();
    let mut out = HashMap::new();
    for chunk in ids.chunks(PARAMS_PER_STATEMENT_MAX) {
        let sql = format!(
            "select learner_id, secret from learner_secrets where learner_id in ({})",
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for id in chunk {
            q = q.bind(*id);
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db)? {
            let id: String = row.try_get("learner_id").map_err(db)?;
            let secret: Vec<u8> = row.try_get("secret").map_err(db)?;
            if let (Ok(id), Ok(secret)) = (LearnerId::parse(id), <[u8; 32]>::try_from(secret)) {
                out.insert(id, secret);
            }
        }
    }
    Ok(out)
}

/// The heads of `chains`. Every chain must have one: the planner would take
/// a missing head for an empty chain.
pub(crate) async fn heads_of(conn: &mut SqliteConnection, chains: &BTreeSet<u32>) -> Result<HashMap<u32, Head>> {
    let mut heads = HashMap::new();
    let ids: Vec<u32> = chains.iter().copied().collect();
    for chunk in ids.chunks(PARAMS_PER_STATEMENT_MAX) {
        let sql = format!(
            "select chain_id, seq, hash from chain_heads where chain_id in ({})",
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for chain in chunk {
            q = q.bind(i64::from(*chain));
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db)? {
            let (chain, head) = head_from_row(&row)?;
            heads.insert(chain, head);
        }
    }
    if let Some(missing) = chains.iter().find(|c| !heads.contains_key(c)) {
        return Err(StoreError::Corrupt {
            at: format!("chain {missing}"),
            detail: "a learner or entry names a chain that has no head".into(),
        });
    }
    Ok(heads)
}

pub(crate) async fn insert_entries(conn: &mut SqliteConnection, entries: &[Entry]) -> Result<()> {
    for chunk in entries.chunks(ENTRY_ROWS_PER_INSERT) {
        // A plain insert, not `on conflict do nothing` as on PostgreSQL: under
        // the write lock no other batch can have taken one of these keys, so
        // a violation is a bug and must fail the whole batch.
        let sql = format!(
            concat!(
                "insert into ledger_entries (",
                entry_insert_columns!(),
                ")
             values {}"
            ),
            tuples(chunk.len(), ENTRY_COLUMNS)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for e in chunk {
            let r = EntryRecord::from(e);
            q = q
                .bind(r.chain_id)
                .bind(r.seq)
                .bind(r.prev_hash)
                .bind(r.hash)
                .bind(r.kind)
                .bind(r.site_id)
                .bind(r.event_id)
                .bind(r.learner_id)
                .bind(r.course_code)
                .bind(r.category)
                .bind(r.credits_cents)
                .bind(r.occurred_at_ms)
                .bind(r.recorded_at_ms)
                .bind(r.score_cents)
                .bind(r.hours_cents)
                .bind(r.rule_version)
                .bind(r.refers_chain)
                .bind(r.refers_seq)
                .bind(r.target_event)
                .bind(r.reason)
                .bind(r.recognition_group)
                .bind(r.withheld_cents)
                .bind(r.learner_commitment)
                .bind(r.reason_note);
        }
        q.execute(&mut *conn).await.map_err(db)?;
    }
    Ok(())
}

pub(crate) async fn update_heads(conn: &mut SqliteConnection, heads: &BTreeMap<u32, Head>) -> Result<()> {
    if heads.is_empty() {
        return Ok(());
    }
    // At most one row per chain (64 by default), far below the parameter
    // limit: one statement. SQLite names VALUES columns column1, column2, ...
    let sql = format!(
        "update chain_heads set seq = v.column2, hash = v.column3
           from (values {}) as v
          where chain_heads.chain_id = v.column1",
        tuples(heads.len(), 3)
    );
    let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
    for (chain, head) in heads {
        q = q.bind(i64::from(*chain)).bind(head.seq as i64).bind(head.hash.to_vec());
    }
    let done = q.execute(&mut *conn).await.map_err(db)?;
    if done.rows_affected() != heads.len() as u64 {
        return Err(StoreError::Corrupt {
            at: "chain_heads".into(),
            detail: format!("{} of {} chain heads updated", done.rows_affected(), heads.len()),
        });
    }
    Ok(())
}

/// One write transaction for the whole batch, holding the database's single
/// write lock from its first read (see the module docs).
pub(crate) async fn ingest_batch(pool: &SqlitePool, events: &[Event], now: Millis) -> Result<Vec<Outcome>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    match ingest(&mut LockedIngest { conn: &mut tx }, events, now).await {
        Ok(outcomes) => {
            tx.commit().await.map_err(db)?;
            Ok(outcomes)
        }
        Err(e) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rolling back a failed ingest failed");
            }
            Err(e)
        }
    }
}
