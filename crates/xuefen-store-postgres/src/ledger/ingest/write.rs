//! Writing the planned entries and moving the chain heads: one statement
//! for small groups, binary `COPY` for large ones. Either fails with a
//! unique violation on a key or position committed meanwhile, which the
//! attempt retries.

use sqlx::postgres::PgArguments;
use sqlx::query::QueryScalar;
use sqlx::{Postgres, Transaction};
use xuefen_core::entry::Entry;
use xuefen_core::plan::Head;
use xuefen_store::records::EntryRecord;

use crate::copy::CopyWriter;

/// Groups of at most this many entries are written with one statement that
/// also moves the heads (one round trip); larger ones with `COPY`, cheaper
/// per row, and a second statement for the heads.
const INSERT_ROWS_MAX: usize = 256;

/// Writes `entries` and moves the chain heads to `heads`; how many entries
/// were written. A key or position committed meanwhile by another
/// transaction is a unique violation either way (see [`insert_entries`]).
pub(crate) async fn write_entries(
    tx: &mut Transaction<'_, Postgres>,
    entries: &[Entry],
    heads: &std::collections::BTreeMap<u32, Head>,
) -> std::result::Result<u64, sqlx::Error> {
    if entries.len() > INSERT_ROWS_MAX {
        let inserted = insert_entries(tx, entries).await?;
        update_heads(tx, heads).await?;
        return Ok(inserted);
    }
    let columns = EntryArrays::of(entries)?;
    let head_chains: Vec<i32> = heads.keys().map(|c| *c as i32).collect();
    let head_seqs: Vec<i64> = heads.values().map(|h| h.seq as i64).collect();
    let head_hashes: Vec<Vec<u8>> = heads.values().map(|h| h.hash.to_vec()).collect();
    // Data-modifying CTEs run to their end whether read or not; the count
    // tells whether every row went in.
    let query = sqlx::query_scalar(concat!(
        "with ins as (
           insert into ledger_entries (",
        entry_insert_columns!(),
        ")
           select * from unnest($1::int[], $2::bigint[], $3::bytea[], $4::bytea[], $5::smallint[], $6::text[],
                  $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::bigint[], $13::bigint[],
                  $14::bigint[], $15::bigint[], $16::int[], $17::int[], $18::bigint[], $19::text[], $20::text[],
                  $21::text[], $22::bigint[], $23::bytea[], $24::text[])
           returning 1),
         heads as (
           update chain_heads h set seq = u.seq, hash = u.hash
             from unnest($25::int[], $26::bigint[], $27::bytea[]) as u(chain_id, seq, hash)
            where h.chain_id = u.chain_id
           returning 1)
         select count(*) from ins"
    ));
    let inserted: i64 = columns
        .bind(query)
        .bind(&head_chains)
        .bind(&head_seqs)
        .bind(&head_hashes)
        .fetch_one(&mut **tx)
        .await?;
    Ok(u64::try_from(inserted).unwrap_or(0))
}

/// Writes `entries` with one binary `COPY` and returns how many were written.
///
/// `COPY` cannot skip conflicting rows: if another transaction committed one
/// of these idempotency keys (or positions) since the lookups, the statement
/// fails with a unique violation, the transaction rolls back and the batch is
/// planned again, this time seeing that entry.
pub(crate) async fn insert_entries(
    tx: &mut Transaction<'_, Postgres>,
    entries: &[Entry],
) -> std::result::Result<u64, sqlx::Error> {
    let mut w = CopyWriter::with_capacity(entries.len() * 320);
    for e in entries {
        let r = EntryRecord::from(e);
        let narrow = Narrow::of(&r)?;
        w.row(24);
        w.int4(narrow.chain_id);
        w.int8(r.seq);
        w.bytea(&r.prev_hash);
        w.bytea(&r.hash);
        w.int2(narrow.kind);
        w.text(&r.site_id);
        w.text(&r.event_id);
        w.text(&r.learner_id);
        w.text(&r.course_code);
        w.text(&r.category);
        w.int8(r.credits_cents);
        w.int8(r.occurred_at_ms);
        w.int8(r.recorded_at_ms);
        w.opt_int8(r.score_cents);
        w.opt_int8(r.hours_cents);
        w.int4(narrow.rule_version);
        w.opt_int4(narrow.refers_chain);
        w.opt_int8(r.refers_seq);
        w.opt_text(r.target_event.as_deref());
        w.text(&r.reason);
        w.opt_text(r.recognition_group.as_deref());
        w.opt_int8(r.withheld_cents);
        match &r.learner_commitment {
            Some(c) => w.bytea(c),
            None => w.null(),
        }
        w.opt_text(r.reason_note.as_deref());
    }
    let mut copy = tx
        .copy_in_raw(concat!(
            "copy ledger_entries (",
            entry_insert_columns!(),
            ")
             from stdin (format binary)"
        ))
        .await?;
    copy.send(w.finish()).await?;
    copy.finish().await
}

/// The columns PostgreSQL keeps narrower than the record's `i64`
/// (`int`, `smallint`), checked once for both ways of writing.
struct Narrow {
    chain_id: i32,
    kind: i16,
    rule_version: i32,
    refers_chain: Option<i32>,
}

impl Narrow {
    fn of(r: &EntryRecord) -> std::result::Result<Self, sqlx::Error> {
        let small =
            |v: i64, what: &str| i32::try_from(v).map_err(|_| sqlx::Error::Protocol(format!("{what} out of range")));
        Ok(Self {
            chain_id: small(r.chain_id, "chain id")?,
            kind: i16::try_from(r.kind).map_err(|_| sqlx::Error::Protocol("entry kind out of range".into()))?,
            rule_version: small(r.rule_version, "rule version")?,
            refers_chain: r.refers_chain.map(|c| small(c, "refers chain")).transpose()?,
        })
    }
}

/// The entries as one array per column, in the order of
/// `entry_insert_columns!`, for the `unnest` insert.
#[derive(Default)]
struct EntryArrays {
    chain_id: Vec<i32>,
    seq: Vec<i64>,
    prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
    kind: Vec<i16>,
    site_id: Vec<String>,
    event_id: Vec<String>,
    learner_id: Vec<String>,
    course_code: Vec<String>,
    category: Vec<String>,
    credits_cents: Vec<i64>,
    occurred_at_ms: Vec<i64>,
    recorded_at_ms: Vec<i64>,
    score_cents: Vec<Option<i64>>,
    hours_cents: Vec<Option<i64>>,
    rule_version: Vec<i32>,
    refers_chain: Vec<Option<i32>>,
    refers_seq: Vec<Option<i64>>,
    target_event: Vec<Option<String>>,
    reason: Vec<String>,
    recognition_group: Vec<Option<String>>,
    withheld_cents: Vec<Option<i64>>,
    learner_commitment: Vec<Option<Vec<u8>>>,
    reason_note: Vec<Option<String>>,
}

impl EntryArrays {
    fn of(entries: &[Entry]) -> std::result::Result<Self, sqlx::Error> {
        let mut a = Self::default();
        for e in entries {
            let r = EntryRecord::from(e);
            let narrow = Narrow::of(&r)?;
            a.chain_id.push(narrow.chain_id);
            a.seq.push(r.seq);
            a.prev_hash.push(r.prev_hash);
            a.hash.push(r.hash);
            a.kind.push(narrow.kind);
            a.site_id.push(r.site_id);
            a.event_id.push(r.event_id);
            a.learner_id.push(r.learner_id);
            a.course_code.push(r.course_code);
            a.category.push(r.category);
            a.credits_cents.push(r.credits_cents);
            a.occurred_at_ms.push(r.occurred_at_ms);
            a.recorded_at_ms.push(r.recorded_at_ms);
            a.score_cents.push(r.score_cents);
            a.hours_cents.push(r.hours_cents);
            a.rule_version.push(narrow.rule_version);
            a.refers_chain.push(narrow.refers_chain);
            a.refers_seq.push(r.refers_seq);
            a.target_event.push(r.target_event);
            a.reason.push(r.reason);
            a.recognition_group.push(r.recognition_group);
            a.withheld_cents.push(r.withheld_cents);
            a.learner_commitment.push(r.learner_commitment);
            a.reason_note.push(r.reason_note);
        }
        Ok(a)
    }

    /// Binds the columns as `$1` to `$24`.
    fn bind<'q, O>(
        &'q self,
        query: QueryScalar<'q, Postgres, O, PgArguments>,
    ) -> QueryScalar<'q, Postgres, O, PgArguments> {
        query
            .bind(&self.chain_id)
            .bind(&self.seq)
            .bind(&self.prev_hash)
            .bind(&self.hash)
            .bind(&self.kind)
            .bind(&self.site_id)
            .bind(&self.event_id)
            .bind(&self.learner_id)
            .bind(&self.course_code)
            .bind(&self.category)
            .bind(&self.credits_cents)
            .bind(&self.occurred_at_ms)
            .bind(&self.recorded_at_ms)
            .bind(&self.score_cents)
            .bind(&self.hours_cents)
            .bind(&self.rule_version)
            .bind(&self.refers_chain)
            .bind(&self.refers_seq)
            .bind(&self.target_event)
            .bind(&self.reason)
            .bind(&self.recognition_group)
            .bind(&self.withheld_cents)
            .bind(&self.learner_commitment)
            .bind(&self.reason_note)
    }
}

pub(crate) async fn update_heads(
    tx: &mut Transaction<'_, Postgres>,
    heads: &std::collections::BTreeMap<u32, Head>,
) -> std::result::Result<(), sqlx::Error> {
    let chains: Vec<i32> = heads.keys().map(|c| *c as i32).collect();
    let seqs: Vec<i64> = heads.values().map(|h| h.seq as i64).collect();
    let hashes: Vec<Vec<u8>> = heads.values().map(|h| h.hash.to_vec()).collect();
    sqlx::query(
        "update chain_heads h set seq = u.seq, hash = u.hash
           from unnest($1::int[], $2::bigint[], $3::bytea[]) as u(chain_id, seq, hash)
          where h.chain_id = u.chain_id",
    )
    .bind(&chains)
    .bind(&seqs)
    .bind(&hashes)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
