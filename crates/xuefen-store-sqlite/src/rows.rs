//! SQL text and row readers: the entry and course column lists in record
//! order, placeholder lists, and the functions that read a row into the
//! backend-neutral records.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use xuefen_core::entry::Entry;
use xuefen_store::Result;
use xuefen_store::records::{CourseRecord, EntryRecord};

use crate::unreadable;

/// Bound parameters per statement. SQLite refuses more than 32 766 (its
/// default `SQLITE_MAX_VARIABLE_NUMBER`); staying well below keeps each
/// statement small to prepare.
pub(crate) const PARAMS_PER_STATEMENT_MAX: usize = 10_000;

/// Columns of `ledger_entries`.
pub(crate) const ENTRY_COLUMNS: usize = 24;

/// The columns of an entry in [`EntryRecord`] order, as a literal so that
/// queries stay `&'static str`.
macro_rules! entry_columns {
    () => {
        "chain_id, seq, prev_hash, hash, kind, site_id, event_id, learner_id, course_code,
         category, credits_cents, occurred_at_ms, recorded_at_ms, score_cents, hours_cents,
         rule_version, refers_chain, refers_seq, target_event, reason, recognition_group, withheld_cents,
         learner_commitment, reason_note"
    };
}

/// The columns of a course in [`CourseRecord`] order, with its recognition
/// group; the caller's query ends with [`course_from!`].
macro_rules! course_columns {
    () => {
        "c.site_id, c.code, c.title, c.category, c.rule_kind, c.credits_cents,
         c.hours_per_credit_cents, c.cap_cents, c.pass_mark_cents, c.rule_version,
         m.group_id, c.offered_from_ms, c.credit_repeat"
    };
}

macro_rules! course_from {
    () => {
        " from courses c
          left join recognition_members m on m.site_id = c.site_id and m.course_code = c.code"
    };
}

/// A timestamp as the schema's defaults write it: ISO-8601 UTC, milliseconds.
macro_rules! now_sql {
    () => {
        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    };
}

/// `(?, ?), (?, ?)`: `rows` tuples of `width` placeholders.
pub(crate) fn tuples(rows: usize, width: usize) -> String {
    let one = format!("({})", vec!["?"; width].join(", "));
    vec![one; rows].join(", ")
}

/// `?, ?, ?`: `n` placeholders.
pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Every statement built by [`tuples`] or [`placeholders`] is run
/// unprepared-for-reuse: its text depends on the batch's size, and caching
/// each shape would evict the statements that do repeat.
pub(crate) const REUSE_DYNAMIC_STATEMENTS: bool = false;

fn entry_record(row: &SqliteRow) -> sqlx::Result<EntryRecord> {
    Ok(EntryRecord {
        chain_id: row.try_get(0)?,
        seq: row.try_get(1)?,
        prev_hash: row.try_get(2)?,
        hash: row.try_get(3)?,
        kind: row.try_get(4)?,
        site_id: row.try_get(5)?,
        event_id: row.try_get(6)?,
        learner_id: row.try_get(7)?,
        course_code: row.try_get(8)?,
        category: row.try_get(9)?,
        credits_cents: row.try_get(10)?,
        occurred_at_ms: row.try_get(11)?,
        recorded_at_ms: row.try_get(12)?,
        score_cents: row.try_get(13)?,
        hours_cents: row.try_get(14)?,
        rule_version: row.try_get(15)?,
        refers_chain: row.try_get(16)?,
        refers_seq: row.try_get(17)?,
        target_event: row.try_get(18)?,
        reason: row.try_get(19)?,
        recognition_group: row.try_get(20)?,
        withheld_cents: row.try_get(21)?,
        learner_commitment: row.try_get(22)?,
        reason_note: row.try_get(23)?,
    })
}

/// An entry from a row; a row that cannot be one is corrupt data, which
/// verification reports as such.
pub(crate) fn entry_from_row(row: &SqliteRow) -> Result<Entry> {
    let record = entry_record(row).map_err(|e| unreadable("ledger_entries", e))?;
    Entry::try_from(record)
}

pub(crate) fn course_record(row: &SqliteRow) -> Result<CourseRecord> {
    let get = || -> sqlx::Result<CourseRecord> {
        Ok(CourseRecord {
            site_id: row.try_get(0)?,
            code: row.try_get(1)?,
            title: row.try_get(2)?,
            category: row.try_get(3)?,
            rule_kind: row.try_get(4)?,
            credits_cents: row.try_get(5)?,
            hours_per_credit_cents: row.try_get(6)?,
            cap_cents: row.try_get(7)?,
            pass_mark_cents: row.try_get(8)?,
            rule_version: row.try_get(9)?,
            recognition_group: row.try_get(10)?,
            offered_from_ms: row.try_get(11)?,
            credit_repeat: row.try_get(12)?,
        })
    };
    get().map_err(|e| unreadable("courses", e))
}
