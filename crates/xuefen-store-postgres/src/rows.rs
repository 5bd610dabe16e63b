//! Row readers: the entry and course column lists in record order, and the
//! functions that read a row of them into the backend-neutral records.

use sqlx::postgres::PgRow;
use xuefen_store::Result;
use xuefen_store::records::{CourseRecord, EntryRecord};

use crate::Col;

/// The columns of a course in [`CourseRecord`] order, with its recognition
/// group.
macro_rules! course_columns {
    () => {
        "c.site_id, c.code, c.title, c.category, c.rule_kind, c.credits_cents, c.hours_per_credit_cents,
         c.cap_cents, c.pass_mark_cents, c.rule_version::bigint, m.group_id, c.offered_from_ms,
         c.credit_repeat"
    };
}

macro_rules! course_from {
    () => {
        " from courses c
          left join recognition_members m on m.site_id = c.site_id and m.course_code = c.code"
    };
}

/// The columns of an entry in [`EntryRecord`] order, as a literal so that
/// queries stay `&'static str`: every query that reads entries names the
/// ledger `l`. [`entry_record`] reads them by name, so a query's own columns
/// after them need names of their own.
macro_rules! entry_columns {
    () => {
        "l.chain_id::bigint, l.seq, l.prev_hash, l.hash, l.kind::bigint, l.site_id, l.event_id, l.learner_id,
         l.course_code, l.category, l.credits_cents, l.occurred_at_ms, l.recorded_at_ms, l.score_cents,
         l.hours_cents, l.rule_version::bigint, l.refers_chain::bigint, l.refers_seq, l.target_event,
         l.reason, l.recognition_group, l.withheld_cents, l.learner_commitment, l.reason_note"
    };
}

/// The columns an entry is written to, in [`EntryRecord`] order (the order
/// the writers bind or copy them in).
macro_rules! entry_insert_columns {
    () => {
        "chain_id, seq, prev_hash, hash, kind, site_id, event_id, learner_id, course_code, category,
         credits_cents, occurred_at_ms, recorded_at_ms, score_cents, hours_cents, rule_version, refers_chain,
         refers_seq, target_event, reason, recognition_group, withheld_cents, learner_commitment,
         reason_note"
    };
}

pub(crate) fn entry_record(row: &PgRow) -> Result<EntryRecord> {
    Ok(EntryRecord {
        chain_id: row.col("chain_id")?,
        seq: row.col("seq")?,
        prev_hash: row.col("prev_hash")?,
        hash: row.col("hash")?,
        kind: row.col("kind")?,
        site_id: row.col("site_id")?,
        event_id: row.col("event_id")?,
        learner_id: row.col("learner_id")?,
        course_code: row.col("course_code")?,
        category: row.col("category")?,
        credits_cents: row.col("credits_cents")?,
        occurred_at_ms: row.col("occurred_at_ms")?,
        recorded_at_ms: row.col("recorded_at_ms")?,
        score_cents: row.col("score_cents")?,
        hours_cents: row.col("hours_cents")?,
        rule_version: row.col("rule_version")?,
        refers_chain: row.col("refers_chain")?,
        refers_seq: row.col("refers_seq")?,
        target_event: row.col("target_event")?,
        reason: row.col("reason")?,
        recognition_group: row.col("recognition_group")?,
        withheld_cents: row.col("withheld_cents")?,
        learner_commitment: row.col("learner_commitment")?,
        reason_note: row.col("reason_note")?,
    })
}

pub(crate) fn course_record(row: &PgRow) -> Result<CourseRecord> {
    Ok(CourseRecord {
        site_id: row.col("site_id")?,
        code: row.col("code")?,
        title: row.col("title")?,
        category: row.col("category")?,
        rule_kind: row.col("rule_kind")?,
        credits_cents: row.col("credits_cents")?,
        hours_per_credit_cents: row.col("hours_per_credit_cents")?,
        cap_cents: row.col("cap_cents")?,
        pass_mark_cents: row.col("pass_mark_cents")?,
        rule_version: row.col("rule_version")?,
        recognition_group: row.col("group_id")?,
        offered_from_ms: row.col("offered_from_ms")?,
        credit_repeat: row.col("credit_repeat")?,
    })
}
