//! The ingest planner: a batch of events in, outcomes and sealed entries out.
//!
//! A store gathers what the batch needs to know (learners, courses, entries
//! already in the ledger under the batch's keys, chain heads it has locked),
//! calls [`plan`], and writes the returned entries and heads in the same
//! transaction. All decisions — idempotency, credits, reversals, positions
//! and hashes — are made here, the same way for every backend.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::FieldError;
use crate::amount::Credits;
use crate::entry::{Entry, EntryBody, EntryKind, GENESIS};
use crate::event::{Completion, Event, EventBody, LearnerRef, Millis, Reason, Revocation};
use crate::ids::{Category, CourseCode, EventId, GroupId, LearnerId, Position, SiteId};
use crate::limits::{COMPLETED_AT_FUTURE_SKEW_MS, COMPLETED_AT_MIN_MS};
use crate::note::Note;
use crate::rule::{Assessment, CourseTerms};

/// The last entry of a chain (`seq` 0 and the genesis hash for an empty chain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: [u8; 32],
}

impl Head {
    pub const EMPTY: Head = Head { seq: 0, hash: GENESIS };
}

/// The idempotency key of an event.
pub type Key = (SiteId, EventId);

mod declaration;
mod lookups;
#[cfg(test)]
mod tests;

pub use declaration::{declaration_event_id, first_difference, plan_declaration};
pub use lookups::{
    CourseKey, CourseProbe, Lookups, cap_keys, course_keys, group_keys, probe_course_history, target_courses,
};

/// Why an item was rejected: a stable code and the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub error: FieldError,
}

/// The outcome of one event of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Newly written at `position`.
    Accepted {
        position: Position,
        kind: EntryKind,
        credits: Credits,
        /// A completion of the same learner, course and completion time
        /// already recorded under this other event id: likely the same
        /// completion sent twice (it is recorded, and paid at most once).
        likely_duplicate_of: Option<EventId>,
    },
    /// Already in the ledger with the same content: nothing written.
    Duplicate {
        position: Position,
        kind: EntryKind,
        credits: Credits,
    },
    /// Already in the ledger with different content in `field`: nothing written.
    Conflict { field: &'static str, position: Position },
    /// Invalid in the ledger's current state: nothing written.
    Rejected(Rejection),
}

/// What to write.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    pub outcomes: Vec<Outcome>,
    /// New entries, in the order of the batch (each chain's in sequence order).
    pub entries: Vec<Entry>,
    /// The new heads of the chains appended to.
    pub heads: BTreeMap<u32, Head>,
}

fn reject(code: &'static str, field: &'static str, detail: impl Into<String>) -> Outcome {
    Outcome::Rejected(Rejection {
        code,
        error: FieldError::new(field, detail),
    })
}

/// What a completion is credited once for: its recognition group, or the
/// course itself when it has none.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    Group(GroupId),
    Course(SiteId, CourseCode),
}

struct Planner<'a> {
    lookups: &'a Lookups,
    now: Millis,
    /// Entries accepted earlier in this batch, by key (index into `plan.entries`).
    written: HashMap<Key, usize>,
    reversed: HashSet<Key>,
    /// Unit histories touched so far, starting from the lookups' and
    /// growing with this batch's entries.
    histories: HashMap<(LearnerId, Unit), Vec<Entry>>,
    /// Year totals of capped categories, likewise.
    totals: HashMap<(LearnerId, Category, i32), Credits>,
    plan: Plan,
}

/// What a revocation writes after its reversal: the promotion of the next
/// recognised completion of the unit and period, when the reversed entry
/// was paid.
type Promote = Option<(u32, LearnerId, Unit, Option<i32>)>;

/// What a completion is credited: the entry's kind and credits, the entry that pays its unit
/// already (for a recognised one) and the credits withheld.
struct Credit {
    kind: EntryKind,
    credits: Credits,
    refers_to: Option<Position>,
    withheld: Option<Credits>,
}

impl Credit {
    /// A credit of nothing, referring to nothing and withholding nothing.
    fn unpaid(kind: EntryKind) -> Self {
        Credit {
            kind,
            credits: Credits::ZERO,
            refers_to: None,
            withheld: None,
        }
    }
}

/// A completion time is from 2000 on, not further in the future than the allowed skew, and not
/// before its course was first offered.
fn check_completed_at(at: Millis, now: Millis, terms: &CourseTerms) -> Result<(), Outcome> {
    if at.0 < COMPLETED_AT_MIN_MS {
        return Err(reject(
            "completed_at_out_of_range",
            "completed_at",
            "is before 2000-01-01",
        ));
    }
    if at.0 > now.0.saturating_add(COMPLETED_AT_FUTURE_SKEW_MS) {
        return Err(reject("completed_at_out_of_range", "completed_at", "is in the future"));
    }
    if let Some(from) = terms.offered_from
        && at < from
    {
        return Err(reject(
            "completed_before_course_offered",
            "completed_at",
            format!("is before the course was first offered ({})", from.to_rfc3339()),
        ));
    }
    Ok(())
}

/// Plans a batch. `now` is the recording time of every entry of the batch.
pub fn plan(events: &[Event], now: Millis, lookups: &Lookups) -> Plan {
    let mut p = Planner {
        lookups,
        now,
        written: HashMap::new(),
        reversed: HashSet::new(),
        histories: HashMap::new(),
        totals: HashMap::new(),
        plan: Plan {
            outcomes: Vec::with_capacity(events.len()),
            ..Plan::default()
        },
    };
    for event in events {
        let outcome = p.one(event);
        p.plan.outcomes.push(outcome);
    }
    p.plan
}

/// The entry that currently pays a unit in `period` (`None`: any period)
/// within `history`: a paying entry that no reversal refers to. At most
/// one exists per period.
fn paid_in(history: &[Entry], period: impl Fn(&Entry) -> bool) -> Option<&Entry> {
    let reversed: HashSet<Position> = history
        .iter()
        .filter(|e| e.body.kind == EntryKind::Reversal)
        .filter_map(|e| e.body.refers_to)
        .collect();
    history
        .iter()
        .rev()
        .find(|e| e.body.kind.pays() && !reversed.contains(&e.position) && period(e))
}

fn in_period(period: Option<i32>) -> impl Fn(&Entry) -> bool {
    move |e: &Entry| period.is_none_or(|y| e.body.occurred_at.year_cst() == y)
}

impl Planner<'_> {
    fn existing(&self, key: &Key) -> Option<&Entry> {
        match self.written.get(key) {
            Some(i) => self.plan.entries.get(*i),
            None => self.lookups.entries.get(key),
        }
    }

    fn resolve(&self, site: &SiteId, learner: &LearnerRef) -> Option<(LearnerId, u32)> {
        let id = match learner {
            LearnerRef::Id(id) => id.clone(),
            LearnerRef::Account(acct) => self.lookups.accounts.get(&(site.clone(), acct.clone()))?.clone(),
        };
        let chain = *self.lookups.learner_chains.get(&id)?;
        self.lookups.learner_secrets.contains_key(&id).then_some((id, chain))
    }

    fn one(&mut self, event: &Event) -> Outcome {
        let key = (event.site.clone(), event.id.clone());
        if let Some(stored) = self.existing(&key) {
            return match self.first_difference(event, stored) {
                None => Outcome::Duplicate {
                    position: stored.position,
                    kind: stored.body.kind,
                    credits: stored.body.credits,
                },
                Some(field) => Outcome::Conflict {
                    field,
                    position: stored.position,
                },
            };
        }
        let built = match &event.body {
            EventBody::Completion(c) => self
                .completion(event, c)
                .map(|(chain, body, dup)| (chain, body, None, dup)),
            EventBody::Revocation(r) => self.revocation(event, r).map(|(c, b, p)| (c, b, p, None)),
        };
        match built {
            Ok((chain, body, promote, dup)) => {
                let mut outcome = self.append(Some(key), chain, body);
                if let Outcome::Accepted {
                    likely_duplicate_of, ..
                } = &mut outcome
                {
                    *likely_duplicate_of = dup;
                }
                if let Some((chain, learner, unit, period)) = promote {
                    self.promote_next(chain, &learner, &unit, period);
                }
                outcome
            }
            Err(rejected) => rejected,
        }
    }

    /// The recognition group an entry counts in: the one it was written
    /// with, or else its course's group now (an entry written before the
    /// group was declared).
    fn group_of(&self, body: &EntryBody) -> Option<GroupId> {
        body.recognition_group.clone().or_else(|| {
            self.lookups
                .courses
                .get(&(body.site.clone(), body.course.clone()))
                .and_then(|t| t.recognition_group.clone())
        })
    }

    fn unit_of(&self, body: &EntryBody) -> Unit {
        match self.group_of(body) {
            Some(g) => Unit::Group(g),
            None => Unit::Course(body.site.clone(), body.course.clone()),
        }
    }

    /// Every entry of `learner` in `unit`: the ledger's and this batch's.
    fn history(&self, learner: &LearnerId, unit: &Unit) -> &[Entry] {
        let key = (learner.clone(), unit.clone());
        if let Some(h) = self.histories.get(&key) {
            return h;
        }
        let found = match unit {
            Unit::Group(g) => self.lookups.group_entries.get(&(learner.clone(), g.clone())),
            Unit::Course(s, c) => self
                .lookups
                .course_entries
                .get(&(learner.clone(), s.clone(), c.clone())),
        };
        found.map_or(&[], Vec::as_slice)
    }

    /// The entry that currently pays `learner`'s credits for `unit` in
    /// `period`.
    fn paid_entry(&self, learner: &LearnerId, unit: &Unit, period: Option<i32>) -> Option<&Entry> {
        paid_in(self.history(learner, unit), in_period(period))
    }

    /// The credits of a year's category total so far.
    fn year_total(&self, key: &(LearnerId, Category, i32)) -> Credits {
        self.totals
            .get(key)
            .or_else(|| self.lookups.year_totals.get(key))
            .copied()
            .unwrap_or(Credits::ZERO)
    }

    /// Splits `credits` into what fits under the learner's annual cap for
    /// the category and what is withheld.
    fn fit_under_cap(
        &self,
        learner: &LearnerId,
        category: &Category,
        at: Millis,
        credits: Credits,
    ) -> (Credits, Credits) {
        let Some(cap) = self.lookups.caps.get(category) else {
            return (credits, Credits::ZERO);
        };
        let total = self.year_total(&(learner.clone(), category.clone(), at.year_cst()));
        let room = (cap.cents() - total.cents()).max(0);
        let granted = credits.cents().min(room).max(0);
        (
            Credits::from_cents(granted),
            Credits::from_cents(credits.cents() - granted),
        )
    }

    /// Keeps the unit histories and year totals current with a new entry.
    fn record(&mut self, entry: &Entry) {
        let b = &entry.body;
        let mut units = vec![Unit::Course(b.site.clone(), b.course.clone())];
        if let Some(g) = self.group_of(b) {
            units.push(Unit::Group(g));
        }
        for unit in units {
            let key = (b.learner.clone(), unit);
            if !self.histories.contains_key(&key) {
                let start = self.history(&key.0, &key.1).to_vec();
                self.histories.insert(key.clone(), start);
            }
            if let Some(h) = self.histories.get_mut(&key) {
                h.push(entry.clone());
            }
        }
        if self.lookups.caps.contains_key(&b.category) {
            let key = (b.learner.clone(), b.category.clone(), b.occurred_at.year_cst());
            let total = self.year_total(&key);
            // Per-entry credits are bounded far below i64::MAX / entries.
            let sum = Credits::from_cents(total.cents().saturating_add(b.credits.cents()));
            self.totals.insert(key, sum);
        }
    }

    /// After the paid entry of a unit was reversed, pays the earliest
    /// recognised completion of the unit in the same period that is still
    /// valid.
    fn promote_next(&mut self, chain: u32, learner: &LearnerId, unit: &Unit, period: Option<i32>) {
        if self.paid_entry(learner, unit, period).is_some() {
            return;
        }
        let history = self.history(learner, unit);
        let used: HashSet<Position> = history
            .iter()
            .filter(|e| matches!(e.body.kind, EntryKind::Reversal | EntryKind::Promoted))
            .filter_map(|e| e.body.refers_to)
            .collect();
        let within = in_period(period);
        let Some(next) = history
            .iter()
            .find(|e| e.body.kind == EntryKind::Recognised && !used.contains(&e.position) && within(e))
        else {
            return;
        };
        let b = &next.body;
        let owed = b.withheld.unwrap_or(Credits::ZERO);
        let (credits, over) = self.fit_under_cap(learner, &b.category, b.occurred_at, owed);
        let body = EntryBody {
            kind: EntryKind::Promoted,
            credits,
            recorded_at: self.now,
            refers_to: Some(next.position),
            target_event: None,
            reason: Reason::default(),
            note: None,
            withheld: (over.cents() > 0).then_some(over),
            ..b.clone()
        };
        self.append(None, chain, body);
    }

    /// The first field in which `event` differs from the entry stored under
    /// its key (TigerBeetle's `exists_with_different_<field>`).
    fn first_difference(&self, event: &Event, stored: &Entry) -> Option<&'static str> {
        let secret = self.lookups.learner_secrets.get(&stored.body.learner);
        first_difference(
            event,
            &stored.body,
            |learner| self.resolve(&event.site, learner).map(|(id, _)| id).as_ref() == Some(&stored.body.learner),
            |note| note.open(secret, stored.position),
        )
    }

    /// A completion of the same learner, course and time already recorded
    /// under another event id: its event id.
    fn same_completion(&self, learner: &LearnerId, site: &SiteId, c: &Completion) -> Option<EventId> {
        self.history(learner, &Unit::Course(site.clone(), c.course.clone()))
            .iter()
            .find(|e| {
                e.body.kind.owns_key()
                    && e.body.kind.is_completion()
                    && e.body.occurred_at == c.completed_at
                    && e.body.course == c.course
            })
            .map(|e| e.body.event_id.clone())
    }

    /// A completion's entry, once its learner and course are known and its time is plausible;
    /// also the event id of a likely earlier copy of the same completion.
    fn completion(&self, event: &Event, c: &Completion) -> Result<(u32, EntryBody, Option<EventId>), Outcome> {
        let (learner, chain) = self.completing_learner(&event.site, &c.learner)?;
        let terms = self.course_terms(&event.site, &c.course)?;
        check_completed_at(c.completed_at, self.now, terms)?;
        let credit = self.credit(&learner, &event.site, c, terms)?;
        let duplicate = self.same_completion(&learner, &event.site, c);
        Ok((chain, self.completion_body(event, c, learner, terms, credit), duplicate))
    }

    /// The learner a completion names and their chain, or `unknown_learner` on the field it
    /// names them by.
    fn completing_learner(&self, site: &SiteId, learner: &LearnerRef) -> Result<(LearnerId, u32), Outcome> {
        self.resolve(site, learner).ok_or_else(|| {
            let (field, what) = match learner {
                LearnerRef::Id(_) => ("learner/id", "no learner has this id"),
                LearnerRef::Account(_) => (
                    "learner/local_account",
                    "this site has not linked this account to a learner",
                ),
            };
            reject("unknown_learner", field, what)
        })
    }

    /// The terms of the site's course `course`, or `unknown_course`.
    fn course_terms(&self, site: &SiteId, course: &CourseCode) -> Result<&CourseTerms, Outcome> {
        self.lookups
            .courses
            .get(&(site.clone(), course.clone()))
            .ok_or_else(|| {
                reject(
                    "unknown_course",
                    "course",
                    format!("this site has no course `{course}`"),
                )
            })
    }

    /// What a completion is credited under its course's terms, or `rule_needs_field` when the
    /// rule needs a score or hours the completion lacks.
    fn credit(
        &self,
        learner: &LearnerId,
        site: &SiteId,
        c: &Completion,
        terms: &CourseTerms,
    ) -> Result<Credit, Outcome> {
        let unit = match &terms.recognition_group {
            Some(g) => Unit::Group(g.clone()),
            None => Unit::Course(site.clone(), c.course.clone()),
        };
        let period = terms.repeat.period(c.completed_at);
        match terms.assess(c.score, c.hours) {
            Ok(Assessment::Passed(credits)) => Ok(self.passed(learner, &unit, period, terms, c.completed_at, credits)),
            Ok(Assessment::NotPassed) => Ok(Credit::unpaid(EntryKind::NotPassed)),
            Err(e) => Err(Outcome::Rejected(Rejection {
                code: "rule_needs_field",
                error: e,
            })),
        }
    }

    /// A passing completion's credit: recorded but not paid again when its group, or its course
    /// paying once per period, is paid already; else its credits, those over the category's cap
    /// withheld.
    fn passed(
        &self,
        learner: &LearnerId,
        unit: &Unit,
        period: Option<i32>,
        terms: &CourseTerms,
        at: Millis,
        credits: Credits,
    ) -> Credit {
        let paid = self
            .paid_entry(learner, unit, period)
            .filter(|_| terms.recognition_group.is_some() || terms.repeat.once_per_period());
        if let Some(paid) = paid {
            return Credit {
                kind: EntryKind::Recognised,
                credits: Credits::ZERO,
                refers_to: Some(paid.position),
                withheld: Some(credits),
            };
        }
        let (granted, over) = self.fit_under_cap(learner, &terms.category, at, credits);
        if over.cents() > 0 {
            Credit {
                kind: EntryKind::Capped,
                credits: granted,
                refers_to: None,
                withheld: Some(over),
            }
        } else {
            Credit {
                kind: EntryKind::Awarded,
                credits,
                refers_to: None,
                withheld: None,
            }
        }
    }

    /// The entry of a checked completion of `learner`, credited `credit`.
    fn completion_body(
        &self,
        event: &Event,
        c: &Completion,
        learner: LearnerId,
        terms: &CourseTerms,
        credit: Credit,
    ) -> EntryBody {
        EntryBody {
            kind: credit.kind,
            site: event.site.clone(),
            event_id: event.id.clone(),
            learner,
            commitment: None,
            course: c.course.clone(),
            category: terms.category.clone(),
            credits: credit.credits,
            occurred_at: c.completed_at,
            recorded_at: self.now,
            score: c.score,
            hours: c.hours,
            rule_version: terms.rule_version,
            refers_to: credit.refers_to,
            target_event: None,
            reason: Reason::default(),
            note: None,
            recognition_group: terms.recognition_group.clone(),
            withheld: credit.withheld,
        }
    }

    /// A revocation's reversal of the entry that pays for its target, and the promotion to
    /// write after it.
    fn revocation(&self, event: &Event, r: &Revocation) -> Result<(u32, EntryBody, Promote), Outcome> {
        let target = self.revocable(&(event.site.clone(), r.target.clone()))?;
        let unit = self.unit_of(&target.body);
        let target = self.reversed_entry(target, &unit);
        let t = &target.body;
        let period = self
            .lookups
            .courses
            .get(&(t.site.clone(), t.course.clone()))
            .and_then(|terms| terms.repeat.period(t.occurred_at));
        let promote = t
            .kind
            .pays()
            .then(|| (target.position.chain, t.learner.clone(), unit, period));
        Ok((target.position.chain, self.reversal_body(event, r, target), promote))
    }

    /// The entry a revocation targets, if it may be revoked: it exists, is not itself a
    /// revocation, its learner was not erased, and it was not revoked already.
    fn revocable(&self, target_key: &Key) -> Result<&Entry, Outcome> {
        let Some(target) = self.existing(target_key) else {
            return Err(reject(
                "unknown_target",
                "target_event_id",
                "this site has no accepted event with this id",
            ));
        };
        if target.body.kind == EntryKind::Reversal {
            return Err(reject(
                "target_not_revocable",
                "target_event_id",
                "names a revocation; revoke the original event instead",
            ));
        }
        if !self.lookups.learner_secrets.contains_key(&target.body.learner) {
            return Err(reject(
                "learner_erased",
                "target_event_id",
                "the learner of this event was erased; nothing more is written for them",
            ));
        }
        if self.lookups.reversed.contains(target_key) || self.reversed.contains(target_key) {
            return Err(reject(
                "already_revoked",
                "target_event_id",
                "the event has already been revoked",
            ));
        }
        Ok(target)
    }

    /// The entry a revocation of `target` reverses: a recognised completion that was promoted
    /// is paid by its promotion, so that; else `target` itself.
    fn reversed_entry<'e>(&'e self, target: &'e Entry, unit: &Unit) -> &'e Entry {
        self.history(&target.body.learner, unit)
            .iter()
            .find(|e| e.body.kind == EntryKind::Promoted && e.body.refers_to == Some(target.position))
            .unwrap_or(target)
    }

    /// The reversal, under revocation `r`, of `target`.
    fn reversal_body(&self, event: &Event, r: &Revocation, target: &Entry) -> EntryBody {
        let t = &target.body;
        EntryBody {
            kind: EntryKind::Reversal,
            site: event.site.clone(),
            event_id: event.id.clone(),
            learner: t.learner.clone(),
            commitment: None,
            course: t.course.clone(),
            category: t.category.clone(),
            credits: t.credits.negated(),
            occurred_at: t.occurred_at,
            recorded_at: self.now,
            score: None,
            hours: None,
            rule_version: t.rule_version,
            refers_to: Some(target.position),
            target_event: Some(r.target.clone()),
            reason: r.code.clone(),
            note: (!r.reason.as_str().is_empty()).then(|| Note::Clear(r.reason.clone())),
            recognition_group: t.recognition_group.clone(),
            withheld: None,
        }
    }

    /// Seals `body` at the end of `chain`. `key` is the idempotency key the
    /// entry owns (none for a promotion).
    fn append(&mut self, key: Option<Key>, chain: u32, body: EntryBody) -> Outcome {
        let head = self
            .plan
            .heads
            .get(&chain)
            .or_else(|| self.lookups.heads.get(&chain))
            .copied()
            .unwrap_or(Head::EMPTY);
        if let Some(target) = &body.target_event {
            self.reversed.insert((body.site.clone(), target.clone()));
        }
        let position = Position {
            chain,
            seq: head.seq + 1,
        };
        // Every learner written for has a secret: `resolve` and
        // `revocation` refuse the others before an entry is planned.
        let secret = self
            .lookups
            .learner_secrets
            .get(&body.learner)
            .copied()
            .unwrap_or_default();
        let body = EntryBody {
            commitment: Some(crate::entry::learner_commitment(&secret, position)),
            note: body.note.map(|n| n.sealed_at(&secret, position)),
            ..body
        };
        let entry = Entry::seal(position, head.hash, body);
        let outcome = Outcome::Accepted {
            position: entry.position,
            kind: entry.body.kind,
            credits: entry.body.credits,
            likely_duplicate_of: None,
        };
        self.plan.heads.insert(
            chain,
            Head {
                seq: entry.position.seq,
                hash: entry.hash,
            },
        );
        self.record(&entry);
        if let Some(key) = key {
            self.written.insert(key, self.plan.entries.len());
        }
        self.plan.entries.push(entry);
        outcome
    }
}
