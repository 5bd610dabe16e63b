//! Model tests of crediting once, recognition groups and annual caps.
//!
//! Random sequences of completions, revocations, repeats (same event id)
//! and re-sends (same completion, new event id) from two sites
//! for three learners are planned in random batches by the real planner,
//! with lookups gathered from the ledger written so far the way a store
//! gathers them (keyed entries, then [`group_keys`], then [`cap_keys`]).
//! A deliberately simple reference model replays the same sequence one
//! event at a time with plain maps, and the two must agree on every
//! completion's net credits, every year's category totals and every
//! unit's paid completion (a group, or a course without one: credited once
//! per learner, or once per CST year for a repeatable course); every
//! re-send must be reported as a likely duplicate of the first; the ledger
//! must verify and never exceed a cap.

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;
use xuefen_core::amount::{Credits, Score};
use xuefen_core::entry::{Entry, EntryKind};
use xuefen_core::event::{Completion, Event, EventBody, LearnerRef, Millis, Reason, Revocation};
use xuefen_core::ids::{Category, CourseCode, EventId, GroupId, LearnerId, Position, SiteId};
use xuefen_core::plan::{Head, Key, Lookups, Outcome, cap_keys, course_keys, group_keys, plan, probe_course_history};
use xuefen_core::rule::{CourseTerms, CreditRule, Repeat};
use xuefen_core::verify::ChainVerifier;

const NOW: Millis = Millis(1_767_225_600_000); // 2026-01-01T00:00:00Z
/// 2024-06-01 and 2025-06-01, UTC.
const DATES: [Millis; 2] = [Millis(1_717_200_000_000), Millis(1_748_736_000_000)];
const COMMUNITY_CAP_CENTS: i64 = 5_00;

fn site(n: usize) -> SiteId {
    SiteId::parse(["s-one", "s-two"][n]).expect("site")
}
fn learner(n: usize) -> LearnerId {
    LearnerId::from_random([n as u8 + 1; 16])
}
/// Learners 0 and 1 share chain 0, learner 2 has chain 1.
fn chain_of(n: usize) -> u32 {
    u32::from(n == 2)
}

/// A course of the model: on a site, in a group or not, with its category
/// and credits; course 3 has a pass mark of 60.
struct CourseDef {
    site: usize,
    code: &'static str,
    group: Option<&'static str>,
    category: &'static str,
    credits: i64,
    repeat: Repeat,
}

const COURSES: [CourseDef; 7] = [
    CourseDef {
        site: 0,
        code: "G1-A",
        group: Some("g1"),
        category: "community",
        credits: 2_00,
        repeat: Repeat::Once,
    },
    CourseDef {
        site: 1,
        code: "G1-B",
        group: Some("g1"),
        category: "community",
        credits: 3_00,
        repeat: Repeat::Once,
    },
    CourseDef {
        site: 0,
        code: "G2-A",
        group: Some("g2"),
        category: "vocational",
        credits: 1_50,
        repeat: Repeat::Once,
    },
    CourseDef {
        site: 1,
        code: "G2-B",
        group: Some("g2"),
        category: "vocational",
        credits: 2_50,
        repeat: Repeat::Once,
    },
    CourseDef {
        site: 0,
        code: "FREE",
        group: None,
        category: "community",
        credits: 1_25,
        repeat: Repeat::Once,
    },
    CourseDef {
        site: 1,
        code: "FREE",
        group: None,
        category: "vocational",
        credits: 4_00,
        repeat: Repeat::Once,
    },
    CourseDef {
        site: 1,
        code: "YEARLY",
        group: None,
        category: "community",
        credits: 2_00,
        repeat: Repeat::PerYearCst,
    },
];
const PASS_MARK_COURSE: usize = 3;

fn lookups_base() -> Lookups {
    let mut l = Lookups::default();
    for n in 0..3 {
        l.learner_chains.insert(learner(n), chain_of(n));
        l.learner_secrets.insert(learner(n), [n as u8 + 1; 32]);
    }
    for (i, c) in COURSES.iter().enumerate() {
        l.courses.insert(
            (site(c.site), CourseCode::parse(c.code).expect("code")),
            CourseTerms {
                category: Category::parse(c.category).expect("category"),
                rule: CreditRule::Fixed {
                    credits: Credits::from_cents(c.credits),
                },
                pass_mark: (i == PASS_MARK_COURSE).then(|| Score::from_cents(60_00)),
                rule_version: 1,
                recognition_group: c.group.map(|g| GroupId::parse(g).expect("group")),
                offered_from: None,
                repeat: c.repeat,
            },
        );
    }
    l.caps.insert(
        Category::parse("community").expect("category"),
        Credits::from_cents(COMMUNITY_CAP_CENTS),
    );
    l
}

#[derive(Debug, Clone)]
enum Op {
    Complete {
        learner: usize,
        course: usize,
        date: usize,
        passes: bool,
    },
    /// Revoke the completion made by op `index % ops so far` (if it was one).
    Revoke { index: usize },
    /// Send op `index % ops so far` again, unchanged.
    Repeat { index: usize },
    /// Send the completion of op `index % ops so far` again under a new
    /// event id (if it was one).
    Resend { index: usize },
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..3usize, 0..COURSES.len(), 0..2usize, prop::bool::weighted(0.85))
            .prop_map(|(learner, course, date, passes)| Op::Complete { learner, course, date, passes }),
        3 => any::<usize>().prop_map(|index| Op::Revoke { index }),
        1 => any::<usize>().prop_map(|index| Op::Repeat { index }),
        2 => any::<usize>().prop_map(|index| Op::Resend { index }),
    ]
}

/// The events of a sequence of ops (each op's event, `None` for an op that
/// names nothing to revoke).
fn events_of(ops: &[Op]) -> Vec<Event> {
    resends_of(ops).0
}

/// The events of a sequence of ops, and for each event that re-sends a
/// completion under a new id, the id of the first event with that content.
fn resends_of(ops: &[Op]) -> (Vec<Event>, Vec<Option<EventId>>) {
    let mut events: Vec<Event> = Vec::new();
    let mut firsts: Vec<Option<EventId>> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let event = match op {
            Op::Complete {
                learner: who,
                course,
                date,
                passes,
            } => {
                let c = &COURSES[*course];
                Event {
                    site: site(c.site),
                    id: EventId::parse(format!("e{i}")).expect("id"),
                    body: EventBody::Completion(Completion {
                        course: CourseCode::parse(c.code).expect("code"),
                        learner: LearnerRef::Id(learner(*who)),
                        completed_at: Millis(DATES[*date].0 + i as i64),
                        score: Some(Score::from_cents(if *passes { 80_00 } else { 40_00 })),
                        hours: None,
                    }),
                }
            }
            Op::Revoke { index } if !events.is_empty() => {
                let target = &events[index % events.len()];
                Event {
                    site: target.site.clone(),
                    id: EventId::parse(format!("r{i}")).expect("id"),
                    body: EventBody::Revocation(Revocation {
                        target: target.id.clone(),
                        code: Reason::code("model", "reason_code").expect("code"),
                        reason: Reason::parse("model", "reason").expect("reason"),
                    }),
                }
            }
            Op::Repeat { index } if !events.is_empty() => {
                let n = index % events.len();
                firsts.push(firsts[n].clone());
                events.push(events[n].clone());
                continue;
            }
            Op::Resend { index }
                if !events.is_empty() && matches!(events[index % events.len()].body, EventBody::Completion(_)) =>
            {
                let n = index % events.len();
                let first = firsts[n].clone().unwrap_or_else(|| events[n].id.clone());
                firsts.push(Some(first));
                events.push(Event {
                    id: EventId::parse(format!("d{i}")).expect("id"),
                    ..events[n].clone()
                });
                continue;
            }
            Op::Revoke { .. } | Op::Repeat { .. } | Op::Resend { .. } => continue,
        };
        firsts.push(None);
        events.push(event);
    }
    (events, firsts)
}

// ---------------------------------------------------------------- the store

/// What a store holds, and how it gathers lookups: the same steps, in the
/// same order, as the SQL backends.
#[derive(Default)]
struct MemStore {
    ledger: Vec<Entry>,
    heads: HashMap<u32, Head>,
}

impl MemStore {
    fn lookups(&self, events: &[Event]) -> Lookups {
        let mut l = lookups_base();
        let mut keys: HashSet<Key> = events.iter().map(|e| (e.site.clone(), e.id.clone())).collect();
        let mut targets = HashSet::new();
        for e in events {
            if let EventBody::Revocation(r) = &e.body {
                keys.insert((e.site.clone(), r.target.clone()));
                targets.insert((e.site.clone(), r.target.clone()));
            }
        }
        for e in &self.ledger {
            if keys.contains(&(e.body.site.clone(), e.body.event_id.clone())) {
                l.add_entry(e.clone());
            }
            if let Some(t) = &e.body.target_event
                && targets.contains(&(e.body.site.clone(), t.clone()))
            {
                l.reversed.insert((e.body.site.clone(), t.clone()));
            }
        }
        for (learner, group) in group_keys(events, &l) {
            let member = |e: &Entry| {
                l.courses
                    .get(&(e.body.site.clone(), e.body.course.clone()))
                    .is_some_and(|t| t.recognition_group.as_ref() == Some(&group))
            };
            let history: Vec<Entry> = self
                .ledger
                .iter()
                .filter(|e| {
                    e.body.learner == learner && (e.body.recognition_group.as_ref() == Some(&group) || member(e))
                })
                .cloned()
                .collect();
            l.group_entries.insert((learner, group), history);
        }
        for (learner, site, course, probe) in course_keys(events, &l) {
            let history: Vec<Entry> = self
                .ledger
                .iter()
                .filter(|e| e.body.learner == learner && e.body.site == site && e.body.course == course)
                .cloned()
                .collect();
            let picked = probe_course_history(&history, &probe).into_iter().cloned();
            let filed = l.course_entries.entry((learner, site, course)).or_default();
            filed.extend(picked);
            filed.sort_by_key(|e| e.position);
            filed.dedup_by_key(|e| e.position);
        }
        for (learner, category, year) in cap_keys(events, &l) {
            let sum: Credits = self
                .ledger
                .iter()
                .filter(|e| {
                    e.body.learner == learner && e.body.category == category && e.body.occurred_at.year_cst() == year
                })
                .map(|e| e.body.credits)
                .sum();
            l.year_totals.insert((learner, category, year), sum);
        }
        for chain in l.chains() {
            l.heads
                .insert(chain, self.heads.get(&chain).copied().unwrap_or(Head::EMPTY));
        }
        l
    }

    fn ingest(&mut self, events: &[Event]) -> Vec<Outcome> {
        let lookups = self.lookups(events);
        let planned = plan(events, NOW, &lookups);
        // The ledger is kept in chain order per chain; positions are what count.
        self.ledger.extend(planned.entries);
        self.ledger.sort_by_key(|e| e.position);
        self.heads.extend(planned.heads);
        planned.outcomes
    }
}

// ---------------------------------------------------------------- the model

/// What a completion is credited once for, in the model: its group's id or
/// its own site and code, and the CST year for a repeatable course.
type UnitKey = (LearnerId, String, Option<i32>);

#[derive(Default)]
struct Model {
    /// Net credits of each completion, by key.
    credited: HashMap<Key, i64>,
    /// Passing completions of each learner and unit, in order.
    unit_log: HashMap<UnitKey, Vec<Key>>,
    passed: HashMap<Key, (i64, Category, i32, LearnerId)>,
    revoked: HashSet<Key>,
    paid: HashMap<UnitKey, Key>,
    totals: BTreeMap<(LearnerId, Category, i32), i64>,
    seen: HashSet<Key>,
    units: HashMap<Key, UnitKey>,
}

fn unit_of(def: &CourseDef, who: &LearnerId, year: i32) -> UnitKey {
    let unit = match def.group {
        Some(g) => g.to_owned(),
        None => format!("{}/{}", site(def.site), def.code),
    };
    let period = (def.repeat == Repeat::PerYearCst).then_some(year);
    (who.clone(), unit, period)
}

impl Model {
    fn grant(&mut self, key: &Key, owed: i64, learner: &LearnerId, category: &Category, year: i32) {
        let total = self
            .totals
            .entry((learner.clone(), category.clone(), year))
            .or_insert(0);
        let granted = if category.as_str() == "community" {
            owed.min((COMMUNITY_CAP_CENTS - *total).max(0))
        } else {
            owed
        };
        *total += granted;
        self.credited.insert(key.clone(), granted);
    }

    fn apply(&mut self, e: &Event) {
        let key = (e.site.clone(), e.id.clone());
        if !self.seen.insert(key.clone()) {
            return; // a repeat changes nothing
        }
        match &e.body {
            EventBody::Completion(c) => {
                let def = COURSES
                    .iter()
                    .find(|d| site(d.site) == e.site && d.code == c.course.as_str())
                    .expect("model course");
                let LearnerRef::Id(who) = &c.learner else {
                    unreachable!("ids only")
                };
                let category = Category::parse(def.category).expect("category");
                let year = c.completed_at.year_cst();
                let passes = c.score.is_some_and(|s| s.cents() >= 60_00) || def.code != "G2-B";
                self.credited.insert(key.clone(), 0);
                if !passes {
                    return;
                }
                self.passed
                    .insert(key.clone(), (def.credits, category.clone(), year, who.clone()));
                let uk = unit_of(def, who, year);
                self.unit_log.entry(uk.clone()).or_default().push(key.clone());
                self.units.insert(key.clone(), uk.clone());
                if let std::collections::hash_map::Entry::Vacant(slot) = self.paid.entry(uk) {
                    slot.insert(key.clone());
                    self.grant(&key, def.credits, who, &category, year);
                }
            }
            EventBody::Revocation(r) => {
                let target = (e.site.clone(), r.target.clone());
                let is_completion = self.credited.contains_key(&target);
                if !is_completion || !self.revoked.insert(target.clone()) {
                    return; // unknown, a revocation, or already revoked: rejected
                }
                let credited = self.credited.insert(target.clone(), 0).unwrap_or(0);
                if let Some((_, category, year, who)) = self.passed.get(&target).cloned() {
                    *self.totals.entry((who, category, year)).or_insert(0) -= credited;
                }
                let Some(uk) = self.units.get(&target).cloned() else {
                    return;
                };
                if self.paid.get(&uk) != Some(&target) {
                    return;
                }
                self.paid.remove(&uk);
                let next = self.unit_log[&uk]
                    .iter()
                    .find(|k| !self.revoked.contains(*k) && self.credited.get(*k) == Some(&0))
                    .cloned();
                if let Some(next) = next {
                    let (owed, category, year, who) = self.passed[&next].clone();
                    self.paid.insert(uk, next.clone());
                    self.grant(&next, owed, &who, &category, year);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- checks

/// Net credits per completion key, read from the ledger.
fn ledger_credits(ledger: &[Entry]) -> HashMap<Key, i64> {
    let mut out: HashMap<Key, i64> = HashMap::new();
    for e in ledger {
        let b = &e.body;
        let key = match (&b.kind, &b.target_event) {
            (EntryKind::Reversal, Some(t)) => (b.site.clone(), t.clone()),
            (EntryKind::Reversal, None) => panic!("reversal without target at {}", e.position),
            _ => (b.site.clone(), b.event_id.clone()),
        };
        *out.entry(key).or_insert(0) += b.credits.cents();
    }
    out
}

fn ledger_paid(ledger: &[Entry]) -> HashMap<UnitKey, Key> {
    let reversed: HashSet<Position> = ledger
        .iter()
        .filter(|e| e.body.kind == EntryKind::Reversal)
        .filter_map(|e| e.body.refers_to)
        .collect();
    let mut out = HashMap::new();
    for e in ledger {
        let b = &e.body;
        if b.kind.pays() && !reversed.contains(&e.position) {
            let def = COURSES
                .iter()
                .find(|d| site(d.site) == b.site && d.code == b.course.as_str())
                .expect("model course");
            let uk = unit_of(def, &b.learner, b.occurred_at.year_cst());
            let previous = out.insert(uk.clone(), (b.site.clone(), b.event_id.clone()));
            assert!(previous.is_none(), "two paid entries for {uk:?}");
        }
    }
    out
}

fn check(ops: &[Op], cuts: &[usize]) -> Result<(), TestCaseError> {
    let (events, firsts) = resends_of(ops);
    let mut store = MemStore::default();
    let mut model = Model::default();
    let mut start = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (events.len() + 1)).collect();
    bounds.push(events.len());
    bounds.sort_unstable();
    for end in bounds {
        if end <= start {
            continue;
        }
        let outcomes = store.ingest(&events[start..end]);
        for (n, outcome) in (start..end).zip(&outcomes) {
            let original = (firsts[n].as_ref() != Some(&events[n].id))
                .then(|| firsts[n].clone())
                .flatten();
            match outcome {
                Outcome::Accepted {
                    likely_duplicate_of, ..
                } => prop_assert_eq!(likely_duplicate_of, &original, "event {}", n),
                Outcome::Duplicate { .. } => {}
                other => prop_assert!(
                    matches!(events[n].body, EventBody::Revocation(_)),
                    "event {n}: {other:?}"
                ),
            }
        }
        start = end;
    }
    for e in &events {
        model.apply(e);
    }
    let credits = ledger_credits(&store.ledger);
    for (key, want) in &model.credited {
        prop_assert_eq!(
            credits.get(key).copied().unwrap_or(0),
            *want,
            "net credits of {:?}",
            key
        );
    }
    let mut totals: BTreeMap<(LearnerId, Category, i32), i64> = BTreeMap::new();
    for e in &store.ledger {
        let b = &e.body;
        *totals
            .entry((b.learner.clone(), b.category.clone(), b.occurred_at.year_cst()))
            .or_insert(0) += b.credits.cents();
    }
    totals.retain(|_, v| *v != 0);
    model.totals.retain(|_, v| *v != 0);
    prop_assert_eq!(&totals, &model.totals);
    for ((_, category, _), total) in &totals {
        if category.as_str() == "community" {
            prop_assert!(*total <= COMMUNITY_CAP_CENTS && *total >= 0);
        }
    }
    prop_assert_eq!(ledger_paid(&store.ledger), model.paid);
    for chain in [0u32, 1] {
        let mut v = ChainVerifier::new(chain);
        for e in store.ledger.iter().filter(|e| e.position.chain == chain) {
            v.push(e).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        let head = store.heads.get(&chain).copied().unwrap_or(Head::EMPTY);
        v.finish(head.seq, &head.hash)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Credited once, recognition and caps: for any sequence of
    /// completions, revocations, repeats and re-sends, planned in any
    /// batches, the ledger pays each unit (a group, or an ungrouped course;
    /// per CST year for a repeatable one) at most once per learner (the
    /// earliest valid completion, moving on when the paid one is revoked),
    /// reports every re-send as a likely duplicate of the first, never
    /// exceeds a category's annual cap, and agrees with the reference model
    /// on every completion's net credits, every year's totals and every
    /// unit's paid completion.
    #[test]
    fn the_planner_agrees_with_the_reference_model(
        ops in proptest::collection::vec(arb_op(), 1..40),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        check(&ops, &cuts)?;
    }
}

// ---------------------------------------------------------------- the orders

fn complete(learner_n: usize, course: usize) -> Op {
    Op::Complete {
        learner: learner_n,
        course,
        date: 1,
        passes: true,
    }
}

#[test]
fn a_then_b_pays_a_and_recognises_b() {
    let events = events_of(&[complete(0, 0), complete(0, 1)]);
    let mut store = MemStore::default();
    let out = store.ingest(&events);
    assert!(matches!(out[0], Outcome::Accepted { kind: EntryKind::Awarded, credits, .. } if credits.cents() == 2_00));
    assert!(matches!(out[1], Outcome::Accepted { kind: EntryKind::Recognised, credits, .. } if credits.cents() == 0));
    let b = &store.ledger[1].body;
    assert_eq!(b.refers_to, Some(store.ledger[0].position));
    assert_eq!(b.withheld.map(Credits::cents), Some(3_00));
}

#[test]
fn b_then_a_in_separate_batches_pays_b() {
    let events = events_of(&[complete(0, 1), complete(0, 0)]);
    let mut store = MemStore::default();
    store.ingest(&events[..1]);
    let out = store.ingest(&events[1..]);
    assert!(matches!(
        out[0],
        Outcome::Accepted {
            kind: EntryKind::Recognised,
            ..
        }
    ));
    assert_eq!(store.ledger[1].body.refers_to, Some(store.ledger[0].position));
}

#[test]
fn revoking_a_after_b_promotes_b_and_revoking_b_then_unpays_the_group() {
    let ops = [
        complete(0, 0),
        complete(0, 1),
        Op::Revoke { index: 0 },
        Op::Revoke { index: 1 },
    ];
    let events = events_of(&ops);
    let mut store = MemStore::default();
    store.ingest(&events[..2]);
    store.ingest(&events[2..3]);
    let kinds: Vec<EntryKind> = store.ledger.iter().map(|e| e.body.kind).collect();
    assert_eq!(
        kinds,
        [
            EntryKind::Awarded,
            EntryKind::Recognised,
            EntryKind::Reversal,
            EntryKind::Promoted
        ]
    );
    let promoted = store.ledger[3].clone();
    assert_eq!(promoted.body.credits.cents(), 3_00);
    assert_eq!(promoted.body.refers_to, Some(store.ledger[1].position));
    assert_eq!(promoted.body.event_id.as_str(), "e1");
    // Revoking B reverses its promotion.
    let out = store.ingest(&events[3..]);
    assert!(matches!(out[0], Outcome::Accepted { kind: EntryKind::Reversal, credits, .. } if credits.cents() == -3_00));
    assert_eq!(store.ledger[4].body.refers_to, Some(promoted.position));
    assert!(ledger_paid(&store.ledger).is_empty());
    // Sending B again is a duplicate of its recognised entry.
    let out = store.ingest(&events[1..2]);
    assert!(matches!(
        out[0],
        Outcome::Duplicate {
            kind: EntryKind::Recognised,
            ..
        }
    ));
}

#[test]
fn a_cap_splits_an_award_and_records_the_remainder() {
    // Community cap 5.00: 3.00 (G1-B) + 1.25 (FREE) = 4.25, then 2.00 (YEARLY) → 0.75 + 1.25 withheld.
    let events = events_of(&[complete(0, 1), complete(0, 4), complete(0, 6)]);
    let mut store = MemStore::default();
    let out = store.ingest(&events);
    assert!(matches!(out[2], Outcome::Accepted { kind: EntryKind::Capped, credits, .. } if credits.cents() == 75));
    assert_eq!(store.ledger[2].body.withheld.map(Credits::cents), Some(1_25));
    let out = store.ingest(&events[2..]);
    assert!(matches!(out[0], Outcome::Duplicate { kind: EntryKind::Capped, credits, .. } if credits.cents() == 75));
}

#[test]
fn a_course_is_paid_once_and_a_resend_is_reported_as_a_likely_duplicate() {
    let ops = [complete(0, 4), complete(0, 4), Op::Resend { index: 0 }];
    let (events, _) = resends_of(&ops);
    let mut store = MemStore::default();
    let out = store.ingest(&events[..1]);
    assert!(matches!(
        out[0],
        Outcome::Accepted {
            kind: EntryKind::Awarded,
            likely_duplicate_of: None,
            ..
        }
    ));
    let out = store.ingest(&events[1..]);
    // A second completion at another time: recorded, not paid, not a duplicate.
    assert!(
        matches!(out[0], Outcome::Accepted { kind: EntryKind::Recognised, credits, likely_duplicate_of: None, .. } if credits.cents() == 0)
    );
    assert_eq!(store.ledger[1].body.refers_to, Some(store.ledger[0].position));
    assert_eq!(store.ledger[1].body.withheld.map(Credits::cents), Some(1_25));
    // The first completion again under a new id: the same, and reported.
    match &out[1] {
        Outcome::Accepted {
            kind: EntryKind::Recognised,
            likely_duplicate_of: Some(first),
            ..
        } => {
            assert_eq!(first.as_str(), "e0");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_repeatable_course_is_paid_once_per_cst_year() {
    let ops = [
        Op::Complete {
            learner: 0,
            course: 6,
            date: 0,
            passes: true,
        },
        Op::Complete {
            learner: 0,
            course: 6,
            date: 0,
            passes: true,
        },
        Op::Complete {
            learner: 0,
            course: 6,
            date: 1,
            passes: true,
        },
    ];
    let mut store = MemStore::default();
    let out = store.ingest(&events_of(&ops));
    let kinds: Vec<EntryKind> = out
        .iter()
        .map(|o| match o {
            Outcome::Accepted { kind, .. } => *kind,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, [EntryKind::Awarded, EntryKind::Recognised, EntryKind::Awarded]);
}
