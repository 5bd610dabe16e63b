//! The credit bank feed on SQLite: checkpoints, Merkle nodes, deposits and
//! acknowledgements (`migrations/sqlite/0003_bank.sql`).
//!
//! Writes take the database's single write lock (`BEGIN IMMEDIATE`), so a
//! checkpoint or an acknowledgement sees chain heads no other writer can
//! move before it commits, exactly as ingestion does.

use std::collections::HashMap;

use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Row, SqlitePool};
use xuefen_core::bank::{BANK_SITE, Decision, ack_body, ack_event_id};
use xuefen_core::entry::{Entry, EntryKind};
use xuefen_core::event::Millis;
use xuefen_core::ids::Position;
use xuefen_core::merkle::{self, Hash, NodeId};
use xuefen_core::plan::Head;
use xuefen_store::bank::{AckOutcome, AckRequest, CheckpointRecord, DepositRecord, NewCheckpoint, StoredCheckpoint};
use xuefen_store::records::EntryRecord;
use xuefen_store::{Result, StoreError, Written};

use super::{PARAMS_PER_STATEMENT_MAX, REUSE_DYNAMIC_STATEMENTS, db, entry_from_row, tuples, unreadable};

/// Rows per multi-row insert of Merkle nodes (4 columns).
const NODE_ROWS_PER_INSERT: usize = PARAMS_PER_STATEMENT_MAX / 4;

/// The entry columns with the `l.` alias, in [`EntryRecord`] order.
macro_rules! l_entry_columns {
    () => {
        "l.chain_id, l.seq, l.prev_hash, l.hash, l.kind, l.site_id, l.event_id, l.learner_id, l.course_code,
         l.category, l.credits_cents, l.occurred_at_ms, l.recorded_at_ms, l.score_cents, l.hours_cents,
         l.rule_version, l.refers_chain, l.refers_seq, l.target_event, l.reason, l.recognition_group, l.withheld_cents,
         l.learner_commitment, l.reason_note"
    };
}

const CHECKPOINT_COLUMNS: &str = "number, created_at_ms, prev_hash, deposits_end, chains, signature, hash";

fn checkpoint_from_row(row: &SqliteRow) -> Result<StoredCheckpoint> {
    let read = |e: sqlx::Error| unreadable("checkpoints", e);
    let record = CheckpointRecord {
        number: row.try_get(0).map_err(read)?,
        created_at_ms: row.try_get(1).map_err(read)?,
        prev_hash: row.try_get(2).map_err(read)?,
        deposits_end: row.try_get(3).map_err(read)?,
        chains: row.try_get(4).map_err(read)?,
        signature: row.try_get(5).map_err(read)?,
        hash: row.try_get(6).map_err(read)?,
    };
    StoredCheckpoint::try_from(record)
}

pub(crate) async fn latest_checkpoint(pool: &SqlitePool) -> Result<Option<StoredCheckpoint>> {
    let sql = format!("select {CHECKPOINT_COLUMNS} from checkpoints order by number desc limit 1");
    let row = sqlx::query(&sql).fetch_optional(pool).await.map_err(db)?;
    row.as_ref().map(checkpoint_from_row).transpose()
}

pub(crate) async fn checkpoint(pool: &SqlitePool, number: u64) -> Result<Option<StoredCheckpoint>> {
    let Ok(number) = i64::try_from(number) else {
        return Ok(None);
    };
    let sql = format!("select {CHECKPOINT_COLUMNS} from checkpoints where number = ?1");
    let row = sqlx::query(&sql).bind(number).fetch_optional(pool).await.map_err(db)?;
    row.as_ref().map(checkpoint_from_row).transpose()
}

pub(crate) async fn chain_range(pool: &SqlitePool, chain: u32, after: u64, upto: u64) -> Result<Vec<Entry>> {
    let rows = sqlx::query(concat!(
        "select ",
        l_entry_columns!(),
        " from ledger_entries l where l.chain_id = ?1 and l.seq > ?2 and l.seq <= ?3 order by l.seq"
    ))
    .bind(i64::from(chain))
    .bind(after as i64)
    .bind(upto as i64)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(entry_from_row).collect()
}

pub(crate) async fn entry_kinds(pool: &SqlitePool, positions: &[Position]) -> Result<HashMap<Position, EntryKind>> {
    let mut out = HashMap::new();
    for chunk in positions.chunks(PARAMS_PER_STATEMENT_MAX / 2) {
        let sql = format!(
            "select chain_id, seq, kind from ledger_entries where (chain_id, seq) in (values {})",
            tuples(chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for p in chunk {
            q = q.bind(i64::from(p.chain)).bind(p.seq as i64);
        }
        for row in q.fetch_all(pool).await.map_err(db)? {
            let read = |e: sqlx::Error| unreadable("ledger_entries", e);
            let (chain, seq, kind): (i64, i64, i64) = (
                row.try_get(0).map_err(read)?,
                row.try_get(1).map_err(read)?,
                row.try_get(2).map_err(read)?,
            );
            let kind = u8::try_from(kind).ok().and_then(EntryKind::from_code);
            if let (Ok(chain), Ok(seq), Some(kind)) = (u32::try_from(chain), u64::try_from(seq), kind) {
                out.insert(Position { chain, seq }, kind);
            }
        }
    }
    Ok(out)
}

/// Stored nodes above the leaves come from `merkle_nodes`; a leaf (level 0)
/// is the leaf hash of the entry's stored hash, read from `ledger_entries`.
pub(crate) async fn merkle_nodes(pool: &SqlitePool, chain: u32, nodes: &[NodeId]) -> Result<HashMap<NodeId, Hash>> {
    let mut out = HashMap::with_capacity(nodes.len());
    let (leaves, inner): (Vec<NodeId>, Vec<NodeId>) = nodes.iter().partition(|n| n.level == 0);
    for chunk in inner.chunks(PARAMS_PER_STATEMENT_MAX / 2) {
        let sql = format!(
            "select level, idx, hash from merkle_nodes where chain_id = ? and (level, idx) in (values {})",
            tuples(chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql)
            .persistent(REUSE_DYNAMIC_STATEMENTS)
            .bind(i64::from(chain));
        for n in chunk {
            q = q.bind(i64::from(n.level)).bind(n.index as i64);
        }
        for row in q.fetch_all(pool).await.map_err(db)? {
            let (id, hash) = node_from_row(chain, &row, "merkle_nodes")?;
            out.insert(id, hash);
        }
    }
    for chunk in leaves.chunks(PARAMS_PER_STATEMENT_MAX) {
        let sql = format!(
            "select 0, seq - 1, hash from ledger_entries where chain_id = ? and seq in ({})",
            super::placeholders(chunk.len())
        );
        let mut q = sqlx::query(&sql)
            .persistent(REUSE_DYNAMIC_STATEMENTS)
            .bind(i64::from(chain));
        for n in chunk {
            q = q.bind(n.index as i64 + 1);
        }
        for row in q.fetch_all(pool).await.map_err(db)? {
            let (id, hash) = node_from_row(chain, &row, "ledger_entries")?;
            out.insert(id, merkle::leaf_hash(&hash));
        }
    }
    Ok(out)
}

fn node_from_row(chain: u32, row: &SqliteRow, table: &str) -> Result<(NodeId, Hash)> {
    let read = |e: sqlx::Error| unreadable(table, e);
    let (level, idx, hash): (i64, i64, Vec<u8>) = (
        row.try_get(0).map_err(read)?,
        row.try_get(1).map_err(read)?,
        row.try_get(2).map_err(read)?,
    );
    let corrupt = || StoreError::Corrupt {
        at: format!("merkle node {chain}/{level}/{idx}"),
        detail: "out of range or not 32 bytes".into(),
    };
    let id = NodeId {
        level: u8::try_from(level).map_err(|_| corrupt())?,
        index: u64::try_from(idx).map_err(|_| corrupt())?,
    };
    Ok((id, hash.try_into().map_err(|_| corrupt())?))
}

pub(crate) async fn write_checkpoint(pool: &SqlitePool, new: &NewCheckpoint) -> Result<Written> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let r = CheckpointRecord::from(&new.stored);
    let inserted = sqlx::query(
        "insert into checkpoints (number, created_at_ms, prev_hash, deposits_end, chains, signature, hash)
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7) on conflict (number) do nothing",
    )
    .bind(r.number)
    .bind(r.created_at_ms)
    .bind(&r.prev_hash)
    .bind(r.deposits_end)
    .bind(&r.chains)
    .bind(&r.signature)
    .bind(&r.hash)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    if inserted.rows_affected() == 0 {
        tx.rollback().await.map_err(db)?;
        return Ok(Written::Existing);
    }
    for chunk in new.nodes.chunks(NODE_ROWS_PER_INSERT) {
        let sql = format!(
            "insert into merkle_nodes (chain_id, level, idx, hash) values {} on conflict do nothing",
            tuples(chunk.len(), 4)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for (chain, id, hash) in chunk {
            q = q
                .bind(i64::from(*chain))
                .bind(i64::from(id.level))
                .bind(id.index as i64)
                .bind(hash.to_vec());
        }
        q.execute(&mut *tx).await.map_err(db)?;
    }
    for chunk in new.deposits.chunks(PARAMS_PER_STATEMENT_MAX / 4) {
        let sql = format!(
            "insert into deposits (number, checkpoint, chain_id, seq) values {}",
            tuples(chunk.len(), 4)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for (number, p) in chunk {
            q = q
                .bind(*number as i64)
                .bind(r.number)
                .bind(i64::from(p.chain))
                .bind(p.seq as i64);
        }
        q.execute(&mut *tx).await.map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(Written::Created)
}

pub(crate) async fn deposits_after(pool: &SqlitePool, after: u64, limit: u32) -> Result<Vec<DepositRecord>> {
    let rows = sqlx::query(concat!(
        "select ",
        l_entry_columns!(),
        ", d.number, d.checkpoint, ln.document_hash
           from deposits d
           join ledger_entries l on l.chain_id = d.chain_id and l.seq = d.seq
           left join learners ln on ln.id = l.learner_id
          where d.number > ?1
          order by d.number
          limit ?2"
    ))
    .bind(i64::try_from(after).unwrap_or(i64::MAX))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            let read = |e: sqlx::Error| unreadable("deposits", e);
            let number: i64 = row.try_get(24).map_err(read)?;
            let checkpoint: i64 = row.try_get(25).map_err(read)?;
            let hash: Option<Vec<u8>> = row.try_get(26).map_err(read)?;
            Ok(DepositRecord {
                number: number as u64,
                checkpoint: checkpoint as u64,
                entry: entry_from_row(row)?,
                learner_hash: hash.and_then(|h| h.try_into().ok()),
            })
        })
        .collect()
}

async fn deposit_entry(conn: &mut SqliteConnection, deposit: Position) -> Result<Option<Entry>> {
    let row = sqlx::query(concat!(
        "select ",
        l_entry_columns!(),
        " from deposits d join ledger_entries l on l.chain_id = d.chain_id and l.seq = d.seq
          where d.chain_id = ?1 and d.seq = ?2"
    ))
    .bind(i64::from(deposit.chain))
    .bind(deposit.seq as i64)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    row.as_ref().map(entry_from_row).transpose()
}

async fn ack_entry(conn: &mut SqliteConnection, deposit: Position) -> Result<Option<Entry>> {
    let row = sqlx::query(concat!(
        "select ",
        l_entry_columns!(),
        " from ledger_entries l where l.site_id = ?1 and l.event_id = ?2"
    ))
    .bind(BANK_SITE)
    .bind(ack_event_id(deposit).as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    row.as_ref().map(entry_from_row).transpose()
}

async fn head(conn: &mut SqliteConnection, chain: u32) -> Result<Head> {
    let row = sqlx::query("select chain_id, seq, hash from chain_heads where chain_id = ?1")
        .bind(i64::from(chain))
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    Ok(super::head_from_row(&row)?.1)
}

/// Inserts one entry unless its idempotency key is taken; whether it was.
async fn insert_entry_once(conn: &mut SqliteConnection, e: &Entry) -> Result<bool> {
    let r = EntryRecord::from(e);
    let done = sqlx::query(
        "insert into ledger_entries (chain_id, seq, prev_hash, hash, kind, site_id, event_id, learner_id,
                course_code, category, credits_cents, occurred_at_ms, recorded_at_ms, score_cents, hours_cents,
                rule_version, refers_chain, refers_seq, target_event, reason, recognition_group, withheld_cents,
                learner_commitment, reason_note)
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22,
                 ?23, ?24)
         on conflict do nothing",
    )
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
    .bind(r.reason_note)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(done.rows_affected() == 1)
}

async fn ack_one(conn: &mut SqliteConnection, ack: &AckRequest, now: Millis) -> Result<AckOutcome> {
    let Some(deposit) = deposit_entry(conn, ack.deposit).await? else {
        return Ok(AckOutcome::UnknownDeposit);
    };
    let head = head(conn, ack.deposit.chain).await?;
    let position = Position {
        chain: ack.deposit.chain,
        seq: head.seq + 1,
    };
    let entry = Entry::seal(position, head.hash, ack_body(&deposit, &ack.decision, now));
    if insert_entry_once(conn, &entry).await? {
        sqlx::query("update chain_heads set seq = ?2, hash = ?3 where chain_id = ?1")
            .bind(i64::from(position.chain))
            .bind(position.seq as i64)
            .bind(entry.hash.to_vec())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        return Ok(AckOutcome::Recorded { position });
    }
    let existing = ack_entry(conn, ack.deposit).await?.ok_or_else(|| StoreError::Corrupt {
        at: format!("acknowledgement of deposit {}", ack.deposit),
        detail: "its key is taken but no entry has it".into(),
    })?;
    let recorded = Decision::of(&existing.body).ok_or_else(|| StoreError::Corrupt {
        at: format!("entry {}", existing.position),
        detail: "the bank's key names an entry that is not an acknowledgement".into(),
    })?;
    Ok(match ack.decision.first_difference(&recorded) {
        None => AckOutcome::Duplicate {
            position: existing.position,
        },
        Some(field) => AckOutcome::Conflict {
            field,
            position: existing.position,
        },
    })
}

pub(crate) async fn ack_deposits(pool: &SqlitePool, acks: &[AckRequest], now: Millis) -> Result<Vec<AckOutcome>> {
    if acks.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let mut out = Vec::with_capacity(acks.len());
    for ack in acks {
        match ack_one(&mut tx, ack, now).await {
            Ok(o) => out.push(o),
            Err(e) => {
                if let Err(rollback) = tx.rollback().await {
                    tracing::warn!(error = %rollback, "rolling back failed acknowledgements failed");
                }
                return Err(e);
            }
        }
    }
    tx.commit().await.map_err(db)?;
    Ok(out)
}

/// The learner's secret and chain, and two 16-byte random values.
type ErasureRow = (Vec<u8>, i64, Vec<u8>, Vec<u8>);

/// [`xuefen_store::Store::erase_learner`] under the write lock.
pub(crate) async fn erase_learner(
    pool: &SqlitePool,
    learner: &xuefen_core::ids::LearnerId,
    reason: &xuefen_core::event::Reason,
    now: Millis,
) -> Result<Position> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let row: Option<ErasureRow> = sqlx::query_as(
        "select s.secret, l.chain_id, randomblob(16), randomblob(16)
           from learner_secrets s join learners l on l.id = s.learner_id
          where s.learner_id = ?1",
    )
    .bind(learner.as_str())
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    let (secret, chain, nonce, tombstone) = row.ok_or(StoreError::NotFound)?;
    let corrupt = |detail: &str| StoreError::Corrupt {
        at: format!("learner {learner}"),
        detail: detail.into(),
    };
    let secret: [u8; 32] = secret.try_into().map_err(|_| corrupt("secret is not 32 bytes"))?;
    let nonce: [u8; 16] = nonce.try_into().map_err(|_| corrupt("random blob is not 16 bytes"))?;
    let tombstone: [u8; 16] = tombstone
        .try_into()
        .map_err(|_| corrupt("random blob is not 16 bytes"))?;
    let chain = u32::try_from(chain).map_err(|_| corrupt("chain out of range"))?;
    let head = head(&mut tx, chain).await?;
    let position = Position {
        chain,
        seq: head.seq + 1,
    };
    let entry = xuefen_core::entry::erasure_entry(
        &secret,
        position,
        head.hash,
        reason.clone(),
        now,
        nonce,
        xuefen_core::ids::LearnerId::from_random(tombstone),
    );
    if !insert_entry_once(&mut tx, &entry).await? {
        return Err(corrupt("the erasure's event id is taken"));
    }
    sqlx::query("update chain_heads set seq = ?2, hash = ?3 where chain_id = ?1")
        .bind(i64::from(position.chain))
        .bind(position.seq as i64)
        .bind(entry.hash.to_vec())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    // Each version-2 entry gets a learner id of its own, drawn at random, so
    // that its entries cannot be told apart from anyone else's.
    sqlx::query(
        "update ledger_entries set learner_id = 'lrn_' || lower(hex(randomblob(16))), reason_note = null
          where learner_id = ?1 and learner_commitment is not null",
    )
    .bind(learner.as_str())
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    for sql in [
        "delete from xapi_mbox_links where (site_id, local_account) in
            (select site_id, local_account from learner_accounts where learner_id = ?1)",
        "delete from learner_accounts where learner_id = ?1",
        "delete from learner_secrets where learner_id = ?1",
        "delete from learners where id = ?1",
    ] {
        sqlx::query(sql)
            .bind(learner.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    // The WAL still holds the pages as they were before the erasure: copy
    // it into the database and truncate it to nothing. Best effort while
    // readers hold old snapshots; the runbook says to run it again.
    if let Err(e) = sqlx::query("pragma wal_checkpoint(truncate)").execute(pool).await {
        tracing::warn!(error = %e, "the WAL could not be truncated after an erasure");
    }
    Ok(position)
}
