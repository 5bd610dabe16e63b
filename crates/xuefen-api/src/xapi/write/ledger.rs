//! The ledger side of a statements request: the completions and
//! revocations its statements mean, checked against the ledger before
//! anything is written, then submitted to the group committer.

use crate::AppState;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::problem_code::ProblemCode;
use axum::http::StatusCode;
use sha1::Digest as _;
use std::collections::{HashMap, HashSet};
use xuefen_core::amount::Score;
use xuefen_core::entry::Entry;
use xuefen_core::event::{Completion, Event, EventBody, LearnerRef, Reason, Revocation};
use xuefen_core::ids::{CourseCode, EventId, LocalAccount, SiteId};
use xuefen_core::limits::SCORE_MAX_CENTS;
use xuefen_core::plan::Outcome;
use xuefen_core::xapi::{Ifi, Prepared, StatementError};

/// The ledger entries, by event id, already under the request's statement
/// ids and under the targets of its voiding statements (one read): what
/// voiding reverses, and what the request must not contradict.
pub(super) async fn ledger_entries(
    state: &AppState,
    site: &SiteId,
    prepared: &[Prepared],
) -> ApiResult<HashMap<EventId, Entry>> {
    let ids: Vec<EventId> = prepared
        .iter()
        .flat_map(|p| std::iter::once(&p.id).chain(p.voids.as_ref()))
        .filter_map(|id| EventId::parse(id.clone()).ok())
        .collect();
    let entries = state.xapi_store().entries_by_events(site, &ids).await?;
    Ok(entries
        .into_iter()
        .filter(|e| e.body.kind.owns_key())
        .map(|e| (e.body.event_id.clone(), e))
        .collect())
}

/// What the ledger events of a request are looked up in: the site's
/// courses by activity IRI, and its local accounts by `mbox_sha1sum`.
#[derive(Default)]
pub(super) struct Lookups {
    courses: HashMap<String, CourseCode>,
    accounts: HashMap<String, LocalAccount>,
}

/// Reads the courses the request's creditable statements name, then the
/// local accounts of their actors on those courses (two reads at most).
pub(super) async fn lookups(state: &AppState, site: &SiteId, prepared: &[Prepared]) -> ApiResult<Lookups> {
    let creditable: Vec<&Prepared> = prepared.iter().filter(|p| p.is_creditable_verb()).collect();
    let mut activities: Vec<String> = creditable.iter().filter_map(|p| p.activity.clone()).collect();
    activities.sort();
    activities.dedup();
    if activities.is_empty() {
        return Ok(Lookups::default());
    }
    let courses: HashMap<String, CourseCode> = state
        .store
        .activity_courses(site, &activities)
        .await?
        .into_iter()
        .collect();
    let mut sums: Vec<String> = creditable
        .iter()
        .filter(|p| p.activity.as_ref().is_some_and(|a| courses.contains_key(a)))
        .filter_map(|p| mbox_sha1sum(p.actor.as_ref()?))
        .collect();
    sums.sort();
    sums.dedup();
    let accounts: HashMap<String, LocalAccount> = if sums.is_empty() {
        HashMap::new()
    } else {
        state
            .xapi_store()
            .mbox_accounts(site, &sums)
            .await?
            .into_iter()
            .collect()
    };
    Ok(Lookups { courses, accounts })
}

/// The ledger events of the request: completions of linked learners on
/// courses with an activity IRI, and revocations of credited statements
/// that a statement voids.
pub(super) fn ledger_events(
    site: &SiteId,
    home: &str,
    prepared: &[Prepared],
    ledger: &HashMap<EventId, Entry>,
    lookups: &Lookups,
) -> Vec<(usize, Event)> {
    let Lookups { courses, accounts } = lookups;
    let mut events = Vec::new();
    let mut credited: HashSet<&str> = HashSet::new();
    for (i, p) in prepared.iter().enumerate() {
        if let Some(event) = completion(site, home, p, courses, accounts) {
            credited.insert(p.id.as_str());
            events.push((i, event));
        }
    }
    for (i, p) in prepared.iter().enumerate() {
        let Some(target) = &p.voids else { continue };
        let Ok(target_id) = EventId::parse(target.clone()) else {
            continue;
        };
        if !credited.contains(target.as_str()) && !ledger.contains_key(&target_id) {
            continue;
        }
        let Ok(id) = EventId::parse(p.id.clone()) else { continue };
        let Ok(reason) = Reason::parse(format!("voided by xAPI statement {}", p.id), "reason") else {
            continue;
        };
        events.push((
            i,
            Event {
                site: site.clone(),
                id,
                body: EventBody::Revocation(Revocation {
                    target: target_id,
                    code: Reason::code("xapi_voided", "reason_code").unwrap_or_default(),
                    reason,
                }),
            },
        ));
    }
    events
}

/// The `mbox_sha1sum` of an actor named by `mbox_sha1sum` or by `mbox`.
pub(super) fn mbox_sha1sum(actor: &Ifi) -> Option<String> {
    match actor {
        Ifi::MboxSha1(sum) => Some(sum.clone()),
        Ifi::Mbox(mbox) => Some(hex::encode(sha1::Sha1::digest(mbox.as_bytes()))),
        Ifi::OpenId(_) | Ifi::Account { .. } => None,
    }
}

/// The completion a statement is worth, if any: a creditable verb, an
/// actor that is one of the site's local accounts, an object that is one of
/// its courses. Credits then come from the course's rule alone.
pub(super) fn completion(
    site: &SiteId,
    home: &str,
    p: &Prepared,
    courses: &HashMap<String, CourseCode>,
    accounts: &HashMap<String, LocalAccount>,
) -> Option<Event> {
    if !p.is_creditable_verb() {
        return None;
    }
    let course = courses.get(p.activity.as_ref()?)?.clone();
    let account = match p.actor.as_ref()? {
        Ifi::Account { home_page, name } if home_page.trim_end_matches('/') == home.trim_end_matches('/') => {
            LocalAccount::parse(name.clone()).ok()?
        }
        ifi => accounts.get(&mbox_sha1sum(ifi)?)?.clone(),
    };
    Some(Event {
        site: site.clone(),
        id: EventId::parse(p.id.clone()).ok()?,
        body: EventBody::Completion(Completion {
            course,
            learner: LearnerRef::Account(account),
            completed_at: p.timestamp,
            score: p
                .score_percent
                .and_then(|s| Score::parse(s, 0, SCORE_MAX_CENTS, "result/score").ok()),
            hours: None,
        }),
    })
}

/// Writes the ledger events as one submission. A statement whose event
/// the ledger rejects (an unlinked account, a date before the course was
/// offered, no score for a course with a pass mark) is still stored and
/// earns nothing; one whose id the ledger holds with other content (the
/// site used the id for a native event) fails the request with a 409.
pub(super) async fn submit(
    state: &AppState,
    prepared: &[Prepared],
    events: Vec<(usize, Event)>,
    at: &(dyn Fn(usize, StatementError) -> StatementError + Sync),
) -> ApiResult<()> {
    let (slots, events): (Vec<usize>, Vec<Event>) = events.into_iter().unzip();
    let outcomes = state
        .committer
        .submit(events)
        .await
        .map_err(crate::commit::commit_error)?;
    for (slot, outcome) in slots.into_iter().zip(outcomes) {
        match outcome {
            Outcome::Accepted { .. } | Outcome::Duplicate { .. } => {}
            Outcome::Rejected(r) => {
                tracing::debug!(statement.id = %prepared[slot].id, reason = ?r, "statement earns nothing");
            }
            Outcome::Conflict { field, .. } => return Err(ledger_conflict(prepared, slot, field, at)),
        }
    }
    Ok(())
}

/// Refuses the request before anything is written when one of its events
/// is already in the ledger with other content (the site used the id for a
/// native event), so that the POST fails whole. The learner is compared by
/// the committer, which answers the same 409; only a concurrent native
/// event under the same id, or one differing in its learner alone, is
/// left to it, and then completions of the request that the ledger
/// accepted stay (their statements are stored by a corrected re-send).
/// A reversal's note is sealed under its learner's key, which only the
/// committer reads: the note is compared there too.
pub(super) fn check_ledger(
    prepared: &[Prepared],
    events: &[(usize, Event)],
    ledger: &HashMap<EventId, Entry>,
    at: &(dyn Fn(usize, StatementError) -> StatementError + Sync),
) -> ApiResult<()> {
    for (slot, event) in events {
        if let Some(entry) = ledger.get(&event.id)
            && let Some(field) = xuefen_core::plan::first_difference(
                event,
                &entry.body,
                |_| true,
                |_| match &event.body {
                    EventBody::Revocation(r) => Some(r.reason.as_str().to_owned()),
                    EventBody::Completion(_) => None,
                },
            )
        {
            return Err(ledger_conflict(prepared, *slot, field, at));
        }
    }
    Ok(())
}

pub(super) fn ledger_conflict(
    prepared: &[Prepared],
    slot: usize,
    field: &str,
    at: &(dyn Fn(usize, StatementError) -> StatementError + Sync),
) -> ApiError {
    let e = at(
        slot,
        StatementError::new(
            "statement_conflicts_with_ledger_event",
            "id",
            format!(
                "the ledger holds another event of this site under the id {} (it differs in `{field}`)",
                prepared[slot].id
            ),
        ),
    );
    Problem::new(StatusCode::CONFLICT, ProblemCode::StatementRule(e.rule), e.detail)
        .with_field(e.field)
        .into()
}
#[cfg(test)]
mod tests {
    use super::*;
    use xuefen_core::xapi::Ifi;

    #[test]
    fn an_mbox_is_matched_by_its_sha1() {
        let sum = mbox_sha1sum(&Ifi::Mbox("mailto:xapi@adlnet.gov".into()));
        assert_eq!(sum.as_deref(), Some("cd9b00a5611f94eaa7b1661edab976068e364975"));
        assert_eq!(
            mbox_sha1sum(&Ifi::MboxSha1("ab".repeat(20))).as_deref(),
            Some("abababababababababababababababababababab")
        );
        assert_eq!(mbox_sha1sum(&Ifi::OpenId("https://id.example/u".into())), None);
    }
}
