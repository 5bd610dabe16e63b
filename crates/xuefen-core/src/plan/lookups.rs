//! What a store looks up for a batch before planning it, and the keys it
//! looks them up by.

use super::Head;
use super::Key;
use crate::amount::Credits;
use crate::entry::{Entry, EntryKind};
use crate::event::{Event, EventBody, LearnerRef, Millis};
use crate::ids::{Category, CourseCode, GroupId, LearnerId, LocalAccount, SiteId};
use crate::rule::CourseTerms;
use std::collections::{BTreeSet, HashMap, HashSet};

/// What a store looked up for a batch.
#[derive(Debug, Default, Clone)]
pub struct Lookups {
    /// Known learners named by the batch, with their chain.
    pub learner_chains: HashMap<LearnerId, u32>,
    /// The 32-byte secret of every learner the batch writes for: of those in
    /// `learner_chains` and of the entries its revocations target. Entries
    /// name their learner by a commitment under it
    /// ([`crate::entry::learner_commitment`]). A learner without one was
    /// erased: nothing more is written for them.
    pub learner_secrets: HashMap<LearnerId, [u8; 32]>,
    /// Local accounts named by the batch, with the learner they link to.
    pub accounts: HashMap<(SiteId, LocalAccount), LearnerId>,
    /// Courses named by the batch.
    pub courses: HashMap<(SiteId, CourseCode), CourseTerms>,
    /// Entries already in the ledger under the batch's keys and under the
    /// keys its revocations target.
    pub entries: HashMap<Key, Entry>,
    /// Keys of awards that already have a reversal.
    pub reversed: HashSet<Key>,
    /// Current heads of the chains the batch may append to.
    pub heads: HashMap<u32, Head>,
    /// For every learner and recognition group in [`group_keys`]: each
    /// entry of the learner that carries the group or whose course is a
    /// member of the group now (written before the group was declared), in
    /// sequence order.
    pub group_entries: HashMap<(LearnerId, GroupId), Vec<Entry>>,
    /// For every learner and course in [`course_keys`]: the entries of the
    /// learner for the course that the keys' probes pick, in sequence order
    /// ([`probe_course_history`]).
    pub course_entries: HashMap<(LearnerId, SiteId, CourseCode), Vec<Entry>>,
    /// Annual credit caps per category (calendar years in China Standard
    /// Time). A category without a cap is not capped.
    pub caps: HashMap<Category, Credits>,
    /// For every learner, category and year in [`cap_keys`]: the sum of the
    /// signed credits already in the ledger. Absent means zero.
    pub year_totals: HashMap<(LearnerId, Category, i32), Credits>,
}

impl Lookups {
    /// Every chain the batch may append to: the chains of its learners and of
    /// the entries its revocations target. A store locks these heads.
    pub fn chains(&self) -> BTreeSet<u32> {
        let learners = self.learner_chains.values().copied();
        learners
            .chain(self.entries.values().map(|e| e.position.chain))
            .collect()
    }

    /// Adds an entry found under one of the batch's keys. Only the entry
    /// that owns a key is kept: a promotion repeats the key of the
    /// completion it promotes (see [`EntryKind::owns_key`](crate::entry::EntryKind::owns_key)).
    pub fn add_entry(&mut self, entry: Entry) {
        if entry.body.kind.owns_key() {
            self.entries
                .insert((entry.body.site.clone(), entry.body.event_id.clone()), entry);
        }
    }

    fn learner_of(&self, site: &SiteId, learner: &LearnerRef) -> Option<LearnerId> {
        let id = match learner {
            LearnerRef::Id(id) => id.clone(),
            LearnerRef::Account(acct) => self.accounts.get(&(site.clone(), acct.clone()))?.clone(),
        };
        self.learner_chains.contains_key(&id).then_some(id)
    }
}

/// The learners and recognition groups whose history the planner needs:
/// those of the batch's completions of grouped courses and of the entries
/// its revocations target. A store calls this after filling the learners,
/// courses and keyed entries of `lookups`, and loads
/// [`Lookups::group_entries`] for exactly these pairs.
pub fn group_keys(events: &[Event], lookups: &Lookups) -> BTreeSet<(LearnerId, GroupId)> {
    let mut keys = BTreeSet::new();
    for e in events {
        match &e.body {
            EventBody::Completion(c) => {
                let group = lookups
                    .courses
                    .get(&(e.site.clone(), c.course.clone()))
                    .and_then(|t| t.recognition_group.clone());
                if let (Some(g), Some(l)) = (group, lookups.learner_of(&e.site, &c.learner)) {
                    keys.insert((l, g));
                }
            }
            EventBody::Revocation(r) => {
                if let Some(t) = lookups.entries.get(&(e.site.clone(), r.target.clone())) {
                    let now = lookups
                        .courses
                        .get(&(t.body.site.clone(), t.body.course.clone()))
                        .and_then(|terms| terms.recognition_group.as_ref());
                    for g in t.body.recognition_group.iter().chain(now) {
                        keys.insert((t.body.learner.clone(), g.clone()));
                    }
                }
            }
        }
    }
    keys
}

/// What a store loads of a learner's history of one course (see
/// [`course_keys`]). The planner reads a course's history for three things:
/// the entry that pays the course in a completion's period, a completion
/// already recorded at the same instant (a likely duplicate), and, for a
/// revocation, the promotion that pays its target and the next recognised
/// completion to promote. Only the last needs the whole history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CourseProbe {
    /// Every entry of the learner's course.
    Whole,
    /// What a completion dated `at` is checked against, at most three
    /// entries: the first completion entry dated `at` (by sequence), with
    /// the reversal that refers to it when it pays and was reversed; and,
    /// when `paid` is given, the last entry that pays the course, dated
    /// from `paid.0` to `paid.1` (both included), that no reversal refers
    /// to. [`probe_course_history`] is the reference.
    At { at: Millis, paid: Option<(Millis, Millis)> },
}

/// A learner's history of one course to load.
pub type CourseKey = (LearnerId, SiteId, CourseCode, CourseProbe);

/// The learners and courses whose history the planner needs (a course is
/// credited once per learner, or once per period when repeatable): those of
/// the batch's completions and of the entries its revocations target. A
/// store loads [`Lookups::course_entries`] for exactly these, after the
/// learners, courses and keyed entries, as [`probe_course_history`] picks
/// them from a learner's history of the course, and files every key's
/// entries under its (learner, site, course) in sequence order, once each.
pub fn course_keys(events: &[Event], lookups: &Lookups) -> BTreeSet<CourseKey> {
    let mut whole: BTreeSet<(LearnerId, SiteId, CourseCode)> = BTreeSet::new();
    let mut at: BTreeSet<CourseKey> = BTreeSet::new();
    for e in events {
        match &e.body {
            EventBody::Completion(c) => {
                let Some(l) = lookups.learner_of(&e.site, &c.learner) else {
                    continue;
                };
                // A grouped course is paid through its group's history; an
                // `every_completion` course is never "paid already".
                let paid = lookups
                    .courses
                    .get(&(e.site.clone(), c.course.clone()))
                    .filter(|t| t.recognition_group.is_none() && t.repeat.once_per_period())
                    .map(|t| match t.repeat.period(c.completed_at) {
                        Some(year) => {
                            let (start, end) = Millis::cst_year_bounds(year);
                            (start, Millis(end.0.saturating_sub(1)))
                        }
                        None => (Millis(i64::MIN), Millis(i64::MAX)),
                    });
                let probe = CourseProbe::At {
                    at: c.completed_at,
                    paid,
                };
                at.insert((l, e.site.clone(), c.course.clone(), probe));
            }
            EventBody::Revocation(r) => {
                if let Some(t) = lookups.entries.get(&(e.site.clone(), r.target.clone())) {
                    whole.insert((t.body.learner.clone(), t.body.site.clone(), t.body.course.clone()));
                }
            }
        }
    }
    at.retain(|(l, s, c, _)| !whole.contains(&(l.clone(), s.clone(), c.clone())));
    at.extend(whole.into_iter().map(|(l, s, c)| (l, s, c, CourseProbe::Whole)));
    at
}

/// The entries of `history` (a learner's entries of one course, in sequence
/// order) that `probe` asks for, in sequence order: what a store's query
/// must return for the key.
pub fn probe_course_history<'a>(history: &'a [Entry], probe: &CourseProbe) -> Vec<&'a Entry> {
    let CourseProbe::At { at, paid } = *probe else {
        return history.iter().collect();
    };
    let reversal_of = |target: &Entry| {
        history
            .iter()
            .find(|r| r.body.kind == EntryKind::Reversal && r.body.refers_to == Some(target.position))
    };
    let mut picked: Vec<&Entry> = Vec::new();
    if let Some(same) = history
        .iter()
        .find(|e| e.body.kind.is_completion() && e.body.occurred_at == at)
    {
        picked.push(same);
        if same.body.kind.pays() {
            picked.extend(reversal_of(same));
        }
    }
    if let Some((from, to)) = paid {
        picked.extend(history.iter().rev().find(|e| {
            e.body.kind.pays() && from <= e.body.occurred_at && e.body.occurred_at <= to && reversal_of(e).is_none()
        }));
    }
    picked.sort_by_key(|e| e.position);
    picked.dedup_by_key(|e| e.position);
    picked
}

/// The courses of the entries the batch's revocations target that the
/// lookups do not hold yet (their terms say how often they credit). A
/// store adds them to [`Lookups::courses`] before [`group_keys`].
pub fn target_courses(events: &[Event], lookups: &Lookups) -> BTreeSet<(SiteId, CourseCode)> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Revocation(r) => lookups.entries.get(&(e.site.clone(), r.target.clone())),
            EventBody::Completion(_) => None,
        })
        .map(|t| (t.body.site.clone(), t.body.course.clone()))
        .filter(|k| !lookups.courses.contains_key(k))
        .collect()
}

/// The learners, capped categories and years whose totals the planner
/// needs: those of the batch's completions, of the entries its revocations
/// target, and of every entry in [`Lookups::group_entries`] (a revocation
/// may promote one of them). A store calls this after loading the group
/// entries and the caps, and loads [`Lookups::year_totals`] for these keys.
pub fn cap_keys(events: &[Event], lookups: &Lookups) -> BTreeSet<(LearnerId, Category, i32)> {
    let mut keys = BTreeSet::new();
    if lookups.caps.is_empty() {
        return keys;
    }
    let mut add = |learner: &LearnerId, category: &Category, at: Millis| {
        if lookups.caps.contains_key(category) {
            keys.insert((learner.clone(), category.clone(), at.year_cst()));
        }
    };
    for e in events {
        match &e.body {
            EventBody::Completion(c) => {
                let terms = lookups.courses.get(&(e.site.clone(), c.course.clone()));
                if let (Some(t), Some(l)) = (terms, lookups.learner_of(&e.site, &c.learner)) {
                    add(&l, &t.category, c.completed_at);
                }
            }
            EventBody::Revocation(r) => {
                if let Some(t) = lookups.entries.get(&(e.site.clone(), r.target.clone())) {
                    add(&t.body.learner, &t.body.category, t.body.occurred_at);
                }
            }
        }
    }
    for entry in lookups
        .group_entries
        .values()
        .flatten()
        .chain(lookups.course_entries.values().flatten())
    {
        add(&entry.body.learner, &entry.body.category, entry.body.occurred_at);
    }
    keys
}
