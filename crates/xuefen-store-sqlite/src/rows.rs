//! SQL text and row readers: the entry and course column lists in record
//! order, placeholder lists, and the functions that read a row into the
//! backend-neutral records.

use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use xuefen_core::entry::Entry;
use xuefen_store::Result;
use xuefen_store::records::EntryRecord;

/// Bound parameters per statement. SQLite refuses more than 32 766 (its
/// default `SQLITE_MAX_VARIABLE_NUMBER`); staying well below keeps each
/// statement small to prepare.
pub(crate) const PARAMS_PER_STATEMENT_MAX: usize = 10_000;

/// Columns of `ledger_entries`.
pub(crate) const ENTRY_COLUMNS: usize = 24;

/// The columns of an entry in [`EntryRecord`] order, as a literal so that
/// queries stay `&'static str`: every query that reads entries names the
/// ledger `l`. [`EntryRecord::read`] reads them by name, so a query's own columns
/// after them need names of their own.
macro_rules! entry_columns {
    () => {
        "l.chain_id, l.seq, l.prev_hash, l.hash, l.kind, l.site_id, l.event_id, l.learner_id, l.course_code,
         l.category, l.credits_cents, l.occurred_at_ms, l.recorded_at_ms, l.score_cents, l.hours_cents,
         l.rule_version, l.refers_chain, l.refers_seq, l.target_event, l.reason, l.recognition_group,
         l.withheld_cents, l.learner_commitment, l.reason_note"
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

/// An entry from a row; a row that cannot be one is corrupt data, which
/// verification reports as such.
pub(crate) fn entry_from_row(row: &SqliteRow) -> Result<Entry> {
    Entry::try_from(EntryRecord::read(row)?)
}

/// The rows of `{head} (?, …)` for `site` and every one of `keys`, where
/// `head` is a select ending in `where <site column> = ? and <key column>
/// in`: read in chunks under [`PARAMS_PER_STATEMENT_MAX`] (the site takes
/// one parameter of each) and decoded by `decode`.
pub(crate) async fn rows_in<T>(
    conn: &mut SqliteConnection,
    head: &str,
    site: &str,
    keys: &[impl AsRef<str>],
    decode: impl Fn(&SqliteRow) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(PARAMS_PER_STATEMENT_MAX - 1) {
        // Dynamic: the number of keys varies with the request.
        let sql = format!("{head} ({})", placeholders(chunk.len()));
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS).bind(site);
        for key in chunk {
            q = q.bind(key.as_ref());
        }
        for row in q.fetch_all(&mut *conn).await.map_err(crate::db)? {
            out.push(decode(&row)?);
        }
    }
    Ok(out)
}
