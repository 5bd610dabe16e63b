//! The reads an ingest batch plans with, each one query for the whole batch.

use std::collections::{BTreeSet, HashMap, HashSet};

use sqlx::{Postgres, Row, Transaction};
use xuefen_core::amount::Credits;
use xuefen_core::entry::Entry;
use xuefen_core::event::Millis;
use xuefen_core::ids::{Category, CourseCode, EventId, GroupId, LearnerId, SiteId};
use xuefen_core::plan::{self, Key, Lookups};
use xuefen_store::Course;

use xuefen_store::records::{CourseRecord, EntryRecord};

/// Adds the terms of these courses (sorted, without repeats) and their
/// categories' caps to `lookups`.
pub(crate) async fn lookup_course_keys(
    tx: &mut Transaction<'_, Postgres>,
    wanted: &[(&str, &str)],
    lookups: &mut Lookups,
) -> std::result::Result<(), sqlx::Error> {
    if wanted.is_empty() {
        return Ok(());
    }
    let (sites, codes): (Vec<&str>, Vec<&str>) = wanted.iter().copied().unzip();
    // The course's group and its category's annual cap come with it: no
    // extra round trip for batches that use neither.
    let rows = sqlx::query(concat!(
        "select ",
        course_columns!(),
        ", cc.annual_cap_cents
           from courses c
           join unnest($1::text[], $2::text[]) as k(site_id, code)
             on c.site_id = k.site_id and c.code = k.code
           left join recognition_members m on m.site_id = c.site_id and m.course_code = c.code
           left join category_caps cc on cc.category = c.category"
    ))
    .bind(&sites)
    .bind(&codes)
    .fetch_all(&mut **tx)
    .await?;
    for row in rows {
        // A course row the service could not have written is skipped here,
        // so its events are rejected as naming an unknown course.
        if let Ok(course) = CourseRecord::read(&row).and_then(Course::try_from) {
            if let Some(cap) = row.try_get::<Option<i64>, _>("annual_cap_cents")? {
                lookups.caps.insert(course.category.clone(), Credits::from_cents(cap));
            }
            lookups
                .courses
                .insert((course.site.clone(), course.code.clone()), course.terms());
        }
    }
    Ok(())
}

/// The chains holding the entries of these revocation targets.
pub(crate) async fn target_chains(
    tx: &mut Transaction<'_, Postgres>,
    targets: &[Key],
) -> std::result::Result<Vec<u32>, sqlx::Error> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let (sites, targets): (Vec<&str>, Vec<&str>) = targets.iter().map(|(s, e)| (s.as_str(), e.as_str())).unzip();
    let chains: Vec<i32> = sqlx::query_scalar(
        "select distinct l.chain_id
           from unnest($1::text[], $2::text[]) as k(k_site, k_event)
           cross join lateral (select chain_id from ledger_entries e
                                where e.site_id = k.k_site and e.event_id = k.k_event) l",
    )
    .bind(&sites)
    .bind(&targets)
    .fetch_all(&mut **tx)
    .await?;
    Ok(chains.into_iter().filter_map(|c| u32::try_from(c).ok()).collect())
}

pub(crate) async fn entries_by_keys(
    tx: &mut Transaction<'_, Postgres>,
    keys: &[Key],
) -> std::result::Result<Vec<Entry>, sqlx::Error> {
    let (sites, ids): (Vec<&str>, Vec<&str>) = keys.iter().map(|(s, e)| (s.as_str(), e.as_str())).unzip();
    let rows = sqlx::query(concat!(
        "select ",
        entry_columns!(),
        " from unnest($1::text[], $2::text[]) as k(k_site, k_event)
           cross join lateral (select * from ledger_entries e
                                where e.site_id = k.k_site and e.event_id = k.k_event) l"
    ))
    .bind(&sites)
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| {
            EntryRecord::read(r)
                .and_then(Entry::try_from)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))
        })
        .collect()
}

/// Which of these revocation targets already have a reversal.
pub(crate) async fn reversed_targets(
    tx: &mut Transaction<'_, Postgres>,
    targets: &[Key],
) -> std::result::Result<HashSet<Key>, sqlx::Error> {
    if targets.is_empty() {
        return Ok(HashSet::new());
    }
    let (sites, targets): (Vec<&str>, Vec<&str>) = targets.iter().map(|(s, e)| (s.as_str(), e.as_str())).unzip();
    let rows = sqlx::query(
        "select l.site_id, l.target_event
           from unnest($1::text[], $2::text[]) as k(k_site, k_event)
           cross join lateral (select site_id, target_event from ledger_entries e
                                where e.site_id = k.k_site and e.target_event = k.k_event) l",
    )
    .bind(&sites)
    .bind(&targets)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .filter_map(|r| {
            let site = r.try_get::<String, _>("site_id").map(SiteId::parse);
            let event = r.try_get::<String, _>("target_event").map(EventId::parse);
            match (site, event) {
                (Ok(Ok(site)), Ok(Ok(event))) => Some(Ok((site, event))),
                (Err(e), _) | (_, Err(e)) => Some(Err(e)),
                // Ids the service could not have written name no event.
                _ => None,
            }
        })
        .collect()
}

/// Every entry of each (learner, group) pair, in sequence order.
pub(crate) async fn group_entries(
    tx: &mut Transaction<'_, Postgres>,
    keys: &BTreeSet<(LearnerId, GroupId)>,
) -> std::result::Result<HashMap<(LearnerId, GroupId), Vec<Entry>>, sqlx::Error> {
    let mut out: HashMap<(LearnerId, GroupId), Vec<Entry>> = keys.iter().map(|k| (k.clone(), Vec::new())).collect();
    if keys.is_empty() {
        return Ok(out);
    }
    let (learners, groups): (Vec<&str>, Vec<&str>) = keys.iter().map(|(l, g)| (l.as_str(), g.as_str())).unzip();
    // An entry counts in a group when written with it, or when its course
    // is a member now (written before the group was declared).
    let rows = sqlx::query(concat!(
        "select ",
        entry_columns!(),
        ", k.k_group from ledger_entries l
           join unnest($1::text[], $2::text[]) as k(k_learner, k_group)
             on l.learner_id = k.k_learner
            and (l.recognition_group = k.k_group
                 or exists (select 1 from recognition_members m
                             where m.group_id = k.k_group and m.site_id = l.site_id
                               and m.course_code = l.course_code))
          order by l.chain_id, l.seq"
    ))
    .bind(&learners)
    .bind(&groups)
    .fetch_all(&mut **tx)
    .await?;
    for row in &rows {
        let e = EntryRecord::read(row)
            .and_then(Entry::try_from)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let group: String = row.try_get("k_group")?;
        if let Ok(g) = GroupId::parse(group) {
            out.entry((e.body.learner.clone(), g)).or_default().push(e);
        }
    }
    Ok(out)
}

/// The entries of each (learner, site, course) that its key's probe picks
/// ([`plan::probe_course_history`]), in sequence order, once each.
// One statement per batch, each branch a bounded probe per key:
// - the whole history only for a revocation's target (a lateral kept apart
//   from the join by `offset 0`, so the planner does not hash the ledger);
// - the first completion at the key's instant, and its reversal when it
//   paid;
// - the last paying entry of the period that no reversal refers to.
// The index ends with (kind, instant) (migration 0016). The probe of the
// period joins the list of paying kinds, so that each is an equality of the
// index and the period a range after it: a learner's non-paying repeats of
// the course are never visited. (With `kind in (...)` the planner tests the
// kind on each row of the range, fetching it, so the read grew with the
// learner's repeats.) The probe of the instant tests the instant on the
// index entries of the key, without fetching rows. Reversals are found by
// the same index, with kind 3.
// So a completion of a course credited once costs at most three rows, not
// the learner's whole history of the course.
pub(crate) async fn course_entries(
    tx: &mut Transaction<'_, Postgres>,
    keys: &BTreeSet<plan::CourseKey>,
) -> std::result::Result<HashMap<(LearnerId, SiteId, CourseCode), Vec<Entry>>, sqlx::Error> {
    let mut out: HashMap<(LearnerId, SiteId, CourseCode), Vec<Entry>> = keys
        .iter()
        .map(|(l, s, c, _)| ((l.clone(), s.clone(), c.clone()), Vec::new()))
        .collect();
    if keys.is_empty() {
        return Ok(out);
    }
    let mut learners = Vec::with_capacity(keys.len());
    let mut sites = Vec::with_capacity(keys.len());
    let mut courses = Vec::with_capacity(keys.len());
    let mut ats: Vec<Option<i64>> = Vec::with_capacity(keys.len());
    let mut froms: Vec<Option<i64>> = Vec::with_capacity(keys.len());
    let mut tos: Vec<Option<i64>> = Vec::with_capacity(keys.len());
    for (l, s, c, probe) in keys {
        learners.push(l.as_str());
        sites.push(s.as_str());
        courses.push(c.as_str());
        let (at, paid) = match probe {
            plan::CourseProbe::Whole => (None, None),
            plan::CourseProbe::At { at, paid } => (Some(at.0), *paid),
        };
        ats.push(at);
        froms.push(paid.map(|(from, _)| from.0));
        tos.push(paid.map(|(_, to)| to.0));
    }
    let rows = sqlx::query(concat!(
        "with k as (
           select * from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
                      as k(k_learner, k_site, k_course, k_at, k_from, k_to)
         ), same as (
           select e.* from k cross join lateral (
             select * from ledger_entries e
              where e.learner_id = k.k_learner and e.site_id = k.k_site and e.course_code = k.k_course
                and e.occurred_at_ms = k.k_at and e.kind in (1, 2, 4, 5)
              order by e.chain_id, e.seq
              limit 1) e
            where k.k_at is not null
         ), picked as (
           select e.* from k cross join lateral (
             select * from ledger_entries e
              where e.learner_id = k.k_learner and e.site_id = k.k_site and e.course_code = k.k_course
              offset 0) e
            where k.k_at is null
           union all
           select * from same
           union all
           select r.* from same d join ledger_entries r
               on r.site_id = d.site_id and r.target_event = d.event_id and r.kind = 3
              and r.refers_chain = d.chain_id and r.refers_seq = d.seq
              and r.learner_id = d.learner_id and r.course_code = d.course_code
            where d.kind in (1, 5)
           union all
           select e.* from k cross join lateral (
             select e.* from (values (1::smallint), (5), (6)) as p(kind) cross join lateral (
               select * from ledger_entries e
                where e.learner_id = k.k_learner and e.site_id = k.k_site and e.course_code = k.k_course
                  and e.kind = p.kind and e.occurred_at_ms >= k.k_from and e.occurred_at_ms <= k.k_to
                  and not exists (
                    select 1 from ledger_entries r
                     where r.site_id = e.site_id and r.target_event = e.event_id and r.kind = 3
                       and r.refers_chain = e.chain_id and r.refers_seq = e.seq
                       and r.learner_id = e.learner_id and r.course_code = e.course_code)
                order by e.chain_id desc, e.seq desc
                limit 1) e
              order by e.chain_id desc, e.seq desc
              limit 1) e
            where k.k_from is not null
         )
         select ",
        entry_columns!(),
        " from picked l"
    ))
    .bind(&learners)
    .bind(&sites)
    .bind(&courses)
    .bind(&ats)
    .bind(&froms)
    .bind(&tos)
    .fetch_all(&mut **tx)
    .await?;
    for row in &rows {
        let e = EntryRecord::read(row)
            .and_then(Entry::try_from)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let key = (e.body.learner.clone(), e.body.site.clone(), e.body.course.clone());
        out.entry(key).or_default().push(e);
    }
    for history in out.values_mut() {
        history.sort_by_key(|e| e.position);
        history.dedup_by_key(|e| e.position);
    }
    Ok(out)
}

/// The sum of signed credits of each (learner, category, CST year).
pub(crate) async fn year_totals(
    tx: &mut Transaction<'_, Postgres>,
    keys: &BTreeSet<(LearnerId, Category, i32)>,
) -> std::result::Result<HashMap<(LearnerId, Category, i32), Credits>, sqlx::Error> {
    let mut out = HashMap::new();
    if keys.is_empty() {
        return Ok(out);
    }
    let mut learners = Vec::with_capacity(keys.len());
    let mut categories = Vec::with_capacity(keys.len());
    let mut years = Vec::with_capacity(keys.len());
    let mut starts = Vec::with_capacity(keys.len());
    let mut ends = Vec::with_capacity(keys.len());
    for (learner, category, year) in keys {
        let (start, end) = Millis::cst_year_bounds(*year);
        learners.push(learner.as_str());
        categories.push(category.as_str());
        years.push(*year);
        starts.push(start.0);
        ends.push(end.0);
    }
    let rows = sqlx::query(
        "select k.k_learner, k.k_category, k.k_year, sum(l.credits_cents)::bigint as credits
           from unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::bigint[])
                as k(k_learner, k_category, k_year, k_start, k_end)
           join ledger_entries l on l.learner_id = k.k_learner and l.category = k.k_category
            and l.occurred_at_ms >= k.k_start and l.occurred_at_ms < k.k_end
          group by k.k_learner, k.k_category, k.k_year",
    )
    .bind(&learners)
    .bind(&categories)
    .bind(&years)
    .bind(&starts)
    .bind(&ends)
    .fetch_all(&mut **tx)
    .await?;
    for row in rows {
        let (learner, category, year, sum): (String, String, i32, Option<i64>) = (
            row.try_get("k_learner")?,
            row.try_get("k_category")?,
            row.try_get("k_year")?,
            row.try_get("credits")?,
        );
        if let (Ok(l), Ok(c)) = (LearnerId::parse(learner), Category::parse(category)) {
            out.insert((l, c, year), Credits::from_cents(sum.unwrap_or(0)));
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
