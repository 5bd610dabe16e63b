//! Declaring a recognition group: the reversals of second payments it
//! writes, and how a re-declaration is compared with the stored one.

use super::Head;
use super::Plan;
use crate::entry::{Entry, EntryBody, EntryKind};
use crate::event::{Event, EventBody, LearnerRef, Millis, Reason};
use crate::ids::{EventId, GroupId, LearnerId, Position};
use crate::note::Note;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The event id of the reversal that declaring `group` writes for the
/// entry at `paid` (a second payment of the group): `recognised:<group>:<chain>-<seq>`.
pub fn declaration_event_id(group: &GroupId, paid: Position) -> Option<EventId> {
    EventId::parse(format!("recognised:{group}:{}-{}", paid.chain, paid.seq)).ok()
}

/// What declaring (or re-declaring) recognition group `group` writes: for
/// every learner paid more than once among the group's courses by entries
/// recorded before (in one CST year at a time when `per_year`), a reversal
/// of each payment but the one the group keeps (the one already written
/// with the group, else the earliest). Each reversal carries the group, the
/// site and event of the entry it reverses, and a reason naming the kept
/// entry. Old entries are never changed; declaring the same group again
/// writes nothing new.
///
/// `histories` holds, per learner with their chain, every entry of the
/// learner whose course is a member of the group or that carries it, in
/// sequence order; `heads` the current heads of those chains; `secrets`
/// the learners' secrets, under which each reversal names its learner by a
/// commitment (format version 2). A learner without one (erased) gets no
/// reversal: nothing more is written about them.
pub fn plan_declaration(
    group: &GroupId,
    per_year: bool,
    histories: &[(LearnerId, u32, Vec<Entry>)],
    heads: &HashMap<u32, Head>,
    secrets: &HashMap<LearnerId, [u8; 32]>,
    now: Millis,
) -> Plan {
    let mut plan = Plan::default();
    for (learner, chain, history) in histories {
        let Some(secret) = secrets.get(learner) else {
            continue;
        };
        let reverser = Reverser { group, secret, now };
        for paid in payments_by_period(history, per_year).values().filter(|p| p.len() > 1) {
            let keep = kept_payment(paid, group);
            for extra in paid.iter().filter(|e| e.position != keep.position) {
                let Some(event_id) = declaration_event_id(group, extra.position) else {
                    continue;
                };
                let head = chain_head(&plan, heads, *chain);
                let entry = reverser.reversal(*chain, head, keep, extra, event_id);
                push_entry(&mut plan, entry);
            }
        }
    }
    plan
}

/// The paying entries of a history that no reversal refers to, by CST year when `per_year`
/// (else all under `None`), in sequence order.
fn payments_by_period(history: &[Entry], per_year: bool) -> BTreeMap<Option<i32>, Vec<&Entry>> {
    let reversed: HashSet<Position> = history
        .iter()
        .filter(|e| e.body.kind == EntryKind::Reversal)
        .filter_map(|e| e.body.refers_to)
        .collect();
    let mut by_period: BTreeMap<Option<i32>, Vec<&Entry>> = BTreeMap::new();
    for e in history {
        if e.body.kind.pays() && !reversed.contains(&e.position) {
            let period = per_year.then(|| e.body.occurred_at.year_cst());
            by_period.entry(period).or_default().push(e);
        }
    }
    by_period
}

/// The payment a group keeps among several (not empty): the one already written with the
/// group, else the earliest.
fn kept_payment<'e>(paid: &[&'e Entry], group: &GroupId) -> &'e Entry {
    paid.iter()
        .find(|e| e.body.recognition_group.as_ref() == Some(group))
        .unwrap_or(&paid[0])
}

/// The head of `chain`: as this plan left it, else as stored, else empty.
fn chain_head(plan: &Plan, heads: &HashMap<u32, Head>, chain: u32) -> Head {
    plan.heads
        .get(&chain)
        .or_else(|| heads.get(&chain))
        .copied()
        .unwrap_or(Head::EMPTY)
}

/// Adds a sealed entry to the plan, its chain's head moving to it.
fn push_entry(plan: &mut Plan, entry: Entry) {
    plan.heads.insert(
        entry.position.chain,
        Head {
            seq: entry.position.seq,
            hash: entry.hash,
        },
    );
    plan.entries.push(entry);
}

/// Writes the reversals of one learner's second payments under a group's declaration.
struct Reverser<'a> {
    group: &'a GroupId,
    /// The learner's secret, under which each reversal names them and seals its note.
    secret: &'a [u8; 32],
    now: Millis,
}

impl Reverser<'_> {
    /// The reversal of `extra`, sealed after `head` on `chain`: a second payment of the group,
    /// which pays `keep` instead.
    fn reversal(&self, chain: u32, head: Head, keep: &Entry, extra: &Entry, event_id: EventId) -> Entry {
        let (group, secret) = (self.group, self.secret);
        let t = &extra.body;
        // A promotion repeats its recognised completion's key.
        let target = t.event_id.clone();
        let reason = Reason::code("credited_once", "reason").unwrap_or_default();
        let position = Position {
            chain,
            seq: head.seq + 1,
        };
        // The hashed reason is a code; the words stay beside the
        // entry as its note.
        let note = Note::seal(
            secret,
            position,
            &format!("credited once: recognition group {group} pays entry {}", keep.position),
        );
        Entry::seal(
            position,
            head.hash,
            EntryBody {
                kind: EntryKind::Reversal,
                site: t.site.clone(),
                event_id,
                learner: t.learner.clone(),
                commitment: Some(crate::entry::learner_commitment(secret, position)),
                course: t.course.clone(),
                category: t.category.clone(),
                credits: t.credits.negated(),
                occurred_at: t.occurred_at,
                recorded_at: self.now,
                score: None,
                hours: None,
                rule_version: t.rule_version,
                refers_to: Some(extra.position),
                target_event: Some(target),
                reason,
                note: Some(note),
                recognition_group: Some(group.clone()),
                withheld: None,
            },
        )
    }
}

/// The first field in which `event` differs from `stored`, the entry under
/// its key (TigerBeetle's `exists_with_different_<field>`); `None` when the
/// event repeats it. `same_learner` says whether the event's learner is the
/// entry's (resolving an account is the caller's business); `open` reads
/// the words of the stored entry's note (opening a sealed one is too).
pub fn first_difference(
    event: &Event,
    stored: &EntryBody,
    same_learner: impl FnOnce(&LearnerRef) -> bool,
    open: impl FnOnce(&Note) -> Option<String>,
) -> Option<&'static str> {
    match (&event.body, stored.kind) {
        (
            EventBody::Completion(c),
            EntryKind::Awarded | EntryKind::NotPassed | EntryKind::Recognised | EntryKind::Capped,
        ) => {
            if c.course != stored.course {
                Some("course")
            } else if !same_learner(&c.learner) {
                Some("learner")
            } else if c.completed_at != stored.occurred_at {
                Some("completed_at")
            } else if c.score != stored.score {
                Some("score")
            } else if c.hours != stored.hours {
                Some("hours")
            } else {
                None
            }
        }
        (EventBody::Revocation(r), EntryKind::Reversal) => {
            // A version-1 reversal holds the free text in `reason`; a
            // version-2 one the code, with the text as its note (`None`
            // when the note does not open: altered, or its learner erased,
            // and then it differs from any text).
            let (code, text) = match (stored.commitment, &stored.note) {
                (Some(_), Some(note)) => (stored.reason.as_str(), open(note)),
                (Some(_), None) => (stored.reason.as_str(), Some(String::new())),
                (None, _) => (r.code.as_str(), Some(stored.reason.as_str().to_owned())),
            };
            if Some(&r.target) != stored.target_event.as_ref() {
                Some("target_event_id")
            } else if r.code.as_str() != code {
                Some("reason_code")
            } else if text.as_deref() != Some(r.reason.as_str()) {
                Some("reason")
            } else {
                None
            }
        }
        _ => Some("kind"),
    }
}
