//! Row readers: the entry and course column lists in record order, and the
//! functions that read a row of them into the backend-neutral records.

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
/// ledger `l`. [`EntryRecord::read`] reads them by name, so a query's own columns
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
