//! The credit bank feed on SQLite: the log's segments, tiles, chain tips
//! and checkpoints (`migrations/sqlite/0008_log.sql`), and acknowledgements.
//!
//! Writes take the database's single write lock (`BEGIN IMMEDIATE`), so a
//! checkpoint or an acknowledgement sees chain heads no other writer can
//! move before it commits, exactly as ingestion does.

use std::collections::HashMap;

use sqlx::sqlite::SqliteConnection;
use sqlx::{Row, SqlitePool};
use xuefen_core::bank::{BANK_SITE, Decision, ack_body, ack_event_id};
use xuefen_core::entry::{Entry, EntryKind};
use xuefen_core::event::Millis;
use xuefen_core::ids::Position;
use xuefen_core::plan::Head;
use xuefen_core::tlog::{TileId, Tiles};
use xuefen_store::bank::{AckOutcome, AckRequest, ChainTip, DepositRecord, LogHead, Seal, Segment};
use xuefen_store::records::EntryRecord;
use xuefen_store::{Result, StoreError, Written};

use super::{db, unreadable};
use crate::SqliteStore;
use crate::bank;
use crate::rows::{PARAMS_PER_STATEMENT_MAX, REUSE_DYNAMIC_STATEMENTS, entry_from_row, tuples};
use async_trait::async_trait;
use xuefen_store::BankStore;

pub(crate) async fn log_head(pool: &SqlitePool) -> Result<Option<LogHead>> {
    let row = sqlx::query("select size, created_at_ms, note from log_checkpoints order by size desc limit 1")
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.as_ref().map(LogHead::read).transpose()
}

pub(crate) async fn log_tips(pool: &SqlitePool) -> Result<Vec<ChainTip>> {
    let rows = sqlx::query("select chain_id, seq, hash from log_chain_tips order by chain_id")
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter()
        .map(|row| {
            let read = |e: sqlx::Error| unreadable("log_chain_tips", e);
            let (chain, seq, hash): (i64, i64, Vec<u8>) = (
                row.try_get("chain_id").map_err(read)?,
                row.try_get("seq").map_err(read)?,
                row.try_get("hash").map_err(read)?,
            );
            let corrupt = || StoreError::Corrupt {
                at: format!("log_chain_tips {chain}"),
                detail: "out of range or not 32 bytes".into(),
            };
            Ok(ChainTip {
                chain: u32::try_from(chain).map_err(|_| corrupt())?,
                seq: u64::try_from(seq).map_err(|_| corrupt())?,
                hash: hash.try_into().map_err(|_| corrupt())?,
            })
        })
        .collect()
}

pub(crate) async fn log_tiles(pool: &SqlitePool, ids: &[TileId]) -> Result<Tiles> {
    let mut out = Tiles::with_capacity(ids.len());
    for chunk in ids.chunks(PARAMS_PER_STATEMENT_MAX / 2) {
        let sql = format!(
            "select level, idx, hashes from log_tiles where (level, idx) in (values {})",
            tuples(chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for t in chunk {
            q = q.bind(i64::from(t.level)).bind(t.index as i64);
        }
        for row in q.fetch_all(pool).await.map_err(db)? {
            let read = |e: sqlx::Error| unreadable("log_tiles", e);
            let (level, idx, bytes): (i64, i64, Vec<u8>) = (
                row.try_get("level").map_err(read)?,
                row.try_get("idx").map_err(read)?,
                row.try_get("hashes").map_err(read)?,
            );
            let (id, hashes) = xuefen_store::bank::tile_from_row(level, idx, &bytes)?;
            out.insert(id, hashes);
        }
    }
    Ok(out)
}

pub(crate) async fn log_segments(pool: &SqlitePool, from: u64, to: u64) -> Result<Vec<Segment>> {
    let rows = sqlx::query(
        "select start, chain_id, first_seq, count from log_segments
          where start < ?2 and start >= coalesce((select max(start) from log_segments where start <= ?1), 0)
          order by start",
    )
    .bind(from as i64)
    .bind(to as i64)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            let read = |e: sqlx::Error| unreadable("log_segments", e);
            let v: (i64, i64, i64, i64) = (
                row.try_get("start").map_err(read)?,
                row.try_get("chain_id").map_err(read)?,
                row.try_get("first_seq").map_err(read)?,
                row.try_get("count").map_err(read)?,
            );
            xuefen_store::bank::segment_from_row(v)
        })
        .collect()
}

pub(crate) async fn segment_entries(
    pool: &SqlitePool,
    chain: u32,
    after: u64,
    upto: u64,
) -> Result<Vec<DepositRecord>> {
    let rows = sqlx::query(concat!(
        "select ",
        entry_columns!(),
        ", ln.document_hash as name_hash from ledger_entries l left join learners ln on ln.id = l.learner_id
          where l.chain_id = ?1 and l.seq > ?2 and l.seq <= ?3 order by l.seq"
    ))
    .bind(i64::from(chain))
    .bind(after as i64)
    .bind(upto as i64)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            let hash: Option<Vec<u8>> = row.try_get("name_hash").map_err(|e| unreadable("learners", e))?;
            Ok(DepositRecord {
                index: 0,
                entry: entry_from_row(row)?,
                learner_hash: hash.and_then(|h| h.try_into().ok()),
            })
        })
        .collect()
}

pub(crate) async fn legacy_checkpoint_chains(pool: &SqlitePool) -> Result<Vec<Vec<u8>>> {
    sqlx::query_scalar("select chains from legacy_checkpoints order by number")
        .fetch_all(pool)
        .await
        .map_err(db)
}

pub(crate) async fn write_seal(pool: &SqlitePool, seal: &Seal) -> Result<Written> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let current: Option<i64> = sqlx::query_scalar("select max(size) from log_checkpoints")
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
    if current.unwrap_or(0) as u64 != seal.old_size {
        tx.rollback().await.map_err(db)?;
        return Ok(Written::Existing);
    }
    for s in &seal.segments {
        sqlx::query("insert into log_segments (start, chain_id, first_seq, count) values (?1, ?2, ?3, ?4)")
            .bind(s.start as i64)
            .bind(i64::from(s.chain))
            .bind(s.first_seq as i64)
            .bind(s.count as i64)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    for (id, hashes) in &seal.tiles {
        sqlx::query(
            "insert into log_tiles (level, idx, hashes) values (?1, ?2, ?3)
             on conflict (level, idx) do update set hashes = excluded.hashes",
        )
        .bind(i64::from(id.level))
        .bind(id.index as i64)
        .bind(hashes.concat())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    for t in &seal.tips {
        sqlx::query(
            "insert into log_chain_tips (chain_id, seq, hash) values (?1, ?2, ?3)
             on conflict (chain_id) do update set seq = excluded.seq, hash = excluded.hash",
        )
        .bind(i64::from(t.chain))
        .bind(t.seq as i64)
        .bind(t.hash.to_vec())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    sqlx::query("insert into log_checkpoints (size, created_at_ms, note) values (?1, ?2, ?3)")
        .bind(seal.head.size as i64)
        .bind(seal.head.created_at_ms)
        .bind(&seal.head.note)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(Written::Created)
}

pub(crate) async fn chain_range(pool: &SqlitePool, chain: u32, after: u64, upto: u64) -> Result<Vec<Entry>> {
    let rows = sqlx::query(concat!(
        "select ",
        entry_columns!(),
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
                row.try_get("chain_id").map_err(read)?,
                row.try_get("seq").map_err(read)?,
                row.try_get("kind").map_err(read)?,
            );
            let kind = u8::try_from(kind).ok().and_then(EntryKind::from_code);
            if let (Ok(chain), Ok(seq), Some(kind)) = (u32::try_from(chain), u64::try_from(seq), kind) {
                out.insert(Position { chain, seq }, kind);
            }
        }
    }
    Ok(out)
}

async fn deposit_entry(conn: &mut SqliteConnection, deposit: Position) -> Result<Option<Entry>> {
    let row = sqlx::query(concat!(
        "select ",
        entry_columns!(),
        ", (select r.kind from ledger_entries r where r.chain_id = l.refers_chain and r.seq = l.refers_seq) as referred_kind,
           (select t.seq from log_chain_tips t where t.chain_id = l.chain_id) as tip_seq
           from ledger_entries l where l.chain_id = ?1 and l.seq = ?2"
    ))
    .bind(i64::from(deposit.chain))
    .bind(deposit.seq as i64)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let Some(row) = row else { return Ok(None) };
    let entry = entry_from_row(&row)?;
    let read = |e: sqlx::Error| unreadable("ledger_entries", e);
    let reversed: Option<i64> = row.try_get("referred_kind").map_err(read)?;
    let tip: Option<i64> = row.try_get("tip_seq").map_err(read)?;
    let reversed = reversed
        .and_then(|k| u8::try_from(k).ok())
        .and_then(EntryKind::from_code);
    let tip = tip.and_then(|t| u64::try_from(t).ok()).unwrap_or(0);
    Ok(xuefen_store::bank::sealed_deposit(&entry, tip, reversed).then_some(entry))
}

async fn ack_entry(conn: &mut SqliteConnection, deposit: Position) -> Result<Option<Entry>> {
    let row = sqlx::query(concat!(
        "select ",
        entry_columns!(),
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
    Ok(crate::ledger::head_from_row(&row)?.1)
}

/// Inserts one entry unless its idempotency key is taken; whether it was.
async fn insert_entry_once(conn: &mut SqliteConnection, e: &Entry) -> Result<bool> {
    let r = EntryRecord::from(e);
    let done = sqlx::query(concat!(
        "insert into ledger_entries (",
        entry_insert_columns!(),
        ")
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22,
                 ?23, ?24)
         on conflict do nothing"
    ))
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

/// The learner's secret, under which an acknowledgement's note is sealed;
/// none once they are erased.
async fn learner_secret(
    conn: &mut SqliteConnection,
    learner: &xuefen_core::ids::LearnerId,
) -> Result<Option<[u8; 32]>> {
    let secret: Option<Vec<u8>> = sqlx::query_scalar("select secret from learner_secrets where learner_id = ?1")
        .bind(learner.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    secret
        .map(<[u8; 32]>::try_from)
        .transpose()
        .map_err(|_| StoreError::Corrupt {
            at: format!("learner_secrets ({learner})"),
            detail: "the secret is not 32 bytes".into(),
        })
}

async fn ack_one(conn: &mut SqliteConnection, ack: &AckRequest, now: Millis) -> Result<AckOutcome> {
    let Some(deposit) = deposit_entry(conn, ack.deposit).await? else {
        return Ok(AckOutcome::UnknownDeposit);
    };
    let secret = learner_secret(conn, &deposit.body.learner).await?;
    let head = head(conn, ack.deposit.chain).await?;
    let position = Position {
        chain: ack.deposit.chain,
        seq: head.seq + 1,
    };
    let entry = Entry::seal(
        position,
        head.hash,
        ack_body(&deposit, &ack.decision, now, position, secret.as_ref()),
    );
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
    let recorded = Decision::of(&existing.body, |n| n.open(secret.as_ref(), existing.position)).ok_or_else(|| {
        StoreError::Corrupt {
            at: format!("entry {}", existing.position),
            detail: "the bank's key names an entry that is not an acknowledgement".into(),
        }
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

/// [`xuefen_store::LearnerStore::erase_learner`] under the write lock.
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
    crate::xapi::erasure::erase_learner_xapi(&mut tx, learner.as_str()).await?;
    for sql in [
        "delete from xapi_mbox_links where (site_id, local_account) in
            (select site_id, local_account from learner_accounts where learner_id = ?1)",
        "delete from learner_accounts where learner_id = ?1",
        "delete from learner_pseudonyms where learner_id = ?1",
        "delete from learner_sso_bindings where learner_id = ?1",
        "delete from learner_secrets where learner_id = ?1",
        // Crypto-shredding: without their key, no copy of the learner's
        // sealed values opens any more (crates/xuefen-core/src/names.rs).
        "delete from learner_keys where learner_id = ?1",
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

#[async_trait]
impl BankStore for SqliteStore {
    async fn log_head(&self) -> Result<Option<LogHead>> {
        bank::log_head(&self.pool).await
    }

    async fn log_tips(&self) -> Result<Vec<ChainTip>> {
        bank::log_tips(&self.pool).await
    }

    async fn log_tiles(&self, ids: &[TileId]) -> Result<Tiles> {
        bank::log_tiles(&self.pool, ids).await
    }

    async fn log_segments(&self, from: u64, to: u64) -> Result<Vec<Segment>> {
        bank::log_segments(&self.pool, from, to).await
    }

    async fn segment_entries(&self, chain: u32, after: u64, upto: u64) -> Result<Vec<DepositRecord>> {
        bank::segment_entries(&self.pool, chain, after, upto).await
    }

    async fn legacy_checkpoint_chains(&self) -> Result<Vec<Vec<u8>>> {
        bank::legacy_checkpoint_chains(&self.pool).await
    }

    async fn write_seal(&self, seal: &Seal) -> Result<Written> {
        bank::write_seal(&self.pool, seal).await
    }

    async fn chain_range(&self, chain: u32, after: u64, upto: u64) -> Result<Vec<Entry>> {
        bank::chain_range(&self.pool, chain, after, upto).await
    }

    async fn entry_kinds(&self, positions: &[Position]) -> Result<HashMap<Position, EntryKind>> {
        bank::entry_kinds(&self.pool, positions).await
    }

    async fn ack_deposits(&self, acks: &[AckRequest], now: Millis) -> Result<Vec<AckOutcome>> {
        bank::ack_deposits(&self.pool, acks, now).await
    }
}
