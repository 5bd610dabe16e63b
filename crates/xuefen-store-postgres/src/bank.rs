//! The credit bank feed on PostgreSQL: the log's segments, tiles, chain
//! tips and checkpoints (`migrations/postgres/0008_log.sql`), and acknowledgements.
//!
//! A checkpoint is one transaction whose first statement claims its number
//! (`on conflict do nothing`): of several instances building the same
//! number, one writes and the others learn they lost. An acknowledgement is
//! a ledger entry written under its chain's head row lock, like ingestion,
//! taken in chain order so that it never deadlocks with a group commit.

use std::collections::HashMap;

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Transaction};
use xuefen_core::bank::{BANK_SITE, Decision, ack_body, ack_event_id};
use xuefen_core::entry::{Entry, EntryKind};
use xuefen_core::event::Millis;
use xuefen_core::ids::Position;
use xuefen_core::merkle::Hash;
use xuefen_core::tlog::{TileId, Tiles};
use xuefen_store::bank::{AckOutcome, AckRequest, ChainTip, DepositRecord, LogHead, Seal, Segment};
use xuefen_store::records::EntryRecord;
use xuefen_store::{Result, StoreError, Written};

use super::{Col, db};
use crate::PgStore;
use crate::bank;
use async_trait::async_trait;
use xuefen_store::BankStore;

fn entry(row: &PgRow) -> Result<Entry> {
    EntryRecord::read(row).and_then(Entry::try_from)
}

pub(crate) async fn log_head(pool: &PgPool) -> Result<Option<LogHead>> {
    let row = sqlx::query("select size, created_at_ms, note from log_checkpoints order by size desc limit 1")
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.as_ref().map(LogHead::read).transpose()
}

pub(crate) async fn log_tips(pool: &PgPool) -> Result<Vec<ChainTip>> {
    let rows = sqlx::query("select chain_id::bigint, seq, hash from log_chain_tips order by chain_id")
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter()
        .map(|row| {
            let (chain, seq, hash): (i64, i64, Vec<u8>) = (row.col("chain_id")?, row.col("seq")?, row.col("hash")?);
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

pub(crate) async fn log_tiles(pool: &PgPool, ids: &[TileId]) -> Result<Tiles> {
    let levels: Vec<i16> = ids.iter().map(|t| i16::from(t.level)).collect();
    let idxs: Vec<i64> = ids.iter().map(|t| t.index as i64).collect();
    let rows = sqlx::query(
        "select t.level::bigint, t.idx, t.hashes from log_tiles t
           join unnest($1::smallint[], $2::bigint[]) as k(l, i) on t.level = k.l and t.idx = k.i",
    )
    .bind(&levels)
    .bind(&idxs)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    let mut out = Tiles::with_capacity(rows.len());
    for row in rows {
        let (level, idx, bytes): (i64, i64, Vec<u8>) = (row.col("level")?, row.col("idx")?, row.col("hashes")?);
        let (id, hashes) = xuefen_store::bank::tile_from_row(level, idx, &bytes)?;
        out.insert(id, hashes);
    }
    Ok(out)
}

pub(crate) async fn log_segments(pool: &PgPool, from: u64, to: u64) -> Result<Vec<Segment>> {
    let rows = sqlx::query(
        "select start, chain_id::bigint, first_seq, count from log_segments
          where start < $2 and start >= coalesce((select max(start) from log_segments where start <= $1), 0)
          order by start",
    )
    .bind(from as i64)
    .bind(to as i64)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            xuefen_store::bank::segment_from_row((
                row.col("start")?,
                row.col("chain_id")?,
                row.col("first_seq")?,
                row.col("count")?,
            ))
        })
        .collect()
}

pub(crate) async fn segment_entries(pool: &PgPool, chain: u32, after: u64, upto: u64) -> Result<Vec<DepositRecord>> {
    let rows = sqlx::query(concat!(
        "select ",
        entry_columns!(),
        ", ln.document_hash as name_hash from ledger_entries l left join learners ln on ln.id = l.learner_id
          where l.chain_id = $1 and l.seq > $2 and l.seq <= $3 order by l.seq"
    ))
    .bind(chain as i32)
    .bind(after as i64)
    .bind(upto as i64)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            let hash: Option<Vec<u8>> = row.col("name_hash")?;
            Ok(DepositRecord {
                index: 0,
                entry: entry(row)?,
                learner_hash: hash.and_then(|h| h.try_into().ok()),
            })
        })
        .collect()
}

pub(crate) async fn legacy_checkpoint_chains(pool: &PgPool) -> Result<Vec<Vec<u8>>> {
    sqlx::query_scalar("select chains from legacy_checkpoints order by number")
        .fetch_all(pool)
        .await
        .map_err(db)
}

pub(crate) async fn write_seal(pool: &PgPool, seal: &Seal) -> Result<Written> {
    let mut tx = pool.begin().await.map_err(db)?;
    // The first segment claims the continuation of the log at `old_size`.
    let mut segments = seal.segments.iter();
    let Some(first) = segments.next() else {
        return Ok(Written::Existing);
    };
    let claimed: Option<i64> = sqlx::query_scalar(
        "insert into log_segments (start, chain_id, first_seq, count) values ($1, $2, $3, $4)
         on conflict do nothing returning start",
    )
    .bind(first.start as i64)
    .bind(first.chain as i32)
    .bind(first.first_seq as i64)
    .bind(first.count as i64)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    if claimed.is_none() || first.start != seal.old_size {
        tx.rollback().await.map_err(db)?;
        return Ok(Written::Existing);
    }
    let rest: Vec<_> = segments.collect();
    let starts: Vec<i64> = rest.iter().map(|s| s.start as i64).collect();
    let chains: Vec<i32> = rest.iter().map(|s| s.chain as i32).collect();
    let firsts: Vec<i64> = rest.iter().map(|s| s.first_seq as i64).collect();
    let counts: Vec<i64> = rest.iter().map(|s| s.count as i64).collect();
    sqlx::query(
        "insert into log_segments (start, chain_id, first_seq, count)
         select * from unnest($1::bigint[], $2::int[], $3::bigint[], $4::bigint[])",
    )
    .bind(&starts)
    .bind(&chains)
    .bind(&firsts)
    .bind(&counts)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    let levels: Vec<i16> = seal.tiles.iter().map(|(t, _)| i16::from(t.level)).collect();
    let idxs: Vec<i64> = seal.tiles.iter().map(|(t, _)| t.index as i64).collect();
    let bytes: Vec<Vec<u8>> = seal.tiles.iter().map(|(_, h)| h.concat()).collect();
    sqlx::query(
        "insert into log_tiles (level, idx, hashes)
         select * from unnest($1::smallint[], $2::bigint[], $3::bytea[])
         on conflict (level, idx) do update set hashes = excluded.hashes",
    )
    .bind(&levels)
    .bind(&idxs)
    .bind(&bytes)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    let tip_chains: Vec<i32> = seal.tips.iter().map(|t| t.chain as i32).collect();
    let tip_seqs: Vec<i64> = seal.tips.iter().map(|t| t.seq as i64).collect();
    let tip_hashes: Vec<Vec<u8>> = seal.tips.iter().map(|t| t.hash.to_vec()).collect();
    sqlx::query(
        "insert into log_chain_tips (chain_id, seq, hash)
         select * from unnest($1::int[], $2::bigint[], $3::bytea[])
         on conflict (chain_id) do update set seq = excluded.seq, hash = excluded.hash",
    )
    .bind(&tip_chains)
    .bind(&tip_seqs)
    .bind(&tip_hashes)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    sqlx::query("insert into log_checkpoints (size, created_at_ms, note) values ($1, $2, $3)")
        .bind(seal.head.size as i64)
        .bind(seal.head.created_at_ms)
        .bind(&seal.head.note)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(Written::Created)
}

pub(crate) async fn chain_range(pool: &PgPool, chain: u32, after: u64, upto: u64) -> Result<Vec<Entry>> {
    let rows = sqlx::query(concat!(
        "select ",
        entry_columns!(),
        " from ledger_entries l where l.chain_id = $1 and l.seq > $2 and l.seq <= $3 order by l.seq"
    ))
    .bind(chain as i32)
    .bind(after as i64)
    .bind(upto as i64)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(entry).collect()
}

pub(crate) async fn entry_kinds(pool: &PgPool, positions: &[Position]) -> Result<HashMap<Position, EntryKind>> {
    let chains: Vec<i32> = positions.iter().map(|p| p.chain as i32).collect();
    let seqs: Vec<i64> = positions.iter().map(|p| p.seq as i64).collect();
    let rows = sqlx::query(
        "select l.chain_id, l.seq, l.kind from ledger_entries l
           join unnest($1::int[], $2::bigint[]) as k(c, s) on l.chain_id = k.c and l.seq = k.s",
    )
    .bind(&chains)
    .bind(&seqs)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    let mut out = HashMap::new();
    for row in rows {
        let (chain, seq, kind): (i32, i64, i16) = (row.col("chain_id")?, row.col("seq")?, row.col("kind")?);
        let kind = u8::try_from(kind).ok().and_then(EntryKind::from_code);
        if let (Ok(chain), Ok(seq), Some(kind)) = (u32::try_from(chain), u64::try_from(seq), kind) {
            out.insert(Position { chain, seq }, kind);
        }
    }
    Ok(out)
}

/// The sealed deposits `acks` name, each with its learner's secret (none
/// once the learner is erased), under which an acknowledgement's note is
/// sealed.
async fn deposit_entries(
    tx: &mut Transaction<'_, Postgres>,
    acks: &[AckRequest],
) -> Result<HashMap<Position, (Entry, Option<[u8; 32]>)>> {
    let chains: Vec<i32> = acks.iter().map(|a| a.deposit.chain as i32).collect();
    let seqs: Vec<i64> = acks.iter().map(|a| a.deposit.seq as i64).collect();
    let rows = sqlx::query(concat!(
        "select ",
        entry_columns!(),
        ", (select r.kind::bigint from ledger_entries r where r.chain_id = l.refers_chain and r.seq = l.refers_seq)
             as referred_kind,
           (select t.seq from log_chain_tips t where t.chain_id = l.chain_id) as tip_seq,
           (select s.secret from learner_secrets s where s.learner_id = l.learner_id) as learner_secret
           from unnest($1::int[], $2::bigint[]) as k(c, s)
           join ledger_entries l on l.chain_id = k.c and l.seq = k.s"
    ))
    .bind(&chains)
    .bind(&seqs)
    .fetch_all(&mut **tx)
    .await
    .map_err(db)?;
    let mut out = HashMap::new();
    for r in &rows {
        let e = entry(r)?;
        let reversed: Option<i64> = r.col("referred_kind")?;
        let tip: Option<i64> = r.col("tip_seq")?;
        let reversed = reversed
            .and_then(|k| u8::try_from(k).ok())
            .and_then(EntryKind::from_code);
        let tip = tip.and_then(|t| u64::try_from(t).ok()).unwrap_or(0);
        if xuefen_store::bank::sealed_deposit(&e, tip, reversed) {
            let secret: Option<Vec<u8>> = r.col("learner_secret")?;
            let secret = secret
                .map(<[u8; 32]>::try_from)
                .transpose()
                .map_err(|_| StoreError::Corrupt {
                    at: format!("learner_secrets ({})", e.body.learner),
                    detail: "the secret is not 32 bytes".into(),
                })?;
            out.insert(e.position, (e, secret));
        }
    }
    Ok(out)
}

async fn lock_head(tx: &mut Transaction<'_, Postgres>, chain: u32) -> Result<(u64, Hash)> {
    let row = sqlx::query("select seq, hash from chain_heads where chain_id = $1 for update")
        .bind(chain as i32)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?;
    let (seq, hash): (i64, Vec<u8>) = (row.col("seq")?, row.col("hash")?);
    let corrupt = || StoreError::Corrupt {
        at: format!("chain head {chain}"),
        detail: "negative seq or hash not 32 bytes".into(),
    };
    Ok((
        u64::try_from(seq).map_err(|_| corrupt())?,
        hash.try_into().map_err(|_| corrupt())?,
    ))
}

/// Inserts one entry unless its idempotency key is taken; whether it was.
async fn insert_entry_once(tx: &mut Transaction<'_, Postgres>, e: &Entry) -> Result<bool> {
    let r = EntryRecord::from(e);
    let done = sqlx::query(concat!(
        "insert into ledger_entries (",
        entry_insert_columns!(),
        ")
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
                 $23, $24)
         on conflict do nothing"
    ))
    .bind(r.chain_id as i32)
    .bind(r.seq)
    .bind(r.prev_hash)
    .bind(r.hash)
    .bind(r.kind as i16)
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
    .bind(r.rule_version as i32)
    .bind(r.refers_chain.map(|c| c as i32))
    .bind(r.refers_seq)
    .bind(r.target_event)
    .bind(r.reason)
    .bind(r.recognition_group)
    .bind(r.withheld_cents)
    .bind(r.learner_commitment)
    .bind(r.reason_note)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(done.rows_affected() == 1)
}

async fn recorded_ack(tx: &mut Transaction<'_, Postgres>, deposit: Position) -> Result<Entry> {
    let row = sqlx::query(concat!(
        "select ",
        entry_columns!(),
        " from ledger_entries l where l.site_id = $1 and l.event_id = $2"
    ))
    .bind(BANK_SITE)
    .bind(ack_event_id(deposit).as_str())
    .fetch_optional(&mut **tx)
    .await
    .map_err(db)?;
    let row = row.ok_or_else(|| StoreError::Corrupt {
        at: format!("acknowledgement of deposit {deposit}"),
        detail: "its key is taken but no entry has it".into(),
    })?;
    entry(&row)
}

pub(crate) async fn ack_deposits(pool: &PgPool, acks: &[AckRequest], now: Millis) -> Result<Vec<AckOutcome>> {
    if acks.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin().await.map_err(db)?;
    let deposits = deposit_entries(&mut tx, acks).await?;
    // Heads are locked in chain order, as ingestion locks them.
    let mut order: Vec<usize> = (0..acks.len()).collect();
    order.sort_by_key(|i| acks[*i].deposit);
    let mut heads: HashMap<u32, (u64, Hash)> = HashMap::new();
    let mut out: Vec<Option<AckOutcome>> = vec![None; acks.len()];
    for i in order {
        let ack = &acks[i];
        let Some((deposit, secret)) = deposits.get(&ack.deposit) else {
            out[i] = Some(AckOutcome::UnknownDeposit);
            continue;
        };
        let chain = ack.deposit.chain;
        let (seq, hash) = match heads.get(&chain) {
            Some(h) => *h,
            None => lock_head(&mut tx, chain).await?,
        };
        let position = Position { chain, seq: seq + 1 };
        let entry = Entry::seal(
            position,
            hash,
            ack_body(deposit, &ack.decision, now, position, secret.as_ref()),
        );
        if insert_entry_once(&mut tx, &entry).await? {
            heads.insert(chain, (position.seq, entry.hash));
            out[i] = Some(AckOutcome::Recorded { position });
            continue;
        }
        heads.insert(chain, (seq, hash));
        let existing = recorded_ack(&mut tx, ack.deposit).await?;
        let recorded =
            Decision::of(&existing.body, |n| n.open(secret.as_ref(), existing.position)).ok_or_else(|| {
                StoreError::Corrupt {
                    at: format!("entry {}", existing.position),
                    detail: "the bank's key names an entry that is not an acknowledgement".into(),
                }
            })?;
        out[i] = Some(match ack.decision.first_difference(&recorded) {
            None => AckOutcome::Duplicate {
                position: existing.position,
            },
            Some(field) => AckOutcome::Conflict {
                field,
                position: existing.position,
            },
        });
    }
    if !heads.is_empty() {
        let chains: Vec<i32> = heads.keys().map(|c| *c as i32).collect();
        let seqs: Vec<i64> = heads.values().map(|(s, _)| *s as i64).collect();
        let hashes: Vec<Vec<u8>> = heads.values().map(|(_, h)| h.to_vec()).collect();
        sqlx::query(
            "update chain_heads h set seq = k.s, hash = k.h
               from unnest($1::int[], $2::bigint[], $3::bytea[]) as k(c, s, h)
              where h.chain_id = k.c",
        )
        .bind(&chains)
        .bind(&seqs)
        .bind(&hashes)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(out
        .into_iter()
        .map(|o| o.unwrap_or(AckOutcome::UnknownDeposit))
        .collect())
}

/// The learner's secret and chain, and two 16-byte random values.
type ErasureRow = (Vec<u8>, i32, Vec<u8>, Vec<u8>);

/// [`xuefen_store::LearnerStore::erase_learner`], under the lock of the learner's
/// chain head.
pub(crate) async fn erase_learner(
    pool: &PgPool,
    learner: &xuefen_core::ids::LearnerId,
    reason: &xuefen_core::event::Reason,
    now: Millis,
) -> Result<Position> {
    let mut tx = pool.begin().await.map_err(db)?;
    let row: Option<ErasureRow> = sqlx::query_as(
        "select s.secret, l.chain_id, uuid_send(gen_random_uuid()), uuid_send(gen_random_uuid())
           from learner_secrets s join learners l on l.id = s.learner_id
          where s.learner_id = $1
          for update of s",
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
    let nonce: [u8; 16] = nonce.try_into().map_err(|_| corrupt("uuid is not 16 bytes"))?;
    let tombstone: [u8; 16] = tombstone.try_into().map_err(|_| corrupt("uuid is not 16 bytes"))?;
    let chain = u32::try_from(chain).map_err(|_| corrupt("chain out of range"))?;
    let (seq, prev) = lock_head(&mut tx, chain).await?;
    let position = Position { chain, seq: seq + 1 };
    let entry = xuefen_core::entry::erasure_entry(
        &secret,
        position,
        prev,
        reason.clone(),
        now,
        nonce,
        xuefen_core::ids::LearnerId::from_random(tombstone),
    );
    if !insert_entry_once(&mut tx, &entry).await? {
        return Err(corrupt("the erasure's event id is taken"));
    }
    sqlx::query("update chain_heads set seq = $2, hash = $3 where chain_id = $1")
        .bind(chain as i32)
        .bind(position.seq as i64)
        .bind(entry.hash.to_vec())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    // The one update the ledger allows (migration 0007): each version-2
    // entry gets a learner id of its own, drawn at random, and loses its note.
    sqlx::query("set local xuefen.erasure = 'on'")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    sqlx::query(
        "update ledger_entries set learner_id = 'lrn_' || encode(uuid_send(gen_random_uuid()), 'hex'),
                reason_note = null
          where learner_id = $1 and learner_commitment is not null",
    )
    .bind(learner.as_str())
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    sqlx::query("set local xuefen.erasure = 'off'")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    crate::xapi::erasure::erase_learner_xapi(&mut tx, learner.as_str()).await?;
    for sql in [
        "delete from xapi_mbox_links where (site_id, local_account) in
            (select site_id, local_account from learner_accounts where learner_id = $1)",
        "delete from learner_accounts where learner_id = $1",
        "delete from learner_pseudonyms where learner_id = $1",
        "delete from learner_sso_bindings where learner_id = $1",
        "delete from learner_secrets where learner_id = $1",
        // Crypto-shredding: without their key, no copy of the learner's
        // sealed values opens any more (crates/xuefen-core/src/names.rs).
        "delete from learner_keys where learner_id = $1",
        "delete from learners where id = $1",
    ] {
        sqlx::query(sql)
            .bind(learner.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(position)
}

#[async_trait]
impl BankStore for PgStore {
    async fn log_head(&self) -> Result<Option<LogHead>> {
        bank::log_head(&self.pool).await
    }

    async fn log_tips(&self) -> Result<Vec<ChainTip>> {
        bank::log_tips(&self.pool).await
    }

    async fn log_tiles(&self, ids: &[TileId]) -> Result<Tiles> {
        bank::log_tiles(&self.read_pool, ids).await
    }

    async fn log_segments(&self, from: u64, to: u64) -> Result<Vec<Segment>> {
        bank::log_segments(&self.read_pool, from, to).await
    }

    async fn segment_entries(&self, chain: u32, after: u64, upto: u64) -> Result<Vec<DepositRecord>> {
        bank::segment_entries(&self.read_pool, chain, after, upto).await
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
