//! The reads an ingest batch plans with, each one query (or one chunked
//! query) for the whole batch.

use std::collections::{BTreeSet, HashMap, HashSet};

use sqlx::Row;
use sqlx::sqlite::SqliteConnection;
use xuefen_core::amount::Credits;
use xuefen_core::entry::Entry;
use xuefen_core::event::{Event, EventBody, LearnerRef, Millis};
use xuefen_core::ids::{Category, CourseCode, EventId, GroupId, LearnerId, LocalAccount, SiteId};
use xuefen_core::plan::{self, Key, Lookups};
use xuefen_store::records::CourseRecord;
use xuefen_store::{Course, Result};

use crate::rows::{PARAMS_PER_STATEMENT_MAX, REUSE_DYNAMIC_STATEMENTS, entry_from_row, placeholders, tuples};
use crate::{db, unreadable};

pub(crate) async fn lookup_learners(
    conn: &mut SqliteConnection,
    events: &[Event],
    lookups: &mut Lookups,
) -> Result<()> {
    let mut ids: BTreeSet<String> = BTreeSet::new();
    let mut accounts: BTreeSet<(&str, &str)> = BTreeSet::new();
    for e in events {
        if let EventBody::Completion(c) = &e.body {
            match &c.learner {
                LearnerRef::Id(id) => {
                    ids.insert(id.as_str().to_owned());
                }
                LearnerRef::Account(a) => {
                    accounts.insert((e.site.as_str(), a.as_str()));
                }
            }
        }
    }
    let accounts: Vec<(&str, &str)> = accounts.into_iter().collect();
    for chunk in accounts.chunks(PARAMS_PER_STATEMENT_MAX / 2) {
        let sql = format!(
            "select a.site_id, a.local_account, a.learner_id
               from (values {}) as k
               join learner_accounts a on a.site_id = k.column1 and a.local_account = k.column2",
            tuples(chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for (site, account) in chunk {
            q = q.bind(*site).bind(*account);
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db)? {
            let (Ok(site), Ok(acct), Ok(learner)) = (
                row.try_get::<String, _>("site_id"),
                row.try_get::<String, _>("local_account"),
                row.try_get::<String, _>("learner_id"),
            ) else {
                continue;
            };
            // A row the service could not have written is skipped, so its
            // events are rejected as naming an unknown learner.
            if let (Ok(site), Ok(acct), Ok(learner)) = (
                SiteId::parse(site),
                LocalAccount::parse(acct),
                LearnerId::parse(learner),
            ) {
                ids.insert(learner.as_str().to_owned());
                lookups.accounts.insert((site, acct), learner);
            }
        }
    }
    let ids: Vec<String> = ids.into_iter().collect();
    for chunk in ids.chunks(PARAMS_PER_STATEMENT_MAX) {
        let sql = format!(
            "select id, chain_id from learners where id in ({})",
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for id in chunk {
            q = q.bind(id.as_str());
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db)? {
            let (Ok(id), Ok(chain)) = (row.try_get::<String, _>("id"), row.try_get::<i64, _>("chain_id")) else {
                continue;
            };
            if let (Ok(id), Ok(chain)) = (LearnerId::parse(id), u32::try_from(chain)) {
                lookups.learner_chains.insert(id, chain);
            }
        }
    }
    Ok(())
}

/// Adds the terms of these courses (sorted, without repeats) and their
/// categories' caps to `lookups`.
pub(crate) async fn lookup_course_keys(
    conn: &mut SqliteConnection,
    wanted: &[(&str, &str)],
    lookups: &mut Lookups,
) -> Result<()> {
    for chunk in wanted.chunks(PARAMS_PER_STATEMENT_MAX / 2) {
        // The course's group and its category's annual cap come with it:
        // no extra round trip for batches that use neither.
        let sql = format!(
            concat!(
                "select ",
                course_columns!(),
                ", cc.annual_cap_cents
                   from (values {}) as k
                   join courses c on c.site_id = k.column1 and c.code = k.column2
                   left join recognition_members m on m.site_id = c.site_id and m.course_code = c.code
                   left join category_caps cc on cc.category = c.category"
            ),
            tuples(chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for (site, code) in chunk {
            q = q.bind(*site).bind(*code);
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db)? {
            // A course row the service could not have written is skipped
            // here, so its events are rejected as naming an unknown course.
            if let Ok(course) = CourseRecord::read(&row).and_then(Course::try_from) {
                if let Ok(Some(cap)) = row.try_get::<Option<i64>, _>("annual_cap_cents") {
                    lookups.caps.insert(course.category.clone(), Credits::from_cents(cap));
                }
                lookups
                    .courses
                    .insert((course.site.clone(), course.code.clone()), course.terms());
            }
        }
    }
    Ok(())
}

pub(crate) async fn entries_by_keys(conn: &mut SqliteConnection, keys: &[Key]) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for chunk in keys.chunks(PARAMS_PER_STATEMENT_MAX / 2) {
        // The VALUES columns are named column1 and column2, so the entry's
        // own column names stay unambiguous in the join.
        let sql = format!(
            concat!(
                "select ",
                entry_columns!(),
                " from (values {}) as k
                  join ledger_entries l on l.site_id = k.column1 and l.event_id = k.column2"
            ),
            tuples(chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for (site, event) in chunk {
            q = q.bind(site.as_str()).bind(event.as_str());
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db)? {
            entries.push(entry_from_row(&row)?);
        }
    }
    Ok(entries)
}

/// Which of the revocation targets `targets` already have a reversal.
pub(crate) async fn reversed_targets(conn: &mut SqliteConnection, targets: &[Key]) -> Result<HashSet<Key>> {
    let mut reversed = HashSet::new();
    for chunk in targets.chunks(PARAMS_PER_STATEMENT_MAX / 2) {
        // `target_event is not null` lets SQLite use the partial unique index.
        let sql = format!(
            "select l.site_id, l.target_event
               from (values {}) as k
               join ledger_entries l on l.site_id = k.column1 and l.target_event = k.column2
              where l.target_event is not null",
            tuples(chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for (site, target) in chunk {
            q = q.bind(site.as_str()).bind(target.as_str());
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db)? {
            let (Ok(site), Ok(event)) = (
                row.try_get::<String, _>("site_id"),
                row.try_get::<String, _>("target_event"),
            ) else {
                continue;
            };
            if let (Ok(site), Ok(event)) = (SiteId::parse(site), EventId::parse(event)) {
                reversed.insert((site, event));
            }
        }
    }
    Ok(reversed)
}

/// Every entry of each (learner, group) pair, in sequence order.
pub(crate) async fn group_entries(
    conn: &mut SqliteConnection,
    keys: &BTreeSet<(LearnerId, GroupId)>,
) -> Result<HashMap<(LearnerId, GroupId), Vec<Entry>>> {
    let mut out: HashMap<(LearnerId, GroupId), Vec<Entry>> = keys.iter().map(|k| (k.clone(), Vec::new())).collect();
    let keys: Vec<&(LearnerId, GroupId)> = keys.iter().collect();
    for chunk in keys.chunks(PARAMS_PER_STATEMENT_MAX / 2) {
        let sql = format!(
            concat!(
                "select ",
                entry_columns!(),
                ", k.column2 as k_group from (values {}) as k
                  join ledger_entries l on l.learner_id = k.column1
                   and (l.recognition_group = k.column2
                        or exists (select 1 from recognition_members m
                                    where m.group_id = k.column2 and m.site_id = l.site_id
                                      and m.course_code = l.course_code))
                 order by l.chain_id, l.seq"
            ),
            tuples(chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for (learner, group) in chunk {
            q = q.bind(learner.as_str()).bind(group.as_str());
        }
        // A row can match two keys of one learner (tagged with one group,
        // its course now in another): the key columns say which.
        let sql_rows = q.fetch_all(&mut *conn).await.map_err(db)?;
        for row in sql_rows {
            let e = entry_from_row(&row)?;
            let group: String = row.try_get("k_group").map_err(|e| unreadable("ledger_entries", e))?;
            if let Ok(g) = GroupId::parse(group) {
                out.entry((e.body.learner.clone(), g)).or_default().push(e);
            }
        }
    }
    Ok(out)
}

/// The entries of each (learner, site, course) that its key's probe picks
/// ([`plan::probe_course_history`]), in sequence order, once each.
// The PostgreSQL store's statement in SQLite's terms: each
// branch gives row ids, each probe a correlated `limit 1` (an equality or
// a range on the index's last column, migration 0012; the reversal by the
// one-reversal index on (site_id, target_event)), and only a revocation's
// target reads the whole history.
pub(crate) async fn course_entries(
    conn: &mut SqliteConnection,
    keys: &BTreeSet<plan::CourseKey>,
) -> Result<HashMap<(LearnerId, SiteId, CourseCode), Vec<Entry>>> {
    let mut out: HashMap<(LearnerId, SiteId, CourseCode), Vec<Entry>> = keys
        .iter()
        .map(|(l, s, c, _)| ((l.clone(), s.clone(), c.clone()), Vec::new()))
        .collect();
    let keys: Vec<&plan::CourseKey> = keys.iter().collect();
    for chunk in keys.chunks(PARAMS_PER_STATEMENT_MAX / 6) {
        let sql = format!(
            concat!(
                "with k(k_learner, k_site, k_course, k_at, k_from, k_to) as (values {}),
                 same(id) as (
                   select (select e.rowid from ledger_entries e
                            where e.learner_id = k.k_learner and e.site_id = k.k_site
                              and e.course_code = k.k_course and e.occurred_at_ms = k.k_at
                              and e.kind in (1, 2, 4, 5)
                            order by e.chain_id, e.seq
                            limit 1)
                     from k where k.k_at is not null
                 ),
                 picked(id) as (
                   select e.rowid from k join ledger_entries e
                       on e.learner_id = k.k_learner and e.site_id = k.k_site and e.course_code = k.k_course
                    where k.k_at is null
                   union all
                   select id from same
                   union all
                   select r.rowid from same s
                     join ledger_entries d on d.rowid = s.id
                     join ledger_entries r
                       on r.site_id = d.site_id and r.target_event = d.event_id and r.kind = 3
                      and r.refers_chain = d.chain_id and r.refers_seq = d.seq
                      and r.learner_id = d.learner_id and r.course_code = d.course_code
                    where d.kind in (1, 5)
                   union all
                   select (select e.rowid from ledger_entries e
                            where e.learner_id = k.k_learner and e.site_id = k.k_site
                              and e.course_code = k.k_course
                              and e.occurred_at_ms >= k.k_from and e.occurred_at_ms <= k.k_to
                              and e.kind in (1, 5, 6)
                              and not exists (
                                select 1 from ledger_entries r
                                 where r.site_id = e.site_id and r.target_event = e.event_id and r.kind = 3
                                   and r.refers_chain = e.chain_id and r.refers_seq = e.seq
                                   and r.learner_id = e.learner_id and r.course_code = e.course_code)
                            order by e.chain_id desc, e.seq desc
                            limit 1)
                     from k where k.k_from is not null
                 )
                 select ",
                entry_columns!(),
                " from ledger_entries l where l.rowid in (select id from picked)"
            ),
            tuples(chunk.len(), 6)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for (learner, site, course, probe) in chunk {
            let (at, paid) = match probe {
                plan::CourseProbe::Whole => (None, None),
                plan::CourseProbe::At { at, paid } => (Some(at.0), *paid),
            };
            q = q
                .bind(learner.as_str())
                .bind(site.as_str())
                .bind(course.as_str())
                .bind(at)
                .bind(paid.map(|(from, _)| from.0))
                .bind(paid.map(|(_, to)| to.0));
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db)? {
            let e = entry_from_row(&row)?;
            let key = (e.body.learner.clone(), e.body.site.clone(), e.body.course.clone());
            out.entry(key).or_default().push(e);
        }
    }
    for history in out.values_mut() {
        history.sort_by_key(|e| e.position);
        history.dedup_by_key(|e| e.position);
    }
    Ok(out)
}

/// The sum of signed credits of each (learner, category, CST year).
pub(crate) async fn year_totals(
    conn: &mut SqliteConnection,
    keys: &BTreeSet<(LearnerId, Category, i32)>,
) -> Result<HashMap<(LearnerId, Category, i32), Credits>> {
    let mut out = HashMap::new();
    let keys: Vec<&(LearnerId, Category, i32)> = keys.iter().collect();
    for chunk in keys.chunks(PARAMS_PER_STATEMENT_MAX / 5) {
        let sql = format!(
            "select k.column1 as learner_id, k.column2 as category, k.column3 as year,
                    coalesce(sum(l.credits_cents), 0) as credits
               from (values {}) as k
               join ledger_entries l on l.learner_id = k.column1 and l.category = k.column2
                and l.occurred_at_ms >= k.column4 and l.occurred_at_ms < k.column5
              group by k.column1, k.column2, k.column3",
            tuples(chunk.len(), 5)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for (learner, category, year) in chunk {
            let (start, end) = Millis::cst_year_bounds(*year);
            q = q
                .bind(learner.as_str())
                .bind(category.as_str())
                .bind(i64::from(*year))
                .bind(start.0)
                .bind(end.0);
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db)? {
            let read = |e| unreadable("ledger_entries", e);
            let learner: String = row.try_get("learner_id").map_err(read)?;
            let category: String = row.try_get("category").map_err(read)?;
            let year: i64 = row.try_get("year").map_err(read)?;
            let sum: i64 = row.try_get("credits").map_err(read)?;
            if let (Ok(l), Ok(c), Ok(y)) = (
                LearnerId::parse(learner),
                Category::parse(category),
                i32::try_from(year),
            ) {
                out.insert((l, c, y), Credits::from_cents(sum));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use xuefen_core::entry::EntryKind;

    /// The kind codes `course_entries` names in SQL.
    #[test]
    fn the_course_probe_kind_codes_are_the_cores() {
        let codes = |f: fn(EntryKind) -> bool| -> Vec<u8> {
            EntryKind::ALL
                .iter()
                .copied()
                .filter(|k| f(*k))
                .map(EntryKind::code)
                .collect()
        };
        assert_eq!(codes(EntryKind::is_completion), [1, 2, 4, 5]);
        assert_eq!(codes(EntryKind::pays), [1, 5, 6]);
        assert_eq!(EntryKind::Reversal.code(), 3);
    }
}
