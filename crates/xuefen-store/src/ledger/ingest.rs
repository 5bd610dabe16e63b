//! The ingest choreography, written once for every backend.
//!
//! A batch is planned in `xuefen-core` ([`plan::plan`]) from what the store
//! looks up for it, and the plan is written in the same transaction. Which
//! lookups, in which order, and what each depends on is decided here, in
//! [`ingest`]:
//!
//! 1. the learners the batch names and the accounts linked to them;
//! 2. the courses its completions name (their terms, group and cap);
//! 3. the heads of the chains it may append to, when the backend locks them
//!    before reading entries ([`IngestTx::HEADS_FIRST`]);
//! 4. the entries already under the batch's idempotency keys and under its
//!    revocations' targets, and which targets already have a reversal;
//! 5. the courses of those targets;
//! 6. each learner's history of each course named (credited once), of each
//!    recognition group touched, and the year totals of capped categories;
//! 7. the secrets of the learners it may write for;
//! 8. the heads, when the backend reads them last (it holds a database-wide
//!    write lock from its first read, so they cannot move);
//! 9. the plan, and its write.
//!
//! Each backend implements [`IngestTx`] over one open transaction: one
//! query (or one chunked query) per step, in its own SQL. It keeps its
//! dialect choices (how it begins, locks, writes entries, commits and
//! retries) to itself; the driver never adds a round trip to them.

use std::collections::{BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use xuefen_core::amount::Credits;
use xuefen_core::entry::Entry;
use xuefen_core::event::{Event, EventBody, Millis};
use xuefen_core::ids::{Category, CourseCode, GroupId, LearnerId, SiteId};
use xuefen_core::plan::{self, CourseKey, Key, Lookups, Outcome, Plan};

/// Each learner's picked history of each course ([`Lookups::course_entries`]).
pub type CourseHistories = HashMap<(LearnerId, SiteId, CourseCode), Vec<Entry>>;
/// Each learner's history in each recognition group ([`Lookups::group_entries`]).
pub type GroupHistories = HashMap<(LearnerId, GroupId), Vec<Entry>>;
/// The signed credits of each learner, category and CST year ([`Lookups::year_totals`]).
pub type YearTotals = HashMap<(LearnerId, Category, i32), Credits>;
/// Learners' secrets ([`Lookups::learner_secrets`]).
pub type Secrets = HashMap<LearnerId, [u8; 32]>;

/// One backend's ingest transaction: the lookups and the write of one batch,
/// each one query (or one chunked query) for the whole batch. [`ingest`]
/// calls them in its order, never with an empty key list unless said.
#[async_trait]
pub trait IngestTx: Send {
    /// What a step fails with: the backend's own, so that it can tell a lost
    /// race (run the batch again) from a failure.
    type Error: Send;

    /// Whether [`IngestTx::heads`] runs before the entries are read (a
    /// backend whose transactions run side by side locks the heads, so that
    /// the chains' state is settled for every later read) or after every
    /// other lookup (a backend holding a database-wide write lock).
    const HEADS_FIRST: bool;

    /// Whether the batch's own idempotency keys are assumed new, so that
    /// only its revocations' targets are looked up. The backend must then
    /// refuse to write a plan that an existing key could have changed.
    fn assumes_new_keys(&self) -> bool {
        false
    }

    /// Fills [`Lookups::learner_chains`] and [`Lookups::accounts`] for the
    /// learners and accounts the batch's completions name.
    async fn learners(&mut self, events: &[Event], lookups: &mut Lookups) -> Result<(), Self::Error>;

    /// Adds the terms of these courses, and their categories' caps, to
    /// `lookups`. `wanted` is sorted, without repeats, and not empty.
    async fn courses(&mut self, wanted: Vec<(&str, &str)>, lookups: &mut Lookups) -> Result<(), Self::Error>;

    /// Fills [`Lookups::heads`] for every chain the batch may append to: those
    /// of [`Lookups::chains`] and of the entries of `targets` (the batch's
    /// revocation targets, sorted, maybe empty), all of which must have a
    /// head. Called once, where [`IngestTx::HEADS_FIRST`] says.
    async fn heads(&mut self, targets: &[Key], lookups: &mut Lookups) -> Result<(), Self::Error>;

    /// The entries stored under these keys (sorted, without repeats).
    async fn entries(&mut self, keys: &[Key]) -> Result<Vec<Entry>, Self::Error>;

    /// Which of these revocation targets (sorted, without repeats) already
    /// have a reversal.
    async fn reversed(&mut self, targets: &[Key]) -> Result<HashSet<Key>, Self::Error>;

    /// What each key's probe picks of the learner's history of the course,
    /// in sequence order (see [`plan::course_keys`]); maybe no keys.
    async fn course_entries(&mut self, keys: &BTreeSet<CourseKey>) -> Result<CourseHistories, Self::Error>;

    /// Every entry of each learner in each group (see [`plan::group_keys`]);
    /// maybe no keys.
    async fn group_entries(&mut self, keys: &BTreeSet<(LearnerId, GroupId)>) -> Result<GroupHistories, Self::Error>;

    /// The sum of signed credits of each (learner, category, CST year) (see
    /// [`plan::cap_keys`]); maybe no keys.
    async fn year_totals(&mut self, keys: &BTreeSet<(LearnerId, Category, i32)>) -> Result<YearTotals, Self::Error>;

    /// The secrets of the learners the batch may write for: those of
    /// [`Lookups::learner_chains`] and of [`Lookups::entries`]. An erased
    /// learner has none. Never cached: an erasure deletes the secret.
    async fn secrets(&mut self, lookups: &Lookups) -> Result<Secrets, Self::Error>;

    /// Writes the planned entries and moves the heads (maybe nothing to
    /// write). The backend may refuse, to run the batch again.
    async fn write(&mut self, planned: &Plan) -> Result<(), Self::Error>;
}

/// Plans one batch in `tx` and writes the plan; the outcome of each event.
/// The caller began the transaction, and commits it on `Ok`.
pub async fn ingest<T: IngestTx>(tx: &mut T, events: &[Event], now: Millis) -> Result<Vec<Outcome>, T::Error> {
    let mut lookups = Lookups::default();
    tx.learners(events, &mut lookups).await?;
    let named = named_courses(events);
    if !named.is_empty() {
        tx.courses(named, &mut lookups).await?;
    }
    let targets = revocation_keys(events);
    if T::HEADS_FIRST {
        tx.heads(&targets, &mut lookups).await?;
    }
    let all;
    let keys = if tx.assumes_new_keys() {
        &targets
    } else {
        all = batch_keys(events);
        &all
    };
    if !keys.is_empty() {
        for e in tx.entries(keys).await? {
            lookups.add_entry(e);
        }
    }
    if !targets.is_empty() {
        lookups.reversed = tx.reversed(&targets).await?;
    }
    let target_courses = plan::target_courses(events, &lookups);
    if !target_courses.is_empty() {
        let wanted = target_courses.iter().map(|(s, c)| (s.as_str(), c.as_str())).collect();
        tx.courses(wanted, &mut lookups).await?;
    }
    // Credited once: each learner's history of each course the batch names.
    lookups.course_entries = tx.course_entries(&plan::course_keys(events, &lookups)).await?;
    // Recognition and caps: the keys are empty (and the backend asks
    // nothing) unless the batch touches a group or a capped category.
    lookups.group_entries = tx.group_entries(&plan::group_keys(events, &lookups)).await?;
    lookups.year_totals = tx.year_totals(&plan::cap_keys(events, &lookups)).await?;
    lookups.learner_secrets = tx.secrets(&lookups).await?;
    if !T::HEADS_FIRST {
        tx.heads(&targets, &mut lookups).await?;
    }
    let planned = plan::plan(events, now, &lookups);
    tx.write(&planned).await?;
    Ok(planned.outcomes)
}

/// The (site, course) of each completion, sorted, without repeats.
fn named_courses(events: &[Event]) -> Vec<(&str, &str)> {
    let mut wanted: Vec<(&str, &str)> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Completion(c) => Some((e.site.as_str(), c.course.as_str())),
            EventBody::Revocation(_) => None,
        })
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    wanted
}

/// The keys the revocations of the batch target, sorted, without repeats.
fn revocation_keys(events: &[Event]) -> Vec<Key> {
    let mut keys: Vec<Key> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Revocation(r) => Some((e.site.clone(), r.target.clone())),
            EventBody::Completion(_) => None,
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The batch's own keys and its revocations' targets, sorted, without
/// repeats.
fn batch_keys(events: &[Event]) -> Vec<Key> {
    let mut keys: Vec<Key> = events.iter().map(|e| (e.site.clone(), e.id.clone())).collect();
    for e in events {
        if let EventBody::Revocation(r) = &e.body {
            keys.push((e.site.clone(), r.target.clone()));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}
