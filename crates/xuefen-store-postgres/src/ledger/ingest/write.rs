//! Writing the planned entries and moving the chain heads: one statement
//! for small groups, binary `COPY` for large ones. Either fails with a
//! unique violation on a key or position committed meanwhile, which the
//! attempt retries.

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
    let small =
        |v: i64, what: &str| i32::try_from(v).map_err(|_| sqlx::Error::Protocol(format!("{what} out of range")));
    let n = entries.len();
    let mut chain_id = Vec::with_capacity(n);
    let mut seq = Vec::with_capacity(n);
    let mut prev_hash = Vec::with_capacity(n);
    let mut hash = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut site_id = Vec::with_capacity(n);
    let mut event_id = Vec::with_capacity(n);
    let mut learner_id = Vec::with_capacity(n);
    let mut course_code = Vec::with_capacity(n);
    let mut category = Vec::with_capacity(n);
    let mut credits_cents = Vec::with_capacity(n);
    let mut occurred_at_ms = Vec::with_capacity(n);
    let mut recorded_at_ms = Vec::with_capacity(n);
    let mut score_cents = Vec::with_capacity(n);
    let mut hours_cents = Vec::with_capacity(n);
    let mut rule_version = Vec::with_capacity(n);
    let mut refers_chain = Vec::with_capacity(n);
    let mut refers_seq = Vec::with_capacity(n);
    let mut target_event = Vec::with_capacity(n);
    let mut reason = Vec::with_capacity(n);
    let mut recognition_group = Vec::with_capacity(n);
    let mut withheld_cents = Vec::with_capacity(n);
    let mut learner_commitment = Vec::with_capacity(n);
    let mut reason_note = Vec::with_capacity(n);
    for e in entries {
        let r = EntryRecord::from(e);
        chain_id.push(small(r.chain_id, "chain id")?);
        seq.push(r.seq);
        prev_hash.push(r.prev_hash);
        hash.push(r.hash);
        kind.push(i16::try_from(r.kind).map_err(|_| sqlx::Error::Protocol("entry kind out of range".into()))?);
        site_id.push(r.site_id);
        event_id.push(r.event_id);
        learner_id.push(r.learner_id);
        course_code.push(r.course_code);
        category.push(r.category);
        credits_cents.push(r.credits_cents);
        occurred_at_ms.push(r.occurred_at_ms);
        recorded_at_ms.push(r.recorded_at_ms);
        score_cents.push(r.score_cents);
        hours_cents.push(r.hours_cents);
        rule_version.push(small(r.rule_version, "rule version")?);
        refers_chain.push(r.refers_chain.map(|c| small(c, "refers chain")).transpose()?);
        refers_seq.push(r.refers_seq);
        target_event.push(r.target_event);
        reason.push(r.reason);
        recognition_group.push(r.recognition_group);
        withheld_cents.push(r.withheld_cents);
        learner_commitment.push(r.learner_commitment);
        reason_note.push(r.reason_note);
    }
    let head_chains: Vec<i32> = heads.keys().map(|c| *c as i32).collect();
    let head_seqs: Vec<i64> = heads.values().map(|h| h.seq as i64).collect();
    let head_hashes: Vec<Vec<u8>> = heads.values().map(|h| h.hash.to_vec()).collect();
    // Data-modifying CTEs run to their end whether read or not; the count
    // tells whether every row went in.
    let inserted: i64 = sqlx::query_scalar(concat!(
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
    ))
    .bind(&chain_id)
    .bind(&seq)
    .bind(&prev_hash)
    .bind(&hash)
    .bind(&kind)
    .bind(&site_id)
    .bind(&event_id)
    .bind(&learner_id)
    .bind(&course_code)
    .bind(&category)
    .bind(&credits_cents)
    .bind(&occurred_at_ms)
    .bind(&recorded_at_ms)
    .bind(&score_cents)
    .bind(&hours_cents)
    .bind(&rule_version)
    .bind(&refers_chain)
    .bind(&refers_seq)
    .bind(&target_event)
    .bind(&reason)
    .bind(&recognition_group)
    .bind(&withheld_cents)
    .bind(&learner_commitment)
    .bind(&reason_note)
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
    let small =
        |v: i64, what: &str| i32::try_from(v).map_err(|_| sqlx::Error::Protocol(format!("{what} out of range")));
    for e in entries {
        let r = EntryRecord::from(e);
        w.row(24);
        w.int4(small(r.chain_id, "chain id")?);
        w.int8(r.seq);
        w.bytea(&r.prev_hash);
        w.bytea(&r.hash);
        w.int2(i16::try_from(r.kind).map_err(|_| sqlx::Error::Protocol("entry kind out of range".into()))?);
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
        w.int4(small(r.rule_version, "rule version")?);
        w.opt_int4(r.refers_chain.map(|c| small(c, "refers chain")).transpose()?);
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
