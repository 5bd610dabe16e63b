//! Which id a caller knows a learner by ([`xuefen_core::pseudonym`]).
//!
//! The admin (and the learner, through their own token) sees the unified
//! id `lrn_…`. A site and the credit bank each see a pairwise pseudonym
//! `psn_…`: every answer that names a learner to them goes through
//! [`Shown`], which computes the pseudonym and records it with the store,
//! and every request that names a learner goes through [`resolve`], which
//! finds the learner only under the caller's own audience. Another site's
//! pseudonym, an unknown one and the id of an erased learner are all the
//! same 404.
//!
//! Migration: a site that kept unified ids from before pseudonyms may still
//! send one, for a learner it has linked or credited, and is answered with
//! its pseudonym from then on. The credit bank never could, and never may.

use crate::problem_code::ProblemCode;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use axum::http::StatusCode;
use xuefen_core::ids::LearnerId;
use xuefen_core::pseudonym::{Audience, Pseudonym, PseudonymKey};
use xuefen_store::Principal;
use xuefen_store::pseudonyms::PseudonymRow;

use crate::AppState;
use crate::problem::{ApiError, ApiResult, Problem};

/// Most pseudonyms [`Remembered`] holds before it starts afresh.
const REMEMBERED_MAX: usize = 65_536;

/// The pseudonyms this instance has recorded with the store, so that an
/// answer naming only learners already recorded for its caller writes
/// nothing (without it every site's transcript read is a write
/// transaction). Bounded: when full it forgets everything and starts
/// afresh, which costs one write per pseudonym again. A row it remembers
/// can since have been deleted only with its learner (an erasure), whom no
/// answer names any more; a database restored from a backup is served by a
/// restarted service, whose memory starts empty.
pub struct Remembered {
    seen: Mutex<HashSet<(Audience, Pseudonym)>>,
    max: usize,
}

impl Default for Remembered {
    fn default() -> Self {
        Self::with_capacity(REMEMBERED_MAX)
    }
}

impl Remembered {
    /// At most `max` pseudonyms remembered.
    pub fn with_capacity(max: usize) -> Self {
        Self {
            seen: Mutex::new(HashSet::new()),
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(Audience, Pseudonym)>> {
        // A panic while holding the set leaves it whole (inserts and clears
        // only), so a poisoned lock is still fine to use.
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The rows not yet recorded by this instance.
    fn fresh(&self, rows: Vec<PseudonymRow>) -> Vec<PseudonymRow> {
        let seen = self.lock();
        rows.into_iter()
            .filter(|r| !seen.contains(&(r.audience.clone(), r.pseudonym.clone())))
            .collect()
    }

    /// Notes rows the store has recorded.
    fn recorded(&self, rows: &[PseudonymRow]) {
        let mut seen = self.lock();
        if seen.len() + rows.len() > self.max {
            seen.clear();
        }
        for r in rows.iter().take(self.max) {
            seen.insert((r.audience.clone(), r.pseudonym.clone()));
        }
    }

    /// How many pseudonyms are remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The audience a principal is shown pseudonyms as; `None` for the admin,
/// who sees unified ids.
pub fn audience(principal: &Principal) -> Option<Audience> {
    match principal {
        Principal::Admin => None,
        Principal::Site(site) => Some(Audience::Site(site.clone())),
        Principal::Bank => Some(Audience::Bank),
    }
}

/// The pseudonym key of this service (derived from its identity key).
pub fn key(state: &AppState) -> PseudonymKey {
    PseudonymKey::derive(&state.identity_key)
}

/// The 404 of a learner the caller does not know by that id.
pub fn unknown(field: &str) -> ApiError {
    Problem::new(
        StatusCode::NOT_FOUND,
        ProblemCode::UnknownLearner,
        "no learner is known to you by this id",
    )
    .with_field(field)
    .into()
}

/// The learner `value` names for `principal`, or `None` when the caller
/// knows nobody by it. The admin names learners by unified id, or by the
/// pseudonym any party knows them by; a site and the bank by their own
/// pseudonym (a site also by a unified id it already knows, see the module
/// docs). A value of neither shape is a 422 naming
/// `field`; a well-formed id of a learner the caller does not know is
/// `None`, whoever else might know it.
pub async fn lookup(
    state: &AppState,
    principal: &Principal,
    value: &str,
    field: &'static str,
) -> ApiResult<Option<LearnerId>> {
    let audience = audience(principal);
    if let Ok(id) = LearnerId::parse(value) {
        let known = match principal {
            Principal::Site(site) => {
                state.learner_store().site_knows_learner(site, &id).await?
                    && state.learner_store().learner_exists(&id).await?
            }
            Principal::Admin => return Ok(Some(id)),
            Principal::Bank => false,
        };
        return Ok(known.then_some(id));
    }
    let pseudonym = Pseudonym::parse_as(value, field).map_err(|e| {
        Problem::invalid(&match audience {
            None => xuefen_core::FieldError::new(
                field,
                "must be a unified learner id (`lrn_` and 32 hex digits) or a pseudonym (`psn_` and 32 hex digits)",
            ),
            Some(_) => e,
        })
    })?;
    Ok(state
        .pseudonym_store()
        .learner_by_pseudonym(audience.as_ref(), &pseudonym)
        .await?)
}

/// As [`lookup`], with an unknown learner a 404 naming `field`.
pub async fn resolve(
    state: &AppState,
    principal: &Principal,
    value: &str,
    field: &'static str,
) -> ApiResult<LearnerId> {
    lookup(state, principal, value, field)
        .await?
        .ok_or_else(|| unknown(field))
}

/// The ids one answer shows its caller, computed and recorded once per
/// learner: build it with the learners the answer names, then ask
/// [`Shown::id`] for each.
pub struct Shown {
    ids: HashMap<LearnerId, String>,
}

impl Shown {
    /// Computes the ids `principal` knows `learners` by, and records the
    /// pseudonyms among them so that the caller's next request can name
    /// the learners by them.
    pub async fn new<'a>(
        state: &AppState,
        principal: &Principal,
        learners: impl IntoIterator<Item = &'a LearnerId>,
    ) -> ApiResult<Self> {
        let mut ids = HashMap::new();
        let Some(audience) = audience(principal) else {
            for learner in learners {
                ids.insert(learner.clone(), learner.to_string());
            }
            return Ok(Self { ids });
        };
        let key = key(state);
        let mut rows = Vec::new();
        for learner in learners {
            if ids.contains_key(learner) || *learner == LearnerId::nobody() {
                continue;
            }
            let pseudonym = key.pseudonym(&audience, learner);
            ids.insert(learner.clone(), pseudonym.to_string());
            rows.push(PseudonymRow {
                audience: audience.clone(),
                pseudonym,
                learner: learner.clone(),
            });
        }
        let rows = state.pseudonyms.fresh(rows);
        if !rows.is_empty() {
            state.pseudonym_store().remember_pseudonyms(&rows).await?;
            state.pseudonyms.recorded(&rows);
        }
        // A learner the answer names without a known id (a version-2 entry
        // read without its learner) is shown as nobody's pseudonym: all
        // zeros, which no learner is ever given.
        Ok(Self { ids })
    }

    /// The id to show for `learner`.
    pub fn id(&self, learner: &LearnerId) -> String {
        self.ids
            .get(learner)
            .cloned()
            .unwrap_or_else(|| format!("psn_{}", "0".repeat(32)))
    }

    /// Replaces a unified id in an answer (a string field holding
    /// `lrn_…`) with the id shown; anything else is left as it is.
    pub fn rewrite(&self, field: &mut String) {
        if let Ok(learner) = LearnerId::parse(field.as_str()) {
            *field = self.id(&learner);
        }
    }
}

/// The id `principal` knows one learner by (recording a pseudonym).
pub async fn show(state: &AppState, principal: &Principal, learner: &LearnerId) -> ApiResult<String> {
    Ok(Shown::new(state, principal, [learner]).await?.id(learner))
}

/// Shows the learner of an entry answer as its caller knows them.
pub async fn show_entry(
    state: &AppState,
    principal: &Principal,
    entry: &mut crate::transcript::EntryOut,
) -> ApiResult<()> {
    let Ok(learner) = LearnerId::parse(entry.learner_id.as_str()) else {
        return Ok(());
    };
    let shown = Shown::new(state, principal, [&learner]).await?;
    shown.rewrite(&mut entry.learner_id);
    Ok(())
}

/// Shows a transcript's learner, and that of every line, as the caller
/// knows them.
pub async fn show_transcript(
    state: &AppState,
    principal: &Principal,
    transcript: &mut crate::transcript::TranscriptOut,
) -> ApiResult<()> {
    let mut learners: Vec<LearnerId> = Vec::new();
    for id in std::iter::once(&transcript.learner_id).chain(transcript.entries.iter().map(|e| &e.learner_id)) {
        if let Ok(l) = LearnerId::parse(id.as_str())
            && !learners.contains(&l)
        {
            learners.push(l);
        }
    }
    let shown = Shown::new(state, principal, &learners).await?;
    shown.rewrite(&mut transcript.learner_id);
    for line in &mut transcript.entries {
        shown.rewrite(&mut line.learner_id);
    }
    Ok(())
}

/// Replaces the learner id of an event (`learner.id`) with the unified id
/// of the learner the calling site knows by it, before the event is
/// parsed. An id the site knows nobody by becomes an id no learner has, so
/// that the planner answers `unknown_learner` exactly as for an unknown
/// one; a malformed id is left for the parser to refuse, naming the field.
pub async fn resolve_event_learner(
    state: &AppState,
    principal: &Principal,
    input: &mut crate::ledger::EventIn,
) -> ApiResult<()> {
    let Some(id) = input.learner.as_mut().and_then(|l| l.id.as_mut()) else {
        return Ok(());
    };
    if LearnerId::parse(id.as_str()).is_err() && Pseudonym::parse_as(id.as_str(), "learner/id").is_err() {
        return Ok(());
    }
    *id = lookup(state, principal, id, "learner/id")
        .await?
        .unwrap_or_else(LearnerId::nobody)
        .to_string();
    Ok(())
}

/// The learner a consent token speaks for, checked against the
/// `learner_id` the site sent with it (if any), which must be the site's
/// own id of that learner (its pseudonym, or a unified id it already
/// knows). Another learner's id is 403 `consent_mismatch`, as is an id the
/// site does not know: a site learns nothing from the answer.
pub async fn consenting_learner(
    state: &AppState,
    principal: &Principal,
    token: &str,
    named: Option<&str>,
) -> ApiResult<LearnerId> {
    let sso = state.sso.as_ref().ok_or_else(|| {
        ApiError::from(
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ProblemCode::SsoNotConfigured,
                "no single sign-on is configured, so consent tokens cannot be checked; send the real-name data",
            )
            .with_field("consent_token"),
        )
    })?;
    let consenting = sso.learner(state, token).await?;
    if let Some(named) = named {
        let own = match audience(principal) {
            Some(a) => key(state).pseudonym(&a, &consenting).to_string(),
            None => consenting.to_string(),
        };
        let legacy = named == consenting.as_str()
            && match principal {
                Principal::Site(site) => state.learner_store().site_knows_learner(site, &consenting).await?,
                Principal::Admin => true,
                Principal::Bank => false,
            };
        if named != own && !legacy {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                ProblemCode::ConsentMismatch,
                "the consent token is not the named learner's",
            )
            .with_field("consent_token")
            .into());
        }
    }
    if !state.learner_store().learner_exists(&consenting).await? {
        return Err(unknown("consent_token"));
    }
    Ok(consenting)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xuefen_core::pseudonym::PseudonymKey;

    fn row(key: &PseudonymKey, audience: &Audience, n: u8) -> PseudonymRow {
        let learner = LearnerId::from_random([n; 16]);
        PseudonymRow {
            audience: audience.clone(),
            pseudonym: key.pseudonym(audience, &learner),
            learner,
        }
    }

    #[test]
    fn remembered_rows_are_left_out_per_audience_and_the_memory_is_bounded() {
        let key = PseudonymKey::derive(&[7; 32]);
        let site = Audience::Site(xuefen_core::ids::SiteId::parse("xihu").expect("site"));
        let memory = Remembered::with_capacity(3);
        let rows = vec![row(&key, &site, 1), row(&key, &site, 2)];
        assert_eq!(memory.fresh(rows.clone()), rows, "nothing recorded yet");
        memory.recorded(&rows);
        assert_eq!(memory.len(), 2);
        assert!(memory.fresh(rows.clone()).is_empty(), "both recorded");
        // The bank's pseudonym of the same learner is another row.
        let bank = row(&key, &Audience::Bank, 1);
        assert_eq!(
            memory.fresh(vec![rows[0].clone(), bank.clone()]),
            std::slice::from_ref(&bank)
        );
        memory.recorded(std::slice::from_ref(&bank));
        assert_eq!(memory.len(), 3);
        // Full: it starts afresh rather than grow.
        let more = row(&key, &site, 3);
        memory.recorded(std::slice::from_ref(&more));
        assert_eq!(memory.len(), 1);
        assert_eq!(memory.fresh(rows.clone()), rows);
        assert!(memory.fresh(vec![more]).is_empty());
    }
}
