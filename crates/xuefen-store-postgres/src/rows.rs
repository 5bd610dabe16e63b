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
/// queries stay `&'static str`.
macro_rules! entry_columns {
    () => {
        "chain_id::bigint, seq, prev_hash, hash, kind::bigint, site_id, event_id, learner_id,
         course_code, category, credits_cents, occurred_at_ms, recorded_at_ms, score_cents, hours_cents,
         rule_version::bigint, refers_chain::bigint, refers_seq, target_event, reason, recognition_group,
         withheld_cents, learner_commitment, reason_note"
    };
}

pub(crate) fn entry_record(row: &PgRow) -> Result<EntryRecord> {
    Ok(EntryRecord {
        chain_id: row.col(0)?,
        seq: row.col(1)?,
        prev_hash: row.col(2)?,
        hash: row.col(3)?,
        kind: row.col(4)?,
        site_id: row.col(5)?,
        event_id: row.col(6)?,
        learner_id: row.col(7)?,
        course_code: row.col(8)?,
        category: row.col(9)?,
        credits_cents: row.col(10)?,
        occurred_at_ms: row.col(11)?,
        recorded_at_ms: row.col(12)?,
        score_cents: row.col(13)?,
        hours_cents: row.col(14)?,
        rule_version: row.col(15)?,
        refers_chain: row.col(16)?,
        refers_seq: row.col(17)?,
        target_event: row.col(18)?,
        reason: row.col(19)?,
        recognition_group: row.col(20)?,
        withheld_cents: row.col(21)?,
        learner_commitment: row.col(22)?,
        reason_note: row.col(23)?,
    })
}

pub(crate) fn course_record(row: &PgRow) -> Result<CourseRecord> {
    Ok(CourseRecord {
        site_id: row.col(0)?,
        code: row.col(1)?,
        title: row.col(2)?,
        category: row.col(3)?,
        rule_kind: row.col(4)?,
        credits_cents: row.col(5)?,
        hours_per_credit_cents: row.col(6)?,
        cap_cents: row.col(7)?,
        pass_mark_cents: row.col(8)?,
        rule_version: row.col(9)?,
        recognition_group: row.col(10)?,
        offered_from_ms: row.col(11)?,
        credit_repeat: row.col(12)?,
    })
}
